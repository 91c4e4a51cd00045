//! Reading the repository back: the backups it holds, the backups that never completed (scratch
//! objects without a catalog), their documents, and the one definition of `latest`.
//!
//! The truth is the catalog and the node manifests; the index is a cache of the catalogs of
//! complete backups. [`backups`] confirms every backup from one read of its catalog plus one
//! listing of node manifests per node (not per backup), so a deleted index entry never makes a
//! complete backup look incomplete, and a deleted node manifest never leaves a backup
//! `complete`.

use super::keys;
use super::manifest::{BackupKind, Catalog, IndexEntry, NodeManifest};
use crate::store::{Store, StoreError};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet};

/// Errors reading the repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypt(#[from] crate::crypt::CryptError),
    #[error("`{key}` is not a valid cbk document: {message}")]
    Corrupt { key: String, message: String },
    #[error("no backup named `{0}` in the store")]
    NoSuchBackup(String),
    #[error(
        "{0} is not a cbk repository: it holds no `{key}` (check the URL and prefix; a repository gets its marker with its first backup)",
        key = super::keys::FORMAT_KEY
    )]
    NotARepository(String),
    #[error(
        "{store} is a cbk repository of format version {found}; this cbk reads version {known} (use a newer cbk)"
    )]
    NewerFormat {
        store: String,
        found: u64,
        known: u32,
    },
}

/// Reads the repository marker and checks its format version: a store without one is not a
/// repository (rather than an empty one), one of a newer format is refused by name.
pub async fn check_marker(store: &dyn Store) -> Result<(), RepoError> {
    let marker: serde_json::Value = match read_json(store, super::keys::FORMAT_KEY).await {
        Ok(v) => v,
        Err(RepoError::Store(StoreError::NotFound(_))) => {
            return Err(RepoError::NotARepository(store.describe()));
        }
        Err(e) => return Err(e),
    };
    let version = marker.get("version").and_then(serde_json::Value::as_u64);
    match version {
        Some(v) if v <= u64::from(super::REPO_FORMAT_VERSION) => Ok(()),
        Some(v) => Err(RepoError::NewerFormat {
            store: store.describe(),
            found: v,
            known: super::REPO_FORMAT_VERSION,
        }),
        None => Err(RepoError::Corrupt {
            key: super::keys::FORMAT_KEY.to_string(),
            message: "no `version`".into(),
        }),
    }
}

/// Reads and parses one JSON document.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<T, RepoError> {
    let bytes = store.get_bytes(key).await?;
    serde_json::from_slice(&bytes).map_err(|e| RepoError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// Documents read at once while listing.
const READ_CONCURRENCY: usize = 16;

/// One backup as the store holds it: its catalog (or, when the catalog is gone, its stale index
/// entry) and whether it is complete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupInfo {
    #[serde(flatten)]
    pub entry: IndexEntry,
    /// The catalog exists and every node manifest it names is present.
    pub complete: bool,
    /// An index entry exists.
    pub indexed: bool,
    /// What makes it incomplete (a missing catalog or node manifest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Node manifest keys named by the catalog.
    #[serde(skip)]
    pub manifests: Vec<String>,
    /// Host ids named by the catalog.
    #[serde(skip)]
    pub host_ids: Vec<String>,
    /// What the backup plan selected (when the catalog records it).
    #[serde(skip)]
    pub selection: Option<super::manifest::Selection>,
}

impl BackupInfo {
    /// A backup known complete from its index entry alone (tests, callers that checked).
    pub fn assumed_complete(entry: IndexEntry) -> BackupInfo {
        BackupInfo {
            entry,
            complete: true,
            indexed: true,
            missing: Vec::new(),
            manifests: Vec::new(),
            host_ids: Vec::new(),
            selection: None,
        }
    }

    fn created(&self) -> Option<jiff::Timestamp> {
        self.entry.created.parse().ok()
    }
}

fn name_of(key: &str, prefix: &str) -> Option<String> {
    key.strip_prefix(prefix)?
        .strip_suffix(".json")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(String::from)
}

/// Every backup with a catalog or an index entry, of cluster `cluster` (all clusters with
/// `None`), oldest first by creation time. Completeness comes from the catalog and the node
/// manifests: one listing of `catalog/` and `index/`, one read per catalog, one listing of
/// `nodes/<host_id>/manifests/` per node.
pub async fn backups(
    store: &dyn Store,
    cluster: Option<&str>,
) -> Result<Vec<BackupInfo>, RepoError> {
    let indexed: BTreeSet<String> = store
        .list(keys::INDEX_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| name_of(&o.key, keys::INDEX_PREFIX))
        .collect();
    let names: Vec<String> = store
        .list(keys::CATALOG_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| name_of(&o.key, keys::CATALOG_PREFIX))
        .collect();
    // Futures collected first: a closure inside the stream type trips the `Send` check of
    // callers (higher-ranked lifetimes).
    let reads: Vec<_> = names.iter().map(|n| read_catalog(store, n)).collect();
    let catalogs: Vec<Option<Catalog>> = stream::iter(reads)
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let catalogs: Vec<Catalog> = catalogs
        .into_iter()
        .flatten()
        .filter(|c| cluster.is_none_or(|name| c.cluster == name))
        .collect();
    let host_ids: BTreeSet<&str> = catalogs
        .iter()
        .flat_map(|c| c.hosts.iter().map(|h| h.host_id.as_str()))
        .collect();
    let lists: Vec<_> = host_ids
        .into_iter()
        .map(|h| list_keys(store, keys::node_manifests_prefix(h)))
        .collect();
    let present: Vec<Vec<String>> = stream::iter(lists)
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let present: BTreeSet<String> = present.into_iter().flatten().collect();
    let mut out: Vec<BackupInfo> = Vec::new();
    let mut seen = BTreeSet::new();
    for c in catalogs {
        let missing: Vec<String> = c
            .hosts
            .iter()
            .filter(|h| !present.contains(&h.manifest))
            .map(|h| format!("node manifest of {} (`{}`)", h.name, h.manifest))
            .collect();
        seen.insert(c.backup.clone());
        out.push(BackupInfo {
            entry: IndexEntry::from(&c),
            complete: missing.is_empty() && !c.hosts.is_empty(),
            indexed: indexed.contains(&c.backup),
            missing,
            manifests: c.hosts.iter().map(|h| h.manifest.clone()).collect(),
            host_ids: c.hosts.iter().map(|h| h.host_id.clone()).collect(),
            selection: c.selection.clone(),
        });
    }
    // Index entries whose catalog is gone: listed, never complete.
    for name in indexed.iter().filter(|n| !seen.contains(*n)) {
        let entry: IndexEntry = match read_json(store, &keys::index_key(name)).await {
            Err(RepoError::Store(StoreError::NotFound(_))) => continue,
            other => other?,
        };
        if cluster.is_some_and(|c| entry.cluster != c) {
            continue;
        }
        out.push(BackupInfo {
            entry,
            complete: false,
            indexed: true,
            missing: vec![format!("catalog (`{}`)", keys::catalog_key(name))],
            manifests: Vec::new(),
            host_ids: Vec::new(),
            selection: None,
        });
    }
    out.sort_by(|a, b| (a.created(), &a.entry.backup).cmp(&(b.created(), &b.entry.backup)));
    Ok(out)
}

async fn read_catalog(store: &dyn Store, name: &str) -> Result<Option<Catalog>, RepoError> {
    match read_json::<Catalog>(store, &keys::catalog_key(name)).await {
        Err(RepoError::Store(StoreError::NotFound(_))) => Ok(None),
        other => other.map(Some),
    }
}

async fn list_keys(store: &dyn Store, prefix: String) -> Result<Vec<String>, RepoError> {
    Ok(store
        .list(&prefix)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect())
}

/// Every complete backup of `cluster` (all clusters with `None`), oldest first.
pub async fn list_backups(
    store: &dyn Store,
    cluster: Option<&str>,
) -> Result<Vec<IndexEntry>, RepoError> {
    Ok(backups(store, cluster)
        .await?
        .into_iter()
        .filter(|b| b.complete)
        .map(|b| b.entry)
        .collect())
}

/// THE definition of `latest`, used by restore (`latest`, `latest-before:`), the base of an
/// incremental backup, `cbk verify` and `cbk list`: the newest complete snapshot backup by
/// creation time (the plan's `now`; names are only a tie-break), created at or before `before`
/// when given. `backups` are those of one cluster ([`backups`] with the plan's cluster).
pub fn latest(backups: &[BackupInfo], before: Option<jiff::Timestamp>) -> Option<&BackupInfo> {
    backups
        .iter()
        .filter(|b| b.complete && b.entry.kind == BackupKind::Snapshot)
        .filter_map(|b| b.created().map(|t| (t, b)))
        .filter(|(t, _)| before.is_none_or(|limit| *t <= limit))
        .max_by(|(ta, a), (tb, b)| (ta, &a.entry.backup).cmp(&(tb, &b.entry.backup)))
        .map(|(_, b)| b)
}

/// What [`rebuild_index`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexRepair {
    /// Complete backups that had no index entry.
    pub added: Vec<String>,
    /// Index entries of backups that are not complete.
    pub removed: Vec<String>,
}

/// Makes the index match the catalogs: an entry for every complete backup, none for the others.
pub async fn rebuild_index(
    store: &dyn Store,
    backups: &[BackupInfo],
) -> Result<IndexRepair, RepoError> {
    let mut r = IndexRepair::default();
    for b in backups {
        if b.complete && !b.indexed {
            let body = serde_json::to_vec_pretty(&b.entry).map_err(|e| RepoError::Corrupt {
                key: keys::index_key(&b.entry.backup),
                message: e.to_string(),
            })?;
            store
                .put_bytes(&keys::index_key(&b.entry.backup), body.into())
                .await?;
            r.added.push(b.entry.backup.clone());
        } else if !b.complete && b.indexed {
            r.removed.push(b.entry.backup.clone());
        }
    }
    let doomed: Vec<String> = r.removed.iter().map(|n| keys::index_key(n)).collect();
    if !doomed.is_empty() {
        store.delete_many(&doomed).await?;
    }
    Ok(r)
}

/// Names of runs that left scratch objects but no catalog (incomplete or in progress), with the
/// time of their newest object. `known` are the backups [`backups`] found (of any cluster).
pub async fn incomplete_runs(
    store: &dyn Store,
    known: &[String],
) -> Result<Vec<(String, Option<i64>)>, RepoError> {
    let done: BTreeSet<&str> = known.iter().map(|e| e.as_str()).collect();
    let mut runs: BTreeMap<String, Option<i64>> = Default::default();
    for o in store.list("runs/").await? {
        let Some(name) = o
            .key
            .strip_prefix("runs/")
            .and_then(|r| r.split('/').next())
        else {
            continue;
        };
        if done.contains(name) {
            continue;
        }
        let e = runs.entry(name.to_string()).or_insert(None);
        *e = (*e).max(o.modified);
    }
    Ok(runs.into_iter().collect())
}

/// The catalog and every node manifest of a backup, read as `access` allows.
pub async fn load_backup(
    store: &dyn Store,
    name: &str,
    access: &super::encrypted::Access,
) -> Result<(Catalog, Vec<NodeManifest>), RepoError> {
    let catalog: Catalog = match read_json(store, &keys::catalog_key(name)).await {
        Err(RepoError::Store(StoreError::NotFound(_))) => {
            return Err(RepoError::NoSuchBackup(name.to_string()));
        }
        other => other?,
    };
    let mut nodes = Vec::new();
    for h in &catalog.hosts {
        nodes.push(super::encrypted::read_manifest(store, &h.manifest, access).await?);
    }
    Ok((catalog, nodes))
}
