//! Object Lock in prune and forget: which of the objects they would delete are still under
//! retention (asked of the store, one HeadObject each, a few at a time). Nothing locked is ever
//! sent a delete: on a versioned (Object Lock) bucket that would only hide it behind a delete
//! marker. Reported with the date it unlocks, so the next prune after that date deletes it.

use crate::store::{Store, StoreResult};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;

/// Retention lookups in flight at once.
const LOOKUPS: usize = 16;

/// A backup (or a run that never completed) prune would delete, left whole because some of
/// its objects are locked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockedBackup {
    pub backup: String,
    /// When its last object unlocks (RFC 3339): a prune after that deletes it.
    pub until: String,
}

/// An unreferenced object prune would delete, left in place because it is locked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockedObject {
    pub key: String,
    pub size: u64,
    /// When it unlocks (RFC 3339).
    pub until: String,
}

/// The retention date of each key still locked at `now`.
pub async fn locked_until(
    store: &dyn Store,
    keys: &[String],
    now: jiff::Timestamp,
) -> StoreResult<BTreeMap<String, jiff::Timestamp>> {
    let found: Vec<Option<(String, jiff::Timestamp)>> = stream::iter(keys.iter().cloned())
        .map(|k| async move {
            let r = store.retention(&k).await?;
            Ok::<_, crate::store::StoreError>(r.filter(|r| r.locked_at(now)).map(|r| (k, r.until)))
        })
        .buffer_unordered(LOOKUPS)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Splits unreferenced objects (key -> size) into those that may go and those still locked.
pub async fn split_objects(
    store: &dyn Store,
    objects: BTreeMap<String, u64>,
    now: jiff::Timestamp,
) -> StoreResult<(BTreeMap<String, u64>, Vec<LockedObject>)> {
    let keys: Vec<String> = objects.keys().cloned().collect();
    let locked = locked_until(store, &keys, now).await?;
    let mut free = BTreeMap::new();
    let mut held = Vec::new();
    for (key, size) in objects {
        match locked.get(&key) {
            Some(until) => held.push(LockedObject {
                key,
                size,
                until: until.to_string(),
            }),
            None => {
                free.insert(key, size);
            }
        }
    }
    Ok((free, held))
}
