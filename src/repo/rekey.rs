//! `cbk key add|remove`: re-seals the small objects of an encrypted repository (every data key
//! `<key>.key` and every node manifest) to a new recipient list, then records its fingerprints
//! in the marker. SSTable objects are never read or rewritten: their data keys do not change.
//! An interrupted run is repeated as is (the marker changes last, and the identity opens both
//! the old and the new seals).

use super::encrypted::{
    Access, marker_encryption, open_manifest, seal_manifest, seal_probe, seal_table,
};
use super::inventory::RepoError;
use crate::crypt::{Identities, MarkerEncryption, Recipients};
use crate::store::Store;

/// What a re-seal did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rekeyed {
    pub data_keys: u64,
    pub manifests: u64,
    /// Fingerprints now in the marker.
    pub recipients: Vec<String>,
}

/// Re-seals every data key and node manifest from the recipients `from` (what the marker must
/// record) to `to`, opening them with `ids`.
pub async fn rekey(
    store: &dyn Store,
    ids: &Identities,
    from: &Recipients,
    to: &Recipients,
) -> Result<Rekeyed, RepoError> {
    let corrupt = |message: String| RepoError::Corrupt {
        key: super::keys::FORMAT_KEY.into(),
        message,
    };
    let Some(marker) = marker_encryption(store).await? else {
        return Err(corrupt(
            "the repository is not encrypted: there are no keys to change".into(),
        ));
    };
    if marker != MarkerEncryption::of(from) && marker != MarkerEncryption::of(to) {
        return Err(corrupt(format!(
            "the plan's recipients ({}) are not the repository's ({}): list the repository's recipients in the plan first",
            from.fingerprints().join(", "),
            marker.recipients.join(", ")
        )));
    }
    let mut out = Rekeyed::default();
    for o in store.list("nodes/").await? {
        let k = &o.key;
        if crate::crypt::stream::is_key_object(k) && k.contains("/sst/") {
            let bytes = store.get_bytes(k).await?;
            let body = crate::crypt::parts::reseal(&bytes, ids, to, k)?;
            store.put_bytes(k, body.into()).await?;
            out.data_keys += 1;
        } else if k.contains("/manifests/") {
            let bytes = store.get_bytes(k).await?;
            let mut m = open_manifest(&bytes, k, &Access::Identity(ids.clone()))?;
            seal_probe(&mut m.node, to)?;
            for t in &mut m.tables {
                seal_table(t, to)?;
            }
            store.put_bytes(k, seal_manifest(&m, to)?.into()).await?;
            out.manifests += 1;
        }
    }
    let mut doc: serde_json::Value =
        super::inventory::read_json(store, super::keys::FORMAT_KEY).await?;
    let enc = MarkerEncryption::of(to);
    doc["encryption"] = serde_json::to_value(&enc).map_err(|e| corrupt(e.to_string()))?;
    let body = serde_json::to_vec_pretty(&doc).map_err(|e| corrupt(e.to_string()))?;
    store
        .put_bytes(super::keys::FORMAT_KEY, body.into())
        .await?;
    out.recipients = enc.recipients;
    Ok(out)
}
