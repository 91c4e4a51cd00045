//! Verifying a backup: every object present with its recorded size, and with `deep`, every
//! object read back, decompressed and checked against the CRC32 recorded for it. In an
//! encrypted repository the quick check reads only what node manifests keep in clear (no
//! identity); `deep` opens every object and needs the identity.

use super::encrypted::Access;
use super::inventory::{RepoError, load_backup};
use super::manifest::FileEntry;
use crate::store::Store;
use futures::stream::{self, StreamExt};
use std::sync::Arc;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub host: String,
    pub key: String,
    pub message: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub backup: String,
    pub files: u64,
    pub bytes: u64,
    pub deep: bool,
    pub problems: Vec<Problem>,
    /// Keys of objects that are in the store but failed their check (wrong size, or with
    /// `deep`, do not decode to the recorded size and CRC32): what `--repair` moves aside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// Verifies `name`; problems are collected, not returned as errors. `deep` in an encrypted
/// repository needs the identity (an error names the variable to set).
pub async fn verify(
    store: Arc<dyn Store>,
    name: &str,
    deep: bool,
    concurrency: usize,
    access: &Access,
) -> Result<Report, RepoError> {
    let ids = match deep {
        true => access.identities()?.cloned(),
        false => None,
    };
    let (catalog, nodes) = load_backup(store.as_ref(), name, access).await?;
    let mut report = Report {
        backup: name.to_string(),
        deep,
        ..Default::default()
    };
    // The path check restore applies: a manifest restore would refuse never verifies.
    for (h, n) in catalog.hosts.iter().zip(&nodes) {
        for t in &n.tables {
            if let Err(e) = super::keys::check_table(t) {
                report.problems.push(Problem {
                    host: n.node.host.clone(),
                    key: h.manifest.clone(),
                    message: e.to_string(),
                });
            }
        }
    }
    let files: Vec<(String, FileEntry)> = nodes
        .iter()
        .flat_map(|n| {
            n.tables.iter().flat_map(move |t| {
                t.files
                    .iter()
                    .map(move |f| (n.node.host.clone(), f.clone()))
            })
        })
        .collect();
    let checks = stream::iter(files)
        .map(|(host, f)| {
            let (store, ids) = (store.clone(), ids.as_ref());
            async move {
                let r = check_file(&store, &f, deep, ids).await;
                (host, f, r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for (host, f, r) in checks {
        report.files += 1;
        report.bytes += f.size;
        if let Err(Fault { message, present }) = r {
            if present {
                report.damaged.push(f.key.clone());
            }
            report.problems.push(Problem {
                host,
                key: f.key,
                message,
            });
        }
    }
    report.problems.sort_by(|a, b| a.key.cmp(&b.key));
    report.damaged.sort();
    report.damaged.dedup();
    Ok(report)
}

/// Why one object failed its check, and whether the object is in the store (only those are
/// damaged; a missing object or a store error is not).
struct Fault {
    message: String,
    present: bool,
}

impl From<String> for Fault {
    fn from(message: String) -> Self {
        Fault {
            message,
            present: true,
        }
    }
}

async fn check_file(
    store: &Arc<dyn Store>,
    f: &FileEntry,
    deep: bool,
    ids: Option<&crate::crypt::Identities>,
) -> Result<(), Fault> {
    let absent = |message: String| Fault {
        message,
        present: false,
    };
    let meta = store
        .head(&f.key)
        .await
        .map_err(|e| absent(e.to_string()))?;
    let Some(meta) = meta else {
        return Err(absent("object is missing".into()));
    };
    if meta.size != f.stored_size {
        return Err(format!(
            "object has {} bytes, the manifest records {}",
            meta.size, f.stored_size
        )
        .into());
    }
    if !deep {
        return Ok(());
    }
    let codec = crate::repo::object::stored_codec(&f.codec).map_err(|e| absent(e.to_string()))?;
    let limit = f.size;
    let data_key = match ids {
        Some(ids) => Some(
            crate::repo::object::data_key(store, &f.key, ids)
                .await
                .map_err(|(message, store_failed)| Fault {
                    message,
                    present: !store_failed,
                })?,
        ),
        None => None,
    };
    let (size, crc) = crate::repo::object::decode_object(
        store,
        &f.key,
        codec,
        data_key,
        &|_| {},
        None,
        move |r| crate::repo::object::crc32_of_reader(r, Some(limit)),
    )
    .await
    // A store failure while reading (`true`) says nothing about the object's content.
    .map_err(|(message, store_failed)| Fault {
        message,
        present: !store_failed,
    })?;
    if size != f.size {
        return Err(format!(
            "decompressed to {size} bytes, the manifest records {}",
            f.size
        )
        .into());
    }
    if crc != f.crc32 {
        return Err(format!("CRC32 is {crc}, the manifest records {}", f.crc32).into());
    }
    Ok(())
}
