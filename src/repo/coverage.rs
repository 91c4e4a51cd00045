//! Which incremental-backup files a base snapshot already covers.
//!
//! With `incremental_backups` on, Cassandra hard-links every flushed sstable into `backups/`
//! and never removes the links, also after a compaction replaced those sstables by a new one.
//! A snapshot holding only the compaction result `nb-9` (of `nb-1,3,5,7`) therefore coexists
//! with `backups/` links to `nb-1,3,5,7`; restoring both duplicates data and can bring back
//! rows whose tombstones the compaction purged.
//!
//! An sstable was flushed before the snapshot (and its data is in the snapshot, as itself or
//! inside a compaction result) when its id is not greater than the greatest id the snapshot
//! holds for the same table folder and index (`.<idx>/` sstables count on their own, like
//! Cassandra's per-index counters). Integer generations grow per table and per node; UUID ids
//! (4.1+ `uuid_sstable_identifiers_enabled`) sort by the time they were made, so a UUID id made
//! before the snapshot was planned is covered too, even for a table the snapshot holds no
//! sstable of. Names that are no sstable are never covered.

use super::manifest::NodeManifest;
use crate::cassandra::sstable::{Generation, SstableName};
use std::collections::BTreeMap;

/// The greatest sstable id per table folder and index of one node's snapshot backup.
#[derive(Debug, Clone, Default)]
pub struct BaseCoverage {
    /// `(<ks>/<table>-<id>, "" or ".<idx>")` -> greatest id.
    max: BTreeMap<(String, String), Generation>,
    /// When the snapshot backup was planned (before the snapshot was taken).
    planned: Option<jiff::Timestamp>,
}

/// `.idx/nb-1-big-Data.db` -> (`.idx`, the parsed name).
fn split(path: &str) -> Option<(&str, SstableName)> {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    SstableName::parse(file).ok().map(|n| (dir, n))
}

impl BaseCoverage {
    /// The coverage of the snapshot backup `base` (one node's manifest).
    pub fn of(base: &NodeManifest) -> BaseCoverage {
        let mut max: BTreeMap<(String, String), Generation> = BTreeMap::new();
        for t in &base.tables {
            let folder = format!("{}/{}", t.keyspace, t.folder());
            for f in &t.files {
                let Some((dir, name)) = split(&f.path) else {
                    continue;
                };
                let slot = max
                    .entry((folder.clone(), dir.to_string()))
                    .or_insert_with(|| name.generation.clone());
                if name.generation > *slot {
                    *slot = name.generation;
                }
            }
        }
        BaseCoverage {
            max,
            planned: base.created.parse().ok(),
        }
    }

    /// Is file `path` (relative to the table folder `<ks>/<table>-<id>`) of an sstable that
    /// was flushed before the base snapshot?
    pub fn covers(&self, folder: &str, path: &str) -> bool {
        let Some((dir, name)) = split(path) else {
            return false;
        };
        if let (Some(made), Some(planned)) = (name.generation.uuid_timestamp(), self.planned)
            && made < planned
        {
            return true;
        }
        self.max
            .get(&(folder.to_string(), dir.to_string()))
            .is_some_and(|m| name.generation <= *m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::manifest::{FileEntry, FileSource};

    fn file(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            data_dir: 0,
            key: format!("k/{path}"),
            size: 1,
            stored_size: 1,
            codec: "none".into(),
            crc32: 0,
            source: FileSource::Snapshot,
        }
    }

    fn base(paths: &[&str]) -> NodeManifest {
        crate::repo::manifest::sample(paths.iter().map(|p| file(p)).collect())
    }

    #[test]
    fn compaction_inputs_are_covered_later_flushes_are_not() {
        let c = BaseCoverage::of(&base(&[
            "nb-9-big-Data.db",
            "nb-9-big-TOC.txt",
            ".orders_idx/nb-2-big-Data.db",
            "manifest.json",
        ]));
        let f = format!("shop/orders-{}", "0".repeat(32));
        for p in ["nb-1-big-Data.db", "nb-7-big-Index.db", "nb-9-big-Data.db"] {
            assert!(c.covers(&f, p), "{p}");
        }
        for p in ["nb-10-big-Data.db", ".orders_idx/nb-3-big-Data.db", "x.txt"] {
            assert!(!c.covers(&f, p), "{p}");
        }
        // The index counts on its own; another table is not covered.
        assert!(c.covers(&f, ".orders_idx/nb-1-big-Data.db"));
        assert!(!c.covers("shop/customers-1", "nb-1-big-Data.db"));
    }

    #[test]
    fn uuid_ids_compare_by_time() {
        // 3g1m_0nuf_3vj5m… was made 2022-12-09T08:35:03Z, before the base was planned.
        let early = "nb-3g1m_0nuf_3vj5m2k1125165rxa7-big-Data.db";
        let c = BaseCoverage::of(&base(&[]));
        assert!(c.covers("shop/t-1", early));
        let c = BaseCoverage::of(&base(&["nb-3g1m_0nuf_3vj5m2k1125165rxa7-big-Data.db"]));
        let f = format!("shop/orders-{}", "0".repeat(32));
        assert!(c.covers(&f, "nb-3g1m_0nuf_3vj5m2k1125165rxa7-big-TOC.txt"));
        // Made a day later: not covered.
        assert!(!c.covers(&f, "nb-3g1n_0nuf_3vj5m2k1125165rxa7-big-Data.db"));
        // Integer generations sort before UUID ids (the flag was turned on later).
        assert!(c.covers(&f, "nb-12-big-Data.db"));
    }
}
