//! Retention: which backups a keep-last / daily / weekly / monthly policy keeps, deleting the
//! others, cleaning up runs that never completed, and garbage-collecting stored components no
//! remaining backup references (only when older than the grace period, so an upload in flight
//! is never collected).

use super::inventory::{BackupInfo, RepoError, backups, incomplete_runs, read_json};
use super::keys;
use super::manifest::{BackupKind, IndexEntry, ProbeInfo, Selection, TableEntry};
use crate::plan::model::Retention;
use crate::store::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};

/// What a prune did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub deleted_backups: Vec<String>,
    pub deleted_incomplete: Vec<String>,
    pub deleted_objects: u64,
    pub deleted_bytes: u64,
    /// Unfinished uploads (S3 multipart uploads, fs temp files) older than the grace period.
    pub aborted_uploads: u32,
    pub dry_run: bool,
    /// The grace period applied (`retention.grace`, default 24 h), in seconds.
    pub grace_seconds: u64,
}

/// Names of the snapshot backups a policy keeps (incrementals follow their base).
pub fn keep_set(entries: &[IndexEntry], policy: &Retention) -> BTreeSet<String> {
    let mut snaps: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| e.kind == BackupKind::Snapshot)
        .collect();
    snaps.sort_by(|a, b| b.created.cmp(&a.created));
    let mut keep = BTreeSet::new();
    if let Some(newest) = snaps.first() {
        keep.insert(newest.backup.clone());
    }
    if let Some(n) = policy.keep_last {
        keep.extend(snaps.iter().take(n as usize).map(|e| e.backup.clone()));
    }
    let bucket = |e: &IndexEntry, fmt: &str| -> String {
        e.created
            .parse::<jiff::Timestamp>()
            .map(|t| t.strftime(fmt).to_string())
            .unwrap_or_default()
    };
    for (n, fmt) in [
        (policy.keep_daily, "%Y-%m-%d"),
        (policy.keep_weekly, "%G-W%V"),
        (policy.keep_monthly, "%Y-%m"),
    ] {
        let Some(n) = n else { continue };
        let mut seen = BTreeSet::new();
        for e in &snaps {
            let b = bucket(e, fmt);
            if seen.len() < n as usize && seen.insert(b) {
                keep.insert(e.backup.clone());
            }
        }
    }
    for e in entries {
        if e.kind == BackupKind::Incremental && e.base.as_ref().is_some_and(|b| keep.contains(b)) {
            keep.insert(e.backup.clone());
        }
    }
    keep
}

/// Unreferenced objects younger than this are kept when the plan sets no `retention.grace`.
pub const DEFAULT_GRACE_SECS: u64 = 24 * 3600;

/// The grace period a policy applies, in seconds.
pub fn grace_seconds(policy: &Retention) -> u64 {
    policy
        .grace
        .as_ref()
        .map_or(DEFAULT_GRACE_SECS, |g| g.as_secs())
}

/// Applies `policy` to the backups of `cluster` (every cluster with `None`: only for a store
/// that holds one). Backups of other clusters, and components under their nodes, are never
/// touched. Completeness comes from the catalogs and node manifests (the index is a cache): a
/// backup whose manifests are all present is never deleted outside the policy; an incomplete
/// one (a node manifest gone) never counts as a kept backup, and is deleted once it is older
/// than every backup the policy keeps.
///
/// With `selection` (the backup plan's include set), the policy counts and deletes only backups
/// of that selection (and those made before catalogs recorded one); the cluster's other backups
/// are left alone and their components kept.
pub async fn prune(
    store: &dyn Store,
    policy: &Retention,
    cluster: Option<&str>,
    selection: Option<&Selection>,
    dry_run: bool,
    ids: Option<&crate::crypt::Identities>,
) -> Result<PruneReport, RepoError> {
    let now = jiff::Timestamp::now().as_second();
    let grace = i64::try_from(grace_seconds(policy)).unwrap_or(i64::MAX);
    let all = backups(store, None).await?;
    let (ours, others): (Vec<&BackupInfo>, Vec<&BackupInfo>) = all
        .iter()
        .partition(|b| cluster.is_none_or(|c| b.entry.cluster == c));
    let (mine, untouched): (Vec<&BackupInfo>, Vec<&BackupInfo>) =
        ours.into_iter()
            .partition(|b| match (selection, &b.selection) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            });
    // Nodes of other clusters: their components are never collected here.
    let foreign: BTreeSet<&str> = others
        .iter()
        .flat_map(|b| b.host_ids.iter().map(String::as_str))
        .collect();
    let complete: Vec<IndexEntry> = mine
        .iter()
        .filter(|b| b.complete)
        .map(|b| b.entry.clone())
        .collect();
    let keep = keep_set(&complete, policy);
    let at = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let oldest_kept = complete
        .iter()
        .filter(|e| keep.contains(&e.backup))
        .filter_map(|e| at(&e.created))
        .min();
    let mut report = PruneReport {
        dry_run,
        grace_seconds: grace_seconds(policy),
        ..Default::default()
    };
    let mut host_ids: BTreeSet<String> = BTreeSet::new();
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    let mut doomed: Vec<String> = Vec::new();
    // The stored files a backup's node manifests name (a missing manifest names none).
    let files_of = |manifests: Vec<String>| async move {
        let mut files = Vec::new();
        for key in manifests {
            match super::encrypted::read_manifest(store, &key, ids).await {
                Err(RepoError::Store(StoreError::NotFound(_))) => {}
                Err(e) => return Err(e),
                // An encrypted object's data key (`<key>.key`) lives as long as the object.
                Ok(m) => files.extend(m.tables.into_iter().flat_map(|t| {
                    t.files.into_iter().flat_map(|f| {
                        let k = crate::crypt::stream::key_object(&f.key);
                        [f.key, k]
                    })
                })),
            }
        }
        Ok::<_, RepoError>(files)
    };
    // Another selection of this cluster: not counted, not deleted, its components kept.
    for b in &untouched {
        referenced.extend(files_of(b.manifests.clone()).await?);
    }
    for b in &mine {
        host_ids.extend(b.host_ids.iter().cloned());
        let kept = if b.complete {
            keep.contains(&b.entry.backup)
        } else {
            // Incomplete: kept while newer than the oldest backup the policy keeps.
            oldest_kept.is_none_or(|o| at(&b.entry.created).is_none_or(|c| c >= o))
        };
        if kept {
            report.kept.push(b.entry.backup.clone());
            referenced.extend(files_of(b.manifests.clone()).await?);
        } else {
            report.deleted_backups.push(b.entry.backup.clone());
            // The index entry goes first: a half-deleted backup is never listed as complete.
            doomed.push(keys::index_key(&b.entry.backup));
            doomed.push(keys::catalog_key(&b.entry.backup));
            doomed.extend(b.manifests.iter().cloned());
            doomed.extend(
                store
                    .list(&keys::run_prefix(&b.entry.backup))
                    .await?
                    .into_iter()
                    .map(|o| o.key),
            );
        }
    }
    // Runs without a catalog: protect what young ones uploaded, clean up old ones (not those
    // of another cluster's nodes).
    let known: Vec<String> = all.iter().map(|b| b.entry.backup.clone()).collect();
    for (name, newest) in incomplete_runs(store, &known).await? {
        let objects = store.list(&keys::run_prefix(&name)).await?;
        let mut probes = Vec::new();
        for o in &objects {
            if o.key.contains("/probe/")
                && let Ok(p) = read_json::<ProbeInfo>(store, &o.key).await
            {
                probes.push(p.host_id);
            }
        }
        if !probes.is_empty() && probes.iter().all(|h| foreign.contains(h.as_str())) {
            continue;
        }
        host_ids.extend(probes.iter().cloned());
        if newest.is_some_and(|t| now - t < grace) {
            for o in objects.iter().filter(|o| o.key.contains("/parts/")) {
                if let Ok(t) = read_json::<TableEntry>(store, &o.key).await {
                    referenced.extend(t.files.iter().map(|f| f.key.clone()));
                }
            }
            continue;
        }
        report.deleted_incomplete.push(name.clone());
        doomed.extend(objects.into_iter().map(|o| o.key));
        doomed.extend(probes.iter().map(|h| keys::node_manifest_key(h, &name)));
    }
    host_ids.retain(|h| !foreign.contains(h.as_str()));
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for h in &host_ids {
        for o in store.list(&format!("nodes/{h}/sst/")).await? {
            let old = o.modified.is_none_or(|t| now - t >= grace);
            if old && !referenced.contains(&o.key) {
                sizes.insert(o.key, o.size);
            }
        }
    }
    report.deleted_objects = sizes.len() as u64;
    report.deleted_bytes = sizes.values().sum();
    if !dry_run {
        // Uploads cut off by a crash leave multipart uploads (S3) or temp files (fs) behind.
        report.aborted_uploads = store.abort_stale_uploads("", grace.max(0) as u64).await?;
        store.delete_many(&doomed).await?;
        let gc: Vec<String> = sizes.into_keys().collect();
        for chunk in gc.chunks(1000) {
            match store.delete_many(chunk).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, created: &str) -> IndexEntry {
        IndexEntry {
            backup: name.into(),
            kind: BackupKind::Snapshot,
            base: None,
            cluster: "c".into(),
            created: created.into(),
            completed: created.into(),
            hosts: vec![],
            totals: Default::default(),
        }
    }

    #[test]
    fn keep_last_daily_weekly() {
        let mut e = Vec::new();
        for d in 1..=20 {
            for h in [0, 12] {
                e.push(snap(
                    &format!("b{d:02}{h:02}"),
                    &format!("2026-03-{d:02}T{h:02}:00:00Z"),
                ));
            }
        }
        let p = Retention {
            keep_last: Some(2),
            keep_daily: Some(3),
            ..Default::default()
        };
        let k = keep_set(&e, &p);
        // last 2: b2012, b2000; daily 3: newest of 20th, 19th, 18th
        assert_eq!(
            k.into_iter().collect::<Vec<_>>(),
            vec!["b1812", "b1912", "b2000", "b2012"]
        );
        let p = Retention {
            keep_weekly: Some(2),
            ..Default::default()
        };
        let k = keep_set(&e, &p);
        // 2026-03-20 is in ISO week 12 (16th..22nd), week 11 is 9th..15th
        assert_eq!(k.into_iter().collect::<Vec<_>>(), vec!["b1512", "b2012"]);
    }

    #[test]
    fn incrementals_follow_their_base() {
        let mut e = vec![
            snap("a", "2026-01-01T00:00:00Z"),
            snap("b", "2026-01-02T00:00:00Z"),
        ];
        let mut inc = snap("a1", "2026-01-01T06:00:00Z");
        inc.kind = BackupKind::Incremental;
        inc.base = Some("a".into());
        e.push(inc);
        let k = keep_set(
            &e,
            &Retention {
                keep_last: Some(1),
                ..Default::default()
            },
        );
        assert!(!k.contains("a1") && k.contains("b"));
        let k = keep_set(
            &e,
            &Retention {
                keep_last: Some(2),
                ..Default::default()
            },
        );
        assert!(k.contains("a1"));
    }
}
