//! Legacy `cassandra_backups` buckets: parses the old tool's object keys
//! (`<base>/<name>/<host>/<absolute path>.lzo`) and its `manifest.json` into what a restore
//! needs, so a listing of `<base>/<name>/` becomes per-host file lists. Used by the restore's
//! `legacy:<base>/<name>` source (src/tasks/restore_source/legacy.rs; docs/migration.md).

use super::keys::{check_relative, check_segment};
use crate::cassandra::sstable::SstableName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a legacy object came from on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacySource {
    /// `<ks>/<table>-<id>/snapshots/<name>/[.<index>/]<file>`
    Snapshot,
    /// `<ks>/<table>-<id>/backups/[.<index>/]<file>` (incremental backups of that day)
    Backups,
}

/// One SSTable component object of a legacy backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyObject {
    /// The store key, as listed.
    pub key: String,
    /// The host string exactly as the old tool wrote it.
    pub host: String,
    pub keyspace: String,
    pub table: String,
    /// Table id (32 hex digits).
    pub id: String,
    /// Component file name without `.lzo`, under `.<index>/` for secondary index sstables.
    pub file: String,
    pub source: LegacySource,
    /// Size of the stored (lzop-compressed) object, from the listing.
    #[serde(default)]
    pub stored_size: u64,
}

impl LegacyObject {
    /// Destination relative to a staging root: `<ks>/<table>-<id>/[.<index>/]<file>`.
    pub fn staged_path(&self) -> String {
        format!("{}/{}", self.folder(), self.file)
    }

    /// The table folder relative to a staging root: `<ks>/<table>-<id>`.
    pub fn folder(&self) -> String {
        format!("{}/{}-{}", self.keyspace, self.table, self.id)
    }

    /// Whether the key has the double-slash form `<host>//var/lib/...`.
    pub fn double_slash(&self) -> bool {
        self.key.contains("//")
    }
}

/// Why a listed key is not an SSTable component of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacySkip {
    #[error("`{0}` is not below the snapshot prefix")]
    OutsidePrefix(String),
    #[error("`{0}` is snapshot metadata (manifest.json, ring, schema*.cql)")]
    Metadata(String),
    #[error("`{key}` is Cassandra's {file} of the snapshot of {folder}")]
    TableMetadata {
        key: String,
        host: String,
        /// `<ks>/<table>-<id>`
        folder: String,
        file: String,
    },
    #[error("`{0}` belongs to snapshot `{1}`, not to the one restored")]
    OtherSnapshot(String, String),
    #[error("`{0}` is not an lzop-compressed sstable component of a table folder: {1}")]
    NotAComponent(String, String),
}

/// `snapshots/<name>/` files Cassandra writes beside the sstables (not restored).
const SNAPSHOT_METADATA: &[&str] = &["manifest.json", "schema.cql"];

/// Collapses runs of `/` into one (the old tool's keys may hold `//`; boto collapsed them).
pub fn collapse_slashes(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Parses one listed key under `prefix` (`<base>/<name>`, a trailing `/` is ignored). Snapshot
/// files must sit in `snapshots/<name>/`, `<name>` being the last segment of the prefix.
pub fn parse_key(prefix: &str, key: &str) -> Result<LegacyObject, LegacySkip> {
    let prefix = prefix.trim_end_matches('/');
    let name = prefix.rsplit('/').next().unwrap_or(prefix);
    let rest = key
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| LegacySkip::OutsidePrefix(key.to_string()))?;
    // manifest.json, ring, schema.cql, schema_<ks>.cql live directly under the prefix (also
    // in the uncollapsed `<prefix>//manifest.json` form).
    if !rest.trim_start_matches('/').contains('/') {
        return Err(LegacySkip::Metadata(key.to_string()));
    }
    let not = |why: &str| LegacySkip::NotAComponent(key.to_string(), why.to_string());
    let (host, abs) = rest.split_once('/').ok_or_else(|| not("no host"))?;
    if host.is_empty() {
        return Err(not("empty host"));
    }
    // Tolerate `<host>//var/lib/...` (the double-slash form).
    let abs = abs.trim_start_matches('/');
    check_relative(abs).map_err(|e| not(&e.to_string()))?;
    let abs = abs
        .strip_suffix(".lzo")
        .ok_or_else(|| not("no .lzo suffix"))?;
    let segs: Vec<&str> = abs.split('/').collect();
    // The file, optionally below a `.<index>/` folder, ends the key.
    let file_at = match segs.len() {
        n if n >= 2 && segs[n - 2].starts_with('.') && segs[n - 2].len() > 1 => n - 2,
        n => n - 1,
    };
    let (source, table_at) = match file_at.checked_sub(1).map(|i| segs[i]) {
        Some("backups") => (LegacySource::Backups, file_at - 1),
        Some(tag) if file_at >= 2 && segs[file_at - 2] == "snapshots" => {
            if tag != name {
                return Err(LegacySkip::OtherSnapshot(key.to_string(), tag.to_string()));
            }
            (LegacySource::Snapshot, file_at - 2)
        }
        _ => {
            return Err(not(
                "neither in snapshots/<name>/ nor in backups/ of a table folder",
            ));
        }
    };
    if table_at < 2 {
        return Err(not("no keyspace/table folder"));
    }
    let keyspace = segs[table_at - 2];
    let folder = segs[table_at - 1];
    let (table, id) = folder
        .rsplit_once('-')
        .filter(|(t, id)| {
            !t.is_empty() && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .ok_or_else(|| not("table folder is not <table>-<32 hex id>"))?;
    check_segment(keyspace).map_err(|e| not(&e.to_string()))?;
    let base_name = segs[segs.len() - 1];
    if SNAPSHOT_METADATA.contains(&base_name) && file_at == segs.len() - 1 {
        return Err(LegacySkip::TableMetadata {
            key: key.to_string(),
            host: host.to_string(),
            folder: format!("{keyspace}/{folder}"),
            file: base_name.to_string(),
        });
    }
    if SstableName::parse(base_name).is_err() {
        return Err(not("not an sstable component name"));
    }
    Ok(LegacyObject {
        key: key.to_string(),
        host: host.to_string(),
        keyspace: keyspace.to_string(),
        table: table.to_string(),
        id: id.to_string(),
        file: segs[file_at..].join("/"),
        source,
        stored_size: 0,
    })
}

/// The files of one host, after choosing among duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyHost {
    /// One object per staged path, sorted by staged path.
    pub objects: Vec<LegacyObject>,
    /// Objects not used because another object stages the same file: a `backups/` copy of a
    /// snapshot sstable (the old tool uploads those again), or the double-slash form of a key
    /// that also exists in the single-slash form.
    pub duplicates: Vec<LegacyObject>,
    /// `<ks>/<table>-<id>` -> key of the snapshot's `schema.cql` (Cassandra 3.0+ writes it
    /// with `WITH ID`).
    pub schemas: BTreeMap<String, String>,
}

/// A parsed listing of `<base>/<name>/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyListing {
    /// The `manifest.json` key as stored (single- or double-slash form), if any.
    pub manifest_key: Option<String>,
    pub hosts: BTreeMap<String, LegacyHost>,
    /// Keys that are neither metadata nor components of this snapshot.
    pub skipped: Vec<LegacySkip>,
}

/// Groups listed `(key, stored size)` pairs by host: metadata keys are skipped (the manifest
/// key is kept), anything else unexpected is returned as a skip reason. Of several objects
/// staging the same file, a snapshot object wins over a `backups/` one and a single-slash key
/// over a double-slash one.
pub fn group_by_host(prefix: &str, keys: impl IntoIterator<Item = (String, u64)>) -> LegacyListing {
    let prefix = prefix.trim_end_matches('/');
    let manifest = format!("{prefix}/manifest.json");
    let mut out = LegacyListing::default();
    let mut by_host: BTreeMap<String, BTreeMap<String, LegacyObject>> = BTreeMap::new();
    for (key, size) in keys {
        match parse_key(prefix, &key) {
            Ok(mut o) => {
                o.stored_size = size;
                let files = by_host.entry(o.host.clone()).or_default();
                let host = out.hosts.entry(o.host.clone()).or_default();
                let rank = |o: &LegacyObject| (o.source == LegacySource::Backups, o.double_slash());
                match files.get(&o.staged_path()) {
                    Some(old) if rank(old) <= rank(&o) => host.duplicates.push(o),
                    Some(_) => {
                        if let Some(old) = files.insert(o.staged_path(), o) {
                            host.duplicates.push(old);
                        }
                    }
                    None => {
                        files.insert(o.staged_path(), o);
                    }
                }
            }
            Err(LegacySkip::TableMetadata {
                key,
                host,
                folder,
                file,
            }) => {
                if file == "schema.cql" {
                    let schemas = &mut out.hosts.entry(host).or_default().schemas;
                    if schemas.get(&folder).is_none_or(|k| k.contains("//")) {
                        schemas.insert(folder, key);
                    }
                }
            }
            Err(LegacySkip::Metadata(k)) => {
                if collapse_slashes(&k) == manifest
                    && out.manifest_key.as_ref().is_none_or(|m| m.contains("//"))
                {
                    out.manifest_key = Some(k);
                }
            }
            Err(e) => out.skipped.push(e),
        }
    }
    for (host, files) in by_host {
        out.hosts.entry(host).or_default().objects = files.into_values().collect();
    }
    out
}

/// `<base>/<name>/manifest.json` of the old tool (a Python 2 `json.dumps`; key order and
/// extra keys do not matter). It lists no files, sizes or checksums.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LegacyManifest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub base_path: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `null` when the old backup took every keyspace.
    #[serde(default)]
    pub keyspaces: Option<Vec<String>>,
    /// `""` unless `--table` was given.
    #[serde(default)]
    pub table: Option<String>,
}

/// A malformed `legacy:` source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{spec}` is not `<base>/<name>`: {reason}")]
pub struct BadLegacySpec {
    pub spec: String,
    pub reason: String,
}

/// The prefix of a legacy source in `restore.source`.
pub const PREFIX: &str = "legacy:";

/// The `<base>/<name>` of a legacy source, if `source` (a `restore.source`) is one: the one
/// test of the prefix, for the plan checks, the compiler and the restore.
pub fn source_spec(source: &str) -> Option<&str> {
    source.strip_prefix(PREFIX)
}

/// Splits the part after `legacy:` into the base path and the snapshot name: the name is the
/// last segment, the base (the old `--s3-base-path`) everything before it.
pub fn parse_spec(spec: &str) -> Result<(String, String), BadLegacySpec> {
    let bad = |reason: &str| BadLegacySpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = spec.trim_end_matches('/');
    check_relative(trimmed).map_err(|e| bad(e.reason))?;
    let (base, name) = trimmed
        .rsplit_once('/')
        .ok_or_else(|| bad("both the base path and the snapshot name are needed"))?;
    Ok((base.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5f2f0a00e8e511f1950202fc00000001";

    #[test]
    fn parses_snapshot_backups_index_and_double_slash_keys() {
        let k = format!(
            "webapp_prod/20161223/cass01.example.com/var/lib/cassandra/data/ks/users-{ID}/snapshots/20161223/mc-12-big-Data.db.lzo"
        );
        let o = parse_key("webapp_prod/20161223", &k).unwrap();
        assert_eq!(
            (
                o.host.as_str(),
                o.keyspace.as_str(),
                o.table.as_str(),
                o.id.as_str()
            ),
            ("cass01.example.com", "ks", "users", ID)
        );
        assert_eq!(o.source, LegacySource::Snapshot);
        assert_eq!(o.staged_path(), format!("ks/users-{ID}/mc-12-big-Data.db"));
        assert!(!o.double_slash());

        let k =
            format!("b/n/h1//var/lib/cassandra/data/ks/t_1-{ID}/backups/mc-15-big-Index.db.lzo");
        let o = parse_key("b/n/", &k).unwrap();
        assert_eq!((o.host.as_str(), o.table.as_str()), ("h1", "t_1"));
        assert_eq!(o.source, LegacySource::Backups);
        assert_eq!(o.file, "mc-15-big-Index.db");
        assert!(o.double_slash());

        let k = format!("b/n/h1/d/ks/t-{ID}/snapshots/n/.t_idx/nb-2-big-Data.db.lzo");
        let o = parse_key("b/n", &k).unwrap();
        assert_eq!(
            o.staged_path(),
            format!("ks/t-{ID}/.t_idx/nb-2-big-Data.db")
        );
        let k = format!("b/n/h1/d/ks/t-{ID}/backups/.t_idx/nb-3-big-TOC.txt.lzo");
        assert_eq!(
            parse_key("b/n", &k).unwrap().file,
            ".t_idx/nb-3-big-TOC.txt"
        );
    }

    #[test]
    fn skips_metadata_and_refuses_odd_keys() {
        for m in [
            "manifest.json",
            "ring",
            "schema.cql",
            "schema_ks.cql",
            "/manifest.json",
        ] {
            assert!(matches!(
                parse_key("b/n", &format!("b/n/{m}")),
                Err(LegacySkip::Metadata(_))
            ));
        }
        for m in ["manifest.json", "schema.cql"] {
            assert!(matches!(
                parse_key("b/n", &format!("b/n/h/d/ks/t-{ID}/snapshots/n/{m}.lzo")),
                Err(LegacySkip::TableMetadata { host, folder, file, .. })
                    if host == "h" && folder == format!("ks/t-{ID}") && file == m
            ));
        }
        assert!(matches!(
            parse_key("b/n", &format!("b/n/h/d/ks/t-{ID}/snapshots/other/nb-1-big-Data.db.lzo")),
            Err(LegacySkip::OtherSnapshot(_, t)) if t == "other"
        ));
        for bad in [
            format!("b/n/h/data/ks/users-{ID}/snapshots/n/nb-1-big-Data.db"),
            format!("b/n/h/data/ks/users-{ID}/nb-1-big-Data.db.lzo"),
            "b/n/h/data/ks/users/snapshots/n/nb-1-big-Data.db.lzo".to_string(),
            format!("b/n/h/data/../ks/users-{ID}/backups/nb-1-big-Data.db.lzo"),
            format!("b/n/h/data/ks/users-{ID}/backups/../nb-1-big-Data.db.lzo"),
            format!("b/n//data/ks/users-{ID}/backups/nb-1-big-Data.db.lzo"),
            format!("b/n/h/data/ks/users-{ID}/backups/notes.txt.lzo"),
            format!("b/n/h/users-{ID}/backups/nb-1-big-Data.db.lzo"),
            "c/n/h/x.lzo".to_string(),
        ] {
            assert!(parse_key("b/n", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_by_host_and_prefers_snapshot_and_single_slash_copies() {
        let k = |host: &str, sep: &str, src: &str, f: &str| {
            (format!("b/n/{host}{sep}d/ks/t-{ID}/{src}/{f}.lzo"), 10)
        };
        let l = group_by_host(
            "b/n",
            [
                ("b/n/manifest.json".to_string(), 5),
                k("h1", "/", "backups", "nb-1-big-Data.db"),
                k("h1", "/", "snapshots/n", "nb-1-big-Data.db"),
                k("h1", "/", "backups", "nb-2-big-Data.db"),
                k("h2", "//", "snapshots/n", "nb-1-big-Data.db"),
                k("h2", "/", "snapshots/n", "nb-1-big-Data.db"),
                k("h2", "//", "snapshots/n", "schema.cql"),
                k("h2", "/", "snapshots/n", "manifest.json"),
                ("b/n/h2/junk".to_string(), 1),
            ],
        );
        assert_eq!(l.manifest_key.as_deref(), Some("b/n/manifest.json"));
        assert_eq!(l.hosts.keys().collect::<Vec<_>>(), ["h1", "h2"]);
        let h1 = &l.hosts["h1"];
        assert_eq!(h1.duplicates.len(), 1);
        assert_eq!(
            h1.objects
                .iter()
                .map(|o| (o.file.as_str(), o.source))
                .collect::<Vec<_>>(),
            [
                ("nb-1-big-Data.db", LegacySource::Snapshot),
                ("nb-2-big-Data.db", LegacySource::Backups)
            ]
        );
        let h2 = &l.hosts["h2"];
        assert_eq!((h2.duplicates.len(), h2.objects.len()), (1, 1));
        assert!(!h2.objects[0].double_slash());
        assert_eq!(h2.objects[0].stored_size, 10);
        assert_eq!(
            h2.schemas.get(&format!("ks/t-{ID}")),
            Some(&format!("b/n/h2//d/ks/t-{ID}/snapshots/n/schema.cql.lzo"))
        );
        assert_eq!(l.skipped.len(), 1);
        let l = group_by_host("b/n", [("b/n//manifest.json".to_string(), 5)]);
        assert_eq!(l.manifest_key.as_deref(), Some("b/n//manifest.json"));
    }

    #[test]
    fn specs_and_manifests() {
        assert_eq!(
            parse_spec("webapp_prod/20161223").unwrap(),
            ("webapp_prod".into(), "20161223".into())
        );
        assert_eq!(parse_spec("a/b/n/").unwrap(), ("a/b".into(), "n".into()));
        for bad in ["", "n", "/b/n", "b//n", "b/../n", "b/./n"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
        let m: LegacyManifest = serde_json::from_str(
            r#"{"table": "", "hosts": ["c1", "c2"], "keyspaces": null, "name": "20161223", "base_path": "webapp_prod"}"#,
        )
        .unwrap();
        assert_eq!(m.hosts, ["c1", "c2"]);
        assert_eq!(m.keyspaces, None);
        assert_eq!(collapse_slashes("a//b///c/"), "a/b/c/");
    }
}
