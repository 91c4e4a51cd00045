//! Object keys of the repository and the validation of every path read back from it.

use std::fmt;

/// Why a key or a path from a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe path `{path}` in backup metadata: {reason}")]
pub struct UnsafePath {
    pub path: String,
    pub reason: &'static str,
}

/// How a stored component is identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Immutable components: size and the sstable's Digest value (never re-read).
    Immutable { size: u64, digest: Option<u32> },
    /// Components Cassandra rewrites in place: size and a content hash.
    Content { size: u64, sha256_prefix: String },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Immutable {
                size,
                digest: Some(d),
            } => write!(f, "s{size}-d{d}"),
            Identity::Immutable { size, digest: None } => write!(f, "s{size}"),
            Identity::Content {
                size,
                sha256_prefix,
            } => write!(f, "s{size}-h{sha256_prefix}"),
        }
    }
}

/// Prefix of one table's components of one node.
pub fn table_prefix(host_id: &str, keyspace: &str, table_dir: &str) -> String {
    format!("nodes/{host_id}/sst/{keyspace}/{table_dir}/")
}

/// Key of one stored component. `rel` is the file's path relative to the table folder
/// (`nb-1-big-Data.db`, or `.idx/nb-1-big-Data.db` for an index sstable).
pub fn component_key(
    host_id: &str,
    keyspace: &str,
    table_dir: &str,
    rel: &str,
    identity: &Identity,
    codec_ext: &str,
) -> String {
    format!(
        "{}{rel}/{identity}{codec_ext}",
        table_prefix(host_id, keyspace, table_dir)
    )
}

/// Key of a node manifest.
pub fn node_manifest_key(host_id: &str, backup: &str) -> String {
    format!("nodes/{host_id}/manifests/{backup}.json")
}

/// Prefix of all node manifests of one node.
pub fn node_manifests_prefix(host_id: &str) -> String {
    format!("nodes/{host_id}/manifests/")
}

/// Key of a cluster manifest.
pub fn catalog_key(backup: &str) -> String {
    format!("catalog/{backup}.json")
}

/// Key of an index entry.
pub fn index_key(backup: &str) -> String {
    format!("index/{backup}.json")
}

/// Prefix of the catalogs.
pub const CATALOG_PREFIX: &str = "catalog/";

/// Prefix of the index.
pub const INDEX_PREFIX: &str = "index/";

/// Key of the repository's format marker.
pub const FORMAT_KEY: &str = "cbk-repository.json";

/// Key where probe results of a host are kept during a backup run.
pub fn probe_key(backup: &str, host: &str) -> String {
    format!("runs/{backup}/probe/{host}.json")
}

/// Prefix of a run's scratch objects.
pub fn run_prefix(backup: &str) -> String {
    format!("runs/{backup}/")
}

/// Prefix of the per-table upload results of a host.
pub fn parts_prefix(backup: &str, host: &str) -> String {
    format!("runs/{backup}/parts/{host}/")
}

/// Key of one table's upload results.
pub fn part_key(backup: &str, host: &str, keyspace: &str, table: &str) -> String {
    format!("{}{keyspace}.{table}.json", parts_prefix(backup, host))
}

/// Checks a relative path read from backup metadata before it is joined to a local folder:
/// no absolute paths, no `..`, no empty or `.` segments, no NUL or backslash.
pub fn check_relative(path: &str) -> Result<(), UnsafePath> {
    let bad = |reason| {
        Err(UnsafePath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') {
        return bad("absolute path");
    }
    if path.contains('\0') || path.contains('\\') || path.contains('\n') {
        return bad("forbidden character");
    }
    for seg in path.split('/') {
        match seg {
            "" => return bad("empty path segment"),
            "." | ".." => return bad("`.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a single path segment (a keyspace, a table folder, a file name).
pub fn check_segment(seg: &str) -> Result<(), UnsafePath> {
    check_relative(seg)?;
    if seg.contains('/') {
        return Err(UnsafePath {
            path: seg.to_string(),
            reason: "`/` inside a name",
        });
    }
    Ok(())
}

/// THE path check of a manifest's table: its keyspace and folder are single segments and every
/// file path is relative, inside the table folder. Used by `cbk verify` and by restore before
/// anything is staged.
pub fn check_table(t: &super::manifest::TableEntry) -> Result<(), UnsafePath> {
    check_segment(&t.keyspace)?;
    check_segment(&t.folder())?;
    for f in &t.files {
        check_relative(&f.path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable() {
        let id = Identity::Immutable {
            size: 89,
            digest: Some(3400459090),
        };
        assert_eq!(
            component_key("h1", "ks", "t-00ff", "nb-1-big-Data.db", &id, ".zst"),
            "nodes/h1/sst/ks/t-00ff/nb-1-big-Data.db/s89-d3400459090.zst"
        );
        let c = Identity::Content {
            size: 10,
            sha256_prefix: "abcd".into(),
        };
        assert_eq!(c.to_string(), "s10-habcd");
        assert_eq!(node_manifest_key("h1", "b1"), "nodes/h1/manifests/b1.json");
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "",
            "./a",
            "a\\b",
            "a\0b",
        ] {
            assert!(check_relative(p).is_err(), "{p:?} accepted");
        }
        for p in ["nb-1-big-Data.db", ".idx/nb-1-big-Data.db", "a/b/c"] {
            assert!(check_relative(p).is_ok(), "{p:?} refused");
        }
        assert!(check_segment("a/b").is_err());
    }
}
