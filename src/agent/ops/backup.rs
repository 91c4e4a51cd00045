//! `backup_upload`: store the files of a snapshot (or of the incremental `backups/` folders) of
//! one node, each component once, and record per-table results for the node manifest.
//!
//! A repeat run lists each table's stored components once and skips every file whose key is
//! already there: big immutable components are never re-read (their key is name + size + the
//! sstable's Digest), small mutable ones are hashed. Data.db is checked against its Digest while
//! it is read for upload, so a corrupt SSTable fails loudly instead of being backed up.

use super::pipeline::{self, Uploaded};
use super::{OpContext, OpError, OpResult};
use crate::cassandra::config::SystemKeyspaces;
use crate::cassandra::layout::{self, FoundFile, TableFiles};
use crate::cassandra::sstable::{DigestAlgorithm, SstableName};
use crate::codec::Codec;
use crate::repo::keys::{self, Identity};
use crate::repo::manifest::{FileEntry, FileSource, NodeManifest, TableEntry};
use crate::store::{CheckpointSink, MultipartState, Store};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What to upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSource {
    /// `snapshots/<tag>/` folders.
    Snapshot(String),
    /// `backups/` folders (incremental backups).
    Backups,
}

/// The request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRequest {
    pub backup: String,
    pub host: String,
    pub host_id: String,
    pub source: UploadSource,
    pub data_dirs: Vec<String>,
    /// `keyspace.table` globs (by name) to include; empty = all non-system keyspaces.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub system_keyspaces: SystemKeyspaces,
    pub codec: String,
    #[serde(default)]
    pub compress_compressed: bool,
    #[serde(default = "default_concurrency")]
    pub file_concurrency: usize,
    /// Key of this node's latest manifest: CRC32s of unchanged files are taken from it.
    #[serde(default)]
    pub previous_manifest: Option<String>,
    /// Multipart checkpoints from an interrupted run, by object key.
    #[serde(default)]
    pub resume: BTreeMap<String, MultipartState>,
    /// Delete the local files once stored (incremental `backups/` links).
    #[serde(default)]
    pub delete_uploaded: bool,
    /// Incremental: this node's manifest of the base snapshot backup. `backups/` files of
    /// sstables it already covers (compaction inputs, see `repo::coverage`) are left out.
    #[serde(default)]
    pub base_manifest: Option<String>,
    /// `[encryption]` recipients (`age1...`): every object is encrypted to them (empty: stored
    /// as is). The node never gets an identity: it cannot read what it stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

impl UploadRequest {
    fn recipients(&self) -> OpResult<Option<crate::crypt::Recipients>> {
        if self.recipients.is_empty() {
            return Ok(None);
        }
        crate::crypt::Recipients::parse(&self.recipients)
            .map(Some)
            .map_err(|e| OpError::fatal(format!("recipients: {e}")))
    }
}

fn default_concurrency() -> usize {
    4
}

/// The result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResult {
    pub tables: usize,
    pub files: u64,
    pub bytes: u64,
    /// Files whose key was already stored.
    pub skipped_files: u64,
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    pub deleted_local: u64,
    /// `backups/` files left out because the base snapshot covers their sstable.
    #[serde(default)]
    pub covered_files: u64,
}

/// Runs `backup_upload`.
pub async fn run(req: UploadRequest, cx: &OpContext) -> OpResult<UploadResult> {
    let store = cx.store()?.clone();
    let codec: Codec = req
        .codec
        .parse()
        .map_err(|e: crate::codec::CodecError| OpError::fatal(e.to_string()))?;
    let mut tables = collect(&req, cx)?;
    let known = previous_entries(&store, req.previous_manifest.as_deref()).await?;
    let mut covered_files = 0;
    if let Some(base) = manifest(&store, req.base_manifest.as_deref()).await? {
        let coverage = crate::repo::coverage::BaseCoverage::of(&base);
        for t in &mut tables {
            let folder = format!("{}/{}-{}", t.keyspace, t.table, t.id);
            let (covered, rest) = std::mem::take(&mut t.files)
                .into_iter()
                .partition(|(_, f)| coverage.covers(&folder, &f.relative));
            t.files = rest;
            t.covered = covered;
            covered_files += t.covered.len() as u64;
        }
    }
    cx.total(
        tables
            .iter()
            .flat_map(|t| &t.files)
            .map(|(_, f)| f.size)
            .sum(),
    );
    let mut result = UploadResult {
        tables: tables.len(),
        covered_files,
        ..Default::default()
    };
    for table in tables {
        let mut part = upload_table(&store, &req, codec, &table, &known, cx, &mut result).await?;
        if let Some(to) = req.recipients()? {
            crate::repo::encrypted::seal_table(&mut part, &to)
                .map_err(|e| OpError::fatal(e.to_string()))?;
        }
        let key = keys::part_key(&req.backup, &req.host, &table.keyspace, &table.table);
        merge_earlier_part(&store, &key, &mut part).await?;
        let body = serde_json::to_vec_pretty(&part).map_err(|e| OpError::fatal(e.to_string()))?;
        store
            .put_bytes(&key, body.into())
            .await
            .map_err(OpError::from_store)?;
        if req.delete_uploaded {
            result.deleted_local += delete_stored(&table, &part)?;
            // Links the base snapshot covers are as good as stored: their data is in it.
            result.deleted_local += delete_local(table.covered.iter().map(|(_, f)| f))?;
        }
    }
    Ok(result)
}

/// One table's files, with its id and the index of each file's data folder.
struct Table {
    keyspace: String,
    table: String,
    id: String,
    files: Vec<(usize, FoundFile)>,
    schema_cql: Option<String>,
    snapshot_manifest: Option<String>,
    /// `backups/` files the base snapshot covers (left out of the upload).
    covered: Vec<(usize, FoundFile)>,
}

fn collect(req: &UploadRequest, cx: &OpContext) -> OpResult<Vec<Table>> {
    let dirs: Vec<PathBuf> = req.data_dirs.iter().map(PathBuf::from).collect();
    let filter = layout::TableFilter::new(&req.include, &req.exclude, req.system_keyspaces)
        .map_err(|e| OpError::fatal(e.to_string()))?;
    let found = match &req.source {
        UploadSource::Snapshot(tag) => layout::snapshot_files(&dirs, tag, &filter),
        UploadSource::Backups => layout::backup_files(&dirs, &filter),
    }
    .map_err(|e| OpError::fatal(e.to_string()))?;
    let mut out = Vec::new();
    for t in found {
        let TableFiles {
            keyspace,
            table,
            table_id,
            files,
            manifest,
            schema,
        } = t;
        let Some(id) = table_id else {
            cx.log(format!(
                "skipping {keyspace}.{table}: plain table folder without an id"
            ));
            continue;
        };
        let read = |p: Option<PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok());
        let files = files
            .into_iter()
            .filter(|f| SstableName::parse(&f.file).is_ok())
            .map(|f| (dirs.iter().position(|d| *d == f.data_dir).unwrap_or(0), f))
            .collect();
        out.push(Table {
            keyspace,
            table,
            id: id.as_hex().to_string(),
            files,
            schema_cql: read(schema),
            snapshot_manifest: read(manifest),
            covered: Vec::new(),
        });
    }
    Ok(out)
}

/// A node manifest, if `key` is given and stored.
async fn manifest(store: &Arc<dyn Store>, key: Option<&str>) -> OpResult<Option<NodeManifest>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let bytes = match store.get_bytes(key).await {
        Ok(b) => b,
        Err(crate::store::StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(OpError::from_store(e)),
    };
    // A format-1 manifest of an encrypted repository is sealed as a whole: the node has no
    // identity, so it knows nothing from it (format 2 keeps its file lists in clear).
    if crate::crypt::seal::is_sealed(&bytes) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| OpError::fatal(format!("manifest `{key}` is unreadable: {e}")))
}

/// File entries of the previous manifest, by key.
async fn previous_entries(
    store: &Arc<dyn Store>,
    key: Option<&str>,
) -> OpResult<HashMap<String, FileEntry>> {
    Ok(manifest(store, key)
        .await?
        .map(|m| {
            m.tables
                .into_iter()
                .flat_map(|t| t.files)
                .map(|f| (f.key.clone(), f))
                .collect()
        })
        .unwrap_or_default())
}

/// Forwards multipart checkpoints to the controller's journal.
struct Forward<'a>(&'a OpContext);
impl CheckpointSink for Forward<'_> {
    fn save(&self, state: &MultipartState) {
        self.0.checkpoint(serde_json::json!({ "multipart": state }));
    }
}

async fn upload_table(
    store: &Arc<dyn Store>,
    req: &UploadRequest,
    codec: Codec,
    table: &Table,
    known: &HashMap<String, FileEntry>,
    cx: &OpContext,
    result: &mut UploadResult,
) -> OpResult<TableEntry> {
    let folder = format!("{}-{}", table.table, table.id);
    let prefix = keys::table_prefix(&req.host_id, &table.keyspace, &folder);
    let stored: HashMap<String, u64> = store
        .list(&prefix)
        .await
        .map_err(OpError::from_store)?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let source = match req.source {
        UploadSource::Snapshot(_) => FileSource::Snapshot,
        UploadSource::Backups => FileSource::Backups,
    };
    let counters = Mutex::new(result.clone());
    let files: Vec<FileEntry> = stream::iter(0..table.files.len())
        .map(|i| {
            let (folder, stored, counters) = (&folder, &stored, &counters);
            let (dd, file) = &table.files[i];
            async move {
                let plan = plan_file(req, codec, &table.keyspace, folder, file)?;
                let encrypted = !req.recipients.is_empty();
                // An encrypted object without its data key cannot be read: store both again.
                let listed = stored.get(&plan.key).copied().filter(|_| {
                    !encrypted
                        || stored.contains_key(&crate::crypt::stream::key_object(&plan.key))
                });
                let intact = listed.filter(|size| {
                    plan.stored_size_fits(
                        *size,
                        file.size,
                        known.get(&plan.key),
                        encrypted.then(|| store.part_size()),
                    )
                });
                if let (Some(size), None) = (listed, intact) {
                    cx.log(format!(
                        "{}: the stored object has {size} bytes, which its key and manifests rule out; storing it again",
                        plan.key
                    ));
                }
                if let Some(size) = intact.as_ref() {
                    let crc32 = match (known.get(&plan.key), plan.data_digest) {
                        (Some(prev), _) => prev.crc32,
                        // No previous entry in an encrypted repository (or a format-1 manifest,
                        // sealed as a whole): a Data.db's CRC32 is its Digest (checked when it
                        // was stored), other files are read again.
                        (None, Some((d, DigestAlgorithm::Crc32))) if encrypted => d,
                        _ => {
                            let p = file.path.clone();
                            tokio::task::spawn_blocking(move || pipeline::crc32_of(&p))
                                .await
                                .map_err(|e| OpError::fatal(e.to_string()))?
                                .map_err(|e| OpError::io(&file.path, e))?
                                .1
                        }
                    };
                    cx.progress(file.size);
                    let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
                    c.files += 1;
                    c.bytes += file.size;
                    c.skipped_files += 1;
                    return Ok(plan.entry(*dd, file, *size, crc32, source));
                }
                let up = upload_one(store, req, &plan, file, cx).await?;
                let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
                c.files += 1;
                c.bytes += up.size;
                c.uploaded_files += 1;
                c.uploaded_bytes += up.sent;
                Ok::<_, OpError>(plan.entry(*dd, file, up.stored_size, up.crc32, source))
            }
        })
        .buffer_unordered(req.file_concurrency.max(1))
        .try_collect()
        .await?;
    *result = counters.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut files = files;
    files.sort_by(|a, b| (a.data_dir, &a.path).cmp(&(b.data_dir, &b.path)));
    Ok(TableEntry {
        keyspace: table.keyspace.clone(),
        table: table.table.clone(),
        id: table.id.clone(),
        schema_cql: table.schema_cql.clone(),
        snapshot_manifest: table.snapshot_manifest.clone(),
        files,
    })
}

/// Where and how one file is stored.
struct FilePlan {
    key: String,
    codec: Codec,
    /// Expected Digest value when the file is a Data.db.
    data_digest: Option<(u32, DigestAlgorithm)>,
}

impl FilePlan {
    /// Whether an object listed under this plan's key with `listed` bytes can be the stored
    /// form of a `size`-byte file: uncompressed, exactly `size` (the size in its key) or its
    /// encrypted size;
    /// compressed, never 0 bytes (a zstd or lz4 frame is never empty) and the size the
    /// previous manifest records for the key, if it does. Anything else (a truncated or
    /// replaced object) counts as absent, so it is stored again.
    fn stored_size_fits(
        &self,
        listed: u64,
        size: u64,
        recorded: Option<&FileEntry>,
        sealed_parts: Option<u64>,
    ) -> bool {
        if self.codec == Codec::None {
            // Encrypted: one stream (format 1) or parts of the store's part size (2 and 3).
            return match sealed_parts {
                Some(part) => crate::crypt::parts::sealed_size_fits(listed, size, part),
                None => listed == size,
            };
        }
        listed > 0 && recorded.is_none_or(|prev| prev.stored_size == listed)
    }

    fn entry(
        &self,
        data_dir: usize,
        f: &FoundFile,
        stored_size: u64,
        crc32: u32,
        source: FileSource,
    ) -> FileEntry {
        FileEntry {
            path: f.relative.clone(),
            data_dir,
            key: self.key.clone(),
            size: f.size,
            stored_size,
            codec: self.codec.to_string(),
            crc32,
            source,
        }
    }
}

fn plan_file(
    req: &UploadRequest,
    codec: Codec,
    keyspace: &str,
    folder: &str,
    f: &FoundFile,
) -> OpResult<FilePlan> {
    let name = SstableName::parse(&f.file).map_err(|e| OpError::fatal(e.to_string()))?;
    let dir = f.path.parent().unwrap_or(Path::new("/"));
    let digest_path = dir.join(name.with_component(name.digest_component()).file_name());
    let digest = crate::cassandra::digest::read_digest_file(&digest_path).ok();
    let identity = if name.component.is_mutable() {
        let bytes = std::fs::read(&f.path).map_err(|e| OpError::io(&f.path, e))?;
        let sum = sha2::Sha256::digest(&bytes);
        Identity::Content {
            size: bytes.len() as u64,
            sha256_prefix: hex::encode(&sum[..12]),
        }
    } else {
        Identity::Immutable {
            size: f.size,
            digest,
        }
    };
    let is_data = name.component == crate::cassandra::sstable::Component::Data;
    let has_info = dir
        .join(
            name.with_component(crate::cassandra::sstable::Component::CompressionInfo)
                .file_name(),
        )
        .exists();
    let codec = crate::codec::codec_for_file(
        codec,
        Some(&name.component),
        has_info,
        req.compress_compressed,
    );
    let key = keys::component_key(
        &req.host_id,
        keyspace,
        folder,
        &f.relative,
        &identity,
        codec.extension(),
    );
    let data_digest = if is_data {
        digest.map(|d| (d, name.digest_algorithm()))
    } else {
        None
    };
    Ok(FilePlan {
        key,
        codec,
        data_digest,
    })
}

async fn upload_one(
    store: &Arc<dyn Store>,
    req: &UploadRequest,
    plan: &FilePlan,
    file: &FoundFile,
    cx: &OpContext,
) -> OpResult<Uploaded> {
    let recipients = req.recipients()?;
    // A fresh data key per attempt, sealed to the recipients: a resumed upload keeps the parts
    // an earlier attempt sealed with its own key and seals the rest with this one.
    let sealer: Option<Arc<dyn crate::store::PartSealer>> = match &recipients {
        Some(to) => Some(Arc::new(
            crate::crypt::parts::FrameSealer::new(to, &plan.key)
                .map_err(|e| OpError::fatal(e.to_string()))?,
        )),
        None => None,
    };
    let resume = req.resume.get(&plan.key).cloned();
    let sink = Forward(cx);
    let progress = |n: u64| cx.progress(n);
    let up = pipeline::upload_file(
        store,
        &plan.key,
        &file.path,
        plan.codec,
        matches!(plan.data_digest, Some((_, DigestAlgorithm::Adler32))),
        sealer,
        resume,
        &sink,
        &progress,
        cx.throttle.clone(),
    )
    .await?;
    if up.size != file.size {
        return Err(OpError::fatal(format!(
            "{} changed while it was read ({} bytes, expected {}): snapshot files must not change",
            file.path.display(),
            up.size,
            file.size
        )));
    }
    if let Some((expected, algo)) = plan.data_digest {
        let got = match algo {
            DigestAlgorithm::Crc32 => up.crc32,
            // Asked for above whenever the Digest is an Adler-32.
            DigestAlgorithm::Adler32 => up.adler32.unwrap_or_default(),
        };
        if got != expected {
            // Do not leave a corrupt object referenced under a valid-looking key.
            let _ = store.delete_many(std::slice::from_ref(&plan.key)).await;
            return Err(OpError::fatal(format!(
                "corrupt SSTable {}: its checksum is {got} but its Digest file says {expected}",
                file.path.display()
            )));
        }
    }
    // The data keys are stored once the object is: a listed object without them is stored
    // again.
    if let Some(to) = &recipients {
        let sealed = up.sealed.as_ref().ok_or_else(|| {
            OpError::fatal(format!("{}: the store did not seal its parts", plan.key))
        })?;
        let body = crate::crypt::parts::key_object(sealed, to)
            .map_err(|e| OpError::fatal(e.to_string()))?;
        store
            .put_bytes(&crate::crypt::stream::key_object(&plan.key), body.into())
            .await
            .map_err(OpError::from_store)?;
    }
    Ok(up)
}

/// A resumed run keeps what an interrupted one recorded: files already deleted locally (stored
/// incremental links) are no longer found by the scan but must stay in the results.
async fn merge_earlier_part(
    store: &Arc<dyn Store>,
    key: &str,
    part: &mut TableEntry,
) -> OpResult<()> {
    let earlier: TableEntry = match store.get_bytes(key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| OpError::fatal(format!("earlier results `{key}` are unreadable: {e}")))?,
        Err(crate::store::StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(OpError::from_store(e)),
    };
    if earlier.id != part.id {
        return Ok(());
    }
    let have: HashSet<(usize, String)> = part
        .files
        .iter()
        .map(|f| (f.data_dir, f.path.clone()))
        .collect();
    part.files.extend(
        earlier
            .files
            .into_iter()
            .filter(|f| !have.contains(&(f.data_dir, f.path.clone()))),
    );
    part.files
        .sort_by(|a, b| (a.data_dir, &a.path).cmp(&(b.data_dir, &b.path)));
    Ok(())
}

/// Deletes local files (incremental links) whose stored copy is recorded in `part`.
fn delete_stored(table: &Table, part: &TableEntry) -> OpResult<u64> {
    let recorded: HashSet<(usize, &str)> = part
        .files
        .iter()
        .map(|f| (f.data_dir, f.path.as_str()))
        .collect();
    delete_local(
        table
            .files
            .iter()
            .filter(|(dd, f)| recorded.contains(&(*dd, f.relative.as_str())))
            .map(|(_, f)| f),
    )
}

/// Deletes local files (a file already gone counts as deleted by someone else).
fn delete_local<'a>(files: impl Iterator<Item = &'a FoundFile>) -> OpResult<u64> {
    let mut n = 0;
    for f in files {
        match std::fs::remove_file(&f.path) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(OpError::io(&f.path, e)),
        }
    }
    Ok(n)
}
