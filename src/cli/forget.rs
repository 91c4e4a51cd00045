//! `cbk forget NAME…`: delete backups by name (restic `forget` + `prune`), then collect the
//! objects no remaining backup references with prune's garbage collection.

use super::StoreArgs;

/// Arguments of `cbk forget`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backups to delete (every name must exist in the cluster scope, or nothing is deleted).
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Cluster whose backups these are (default: the plan's `[cluster] name`; any cluster with
    /// `--storage` alone).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also list every object key deleted (or, with --dry-run, that would be).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// Runs `cbk forget`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let grace = args
        .store
        .retention()?
        .map_or(crate::repo::prune::DEFAULT_GRACE_SECS, |r| {
            crate::repo::prune::grace_seconds(&r)
        });
    let store = args.store.open().await?;
    let cluster = args.store.cluster(args.cluster.as_deref())?;
    let access = args.store.access(store.as_ref()).await?;
    let r = crate::repo::prune::forget(
        store.as_ref(),
        &args.names,
        cluster.as_deref(),
        grace,
        args.dry_run,
        &access,
    )
    .await
    .map_err(|e| match e {
        crate::repo::prune::ForgetError::Unknown { .. } => miette::miette!(
            help = "`cbk list` shows the backups; nothing was deleted",
            "{e}"
        ),
        crate::repo::prune::ForgetError::Orphans { .. } => {
            miette::miette!(help = "nothing was deleted", "{e}")
        }
        other => miette::miette!("{other}"),
    })?;
    super::prune::finish(
        store.as_ref(),
        cluster.as_deref(),
        r,
        args.verbose,
        &args.output,
        // Metrics are prune's (a scheduled job); forget is run by hand.
        &super::MetricsArgs { metrics_file: None },
    )
    .await
}
