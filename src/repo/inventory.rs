//! Reading the repository back: the backups it holds (from the small index), the backups that
//! never completed (scratch objects without an index entry), and their documents.

use super::keys;
use super::manifest::{Catalog, IndexEntry, NodeManifest};
use crate::store::{Store, StoreError};
use std::collections::BTreeSet;

/// Errors reading the repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`{key}` is not a valid cbk document: {message}")]
    Corrupt { key: String, message: String },
    #[error("no backup named `{0}` in the store")]
    NoSuchBackup(String),
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

/// Every complete backup, oldest first (one listing of `index/` and one small read each).
pub async fn list_backups(store: &dyn Store) -> Result<Vec<IndexEntry>, RepoError> {
    let mut out = Vec::new();
    for o in store.list(keys::INDEX_PREFIX).await? {
        out.push(read_json::<IndexEntry>(store, &o.key).await?);
    }
    out.sort_by(|a, b| (&a.created, &a.backup).cmp(&(&b.created, &b.backup)));
    Ok(out)
}

/// Names of runs that left scratch objects but no index entry (incomplete or in progress),
/// with the time of their newest object.
pub async fn incomplete_runs(
    store: &dyn Store,
    complete: &[IndexEntry],
) -> Result<Vec<(String, Option<i64>)>, RepoError> {
    let done: BTreeSet<&str> = complete.iter().map(|e| e.backup.as_str()).collect();
    let mut runs: std::collections::BTreeMap<String, Option<i64>> = Default::default();
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

/// The catalog and every node manifest of a backup.
pub async fn load_backup(
    store: &dyn Store,
    name: &str,
) -> Result<(Catalog, Vec<NodeManifest>), RepoError> {
    let catalog: Catalog = match read_json(store, &keys::catalog_key(name)).await {
        Err(RepoError::Store(StoreError::NotFound(_))) => {
            return Err(RepoError::NoSuchBackup(name.to_string()));
        }
        other => other?,
    };
    let mut nodes = Vec::new();
    for h in &catalog.hosts {
        nodes.push(read_json::<NodeManifest>(store, &h.manifest).await?);
    }
    Ok((catalog, nodes))
}
