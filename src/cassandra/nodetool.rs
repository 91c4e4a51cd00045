//! nodetool: building calls (with JMX options) and parsing outputs (info, status, version, listsnapshots, describecluster).
//!
//! Every parser accepts the output of 2.1 to 5.0 (cassandra-facts §3.5, §6): fixed-width
//! `key : value` lines, padded TableBuilder columns with trailing spaces, sizes with a space
//! (`306.77 KiB`), KB vs KiB, unsorted rows, version-dependent extra lines. Errors map
//! (exit code, stdout, stderr) to typed variants instead of Java stack traces.

use std::collections::BTreeMap;

use super::config::CassandraConfig;
use super::version::{ReleaseVersion, VersionProfile};
use crate::command::CommandSpec;

/// nodetool failures, as cbk reports them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodetoolError {
    #[error("Cassandra is not running on {host} (nodetool could not connect to {target})")]
    NotRunning { host: String, target: String },
    #[error("nodetool on {host}: JMX authentication failed ({message})")]
    AuthFailed { host: String, message: String },
    #[error("nodetool on {host}: snapshot {tag} already exists")]
    SnapshotExists { host: String, tag: String },
    #[error("nodetool on {host} rejected the call: {message}")]
    Usage { host: String, message: String },
    #[error("nodetool is not installed on {host} ({message})")]
    NotInstalled { host: String, message: String },
    #[error("nodetool on {host} failed (exit {code}): {message}")]
    Failed {
        host: String,
        code: i32,
        message: String,
    },
    #[error("cannot parse `nodetool {command}` output: {reason}")]
    Parse {
        command: &'static str,
        reason: String,
    },
    #[error("bad nodetool settings: {0}")]
    Config(String),
}

fn parse_err(command: &'static str, reason: impl Into<String>) -> NodetoolError {
    NodetoolError::Parse {
        command,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Invocations

/// How to run nodetool on a node, with the JMX options of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Nodetool {
    program: CommandSpec,
    global: Vec<String>,
}

impl Nodetool {
    /// From the plan. The password is only ever passed as a file (`-pwf`).
    pub fn from_config(cfg: &CassandraConfig) -> Result<Nodetool, NodetoolError> {
        let program = cfg
            .nodetool
            .clone()
            .unwrap_or_else(|| CommandSpec::Argv(vec!["nodetool".into()]));
        match &program {
            CommandSpec::Argv(v) if v.is_empty() || v[0].is_empty() => {
                return Err(NodetoolError::Config("empty nodetool command".into()));
            }
            CommandSpec::Argv(v) if v.iter().any(|a| a == "-pw" || a == "--password") => {
                return Err(NodetoolError::Config(
                    "a password on the nodetool command line is visible to every user; use jmx.password_file".into(),
                ));
            }
            CommandSpec::Shell(s) if s.trim().is_empty() => {
                return Err(NodetoolError::Config("empty nodetool command".into()));
            }
            _ => {}
        }
        let jmx = &cfg.jmx;
        let mut global = Vec::new();
        if let Some(h) = &jmx.host {
            if h.is_empty() || h.starts_with('-') || h.chars().any(char::is_whitespace) {
                return Err(NodetoolError::Config(format!("bad JMX host {h:?}")));
            }
            global.extend(["-h".to_string(), h.clone()]);
        }
        if let Some(p) = jmx.port {
            global.extend(["-p".to_string(), p.to_string()]);
        }
        if let Some(u) = &jmx.user {
            if u.is_empty() || u.starts_with('-') {
                return Err(NodetoolError::Config(format!("bad JMX user {u:?}")));
            }
            global.extend(["-u".to_string(), u.clone()]);
        }
        if let Some(f) = &jmx.password_file {
            if f.is_empty() || f.starts_with('-') {
                return Err(NodetoolError::Config(format!(
                    "bad JMX password file {f:?}"
                )));
            }
            global.extend(["-pwf".to_string(), f.clone()]);
        }
        Ok(Nodetool { program, global })
    }

    /// The full argv for `nodetool <args>`. A shell-snippet command from the plan becomes
    /// `sh -c '<snippet> "$@"' nodetool <args>` so arguments never need quoting into it.
    pub fn argv<S: AsRef<str>>(&self, args: &[S]) -> Vec<String> {
        let mut v = match &self.program {
            CommandSpec::Argv(p) => p.clone(),
            CommandSpec::Shell(s) => vec![
                "sh".into(),
                "-c".into(),
                format!("{s} \"$@\""),
                "nodetool".into(),
            ],
        };
        v.extend(self.global.iter().cloned());
        v.extend(args.iter().map(|a| a.as_ref().to_string()));
        v
    }
}

/// What a snapshot covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotTargets {
    /// Whole keyspaces (empty = all keyspaces, system ones included).
    Keyspaces(Vec<String>),
    /// `(keyspace, table)` pairs (`-kt`; `-kc` on 2.1).
    Tables(Vec<(String, String)>),
}

/// Arguments of `nodetool snapshot` for a version.
pub fn snapshot_args(
    profile: VersionProfile,
    tag: &str,
    targets: &SnapshotTargets,
    skip_flush: bool,
    ttl: Option<&str>,
) -> Result<Vec<String>, NodetoolError> {
    let mut a = vec!["snapshot".to_string(), "-t".into(), tag.to_string()];
    if skip_flush {
        if profile < VersionProfile::V3_11 {
            return Err(NodetoolError::Config(format!(
                "--skip-flush needs Cassandra 3.4 or later (node is {profile})"
            )));
        }
        a.push("-sf".into());
    }
    if let Some(t) = ttl {
        if profile < VersionProfile::V4_1 {
            return Err(NodetoolError::Config(format!(
                "snapshot --ttl needs Cassandra 4.1 or later (node is {profile})"
            )));
        }
        a.extend(["--ttl".to_string(), t.to_string()]);
    }
    match targets {
        SnapshotTargets::Keyspaces(ks) => {
            if !ks.is_empty() {
                a.push("--".into());
                a.extend(ks.iter().cloned());
            }
        }
        SnapshotTargets::Tables(t) => {
            if t.is_empty() {
                return Err(NodetoolError::Config("snapshot of no table".into()));
            }
            let flag = if profile == VersionProfile::V2_1 {
                "-kc"
            } else {
                "-kt"
            };
            let list: Vec<String> = t.iter().map(|(k, t)| format!("{k}.{t}")).collect();
            a.extend([flag.to_string(), list.join(",")]);
        }
    }
    Ok(a)
}

/// Arguments of `nodetool clearsnapshot -t <tag>` (a tag is mandatory: cbk never clears all).
pub fn clearsnapshot_args(tag: &str, keyspaces: &[String]) -> Result<Vec<String>, NodetoolError> {
    if tag.is_empty() {
        return Err(NodetoolError::Config(
            "clearsnapshot without a tag would delete every snapshot on 3.x".into(),
        ));
    }
    let mut a = vec!["clearsnapshot".to_string(), "-t".into(), tag.to_string()];
    if !keyspaces.is_empty() {
        a.push("--".into());
        a.extend(keyspaces.iter().cloned());
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Error mapping

/// Maps a finished nodetool call (exit code and output) to `Ok(stdout)` or a typed error.
/// `host` names the node in messages.
pub fn check_output(
    host: &str,
    code: i32,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<String, NodetoolError> {
    let stdout = String::from_utf8_lossy(stdout).into_owned();
    let stderr = String::from_utf8_lossy(stderr).into_owned();
    map_result(host, code, &stdout, &stderr).map(|()| stdout)
}

fn map_result(host: &str, code: i32, stdout: &str, stderr: &str) -> Result<(), NodetoolError> {
    if code == 0 {
        return Ok(());
    }
    let host_s = host.to_string();
    let both = format!("{stderr}\n{stdout}");
    if code == 127
        || both.contains("nodetool: command not found")
        || both.contains("nodetool: not found")
    {
        return Err(NodetoolError::NotInstalled {
            host: host_s,
            message: first_line(stderr)
                .unwrap_or("command not found")
                .to_string(),
        });
    }
    if let Some(line) = both.lines().find(|l| l.contains("Failed to connect to '")) {
        let target = line
            .split("Failed to connect to '")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or("?")
            .to_string();
        if line.contains("SecurityException") || line.contains("Authentication failed") {
            return Err(NodetoolError::AuthFailed {
                host: host_s,
                message: quoted_cause(line),
            });
        }
        return Err(NodetoolError::NotRunning {
            host: host_s,
            target,
        });
    }
    if let Some(msg) = error_message(&both) {
        if msg.contains("Authentication failed") || msg.contains("Invalid username or password") {
            return Err(NodetoolError::AuthFailed {
                host: host_s,
                message: msg,
            });
        }
        if let Some(tag) = msg
            .strip_prefix("Snapshot ")
            .and_then(|r| r.strip_suffix(" already exists."))
        {
            return Err(NodetoolError::SnapshotExists {
                host: host_s,
                tag: tag.to_string(),
            });
        }
        return Err(NodetoolError::Failed {
            host: host_s,
            code,
            message: msg,
        });
    }
    if let Some(msg) = both
        .lines()
        .find_map(|l| l.trim().strip_prefix("nodetool: "))
        .map(str::to_string)
    {
        return Err(NodetoolError::Usage {
            host: host_s,
            message: msg,
        });
    }
    let message = both
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("at ") && !l.starts_with("..."))
        .take(3)
        .collect::<Vec<_>>()
        .join(" / ");
    Err(NodetoolError::Failed {
        host: host_s,
        code,
        message: if message.is_empty() {
            "no output".into()
        } else {
            message
        },
    })
}

fn first_line(s: &str) -> Option<&str> {
    s.lines().map(str::trim).find(|l| !l.is_empty())
}

/// `... - SecurityException: 'Authentication failed! Credentials required'.` -> the quoted part.
fn quoted_cause(line: &str) -> String {
    match (line.find(": '"), line.rfind('\'')) {
        (Some(a), Some(b)) if b > a + 3 => line[a + 3..b].to_string(),
        _ => line.trim().to_string(),
    }
}

/// `error: <message>` (possibly over several lines) up to `-- StackTrace --`.
fn error_message(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let first = lines.find_map(|l| l.strip_prefix("error: "))?;
    let mut msg = vec![first.trim().to_string()];
    for l in lines {
        if l.starts_with("-- StackTrace --") || l.trim_start().starts_with("at ") {
            break;
        }
        if !l.trim().is_empty() {
            msg.push(l.trim().to_string());
        }
    }
    Some(msg.join(" "))
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// Parses a nodetool size (`306.77 KiB`, `4.9 KB`, `0 bytes`, `1.5 GiB`) into bytes (Cassandra's
/// KB/MB are 1024-based like KiB/MiB).
pub fn parse_size(text: &str) -> Option<u64> {
    let mut it = text.split_whitespace();
    let num: f64 = it.next()?.replace(',', ".").parse().ok()?;
    let unit = it.next().unwrap_or("bytes");
    if it.next().is_some() || num < 0.0 || !num.is_finite() {
        return None;
    }
    let mult: u64 = match unit {
        "bytes" | "byte" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        _ => return None,
    };
    Some((num * mult as f64).round() as u64)
}

fn is_size_unit(s: &str) -> bool {
    parse_size(&format!("1 {s}")).is_some()
}

// ---------------------------------------------------------------------------------------------
// version

/// `ReleaseVersion: 4.1.3`.
pub fn parse_version(stdout: &str) -> Result<ReleaseVersion, NodetoolError> {
    let v = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("ReleaseVersion:"))
        .ok_or_else(|| parse_err("version", "no ReleaseVersion line"))?;
    ReleaseVersion::parse(v).map_err(|e| parse_err("version", e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// info

/// `nodetool info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub host_id: String,
    pub datacenter: Option<String>,
    pub rack: Option<String>,
    pub load_bytes: Option<u64>,
    pub gossip_active: Option<bool>,
    pub native_transport_active: Option<bool>,
    /// Every `key : value` line, trimmed (unknown lines included).
    pub fields: BTreeMap<String, String>,
}

pub fn parse_info(stdout: &str) -> Result<Info, NodetoolError> {
    let mut fields = BTreeMap::new();
    for line in stdout.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if !k.is_empty() && !fields.contains_key(k) {
                fields.insert(k.to_string(), v.trim().to_string());
            }
        }
    }
    let host_id = fields
        .get("ID")
        .cloned()
        .filter(|v| is_uuid(v))
        .ok_or_else(|| parse_err("info", "no host ID line (`ID : <uuid>`)"))?;
    let b = |k: &str| fields.get(k).and_then(|v| v.parse::<bool>().ok());
    Ok(Info {
        host_id,
        datacenter: fields.get("Data Center").cloned(),
        rack: fields.get("Rack").cloned(),
        load_bytes: fields.get("Load").and_then(|v| parse_size(v)),
        gossip_active: b("Gossip active"),
        native_transport_active: b("Native Transport active"),
        fields,
    })
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

// ---------------------------------------------------------------------------------------------
// status

/// One node of `nodetool status`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusNode {
    pub datacenter: String,
    /// `U` or `D` (or `?`).
    pub status: char,
    /// `N`, `L`, `J`, `M`.
    pub state: char,
    pub address: String,
    pub load_bytes: Option<u64>,
    /// Number of tokens (`Tokens` column), if shown.
    pub tokens: Option<u32>,
    /// The token (`Token` column of single-token clusters, 4.0+).
    pub token: Option<String>,
    /// Effective ownership in percent; `None` for `?`.
    pub owns_percent: Option<f64>,
    pub host_id: Option<String>,
    pub rack: String,
}

impl StatusNode {
    pub fn is_up_normal(&self) -> bool {
        self.status == 'U' && self.state == 'N'
    }
}

/// `nodetool status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub nodes: Vec<StatusNode>,
    /// Trailing `Note: ...` lines.
    pub notes: Vec<String>,
}

pub fn parse_status(stdout: &str) -> Result<Status, NodetoolError> {
    let mut dc = String::new();
    let mut has_tokens_col = false;
    let mut has_token_col = false;
    let mut nodes = Vec::new();
    let mut notes = Vec::new();
    for line in stdout.lines() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("Datacenter:") {
            dc = d.trim().to_string();
            continue;
        }
        if let Some(n) = t.strip_prefix("Note:") {
            notes.push(n.trim().to_string());
            continue;
        }
        if t.starts_with("--") {
            has_tokens_col = t.split_whitespace().any(|w| w == "Tokens");
            has_token_col = !has_tokens_col && t.split_whitespace().any(|w| w == "Token");
            continue;
        }
        let toks: Vec<&str> = t.split_whitespace().collect();
        let Some(code) = toks.first().filter(|c| c.len() == 2) else {
            continue;
        };
        let mut cs = code.chars();
        let (status, state) = (cs.next().unwrap_or('?'), cs.next().unwrap_or('?'));
        if !"UD?".contains(status) || !"NLJM?".contains(state) || toks.len() < 4 {
            continue;
        }
        let address = toks[1].to_string();
        let (load_bytes, rest) = if toks.len() > 3 && is_size_unit(toks[3]) {
            (parse_size(&format!("{} {}", toks[2], toks[3])), &toks[4..])
        } else {
            (None, &toks[3..])
        };
        let rack = rest
            .last()
            .ok_or_else(|| parse_err("status", format!("no rack in {t:?}")))?
            .to_string();
        let owns_pos = rest.iter().position(|w| w.ends_with('%') || *w == "?");
        let owns_percent = owns_pos.and_then(|p| rest[p].trim_end_matches('%').parse().ok());
        let id_pos = rest.iter().position(|w| is_uuid(w));
        let host_id = id_pos.map(|p| rest[p].to_string());
        let tokens = if has_tokens_col {
            rest[..owns_pos.unwrap_or(0)]
                .iter()
                .find_map(|w| w.parse::<u32>().ok())
        } else {
            None
        };
        let token = match (has_token_col, id_pos) {
            (true, Some(p)) if p + 2 < rest.len() => Some(rest[p + 1].to_string()),
            _ => None,
        };
        nodes.push(StatusNode {
            datacenter: dc.clone(),
            status,
            state,
            address,
            load_bytes,
            tokens,
            token,
            owns_percent,
            host_id,
            rack,
        });
    }
    if nodes.is_empty() {
        return Err(parse_err("status", "no node lines"));
    }
    Ok(Status { nodes, notes })
}

// ---------------------------------------------------------------------------------------------
// describecluster

/// `nodetool describecluster`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterDescription {
    pub name: Option<String>,
    pub partitioner: Option<String>,
    pub snitch: Option<String>,
    /// Schema version (or `UNREACHABLE`) -> endpoints.
    pub schema_versions: BTreeMap<String, Vec<String>>,
    /// 4.0+ `Database versions:` section: release -> endpoints.
    pub database_versions: BTreeMap<String, Vec<String>>,
}

impl ClusterDescription {
    /// Exactly one schema version and no unreachable node.
    pub fn schema_agreement(&self) -> bool {
        self.schema_versions.len() == 1 && !self.schema_versions.contains_key("UNREACHABLE")
    }
}

pub fn parse_describecluster(stdout: &str) -> Result<ClusterDescription, NodetoolError> {
    let mut d = ClusterDescription::default();
    let mut section = "";
    let mut saw_header = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t == "Cluster Information:" {
            saw_header = true;
            continue;
        }
        if t.ends_with(':') && !t.contains(": ") {
            section = match t {
                "Schema versions:" => "schema",
                "Database versions:" => "db",
                _ => "other",
            };
            continue;
        }
        let list = t
            .split_once(": [")
            .and_then(|(k, v)| v.strip_suffix(']').map(|v| (k, v)));
        match (section, list) {
            ("schema" | "db", Some((k, v))) => {
                let eps: Vec<String> = v
                    .split(',')
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty())
                    .collect();
                let target = if section == "schema" {
                    &mut d.schema_versions
                } else {
                    &mut d.database_versions
                };
                target.insert(k.trim().to_string(), eps);
            }
            _ => {
                if let Some((k, v)) = t.split_once(": ") {
                    match k {
                        "Name" => d.name = Some(v.trim().to_string()),
                        "Partitioner" => d.partitioner = Some(v.trim().to_string()),
                        "Snitch" => d.snitch = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
            }
        }
    }
    if !saw_header || d.schema_versions.is_empty() {
        return Err(parse_err(
            "describecluster",
            "no `Cluster Information:` with schema versions",
        ));
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// listsnapshots

/// One row of `nodetool listsnapshots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub tag: String,
    pub keyspace: String,
    pub table: String,
    pub true_size: u64,
    pub size_on_disk: u64,
    /// 4.1+ (blank cells are `None`).
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    /// 5.0 with `-e`.
    pub ephemeral: Option<bool>,
}

/// `nodetool listsnapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotList {
    /// In output order (which is unsorted in Cassandra).
    pub rows: Vec<SnapshotRow>,
    pub total_true_size: Option<u64>,
}

impl SnapshotList {
    /// Distinct tags, sorted.
    pub fn tags(&self) -> Vec<String> {
        let mut t: Vec<String> = self.rows.iter().map(|r| r.tag.clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}

const TAIL_COLUMNS: [&str; 3] = ["Creation time", "Expiration time", "Ephemeral"];

pub fn parse_listsnapshots(stdout: &str) -> Result<SnapshotList, NodetoolError> {
    let mut out = SnapshotList::default();
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Snapshot Details:"));
    if lines.next().is_none() {
        return Err(parse_err("listsnapshots", "no `Snapshot Details:` line"));
    }
    // column name -> char offset in the header
    let mut tail_cols: Vec<(usize, &'static str)> = Vec::new();
    let mut header_seen = false;
    for line in lines {
        let t = line.trim_end();
        if t.trim().is_empty() {
            continue;
        }
        if t.trim() == "There are no snapshots" {
            return Ok(out);
        }
        if let Some(v) = t.strip_prefix("Total TrueDiskSpaceUsed:") {
            out.total_true_size = parse_size(v.trim());
            continue;
        }
        if t.starts_with("Snapshot name") {
            header_seen = true;
            tail_cols = TAIL_COLUMNS
                .iter()
                .filter_map(|c| t.find(c).map(|p| (p, *c)))
                .collect();
            continue;
        }
        if !header_seen {
            return Err(parse_err(
                "listsnapshots",
                format!("row before header: {t:?}"),
            ));
        }
        out.rows.push(parse_snapshot_row(t, &tail_cols)?);
    }
    if !header_seen {
        return Err(parse_err("listsnapshots", "no header line"));
    }
    Ok(out)
}

/// Tokens of a line with their byte offsets.
fn tokens_with_offsets(line: &str) -> Vec<(usize, &str)> {
    let mut v = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                v.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        v.push((s, &line[s..]));
    }
    v
}

fn parse_snapshot_row(
    line: &str,
    tail_cols: &[(usize, &'static str)],
) -> Result<SnapshotRow, NodetoolError> {
    let bad = || parse_err("listsnapshots", format!("bad row {line:?}"));
    let toks = tokens_with_offsets(line);
    if toks.len() < 7 {
        return Err(bad());
    }
    let size = |a: usize| parse_size(&format!("{} {}", toks[a].1, toks[a + 1].1)).ok_or_else(bad);
    let mut row = SnapshotRow {
        tag: toks[0].1.to_string(),
        keyspace: toks[1].1.to_string(),
        table: toks[2].1.to_string(),
        true_size: size(3)?,
        size_on_disk: size(5)?,
        created_at: None,
        expires_at: None,
        ephemeral: None,
    };
    for (off, tok) in &toks[7..] {
        // The cell whose header starts at or before the token (TableBuilder pads to width);
        // fall back to the kind of value when the header is absent or misaligned.
        let by_pos = tail_cols
            .iter()
            .rev()
            .find(|(p, _)| p <= off)
            .map(|(_, c)| *c);
        let col = match (*tok, by_pos) {
            ("true" | "false", _) => "Ephemeral",
            (_, Some(c)) if c != "Ephemeral" => c,
            _ if row.created_at.is_none() => "Creation time",
            _ => "Expiration time",
        };
        match col {
            "Ephemeral" => row.ephemeral = Some(*tok == "true"),
            "Creation time" => row.created_at = Some(tok.to_string()),
            _ => row.expires_at = Some(tok.to_string()),
        }
    }
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// statusbackup, ring, getendpoints, snapshot

/// `nodetool statusbackup` -> incremental backups running?
pub fn parse_statusbackup(stdout: &str) -> Result<bool, NodetoolError> {
    match stdout.trim() {
        "running" => Ok(true),
        "not running" => Ok(false),
        other => Err(parse_err(
            "statusbackup",
            format!("expected `running` or `not running`, got {other:?}"),
        )),
    }
}

/// `nodetool ring`: tokens per address (all datacenters), in output order.
pub fn parse_ring(stdout: &str) -> Result<BTreeMap<String, Vec<String>>, NodetoolError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in stdout.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.len() < 7 || !matches!(toks[2], "Up" | "Down" | "?") {
            continue;
        }
        let token = toks[toks.len() - 1];
        if token.parse::<i128>().is_err() {
            return Err(parse_err("ring", format!("bad token in {line:?}")));
        }
        out.entry(toks[0].to_string())
            .or_default()
            .push(token.to_string());
    }
    if out.is_empty() {
        return Err(parse_err("ring", "no token lines"));
    }
    Ok(out)
}

/// `nodetool getendpoints`: one address per line.
pub fn parse_getendpoints(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `Snapshot directory: <tag>` from `nodetool snapshot`.
pub fn parse_snapshot(stdout: &str) -> Result<String, NodetoolError> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Snapshot directory:"))
        .map(|t| t.trim().to_string())
        .ok_or_else(|| parse_err("snapshot", "no `Snapshot directory:` line"))
}

/// `nodetool datapaths` (4.1+): `(keyspace, table)` -> absolute table folders.
pub fn parse_datapaths(
    stdout: &str,
) -> Result<BTreeMap<(String, String), Vec<String>>, NodetoolError> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let (mut ks, mut table) = (None::<String>, None::<String>);
    let mut in_paths = false;
    for line in stdout.lines() {
        let t = line.trim();
        if let Some(k) = t.strip_prefix("Keyspace:") {
            ks = Some(k.trim().to_string());
            in_paths = false;
        } else if let Some(tb) = t.strip_prefix("Table:") {
            table = Some(tb.trim().to_string());
            in_paths = false;
        } else if t == "Paths:" {
            in_paths = true;
        } else if in_paths && t.starts_with('/') {
            match (&ks, &table) {
                (Some(k), Some(tb)) => out
                    .entry((k.clone(), tb.clone()))
                    .or_default()
                    .push(t.to_string()),
                _ => return Err(parse_err("datapaths", "path before keyspace/table")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("306.77 KiB"), Some(314132));
        assert_eq!(parse_size("4.9 KB"), Some(5018));
        assert_eq!(parse_size("0 bytes"), Some(0));
        assert_eq!(parse_size("13 bytes"), Some(13));
        assert_eq!(parse_size("1 MiB"), Some(1 << 20));
        assert_eq!(parse_size("2 GB"), Some(2 << 30));
        assert_eq!(parse_size("x KiB"), None);
        assert_eq!(parse_size("1 parsecs"), None);
        assert_eq!(parse_size("-1 KiB"), None);
    }
}
