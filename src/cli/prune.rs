//! `cbk prune`: apply the plan's retention policy, clean up incomplete backups and
//! garbage-collect components no backup references (after the grace period).

use super::StoreArgs;
use crate::repo::prune::{Action, PruneReport};

/// Arguments of `cbk prune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Cluster whose backups to prune (default: the plan's `[cluster] name`).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Keep the newest N backups (overrides the plan; at least 1: the newest backup is always
    /// kept, `cbk forget` deletes backups by name).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Also list every object key deleted (or, with --dry-run, that would be).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(flatten)]
    pub metrics: super::MetricsArgs,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// Runs `cbk prune`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let mut policy = args.store.retention()?.unwrap_or_default();
    if args.keep_last.is_some() {
        policy.keep_last = args.keep_last;
    }
    if policy.keep_last == Some(0) {
        let from = if args.keep_last.is_some() {
            "--keep-last 0"
        } else {
            "keep_last = 0 (in [retention])"
        };
        eprintln!(
            "error: {from} is refused: prune always keeps the newest complete backup, so 0 \
             cannot mean 0\n  help: keep at least 1 (--keep-last 1), or delete backups by name \
             with `cbk forget NAME…`"
        );
        return Ok(crate::error::exit::USAGE);
    }
    if policy.keep_last.is_none()
        && policy.keep_daily.is_none()
        && policy.keep_weekly.is_none()
        && policy.keep_monthly.is_none()
    {
        return Err(miette::miette!(
            help = "add a [retention] section to the plan, or pass --keep-last N",
            "no retention policy: refusing to guess what to delete"
        ));
    }
    let store = args.store.open().await?;
    let cluster = args.store.cluster(args.cluster.as_deref())?;
    if cluster.is_none() {
        let all = crate::repo::inventory::backups(store.as_ref(), None)
            .await
            .map_err(|e| miette::miette!("{e}"))?;
        let clusters: std::collections::BTreeSet<&str> =
            all.iter().map(|b| b.entry.cluster.as_str()).collect();
        if clusters.len() > 1 {
            return Err(miette::miette!(
                help = "pass --plan PLAN.toml or --cluster NAME",
                "{} holds backups of several clusters ({}): refusing to prune them as one",
                store.describe(),
                clusters.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let selection = args.store.backup_config()?.map(|b| b.selection());
    let access = args.store.access(store.as_ref()).await?;
    let r = crate::repo::prune::prune(
        store.as_ref(),
        &policy,
        cluster.as_deref(),
        selection.as_ref(),
        args.dry_run,
        &access,
    )
    .await
    .map_err(|e| miette::miette!("{e}"))?;
    finish(
        store.as_ref(),
        cluster.as_deref(),
        r,
        args.verbose,
        &args.output,
        &args.metrics,
    )
    .await
}

/// Prints a prune or forget report (why each backup is kept or deleted, restic-style) and
/// writes the metrics; shared by `cbk prune` and `cbk forget`.
pub(super) async fn finish(
    store: &dyn crate::store::Store,
    cluster: Option<&str>,
    mut r: PruneReport,
    verbose: bool,
    output: &super::OutputArgs,
    metrics: &super::MetricsArgs,
) -> miette::Result<u8> {
    if !verbose {
        r.deleted_keys.clear();
    }
    if output.is_json() {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        print_human(&r, verbose);
    }
    let code = crate::error::exit::OK;
    if !metrics.wanted() {
        return Ok(code);
    }
    // The store as it is now (after the deletions), for the store-level gauges.
    let left = crate::repo::inventory::backups(store, cluster)
        .await
        .map_err(|e| miette::miette!("{e}"))?;
    let label = cluster
        .map(String::from)
        .or_else(|| left.first().map(|b| b.entry.cluster.clone()))
        .unwrap_or_default();
    let now = jiff::Timestamp::now();
    Ok(metrics.write(code, || {
        crate::exec::repo_metrics::prune_gauges(&label, &r, now)
            + &crate::exec::repo_metrics::store_gauges(&left, now)
    }))
}

fn print_human(r: &PruneReport, verbose: bool) {
    let width = r
        .decisions
        .iter()
        .map(|d| d.backup.len())
        .max()
        .unwrap_or(0);
    for d in &r.decisions {
        let action = match (d.action, &d.locked_until) {
            (Action::Keep, _) => "keep:  ",
            (Action::Delete, None) => "delete:",
            (Action::Delete, Some(_)) => "locked:",
        };
        println!("{:<width$}  {action} {}", d.backup, d.reasons.join(", "));
    }
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    println!("kept {} backups: {}", r.kept.len(), r.kept.join(", "));
    println!(
        "{verb} {} backups: {}",
        r.deleted_backups.len(),
        r.deleted_backups.join(", ")
    );
    println!(
        "{verb} {} incomplete runs: {}",
        r.deleted_incomplete.len(),
        r.deleted_incomplete.join(", ")
    );
    println!(
        "{verb} {} unreferenced objects ({} bytes)",
        r.deleted_objects, r.deleted_bytes
    );
    if !r.deleted_keys.is_empty() {
        println!("{verb} {} object keys:", r.deleted_keys.len());
        for k in &r.deleted_keys {
            println!("  {k}");
        }
    }
    print_locked(r, verbose);
}

/// What stays because S3 Object Lock still holds it, with the date a prune can delete it.
fn print_locked(r: &PruneReport, verbose: bool) {
    if !r.locked_backups.is_empty() {
        println!(
            "left under Object Lock (deleted by a prune after the date) {} backups: {}",
            r.locked_backups.len(),
            r.locked_backups
                .iter()
                .map(|b| format!("{} (until {})", b.backup, b.until))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(last) = r.locked_objects.iter().map(|o| &o.until).max() {
        println!(
            "left under Object Lock {} unreferenced objects ({} bytes), the last until {last}",
            r.locked_objects.len(),
            r.locked_bytes
        );
        if verbose {
            for o in &r.locked_objects {
                println!("  {} (until {})", o.key, o.until);
            }
        }
    }
}
