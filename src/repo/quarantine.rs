//! Moving damaged objects out of the way (`cbk verify --repair`): each object is copied to
//! `quarantine/<time>/<key>` and only then removed from its key. Nothing is deleted: the copy
//! keeps the damaged bytes for inspection. With the key free, the next backup of the node
//! stores the file again from the node (a missing key is uploaded again), which heals every
//! backup that references it, since the key names the file's content.

use super::inventory::RepoError;
use crate::store::{NoCheckpoint, PutStreamOptions, Store};

/// Prefix under which damaged objects are kept.
pub const QUARANTINE_PREFIX: &str = "quarantine/";

/// Where a damaged object goes: `quarantine/<stamp>/<key>` (a repair run never overwrites
/// what an earlier one kept).
pub fn quarantine_key(stamp: &str, key: &str) -> String {
    format!("{QUARANTINE_PREFIX}{stamp}/{key}")
}

/// A repair run's stamp: the UTC time, to the second.
pub fn stamp_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// One object moved aside.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    pub key: String,
    pub moved_to: String,
    pub size: u64,
}

/// Moves each object of `keys` that is in the store to `quarantine/<stamp>/<key>`: a copy,
/// checked by its size, then the removal of the original. Objects already gone are skipped.
pub async fn quarantine(
    store: &dyn Store,
    keys: &[String],
    stamp: &str,
) -> Result<Vec<Quarantined>, RepoError> {
    let mut done = Vec::new();
    for key in keys {
        if key.starts_with(QUARANTINE_PREFIX) {
            continue;
        }
        let Some(meta) = store.head(key).await? else {
            continue;
        };
        let to = quarantine_key(stamp, key);
        let mut reader = store.get_stream(key).await?;
        let stats = store
            .put_stream(
                &to,
                &mut reader,
                PutStreamOptions {
                    sealer: None,
                    resume: None,
                    checkpoint: &NoCheckpoint,
                    progress: &|_| {},
                },
            )
            .await?;
        if stats.size != meta.size {
            return Err(RepoError::Corrupt {
                key: key.clone(),
                message: format!(
                    "copied {} of its {} bytes to `{to}`; the object was left in place",
                    stats.size, meta.size
                ),
            });
        }
        store.delete_many(std::slice::from_ref(key)).await?;
        done.push(Quarantined {
            key: key.clone(),
            moved_to: to,
            size: meta.size,
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::FsStore;

    #[tokio::test]
    async fn moves_present_objects_and_keeps_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_str().unwrap()).unwrap();
        store
            .put_bytes("nodes/h/sst/ks/t-1/nb-1-big-Data.db/s3", "abc".into())
            .await
            .unwrap();
        let keys = vec![
            "nodes/h/sst/ks/t-1/nb-1-big-Data.db/s3".to_string(),
            "nodes/h/sst/ks/t-1/nb-2-big-Data.db/s9".to_string(),
        ];
        let moved = quarantine(&store, &keys, "20260101T000000Z").await.unwrap();
        assert_eq!(
            moved,
            vec![Quarantined {
                key: keys[0].clone(),
                moved_to: "quarantine/20260101T000000Z/nodes/h/sst/ks/t-1/nb-1-big-Data.db/s3"
                    .into(),
                size: 3,
            }]
        );
        assert!(store.head(&keys[0]).await.unwrap().is_none());
        assert_eq!(
            &store.get_bytes(&moved[0].moved_to).await.unwrap()[..],
            b"abc"
        );
    }
}
