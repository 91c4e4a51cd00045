//! `fetch`: download a backup's files into a staging folder on the node, decompress them, and
//! verify every file (size, CRC32) and every Data.db against its Digest — all before anything
//! live is touched. Files already staged and intact are not downloaded again.

use super::pipeline::{self, Expect};
use super::{OpContext, OpError, OpResult};
use crate::cassandra::sstable::{Component, SstableName};
use crate::repo::keys::check_relative;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One file to stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchFile {
    pub key: String,
    /// Destination relative to the staging root, e.g. `ks/users-<id>/nb-1-big-Data.db`.
    pub dest: String,
    pub size: u64,
    pub crc32: u32,
    pub codec: String,
}

/// The request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    /// Absolute staging folder of this restore (outside the data folders).
    pub staging_root: String,
    pub files: Vec<FetchFile>,
    #[serde(default = "default_concurrency")]
    pub file_concurrency: usize,
}

fn default_concurrency() -> usize {
    4
}

/// The result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResult {
    pub files: u64,
    pub bytes: u64,
    pub already_staged: u64,
    pub downloaded_bytes: u64,
    pub digests_verified: u64,
}

/// Runs `fetch`.
pub async fn run(req: FetchRequest, cx: &OpContext) -> OpResult<FetchResult> {
    let store = cx.store()?.clone();
    let root = PathBuf::from(&req.staging_root);
    if !root.is_absolute() {
        return Err(OpError::fatal(format!(
            "staging folder `{}` must be absolute",
            req.staging_root
        )));
    }
    for f in &req.files {
        check_relative(&f.dest).map_err(|e| OpError::fatal(e.to_string()))?;
        pipeline::stored_codec(&f.codec).map_err(|e| OpError::fatal(e.to_string()))?;
    }
    cx.total(req.files.iter().map(|f| f.size).sum());
    let outcomes: Vec<bool> = stream::iter(0..req.files.len())
        .map(|i| {
            let (store, root) = (&store, &root);
            let f = &req.files[i];
            async move {
                let dest = root.join(&f.dest);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| OpError::io(parent, e))?;
                }
                if intact(&dest, f).await? {
                    cx.progress(f.size);
                    return Ok(false);
                }
                let codec =
                    pipeline::stored_codec(&f.codec).map_err(|e| OpError::fatal(e.to_string()))?;
                let expect = Expect {
                    size: f.size,
                    crc32: f.crc32,
                };
                let progress = |_n: u64| {};
                pipeline::download_file(store, &f.key, &dest, codec, expect, &progress).await?;
                cx.progress(f.size);
                Ok::<_, OpError>(true)
            }
        })
        .buffered(req.file_concurrency.max(1))
        .try_collect()
        .await?;
    let mut result = FetchResult::default();
    for (f, downloaded) in req.files.iter().zip(&outcomes) {
        result.files += 1;
        result.bytes += f.size;
        if *downloaded {
            result.downloaded_bytes += f.size;
        } else {
            result.already_staged += 1;
        }
    }
    result.digests_verified = verify_digests(&root, &req.files)?;
    Ok(result)
}

/// A staged file is intact if it has the recorded size and CRC32.
async fn intact(dest: &Path, f: &FetchFile) -> OpResult<bool> {
    match std::fs::metadata(dest) {
        Ok(m) if m.len() == f.size => {}
        _ => return Ok(false),
    }
    let p = dest.to_path_buf();
    let (_, crc) = tokio::task::spawn_blocking(move || pipeline::crc32_of(&p))
        .await
        .map_err(|e| OpError::fatal(e.to_string()))?
        .map_err(|e| OpError::io(dest, e))?;
    Ok(crc == f.crc32)
}

/// Checks every staged Data.db against the Digest file staged beside it.
fn verify_digests(root: &Path, files: &[FetchFile]) -> OpResult<u64> {
    let mut n = 0;
    for f in files {
        let dest = root.join(&f.dest);
        let Some(name) = dest.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Ok(parsed) = SstableName::parse(name) else {
            continue;
        };
        if parsed.component != Component::Data {
            continue;
        }
        let digest =
            dest.with_file_name(parsed.with_component(parsed.digest_component()).file_name());
        if !digest.exists() {
            continue;
        }
        crate::cassandra::digest::verify_data_file(&dest, &digest)
            .map_err(|e| OpError::fatal(format!("staged backup is corrupt: {e}")))?;
        n += 1;
    }
    Ok(n)
}
