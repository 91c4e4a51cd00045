//! `[restore]`: table patterns, `host_map` onto known hosts, table ids, the owner,
//! `[restore.loader]` and `delta` only with their methods, and the source (`latest`,
//! `latest-before:TIME`, a backup name or `legacy:<base>/<name>`).

use super::cluster::HostNames;
use super::{Ctx, Doc, I, K, check_globs};
use crate::plan::diag::Sink;
use crate::plan::model::{HostSpec, RestoreConfig, RestoreMethod};
use crate::plan::template::{Vars, valid_backup_name};
use std::collections::BTreeMap;

/// Checks `[restore]`; returns the rendered source.
pub fn check(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    r: &RestoreConfig,
    vars: &Vars,
    hosts: &HostNames<'_>,
    specs: &[HostSpec],
) -> Option<String> {
    let doc = ctx.doc;
    check_globs(sink, doc, "restore", "include", &r.include);
    check_globs(sink, doc, "restore", "exclude", &r.exclude);
    let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
    for (src, dst) in &r.host_map {
        let path = [K("restore"), K("host_map"), K(src.as_str())];
        if !hosts.contains(dst) {
            sink.error(
                doc.value(&path),
                format!("unknown target host `{dst}` in `host_map`"),
                "not a host of this cluster",
                Some(hosts.unknown_help(dst)),
            );
        } else if let Some(prev) = targets.insert(dst.as_str(), src.as_str())
            && r.method != RestoreMethod::Loader
        {
            sink.error(
                doc.value(&path),
                format!("hosts `{prev}` and `{src}` both map to `{dst}`"),
                "mapped twice",
                Some(
                    "with this method each target host receives one source host's data; \
                     method = \"loader\" streams several source hosts from one target"
                        .into(),
                ),
            );
        }
    }
    for (k, v) in &r.table_ids {
        let path = [K("restore"), K("table_ids"), K(k.as_str())];
        if !k.contains('.') {
            sink.error(
                doc.key(&path),
                format!("`{k}` is not `keyspace.table`"),
                "not a table name",
                None,
            );
        }
        let id = v.replace('-', "");
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            sink.error(
                doc.value(&path),
                format!("`{v}` is not a table id"),
                "not 32 hex digits",
                Some(
                    "table ids are the 32 hex digits after the `-` in the table folder name".into(),
                ),
            );
        }
    }
    if let Some(o) = &r.owner
        && (o.is_empty() || o.contains(char::is_whitespace))
    {
        sink.error(
            doc.value(&[K("restore"), K("owner")]),
            format!("invalid owner `{o}`"),
            "invalid owner",
            Some("write `user` or `user:group`".into()),
        );
    }
    check_loader(sink, doc, r);
    check_delta(sink, doc, r);
    check_target_names(sink, doc, r);
    check_dc_map(sink, doc, r, specs);
    for (i, dc) in r.datacenters.iter().enumerate() {
        if dc.trim().is_empty() {
            sink.error(
                doc.value(&[K("restore"), K("datacenters"), I(i)]),
                "empty data center name".to_string(),
                "empty",
                Some("name data centers as `nodetool status` shows them".into()),
            );
        }
    }
    if r.repair_parallelism == Some(0) {
        sink.error(
            doc.value(&[K("restore"), K("repair_parallelism")]),
            "`repair_parallelism` must be at least 1".to_string(),
            "zero",
            Some(
                "1 repairs one host after the other; N repairs N hosts' token ranges at once"
                    .into(),
            ),
        );
    }
    let path = [K("restore"), K("source")];
    let span = doc.value(&path);
    let src = ctx.render(sink, &path, &r.source, vars)?;
    if src == "latest" {
        return Some(src);
    }
    if let Some(t) = src.strip_prefix("latest-before:") {
        if t.parse::<jiff::Timestamp>().is_err() {
            sink.error(
                span,
                format!("`{t}` is not an RFC 3339 time"),
                "bad time",
                Some("write e.g. `latest-before:2026-03-01T00:00:00Z`".into()),
            );
            return None;
        }
        return Some(src);
    }
    if let Some(spec) = crate::repo::legacy::source_spec(&src) {
        check_legacy_scope(sink, doc, r);
        if let Err(e) = crate::repo::legacy::parse_spec(spec) {
            sink.error(
                span,
                format!("invalid legacy source: {e}"),
                "invalid legacy source",
                Some("write `legacy:<base>/<name>`: the old tool's --s3-base-path (relative to storage.url) and the snapshot name, e.g. `legacy:webapp_prod/20161223`".into()),
            );
            return None;
        }
        return Some(src);
    }
    if !valid_backup_name(&src) {
        sink.error(
            span,
            format!("`{src}` is not a backup name"),
            "invalid source",
            Some("use `latest`, `latest-before:TIME` (RFC 3339), a backup name as listed by `cbk list`, or `legacy:<base>/<name>` for a cassandra_backups snapshot".into()),
        );
        return None;
    }
    Some(src)
}

/// A cassandra_backups snapshot records hosts, not their data centers nor the keyspace
/// definitions, so `datacenters` and `dc_map` cannot apply to it: refused rather than ignored.
fn check_legacy_scope(sink: &mut Sink, doc: &Doc<'_>, r: &RestoreConfig) {
    for (key, set) in [
        ("dc_map", !r.dc_map.is_empty()),
        ("datacenters", !r.datacenters.is_empty()),
    ] {
        if set {
            sink.error(
                doc.key(&[K("restore"), K(key)]),
                format!(
                    "`{key}` needs a cbk backup: a cassandra_backups snapshot records no data \
                     centers or keyspace definitions"
                ),
                "not for a legacy source",
                Some(format!(
                    "remove `{key}` and choose the hosts with `restore.host_map` (old host -> \
                     target); create the keyspaces with the replication you want before restoring"
                )),
            );
        }
    }
}

/// `dc_map`: non-empty names, backed-up data centers the restore selects, each onto a data
/// center the plan's hosts are in (their `dc`), no two onto the same one.
fn check_dc_map(sink: &mut Sink, doc: &Doc<'_>, r: &RestoreConfig, specs: &[HostSpec]) {
    let plan_dcs: Vec<&str> = specs.iter().filter_map(|h| h.dc.as_deref()).collect();
    let mut onto: BTreeMap<&str, &str> = BTreeMap::new();
    for (from, to) in &r.dc_map {
        let path = [K("restore"), K("dc_map"), K(from.as_str())];
        if from.trim().is_empty() {
            sink.error(
                doc.key(&path),
                "empty data center name in `dc_map`".to_string(),
                "empty",
                Some("name backed-up data centers as the catalog records them (`cbk ls`)".into()),
            );
            continue;
        }
        if !r.datacenters.is_empty() && !r.datacenters.contains(from) {
            sink.error(
                doc.key(&path),
                format!("data center `{from}` is mapped but not restored"),
                "not in `datacenters`",
                Some(format!(
                    "`datacenters` restores only {}: add `{from}` there, or remove this entry",
                    r.datacenters.join(", ")
                )),
            );
        }
        if plan_dcs.is_empty() {
            sink.error(
                doc.value(&path),
                "`dc_map` needs the data center of every target host".to_string(),
                "no plan host has a `dc`",
                Some(
                    "give the hosts their data center: `hosts = [{ name = \"b1\", dc = \"dcX\" }, …]`"
                        .into(),
                ),
            );
            continue;
        }
        if !plan_dcs.contains(&to.as_str()) {
            let help = match crate::plan::diag::suggest(to, plan_dcs.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? the plan's hosts are in {}",
                    dedup(&plan_dcs)
                ),
                None => format!("the plan's hosts are in {}", dedup(&plan_dcs)),
            };
            sink.error(
                doc.value(&path),
                format!("no host of this plan is in data center `{to}`"),
                "unknown target data center",
                Some(help),
            );
        } else if let Some(prev) = onto.insert(to.as_str(), from.as_str()) {
            sink.error(
                doc.value(&path),
                format!("data centers `{prev}` and `{from}` both map to `{to}`"),
                "mapped twice",
                Some(
                    "a keyspace's replication names each data center once: map every backed-up \
                     data center onto its own target data center"
                        .into(),
                ),
            );
        }
    }
}

fn dedup(v: &[&str]) -> String {
    let set: std::collections::BTreeSet<&str> = v.iter().copied().collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}

/// `delta = true`: only for `restart`, the one method that replaces the live files (the others
/// add the backup beside them, so there is nothing to keep in place).
fn check_delta(sink: &mut Sink, doc: &Doc<'_>, r: &RestoreConfig) {
    if r.delta && r.method != RestoreMethod::Restart {
        let method = serde_json::to_value(r.method)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        sink.error(
            doc.value(&[K("restore"), K("delta")]),
            format!("`delta = true` does not apply to method `{method}`"),
            "delta needs method = \"restart\"",
            Some(format!(
                "`{method}` adds the backed-up sstables beside the live ones instead of replacing \
                 them, so no live file can be kept in place: remove `delta`, or use \
                 `method = \"restart\"`"
            )),
        );
    }
}

/// `target_keyspace` / `target_table`: Cassandra names, only for the methods that add the
/// backup beside the live data through a load by name (`import`, `loader`), and a target table
/// only for exactly one selected table.
fn check_target_names(sink: &mut Sink, doc: &Doc<'_>, r: &RestoreConfig) {
    for (key, value) in [
        ("target_keyspace", &r.target_keyspace),
        ("target_table", &r.target_table),
    ] {
        let Some(name) = value else { continue };
        let span = doc.value(&[K("restore"), K(key)]);
        if name.is_empty()
            || name.len() > 48
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            sink.error(
                span,
                format!("`{name}` is not a Cassandra {} name", &key[7..]),
                "invalid name",
                Some("Cassandra names are 1-48 characters from `A-Z a-z 0-9 _`".into()),
            );
            continue;
        }
        if !matches!(r.method, RestoreMethod::Import | RestoreMethod::Loader) {
            let method = serde_json::to_value(r.method)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            sink.error(
                span,
                format!("`{key}` does not apply to method `{method}`"),
                "needs method = \"import\" or \"loader\"",
                Some(format!(
                    "`{method}` puts the backed-up files into the live folders of the table they \
                     came from; restoring beside the live data under another name loads them by \
                     name: use `method = \"import\"` (4.0+) or `method = \"loader\"`"
                )),
            );
            continue;
        }
        if key == "target_table" && !(r.include.len() == 1 && exact_table_name(&r.include[0])) {
            sink.error(
                span,
                "`target_table` needs exactly one table selected".to_string(),
                "one table only",
                Some(
                    "it renames one table: set `include = [\"keyspace.table\"]` (no globs)".into(),
                ),
            );
        }
    }
}

/// Whether `pattern` names one `keyspace.table` (no glob characters).
fn exact_table_name(pattern: &str) -> bool {
    !pattern.contains(['*', '?', '[', ']', '{', '}', '!'])
        && pattern
            .split_once('.')
            .is_some_and(|(k, t)| !k.is_empty() && !t.is_empty() && !t.contains('.'))
}

/// `[restore.loader]`: only with `method = "loader"`, and well-formed contact points.
fn check_loader(sink: &mut Sink, doc: &Doc<'_>, r: &RestoreConfig) {
    let Some(l) = &r.loader else { return };
    if r.method != RestoreMethod::Loader {
        sink.error(
            doc.key(&[K("restore"), K("loader")]),
            "`[restore.loader]` is set but the method is not `loader`".to_string(),
            "unused settings",
            Some("set `method = \"loader\"`, or remove `[restore.loader]`: one restore uses one method".into()),
        );
    }
    for (i, n) in l.nodes.iter().enumerate() {
        let (host, port) = match n.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (n.as_str(), None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
            sink.error(
                doc.value(&[K("restore"), K("loader"), K("nodes"), I(i)]),
                format!("`{n}` is not a contact point"),
                "not `host` or `host:port`",
                Some(
                    "write a host name or address, optionally with `:PORT` (native transport)"
                        .into(),
                ),
            );
        }
    }
    if let Some(a) = &l.auth_provider
        && (a.is_empty()
            || !a
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._$".contains(&b)))
    {
        sink.error(
            doc.value(&[K("restore"), K("loader"), K("auth_provider")]),
            format!("`{a}` is not a Java class name"),
            "not a class name",
            Some(
                "e.g. `com.example.FileAuthProvider` (a class with a no-argument constructor)"
                    .into(),
            ),
        );
    }
}
