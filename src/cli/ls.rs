//! `cbk ls BACKUP`: what one backup holds, host by host, table by table, file by file (restic
//! `ls`), read from its catalog and node manifests.

use super::StoreArgs;
use crate::repo::inventory;
use crate::repo::manifest::{FileEntry, Totals};
use serde::Serialize;

/// Arguments of `cbk ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup name, or `latest` (the newest complete snapshot backup of the cluster).
    #[arg(value_name = "BACKUP")]
    pub name: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Cluster whose `latest` to show (default: the plan's `[cluster] name`).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Exact byte counts instead of human sizes (KiB, MiB, GiB).
    #[arg(long)]
    pub bytes: bool,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

#[derive(Debug, Serialize)]
struct Listing {
    backup: String,
    kind: crate::repo::manifest::BackupKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<String>,
    cluster: String,
    created: String,
    completed: String,
    totals: Totals,
    hosts: Vec<HostListing>,
}

#[derive(Debug, Serialize)]
struct HostListing {
    host: String,
    host_id: String,
    dc: String,
    rack: String,
    totals: Totals,
    tables: Vec<TableListing>,
}

#[derive(Debug, Serialize)]
struct TableListing {
    keyspace: String,
    table: String,
    id: String,
    totals: Totals,
    files: Vec<FileEntry>,
}

/// Runs `cbk ls`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let store = args.store.open().await?;
    let err = |e: inventory::RepoError| miette::miette!("{e}");
    let name = if args.name == "latest" {
        let cluster = args.store.cluster(args.cluster.as_deref())?;
        let backups = inventory::backups(store.as_ref(), cluster.as_deref())
            .await
            .map_err(err)?;
        inventory::latest(&backups, None)
            .map(|b| b.entry.backup.clone())
            .ok_or_else(|| miette::miette!("no complete snapshot backup in {}", store.describe()))?
    } else {
        args.name.clone()
    };
    // File lists stay in clear in an encrypted repository: no identity needed.
    let access = args.store.access(store.as_ref()).await?;
    let (catalog, nodes) = inventory::load_backup(store.as_ref(), &name, &access)
        .await
        .map_err(|e| match e {
            inventory::RepoError::NoSuchBackup(_) => {
                miette::miette!(help = "`cbk list` shows the backups", "{e}")
            }
            other => err(other),
        })?;
    let hosts = catalog
        .hosts
        .iter()
        .zip(nodes)
        .map(|(h, m)| HostListing {
            host: h.name.clone(),
            host_id: h.host_id.clone(),
            dc: h.dc.clone(),
            rack: h.rack.clone(),
            totals: m.totals.clone(),
            tables: m
                .tables
                .into_iter()
                .map(|t| TableListing {
                    totals: Totals::of(std::slice::from_ref(&t)),
                    keyspace: t.keyspace,
                    table: t.table,
                    id: t.id,
                    files: t.files,
                })
                .collect(),
        })
        .collect();
    let listing = Listing {
        backup: catalog.backup,
        kind: catalog.kind,
        base: catalog.base,
        cluster: catalog.cluster,
        created: catalog.created,
        completed: catalog.completed,
        totals: catalog.totals,
        hosts,
    };
    if args.output.is_json() {
        let text = serde_json::to_string_pretty(&listing).map_err(|e| miette::miette!("{e}"))?;
        println!("{text}");
    } else {
        print_human(&listing, args.bytes);
    }
    Ok(crate::error::exit::OK)
}

/// A size for people (`1.50 MiB`), or exact bytes with `--bytes`.
fn size(n: u64, exact: bool) -> String {
    if exact {
        n.to_string()
    } else {
        indicatif::BinaryBytes(n).to_string()
    }
}

fn print_human(l: &Listing, exact: bool) {
    let kind = match l.kind {
        crate::repo::manifest::BackupKind::Snapshot => "snapshot".to_string(),
        crate::repo::manifest::BackupKind::Incremental => {
            format!("incremental on {}", l.base.as_deref().unwrap_or("?"))
        }
    };
    println!(
        "backup {} ({kind}) of cluster {}, created {}: {} hosts, {} files, {}",
        l.backup,
        l.cluster,
        l.created,
        l.hosts.len(),
        l.totals.files,
        size(l.totals.bytes, exact)
    );
    println!(
        "{:<24} {:<40} {:>6} {:>12} {:>12}",
        "HOST", "TABLE", "FILES", "SIZE", "STORED"
    );
    for h in &l.hosts {
        for t in &h.tables {
            println!(
                "{:<24} {:<40} {:>6} {:>12} {:>12}",
                h.host,
                format!("{}.{}", t.keyspace, t.table),
                t.totals.files,
                size(t.totals.bytes, exact),
                size(t.totals.stored_bytes, exact)
            );
        }
    }
    for h in &l.hosts {
        println!();
        println!("{} (host id {}):", h.host, h.host_id);
        for t in &h.tables {
            let folder = format!("{}/{}-{}", t.keyspace, t.table, t.id);
            for f in &t.files {
                println!(
                    "  {:>12}  {folder}/{}  -> {}",
                    size(f.size, exact),
                    f.path,
                    f.key
                );
            }
        }
    }
}
