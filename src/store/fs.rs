//! The `fs` store: a local folder (quickstarts, NFS mounts, tests) with S3's semantics.
//!
//! Keys map to files under the root (`a/b/c` -> `ROOT/a/b/c`). Every write goes to a temporary
//! file in the destination folder, is fsynced and then renamed into place (and the folder is
//! fsynced), so a reader never sees a half-written object. Create-only writes use
//! `renameat2(RENAME_NOREPLACE)` (or `link`), so exactly one of several racing writers wins.
//! Listing follows S3: the prefix is a string prefix, not a folder, and results are sorted.

use super::{
    ObjectMeta, PutIfAbsent, PutStats, PutStreamOptions, SealedParts, Store, StoreError,
    StoreResult, multipart, validate_key,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use tempfile::TempPath;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Name prefix of in-progress temporary files (never listed; swept by `abort_stale_uploads`).
pub(crate) const TMP_PREFIX: &str = ".cbk-tmp-";
/// Copy buffer of streamed writes: memory stays bounded whatever the object size.
const STREAM_BUF: usize = 1 << 20;

/// A folder used as an object store.
pub struct FsStore {
    root: PathBuf,
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        path: "<background task>".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(join_err)?
}

/// Fsyncs a folder so a rename inside it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates a temporary file next to `target` (creating parent folders as needed).
///
/// A concurrent `delete_many` may remove an emptied parent folder between the two steps, so
/// creation is retried a few times.
fn temp_beside(target: &Path) -> StoreResult<(std::fs::File, TempPath)> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    let mut attempt = 0;
    loop {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        match tempfile::Builder::new().prefix(TMP_PREFIX).tempfile_in(dir) {
            Ok(t) => return Ok(t.into_parts()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => attempt += 1,
            Err(e) => return Err(io_err(dir, e)),
        }
    }
}

/// Moves a fully written and fsynced temporary file into place.
/// Returns `false` when `noclobber` is set and the target already exists.
fn commit(tmp: TempPath, target: &Path, noclobber: bool) -> StoreResult<bool> {
    let result = if noclobber {
        tmp.persist_noclobber(target)
    } else {
        tmp.persist(target)
    };
    match result {
        Ok(()) => {}
        Err(e) if noclobber && e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Ok(false);
        }
        Err(e) => return Err(io_err(target, e.error)),
    }
    if let Some(dir) = target.parent() {
        sync_dir(dir).map_err(|e| io_err(dir, e))?;
    }
    Ok(true)
}

/// Writes `data` atomically to `target`.
fn write_atomic(target: &Path, data: &[u8], noclobber: bool) -> StoreResult<bool> {
    let (mut file, tmp) = temp_beside(target)?;
    file.write_all(data).map_err(|e| io_err(&tmp, e))?;
    file.sync_all().map_err(|e| io_err(&tmp, e))?;
    drop(file);
    commit(tmp, target, noclobber)
}

fn mtime(meta: &std::fs::Metadata) -> Option<i64> {
    let t = meta.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

/// Appends every object file under `dir` (whose key prefix is `key_dir`) to `out`.
fn walk(dir: &Path, key_dir: &str, prefix: &str, out: &mut Vec<ObjectMeta>) -> StoreResult<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not representable as a key
        };
        if name.starts_with(TMP_PREFIX) {
            continue;
        }
        let key = format!("{key_dir}{name}");
        // Prune: descend only where keys can still start with the prefix.
        let common = key.len().min(prefix.len());
        if key.as_bytes()[..common] != prefix.as_bytes()[..common] {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| io_err(&path, e))?;
        if ft.is_dir() {
            walk(&path, &format!("{key}/"), prefix, out)?;
        } else if key.starts_with(prefix) {
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // deleted meanwhile
                Err(e) => return Err(io_err(&path, e)),
            };
            if meta.is_file() {
                out.push(ObjectMeta {
                    key,
                    size: meta.len(),
                    modified: mtime(&meta),
                });
            }
        }
    }
    Ok(())
}

/// Removes temporary files older than `older_than_secs` under `dir`; returns how many.
fn sweep_tmp(dir: &Path, older_than_secs: u64) -> StoreResult<u32> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| io_err(&path, e))?;
        if ft.is_dir() {
            removed += sweep_tmp(&path, older_than_secs)?;
            continue;
        }
        if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let age = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .map_or(0, |d| d.as_secs());
        if age >= older_than_secs && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

impl FsStore {
    /// Opens (and creates) the folder; `root` must be an absolute path.
    pub fn new(root: &str) -> StoreResult<Self> {
        let path = PathBuf::from(root);
        if !path.is_absolute() {
            return Err(StoreError::InvalidUrl {
                url: format!("file://{root}"),
                reason: "the folder must be an absolute path (`file:///abs/path`)".into(),
            });
        }
        std::fs::create_dir_all(&path).map_err(|e| io_err(&path, e))?;
        Ok(FsStore { root: path })
    }

    /// The folder holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a key (after validating the key).
    fn path_of(&self, key: &str) -> StoreResult<PathBuf> {
        validate_key(key)?;
        if key.split('/').any(|s| s.starts_with(TMP_PREFIX)) {
            return Err(StoreError::InvalidKey {
                key: key.into(),
                reason: format!("segments must not start with `{TMP_PREFIX}`"),
            });
        }
        Ok(self.root.join(key))
    }

    /// Removes folders emptied by a delete, up to (not including) the root.
    fn prune_empty_dirs(&self, mut dir: &Path) {
        while dir != self.root && dir.starts_with(&self.root) {
            if std::fs::remove_dir(dir).is_err() {
                break; // not empty (or already gone): stop
            }
            match dir.parent() {
                Some(p) => dir = p,
                None => break,
            }
        }
    }
}

#[async_trait]
impl Store for FsStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let target = self.path_of(key)?;
        blocking(move || write_atomic(&target, &data, false).map(|_| ())).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<PutIfAbsent> {
        let target = self.path_of(key)?;
        let created = blocking(move || write_atomic(&target, &data, true)).await?;
        Ok(if created {
            PutIfAbsent::Created
        } else {
            PutIfAbsent::AlreadyExists
        })
    }

    async fn put_stream(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        opts: PutStreamOptions<'_>,
    ) -> StoreResult<PutStats> {
        // A local write has no parts to resume: a checkpoint (if any) is ignored and the
        // object is rewritten from the start.
        let target = self.path_of(key)?;
        let t = target.clone();
        let (file, tmp) = blocking(move || temp_beside(&t)).await?;
        let mut file = tokio::fs::File::from_std(file);
        let source = |e| StoreError::Io {
            path: format!("<source stream of `{key}`>"),
            source: e,
        };
        let mut size = 0u64;
        let mut sealed = None;
        if let Some(sealer) = &opts.sealer {
            // One sealed part per `part_size` source bytes, as an S3 store stores them.
            let part = self.part_size();
            let mut parts = Vec::new();
            loop {
                let plain = multipart::read_part(reader, part, &opts, key).await?;
                if plain.is_empty() && !parts.is_empty() {
                    break;
                }
                (opts.progress)(plain.len() as u64);
                let last = (plain.len() as u64) < part;
                let number = parts.len() as i32 + 1;
                let body = multipart::seal_part(sealer.clone(), number, plain, key).await?;
                file.write_all(&body).await.map_err(|e| io_err(&tmp, e))?;
                size += body.len() as u64;
                parts.push(0);
                if last {
                    break;
                }
            }
            sealed = Some(SealedParts::used(
                &[sealer.label().to_string()],
                &parts,
                part,
            ));
        } else {
            let mut buf = vec![0u8; STREAM_BUF];
            loop {
                let n = reader.read(&mut buf).await.map_err(source)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])
                    .await
                    .map_err(|e| io_err(&tmp, e))?;
                size += n as u64;
                (opts.progress)(n as u64);
            }
        }
        file.sync_all().await.map_err(|e| io_err(&tmp, e))?;
        drop(file);
        blocking(move || commit(tmp, &target, false)).await?;
        Ok(PutStats {
            size,
            sent: size,
            parts_sent: 0,
            sealed,
        })
    }

    async fn get_bytes(&self, key: &str) -> StoreResult<Bytes> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if is_missing(&e) => Err(StoreError::NotFound(key.into())),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    async fn get_stream(&self, key: &str) -> StoreResult<Box<dyn AsyncRead + Send + Unpin>> {
        let path = self.path_of(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if is_missing(&e) => Err(StoreError::NotFound(key.into())),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> StoreResult<u64> {
        let src = self.path_of(key)?;
        let dest = path.to_path_buf();
        let key = key.to_string();
        blocking(move || {
            let mut input = match std::fs::File::open(&src) {
                Ok(f) => f,
                Err(e) if is_missing(&e) => return Err(StoreError::NotFound(key)),
                Err(e) => return Err(io_err(&src, e)),
            };
            let (mut out, tmp) = temp_beside(&dest)?;
            // std::io::copy uses copy_file_range between files on Linux.
            let n = std::io::copy(&mut input, &mut out).map_err(|e| io_err(&tmp, e))?;
            out.sync_all().map_err(|e| io_err(&tmp, e))?;
            drop(out);
            commit(tmp, &dest, false)?;
            Ok(n)
        })
        .await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                key: key.into(),
                size: m.len(),
                modified: mtime(&m),
            })),
            Ok(_) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        // Start at the deepest folder the prefix fully names; keys are filtered by string prefix.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        if !dir_part.is_empty() && validate_key(dir_part).is_err() {
            return Ok(Vec::new()); // no valid key can start with this prefix
        }
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir_part)
        };
        let key_dir = if dir_part.is_empty() {
            String::new()
        } else {
            format!("{dir_part}/")
        };
        let prefix = prefix.to_string();
        blocking(move || {
            let mut out = Vec::new();
            walk(&start, &key_dir, &prefix, &mut out)?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        let paths = keys
            .iter()
            .map(|k| self.path_of(k))
            .collect::<StoreResult<Vec<_>>>()?;
        let root = self.root.clone();
        blocking(move || {
            let store = FsStore { root };
            for path in paths {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(io_err(&path, e)),
                }
                if let Some(dir) = path.parent() {
                    store.prune_empty_dirs(dir);
                }
            }
            Ok(())
        })
        .await
    }

    async fn abort_stale_uploads(&self, prefix: &str, older_than_secs: u64) -> StoreResult<u32> {
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        if !dir_part.is_empty() && validate_key(dir_part).is_err() {
            return Ok(0);
        }
        let start = self.root.join(dir_part);
        blocking(move || sweep_tmp(&start, older_than_secs)).await
    }

    async fn probe_conditional_writes(&self) -> StoreResult<bool> {
        // Enforced by the kernel (RENAME_NOREPLACE / link), see `commit`.
        Ok(true)
    }
}

/// Whether an I/O error means "no such object" (a missing file, or a file where a folder
/// is expected on the path).
fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CompletedPartInfo, MultipartState, NoCheckpoint};

    fn store() -> (tempfile::TempDir, FsStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path().to_str().unwrap()).unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn rejects_bad_keys() {
        let (_d, s) = store();
        for key in [
            "",
            "/abs",
            "a//b",
            "a/../b",
            "..",
            "a/./b",
            "a/",
            ".cbk-tmp-x",
            "a\0b",
        ] {
            let err = s
                .put_bytes(key, Bytes::from_static(b"x"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidKey { .. }),
                "{key:?}: {err}"
            );
        }
        assert!(FsStore::new("relative/dir").is_err());
    }

    #[tokio::test]
    async fn put_get_head_delete() {
        let (d, s) = store();
        s.put_bytes("a/b/c.txt", Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(d.path().join("a/b/c.txt")).unwrap(), b"hello");
        assert_eq!(&s.get_bytes("a/b/c.txt").await.unwrap()[..], b"hello");
        let m = s.head("a/b/c.txt").await.unwrap().unwrap();
        assert_eq!((m.key.as_str(), m.size), ("a/b/c.txt", 5));
        assert!(m.modified.unwrap() > 1_600_000_000);
        assert_eq!(s.head("a/b").await.unwrap(), None); // a folder is not an object
        assert_eq!(s.head("a/b/c.txt/d").await.unwrap(), None);
        assert!(matches!(
            s.get_bytes("nope").await,
            Err(StoreError::NotFound(k)) if k == "nope"
        ));
        s.put_bytes("a/b/c.txt", Bytes::from_static(b"again"))
            .await
            .unwrap();
        assert_eq!(&s.get_bytes("a/b/c.txt").await.unwrap()[..], b"again");
        let keys = vec!["a/b/c.txt".to_string(), "missing/x".to_string()];
        s.delete_many(&keys).await.unwrap();
        s.delete_many(&keys).await.unwrap(); // idempotent
        assert_eq!(s.head("a/b/c.txt").await.unwrap(), None);
        // Emptied folders are pruned; the root stays.
        assert!(!d.path().join("a").exists());
        assert!(d.path().exists());
        // No temporary files left anywhere.
        assert!(std::fs::read_dir(d.path()).unwrap().next().is_none());
    }

    #[tokio::test]
    async fn list_has_s3_semantics() {
        let (d, s) = store();
        for k in ["b/2", "a/1", "a/10", "ab", "a/x/y", "a/1b", "c"] {
            s.put_bytes(k, Bytes::from(k.to_string())).await.unwrap();
        }
        // A stray temp file (an interrupted write) is never listed.
        std::fs::write(d.path().join("a").join(".cbk-tmp-zzz"), b"junk").unwrap();
        let keys = |v: Vec<ObjectMeta>| v.into_iter().map(|m| m.key).collect::<Vec<_>>();
        assert_eq!(
            keys(s.list("").await.unwrap()),
            ["a/1", "a/10", "a/1b", "a/x/y", "ab", "b/2", "c"]
        );
        assert_eq!(
            keys(s.list("a").await.unwrap()),
            ["a/1", "a/10", "a/1b", "a/x/y", "ab"]
        );
        assert_eq!(
            keys(s.list("a/").await.unwrap()),
            ["a/1", "a/10", "a/1b", "a/x/y"]
        );
        assert_eq!(keys(s.list("a/1").await.unwrap()), ["a/1", "a/10", "a/1b"]);
        assert_eq!(keys(s.list("a/x/y").await.unwrap()), ["a/x/y"]);
        assert!(s.list("zzz/").await.unwrap().is_empty());
        assert!(s.list("../").await.unwrap().is_empty());
        assert_eq!(s.list("a/10").await.unwrap()[0].size, 4);
    }

    #[tokio::test]
    async fn put_if_absent_single_winner() {
        let (_d, s) = store();
        let s = std::sync::Arc::new(s);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.put_if_absent("locks/l", Bytes::from(format!("writer {i}")))
                    .await
                    .unwrap()
            }));
        }
        let mut created = 0;
        for t in tasks {
            if t.await.unwrap() == PutIfAbsent::Created {
                created += 1;
            }
        }
        assert_eq!(created, 1);
        let body = s.get_bytes("locks/l").await.unwrap();
        assert!(body.starts_with(b"writer "));
        assert_eq!(
            s.put_if_absent("locks/l", Bytes::from_static(b"x"))
                .await
                .unwrap(),
            PutIfAbsent::AlreadyExists
        );
        assert!(s.probe_conditional_writes().await.unwrap());
        assert_eq!(s.list("locks/").await.unwrap().len(), 1);
    }

    /// A reader producing `len` pseudo-random bytes without holding them in memory.
    struct Gen {
        left: u64,
        state: u32,
    }
    impl AsyncRead for Gen {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = (buf.remaining() as u64).min(self.left).min(100_003) as usize;
            let mut chunk = vec![0u8; n];
            for b in &mut chunk {
                self.state = self.state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (self.state >> 16) as u8;
            }
            buf.put_slice(&chunk);
            self.left -= n as u64;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn put_stream_and_get_to_file() {
        let (d, s) = store();
        let len = 5 * 1024 * 1024 + 17;
        let progressed = std::sync::atomic::AtomicU64::new(0);
        let progress = |n: u64| {
            progressed.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let mut source = Gen {
            left: len,
            state: 7,
        };
        let resume = MultipartState {
            key: "big/obj".into(),
            upload_id: "ignored".into(),
            part_size: 1,
            parts: vec![CompletedPartInfo {
                number: 1,
                etag: "x".into(),
                size: 1,
                crc32: 0,
                source_crc32: None,
                sealer: None,
            }],
            sealers: Vec::new(),
        };
        let stats = s
            .put_stream(
                "big/obj",
                &mut source,
                PutStreamOptions {
                    sealer: None,
                    resume: Some(resume),
                    checkpoint: &NoCheckpoint,
                    progress: &progress,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            stats,
            PutStats {
                size: len,
                sent: len,
                parts_sent: 0,
                sealed: None,
            }
        );
        assert_eq!(progressed.load(std::sync::atomic::Ordering::Relaxed), len);
        let mut expected = Vec::new();
        Gen {
            left: len,
            state: 7,
        }
        .read_to_end(&mut expected)
        .await
        .unwrap();
        let out = d.path().join("restore/dir/file.db");
        assert_eq!(s.get_to_file("big/obj", &out).await.unwrap(), len);
        assert_eq!(std::fs::read(&out).unwrap(), expected);
        let mut streamed = Vec::new();
        s.get_stream("big/obj")
            .await
            .unwrap()
            .read_to_end(&mut streamed)
            .await
            .unwrap();
        assert_eq!(streamed, expected);
        assert!(matches!(
            s.get_to_file("missing", &out).await,
            Err(StoreError::NotFound(_))
        ));
        // The failed download left the previous file intact.
        assert_eq!(std::fs::metadata(&out).unwrap().len(), len);
    }

    #[tokio::test]
    async fn failed_stream_leaves_no_object_and_sweeps_temp() {
        struct Failing(u32);
        impl AsyncRead for Failing {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if self.0 == 0 {
                    return std::task::Poll::Ready(Err(std::io::Error::other("source died")));
                }
                self.0 -= 1;
                buf.put_slice(&[1u8; 1000]);
                std::task::Poll::Ready(Ok(()))
            }
        }
        let (_d, s) = store();
        let err = s
            .put_stream(
                "x/y",
                &mut Failing(3),
                PutStreamOptions {
                    sealer: None,
                    resume: None,
                    checkpoint: &NoCheckpoint,
                    progress: &|_| {},
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("source died"), "{err}");
        assert_eq!(s.head("x/y").await.unwrap(), None);
        assert!(s.list("").await.unwrap().is_empty());
        // The temp file was removed on drop, so there is nothing stale to sweep.
        assert_eq!(s.abort_stale_uploads("", 0).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sweeps_stale_temp_files() {
        let (d, s) = store();
        std::fs::create_dir_all(d.path().join("p/q")).unwrap();
        std::fs::write(d.path().join("p/q/.cbk-tmp-abc"), b"junk").unwrap();
        std::fs::write(d.path().join("p/q/keep"), b"k").unwrap();
        assert_eq!(s.abort_stale_uploads("p/", 3600).await.unwrap(), 0);
        assert_eq!(s.abort_stale_uploads("p/", 0).await.unwrap(), 1);
        assert!(d.path().join("p/q/keep").exists());
        assert!(!d.path().join("p/q/.cbk-tmp-abc").exists());
    }
}
