//! What client-side encryption changes in the repository: the marker names the recipients'
//! fingerprints, node manifests are sealed to the recipients as a whole, and the text fields
//! of per-table results and probe results (schema.cql, the snapshot's manifest.json, tokens)
//! are sealed one by one, so the controller can merge them without being able to read them.

use super::inventory::{RepoError, read_json};
use super::manifest::{NodeManifest, ProbeInfo, TableEntry};
use crate::crypt::seal::{self, open_field, seal_field};
use crate::crypt::{CryptError, Identities, MarkerEncryption, Recipients};
use crate::store::{Store, StoreError};

/// The marker's `encryption`: `None` for a plain repository or a store without a marker.
pub async fn marker_encryption(store: &dyn Store) -> Result<Option<MarkerEncryption>, RepoError> {
    let marker: serde_json::Value = match read_json(store, super::keys::FORMAT_KEY).await {
        Ok(v) => v,
        Err(RepoError::Store(StoreError::NotFound(_))) => return Ok(None),
        Err(e) => return Err(e),
    };
    match marker.get("encryption") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| RepoError::Corrupt {
                key: super::keys::FORMAT_KEY.into(),
                message: format!("`encryption`: {e}"),
            }),
    }
}

/// The identity for reading a repository: `None` when it is plain, an error naming the
/// variable to set when it is encrypted and no identity is given.
pub async fn identity_for(
    store: &dyn Store,
    identity_env: Option<&str>,
) -> Result<Option<Identities>, RepoError> {
    match marker_encryption(store).await? {
        None => Ok(None),
        Some(_) => Ok(Some(Identities::from_env(identity_env)?)),
    }
}

/// Seals the text fields of one table's results.
pub fn seal_table(t: &mut TableEntry, to: &Recipients) -> Result<(), CryptError> {
    for f in [&mut t.schema_cql, &mut t.snapshot_manifest] {
        if let Some(text) = f.as_deref() {
            *f = Some(seal_field(text, to)?);
        }
    }
    Ok(())
}

/// Seals the tokens of probe results.
pub fn seal_probe(p: &mut ProbeInfo, to: &Recipients) -> Result<(), CryptError> {
    let tokens = std::mem::take(&mut p.tokens).join(",");
    p.sealed_tokens = Some(seal_field(&tokens, to)?);
    Ok(())
}

/// Seals a whole node manifest (its fields already sealed by the node).
pub fn seal_manifest(m: &NodeManifest, to: &Recipients) -> Result<Vec<u8>, CryptError> {
    let json = serde_json::to_vec_pretty(m).map_err(|e| CryptError::Encrypt(e.to_string()))?;
    seal::seal(&json, to)
}

/// Reads a node manifest: plain when `ids` is `None` (a plain repository), sealed otherwise.
/// A sealed manifest in a plain repository, or a plain one in an encrypted repository, is
/// refused (the repository mixes encrypted and plain objects).
pub fn open_manifest(
    bytes: &[u8],
    key: &str,
    ids: Option<&Identities>,
) -> Result<NodeManifest, RepoError> {
    let corrupt = |e: serde_json::Error| RepoError::Corrupt {
        key: key.into(),
        message: e.to_string(),
    };
    let Some(ids) = ids else {
        if seal::is_sealed(bytes) {
            return Err(RepoError::Corrupt {
                key: key.into(),
                message: "it is encrypted, but the repository's marker says the repository is not (it mixes encrypted and plain objects)".into(),
            });
        }
        return serde_json::from_slice(bytes).map_err(corrupt);
    };
    let plain = seal::open(bytes, ids, key)?;
    let mut m: NodeManifest = serde_json::from_slice(&plain).map_err(corrupt)?;
    if let Some(t) = m.node.sealed_tokens.take() {
        let text = open_field(&t, ids, &format!("{key} (tokens)"))?;
        m.node.tokens = text
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    for t in &mut m.tables {
        let what = format!("{key} ({}.{})", t.keyspace, t.table);
        for f in [&mut t.schema_cql, &mut t.snapshot_manifest] {
            if let Some(text) = f.as_deref() {
                *f = Some(open_field(text, ids, &what)?);
            }
        }
    }
    Ok(m)
}

/// Reads and opens a node manifest from the store.
pub async fn read_manifest(
    store: &dyn Store,
    key: &str,
    ids: Option<&Identities>,
) -> Result<NodeManifest, RepoError> {
    let bytes = store.get_bytes(key).await?;
    open_manifest(&bytes, key, ids)
}
