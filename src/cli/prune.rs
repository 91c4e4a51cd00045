//! `cbk prune`: apply the plan's retention policy, clean up incomplete backups and
//! garbage-collect components no backup references (after the grace period).

use super::StoreArgs;

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
    /// Keep the newest N backups (overrides the plan).
    #[arg(long)]
    pub keep_last: Option<u32>,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// Runs `cbk prune`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let mut policy = args.store.retention()?.unwrap_or_default();
    if args.keep_last.is_some() {
        policy.keep_last = args.keep_last;
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
    let selection = args
        .store
        .backup_config()?
        .map(|b| crate::repo::manifest::Selection::of(&b));
    let ids = args.store.identity(store.as_ref()).await?;
    let r = crate::repo::prune::prune(
        store.as_ref(),
        &policy,
        cluster.as_deref(),
        selection.as_ref(),
        args.dry_run,
        ids.as_ref(),
    )
    .await
    .map_err(|e| miette::miette!("{e}"))?;
    if args.output.is_json() {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
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
    }
    Ok(crate::error::exit::OK)
}
