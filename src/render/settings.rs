//! The resolved settings of a plan as `key: value` lines (`storage.url`, `retention.keep_daily`):
//! the Settings block of the human and Markdown views shows the ones a reviewer must check, and
//! `cbk plan --compare` diffs all of them, so a changed bucket or retention is never silent.

use crate::graph::run::PlannedRun;
use serde_json::Value;

/// One resolved setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Dotted key, e.g. `retention.keep_daily` or `cluster.hosts[cass-01].address`.
    pub key: String,
    /// The value as shown: lists joined with `, `, defaults marked ` (default)`.
    pub value: String,
}

/// The settings of the Settings block, in this order; `prefix.*` stands for every key under
/// `prefix` (and `prefix` itself).
const REVIEWED: &[&str] = &[
    "kind",
    "cluster.name",
    "storage.url",
    "storage.region",
    "storage.endpoint",
    "storage.profile",
    "storage.storage_class",
    "storage.sse",
    "storage.sse_kms_key_id",
    "storage.checksum",
    "storage.part_size",
    "storage.object_lock.*",
    "backup.name",
    "templates.backup.name",
    "backup.mode",
    "backup.include",
    "backup.exclude",
    "backup.system_keyspaces",
    "backup.codec",
    "backup.compress_compressed",
    "backup.clear_snapshot",
    "restore.source",
    "templates.restore.source",
    "restore.source_cluster",
    "restore.method",
    "restore.include",
    "restore.exclude",
    "restore.host_map.*",
    "restore.repair",
    "restore.create_missing_tables",
    "restore.allow_token_mismatch",
    "restore.incrementals",
    "retention.*",
    "limits.*",
];

/// Lines shown for one `prefix.*` entry of the block before the rest is counted.
const GROUP_LINES: usize = 12;

/// The marker of a value cbk uses because the plan does not set it.
pub const DEFAULT_MARK: &str = " (default)";

/// What a `latest` restore source becomes (never at plan time).
pub const RESOLVED_AT_APPLY: &str = " (resolved at apply)";

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn push(out: &mut Vec<Setting>, key: String, value: String) {
    out.push(Setting { key, value });
}

/// Leaves of `v` under `prefix`. Lists of tables with a `name` (hosts, steps) are keyed by it:
/// `cluster.hosts` lists the names, `cluster.hosts[cass-01].address` the fields.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<Setting>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&join(k), x, out);
            }
        }
        Value::Array(a) => {
            let names: Option<Vec<&str>> = a
                .iter()
                .map(|x| x.get("name").and_then(Value::as_str))
                .collect();
            match names {
                Some(names) if !a.is_empty() => {
                    push(out, prefix.to_owned(), names.join(", "));
                    for (n, x) in names.iter().zip(a) {
                        for (k, y) in x.as_object().into_iter().flatten() {
                            if k != "name" {
                                flatten(&format!("{prefix}[{n}].{k}"), y, out);
                            }
                        }
                    }
                }
                _ => push(out, prefix.to_owned(), scalar(v)),
            }
        }
        other => push(out, prefix.to_owned(), scalar(other)),
    }
}

/// Values cbk uses where the plan sets nothing, for the settings a reviewer checks.
fn defaults(run: &PlannedRun) -> Vec<(&'static str, String)> {
    let p = &run.plan;
    let mut d: Vec<(&'static str, String)> = Vec::new();
    if let Some(s) = p.storage.as_ref().filter(|s| s.is_s3()) {
        d.push(("storage.sse", "none".into()));
        d.push((
            "storage.checksum",
            if s.endpoint.is_some() {
                "auto: when_required, as an endpoint is set".into()
            } else {
                "auto: CRC32 on every request".into()
            },
        ));
        d.push((
            "storage.part_size",
            format!("{}MiB", crate::store::s3::DEFAULT_PART_SIZE >> 20),
        ));
        d.push((
            "storage.part_concurrency",
            crate::store::s3::DEFAULT_PART_CONCURRENCY.to_string(),
        ));
    }
    if p.backup.is_some() {
        d.push(("backup.include", "every non-system keyspace".into()));
        d.push(("backup.exclude", "nothing".into()));
        d.push(("backup.codec", crate::codec::Codec::default().to_string()));
        d.push(("backup.flush", "true".into()));
    }
    if p.restore.is_some() {
        d.push(("restore.source_cluster", p.cluster.name.clone()));
        d.push(("restore.include", "every table of the backup".into()));
        d.push(("restore.exclude", "nothing".into()));
        d.push(("restore.host_map", "each host from its own name".into()));
        d.push((
            "restore.repair",
            crate::graph::compile::restore_repairs(p).to_string(),
        ));
        d.push(("restore.incrementals", "true".into()));
    }
    if p.retention.is_some() {
        d.push((
            "retention.grace",
            format!("{}h", crate::repo::prune::DEFAULT_GRACE_SECS / 3600),
        ));
    }
    d.push(("limits.bandwidth", "unlimited".into()));
    d
}

/// Every resolved setting of the run, sorted by key: the plan's values (secrets are never in a
/// plan), the templates behind rendered values (`templates.backup.name`), and the defaults of
/// the settings a reviewer checks (marked [`DEFAULT_MARK`]).
pub fn all(run: &PlannedRun) -> Vec<Setting> {
    let mut plan = serde_json::to_value(&run.plan).unwrap_or(Value::Null);
    if let Some(m) = plan.as_object_mut() {
        m.remove("version");
        m.remove("description");
    }
    // Hosts written as plain names become tables, so every host is keyed by its name.
    if let Some(h) = plan.pointer_mut("/cluster/hosts") {
        let specs: Vec<_> = run.plan.cluster.hosts.iter().map(|e| e.spec()).collect();
        *h = serde_json::to_value(specs).unwrap_or(Value::Null);
    }
    let mut out = Vec::new();
    flatten("", &plan, &mut out);
    for (k, t) in &run.templates {
        push(&mut out, format!("templates.{k}"), t.clone());
    }
    for (k, v) in defaults(run) {
        if !out
            .iter()
            .any(|s| s.key == k || s.key.starts_with(&format!("{k}.")))
        {
            push(&mut out, k.to_owned(), format!("{v}{DEFAULT_MARK}"));
        }
    }
    for s in &mut out {
        if s.key == "restore.source"
            && (s.value == "latest" || s.value.starts_with("latest-before:"))
        {
            s.value.push_str(RESOLVED_AT_APPLY);
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

fn matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(p) => key == p || key.strip_prefix(p).is_some_and(|r| r.starts_with('.')),
        None => key == pattern,
    }
}

/// The settings a reviewer must check, in a fixed order; a long group (a host map of hundreds
/// of hosts) ends in one `… N more` line.
pub fn reviewed(run: &PlannedRun) -> Vec<Setting> {
    let all = all(run);
    let mut out = Vec::new();
    for pattern in REVIEWED {
        let group: Vec<&Setting> = all.iter().filter(|s| matches(pattern, &s.key)).collect();
        let more = group.len().saturating_sub(GROUP_LINES);
        out.extend(group.into_iter().take(GROUP_LINES).cloned());
        if more > 0 {
            push(
                &mut out,
                (*pattern).to_owned(),
                format!("… and {more} more (see the JSON plan)"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> PlannedRun {
        crate::graph::compile_source("t.toml", src, "2026-11-25T03:00:00Z".parse().unwrap())
            .unwrap()
    }

    const BACKUP: &str = r#"
version = 1
kind = "backup"
[cluster]
name = "c"
hosts = ["a", { name = "b", address = "10.0.0.2" }]
[storage]
url = "s3://bucket/p"
region = "eu-west-1"
[backup]
name = '{{ cluster }}-{{ now | strftime("%Y%m%d") }}'
include = ["shop.*"]
[retention]
keep_daily = 14
"#;

    fn get<'a>(s: &'a [Setting], key: &str) -> Option<&'a str> {
        s.iter().find(|x| x.key == key).map(|x| x.value.as_str())
    }

    #[test]
    fn settings_are_resolved_with_defaults_templates_and_hosts_by_name() {
        let all = all(&run(BACKUP));
        assert_eq!(get(&all, "backup.include"), Some("shop.*"));
        assert_eq!(get(&all, "backup.name"), Some("c-20261125"));
        assert_eq!(
            get(&all, "templates.backup.name"),
            Some(r#"{{ cluster }}-{{ now | strftime("%Y%m%d") }}"#)
        );
        assert_eq!(get(&all, "backup.codec"), Some("zstd:3 (default)"));
        assert_eq!(get(&all, "retention.keep_daily"), Some("14"));
        assert_eq!(get(&all, "retention.grace"), Some("24h (default)"));
        assert_eq!(get(&all, "cluster.hosts"), Some("a, b"));
        assert_eq!(get(&all, "cluster.hosts[b].address"), Some("10.0.0.2"));
        assert_eq!(
            get(&all, "storage.checksum"),
            Some("auto: CRC32 on every request (default)")
        );
        let keys: Vec<&str> = all.iter().map(|s| s.key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let shown = reviewed(&run(BACKUP));
        assert_eq!(shown[0].key, "kind");
        assert!(shown.iter().any(|s| s.key == "storage.url"));
        assert!(!shown.iter().any(|s| s.key.starts_with("connection.")));
    }

    #[test]
    fn latest_is_resolved_at_apply_and_long_groups_are_cut() {
        let map: Vec<String> = (0..40)
            .map(|i| format!("\"s{i:02}\" = \"n{i:02}\""))
            .collect();
        let hosts: Vec<String> = (0..40).map(|i| format!("\"n{i:02}\"")).collect();
        let src = format!(
            "version = 1\nkind = \"restore\"\n[cluster]\nname = \"c\"\nhosts = [{}]\n[storage]\nurl = \"file:///b\"\n[restore]\nsource = \"latest\"\n[restore.host_map]\n{}\n",
            hosts.join(","),
            map.join("\n")
        );
        let shown = reviewed(&run(&src));
        assert_eq!(
            get(&shown, "restore.source"),
            Some("latest (resolved at apply)")
        );
        let group = shown
            .iter()
            .filter(|s| s.key.starts_with("restore.host_map"))
            .count();
        assert_eq!(group, GROUP_LINES + 1);
        assert!(
            shown
                .iter()
                .any(|s| s.value == "… and 28 more (see the JSON plan)")
        );
    }
}
