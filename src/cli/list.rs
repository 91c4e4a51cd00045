//! `cbk list`: the backups in a store, from the small index (never a walk of the bucket).

use super::StoreArgs;
use crate::repo::inventory;

/// Arguments of `cbk list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cbk list`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let store = args.store.open().await?;
    let entries = inventory::list_backups(store.as_ref())
        .await
        .map_err(|e| miette::miette!("{e}"))?;
    let incomplete = inventory::incomplete_runs(store.as_ref(), &entries)
        .await
        .map_err(|e| miette::miette!("{e}"))?;
    if args.json {
        let v = serde_json::json!({
            "backups": entries,
            "incomplete": incomplete.iter().map(|(n, t)| serde_json::json!({"backup": n, "last_write": t})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(crate::error::exit::OK);
    }
    println!(
        "{:<32} {:<11} {:<24} {:>5} {:>8} {:>12}  status",
        "BACKUP", "KIND", "CREATED", "HOSTS", "FILES", "BYTES"
    );
    for e in &entries {
        let kind = match e.kind {
            crate::repo::manifest::BackupKind::Snapshot => "snapshot",
            crate::repo::manifest::BackupKind::Incremental => "incremental",
        };
        println!(
            "{:<32} {:<11} {:<24} {:>5} {:>8} {:>12}  complete",
            e.backup,
            kind,
            e.created,
            e.hosts.len(),
            e.totals.files,
            e.totals.bytes
        );
    }
    for (name, _) in &incomplete {
        println!(
            "{name:<32} {:<11} {:<24} {:>5} {:>8} {:>12}  INCOMPLETE",
            "?", "?", "-", "-", "-"
        );
    }
    if entries.is_empty() && incomplete.is_empty() {
        println!("(no backups in {})", store.describe());
    }
    Ok(crate::error::exit::OK)
}
