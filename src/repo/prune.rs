//! Retention: which backups a keep-last / daily / weekly / monthly policy keeps, deleting the
//! others, cleaning up runs that never completed, and garbage-collecting stored components no
//! remaining backup references (only when older than the grace period, so an upload in flight
//! is never collected).

use super::encrypted::Access;
use super::inventory::{BackupInfo, RepoError, backups, incomplete_runs, read_json};
use super::keys;
use super::manifest::{BackupKind, IndexEntry, ProbeInfo, Selection, TableEntry};
use crate::store::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};

/// Retention policy (GFS style).
#[derive(
    Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, Default, PartialEq,
)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Unreferenced objects younger than this are kept (default `"24h"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<crate::units::Duration>,
}

/// What a prune (or a forget) did, or in a dry run, would do.
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
    /// Why each backup (and each incomplete run) is kept or deleted, oldest first.
    pub decisions: Vec<Decision>,
    /// Every object key deleted (or that would be): documents of deleted backups and runs,
    /// then unreferenced components. Filled for `--verbose`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted_keys: Vec<String>,
    /// Backups and runs the policy deletes whose objects are still under S3 Object Lock:
    /// nothing of them is deleted now; a prune after `until` deletes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locked_backups: Vec<super::locked::LockedBackup>,
    /// Unreferenced objects still under S3 Object Lock: left in place until `until`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locked_objects: Vec<super::locked::LockedObject>,
    /// Bytes of `locked_objects`.
    #[serde(skip_serializing_if = "is_zero")]
    pub locked_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Keep,
    Delete,
}

/// Why one backup is kept or deleted (restic-style: `keep: daily 2026-12-07`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub backup: String,
    pub action: Action,
    /// Every rule that keeps it (`last 3`, `daily 2026-12-07`, `weekly 2026-W49`,
    /// `monthly 2026-12`, `newest`), or why it goes (`not in any policy`).
    pub reasons: Vec<String>,
    /// A deleted backup still under S3 Object Lock: left whole until this date (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
}

/// Names of the snapshot backups a policy keeps (incrementals follow their base).
pub fn keep_set(entries: &[IndexEntry], policy: &Retention) -> BTreeSet<String> {
    keep_reasons(entries, policy).into_keys().collect()
}

/// The backups a policy keeps, each with every rule that keeps it. The newest snapshot backup
/// is always kept (`newest`), so a prune never leaves a cluster without a backup; incrementals
/// are kept with their base (`incremental of <base>`).
pub fn keep_reasons(entries: &[IndexEntry], policy: &Retention) -> BTreeMap<String, Vec<String>> {
    let mut snaps: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| e.kind == BackupKind::Snapshot)
        .collect();
    snaps.sort_by(|a, b| b.created.cmp(&a.created));
    let mut keep: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |name: &str, why: String| keep.entry(name.to_string()).or_default().push(why);
    if let Some(n) = policy.keep_last {
        for e in snaps.iter().take(n as usize) {
            add(&e.backup, format!("last {n}"));
        }
    }
    let bucket = |e: &IndexEntry, fmt: &str| -> String {
        e.created
            .parse::<jiff::Timestamp>()
            .map(|t| t.strftime(fmt).to_string())
            .unwrap_or_default()
    };
    for (n, fmt, rule) in [
        (policy.keep_daily, "%Y-%m-%d", "daily"),
        (policy.keep_weekly, "%G-W%V", "weekly"),
        (policy.keep_monthly, "%Y-%m", "monthly"),
    ] {
        let Some(n) = n else { continue };
        let mut seen = BTreeSet::new();
        for e in &snaps {
            let b = bucket(e, fmt);
            if seen.len() < n as usize && seen.insert(b.clone()) {
                add(&e.backup, format!("{rule} {b}"));
            }
        }
    }
    if let Some(newest) = snaps.first() {
        add(&newest.backup, "newest".to_string());
    }
    for e in entries {
        if e.kind == BackupKind::Incremental
            && let Some(base) = e.base.as_ref().filter(|b| keep.contains_key(*b))
        {
            let why = format!("incremental of {base}");
            keep.entry(e.backup.clone()).or_default().push(why);
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

/// Errors of `forget`: named backups that cannot be forgotten (nothing is deleted).
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("no backup named {} in {store}{}", quoted(.names), scope(.cluster))]
    Unknown {
        names: Vec<String>,
        store: String,
        cluster: Option<String>,
    },
    #[error(
        "forgetting {base} would break its incremental backups {} (they restore on top of it): name them too",
        quoted(.incrementals)
    )]
    Orphans {
        base: String,
        incrementals: Vec<String>,
    },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn scope(cluster: &Option<String>) -> String {
    cluster
        .as_deref()
        .map(|c| format!(" of cluster {c}"))
        .unwrap_or_default()
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
    access: &Access,
) -> Result<PruneReport, RepoError> {
    let all = backups(store, None).await?;
    let scope = Scope::of(&all, cluster, selection);
    let complete: Vec<IndexEntry> = scope
        .mine
        .iter()
        .filter(|b| b.complete)
        .map(|b| b.entry.clone())
        .collect();
    let keep = keep_reasons(&complete, policy);
    let at = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let oldest_kept = complete
        .iter()
        .filter(|e| keep.contains_key(&e.backup))
        .filter_map(|e| at(&e.created))
        .min();
    let decide = |b: &BackupInfo| -> Decision {
        let (action, reasons) = if b.complete {
            match keep.get(&b.entry.backup) {
                Some(r) => (Action::Keep, r.clone()),
                None => {
                    let why = match &b.entry.base {
                        Some(base) if b.entry.kind == BackupKind::Incremental => {
                            format!("incremental of {base}, which is deleted")
                        }
                        _ => "not in any policy".to_string(),
                    };
                    (Action::Delete, vec![why])
                }
            }
        } else if oldest_kept.is_none_or(|o| at(&b.entry.created).is_none_or(|c| c >= o)) {
            let why = "incomplete, newer than the oldest kept backup".to_string();
            (Action::Keep, vec![why])
        } else {
            let why = "incomplete, older than every kept backup".to_string();
            (Action::Delete, vec![why])
        };
        Decision {
            backup: b.entry.backup.clone(),
            action,
            reasons,
            locked_until: None,
        }
    };
    let decisions: Vec<Decision> = scope.mine.iter().map(|b| decide(b)).collect();
    let gc = Gc {
        runs: Runs::CleanOld,
        grace_secs: grace_seconds(policy),
        dry_run,
        access,
    };
    collect(store, &all, &scope, decisions, gc).await
}

/// Deletes the backups named in `names` (of `cluster`, every cluster with `None`), then
/// garbage-collects the components no remaining backup references, as [`prune`] does (after
/// the grace period). Unknown names, names of another cluster, and a snapshot backup whose
/// incrementals would remain are refused before anything is deleted. Runs that never completed
/// are left alone (and what they uploaded is kept).
pub async fn forget(
    store: &dyn Store,
    names: &[String],
    cluster: Option<&str>,
    grace: u64,
    dry_run: bool,
    access: &Access,
) -> Result<PruneReport, ForgetError> {
    let all = backups(store, None).await?;
    let scope = Scope::of(&all, cluster, None);
    let known: BTreeSet<&str> = scope.mine.iter().map(|b| b.entry.backup.as_str()).collect();
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !known.contains(n.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(ForgetError::Unknown {
            names: unknown,
            store: store.describe(),
            cluster: cluster.map(String::from),
        });
    }
    let named: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    for b in scope
        .mine
        .iter()
        .filter(|b| named.contains(b.entry.backup.as_str()))
    {
        let orphans: Vec<String> = all
            .iter()
            .filter(|i| i.entry.base.as_deref() == Some(b.entry.backup.as_str()))
            .filter(|i| !named.contains(i.entry.backup.as_str()))
            .map(|i| i.entry.backup.clone())
            .collect();
        if !orphans.is_empty() {
            return Err(ForgetError::Orphans {
                base: b.entry.backup.clone(),
                incrementals: orphans,
            });
        }
    }
    let decisions = scope
        .mine
        .iter()
        .map(|b| {
            let forget = named.contains(b.entry.backup.as_str());
            Decision {
                backup: b.entry.backup.clone(),
                action: if forget { Action::Delete } else { Action::Keep },
                reasons: vec![if forget { "named" } else { "not named" }.to_string()],
                locked_until: None,
            }
        })
        .collect();
    let gc = Gc {
        runs: Runs::Keep,
        grace_secs: grace,
        dry_run,
        access,
    };
    Ok(collect(store, &all, &scope, decisions, gc).await?)
}

/// How [`collect`] collects: which unfinished runs it may delete, the grace period, whether it
/// only reports, and how it reads node manifests (in an encrypted repository their file lists
/// are in clear: no identity is needed, except for format-1 manifests sealed as a whole).
struct Gc<'a> {
    runs: Runs,
    grace_secs: u64,
    dry_run: bool,
    access: &'a Access,
}

/// Which backups an operation decides about, and which it must leave alone.
struct Scope<'a> {
    /// Backups of the cluster (and selection) being pruned.
    mine: Vec<&'a BackupInfo>,
    /// Backups of the cluster with another selection: not counted, not deleted, their
    /// components kept.
    untouched: Vec<&'a BackupInfo>,
    /// Host ids of other clusters' nodes: their components are never collected here.
    foreign: BTreeSet<&'a str>,
}

impl<'a> Scope<'a> {
    fn of(all: &'a [BackupInfo], cluster: Option<&str>, selection: Option<&Selection>) -> Self {
        let (ours, others): (Vec<&BackupInfo>, Vec<&BackupInfo>) = all
            .iter()
            .partition(|b| cluster.is_none_or(|c| b.entry.cluster == c));
        let (mine, untouched) = ours
            .into_iter()
            .partition(|b| match (selection, &b.selection) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            });
        let foreign = others
            .iter()
            .flat_map(|b| b.host_ids.iter().map(String::as_str))
            .collect();
        Scope {
            mine,
            untouched,
            foreign,
        }
    }
}

/// What to do with runs that never completed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// Delete those older than the grace period (prune).
    CleanOld,
    /// Keep them all, and what they uploaded (forget).
    Keep,
}

/// The objects of one backup or run to delete, and what it references (kept while it is locked).
struct Doomed {
    name: String,
    keys: Vec<String>,
    /// Node manifests (a backup) and per-table results (a run) naming the files it uses.
    manifests: Vec<String>,
    parts: Vec<String>,
}

/// Deletes the backups `decisions` delete and, unless `runs` keeps them, runs that never
/// completed (on an Object Lock bucket, only those with no locked object); then the components under the scope's nodes that no remaining backup or young
/// run references and that are older than the grace period (the garbage collection shared by
/// prune and forget).
async fn collect(
    store: &dyn Store,
    all: &[BackupInfo],
    scope: &Scope<'_>,
    decisions: Vec<Decision>,
    gc: Gc<'_>,
) -> Result<PruneReport, RepoError> {
    let Gc {
        runs,
        grace_secs,
        dry_run,
        access,
    } = gc;
    let now = jiff::Timestamp::now().as_second();
    let grace = i64::try_from(grace_secs).unwrap_or(i64::MAX);
    let mut report = PruneReport {
        dry_run,
        grace_seconds: grace_secs,
        ..Default::default()
    };
    let mut host_ids: BTreeSet<String> = BTreeSet::new();
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    let mut doomed: Vec<Doomed> = Vec::new();
    // The stored files a backup's node manifests name (a missing manifest names none).
    let files_of = |manifests: Vec<String>| async move {
        let mut files = Vec::new();
        for key in manifests {
            match super::encrypted::read_manifest(store, &key, access).await {
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
    for b in &scope.untouched {
        referenced.extend(files_of(b.manifests.clone()).await?);
    }
    let action: BTreeMap<&str, Action> = decisions
        .iter()
        .map(|d| (d.backup.as_str(), d.action))
        .collect();
    for b in &scope.mine {
        host_ids.extend(b.host_ids.iter().cloned());
        if action.get(b.entry.backup.as_str()) != Some(&Action::Delete) {
            report.kept.push(b.entry.backup.clone());
            referenced.extend(files_of(b.manifests.clone()).await?);
        } else {
            report.deleted_backups.push(b.entry.backup.clone());
            // The index entry goes first: a half-deleted backup is never listed as complete.
            let mut keys = vec![
                keys::index_key(&b.entry.backup),
                keys::catalog_key(&b.entry.backup),
            ];
            keys.extend(b.manifests.iter().cloned());
            keys.extend(
                store
                    .list(&keys::run_prefix(&b.entry.backup))
                    .await?
                    .into_iter()
                    .map(|o| o.key),
            );
            doomed.push(Doomed {
                name: b.entry.backup.clone(),
                keys,
                manifests: b.manifests.clone(),
                parts: Vec::new(),
            });
        }
    }
    report.decisions = decisions;
    // Runs without a catalog: protect what young ones uploaded (all of them for forget), clean
    // up old ones (not those of another cluster's nodes).
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
        if !probes.is_empty() && probes.iter().all(|h| scope.foreign.contains(h.as_str())) {
            continue;
        }
        host_ids.extend(probes.iter().cloned());
        if runs == Runs::Keep || newest.is_some_and(|t| now - t < grace) {
            for o in objects.iter().filter(|o| o.key.contains("/parts/")) {
                if let Ok(t) = read_json::<TableEntry>(store, &o.key).await {
                    referenced.extend(t.files.iter().map(|f| f.key.clone()));
                }
            }
            continue;
        }
        report.deleted_incomplete.push(name.clone());
        report.decisions.push(Decision {
            backup: name.clone(),
            action: Action::Delete,
            reasons: vec!["run never completed, older than the grace period".into()],
            locked_until: None,
        });
        let parts = objects
            .iter()
            .filter(|o| o.key.contains("/parts/"))
            .map(|o| o.key.clone())
            .collect();
        let mut keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
        keys.extend(probes.iter().map(|h| keys::node_manifest_key(h, &name)));
        doomed.push(Doomed {
            name,
            keys,
            manifests: Vec::new(),
            parts,
        });
    }
    host_ids.retain(|h| !scope.foreign.contains(h.as_str()));
    let lock = store.object_lock_enabled().await?;
    let at = jiff::Timestamp::now();
    if lock {
        // A backup with any locked object stays whole, and so does all it references.
        let mut free = Vec::new();
        for d in doomed {
            let held = super::locked::locked_until(store, &d.keys, at).await?;
            let Some(until) = held.values().max().map(ToString::to_string) else {
                free.push(d);
                continue;
            };
            referenced.extend(files_of(d.manifests.clone()).await?);
            for k in &d.parts {
                if let Ok(t) = read_json::<TableEntry>(store, k).await {
                    referenced.extend(t.files.iter().map(|f| f.key.clone()));
                }
            }
            report.deleted_backups.retain(|n| *n != d.name);
            report.deleted_incomplete.retain(|n| *n != d.name);
            for dec in report.decisions.iter_mut().filter(|x| x.backup == d.name) {
                dec.reasons.push(format!(
                    "locked until {until} (S3 Object Lock): deleted by a prune after that"
                ));
                dec.locked_until = Some(until.clone());
            }
            report.locked_backups.push(super::locked::LockedBackup {
                backup: d.name,
                until,
            });
        }
        doomed = free;
    }
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for h in &host_ids {
        for o in store.list(&format!("nodes/{h}/sst/")).await? {
            let old = o.modified.is_none_or(|t| now - t >= grace);
            if old && !referenced.contains(&o.key) {
                sizes.insert(o.key, o.size);
            }
        }
    }
    if lock {
        let (free, held) = super::locked::split_objects(store, sizes, at).await?;
        sizes = free;
        report.locked_bytes = held.iter().map(|o| o.size).sum();
        report.locked_objects = held;
    }
    let doomed: Vec<String> = doomed.into_iter().flat_map(|d| d.keys).collect();
    report.deleted_objects = sizes.len() as u64;
    report.deleted_bytes = sizes.values().sum();
    report.deleted_keys = doomed.iter().chain(sizes.keys()).cloned().collect();
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

    #[test]
    fn reasons_name_every_rule_that_keeps() {
        let e = vec![
            snap("mon", "2026-12-07T01:00:00Z"),
            snap("mon-late", "2026-12-07T13:00:00Z"),
            snap("sun", "2026-12-06T01:00:00Z"),
            snap("nov", "2026-11-30T01:00:00Z"),
        ];
        let r = keep_reasons(
            &e,
            &Retention {
                keep_last: Some(2),
                keep_daily: Some(2),
                keep_weekly: Some(2),
                keep_monthly: Some(2),
                ..Default::default()
            },
        );
        let got = |n: &str| r.get(n).cloned().unwrap_or_default();
        assert_eq!(
            got("mon-late"),
            vec![
                "last 2",
                "daily 2026-12-07",
                "weekly 2026-W50",
                "monthly 2026-12",
                "newest"
            ]
        );
        assert_eq!(got("mon"), vec!["last 2"]);
        assert_eq!(got("sun"), vec!["daily 2026-12-06", "weekly 2026-W49"]);
        assert_eq!(got("nov"), vec!["monthly 2026-11"]);
    }
}
