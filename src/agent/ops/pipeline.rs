//! Moving one file between a node's disk and the store: read once, checksum (CRC32, and
//! Adler-32 for 2.x SSTables), compress, stream up in bounded memory; and the reverse, writing
//! atomically and verifying size and CRC32 before the file becomes visible.

use super::{OpError, OpResult};
use crate::codec::{Codec, Encoder};
pub use crate::repo::object::{crc32_of_reader, data_key, decode_object, stored_codec};
use crate::store::channel;
use crate::store::throttle::{Throttle, Throttled};
use crate::store::{
    CheckpointSink, MultipartState, PartSealer, PutStreamOptions, SealedParts, Store,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Checksums and sizes of one uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub size: u64,
    pub stored_size: u64,
    pub crc32: u32,
    /// Only when asked for (the Digest of 2.x SSTables): it costs a pass over every byte.
    pub adler32: Option<u32>,
    /// Bytes actually sent (less than stored_size after a resume).
    pub sent: u64,
    /// How its parts were sealed (an encrypted upload).
    pub sealed: Option<SealedParts>,
}

/// Reads `path`, checksums (CRC32, and Adler-32 when `adler`) and compresses it with `codec`,
/// and stores it under `key`, each part sealed by `sealer` when given
/// ([`crate::crypt::parts`]).
#[allow(clippy::too_many_arguments)]
pub async fn upload_file(
    store: &Arc<dyn Store>,
    key: &str,
    path: &Path,
    codec: Codec,
    adler: bool,
    sealer: Option<Arc<dyn PartSealer>>,
    resume: Option<MultipartState>,
    checkpoint: &dyn CheckpointSink,
    progress: &(dyn Fn(u64) + Send + Sync),
    pace: Arc<Throttle>,
) -> OpResult<Uploaded> {
    let (writer, mut reader) = channel::to_async();
    // The stored bytes (compressed, sealed) are what crosses the network: paced there.
    let writer = Throttled::new(writer, pace);
    let src = path.to_path_buf();
    let hashing = tokio::task::spawn_blocking(move || {
        encode_into(&src, codec, adler, writer).and_then(|(sums, mut w)| {
            w.flush()?;
            Ok(sums)
        })
    });
    let put = store
        .put_stream(
            key,
            &mut reader,
            PutStreamOptions {
                resume,
                checkpoint,
                progress: &|_| {},
                sealer,
            },
        )
        .await;
    // The store no longer reads: let the reading thread see a closed pipe instead of waiting
    // forever for room in it (a failed upload must end the transfer, not hang it).
    drop(reader);
    let hashed = hashing
        .await
        .map_err(|e| OpError::fatal(format!("reading {}: {e}", path.display())));
    // A failed upload is the cause; the reader then only saw the pipe close.
    let stats = put.map_err(OpError::from_store)?;
    let (size, crc32, adler32) =
        hashed?.map_err(|e| OpError::fatal(format!("reading {}: {e}", path.display())))?;
    progress(size);
    Ok(Uploaded {
        size,
        stored_size: stats.size,
        crc32,
        adler32,
        sent: stats.sent,
        sealed: stats.sealed,
    })
}

type Sums = (u64, u32, Option<u32>);

fn encode_into<W: Write>(
    path: &Path,
    codec: Codec,
    adler: bool,
    writer: W,
) -> std::io::Result<(Sums, W)> {
    let mut file = std::fs::File::open(path)?;
    let mut enc = Encoder::new(codec, writer).map_err(std::io::Error::other)?;
    let mut crc = crc32fast::Hasher::new();
    let mut adler = adler.then(adler2::Adler32::new);
    let mut buf = vec![0u8; channel::CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        if let Some(a) = adler.as_mut() {
            a.write_slice(&buf[..n]);
        }
        enc.write_all(&buf[..n])?;
        size += n as u64;
    }
    let w = enc.finish()?;
    Ok(((size, crc.finalize(), adler.map(|a| a.checksum())), w))
}

/// What a downloaded file must match. `None` = not recorded (legacy lzop objects, whose
/// container carries its own checksums).
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub size: Option<u64>,
    pub crc32: Option<u32>,
}

/// Streams `key` from the store, decompresses it and writes `dest` atomically (a `.cbk.tmp`
/// sibling, fsync, rename) after checking size and CRC32. A mismatch leaves nothing behind.
/// Returns the size written.
#[allow(clippy::too_many_arguments)]
pub async fn download_file(
    store: &Arc<dyn Store>,
    key: &str,
    dest: &Path,
    codec: Codec,
    data_key: Option<crate::crypt::parts::ObjectKeys>,
    expect: Expect,
    progress: &(dyn Fn(u64) + Send + Sync),
    pace: Option<&Throttle>,
) -> OpResult<u64> {
    let tmp = temp_path(dest);
    let (tmp2, dest2) = (tmp.clone(), dest.to_path_buf());
    let res = decode_object(store, key, codec, data_key, progress, pace, move |r| {
        write_checked(r, &tmp2, &dest2, expect)
    })
    .await;
    res.map_err(|(e, retryable)| {
        let _ = std::fs::remove_file(&tmp);
        OpError {
            message: format!("object `{key}` -> {}: {e}", dest.display()),
            retryable,
        }
    })
}

fn write_checked(r: &mut dyn Read, tmp: &Path, dest: &Path, expect: Expect) -> Result<u64, String> {
    // A full disk names the path; other errors say what failed.
    let fail = |what: &str, e: std::io::Error| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            super::io_message(tmp, &e)
        } else {
            format!("cannot {what}: {e}")
        }
    };
    let mut out = std::fs::File::create(tmp).map_err(|e| fail("create", e))?;
    let mut tee = Tee {
        inner: r,
        out: &mut out,
        err: None,
    };
    let read = crc32_of_reader(&mut tee, expect.size);
    // A failed write stops the reader too: report the write, not the decoder.
    if let Some(e) = tee.err.take() {
        return Err(fail("write", e));
    }
    let (size, got) = read?;
    if let Some(want) = expect.size
        && size != want
    {
        return Err(format!(
            "truncated: {size} bytes, the manifest records {want}"
        ));
    }
    if let Some(want) = expect.crc32
        && got != want
    {
        return Err(format!(
            "CRC32 mismatch: got {got}, the manifest records {want}"
        ));
    }
    out.sync_all().map_err(|e| fail("sync", e))?;
    drop(out);
    std::fs::rename(tmp, dest).map_err(|e| fail("rename into place", e))?;
    Ok(size)
}

/// A reader that copies what it yields into a file.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    out: &'a mut std::fs::File,
    err: Option<std::io::Error>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            self.err = Some(e);
            return Err(std::io::Error::other("write failed"));
        }
        Ok(n)
    }
}

/// The temporary name used while writing `dest`: Cassandra deletes `*.tmp` files at startup,
/// and no `*.db` name ever appears half-written.
pub fn temp_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".cbk.tmp");
    dest.with_file_name(name)
}

/// CRC32 and size of a local file.
pub fn crc32_of(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut f = std::fs::File::open(path)?;
    crc32_of_reader(&mut f, None).map_err(std::io::Error::other)
}
