//! `move`, `clear_commitlog` and `cleanup`: put staged files into the live table folders the way
//! the Node Restart Method does, without ever overwriting a live file or losing one.
//!
//! The move is planned once (written to `move-plan.json` in the staging folder) and then
//! executed; a rerun after a crash re-reads the plan and finishes it, so every file ends up in
//! exactly one place. Live sstables of restored tables are displaced into the staging folder
//! (not deleted), clashing generations are renamed consistently across all components, plain
//! `<ks>/<table>/` folders are refused, and moved files get the data folder's owner.

use super::pipeline::{crc32_of, temp_path};
use super::{OpContext, OpError, OpResult};
use crate::cassandra::sstable::{Generation, SstableName};
use crate::repo::keys::{check_relative, check_segment};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One table to move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveTable {
    pub keyspace: String,
    pub table: String,
    /// Folder relative to the staging root holding the staged files (`ks/table-oldid`).
    pub staged: String,
    /// Live table id (32 hex digits) the files go to.
    pub live_id: String,
}

/// The `move` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveRequest {
    pub staging_root: String,
    pub data_dirs: Vec<String>,
    pub tables: Vec<MoveTable>,
    /// `user[:group]`; default: the owner of the first data folder.
    #[serde(default)]
    pub owner: Option<String>,
    /// Move the live sstables of the restored tables aside first (Node Restart Method).
    #[serde(default = "yes")]
    pub displace_live: bool,
}

fn yes() -> bool {
    true
}

/// One planned rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Step {
    from: PathBuf,
    to: PathBuf,
    /// `displace` (live -> staging) or `restore` (staging -> live).
    kind: String,
}

/// The persisted plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct MovePlan {
    steps: Vec<Step>,
    /// Incoming sstables that were already live with identical content.
    already_live: Vec<PathBuf>,
    /// `old name -> new name` of renamed generations.
    renamed: BTreeMap<String, String>,
}

/// The `move` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveResult {
    pub restored_files: u64,
    pub displaced_files: u64,
    pub already_live: u64,
    pub renamed_generations: BTreeMap<String, String>,
    pub displaced_to: String,
}

const PLAN_FILE: &str = "move-plan.json";

/// Runs `move`.
pub async fn run_move(req: MoveRequest, cx: &OpContext) -> OpResult<MoveResult> {
    tokio::task::spawn_blocking(move || move_blocking(&req))
        .await
        .map_err(|e| OpError::fatal(e.to_string()))?
        .inspect(|r| cx.log(format!("moved {} files into place", r.restored_files)))
}

fn move_blocking(req: &MoveRequest) -> OpResult<MoveResult> {
    let root = PathBuf::from(&req.staging_root);
    let plan_path = root.join(PLAN_FILE);
    let plan: MovePlan = match std::fs::read(&plan_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            OpError::fatal(format!(
                "{}: unreadable move plan: {e}",
                plan_path.display()
            ))
        })?,
        Err(_) => {
            let plan = make_plan(req, &root)?;
            write_atomic(
                &plan_path,
                &serde_json::to_vec_pretty(&plan).unwrap_or_default(),
            )?;
            plan
        }
    };
    let owner = resolve_owner(req.owner.as_deref(), &req.data_dirs)?;
    let mut result = MoveResult {
        already_live: plan.already_live.len() as u64,
        renamed_generations: plan.renamed.clone(),
        displaced_to: root.join("displaced").display().to_string(),
        ..Default::default()
    };
    // Live paths a finished restore step already filled (the staged copy is gone, the live file
    // is there). A displace step out of such a path ran before that restore step: replaying it
    // after a crash would move (or, with equal content, delete) the restored file.
    let refilled: BTreeSet<&Path> = plan
        .steps
        .iter()
        .filter(|s| s.kind == "restore" && !s.from.exists() && s.to.exists())
        .map(|s| s.to.as_path())
        .collect();
    for step in &plan.steps {
        if step.kind != "restore" && refilled.contains(step.from.as_path()) && step.to.exists() {
            result.displaced_files += 1;
            continue;
        }
        let moved = apply_step(step)?;
        if step.kind == "restore" {
            if let Some((uid, gid)) = owner {
                chown_up_to(&step.to, uid, gid, &req.data_dirs)?;
            }
            result.restored_files += u64::from(moved || step.to.exists());
        } else {
            result.displaced_files += u64::from(moved || step.to.exists());
        }
    }
    Ok(result)
}

/// Renames `from` to `to` unless that already happened. Returns whether it moved now.
fn apply_step(step: &Step) -> OpResult<bool> {
    let from_exists = step.from.exists();
    let to_exists = step.to.exists();
    match (from_exists, to_exists) {
        (false, true) => Ok(false),
        (true, false) => {
            if let Some(parent) = step.to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| OpError::io(parent, e))?;
            }
            move_file(&step.from, &step.to)?;
            Ok(true)
        }
        (true, true) => {
            // Crash between copy and unlink, or a file that appeared meanwhile: never overwrite.
            let a = crc32_of(&step.from).map_err(|e| OpError::io(&step.from, e))?;
            let b = crc32_of(&step.to).map_err(|e| OpError::io(&step.to, e))?;
            if a == b {
                std::fs::remove_file(&step.from).map_err(|e| OpError::io(&step.from, e))?;
                Ok(false)
            } else {
                Err(OpError::fatal(format!(
                    "refusing to overwrite {} (a different file appeared there)",
                    step.to.display()
                )))
            }
        }
        (false, false) => Err(OpError::fatal(format!(
            "{} is missing and was never moved to {}",
            step.from.display(),
            step.to.display()
        ))),
    }
}

/// Rename, or copy + fsync + rename + unlink across filesystems.
fn move_file(from: &Path, to: &Path) -> OpResult<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let tmp = temp_path(to);
            std::fs::copy(from, &tmp).map_err(|e| OpError::io(&tmp, e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| OpError::io(&tmp, e))?;
            std::fs::rename(&tmp, to).map_err(|e| OpError::io(to, e))?;
            std::fs::remove_file(from).map_err(|e| OpError::io(from, e))
        }
        Err(e) => Err(OpError::io(from, e)),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> OpResult<()> {
    use std::io::Write;
    let tmp = temp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| OpError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| OpError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| OpError::io(path, e))
}

/// Files of a table folder: top level and `.<index>/` subfolders, as (relative path, path).
fn sstable_files(folder: &Path) -> OpResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(folder) else {
        return Ok(out);
    };
    for entry in rd {
        let entry = entry.map_err(|e| OpError::io(folder, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| OpError::io(&path, e))?;
        if ft.is_dir() && name.starts_with('.') {
            for sub in std::fs::read_dir(&path).map_err(|e| OpError::io(&path, e))? {
                let sub = sub.map_err(|e| OpError::io(&path, e))?;
                if sub.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    let n = sub.file_name().to_string_lossy().into_owned();
                    if SstableName::parse(&n).is_ok() {
                        out.push((format!("{name}/{n}"), sub.path()));
                    }
                }
            }
        } else if ft.is_file() && SstableName::parse(&name).is_ok() {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

fn split_rel(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((sub, name)) => (sub, name),
        None => ("", rel),
    }
}

fn make_plan(req: &MoveRequest, root: &Path) -> OpResult<MovePlan> {
    if req.data_dirs.is_empty() {
        return Err(OpError::fatal("no data folders"));
    }
    let mut plan = MovePlan::default();
    for (t_index, t) in req.tables.iter().enumerate() {
        check_segment(&t.keyspace).map_err(|e| OpError::fatal(e.to_string()))?;
        check_segment(&t.table).map_err(|e| OpError::fatal(e.to_string()))?;
        check_relative(&t.staged).map_err(|e| OpError::fatal(e.to_string()))?;
        let folder = format!("{}-{}", t.table, t.live_id);
        check_segment(&folder).map_err(|e| OpError::fatal(e.to_string()))?;
        let live: Vec<PathBuf> = req
            .data_dirs
            .iter()
            .map(|d| Path::new(d).join(&t.keyspace).join(&folder))
            .collect();
        for d in &req.data_dirs {
            let legacy = Path::new(d).join(&t.keyspace).join(&t.table);
            if legacy.is_dir() {
                return Err(OpError::fatal(format!(
                    "{} exists: Cassandra would read this plain table folder instead of `{folder}`; \
                     move it away before restoring",
                    legacy.display()
                )));
            }
        }
        // Names (per subfolder) that stay live, and generations in use anywhere.
        let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
        let mut max_gen = 0u64;
        let mut live_by_prefix: BTreeMap<(String, String), Vec<PathBuf>> = BTreeMap::new();
        for (i, dir) in live.iter().enumerate() {
            for (rel, path) in sstable_files(dir)? {
                let (sub, name) = split_rel(&rel);
                let parsed = SstableName::parse(name).map_err(|e| OpError::fatal(e.to_string()))?;
                if let Generation::Int(g) = parsed.generation {
                    max_gen = max_gen.max(g);
                }
                if req.displace_live {
                    plan.steps.push(Step {
                        from: path,
                        to: root
                            .join("displaced")
                            .join(i.to_string())
                            .join(&t.keyspace)
                            .join(&folder)
                            .join(&rel),
                        kind: "displace".into(),
                    });
                } else {
                    taken.insert((sub.to_string(), name.to_string()));
                    live_by_prefix
                        .entry((sub.to_string(), parsed.prefix()))
                        .or_default()
                        .push(path);
                }
            }
            for (rel, _) in sstable_files(&dir.join("backups"))? {
                if let Ok(p) = SstableName::parse(split_rel(&rel).1)
                    && let Generation::Int(g) = p.generation
                {
                    max_gen = max_gen.max(g);
                }
            }
        }
        let staged = root.join(&t.staged);
        let incoming = sstable_files(&staged)?;
        for (_, path) in &incoming {
            if let Some(Ok(p)) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(SstableName::parse)
                && let Generation::Int(g) = p.generation
            {
                max_gen = max_gen.max(g);
            }
        }
        // Group incoming files by sstable (subfolder + prefix) so renames are consistent.
        let mut groups: BTreeMap<(String, String), Vec<(String, PathBuf)>> = BTreeMap::new();
        for (rel, path) in incoming {
            let (sub, name) = split_rel(&rel);
            let parsed = SstableName::parse(name).map_err(|e| OpError::fatal(e.to_string()))?;
            groups
                .entry((sub.to_string(), parsed.prefix()))
                .or_default()
                .push((name.to_string(), path));
        }
        let n_dirs = live.len();
        for (g_index, ((sub, prefix), files)) in groups.into_iter().enumerate() {
            let target_dir = live[(g_index + t_index) % n_dirs].join(&sub);
            let clash = files
                .iter()
                .any(|(n, _)| taken.contains(&(sub.clone(), n.clone())));
            let rename = if clash {
                if same_sstable(&files, live_by_prefix.get(&(sub.clone(), prefix.clone())))? {
                    plan.already_live
                        .extend(files.iter().map(|(_, p)| p.clone()));
                    continue;
                }
                max_gen += 1;
                Some(Generation::Int(max_gen))
            } else {
                None
            };
            for (name, path) in files {
                let parsed =
                    SstableName::parse(&name).map_err(|e| OpError::fatal(e.to_string()))?;
                let new_name = match &rename {
                    Some(g) => {
                        let n = parsed.with_generation(g.clone()).file_name();
                        plan.renamed
                            .insert(format!("{}/{}", t.staged, name), n.clone());
                        n
                    }
                    None => name.clone(),
                };
                plan.steps.push(Step {
                    from: path,
                    to: target_dir.join(new_name),
                    kind: "restore".into(),
                });
            }
        }
    }
    Ok(plan)
}

/// Whether an incoming sstable is the very one already live (same Data.db size and CRC32).
fn same_sstable(incoming: &[(String, PathBuf)], live: Option<&Vec<PathBuf>>) -> OpResult<bool> {
    let Some(live) = live else { return Ok(false) };
    let is_data = |p: &&PathBuf| p.to_string_lossy().ends_with("-Data.db");
    let a = incoming.iter().map(|(_, p)| p).find(is_data).cloned();
    let b = live.iter().find(is_data).cloned();
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(false);
    };
    let ca = crc32_of(&a).map_err(|e| OpError::io(&a, e))?;
    let cb = crc32_of(&b).map_err(|e| OpError::io(&b, e))?;
    Ok(ca == cb)
}

/// `user[:group]` -> ids (from /etc/passwd and /etc/group), or the first data folder's owner.
fn resolve_owner(owner: Option<&str>, data_dirs: &[String]) -> OpResult<Option<(u32, u32)>> {
    use std::os::unix::fs::MetadataExt;
    let Some(spec) = owner else {
        let Some(first) = data_dirs.first() else {
            return Ok(None);
        };
        return Ok(std::fs::metadata(first).ok().map(|m| (m.uid(), m.gid())));
    };
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .ok_or_else(|| {
            OpError::fatal(format!("owner user `{user}` does not exist on this node"))
        })?;
    let uid: u32 = entry[2]
        .parse()
        .map_err(|_| OpError::fatal("bad /etc/passwd"))?;
    let mut gid: u32 = entry[3]
        .parse()
        .map_err(|_| OpError::fatal("bad /etc/passwd"))?;
    if !group.is_empty() {
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        gid = groups
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[0] == group)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                OpError::fatal(format!("owner group `{group}` does not exist on this node"))
            })?;
    }
    Ok(Some((uid, gid)))
}

/// The `hand_over` request: staged table folders that `nodetool import` will move files out
/// of, so Cassandra's user must own them (it refuses folders it cannot write).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandOverRequest {
    pub staging_root: String,
    /// Folders relative to the staging root (`ks/table-oldid`).
    pub folders: Vec<String>,
    pub data_dirs: Vec<String>,
    /// `user[:group]`; default: the owner of the first data folder.
    #[serde(default)]
    pub owner: Option<String>,
}

/// The `hand_over` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOverResult {
    pub files: u64,
}

/// Runs `hand_over`: chowns each staged table folder and the files in it (idempotent).
pub async fn run_hand_over(req: HandOverRequest) -> OpResult<HandOverResult> {
    tokio::task::spawn_blocking(move || {
        let root = PathBuf::from(&req.staging_root);
        let Some((uid, gid)) = resolve_owner(req.owner.as_deref(), &req.data_dirs)? else {
            return Ok(HandOverResult::default());
        };
        let mut result = HandOverResult::default();
        for folder in &req.folders {
            check_relative(folder).map_err(|e| OpError::fatal(e.to_string()))?;
            let dir = root.join(folder);
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| OpError::io(&dir, e))?;
            for (_, path) in sstable_files(&dir)? {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| OpError::io(&path, e))?;
                result.files += 1;
            }
        }
        Ok(result)
    })
    .await
    .map_err(|e| OpError::fatal(e.to_string()))?
}

/// Gives a moved file, and the folders created for it below its data folder, to the owner.
/// Nothing at or above the data folder itself is touched.
fn chown_up_to(path: &Path, uid: u32, gid: u32, data_dirs: &[String]) -> OpResult<()> {
    let Some(root) = data_dirs
        .iter()
        .map(Path::new)
        .find(|d| path.starts_with(d))
    else {
        return std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| OpError::io(path, e));
    };
    let mut cur = path;
    while cur != root {
        std::os::unix::fs::chown(cur, Some(uid), Some(gid)).map_err(|e| OpError::io(cur, e))?;
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    Ok(())
}

/// The `clear_commitlog` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClearCommitlogRequest {
    pub commitlog_dir: String,
    /// Where the segments are moved (kept until cleanup), not deleted.
    pub displaced_dir: String,
}

/// The `clear_commitlog` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearCommitlogResult {
    pub segments_moved: u64,
}

/// Runs `clear_commitlog`: moves every commit log segment aside so nothing newer than the
/// backup is replayed at startup.
pub async fn run_clear_commitlog(req: ClearCommitlogRequest) -> OpResult<ClearCommitlogResult> {
    let dir = PathBuf::from(&req.commitlog_dir);
    let dest = PathBuf::from(&req.displaced_dir);
    std::fs::create_dir_all(&dest).map_err(|e| OpError::io(&dest, e))?;
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(ClearCommitlogResult::default());
    };
    for entry in rd {
        let entry = entry.map_err(|e| OpError::io(&dir, e))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            move_file(&entry.path(), &dest.join(entry.file_name()))?;
            n += 1;
        }
    }
    Ok(ClearCommitlogResult { segments_moved: n })
}

/// The `cleanup` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupRequest {
    pub staging_root: String,
    /// Keep displaced live files and commit log segments (default true).
    #[serde(default = "yes")]
    pub keep_displaced: bool,
}

/// The `cleanup` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupResult {
    pub removed: bool,
    pub kept: Vec<String>,
}

/// Runs `cleanup`: removes the staged copies, keeping what was displaced from live folders.
pub async fn run_cleanup(req: CleanupRequest) -> OpResult<CleanupResult> {
    let root = PathBuf::from(&req.staging_root);
    let mut result = CleanupResult::default();
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Ok(result);
    };
    for entry in rd {
        let entry = entry.map_err(|e| OpError::io(&root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if req.keep_displaced && name.starts_with("displaced") {
            result.kept.push(entry.path().display().to_string());
            continue;
        }
        let p = entry.path();
        let r = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| OpError::io(&p, e))?;
    }
    result.removed = true;
    Ok(result)
}
