//! `cbk list`: the backups in a store, of the plan's cluster (or `--cluster`), confirmed from the
//! catalogs and node manifests (one read per backup, one listing per node; never a walk of the
//! stored components). The index is a cache: `--rebuild-index` makes it match.

use super::StoreArgs;
use crate::repo::inventory;

/// Arguments of `cbk list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only backups of this cluster (default: the plan's `[cluster] name`; every cluster with
    /// `--storage` alone).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Rewrite the index from the catalogs: an entry for every complete backup, none for others.
    #[arg(long)]
    pub rebuild_index: bool,
    #[command(flatten)]
    pub metrics: super::MetricsArgs,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// Runs `cbk list`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let store = args.store.open().await?;
    let cluster = args.store.cluster(args.cluster.as_deref())?;
    let err = |e: inventory::RepoError| miette::miette!("{e}");
    let all = inventory::backups(store.as_ref(), None)
        .await
        .map_err(err)?;
    let known: Vec<String> = all.iter().map(|b| b.entry.backup.clone()).collect();
    let mut backups: Vec<inventory::BackupInfo> = all
        .into_iter()
        .filter(|b| cluster.as_deref().is_none_or(|c| b.entry.cluster == c))
        .collect();
    let incomplete = inventory::incomplete_runs(store.as_ref(), &known)
        .await
        .map_err(err)?;
    let repair = if args.rebuild_index {
        let r = inventory::rebuild_index(store.as_ref(), &backups)
            .await
            .map_err(err)?;
        for b in backups.iter_mut() {
            b.indexed = b.complete;
        }
        Some(r)
    } else {
        None
    };
    let latest = {
        let mut by_cluster: std::collections::BTreeMap<&str, Vec<inventory::BackupInfo>> =
            Default::default();
        for b in &backups {
            by_cluster
                .entry(b.entry.cluster.as_str())
                .or_default()
                .push(b.clone());
        }
        by_cluster
            .into_iter()
            .filter_map(|(c, v)| {
                inventory::latest(&v, None).map(|b| (c.to_string(), b.entry.backup.clone()))
            })
            .collect::<std::collections::BTreeMap<String, String>>()
    };
    if args.output.is_json() {
        let complete: Vec<&crate::repo::manifest::IndexEntry> = backups
            .iter()
            .filter(|b| b.complete)
            .map(|b| &b.entry)
            .collect();
        let mut inc: Vec<serde_json::Value> = backups
            .iter()
            .filter(|b| !b.complete)
            .map(|b| {
                serde_json::json!({"backup": b.entry.backup, "cluster": b.entry.cluster, "missing": b.missing})
            })
            .collect();
        inc.extend(
            incomplete
                .iter()
                .map(|(n, t)| serde_json::json!({"backup": n, "last_write": t})),
        );
        let v = serde_json::json!({
            "backups": complete,
            "incomplete": inc,
            "latest": latest,
            "not_indexed": backups.iter().filter(|b| b.complete && !b.indexed).map(|b| &b.entry.backup).collect::<Vec<_>>(),
            "index_repair": repair,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(write_metrics(&args.metrics, &backups));
    }
    println!(
        "{:<32} {:<11} {:<24} {:>5} {:>8} {:>12}  status      CLUSTER",
        "BACKUP", "KIND", "CREATED", "HOSTS", "FILES", "BYTES"
    );
    let mut notes = Vec::new();
    for b in &backups {
        let e = &b.entry;
        let kind = match e.kind {
            crate::repo::manifest::BackupKind::Snapshot => "snapshot",
            crate::repo::manifest::BackupKind::Incremental => "incremental",
        };
        let status = if b.complete { "complete" } else { "INCOMPLETE" };
        println!(
            "{:<32} {:<11} {:<24} {:>5} {:>8} {:>12}  {status:<10}  {}",
            e.backup,
            kind,
            e.created,
            e.hosts.len(),
            e.totals.files,
            e.totals.bytes,
            e.cluster
        );
        if !b.complete {
            notes.push(format!("{}: missing {}", e.backup, b.missing.join(", ")));
        } else if !b.indexed {
            notes.push(format!(
                "{}: complete but not in the index (`cbk list --rebuild-index` adds it)",
                e.backup
            ));
        }
    }
    for (name, _) in &incomplete {
        println!(
            "{name:<32} {:<11} {:<24} {:>5} {:>8} {:>12}  INCOMPLETE  ?",
            "?", "?", "-", "-", "-"
        );
    }
    if backups.is_empty() && incomplete.is_empty() {
        match &cluster {
            Some(c) => println!("(no backups of cluster {c} in {})", store.describe()),
            None => println!("(no backups in {})", store.describe()),
        }
    }
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(r) = repair {
        println!(
            "index rebuilt: {} entries added ({}), {} removed ({})",
            r.added.len(),
            r.added.join(", "),
            r.removed.len(),
            r.removed.join(", ")
        );
    }
    Ok(write_metrics(&args.metrics, &backups))
}

/// The store-level gauges of the listed backups (`--metrics-file`).
fn write_metrics(metrics: &super::MetricsArgs, backups: &[inventory::BackupInfo]) -> u8 {
    metrics.write(crate::error::exit::OK, || {
        crate::exec::repo_metrics::store_gauges(backups, jiff::Timestamp::now())
    })
}
