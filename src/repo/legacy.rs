//! Legacy `cassandra_backups` buckets: parses the old tool's object keys
//! (`<base>/<name>/<host>/<absolute path>.lzo`) into what a restore needs, so a listing of
//! `<base>/<name>/` can become per-host file lists. Not wired into restore yet (see
//! docs/restore.md).

use super::keys::check_relative;
use std::collections::BTreeMap;

/// Where a legacy object came from on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacySource {
    /// `<ks>/<table>-<id>/snapshots/<name>/<file>`
    Snapshot,
    /// `<ks>/<table>-<id>/backups/<file>`
    Backups,
}

/// One SSTable component object of a legacy backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyObject {
    /// The store key, as listed.
    pub key: String,
    /// The host string exactly as the old tool wrote it.
    pub host: String,
    pub keyspace: String,
    pub table: String,
    /// Table id (32 hex digits).
    pub id: String,
    /// Component file name, without `.lzo`.
    pub file: String,
    pub source: LegacySource,
}

impl LegacyObject {
    /// Destination relative to a staging root: `<ks>/<table>-<id>/<file>`.
    pub fn staged_path(&self) -> String {
        format!("{}/{}-{}/{}", self.keyspace, self.table, self.id, self.file)
    }
}

/// Why a listed key is not an SSTable component of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacySkip {
    #[error("`{0}` is not below the snapshot prefix")]
    OutsidePrefix(String),
    #[error("`{0}` is snapshot metadata (manifest.json, ring, schema*.cql)")]
    Metadata(String),
    #[error("`{0}` is not an lzop-compressed sstable component of a table folder: {1}")]
    NotAComponent(String, String),
}

/// Parses one listed key under `prefix` (`<base>/<name>`, without a trailing `/`).
pub fn parse_key(prefix: &str, key: &str) -> Result<LegacyObject, LegacySkip> {
    let prefix = prefix.trim_end_matches('/');
    let rest = key
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| LegacySkip::OutsidePrefix(key.to_string()))?;
    if !rest.contains('/') {
        // manifest.json, ring, schema.cql, schema_<ks>.cql live directly under the prefix.
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
    let (source, table_at) = if let Some(i) = segs.iter().rposition(|s| *s == "snapshots") {
        if i + 3 != segs.len() {
            return Err(not("snapshot files sit in snapshots/<name>/"));
        }
        (LegacySource::Snapshot, i)
    } else if let Some(i) = segs.iter().rposition(|s| *s == "backups") {
        if i + 2 != segs.len() {
            return Err(not("incremental files sit directly in backups/"));
        }
        (LegacySource::Backups, i)
    } else {
        return Err(not("neither snapshots/ nor backups/"));
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
    Ok(LegacyObject {
        key: key.to_string(),
        host: host.to_string(),
        keyspace: keyspace.to_string(),
        table: table.to_string(),
        id: id.to_string(),
        file: segs[segs.len() - 1].to_string(),
        source,
    })
}

/// Groups listed keys by host; metadata keys are skipped, anything else unexpected is returned
/// as a skip reason (for the restore's report).
pub fn group_by_host(
    prefix: &str,
    keys: impl IntoIterator<Item = String>,
) -> (BTreeMap<String, Vec<LegacyObject>>, Vec<LegacySkip>) {
    let mut hosts: BTreeMap<String, Vec<LegacyObject>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for key in keys {
        match parse_key(prefix, &key) {
            Ok(o) => hosts.entry(o.host.clone()).or_default().push(o),
            Err(LegacySkip::Metadata(_)) => {}
            Err(e) => skipped.push(e),
        }
    }
    (hosts, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5f2f0a00e8e511f1950202fc00000001";

    #[test]
    fn parses_snapshot_backups_and_double_slash_keys() {
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

        let k =
            format!("b/n/h1//var/lib/cassandra/data/ks/t_1-{ID}/backups/mc-15-big-Index.db.lzo");
        let o = parse_key("b/n/", &k).unwrap();
        assert_eq!((o.host.as_str(), o.table.as_str()), ("h1", "t_1"));
        assert_eq!(o.source, LegacySource::Backups);
        assert_eq!(o.file, "mc-15-big-Index.db");
    }

    #[test]
    fn skips_metadata_and_refuses_odd_keys() {
        for m in ["manifest.json", "ring", "schema.cql", "schema_ks.cql"] {
            assert!(matches!(
                parse_key("b/n", &format!("b/n/{m}")),
                Err(LegacySkip::Metadata(_))
            ));
        }
        for bad in [
            format!("b/n/h/data/ks/users-{ID}/snapshots/n/x.db"),
            format!("b/n/h/data/ks/users-{ID}/x.db.lzo"),
            "b/n/h/data/ks/users/snapshots/n/x.db.lzo".to_string(),
            format!("b/n/h/data/../ks/users-{ID}/backups/x.db.lzo"),
            format!("b/n//data/ks/users-{ID}/backups/x.db.lzo"),
            "c/n/h/x.lzo".to_string(),
        ] {
            assert!(parse_key("b/n", &bad).is_err(), "{bad}");
        }
        let (hosts, skipped) = group_by_host(
            "b/n",
            [
                "b/n/manifest.json".to_string(),
                format!("b/n/h1/d/ks/t-{ID}/backups/a-Data.db.lzo"),
                format!("b/n/h2/d/ks/t-{ID}/snapshots/n/a-Data.db.lzo"),
                "b/n/h2/junk".to_string(),
            ],
        );
        assert_eq!(hosts.keys().collect::<Vec<_>>(), ["h1", "h2"]);
        assert_eq!(skipped.len(), 1);
    }
}
