//! `compare_live`: what a restart restore would do to a node's live sstables, measured before
//! anything is fetched. With `delta`, every backed-up sstable whose files are all live, with the
//! same names and sizes in one data folder and the same content, is reported as kept in place
//! (the fetch leaves it out, the move does not displace it). It also sums the live bytes the move
//! will displace into the staging folder's filesystem, for the free-space check before fetch.
//!
//! Content check: a Data.db whose live Digest.crc32 equals the backup's Digest file and says the
//! CRC32 the manifest records for that Data.db is taken as identical without being read (sstables
//! are immutable; the Digest is the component's own checksum). Every other file whose name and
//! size match is hashed (CRC32), as is a Data.db without such a Digest.

use super::pipeline::crc32_of;
use super::relocate::sstable_files;
use super::{OpError, OpResult};
use crate::cassandra::sstable::{Component, DigestAlgorithm, SstableName};
use crate::repo::keys::{check_relative, check_segment};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One backed-up file of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Path relative to the table folder (`nb-1-big-Data.db`, `.idx/nb-1-big-Data.db`).
    pub path: String,
    /// Where the fetch would stage it, relative to the staging root.
    pub dest: String,
    pub size: u64,
    pub crc32: u32,
}

/// One table: its live folder and its backed-up files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompareTable {
    pub keyspace: String,
    /// Live folder name, `table-liveid`.
    pub folder: String,
    pub files: Vec<BackupFile>,
}

/// The request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareRequest {
    pub data_dirs: Vec<String>,
    /// The staging folder: displaced files on another filesystem are copied there.
    pub staging_root: String,
    pub tables: Vec<CompareTable>,
    /// Compare contents and report identical sstables as kept (otherwise only measure).
    #[serde(default)]
    pub delta: bool,
}

/// A backed-up file that is live already and stays in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFile {
    /// As in [`BackupFile::dest`].
    pub dest: String,
    /// Absolute live path.
    pub live: String,
}

/// The result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompareResult {
    pub kept: Vec<KeptFile>,
    pub kept_bytes: u64,
    /// Bytes read to compare contents (Data.db vouched for by its Digest are not read).
    pub hashed_bytes: u64,
    /// Data.db files taken as identical on their Digest.
    pub digests_trusted: u64,
    /// Live sstable files of the tables the move would displace, and their bytes.
    pub displaced_files: u64,
    pub displaced_bytes: u64,
    /// Of those, the bytes on another filesystem than the staging folder (they are copied
    /// there; on the same filesystem a displacement is a rename).
    pub displaced_bytes_copied: u64,
}

/// A live sstable file.
struct Live {
    path: PathBuf,
    dir: usize,
    size: u64,
    dev: u64,
}

/// Runs `compare_live`.
pub async fn run(req: CompareRequest) -> OpResult<CompareResult> {
    tokio::task::spawn_blocking(move || compare(&req))
        .await
        .map_err(|e| OpError::fatal(e.to_string()))?
}

fn compare(req: &CompareRequest) -> OpResult<CompareResult> {
    let staging_dev = device(Path::new(&req.staging_root));
    let mut result = CompareResult::default();
    for t in &req.tables {
        check_segment(&t.keyspace).map_err(|e| OpError::fatal(e.to_string()))?;
        check_segment(&t.folder).map_err(|e| OpError::fatal(e.to_string()))?;
        let mut live: BTreeMap<String, Live> = BTreeMap::new();
        for (i, d) in req.data_dirs.iter().enumerate() {
            let dir = Path::new(d).join(&t.keyspace).join(&t.folder);
            for (rel, path) in sstable_files(&dir)? {
                let m = std::fs::metadata(&path).map_err(|e| OpError::io(&path, e))?;
                // The same name in two data folders: neither is kept (Cassandra would see two).
                if let Some(twice) = live.get_mut(&rel) {
                    twice.dir = usize::MAX;
                    continue;
                }
                live.insert(
                    rel,
                    Live {
                        path,
                        dir: i,
                        size: m.len(),
                        dev: m.dev(),
                    },
                );
            }
        }
        let mut kept: Vec<&str> = Vec::new();
        if req.delta {
            for group in sstables(&t.files)? {
                if let Some(bytes) = same(&group, &live, &mut result)? {
                    result.kept_bytes += bytes;
                    for f in group {
                        kept.push(&f.path);
                        result.kept.push(KeptFile {
                            dest: f.dest.clone(),
                            live: live[&f.path].path.display().to_string(),
                        });
                    }
                }
            }
        }
        for (rel, l) in &live {
            if !kept.contains(&rel.as_str()) {
                result.displaced_files += 1;
                result.displaced_bytes += l.size;
                if staging_dev.is_some_and(|d| d != l.dev) {
                    result.displaced_bytes_copied += l.size;
                }
            }
        }
    }
    Ok(result)
}

/// The backed-up files grouped by sstable (subfolder + name prefix).
fn sstables(files: &[BackupFile]) -> OpResult<Vec<Vec<&BackupFile>>> {
    let mut groups: BTreeMap<(String, String), Vec<&BackupFile>> = BTreeMap::new();
    for f in files {
        check_relative(&f.path).map_err(|e| OpError::fatal(e.to_string()))?;
        let (sub, name) = f.path.rsplit_once('/').unwrap_or(("", &f.path));
        // Files that are no sstable component are never kept (the fetch stages them).
        let Ok(parsed) = SstableName::parse(name) else {
            continue;
        };
        groups
            .entry((sub.to_string(), parsed.prefix()))
            .or_default()
            .push(f);
    }
    Ok(groups.into_values().collect())
}

/// Whether every file of a backed-up sstable is live, in one data folder, with the same size
/// and content; its bytes if so.
fn same(
    group: &[&BackupFile],
    live: &BTreeMap<String, Live>,
    result: &mut CompareResult,
) -> OpResult<Option<u64>> {
    let mut dirs = group.iter().map(|f| live.get(&f.path).map(|l| l.dir));
    let Some(Some(dir)) = dirs.next() else {
        return Ok(None);
    };
    if dir == usize::MAX || !dirs.all(|d| d == Some(dir)) {
        return Ok(None);
    }
    if group.iter().any(|f| live[&f.path].size != f.size) {
        return Ok(None);
    }
    let component = |f: &BackupFile| {
        let name = f.path.rsplit('/').next().unwrap_or(&f.path);
        SstableName::parse(name).ok().map(|n| n.component)
    };
    // The backed-up Digest.crc32 of this sstable and the CRC32 its Data.db has.
    let digest = group
        .iter()
        .find(|f| component(f).and_then(|c| c.digest_algorithm()) == Some(DigestAlgorithm::Crc32));
    let data = group.iter().find(|f| component(f) == Some(Component::Data));
    let mut trusted_data = None;
    if let (Some(dg), Some(data)) = (digest, data) {
        let path = &live[&dg.path].path;
        let text = std::fs::read(path).map_err(|e| OpError::io(path, e))?;
        result.hashed_bytes += text.len() as u64;
        if crc32fast::hash(&text) != dg.crc32 {
            return Ok(None);
        }
        let says = crate::cassandra::digest::parse_digest(&String::from_utf8_lossy(&text), path)
            .map_err(|e| OpError::fatal(e.to_string()))?;
        if says == data.crc32 {
            trusted_data = Some(data.path.as_str());
            result.digests_trusted += 1;
        }
    }
    for f in group {
        if Some(f.path.as_str()) == trusted_data || Some(f) == digest {
            continue;
        }
        let path = &live[&f.path].path;
        let (n, crc) = crc32_of(path).map_err(|e| OpError::io(path, e))?;
        result.hashed_bytes += n;
        if crc != f.crc32 {
            return Ok(None);
        }
    }
    Ok(Some(group.iter().map(|f| f.size).sum()))
}

/// The device of `path`'s nearest existing folder.
fn device(path: &Path) -> Option<u64> {
    let mut p = path;
    loop {
        if let Ok(m) = std::fs::metadata(p) {
            return Some(m.dev());
        }
        p = p.parent()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> BackupFile {
        std::fs::write(dir.join(name), bytes).unwrap();
        BackupFile {
            path: name.into(),
            dest: format!("ks/t-1/{name}"),
            size: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }

    #[test]
    fn identical_sstables_are_kept_and_changed_ones_displaced() {
        let data = tempfile::tempdir().unwrap();
        let table = data.path().join("ks/t-1");
        std::fs::create_dir_all(&table).unwrap();
        let d1 = b"data one".to_vec();
        let digest = crc32fast::hash(&d1).to_string();
        let mut files = vec![
            file(&table, "nb-1-big-Data.db", &d1),
            file(&table, "nb-1-big-Digest.crc32", digest.as_bytes()),
            file(&table, "nb-1-big-Index.db", b"index one"),
            file(&table, "nb-2-big-Data.db", b"data two"),
            file(&table, "nb-2-big-Index.db", b"index two"),
        ];
        // nb-2's index changed in place (same size), nb-3 is only in the backup, nb-4 only live.
        std::fs::write(table.join("nb-2-big-Index.db"), b"INDEX TWO").unwrap();
        files.push(BackupFile {
            path: "nb-3-big-Data.db".into(),
            dest: "ks/t-1/nb-3-big-Data.db".into(),
            size: 3,
            crc32: 0,
        });
        std::fs::write(table.join("nb-4-big-Data.db"), b"new").unwrap();
        let req = CompareRequest {
            data_dirs: vec![data.path().display().to_string()],
            staging_root: data.path().join("staging").display().to_string(),
            tables: vec![CompareTable {
                keyspace: "ks".into(),
                folder: "t-1".into(),
                files,
            }],
            delta: true,
        };
        let r = compare(&req).unwrap();
        let kept: Vec<&str> = r.kept.iter().map(|k| k.dest.as_str()).collect();
        assert_eq!(
            kept,
            [
                "ks/t-1/nb-1-big-Data.db",
                "ks/t-1/nb-1-big-Digest.crc32",
                "ks/t-1/nb-1-big-Index.db"
            ]
        );
        assert_eq!(r.digests_trusted, 1);
        // Data.db of nb-1 was not read: only its Digest and Index (and nb-2's files) were.
        assert_eq!(r.hashed_bytes, (digest.len() + 9 + 8 + 9) as u64);
        assert_eq!((r.displaced_files, r.displaced_bytes_copied), (3, 0));
        // Without delta, everything live is displaced and nothing kept.
        let r = compare(&CompareRequest {
            delta: false,
            ..req
        })
        .unwrap();
        assert!(r.kept.is_empty());
        assert_eq!(r.displaced_files, 6);
    }
}
