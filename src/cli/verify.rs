//! `cbk verify`: a backup is complete (every object present with its size) and, with `--deep`,
//! intact (every object read back and checked against its CRC32).

use super::StoreArgs;
use crate::exec::repo_metrics;
use crate::repo::{inventory, keys, quarantine, verify};

/// Arguments of `cbk verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup name (default: `latest`, the newest complete snapshot backup of the cluster).
    #[arg(conflicts_with = "all")]
    pub name: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Cluster whose backups to verify (default: the plan's `[cluster] name`).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Verify every backup of the cluster (every backup in the store with `--storage` alone);
    /// an incomplete backup is a problem.
    #[arg(long)]
    pub all: bool,
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
    pub metrics: super::MetricsArgs,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// The backups to verify: the named one, every one of the scope (`--all`), or `latest`.
fn targets(
    args: &Args,
    scoped: &[inventory::BackupInfo],
    cluster: Option<&str>,
    store: &str,
) -> miette::Result<Vec<String>> {
    if let Some(n) = &args.name {
        return Ok(vec![n.clone()]);
    }
    let of_cluster = || {
        cluster
            .map(|c| format!(" of cluster {c}"))
            .unwrap_or_default()
    };
    if args.all {
        if scoped.is_empty() {
            return Err(miette::miette!("no backups{} in {store}", of_cluster()));
        }
        return Ok(scoped.iter().map(|b| b.entry.backup.clone()).collect());
    }
    let clusters: std::collections::BTreeSet<&str> =
        scoped.iter().map(|b| b.entry.cluster.as_str()).collect();
    if cluster.is_none() && clusters.len() > 1 {
        return Err(miette::miette!(
            help = "pass --plan PLAN.toml, --cluster NAME, a backup name or --all",
            "{store} holds backups of several clusters ({}): which one's latest?",
            clusters.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    inventory::latest(scoped, None)
        .map(|b| vec![b.entry.backup.clone()])
        .ok_or_else(|| miette::miette!("no complete snapshot backup{} in {store}", of_cluster()))
}

/// Runs `cbk verify`; exit 1 when a problem is found.
pub async fn run(args: Args) -> miette::Result<u8> {
    let store = args.store.open().await?;
    // The quick check reads what node manifests keep in clear; --deep opens every object.
    let access = match args.deep {
        true => {
            crate::repo::encrypted::Access::of(args.store.identity(store.as_ref()).await?.as_ref())
        }
        false => args.store.access(store.as_ref()).await?,
    };
    let cluster = args.store.cluster(args.cluster.as_deref())?;
    let scoped = if args.name.is_none() || args.all || args.metrics.wanted() {
        inventory::backups(store.as_ref(), cluster.as_deref())
            .await
            .map_err(|e| miette::miette!("{e}"))?
    } else {
        Vec::new()
    };
    let names = targets(&args, &scoped, cluster.as_deref(), &store.describe())?;
    let mut reports = Vec::new();
    let mut moved = Vec::new();
    for name in &names {
        let info = scoped.iter().find(|b| &b.entry.backup == name);
        let report = match info {
            // An incomplete backup has nothing whole to read: it is one problem.
            Some(b) if !b.complete => verify::Report {
                backup: name.clone(),
                problems: vec![verify::Problem {
                    host: "-".into(),
                    key: keys::catalog_key(name),
                    message: format!("backup is incomplete: missing {}", b.missing.join(", ")),
                }],
                ..Default::default()
            },
            _ => verify::verify(store.clone(), name, args.deep, args.concurrency, &access)
                .await
                .map_err(|e| miette::miette!("{e}"))?,
        };
        if args.repair {
            moved.extend(
                quarantine::quarantine(store.as_ref(), &report.damaged, &quarantine::stamp_now())
                    .await
                    .map_err(|e| miette::miette!("repair: {e}"))?,
            );
        }
        reports.push(report);
    }
    let problems: usize = reports.iter().map(|r| r.problems.len()).sum();
    if args.output.is_json() {
        let mut v = if args.all {
            serde_json::json!({"backups": &reports, "problems": problems})
        } else {
            serde_json::to_value(&reports[0]).unwrap_or_default()
        };
        if args.repair {
            v["quarantined"] = serde_json::to_value(&moved).unwrap_or_default();
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for report in &reports {
            print_report(report);
        }
        if args.all {
            let bad = reports.iter().filter(|r| !r.problems.is_empty()).count();
            println!(
                "verified {} backups: {} with problems ({problems} problems)",
                reports.len(),
                bad
            );
        }
        print_repair(&reports, &moved, args.repair);
    }
    let code = if problems == 0 {
        crate::error::exit::OK
    } else {
        crate::error::exit::FAILED
    };
    let now = jiff::Timestamp::now();
    Ok(args.metrics.write(code, || {
        let mut outcomes: std::collections::BTreeMap<String, repo_metrics::VerifyOutcome> =
            Default::default();
        for r in &reports {
            let c = scoped
                .iter()
                .find(|b| b.entry.backup == r.backup)
                .map(|b| b.entry.cluster.clone())
                .or_else(|| cluster.clone())
                .unwrap_or_default();
            let o = outcomes.entry(c).or_default();
            o.deep = args.deep;
            o.backups += 1;
            o.files += r.files;
            o.bytes += r.bytes;
            o.problems += r.problems.len() as u64;
        }
        repo_metrics::verify_gauges(&outcomes, now) + &repo_metrics::store_gauges(&scoped, now)
    }))
}

fn print_report(report: &verify::Report) {
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
}

fn print_repair(reports: &[verify::Report], moved: &[quarantine::Quarantined], repair: bool) {
    for q in moved {
        println!("QUARANTINED {} -> {}", q.key, q.moved_to);
    }
    let damaged: usize = reports.iter().map(|r| r.damaged.len()).sum();
    if !moved.is_empty() {
        println!(
            "{} damaged objects moved aside: the next backup of their nodes stores them again \
             (the files must still be on the nodes); then verify again",
            moved.len()
        );
    } else if !repair && damaged > 0 {
        println!(
            "{damaged} objects are damaged: `--repair` moves them aside so the next backup stores them again"
        );
    }
}
