//! `cbk verify`: a backup is complete (every object present with its size) and, with `--deep`,
//! intact (every object read back and checked against its CRC32).

use super::StoreArgs;
use crate::repo::{inventory, quarantine, verify};

/// Arguments of `cbk verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup name (default: `latest`, the newest complete snapshot backup of the cluster).
    pub name: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Cluster whose latest backup to verify (default: the plan's `[cluster] name`).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Read every object back, decompress it and check its CRC32.
    #[arg(long)]
    pub deep: bool,
    /// Move every object that is in the store but fails its check to
    /// `quarantine/<time>/<key>` (kept, never deleted), so the next backup of its node stores
    /// the file again and heals every backup that references it.
    #[arg(long)]
    pub repair: bool,
    /// Objects checked at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// Runs `cbk verify`; exit 1 when a problem is found.
pub async fn run(args: Args) -> miette::Result<u8> {
    let store = args.store.open().await?;
    let name = match args.name {
        Some(n) => n,
        None => {
            let cluster = args.store.cluster(args.cluster.as_deref())?;
            let backups = inventory::backups(store.as_ref(), cluster.as_deref())
                .await
                .map_err(|e| miette::miette!("{e}"))?;
            let clusters: std::collections::BTreeSet<&str> =
                backups.iter().map(|b| b.entry.cluster.as_str()).collect();
            if cluster.is_none() && clusters.len() > 1 {
                return Err(miette::miette!(
                    help = "pass --plan PLAN.toml, --cluster NAME or a backup name",
                    "{} holds backups of several clusters ({}): which one's latest?",
                    store.describe(),
                    clusters.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            inventory::latest(&backups, None)
                .map(|b| b.entry.backup.clone())
                .ok_or_else(|| {
                    miette::miette!(
                        "no complete snapshot backup{} in {}",
                        cluster
                            .as_deref()
                            .map(|c| format!(" of cluster {c}"))
                            .unwrap_or_default(),
                        store.describe()
                    )
                })?
        }
    };
    let ids = args.store.identity(store.as_ref()).await?;
    let report = verify::verify(store.clone(), &name, args.deep, args.concurrency, ids)
        .await
        .map_err(|e| miette::miette!("{e}"))?;
    let moved = if args.repair {
        quarantine::quarantine(store.as_ref(), &report.damaged, &quarantine::stamp_now())
            .await
            .map_err(|e| miette::miette!("repair: {e}"))?
    } else {
        Vec::new()
    };
    if args.output.is_json() {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if args.repair {
            v["quarantined"] = serde_json::to_value(&moved).unwrap_or_default();
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for p in &report.problems {
            println!("PROBLEM {} {}: {}", p.host, p.key, p.message);
        }
        let how = if report.deep {
            "read back and checked (CRC32)"
        } else {
            "present with the right size"
        };
        if report.problems.is_empty() {
            println!(
                "backup {}: all {} files ({} bytes) {how}",
                report.backup, report.files, report.bytes
            );
        } else {
            println!(
                "backup {}: {} of {} files have problems",
                report.backup,
                report.problems.len(),
                report.files
            );
        }
        for q in &moved {
            println!("QUARANTINED {} -> {}", q.key, q.moved_to);
        }
        if !moved.is_empty() {
            println!(
                "{} damaged objects moved aside: the next backup of their nodes stores them again \
                 (the files must still be on the nodes); then verify again",
                moved.len()
            );
        } else if !args.repair && !report.damaged.is_empty() {
            println!(
                "{} objects are damaged: `--repair` moves them aside so the next backup stores them again",
                report.damaged.len()
            );
        }
    }
    Ok(if report.problems.is_empty() {
        crate::error::exit::OK
    } else {
        crate::error::exit::FAILED
    })
}
