//! Data folder layout: keyspace and table-id folders, snapshots/, backups/, index subfolders.
//!
//! `<data dir>/<ks>/<table>-<32 hex id>/[snapshots/<tag>/|backups/][.<index>/]<file>`
//! (cassandra-facts §1). Parsing is pure; the `list_*`/`find_*` helpers read folders with std::fs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component as PathComponent, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::config::SystemKeyspaces;

/// Layout errors.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {reason}")]
    NotADataPath { path: PathBuf, reason: String },
    #[error("{0:?} is not a table id (32 hex digits, dashes allowed)")]
    BadTableId(String),
    #[error("bad table pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error(
        "legacy table folder {0} exists: Cassandra would use it instead of the table-id folder; \
         move it away before restoring"
    )]
    LegacyTableDir(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A table id: 32 lowercase hex digits (the folder suffix; CQL shows it with dashes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(String);

impl TableId {
    /// Parses `d132e240c21711e9bbee19821dcea330` or `d132e240-c217-11e9-bbee-19821dcea330`.
    pub fn parse(text: &str) -> Result<TableId, LayoutError> {
        let t = text.trim();
        let dashed = t.len() == 36
            && [8, 13, 18, 23].iter().all(|&i| t.as_bytes()[i] == b'-')
            && t.bytes().filter(|&b| b == b'-').count() == 4;
        let hex: String = if dashed {
            t.chars().filter(|&c| c != '-').collect()
        } else {
            t.to_string()
        };
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LayoutError::BadTableId(text.to_string()));
        }
        Ok(TableId(hex.to_ascii_lowercase()))
    }

    /// 32 hex digits, as in folder names.
    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// With dashes, as in CQL (`WITH ID = …`).
    pub fn to_uuid_string(&self) -> String {
        let h = &self.0;
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The folder name of a table: `<table>-<id>` (cbk never produces a legacy plain `<table>`).
pub fn table_dir_name(table: &str, id: &TableId) -> String {
    format!("{table}-{id}")
}

/// A parsed table folder name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDir {
    pub table: String,
    /// `None` for a legacy (pre-2.1 style) `<table>/` folder.
    pub id: Option<TableId>,
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a table folder name; `None` if it is neither `<table>-<id>` nor a legacy `<table>`.
pub fn parse_table_dir(name: &str) -> Option<TableDir> {
    match name.rsplit_once('-') {
        Some((table, id))
            if is_identifier(table)
                && id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Some(TableDir {
                table: table.to_string(),
                id: Some(TableId(id.to_string())),
            })
        }
        Some(_) => None,
        None if is_identifier(name) => Some(TableDir {
            table: name.to_string(),
            id: None,
        }),
        None => None,
    }
}

/// Where a file sits inside its table folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathKind {
    Live,
    Snapshot { tag: String },
    Backups,
}

/// A path under a data folder, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPath {
    pub keyspace: String,
    pub table: String,
    /// `None` for a legacy `<table>/` folder.
    pub table_id: Option<TableId>,
    pub kind: PathKind,
    /// Legacy secondary index sstables live in `.<index>/`.
    pub index: Option<String>,
    pub file: String,
}

impl DataPath {
    /// The path relative to a data folder.
    pub fn relative_path(&self) -> PathBuf {
        let mut p = PathBuf::from(&self.keyspace);
        p.push(match &self.table_id {
            Some(id) => table_dir_name(&self.table, id),
            None => self.table.clone(),
        });
        match &self.kind {
            PathKind::Live => {}
            PathKind::Snapshot { tag } => {
                p.push("snapshots");
                p.push(tag);
            }
            PathKind::Backups => p.push("backups"),
        }
        if let Some(i) = &self.index {
            p.push(format!(".{i}"));
        }
        p.push(&self.file);
        p
    }
}

fn str_components(path: &Path) -> Option<Vec<&str>> {
    path.components()
        .map(|c| match c {
            PathComponent::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect()
}

/// Parses a path relative to a data folder (`ks/t-<id>/snapshots/tag/.idx/nb-1-big-Data.db`).
pub fn parse_relative(rel: &Path) -> Result<DataPath, LayoutError> {
    let bad = |reason: &str| LayoutError::NotADataPath {
        path: rel.to_path_buf(),
        reason: reason.to_string(),
    };
    let parts = str_components(rel).ok_or_else(|| bad("not a plain relative path"))?;
    if parts.len() < 3 {
        return Err(bad("expected <keyspace>/<table>-<id>/.../<file>"));
    }
    let keyspace = parts[0];
    if !is_identifier(keyspace) {
        return Err(bad("bad keyspace folder"));
    }
    let td = parse_table_dir(parts[1]).ok_or_else(|| bad("bad table folder"))?;
    let file = parts[parts.len() - 1];
    let mut middle = &parts[2..parts.len() - 1];
    let kind = match middle.first() {
        Some(&"snapshots") => {
            let tag = middle
                .get(1)
                .ok_or_else(|| bad("snapshot file without a tag"))?;
            let tag = (*tag).to_string();
            middle = &middle[2..];
            PathKind::Snapshot { tag }
        }
        Some(&"backups") => {
            middle = &middle[1..];
            PathKind::Backups
        }
        _ => PathKind::Live,
    };
    let index = match middle {
        [] => None,
        [idx] if idx.len() > 1 && idx.starts_with('.') && is_identifier(&idx[1..]) => {
            Some(idx[1..].to_string())
        }
        _ => return Err(bad("unexpected folders between table and file")),
    };
    Ok(DataPath {
        keyspace: keyspace.to_string(),
        table: td.table,
        table_id: td.id,
        kind,
        index,
        file: file.to_string(),
    })
}

/// Parses an absolute path under one of `data_dirs`; returns the data folder too.
pub fn parse_data_path<'a>(
    data_dirs: &'a [PathBuf],
    path: &Path,
) -> Result<(&'a Path, DataPath), LayoutError> {
    for dd in data_dirs {
        if let Ok(rel) = path.strip_prefix(dd) {
            return Ok((dd.as_path(), parse_relative(rel)?));
        }
    }
    Err(LayoutError::NotADataPath {
        path: path.to_path_buf(),
        reason: "not under any data_file_directories entry".into(),
    })
}

/// Keyspaces stored only in the first data dir (4.0+) and not listed by 3.x listsnapshots.
pub const LOCAL_SYSTEM_KEYSPACES: [&str; 2] = ["system", "system_schema"];
/// Replicated system keyspaces.
pub const REPLICATED_SYSTEM_KEYSPACES: [&str; 3] =
    ["system_auth", "system_distributed", "system_traces"];
/// Virtual keyspaces (no folders).
pub const VIRTUAL_KEYSPACES: [&str; 2] = ["system_views", "system_virtual_schema"];

/// A keyspace owned by Cassandra itself.
pub fn is_system_keyspace(ks: &str) -> bool {
    LOCAL_SYSTEM_KEYSPACES.contains(&ks)
        || REPLICATED_SYSTEM_KEYSPACES.contains(&ks)
        || VIRTUAL_KEYSPACES.contains(&ks)
        || ks == "system_cluster_metadata"
}

/// Is a system keyspace selected by the plan's policy? (Non-system keyspaces: always true.)
pub fn system_policy_allows(ks: &str, policy: SystemKeyspaces) -> bool {
    if !is_system_keyspace(ks) {
        return true;
    }
    if VIRTUAL_KEYSPACES.contains(&ks) {
        return false;
    }
    match policy {
        SystemKeyspaces::None => false,
        SystemKeyspaces::Schema => ks == "system_schema",
        SystemKeyspaces::All => true,
    }
}

/// The id of a system table: `UUID.nameUUIDFromBytes(ks ++ table)` (MD5, version 3).
pub fn system_table_id(keyspace: &str, table: &str) -> TableId {
    let mut input = keyspace.as_bytes().to_vec();
    input.extend_from_slice(table.as_bytes());
    let mut d = md5(&input);
    d[6] = (d[6] & 0x0f) | 0x30;
    d[8] = (d[8] & 0x3f) | 0x80;
    TableId(hex::encode(d))
}

/// MD5 (RFC 1321), only for name-based table ids.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    for chunk in msg.chunks_exact(64) {
        let m: Vec<u32> = chunk
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, v) in [a0, b0, c0, d0].iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// Which tables a plan selects: `include`/`exclude` globs on `keyspace.table` names (a pattern
/// without a dot means the whole keyspace). System keyspaces follow the plan's policy
/// (`system_schema` by default) and are not subject to `include`; `exclude` applies to all.
#[derive(Debug, Clone)]
pub struct TableFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
    system: SystemKeyspaces,
    /// Only these keyspaces (`None`: any).
    keyspaces: Option<Vec<String>>,
}

fn build_globs(patterns: &[String]) -> Result<GlobSet, LayoutError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let full = if p.contains('.') {
            p.clone()
        } else {
            format!("{p}.*")
        };
        let g = Glob::new(&full).map_err(|e| LayoutError::BadPattern {
            pattern: p.clone(),
            reason: e.kind().to_string(),
        })?;
        b.add(g);
    }
    b.build().map_err(|e| LayoutError::BadPattern {
        pattern: patterns.join(","),
        reason: e.to_string(),
    })
}

impl TableFilter {
    pub fn new(
        include: &[String],
        exclude: &[String],
        system: SystemKeyspaces,
    ) -> Result<TableFilter, LayoutError> {
        Ok(TableFilter {
            include: if include.is_empty() {
                None
            } else {
                Some(build_globs(include)?)
            },
            exclude: build_globs(exclude)?,
            system,
            keyspaces: None,
        })
    }

    /// Everything (all system keyspaces too).
    pub fn all() -> TableFilter {
        TableFilter {
            include: None,
            exclude: GlobSet::empty(),
            system: SystemKeyspaces::All,
            keyspaces: None,
        }
    }

    /// The same filter, restricted to `keyspaces` (an empty list: no restriction), e.g. the
    /// keyspaces a `nodetool snapshot` call names.
    pub fn within_keyspaces(mut self, keyspaces: &[String]) -> TableFilter {
        self.keyspaces = (!keyspaces.is_empty()).then(|| keyspaces.to_vec());
        self
    }

    fn keyspace_allowed(&self, ks: &str) -> bool {
        self.keyspaces
            .as_ref()
            .is_none_or(|l| l.iter().any(|k| k == ks))
    }

    /// Could any table of this keyspace be selected?
    pub fn keyspace_may_match(&self, ks: &str) -> bool {
        system_policy_allows(ks, self.system) && self.keyspace_allowed(ks)
    }

    pub fn matches(&self, ks: &str, table: &str) -> bool {
        let name = format!("{ks}.{table}");
        if !system_policy_allows(ks, self.system)
            || !self.keyspace_allowed(ks)
            || self.exclude.is_match(&name)
        {
            return false;
        }
        if is_system_keyspace(ks) {
            return true;
        }
        self.include.as_ref().is_none_or(|g| g.is_match(&name))
    }
}

/// A file found in a data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// The data folder it sits in.
    pub data_dir: PathBuf,
    /// Absolute path.
    pub path: PathBuf,
    /// Relative to the snapshot (or backups) folder: `nb-1-big-Data.db`, `.idx/nb-1-big-Data.db`.
    pub relative: String,
    pub index: Option<String>,
    pub file: String,
    pub size: u64,
}

/// The files of one table (one table-id folder) found across all data folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFiles {
    pub keyspace: String,
    pub table: String,
    pub table_id: Option<TableId>,
    /// Sorted by relative path, then data dir.
    pub files: Vec<FoundFile>,
    /// Where `manifest.json` landed (any data dir), if present.
    pub manifest: Option<PathBuf>,
    /// Where `schema.cql` landed (any data dir), if present.
    pub schema: Option<PathBuf>,
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<(String, std::fs::FileType)>, LayoutError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err(dir))?;
        let ft = entry.file_type().map_err(io_err(dir))?;
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), ft));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Table folders `(data_dir, ks, table_dir_path, TableDir)` selected by the filter.
fn selected_table_dirs(
    data_dirs: &[PathBuf],
    filter: &TableFilter,
) -> Result<Vec<(PathBuf, String, PathBuf, TableDir)>, LayoutError> {
    let mut out = Vec::new();
    for dd in data_dirs {
        for (ks, ft) in read_dir_sorted(dd)? {
            if !ft.is_dir() || !is_identifier(&ks) || !filter.keyspace_may_match(&ks) {
                continue;
            }
            let ks_dir = dd.join(&ks);
            for (tname, ft) in read_dir_sorted(&ks_dir)? {
                if !ft.is_dir() {
                    continue;
                }
                let Some(td) = parse_table_dir(&tname) else {
                    continue;
                };
                if filter.matches(&ks, &td.table) {
                    out.push((dd.clone(), ks.clone(), ks_dir.join(&tname), td));
                }
            }
        }
    }
    Ok(out)
}

/// Collects regular files of `dir` and of its `.<idx>/` subfolders into `table`.
fn collect_files(dd: &Path, dir: &Path, table: &mut TableFiles) -> Result<(), LayoutError> {
    for (name, ft) in read_dir_sorted(dir)? {
        let path = dir.join(&name);
        if ft.is_dir() {
            let Some(idx) = name.strip_prefix('.').filter(|i| is_identifier(i)) else {
                continue;
            };
            for (f, ft) in read_dir_sorted(&path)? {
                if ft.is_file() {
                    let p = path.join(&f);
                    let size = std::fs::metadata(&p).map_err(io_err(&p))?.len();
                    table.files.push(FoundFile {
                        data_dir: dd.to_path_buf(),
                        relative: format!(".{idx}/{f}"),
                        index: Some(idx.to_string()),
                        file: f,
                        path: p,
                        size,
                    });
                }
            }
        } else if ft.is_file() {
            match name.as_str() {
                "manifest.json" => table.manifest = Some(path),
                "schema.cql" => table.schema = Some(path),
                _ => {
                    let size = std::fs::metadata(&path).map_err(io_err(&path))?.len();
                    table.files.push(FoundFile {
                        data_dir: dd.to_path_buf(),
                        relative: name.clone(),
                        index: None,
                        file: name,
                        path,
                        size,
                    });
                }
            }
        }
    }
    Ok(())
}

fn collect(
    data_dirs: &[PathBuf],
    filter: &TableFilter,
    sub: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<TableFiles>, LayoutError> {
    let mut by_table: BTreeMap<(String, String, Option<TableId>), TableFiles> = BTreeMap::new();
    for (dd, ks, tdir, td) in selected_table_dirs(data_dirs, filter)? {
        let dir = sub(&tdir);
        if !dir.is_dir() {
            continue;
        }
        let key = (ks.clone(), td.table.clone(), td.id.clone());
        let entry = by_table.entry(key).or_insert_with(|| TableFiles {
            keyspace: ks,
            table: td.table,
            table_id: td.id,
            files: Vec::new(),
            manifest: None,
            schema: None,
        });
        collect_files(&dd, &dir, entry)?;
    }
    let mut out: Vec<TableFiles> = by_table.into_values().collect();
    for t in &mut out {
        t.files.sort_by(|a, b| {
            (a.relative.as_str(), &a.data_dir).cmp(&(b.relative.as_str(), &b.data_dir))
        });
    }
    Ok(out)
}

/// The files of snapshot `tag` of every selected table, across ALL data folders.
pub fn snapshot_files(
    data_dirs: &[PathBuf],
    tag: &str,
    filter: &TableFilter,
) -> Result<Vec<TableFiles>, LayoutError> {
    collect(data_dirs, filter, &|t| t.join("snapshots").join(tag))
}

/// The incremental-backup files (`backups/`, `backups/.<idx>/`) of every selected table.
pub fn backup_files(
    data_dirs: &[PathBuf],
    filter: &TableFilter,
) -> Result<Vec<TableFiles>, LayoutError> {
    collect(data_dirs, filter, &|t| t.join("backups"))
}

/// The live files (table folder and `.<idx>/`) of every selected table.
pub fn live_files(
    data_dirs: &[PathBuf],
    filter: &TableFilter,
) -> Result<Vec<TableFiles>, LayoutError> {
    collect(data_dirs, filter, &|t| t.to_path_buf())
}

/// Snapshot tags present under the selected tables (any data folder), sorted.
pub fn snapshot_tags(
    data_dirs: &[PathBuf],
    filter: &TableFilter,
) -> Result<Vec<String>, LayoutError> {
    let mut tags = std::collections::BTreeSet::new();
    for (_, _, tdir, _) in selected_table_dirs(data_dirs, filter)? {
        for (name, ft) in read_dir_sorted(&tdir.join("snapshots"))? {
            if ft.is_dir() {
                tags.insert(name);
            }
        }
    }
    Ok(tags.into_iter().collect())
}

/// How far snapshot `tag` covers the selected tables. Cassandra snapshots one table after the
/// other (hard links, then the table's `manifest.json`, written even for a table without
/// sstables), so a crashed `nodetool snapshot` leaves the tag on some tables only, or a table's
/// snapshot without its manifest, and an earlier narrower call (`nodetool snapshot -t TAG ks`)
/// leaves it on other keyspaces' tables missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotCoverage {
    /// Selected tables the snapshot must cover: those with the tag or with live sstables (a
    /// table folder without either may belong to a dropped table), and every `system_schema`
    /// table.
    pub tables: usize,
    /// Of these, the tables whose snapshot is complete: `manifest.json` present and every file
    /// it lists present.
    pub covered: usize,
    /// Why the others are not, one line per table (`metrics.samples: no snapshot`).
    pub gaps: Vec<String>,
}

impl SnapshotCoverage {
    /// The tag is on the node for some selected table.
    pub fn present(&self) -> bool {
        self.tables
            > self
                .gaps
                .iter()
                .filter(|g| g.ends_with(NO_SNAPSHOT))
                .count()
    }

    /// The snapshot covers every selected table.
    pub fn complete(&self) -> bool {
        self.gaps.is_empty()
    }
}

const NO_SNAPSHOT: &str = ": no snapshot";

/// Checks snapshot `tag` of every selected table against its own `manifest.json`.
pub fn snapshot_coverage(
    data_dirs: &[PathBuf],
    tag: &str,
    filter: &TableFilter,
) -> Result<SnapshotCoverage, LayoutError> {
    #[derive(Default)]
    struct Seen {
        live: usize,
        tag_dirs: Vec<PathBuf>,
    }
    let mut by_table: BTreeMap<(String, String, TableId), Seen> = BTreeMap::new();
    for (_, ks, tdir, td) in selected_table_dirs(data_dirs, filter)? {
        let Some(id) = td.id else {
            continue;
        };
        let seen = by_table.entry((ks, td.table, id)).or_default();
        seen.live += read_dir_sorted(&tdir)?
            .iter()
            .filter(|(n, ft)| ft.is_file() && n.ends_with("-Data.db"))
            .count();
        let sd = tdir.join("snapshots").join(tag);
        if sd.is_dir() {
            seen.tag_dirs.push(sd);
        }
    }
    let mut cov = SnapshotCoverage::default();
    for ((ks, table, _), seen) in by_table {
        if seen.tag_dirs.is_empty() {
            // system_schema tables are never dropped, and a snapshot flushes them first: they
            // count even while their data is only in memtables.
            if seen.live > 0 || ks == "system_schema" {
                cov.tables += 1;
                cov.gaps.push(format!("{ks}.{table}{NO_SNAPSHOT}"));
            }
            continue;
        }
        cov.tables += 1;
        let Some(mpath) = seen
            .tag_dirs
            .iter()
            .map(|d| d.join("manifest.json"))
            .find(|p| p.is_file())
        else {
            cov.gaps.push(format!(
                "{ks}.{table}: no manifest.json (the snapshot did not finish)"
            ));
            continue;
        };
        let text = std::fs::read_to_string(&mpath).map_err(io_err(&mpath))?;
        let entries = match crate::cassandra::manifest::SnapshotManifest::parse(&text)
            .and_then(|m| m.entries())
        {
            Ok(e) => e,
            Err(e) => {
                cov.gaps.push(format!("{ks}.{table}: {e}"));
                continue;
            }
        };
        let missing: Vec<String> = entries
            .iter()
            .map(|e| match &e.index {
                Some(i) => format!(".{i}/{}", e.file),
                None => e.file.clone(),
            })
            .filter(|rel| !seen.tag_dirs.iter().any(|d| d.join(rel).is_file()))
            .collect();
        if !missing.is_empty() {
            cov.gaps.push(format!(
                "{ks}.{table}: {} file(s) its manifest.json lists are missing ({})",
                missing.len(),
                missing.join(", ")
            ));
            continue;
        }
        cov.covered += 1;
    }
    Ok(cov)
}

/// Fails if a legacy `<ks>/<table>/` folder exists in any data folder (Cassandra would use it
/// and ignore the `<table>-<id>/` folder).
pub fn check_no_legacy_table_dir(
    data_dirs: &[PathBuf],
    keyspace: &str,
    table: &str,
) -> Result<(), LayoutError> {
    for dd in data_dirs {
        let p = dd.join(keyspace).join(table);
        if p.is_dir() {
            return Err(LayoutError::LegacyTableDir(p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_coverage_follows_each_tables_manifest() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![root.path().join("d1"), root.path().join("d2")];
        let table = |dd: usize, ks: &str, t: &str, id: &str| {
            let p = dirs[dd].join(ks).join(format!("{t}-{id}"));
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let write = |p: &Path, text: &str| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let id = |n: u32| format!("{n:032x}");
        // a: complete, files and manifest in different data folders.
        let a1 = table(0, "ks", "a", &id(1));
        let a2 = table(1, "ks", "a", &id(1));
        write(&a1.join("nb-1-big-Data.db"), "x");
        write(&a2.join("snapshots/T/nb-1-big-Data.db"), "x");
        write(
            &a1.join("snapshots/T/manifest.json"),
            r#"{"files":["nb-1-big-Data.db"]}"#,
        );
        // b: live sstables, no snapshot.
        write(&table(0, "ks", "b", &id(2)).join("nb-1-big-Data.db"), "x");
        // c: links without a manifest (crashed mid-snapshot).
        write(
            &table(0, "ks", "c", &id(3)).join("snapshots/T/nb-1-big-Data.db"),
            "x",
        );
        // d: manifest lists a file that is not there.
        write(
            &table(1, "ks", "d", &id(4)).join("snapshots/T/manifest.json"),
            r#"{"files":[".d_idx\/nb-2-big-Data.db"]}"#,
        );
        // e: a dropped table's folder (no live sstables, no tag): not expected.
        table(0, "ks", "e", &id(5));
        // other keyspace outside the snapshot's keyspaces.
        write(
            &table(0, "other", "x", &id(6)).join("nb-1-big-Data.db"),
            "x",
        );
        let filter = TableFilter::new(&[], &[], SystemKeyspaces::None)
            .unwrap()
            .within_keyspaces(&["ks".into()]);
        let cov = snapshot_coverage(&dirs, "T", &filter).unwrap();
        assert_eq!((cov.tables, cov.covered), (4, 1), "{cov:?}");
        assert!(cov.present() && !cov.complete());
        assert_eq!(cov.gaps[0], "ks.b: no snapshot");
        assert!(cov.gaps[1].starts_with("ks.c: no manifest.json"), "{cov:?}");
        assert!(cov.gaps[2].contains(".d_idx/nb-2-big-Data.db"), "{cov:?}");
        let none = snapshot_coverage(&dirs, "U", &filter).unwrap();
        assert!(!none.present() && !none.complete());
    }

    #[test]
    fn system_table_ids_match_cassandra() {
        for (ks, t, id) in [
            ("system", "local", "7ad54392bcdd35a684174e047860b377"),
            (
                "system_schema",
                "tables",
                "afddfb9dbc1e30688056eed6c302ba09",
            ),
            (
                "system_schema",
                "columns",
                "24101c25a2ae3af787c1b40ee1aca33f",
            ),
            ("system", "peers", "37f71aca7dc2383ba70672528af04d4f"),
            ("system", "peers_v2", "c4325fbb8e5e3bafbd070f9250ed818e"),
            ("system_auth", "roles", "5bc52802de2535edaeab188eecebb090"),
        ] {
            assert_eq!(system_table_id(ks, t).as_hex(), id, "{ks}.{t}");
        }
    }

    #[test]
    fn md5_known_vectors() {
        assert_eq!(hex::encode(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex::encode(md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(hex::encode(md5(&long)), "cabe45dcc9ae5b66ba86600cca6b8ba8");
    }

    #[test]
    fn table_dirs() {
        let td = parse_table_dir("t-d132e240c21711e9bbee19821dcea330").unwrap();
        assert_eq!(td.table, "t");
        assert_eq!(
            td.id.unwrap().to_uuid_string(),
            "d132e240-c217-11e9-bbee-19821dcea330"
        );
        assert_eq!(parse_table_dir("users").unwrap().id, None);
        assert!(parse_table_dir("t-D132E240C21711E9BBEE19821DCEA330").is_none());
        assert!(parse_table_dir("t-1234").is_none());
        assert!(parse_table_dir("snap shot").is_none());
        assert_eq!(
            TableId::parse("D132E240-C217-11E9-BBEE-19821DCEA330")
                .unwrap()
                .as_hex(),
            "d132e240c21711e9bbee19821dcea330"
        );
        assert!(TableId::parse("d132e240-c21711e9-bbee-19821dcea330-").is_err());
    }

    #[test]
    fn relative_paths() {
        let id = "d132e240c21711e9bbee19821dcea330";
        let p = parse_relative(Path::new(&format!(
            "ks/t-{id}/snapshots/tag-1/.t_idx/nb-1-big-Data.db"
        )))
        .unwrap();
        assert_eq!(
            p.kind,
            PathKind::Snapshot {
                tag: "tag-1".into()
            }
        );
        assert_eq!(p.index.as_deref(), Some("t_idx"));
        assert_eq!(p.file, "nb-1-big-Data.db");
        assert_eq!(
            p.relative_path(),
            Path::new(&format!(
                "ks/t-{id}/snapshots/tag-1/.t_idx/nb-1-big-Data.db"
            ))
        );
        let p = parse_relative(Path::new(&format!("ks/t-{id}/backups/nb-2-big-TOC.txt"))).unwrap();
        assert_eq!(p.kind, PathKind::Backups);
        let p = parse_relative(Path::new("ks/t/nb-2-big-TOC.txt")).unwrap();
        assert_eq!((p.kind, p.table_id), (PathKind::Live, None));
        for bad in [
            "ks/t-xyz/a",
            "../ks/t/f",
            "ks/t",
            "ks/t/snapshots/f",
            "ks/t/a/b/c",
        ] {
            assert!(parse_relative(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn filter_semantics() {
        let f = TableFilter::new(
            &["app.*".into(), "other".into()],
            &["app.tmp_*".into()],
            SystemKeyspaces::Schema,
        )
        .unwrap();
        assert!(f.matches("app", "users"));
        assert!(!f.matches("app", "tmp_x"));
        assert!(f.matches("other", "t"));
        assert!(!f.matches("third", "t"));
        assert!(f.matches("system_schema", "tables"));
        assert!(!f.matches("system", "local"));
        assert!(!f.matches("system_auth", "roles"));
        let none = TableFilter::new(&[], &[], SystemKeyspaces::None).unwrap();
        assert!(none.matches("app", "t") && !none.matches("system_schema", "tables"));
        assert!(TableFilter::all().matches("system", "local"));
        assert!(!TableFilter::all().matches("system_views", "snapshots"));
        assert!(TableFilter::new(&["a.[".into()], &[], SystemKeyspaces::None).is_err());
    }
}

/// Something in a data folder that would stop Cassandra from starting or lose data at startup
/// (cassandra-facts §5.1: `checkSSTablesFormat`, orphan removal, the legacy-folder rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupProblem {
    /// A `*.db` file that is not an sstable component: Cassandra refuses to start.
    UnparsableDb(PathBuf),
    /// An sstable version this Cassandra cannot read: Cassandra refuses to start.
    Incompatible(PathBuf),
    /// A UUID generation while `uuid_sstable_identifiers_enabled` is off: refuses to start.
    UuidDisabled(PathBuf),
    /// Components whose Data.db is missing or empty: Cassandra deletes them at startup.
    Orphan(PathBuf),
    /// A legacy `<ks>/<table>/` folder: Cassandra would use it instead of `<table>-<id>/`.
    LegacyTableDir(PathBuf),
}

impl fmt::Display for StartupProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupProblem::UnparsableDb(p) => {
                write!(
                    f,
                    "{}: not an sstable file; Cassandra would refuse to start",
                    p.display()
                )
            }
            StartupProblem::Incompatible(p) => write!(
                f,
                "{}: sstable version not readable by this Cassandra; it would refuse to start",
                p.display()
            ),
            StartupProblem::UuidDisabled(p) => write!(
                f,
                "{}: UUID sstable id but uuid_sstable_identifiers_enabled is off; Cassandra would refuse to start",
                p.display()
            ),
            StartupProblem::Orphan(p) => write!(
                f,
                "{}: Data.db missing or empty; Cassandra would delete this sstable's components",
                p.display()
            ),
            StartupProblem::LegacyTableDir(p) => write!(
                f,
                "{}: legacy table folder; Cassandra would use it and ignore the table-id folder",
                p.display()
            ),
        }
    }
}

/// Checks the live parts of all data folders (not `snapshots/`, `backups/`) the way Cassandra
/// does at startup, for a node of `profile` with the given UUID-id setting.
pub fn startup_problems(
    data_dirs: &[PathBuf],
    profile: crate::cassandra::version::VersionProfile,
    uuid_ids_enabled: bool,
) -> Result<Vec<StartupProblem>, LayoutError> {
    use crate::cassandra::sstable::{Component, SstableName};
    let mut problems = Vec::new();
    let check_folder =
        |dir: &Path, problems: &mut Vec<StartupProblem>| -> Result<(), LayoutError> {
            let mut data_sizes: BTreeMap<String, u64> = BTreeMap::new();
            let mut prefixes: BTreeMap<String, PathBuf> = BTreeMap::new();
            for (name, ft) in read_dir_sorted(dir)? {
                if !ft.is_file() {
                    continue;
                }
                let path = dir.join(&name);
                match SstableName::parse(&name) {
                    Ok(s) if s.temp.is_none() => {
                        if !s.is_readable_by(profile) {
                            problems.push(StartupProblem::Incompatible(path.clone()));
                        } else if s.needs_uuid_flag() && !uuid_ids_enabled {
                            problems.push(StartupProblem::UuidDisabled(path.clone()));
                        }
                        if s.component == Component::Data {
                            let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
                            data_sizes.insert(s.prefix(), len);
                        }
                        prefixes.entry(s.prefix()).or_insert(path);
                    }
                    Ok(_) => {}
                    Err(_) if name.ends_with(".db") => {
                        problems.push(StartupProblem::UnparsableDb(path))
                    }
                    Err(_) => {}
                }
            }
            for (prefix, path) in prefixes {
                if data_sizes.get(&prefix).copied().unwrap_or(0) == 0 {
                    problems.push(StartupProblem::Orphan(path));
                }
            }
            Ok(())
        };
    for (_, _, tdir, td) in selected_table_dirs(data_dirs, &TableFilter::all())? {
        if td.id.is_none() {
            problems.push(StartupProblem::LegacyTableDir(tdir.clone()));
        }
        check_folder(&tdir, &mut problems)?;
        for (name, ft) in read_dir_sorted(&tdir)? {
            if ft.is_dir() && name.starts_with('.') {
                check_folder(&tdir.join(&name), &mut problems)?;
            }
        }
    }
    Ok(problems)
}
