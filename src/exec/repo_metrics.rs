//! Prometheus textfile metrics of the store commands (`list`, `verify`, `prune`, with
//! `--metrics-file`): the newest complete backup per cluster, so an alert fires when backups
//! stop landing in the store whatever scheduled them, and the outcome of the last verify and
//! prune. Same format and atomic write as apply's metrics ([`super::metrics`]).

use super::metrics::{escape, seconds, write_gauge};
use crate::repo::inventory::BackupInfo;
use crate::repo::prune::PruneReport;
use std::collections::BTreeMap;

/// `cluster="…"`.
fn cluster_label(cluster: &str) -> String {
    format!("cluster=\"{}\"", escape(cluster))
}

/// The store-level gauges of `backups` (of the command's cluster scope), per cluster:
/// `cbk_complete_backups`, and for a cluster with a complete backup,
/// `cbk_newest_complete_backup_timestamp_seconds` (its creation time, the plan's `now`) and
/// `cbk_newest_complete_backup_age_seconds` (seconds from then to `now`).
pub fn store_gauges(backups: &[BackupInfo], now: jiff::Timestamp) -> String {
    let mut count: BTreeMap<&str, u64> = BTreeMap::new();
    let mut newest: BTreeMap<&str, jiff::Timestamp> = BTreeMap::new();
    for b in backups {
        let n = count.entry(b.entry.cluster.as_str()).or_default();
        if !b.complete {
            continue;
        }
        *n += 1;
        if let Ok(t) = b.entry.created.parse::<jiff::Timestamp>() {
            let e = newest.entry(b.entry.cluster.as_str()).or_insert(t);
            *e = (*e).max(t);
        }
    }
    let mut out = String::new();
    let series = |f: &dyn Fn(&jiff::Timestamp) -> f64| -> Vec<(String, f64)> {
        newest
            .iter()
            .map(|(c, t)| (cluster_label(c), f(t)))
            .collect()
    };
    write_gauge(
        &mut out,
        "cbk_complete_backups",
        "Complete backups of the cluster in the store.",
        &count
            .iter()
            .map(|(c, n)| (cluster_label(c), *n as f64))
            .collect::<Vec<_>>(),
    );
    if !newest.is_empty() {
        write_gauge(
            &mut out,
            "cbk_newest_complete_backup_timestamp_seconds",
            "Unix time the newest complete backup of the cluster was taken (its plan's now).",
            &series(&|t| seconds(*t)),
        );
        write_gauge(
            &mut out,
            "cbk_newest_complete_backup_age_seconds",
            "Seconds from the newest complete backup of the cluster to when the store was read.",
            &series(&|t| (seconds(now) - seconds(*t)).max(0.0)),
        );
    }
    out
}

/// What one `cbk verify` found, for its metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// Backups verified.
    pub backups: u64,
    pub files: u64,
    pub bytes: u64,
    pub problems: u64,
    /// Whether every object was read back (`--deep`).
    pub deep: bool,
}

/// `cbk_verify_*` gauges of a verify, one series per cluster whose backups it checked.
pub fn verify_gauges(outcomes: &BTreeMap<String, VerifyOutcome>, now: jiff::Timestamp) -> String {
    type Value = fn(&VerifyOutcome, f64) -> f64;
    let gauges: [(&str, &str, Value); 7] = [
        (
            "cbk_verify_last_run_timestamp_seconds",
            "Unix time the last cbk verify ended.",
            |_, now| now,
        ),
        (
            "cbk_verify_last_run_success",
            "1 if the last verify found no problem, 0 otherwise.",
            |v, _| if v.problems == 0 { 1.0 } else { 0.0 },
        ),
        (
            "cbk_verify_deep",
            "1 if the last verify read every object back (--deep), 0 if it checked sizes.",
            |v, _| if v.deep { 1.0 } else { 0.0 },
        ),
        (
            "cbk_verify_backups",
            "Backups checked by the last verify.",
            |v, _| v.backups as f64,
        ),
        (
            "cbk_verify_files",
            "Files checked by the last verify.",
            |v, _| v.files as f64,
        ),
        (
            "cbk_verify_bytes",
            "Bytes (original sizes) checked by the last verify.",
            |v, _| v.bytes as f64,
        ),
        (
            "cbk_verify_problems",
            "Problems found by the last verify.",
            |v, _| v.problems as f64,
        ),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        let series: Vec<(String, f64)> = outcomes
            .iter()
            .map(|(c, v)| (cluster_label(c), value(v, seconds(now))))
            .collect();
        write_gauge(&mut out, name, help, &series);
    }
    out
}

/// `cbk_prune_*` gauges of a prune (or forget) of `cluster`'s backups.
pub fn prune_gauges(cluster: &str, r: &PruneReport, now: jiff::Timestamp) -> String {
    let l = cluster_label(cluster);
    let mut out = String::new();
    for (name, help, value) in [
        (
            "cbk_prune_last_run_timestamp_seconds",
            "Unix time the last cbk prune ended.",
            seconds(now),
        ),
        (
            "cbk_prune_dry_run",
            "1 if the last prune was a dry run (nothing deleted), 0 otherwise.",
            if r.dry_run { 1.0 } else { 0.0 },
        ),
        (
            "cbk_prune_kept_backups",
            "Backups the last prune kept.",
            r.kept.len() as f64,
        ),
        (
            "cbk_prune_deleted_backups",
            "Backups the last prune deleted (or would delete).",
            r.deleted_backups.len() as f64,
        ),
        (
            "cbk_prune_deleted_incomplete_runs",
            "Runs that never completed the last prune deleted.",
            r.deleted_incomplete.len() as f64,
        ),
        (
            "cbk_prune_deleted_objects",
            "Unreferenced objects the last prune deleted.",
            r.deleted_objects as f64,
        ),
        (
            "cbk_prune_deleted_bytes",
            "Bytes of unreferenced objects the last prune deleted.",
            r.deleted_bytes as f64,
        ),
    ] {
        write_gauge(&mut out, name, help, &[(l.clone(), value)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::manifest::{BackupKind, IndexEntry};

    fn info(cluster: &str, name: &str, created: &str, complete: bool) -> BackupInfo {
        let mut b = BackupInfo::assumed_complete(IndexEntry {
            backup: name.into(),
            kind: BackupKind::Snapshot,
            base: None,
            cluster: cluster.into(),
            created: created.into(),
            completed: created.into(),
            hosts: vec![],
            totals: Default::default(),
        });
        b.complete = complete;
        b
    }

    #[test]
    fn newest_complete_per_cluster() {
        let now: jiff::Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let text = store_gauges(
            &[
                info("a", "a1", "2026-12-07T10:00:00Z", true),
                info("a", "a2", "2026-12-07T11:00:00Z", false),
                info("b\"x", "b1", "2026-12-06T12:00:00Z", true),
                info("c", "c1", "2026-12-07T11:00:00Z", false),
            ],
            now,
        );
        assert!(text.contains("cbk_newest_complete_backup_age_seconds{cluster=\"a\"} 7200\n"));
        assert!(
            text.contains("cbk_newest_complete_backup_age_seconds{cluster=\"b\\\"x\"} 86400\n")
        );
        assert!(text.contains("cbk_complete_backups{cluster=\"c\"} 0\n"));
        assert!(!text.contains("age_seconds{cluster=\"c\"}"));
    }
}
