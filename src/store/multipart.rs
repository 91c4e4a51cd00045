//! Resumable multipart upload and parallel ranged download, written once over [`PartWire`]:
//! an object store backend implements only the wire calls (create, upload a part, list the
//! parts, complete, abort, head, ranged GET, one-request put) and gets part planning, sealing,
//! checkpoints, resume with CRC checks, parallel parts, the keep-or-abort decision after a
//! failure and byte-exact parallel ranged downloads from here.
//!
//! The S3 store ([`super::s3`]) is the one implementation today. The local folder store
//! ([`super::fs`]) writes a stream straight into a temporary file that it renames into place (a
//! local write has nothing to resume); it shares [`read_part`] and [`seal_part`] for sealed
//! parts so part boundaries are planned in one place.

use super::{
    CompletedPartInfo, MultipartState, PartSealer, PutStats, PutStreamOptions, SealedParts,
    StoreError, StoreResult,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

/// Attempts of one ranged GET whose body breaks mid-transfer (the SDKs retry only until
/// the response headers).
const RANGE_ATTEMPTS: u32 = 6;

/// What a backend's multipart protocol allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartLimits {
    /// The smallest part (all parts but the last).
    pub min_part_size: u64,
    /// The largest part.
    pub max_part_size: u64,
    /// The most parts of one upload.
    pub max_parts: i32,
}

/// A part as the server stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub etag: String,
    /// The server's checksum of the part (base64, as the server reports it), if it sent one.
    pub checksum: Option<String>,
}

/// A part of an upload in progress, as the upload knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonePart {
    pub info: CompletedPartInfo,
    /// The server's checksum of the part, if known.
    pub checksum: Option<String>,
}

/// What the server says about the parts of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerParts {
    /// Part number -> (ETag, size, checksum).
    Known(BTreeMap<i32, (String, u64, Option<String>)>),
    /// The upload no longer exists.
    Gone,
    /// The upload exists but its parts cannot be listed (some servers answer ListParts with a
    /// body the client cannot read): the checkpoint is trusted; completing checks every ETag.
    Unlisted,
}

/// Size and version of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// A version tag a ranged read can require (so all ranges come from one version).
    pub etag: Option<String>,
}

/// The body of a ranged read; an error in the stream is a broken transfer.
pub type RangeBody = BoxStream<'static, StoreResult<Bytes>>;

/// The wire calls of an object store with multipart uploads and ranged reads. Keys are the
/// backend's full keys (the store's prefix already applied). Errors carry `retryable: true`
/// for failures worth a retry (the upload is then kept for a resume).
#[async_trait]
pub trait PartWire: Clone + Send + Sync + 'static {
    /// The protocol's part limits.
    fn limits(&self) -> PartLimits;
    /// Source bytes per part of a new upload.
    fn part_size(&self) -> u64;
    /// Parts (and ranges) in flight per object.
    fn part_concurrency(&self) -> usize;
    /// Stores a whole object in one request (streams shorter than a part).
    async fn put_object(&self, full: &str, body: Bytes) -> StoreResult<()>;
    /// Starts a multipart upload; returns its id.
    async fn create(&self, full: &str) -> StoreResult<String>;
    /// Stores part `number` (1-based) of an upload.
    async fn upload_part(
        &self,
        full: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> StoreResult<StoredPart>;
    /// The parts the server holds for an upload.
    async fn list_parts(&self, full: &str, upload_id: &str) -> StoreResult<ServerParts>;
    /// Completes an upload from its parts, in part order.
    async fn complete(&self, full: &str, upload_id: &str, parts: &[DonePart]) -> StoreResult<()>;
    /// Abandons an upload and frees its parts.
    async fn abort(&self, full: &str, upload_id: &str) -> StoreResult<()>;
    /// Size and version of an object, `None` when absent.
    async fn head(&self, full: &str) -> StoreResult<Option<ObjectHead>>;
    /// Bytes `[start, end)` of an object, of version `etag` when given.
    async fn get_range(
        &self,
        full: &str,
        etag: Option<&str>,
        start: u64,
        end: u64,
    ) -> StoreResult<RangeBody>;
}

/// Reads up to `part_size` bytes (fewer only at the end of the stream), into a buffer with the
/// room of the part's sealed form when `opts` seals, so it is sealed in place.
pub async fn read_part(
    reader: &mut (dyn AsyncRead + Send + Unpin),
    part_size: u64,
    opts: &PutStreamOptions<'_>,
    key: &str,
) -> StoreResult<Bytes> {
    use bytes::BufMut as _;
    let size = usize::try_from(part_size).unwrap_or(usize::MAX);
    let stored = opts
        .sealer
        .as_ref()
        .map_or(part_size, |s| s.sealed_len(part_size));
    let capacity = usize::try_from(stored).unwrap_or(usize::MAX).max(size);
    // Filled through its spare capacity: 16 MiB parts are not zeroed first.
    let mut buf = bytes::BytesMut::with_capacity(capacity);
    while buf.len() < size {
        let room = size - buf.len();
        let n = reader
            .read_buf(&mut (&mut buf).limit(room))
            .await
            .map_err(|e| StoreError::Io {
                path: format!("<source stream of `{key}`>"),
                source: e,
            })?;
        if n == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

/// Seals one part on a blocking thread.
pub async fn seal_part(
    sealer: Arc<dyn PartSealer>,
    number: i32,
    data: Bytes,
    full: &str,
) -> StoreResult<Bytes> {
    let failed = |message: String| StoreError::Request {
        key: full.into(),
        message,
        retryable: false,
    };
    // The part read is held only here: it is sealed in place.
    let part = data
        .try_into_mut()
        .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
    tokio::task::spawn_blocking(move || sealer.seal(number, part))
        .await
        .map_err(|e| failed(format!("sealing part {number}: {e}")))?
        .map_err(|e| failed(format!("sealing part {number}: {e}")))
}

/// The state of one multipart upload in progress.
struct Upload<'k, 'o> {
    key: &'k str,
    full: &'k str,
    upload_id: &'k str,
    part_size: u64,
    opts: &'k PutStreamOptions<'o>,
    done: BTreeMap<i32, DonePart>,
    stats: PutStats,
    /// A sealed upload: the sealers' labels and the index of this attempt's.
    sealers: Vec<String>,
    current: u32,
}

impl Upload<'_, '_> {
    /// Records a finished part task and checkpoints.
    fn record(
        &mut self,
        joined: Result<StoreResult<DonePart>, tokio::task::JoinError>,
    ) -> StoreResult<()> {
        let part = joined.map_err(|e| StoreError::Request {
            key: self.key.into(),
            message: format!("upload task failed: {e}"),
            retryable: false,
        })??;
        self.stats.sent += part.info.size;
        self.stats.parts_sent += 1;
        (self.opts.progress)(part.info.size);
        self.done.insert(part.info.number, part);
        self.checkpoint();
        Ok(())
    }

    fn checkpoint(&self) {
        self.opts.checkpoint.save(&MultipartState {
            key: self.key.into(),
            upload_id: self.upload_id.into(),
            part_size: self.part_size,
            parts: self.done.values().map(|d| d.info.clone()).collect(),
            sealers: self.sealers.clone(),
        });
    }
}

/// Aborts an upload; a failure only warns (stale uploads are swept later).
async fn abort_quietly<W: PartWire>(wire: &W, full: &str, upload_id: &str) {
    if let Err(e) = wire.abort(full, upload_id).await {
        tracing::warn!(
            key = full,
            error = %e,
            "could not abort a multipart upload (abort_stale_uploads will sweep it)"
        );
    }
}

/// Writes an object of unknown size from a stream: one request when it fits in a part, else a
/// multipart upload with parallel parts, checkpointed part by part and resumed from
/// `opts.resume` when the server still holds that upload.
pub async fn put_stream<W: PartWire>(
    wire: &W,
    key: &str,
    full: &str,
    reader: &mut (dyn AsyncRead + Send + Unpin),
    opts: PutStreamOptions<'_>,
) -> StoreResult<PutStats> {
    // Resume first: the checkpoint fixes the part size.
    let sealed = opts.sealer.is_some();
    let mut resumed = None;
    if let Some(state) = &opts.resume {
        if let Some(done) = verified_resume(wire, full, key, state, sealed).await? {
            resumed = Some((state.upload_id.clone(), state.part_size, done));
        } else {
            abort_quietly(wire, full, &state.upload_id).await;
        }
    }
    let mut sealers = match (&opts.resume, &resumed) {
        (Some(state), Some(_)) => state.sealers.clone(),
        _ => Vec::new(),
    };
    let current = match &opts.sealer {
        Some(s) => match sealers.iter().position(|l| l == s.label()) {
            Some(i) => i as u32,
            None => {
                sealers.push(s.label().to_string());
                (sealers.len() - 1) as u32
            }
        },
        None => 0,
    };
    let part_size = wire.part_size();
    let (upload_id, part_size, done, first) = match resumed {
        Some((id, size, done)) => (id, size, done, None),
        None => {
            let first = read_part(reader, part_size, &opts, key).await?;
            if (first.len() as u64) < part_size {
                // Fits in one request, with an in-memory body.
                (opts.progress)(first.len() as u64);
                let body = match &opts.sealer {
                    Some(s) => seal_part(s.clone(), 1, first, full).await?,
                    None => first,
                };
                let len = body.len() as u64;
                wire.put_object(full, body).await?;
                return Ok(PutStats {
                    size: len,
                    sent: len,
                    parts_sent: 0,
                    sealed: sealed.then(|| SealedParts::used(&sealers, &[0], part_size)),
                });
            }
            let id = wire.create(full).await?;
            (id, part_size, BTreeMap::new(), Some(first))
        }
    };
    let mut up = Upload {
        key,
        full,
        upload_id: &upload_id,
        part_size,
        opts: &opts,
        done,
        stats: PutStats::default(),
        sealers,
        current,
    };
    up.checkpoint();
    match upload_parts(wire, &mut up, first, reader).await {
        Ok(stats) => Ok(stats),
        Err(e) => {
            // A transient failure keeps the upload for a resume; anything else cleans up.
            let keep = matches!(
                e,
                StoreError::Request {
                    retryable: true,
                    ..
                } | StoreError::Io { .. }
            );
            if !keep {
                abort_quietly(wire, full, &upload_id).await;
            }
            Err(e)
        }
    }
}

/// Reconciles a checkpoint with the server: the parts both know (same ETag and size) are kept.
/// Returns `None` when the upload cannot be resumed.
async fn verified_resume<W: PartWire>(
    wire: &W,
    full: &str,
    key: &str,
    state: &MultipartState,
    sealed: bool,
) -> StoreResult<Option<BTreeMap<i32, DonePart>>> {
    let limits = wire.limits();
    if state.key != key
        || state.part_size < limits.min_part_size
        || state.part_size > limits.max_part_size
    {
        return Ok(None);
    }
    // A sealed upload continues only a sealed one whose parts all name their sealer, and
    // a plain upload only a plain one.
    let sealed_ok = match sealed {
        true => {
            !state.sealers.is_empty()
                && state.parts.iter().all(|p| {
                    p.source_crc32.is_some()
                        && p.sealer.is_some_and(|i| (i as usize) < state.sealers.len())
                })
        }
        false => state.sealers.is_empty() && state.parts.iter().all(|p| p.sealer.is_none()),
    };
    if !sealed_ok {
        return Ok(None);
    }
    let server = match wire.list_parts(full, &state.upload_id).await? {
        ServerParts::Known(parts) => parts,
        ServerParts::Gone => {
            tracing::info!(key, "multipart upload to resume is gone; starting over");
            return Ok(None);
        }
        ServerParts::Unlisted => {
            tracing::debug!(
                key,
                "parts of the upload cannot be listed; trusting the checkpoint"
            );
            state
                .parts
                .iter()
                .map(|p| (p.number, (p.etag.clone(), p.size, None)))
                .collect()
        }
    };
    let mut done = BTreeMap::new();
    for p in &state.parts {
        if let Some((etag, size, checksum)) = server.get(&p.number)
            && *etag == p.etag
            && *size == p.size
        {
            done.insert(
                p.number,
                DonePart {
                    info: p.clone(),
                    checksum: checksum.clone(),
                },
            );
        }
    }
    Ok(Some(done))
}

/// The multipart body of [`put_stream`]: errors here leave the upload for a resume unless
/// they are fatal (the caller aborts then).
async fn upload_parts<W: PartWire>(
    wire: &W,
    up: &mut Upload<'_, '_>,
    mut first: Option<Bytes>,
    reader: &mut (dyn AsyncRead + Send + Unpin),
) -> StoreResult<PutStats> {
    let mut in_flight: JoinSet<StoreResult<DonePart>> = JoinSet::new();
    let max_parts = wire.limits().max_parts;
    let mut number = 0i32;
    loop {
        let data = match first.take() {
            Some(d) => d,
            None => {
                // Read the next part while finished parts are recorded as they land, so
                // checkpoints never lag behind the server.
                let read = read_part(reader, up.part_size, up.opts, up.key);
                tokio::pin!(read);
                let result = loop {
                    tokio::select! {
                        biased;
                        Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                            up.record(joined)?;
                        }
                        r = &mut read => break r,
                    }
                };
                match result {
                    Ok(d) => d,
                    Err(e) => {
                        // Let the parts in flight land (and be checkpointed) so a resume
                        // after this failure has as little as possible left to send.
                        while let Some(joined) = in_flight.join_next().await {
                            let _ = up.record(joined);
                        }
                        return Err(e);
                    }
                }
            }
        };
        let len = data.len() as u64;
        if data.is_empty() && number > 0 {
            break;
        }
        number += 1;
        if number > max_parts {
            return Err(StoreError::Request {
                key: up.key.into(),
                message: format!(
                    "object needs more than {max_parts} parts of {} bytes; raise part_size",
                    up.part_size
                ),
                retryable: false,
            });
        }
        let crc32 = crc32fast::hash(&data);
        let sealer = up.opts.sealer.clone();
        let stored_len = sealer.as_ref().map_or(len, |s| s.sealed_len(len));
        up.stats.size += stored_len;
        if let Some(prev) = up.done.get(&number) {
            let same = match sealer {
                None => prev.info.crc32 == crc32,
                Some(_) => prev.info.source_crc32 == Some(crc32),
            };
            if !same || prev.info.size != stored_len {
                return Err(StoreError::ResumeMismatch(up.key.into()));
            }
            (up.opts.progress)(stored_len);
        } else {
            while in_flight.len() >= wire.part_concurrency() {
                if let Some(joined) = in_flight.join_next().await {
                    up.record(joined)?;
                }
            }
            let (wire, full, upload_id) =
                (wire.clone(), up.full.to_string(), up.upload_id.to_string());
            let current = up.current;
            in_flight.spawn(async move {
                // Parts in flight are sealed in parallel, off the async threads.
                let (body, crc32, source) = match sealer {
                    None => (data, crc32, None),
                    Some(s) => {
                        let body = seal_part(s, number, data, &full).await?;
                        let stored = crc32fast::hash(&body);
                        (body, stored, Some((crc32, current)))
                    }
                };
                let stored = wire.upload_part(&full, &upload_id, number, body).await?;
                Ok(DonePart {
                    info: CompletedPartInfo {
                        number,
                        etag: stored.etag,
                        size: stored_len,
                        crc32,
                        source_crc32: source.map(|s| s.0),
                        sealer: source.map(|s| s.1),
                    },
                    checksum: stored.checksum,
                })
            });
        }
        if len < up.part_size {
            break;
        }
    }
    while let Some(joined) = in_flight.join_next().await {
        up.record(joined)?;
    }
    // A checkpoint with parts past the end of today's stream: the source got shorter.
    if up.done.keys().any(|n| *n > number) {
        return Err(StoreError::ResumeMismatch(up.key.into()));
    }
    let parts: Vec<DonePart> = up.done.values().cloned().collect();
    wire.complete(up.full, up.upload_id, &parts).await?;
    let mut stats = std::mem::take(&mut up.stats);
    if up.opts.sealer.is_some() {
        let parts: Vec<u32> = up
            .done
            .values()
            .map(|d| d.info.sealer.unwrap_or(up.current))
            .collect();
        stats.sealed = Some(SealedParts::used(&up.sealers, &parts, up.part_size));
    }
    Ok(stats)
}

/// Downloads an object to `path` with parallel ranged reads of one version, into a temporary
/// file beside it that is fsynced and renamed into place; returns its size.
pub async fn get_to_file<W: PartWire>(
    wire: &W,
    key: &str,
    full: &str,
    path: &Path,
) -> StoreResult<u64> {
    let head = wire
        .head(full)
        .await?
        .ok_or_else(|| StoreError::NotFound(key.into()))?;
    let (size, etag) = (head.size, head.etag);
    let dest = path.to_path_buf();
    let dir = dest
        .parent()
        .map_or_else(|| Path::new("/").to_path_buf(), Path::to_path_buf);
    let io = |p: &Path, e: std::io::Error| StoreError::Io {
        path: p.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(super::fs::TMP_PREFIX)
        .tempfile_in(&dir)
        .map_err(|e| io(&dir, e))?;
    let (file, tmp_path) = tmp.into_parts();
    file.set_len(size).map_err(|e| io(&tmp_path, e))?;
    let file = Arc::new(file);
    let chunk = wire.part_size();
    let mut tasks: JoinSet<StoreResult<()>> = JoinSet::new();
    let mut start = 0;
    let mut first_error = None;
    while start < size {
        let end = (start + chunk).min(size);
        while tasks.len() >= wire.part_concurrency() {
            if let Some(Err(e)) = join_flat(tasks.join_next().await) {
                first_error.get_or_insert(e);
            }
        }
        if first_error.is_some() {
            break;
        }
        tasks.spawn(fetch_range(
            wire.clone(),
            full.to_string(),
            etag.clone(),
            file.clone(),
            start,
            end,
        ));
        start = end;
    }
    while let Some(r) = tasks.join_next().await {
        if let Some(Err(e)) = join_flat(Some(r)) {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let file = Arc::try_unwrap(file).map_err(|_| StoreError::Io {
        path: tmp_path.display().to_string(),
        source: std::io::Error::other("download file still in use"),
    })?;
    tokio::task::spawn_blocking(move || -> StoreResult<u64> {
        file.sync_all().map_err(|e| io(&tmp_path, e))?;
        drop(file);
        tmp_path.persist(&dest).map_err(|e| io(&dest, e.error))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(size)
    })
    .await
    .map_err(|e| StoreError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Flattens a joined task result.
fn join_flat(
    r: Option<Result<StoreResult<()>, tokio::task::JoinError>>,
) -> Option<StoreResult<()>> {
    r.map(|r| {
        r.unwrap_or_else(|e| {
            Err(StoreError::Request {
                key: String::new(),
                message: format!("download task failed: {e}"),
                retryable: false,
            })
        })
    })
}

/// Downloads `[start, end)` of an object into `file` at the same offset, retrying broken
/// bodies from where they broke.
async fn fetch_range<W: PartWire>(
    wire: W,
    full: String,
    etag: Option<String>,
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
) -> StoreResult<()> {
    use std::os::unix::fs::FileExt;
    let mut attempt = 0;
    let mut pos = start;
    loop {
        let result: StoreResult<()> = async {
            let mut body = wire.get_range(&full, etag.as_deref(), pos, end).await?;
            while let Some(chunk) = body.next().await.transpose()? {
                let take = chunk.len().min((end - pos) as usize);
                let f = file.clone();
                let at = pos;
                let data = chunk.slice(..take);
                tokio::task::spawn_blocking(move || f.write_all_at(&data, at))
                    .await
                    .map_err(|e| StoreError::Io {
                        path: "<download>".into(),
                        source: std::io::Error::other(e.to_string()),
                    })?
                    .map_err(|e| StoreError::Io {
                        path: "<download>".into(),
                        source: e,
                    })?;
                pos += take as u64;
            }
            if pos < end {
                return Err(StoreError::Request {
                    key: full.clone(),
                    message: format!("ranged read ended early at byte {pos} of {end}"),
                    retryable: true,
                });
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(StoreError::Request {
                retryable: true, ..
            }) if attempt + 1 < RANGE_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The protocol over an in-memory wire: what a second backend gets by implementing only
    //! the wire calls.
    use super::*;
    use crate::store::{CheckpointSink, NoCheckpoint};
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Mem {
        objects: HashMap<String, Bytes>,
        uploads: HashMap<String, BTreeMap<i32, Bytes>>,
        next_id: u32,
        parts_received: u32,
        /// The next this many ranged bodies break halfway.
        break_bodies: u32,
        ranges: u32,
    }

    #[derive(Clone, Default)]
    struct MemWire(Arc<Mutex<Mem>>);

    impl MemWire {
        fn mem(&self) -> std::sync::MutexGuard<'_, Mem> {
            self.0.lock().unwrap()
        }
    }

    fn etag(b: &[u8]) -> String {
        format!("{:08x}", crc32fast::hash(b))
    }

    #[async_trait]
    impl PartWire for MemWire {
        fn limits(&self) -> PartLimits {
            PartLimits {
                min_part_size: 100,
                max_part_size: 1 << 20,
                max_parts: 100,
            }
        }
        fn part_size(&self) -> u64 {
            1000
        }
        fn part_concurrency(&self) -> usize {
            3
        }
        async fn put_object(&self, full: &str, body: Bytes) -> StoreResult<()> {
            self.mem().objects.insert(full.into(), body);
            Ok(())
        }
        async fn create(&self, _full: &str) -> StoreResult<String> {
            let mut m = self.mem();
            m.next_id += 1;
            let id = format!("u{}", m.next_id);
            m.uploads.insert(id.clone(), BTreeMap::new());
            Ok(id)
        }
        async fn upload_part(
            &self,
            _full: &str,
            upload_id: &str,
            number: i32,
            body: Bytes,
        ) -> StoreResult<StoredPart> {
            let mut m = self.mem();
            m.parts_received += 1;
            let tag = etag(&body);
            m.uploads
                .get_mut(upload_id)
                .expect("upload")
                .insert(number, body);
            Ok(StoredPart {
                etag: tag,
                checksum: None,
            })
        }
        async fn list_parts(&self, _full: &str, upload_id: &str) -> StoreResult<ServerParts> {
            Ok(match self.mem().uploads.get(upload_id) {
                None => ServerParts::Gone,
                Some(parts) => ServerParts::Known(
                    parts
                        .iter()
                        .map(|(n, b)| (*n, (etag(b), b.len() as u64, None)))
                        .collect(),
                ),
            })
        }
        async fn complete(
            &self,
            full: &str,
            upload_id: &str,
            parts: &[DonePart],
        ) -> StoreResult<()> {
            let mut m = self.mem();
            let stored = m.uploads.remove(upload_id).expect("upload");
            let mut body = Vec::new();
            for p in parts {
                let b = &stored[&p.info.number];
                assert_eq!(etag(b), p.info.etag);
                body.extend_from_slice(b);
            }
            m.objects.insert(full.into(), body.into());
            Ok(())
        }
        async fn abort(&self, _full: &str, upload_id: &str) -> StoreResult<()> {
            self.mem().uploads.remove(upload_id);
            Ok(())
        }
        async fn head(&self, full: &str) -> StoreResult<Option<ObjectHead>> {
            Ok(self.mem().objects.get(full).map(|b| ObjectHead {
                size: b.len() as u64,
                etag: Some(etag(b)),
            }))
        }
        async fn get_range(
            &self,
            full: &str,
            etag_wanted: Option<&str>,
            start: u64,
            end: u64,
        ) -> StoreResult<RangeBody> {
            let mut m = self.mem();
            m.ranges += 1;
            let body = m.objects[full].slice(start as usize..end as usize);
            assert_eq!(etag_wanted, Some(etag(&m.objects[full]).as_str()));
            let mut chunks: Vec<StoreResult<Bytes>> = body
                .chunks(64)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            if m.break_bodies > 0 {
                m.break_bodies -= 1;
                chunks.truncate(chunks.len() / 2);
                chunks.push(Err(StoreError::Request {
                    key: full.into(),
                    message: "connection reset".into(),
                    retryable: true,
                }));
            }
            Ok(futures::stream::iter(chunks).boxed())
        }
    }

    /// `data`, then an I/O error after `fail_at` bytes.
    struct Source {
        data: Vec<u8>,
        pos: usize,
        fail_at: usize,
    }
    impl AsyncRead for Source {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.pos >= self.fail_at && self.pos < self.data.len() {
                return std::task::Poll::Ready(Err(std::io::Error::other("source died")));
            }
            let end = (self.pos + 333).min(self.fail_at).min(self.data.len());
            let end = end.min(self.pos + buf.remaining());
            buf.put_slice(&self.data[self.pos..end]);
            self.pos = end;
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn source(data: &[u8], fail_at: usize) -> Source {
        Source {
            data: data.to_vec(),
            pos: 0,
            fail_at,
        }
    }

    #[derive(Default)]
    struct Last(Mutex<Option<MultipartState>>);
    impl CheckpointSink for Last {
        fn save(&self, state: &MultipartState) {
            *self.0.lock().unwrap() = Some(state.clone());
        }
    }

    fn opts<'a>(
        resume: Option<MultipartState>,
        sink: &'a dyn CheckpointSink,
    ) -> PutStreamOptions<'a> {
        PutStreamOptions {
            resume,
            checkpoint: sink,
            progress: &|_| {},
            sealer: None,
        }
    }

    #[tokio::test]
    async fn resume_sends_only_missing_parts_and_ranges_reassemble_exactly() {
        let wire = MemWire::default();
        let data: Vec<u8> = (0..10_500u32).map(|i| (i * 7 % 251) as u8).collect();
        let last = Last::default();
        let err = put_stream(
            &wire,
            "k",
            "p/k",
            &mut source(&data, 3000),
            opts(None, &last),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        let state = last.0.lock().unwrap().clone().expect("checkpoint");
        assert_eq!(
            state.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(
            wire.mem().uploads.len(),
            1,
            "a transient failure keeps the upload"
        );
        wire.mem().parts_received = 0;
        let stats = put_stream(
            &wire,
            "k",
            "p/k",
            &mut source(&data, usize::MAX),
            opts(Some(state), &NoCheckpoint),
        )
        .await
        .unwrap();
        assert_eq!(
            (stats.size, stats.sent, stats.parts_sent),
            (10_500, 7_500, 8)
        );
        assert_eq!(wire.mem().parts_received, 8);
        assert!(wire.mem().uploads.is_empty());
        assert_eq!(&wire.mem().objects["p/k"][..], &data[..]);

        // Eleven ranges, three of whose bodies break halfway and are fetched again.
        wire.mem().break_bodies = 3;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b/out");
        assert_eq!(get_to_file(&wire, "k", "p/k", &out).await.unwrap(), 10_500);
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert_eq!(wire.mem().ranges, 11 + 3);
        assert!(matches!(
            get_to_file(&wire, "missing", "p/missing", &out).await,
            Err(StoreError::NotFound(k)) if k == "missing"
        ));
    }

    #[tokio::test]
    async fn a_changed_source_is_refused_and_its_upload_aborted() {
        let wire = MemWire::default();
        let data = vec![1u8; 5_000];
        let last = Last::default();
        put_stream(&wire, "k", "k", &mut source(&data, 2000), opts(None, &last))
            .await
            .unwrap_err();
        let state = last.0.lock().unwrap().clone().unwrap();
        let mut changed = data.clone();
        changed[10] = 2;
        let err = put_stream(
            &wire,
            "k",
            "k",
            &mut source(&changed, usize::MAX),
            opts(Some(state), &NoCheckpoint),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::ResumeMismatch(_)), "{err}");
        assert!(wire.mem().uploads.is_empty(), "the upload was aborted");
        assert!(wire.mem().objects.is_empty());
        // A stream shorter than a part is one request.
        let stats = put_stream(
            &wire,
            "s",
            "s",
            &mut source(&data[..999], usize::MAX),
            opts(None, &NoCheckpoint),
        )
        .await
        .unwrap();
        assert_eq!((stats.size, stats.parts_sent), (999, 0));
    }
}
