//! Object storage behind one trait: S3 (and S3-compatible servers) and local folders.
//!
//! Both the controller (manifests, catalog, locks, listing) and the node agent (SSTable bytes)
//! use this trait, so a store must be usable from any process that has its [`StoreConfig`]
//! and credentials. Large objects are written from streams in bounded memory; multipart uploads
//! can be resumed from a [`MultipartState`] checkpoint.

pub mod channel;
pub mod config;
pub mod fs;
pub mod multipart;
pub mod object_lock;
pub mod s3;
pub mod throttle;
pub mod url;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokio::io::AsyncRead;

/// Errors from a store. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object `{0}` not found")]
    NotFound(String),
    #[error("invalid storage URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("I/O error on `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("storage request failed for `{key}`: {message}")]
    Request {
        key: String,
        message: String,
        retryable: bool,
    },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error(
        "no AWS region for `{0}`: set AWS_REGION (or a profile's region), `region` in [storage], or --region"
    )]
    NoRegion(String),
    #[error("the store does not support {0}")]
    Unsupported(String),
    #[error("stream changed while resuming multipart upload of `{0}` (part checksum differs)")]
    ResumeMismatch(String),
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey { key: String, reason: String },
}

/// Checks that a key is usable on every store: non-empty, relative, `/`-separated segments
/// that are neither empty nor `.`/`..`, and no NUL bytes.
pub fn validate_key(key: &str) -> StoreResult<()> {
    let bad = |reason: &str| {
        Err(StoreError::InvalidKey {
            key: key.into(),
            reason: reason.into(),
        })
    };
    if key.is_empty() {
        return bad("keys must not be empty");
    }
    if key.starts_with('/') {
        return bad("keys must not start with `/`");
    }
    if key.contains('\0') {
        return bad("keys must not contain NUL bytes");
    }
    for seg in key.split('/') {
        match seg {
            "" => return bad("keys must not contain empty segments (`//` or a trailing `/`)"),
            "." | ".." => return bad("keys must not contain `.` or `..` segments"),
            _ => {}
        }
    }
    Ok(())
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Metadata of one stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Last modification time, seconds since the epoch (if the store knows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<i64>,
}

/// Result of a create-only write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutIfAbsent {
    Created,
    AlreadyExists,
}

/// A completed part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPartInfo {
    pub number: i32,
    pub etag: String,
    /// Bytes stored.
    pub size: u64,
    /// CRC32 of the part's stored bytes: a resumed upload re-reads the stream and checks it
    /// matches (`source_crc32` instead for a sealed part).
    pub crc32: u32,
    /// A sealed part: CRC32 of its source bytes before sealing (what a resumed upload can
    /// check, since sealing again gives other bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_crc32: Option<u32>,
    /// A sealed part: which of the checkpoint's `sealers` sealed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealer: Option<u32>,
}

/// Checkpoint of an unfinished multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartState {
    pub key: String,
    pub upload_id: String,
    /// Source bytes per part.
    pub part_size: u64,
    pub parts: Vec<CompletedPartInfo>,
    /// Labels ([`PartSealer::label`]) of the sealers that sealed parts of a sealed upload, one
    /// per attempt: a resumed attempt seals the parts still missing with its own sealer and
    /// keeps the parts an earlier one stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealers: Vec<String>,
}

/// Seals each part of a streamed put on its own (client-side encryption,
/// [`crate::crypt::stream`]): the store reads `part_size` source bytes per part, checkpoints
/// their CRC32, and stores what [`PartSealer::seal`] returns. A part stored by an earlier
/// attempt stays as it is, so a resumed upload never needs the sealer of an earlier attempt.
pub trait PartSealer: Send + Sync {
    /// A label that names this sealer in checkpoints and in [`SealedParts`]. It is stored in
    /// the journal, so it must not be secret (the data key sealed to the recipients).
    fn label(&self) -> &str;
    /// The stored form of part `number` (1-based) whose source bytes are `part`, sealed in
    /// place when `part` has the capacity of [`PartSealer::sealed_len`] (no second buffer).
    fn seal(&self, number: i32, part: bytes::BytesMut) -> Result<bytes::Bytes, String>;
    /// The stored size of a part of `plain` source bytes.
    fn sealed_len(&self, plain: u64) -> u64;
}

/// How a sealed object's parts were sealed: what reading it back needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SealedParts {
    /// Source bytes per part (the last part may hold fewer).
    pub part_size: u64,
    /// The labels of the sealers used.
    pub sealers: Vec<String>,
    /// For each part in order, the index of its sealer in `sealers`.
    pub parts: Vec<u32>,
}

impl SealedParts {
    /// Keeps only the sealers some part uses (in order of first use) and renumbers the parts.
    pub fn used(sealers: &[String], parts: &[u32], part_size: u64) -> SealedParts {
        let mut out = SealedParts {
            part_size,
            ..SealedParts::default()
        };
        let mut map = std::collections::HashMap::new();
        for p in parts {
            let next = map.len() as u32;
            let i = *map.entry(*p).or_insert_with(|| {
                out.sealers
                    .push(sealers.get(*p as usize).cloned().unwrap_or_default());
                next
            });
            out.parts.push(i);
        }
        out
    }
}

/// Receives multipart checkpoints as parts complete (the agent forwards them to the journal).
pub trait CheckpointSink: Send + Sync {
    fn save(&self, state: &MultipartState);
}

/// A sink that forgets checkpoints.
pub struct NoCheckpoint;
impl CheckpointSink for NoCheckpoint {
    fn save(&self, _state: &MultipartState) {}
}

/// Options of a streamed put.
pub struct PutStreamOptions<'a> {
    /// A previous checkpoint for this key, to resume instead of starting over.
    pub resume: Option<MultipartState>,
    /// Where new checkpoints go.
    pub checkpoint: &'a dyn CheckpointSink,
    /// Called with the number of source bytes consumed, as they are.
    pub progress: &'a (dyn Fn(u64) + Send + Sync),
    /// Seals each part on its own (encrypted uploads); `None` stores the bytes as read.
    pub sealer: Option<std::sync::Arc<dyn PartSealer>>,
}

/// Summary of a finished streamed put.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutStats {
    /// Bytes stored.
    pub size: u64,
    /// Bytes actually sent in this call (less than `size` after a resume).
    pub sent: u64,
    /// Parts sent in this call (0 for a single-request put).
    pub parts_sent: u32,
    /// How the parts were sealed, when a [`PartSealer`] sealed them.
    pub sealed: Option<SealedParts>,
}

/// The store interface.
#[async_trait]
pub trait Store: Send + Sync {
    /// A description without secrets, e.g. `s3://bucket/prefix` or `file:///backups`.
    fn describe(&self) -> String;
    /// Source bytes per part of a new sealed put ([`PutStreamOptions::sealer`]).
    fn part_size(&self) -> u64 {
        s3::DEFAULT_PART_SIZE
    }
    /// Writes a small object in one request.
    async fn put_bytes(&self, key: &str, data: Bytes) -> StoreResult<()>;
    /// Writes a small object only if no object has the key.
    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<PutIfAbsent>;
    /// Writes an object of unknown size from a stream, in parts, in bounded memory.
    async fn put_stream(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        opts: PutStreamOptions<'_>,
    ) -> StoreResult<PutStats>;
    /// Reads a whole (small) object.
    async fn get_bytes(&self, key: &str) -> StoreResult<Bytes>;
    /// Streams an object.
    async fn get_stream(&self, key: &str) -> StoreResult<Box<dyn AsyncRead + Send + Unpin>>;
    /// Downloads an object to a file (parallel ranges where it helps); returns its size.
    async fn get_to_file(&self, key: &str, path: &Path) -> StoreResult<u64>;
    /// Object metadata, or `None` if absent.
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>>;
    /// Every object under a prefix, sorted by key.
    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>>;
    /// Deletes objects (missing ones are not an error).
    async fn delete_many(&self, keys: &[String]) -> StoreResult<()>;
    /// Aborts unfinished multipart uploads under a prefix older than `older_than_secs`.
    async fn abort_stale_uploads(&self, prefix: &str, older_than_secs: u64) -> StoreResult<u32>;
    /// Whether create-only writes are enforced (checked by a real probe, not assumed).
    async fn probe_conditional_writes(&self) -> StoreResult<bool>;
    /// Whether the configured server-side encryption really reaches the server (a probe object
    /// is written and its metadata read back). `None` when no encryption is configured or the
    /// store has no such notion (a local folder).
    async fn probe_encryption(&self) -> StoreResult<Option<bool>> {
        Ok(None)
    }
    /// Whether the bucket has S3 Object Lock enabled (`false` for a local folder and for servers
    /// without Object Lock).
    async fn object_lock_enabled(&self) -> StoreResult<bool> {
        Ok(false)
    }
    /// The Object Lock retention of an object (`None`: none, or no such notion).
    async fn retention(&self, _key: &str) -> StoreResult<Option<object_lock::ObjectRetention>> {
        Ok(None)
    }
    /// Extends the retention of an existing object to at least `until` (never shortens it).
    /// A no-op on stores without Object Lock configured.
    async fn extend_retention(&self, _key: &str, _until: jiff::Timestamp) -> StoreResult<()> {
        Ok(())
    }
}

/// Static credentials resolved on the controller (from the environment variables a plan names).
/// They travel to agents only inside the JSON request on stdin. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Opens the store a plan names. `credentials` overrides the standard AWS chain.
pub async fn open(
    config: &config::StorageConfig,
    credentials: Option<Credentials>,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(match url::StoreUrl::parse(&config.url)? {
        url::StoreUrl::File { root } => {
            std::sync::Arc::new(fs::FsStore::new(&root.to_string_lossy())?)
        }
        url::StoreUrl::S3 { .. } => {
            std::sync::Arc::new(s3::S3Store::new(config, credentials).await?)
        }
    })
}

/// Reads the credentials a plan names from the controller's environment.
/// Returns `None` when the plan relies on a profile or the default AWS chain.
pub fn credentials_from_env(config: &config::StorageConfig) -> StoreResult<Option<Credentials>> {
    let (Some(ak_var), Some(sk_var)) = (&config.access_key_id_env, &config.secret_access_key_env)
    else {
        return Ok(None);
    };
    let get = |var: &str| {
        std::env::var(var).map_err(|_| {
            StoreError::Credentials(format!(
                "environment variable `{var}` (named in the plan) is not set"
            ))
        })
    };
    Ok(Some(Credentials {
        access_key_id: get(ak_var)?,
        secret_access_key: get(sk_var)?,
        session_token: match &config.session_token_env {
            Some(v) => Some(get(v)?),
            None => None,
        },
    }))
}
