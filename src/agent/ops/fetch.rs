//! `fetch`: download a backup's files into a staging folder on the node, decompress them, and
//! verify every file (size, CRC32) and every Data.db against its Digest — all before anything
//! live is touched. Files already staged and intact are not downloaded again. Legacy lzop
//! objects (no recorded size or CRC32) are verified by lzop's own header and block checksums.

use super::pipeline::{self, Expect};
use super::{OpContext, OpError, OpResult};
use crate::cassandra::sstable::{Component, SstableName};
use crate::codec::Codec;
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
    /// Decompressed size, when the backup recorded it (not for legacy lzop objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// CRC32 of the decompressed bytes, when the backup recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
    pub codec: String,
}

impl FetchFile {
    fn recorded(&self) -> bool {
        self.size.is_some() && self.crc32.is_some()
    }
}

/// The request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    /// Absolute staging folder of this restore (outside the data folders).
    pub staging_root: String,
    pub files: Vec<FetchFile>,
    #[serde(default = "default_concurrency")]
    pub file_concurrency: usize,
    /// Live bytes the move will copy into the staging filesystem (displaced from another
    /// filesystem): counted by the free-space check with the bytes to stage.
    #[serde(default)]
    pub displaced_bytes: u64,
    /// The objects are encrypted: each is opened with its data key (`<key>.key`), which the
    /// identity from the request unseals.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
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
        let codec = pipeline::stored_codec(&f.codec).map_err(|e| OpError::fatal(e.to_string()))?;
        // Without a recorded size and CRC32 only a self-checking container is acceptable.
        if !f.recorded() && codec != Codec::Lzop {
            return Err(OpError::fatal(format!(
                "`{}` has no recorded size and CRC32; only lzop objects (which carry their own \
                 checksums) may be fetched without them",
                f.key
            )));
        }
    }
    let ids = match (req.encrypted, &cx.identity) {
        (false, _) => None,
        (true, Some(ids)) => Some(ids),
        (true, None) => {
            return Err(OpError::fatal(format!(
                "the repository is encrypted and no identity came with the request: set {}",
                crate::crypt::IDENTITY_FILE_ENV
            )));
        }
    };
    check_space(&root, &req.files, req.displaced_bytes, cx)?;
    cx.total(req.files.iter().filter_map(|f| f.size).sum());
    let outcomes: Vec<(bool, u64)> = stream::iter(0..req.files.len())
        .map(|i| {
            let (store, root) = (&store, &root);
            let f = &req.files[i];
            async move {
                let dest = root.join(&f.dest);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| OpError::io(parent, e))?;
                }
                if let Some(size) = intact(&dest, f).await? {
                    cx.progress(size);
                    return Ok((false, size));
                }
                let codec =
                    pipeline::stored_codec(&f.codec).map_err(|e| OpError::fatal(e.to_string()))?;
                let expect = Expect {
                    size: f.size,
                    crc32: f.crc32,
                };
                let progress = |_n: u64| {};
                let data_key = match ids {
                    Some(ids) => Some(
                        pipeline::data_key(store, &f.key, ids)
                            .await
                            .map_err(|(message, retryable)| OpError { message, retryable })?,
                    ),
                    None => None,
                };
                let size = pipeline::download_file(
                    store,
                    &f.key,
                    &dest,
                    codec,
                    data_key,
                    expect,
                    &progress,
                    Some(&cx.throttle),
                )
                .await?;
                cx.progress(size);
                Ok::<_, OpError>((true, size))
            }
        })
        .buffered(req.file_concurrency.max(1))
        .try_collect()
        .await?;
    let mut result = FetchResult::default();
    for (downloaded, size) in &outcomes {
        result.files += 1;
        result.bytes += size;
        if *downloaded {
            result.downloaded_bytes += size;
        } else {
            result.already_staged += 1;
        }
    }
    result.digests_verified = verify_digests(&root, &req.files)?;
    Ok(result)
}

/// Room kept free beyond the staged bytes: a tenth of them plus this much (Cassandra shares
/// the default staging folder's filesystem, and writes there meanwhile).
const MARGIN_FIXED: u64 = 16 << 20;

/// Refuses to start when the staging folder's filesystem cannot hold the files still to stage
/// (each rounded up to a 4 KiB block) and the live bytes the move will displace into it, plus
/// the margin. Files already staged with their recorded size count as staged; legacy objects
/// (no recorded size) are not counted. Where the free space cannot be read (no `df`), the fetch
/// goes on and says so.
fn check_space(root: &Path, files: &[FetchFile], displaced: u64, cx: &OpContext) -> OpResult<()> {
    const BLOCK: u64 = 4096;
    let (mut need, mut count) = (0u64, 0u64);
    for f in files {
        let Some(size) = f.size else { continue };
        let staged = std::fs::metadata(root.join(&f.dest))
            .map(|m| m.is_file() && m.len() == size)
            .unwrap_or(false);
        if !staged {
            need += size.div_ceil(BLOCK) * BLOCK;
            count += 1;
        }
    }
    if count == 0 && displaced == 0 {
        return Ok(());
    }
    let want = need + displaced + (need + displaced) / 10 + MARGIN_FIXED;
    let moved_in = if displaced > 0 {
        format!(
            " and {} of live files the move displaces there from another filesystem",
            bytes_text(displaced)
        )
    } else {
        String::new()
    };
    match free_bytes(root) {
        Some(free) if free < want => Err(OpError::fatal(format!(
            "not enough free space at {}: {} needed to stage {count} files ({} of files{moved_in}, \
             plus 10% and 16 MiB of margin), {} free; free space there or set cassandra.staging \
             to a larger filesystem",
            root.display(),
            bytes_text(want),
            bytes_text(need),
            bytes_text(free)
        ))),
        Some(_) => Ok(()),
        None => {
            cx.log(format!(
                "cannot read the free space at {} (`df -Pk`); staging without the space check",
                root.display()
            ));
            Ok(())
        }
    }
}

/// Bytes available to non-root users on the filesystem of `path` (or of its nearest existing
/// parent), from POSIX `df -Pk`.
fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(p)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_df_available(&String::from_utf8_lossy(&out.stdout))
}

/// `Available` (KiB) of `df -Pk` output, in bytes: the field before the `Capacity` one (the
/// first ending in `%`), so spaces in the file system's name do not matter.
fn parse_df_available(out: &str) -> Option<u64> {
    let fields: Vec<&str> = out.lines().nth(1)?.split_whitespace().collect();
    let cap = fields.iter().skip(1).position(|f| f.ends_with('%'))? + 1;
    let kib: u64 = fields.get(cap.checked_sub(1)?)?.parse().ok()?;
    Some(kib * 1024)
}

fn bytes_text(n: u64) -> String {
    format!("{:.1} MiB ({n} bytes)", n as f64 / (1u64 << 20) as f64)
}

/// A staged file is intact if it has the recorded size and CRC32; returns its size. Without
/// a record (legacy objects), a staged file counts as intact: it only got its name by a rename
/// after its lzop checksums were verified (and Data.db is checked against its Digest again).
async fn intact(dest: &Path, f: &FetchFile) -> OpResult<Option<u64>> {
    let len = match std::fs::metadata(dest) {
        Ok(m) if m.is_file() => m.len(),
        _ => return Ok(None),
    };
    let (Some(size), Some(want)) = (f.size, f.crc32) else {
        return Ok(Some(len));
    };
    if len != size {
        return Ok(None);
    }
    let p = dest.to_path_buf();
    let (_, crc) = tokio::task::spawn_blocking(move || pipeline::crc32_of(&p))
        .await
        .map_err(|e| OpError::fatal(e.to_string()))?
        .map_err(|e| OpError::io(dest, e))?;
    Ok((crc == want).then_some(size))
}

/// Checks every staged Data.db against the Digest file staged beside it; a mismatching pair
/// is removed from staging.
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
        if let Err(e) = crate::cassandra::digest::verify_data_file(&dest, &digest) {
            // Neither file may pass as intact on a rerun (legacy objects have no recorded CRC).
            let _ = std::fs::remove_file(&dest);
            let _ = std::fs::remove_file(&digest);
            return Err(OpError::fatal(format!(
                "staged backup is corrupt: {e} (object `{}`)",
                f.key
            )));
        }
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_available_is_read_before_the_capacity_field() {
        let out = "Filesystem     1024-blocks    Used Available Capacity Mounted on\n\
                   tmpfs                   64       4        60       7% /var/lib/cassandra/small\n";
        assert_eq!(parse_df_available(out), Some(60 * 1024));
        let spaced = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                      my disk 100 10 90 10% /mnt/a b\n";
        assert_eq!(parse_df_available(spaced), Some(90 * 1024));
        assert_eq!(parse_df_available("garbage"), None);
    }

    #[test]
    fn real_df_answers_for_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("not/yet")).is_some());
    }
}
