//! `move`, `clear_commitlog` and `cleanup`: put staged files into the live table folders the way
//! the Node Restart Method does, without ever overwriting a live file or losing one.
//!
//! The move is planned once (written to `move-plan.json` in the folder of the restore run) and
//! then executed; a rerun of the same run after a crash re-reads the plan and finishes it, so
//! every file ends up in exactly one place. Live sstables of restored tables are displaced into
//! the run's folder (not deleted), clashing generations are renamed consistently across all
//! components, plain `<ks>/<table>/` folders are refused, and moved files get the data folder's
//! owner.
//!
//! Each restore run has its own folder (`run_dir`) for its move plan and displaced files, so a
//! later restore never meets what an earlier one left. Every refusal a new move plan can hit is
//! checked before the first rename, and `check_only` runs the same checks while Cassandra still
//! runs (before `stop`). If a rename fails anyway, the renames done so far are undone in
//! reverse order (and the commit log segments put back), so the live folders are as they were.

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
    /// Folder of this restore run: its `move-plan.json` and `displaced/` (default: the
    /// staging root, as before runs had folders).
    #[serde(default)]
    pub run_dir: Option<String>,
    /// Plan and check only; change nothing (run before Cassandra is stopped).
    #[serde(default)]
    pub check_only: bool,
    /// Commit log folder and where `clear_commitlog` moved its segments: put back when the
    /// move is rolled back.
    #[serde(default)]
    pub commitlog_dir: Option<String>,
    #[serde(default)]
    pub displaced_commitlog: Option<String>,
    /// Live files a delta restore keeps in place (absolute paths): never displaced, and each
    /// must still be there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_live: Vec<String>,
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
    /// The move failed with this error and was rolled back (the live folders are as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Renames undone by the rollback (commit log segments included).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rolled_back: u64,
    /// Live files kept in place (delta restore).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_live: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    let run_dir = req
        .run_dir
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.clone());
    let plan_path = run_dir.join(PLAN_FILE);
    let saved: Option<MovePlan> = match std::fs::read(&plan_path) {
        Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| {
            OpError::fatal(format!(
                "{}: unreadable move plan: {e}",
                plan_path.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(OpError::io(&plan_path, e)),
    };
    let mut result = MoveResult {
        displaced_to: run_dir.join("displaced").display().to_string(),
        kept_live: req.keep_live.len() as u64,
        ..Default::default()
    };
    if req.check_only {
        // The same checks as the move itself, while nothing is stopped yet.
        resolve_owner(req.owner.as_deref(), &req.data_dirs)?;
        let plan = match saved {
            Some(plan) => {
                check_replay(&plan)?;
                plan
            }
            None => {
                let plan = make_plan(req, &root, &run_dir)?;
                check_fresh(&plan)?;
                plan
            }
        };
        result.restored_files = plan.steps.iter().filter(|s| s.kind == "restore").count() as u64;
        result.displaced_files = plan.steps.len() as u64 - result.restored_files;
        result.already_live = plan.already_live.len() as u64;
        result.renamed_generations = plan.renamed;
        return Ok(result);
    }
    let prepared = match saved {
        Some(plan) => Ok(plan),
        None => resolve_owner(req.owner.as_deref(), &req.data_dirs)
            .and_then(|_| make_plan(req, &root, &run_dir))
            .and_then(|plan| {
                check_fresh(&plan)?;
                std::fs::create_dir_all(&run_dir).map_err(|e| OpError::io(&run_dir, e))?;
                write_atomic(
                    &plan_path,
                    &serde_json::to_vec_pretty(&plan).unwrap_or_default(),
                )?;
                Ok(plan)
            }),
    };
    let outcome = prepared.map(|plan| {
        result.already_live = plan.already_live.len() as u64;
        result.renamed_generations = plan.renamed.clone();
        let done = execute(req, &plan, &mut result);
        (plan, done)
    });
    let (plan, err) = match outcome {
        Ok((_, Ok(()))) => return Ok(result),
        Ok((plan, Err(e))) => (plan, e),
        // Nothing was renamed: only the commit log may have to go back.
        Err(e) => (MovePlan::default(), e),
    };
    match rollback(req, &plan) {
        Ok(undone) => {
            if plan_path.exists() {
                std::fs::remove_file(&plan_path).map_err(|e| OpError::io(&plan_path, e))?;
            }
            Ok(MoveResult {
                failed: Some(err.message),
                rolled_back: undone,
                restored_files: 0,
                displaced_files: 0,
                ..result
            })
        }
        Err(r) => Err(OpError::fatal(format!(
            "{}; undoing the move failed too: {}; the move plan is kept in {}: apply the same \
             plan again to finish the move",
            err.message,
            r.message,
            plan_path.display()
        ))),
    }
}

/// Runs the steps of a plan (a rerun finishes what a crash interrupted).
fn execute(req: &MoveRequest, plan: &MovePlan, result: &mut MoveResult) -> OpResult<()> {
    let owner = resolve_owner(req.owner.as_deref(), &req.data_dirs)?;
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
    Ok(())
}

/// Undoes the renames of a plan, last first: every step whose file is at its destination and
/// not at its source goes back. Then the commit log segments `clear_commitlog` moved aside go
/// back. Returns how many files were put back.
fn rollback(req: &MoveRequest, plan: &MovePlan) -> OpResult<u64> {
    let mut undone = 0;
    for step in plan.steps.iter().rev() {
        if step.to.is_file() && !step.from.exists() {
            if let Some(parent) = step.from.parent() {
                std::fs::create_dir_all(parent).map_err(|e| OpError::io(parent, e))?;
            }
            move_file(&step.to, &step.from)?;
            undone += 1;
        }
    }
    if let (Some(dir), Some(aside)) = (&req.commitlog_dir, &req.displaced_commitlog) {
        let (dir, aside) = (Path::new(dir), Path::new(aside));
        if let Ok(rd) = std::fs::read_dir(aside) {
            for entry in rd {
                let entry = entry.map_err(|e| OpError::io(aside, e))?;
                let to = dir.join(entry.file_name());
                if entry.file_type().map(|t| t.is_file()).unwrap_or(false) && !to.exists() {
                    move_file(&entry.path(), &to)?;
                    undone += 1;
                }
            }
        }
    }
    Ok(undone)
}

/// Refusals of a new plan, found before anything is renamed: every source is there, nothing
/// is at a displace destination, and a restore destination is free or holds a live sstable
/// file that an earlier step displaces; no two steps share a destination.
fn check_fresh(plan: &MovePlan) -> OpResult<()> {
    let mut displaced: BTreeSet<&Path> = BTreeSet::new();
    let mut targets: BTreeSet<&Path> = BTreeSet::new();
    for step in &plan.steps {
        if !step.from.is_file() {
            return Err(OpError::fatal(format!(
                "{} is not a file (it was listed a moment ago)",
                step.from.display()
            )));
        }
        if !targets.insert(step.to.as_path()) {
            return Err(OpError::fatal(format!(
                "two files would be moved to {}",
                step.to.display()
            )));
        }
        let free = !step.to.exists() && step.to.symlink_metadata().is_err();
        if step.kind == "restore" {
            if !free && !displaced.contains(step.to.as_path()) {
                return Err(OpError::fatal(format!(
                    "refusing to overwrite {}: it exists and is not a live sstable file the \
                     restore displaces; move it away, then apply again",
                    step.to.display()
                )));
            }
        } else {
            if !free {
                return Err(OpError::fatal(format!(
                    "refusing to overwrite {} (it exists already)",
                    step.to.display()
                )));
            }
            displaced.insert(step.from.as_path());
        }
        // The destination folder must be a folder (or creatable below one).
        let mut dir = step.to.parent();
        while let Some(d) = dir {
            if d.exists() {
                if !d.is_dir() {
                    return Err(OpError::fatal(format!(
                        "{} is not a folder: cannot move {} there",
                        d.display(),
                        step.from.display()
                    )));
                }
                break;
            }
            dir = d.parent();
        }
    }
    Ok(())
}

/// Whether a saved plan can be replayed: every step is done, to do, or (both files there) the
/// same content.
fn check_replay(plan: &MovePlan) -> OpResult<()> {
    let refilled: BTreeSet<&Path> = plan
        .steps
        .iter()
        .filter(|s| s.kind == "restore" && !s.from.exists() && s.to.exists())
        .map(|s| s.to.as_path())
        .collect();
    for step in &plan.steps {
        match (step.from.exists(), step.to.exists()) {
            (true, true) if step.kind != "restore" && refilled.contains(step.from.as_path()) => {}
            (true, true) => {
                let a = crc32_of(&step.from).map_err(|e| OpError::io(&step.from, e))?;
                let b = crc32_of(&step.to).map_err(|e| OpError::io(&step.to, e))?;
                if a != b {
                    return Err(OpError::fatal(format!(
                        "refusing to overwrite {} (a different file appeared there)",
                        step.to.display()
                    )));
                }
            }
            (false, false) => {
                return Err(OpError::fatal(format!(
                    "{} is missing and was never moved to {}",
                    step.from.display(),
                    step.to.display()
                )));
            }
            _ => {}
        }
    }
    Ok(())
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
pub(super) fn sstable_files(folder: &Path) -> OpResult<Vec<(String, PathBuf)>> {
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

fn make_plan(req: &MoveRequest, root: &Path, run_dir: &Path) -> OpResult<MovePlan> {
    if req.data_dirs.is_empty() {
        return Err(OpError::fatal("no data folders"));
    }
    let mut plan = MovePlan::default();
    let keep: BTreeSet<&Path> = req.keep_live.iter().map(Path::new).collect();
    let mut kept_seen = 0;
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
                let kept = keep.contains(path.as_path());
                kept_seen += usize::from(kept);
                if req.displace_live && !kept {
                    plan.steps.push(Step {
                        from: path,
                        to: run_dir
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
    if kept_seen != keep.len() {
        let gone = keep
            .iter()
            .find(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "a kept file".into());
        return Err(OpError::fatal(format!(
            "{gone} was identical to the backup when `fetch` compared the live files (delta \
             restore) and is no longer a live sstable of the restored tables (compacted since?); \
             make a new plan (`cbk plan`) and apply it: its fetch compares again"
        )));
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
    /// Folder of this restore run (inside the staging root): its move plan is removed, its
    /// displaced files are kept. Other runs' folders are left alone.
    #[serde(default)]
    pub run_dir: Option<String>,
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
    let run_dir = req.run_dir.as_ref().map(PathBuf::from);
    for entry in rd {
        let entry = entry.map_err(|e| OpError::io(&root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let p = entry.path();
        if req.keep_displaced && name.starts_with("displaced") {
            result.kept.push(p.display().to_string());
            continue;
        }
        // Folders of restore runs (keyspace names have no `-`).
        if name.starts_with(RUN_PREFIX) {
            if run_dir.as_deref() == Some(p.as_path()) {
                clean_run_dir(&p, req.keep_displaced, &mut result)?;
            }
            continue;
        }
        remove_entry(&entry)?;
    }
    result.removed = true;
    Ok(result)
}

/// Removes one folder entry: a folder with all it holds, or a file.
fn remove_entry(entry: &std::fs::DirEntry) -> OpResult<()> {
    let p = entry.path();
    let r = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
        std::fs::remove_dir_all(&p)
    } else {
        std::fs::remove_file(&p)
    };
    r.map_err(|e| OpError::io(&p, e))
}

/// Prefix of the folder of one restore run inside the staging root.
pub const RUN_PREFIX: &str = "run-";

/// Removes a finished run's move plan, keeps what it displaced (or the empty folder goes).
fn clean_run_dir(dir: &Path, keep_displaced: bool, result: &mut CleanupResult) -> OpResult<()> {
    let mut kept = false;
    for entry in std::fs::read_dir(dir).map_err(|e| OpError::io(dir, e))? {
        let entry = entry.map_err(|e| OpError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let p = entry.path();
        if keep_displaced && name.starts_with("displaced") {
            result.kept.push(p.display().to_string());
            kept = true;
            continue;
        }
        remove_entry(&entry)?;
    }
    if !kept {
        std::fs::remove_dir(dir).map_err(|e| OpError::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENTS: [&str; 3] = ["Data.db", "Statistics.db", "TOC.txt"];

    fn write_sstable(dir: &Path, generation: u32, content: &str) {
        std::fs::create_dir_all(dir).unwrap();
        for c in COMPONENTS {
            std::fs::write(
                dir.join(format!("nb-{generation}-big-{c}")),
                format!("{content}-{c}"),
            )
            .unwrap();
        }
    }

    /// Every file below `dir` (relative path -> content).
    fn tree(dir: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap().display().to_string();
                    out.insert(rel, std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        out
    }

    struct Node {
        _tmp: tempfile::TempDir,
        data: PathBuf,
        staging: PathBuf,
        commitlog: PathBuf,
    }

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn node() -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data0");
        let staging = tmp.path().join("staging/b1");
        let commitlog = tmp.path().join("commitlog");
        std::fs::create_dir_all(&commitlog).unwrap();
        std::fs::write(commitlog.join("CommitLog-7-1.log"), "segment").unwrap();
        let live = data.join(format!("shop/orders-{ID}"));
        write_sstable(&live, 1, "live1");
        write_sstable(&live, 2, "live2");
        let staged = staging.join("shop/orders-aaaa");
        write_sstable(&staged, 1, "backup1");
        write_sstable(&staged, 3, "backup3");
        Node {
            _tmp: tmp,
            data,
            staging,
            commitlog,
        }
    }

    fn request(n: &Node, run: &str) -> MoveRequest {
        MoveRequest {
            staging_root: n.staging.display().to_string(),
            data_dirs: vec![n.data.display().to_string()],
            tables: vec![MoveTable {
                keyspace: "shop".into(),
                table: "orders".into(),
                staged: "shop/orders-aaaa".into(),
                live_id: ID.into(),
            }],
            owner: None,
            displace_live: true,
            run_dir: Some(n.staging.join(run).display().to_string()),
            check_only: false,
            commitlog_dir: Some(n.commitlog.display().to_string()),
            displaced_commitlog: Some(
                n.staging
                    .join(run)
                    .join("displaced-commitlog")
                    .display()
                    .to_string(),
            ),
            keep_live: Vec::new(),
        }
    }

    #[test]
    fn kept_live_files_stay_in_place_and_a_vanished_one_is_refused() {
        let n = node();
        let live = n.data.join(format!("shop/orders-{ID}"));
        let kept: Vec<String> = tree(&live)
            .keys()
            .filter(|k| k.starts_with("nb-2-"))
            .map(|k| live.join(k).display().to_string())
            .collect();
        assert_eq!(kept.len(), 3);
        let mut req = request(&n, "run-1");
        req.keep_live = kept.clone();
        let mut check = req.clone();
        check.check_only = true;
        let r = move_blocking(&check).unwrap();
        assert_eq!(
            (r.restored_files, r.displaced_files, r.kept_live),
            (6, 3, 3)
        );
        let r = move_blocking(&req).unwrap();
        assert_eq!(r.failed, None, "{r:?}");
        let got = tree(&live);
        assert_eq!(got.len(), 9, "{got:?}");
        assert!(
            got.iter()
                .filter(|(k, _)| k.starts_with("nb-2-"))
                .all(|(_, v)| v.starts_with("live2")),
            "{got:?}"
        );
        // A kept file that is gone before the move (compacted away): refused before any rename.
        let m = node();
        let mut req = request(&m, "run-1");
        let live = m.data.join(format!("shop/orders-{ID}"));
        req.keep_live = vec![live.join("nb-2-big-Data.db").display().to_string()];
        std::fs::remove_file(live.join("nb-2-big-Data.db")).unwrap();
        let before = tree(&m.data);
        req.check_only = true;
        let e = move_blocking(&req).unwrap_err();
        assert!(e.message.contains("make a new plan"), "{}", e.message);
        assert_eq!(tree(&m.data), before);
    }

    fn clear_commitlog(n: &Node, run: &str) {
        let r = request(n, run);
        let aside = PathBuf::from(r.displaced_commitlog.unwrap());
        std::fs::create_dir_all(&aside).unwrap();
        for e in std::fs::read_dir(&n.commitlog).unwrap() {
            let e = e.unwrap();
            std::fs::rename(e.path(), aside.join(e.file_name())).unwrap();
        }
    }

    #[test]
    fn a_second_restore_of_the_same_backup_has_its_own_run_folder() {
        let n = node();
        let r = move_blocking(&request(&n, "run-1")).unwrap();
        assert_eq!(r.failed, None);
        let live = n.data.join(format!("shop/orders-{ID}"));
        // Changed in place after the first restore (as a repair rewrites Statistics.db).
        std::fs::write(live.join("nb-1-big-Statistics.db"), "repaired").unwrap();
        let first = tree(&n.staging.join("run-1/displaced"));
        run_cleanup_blocking(&n, "run-1");
        // The same backup staged again.
        write_sstable(&n.staging.join("shop/orders-aaaa"), 1, "backup1");
        write_sstable(&n.staging.join("shop/orders-aaaa"), 3, "backup3");
        let r = move_blocking(&request(&n, "run-2")).unwrap();
        assert_eq!(r.failed, None, "{r:?}");
        assert_eq!(r.restored_files, 6);
        assert_eq!(r.displaced_files, 6);
        let got = tree(&live);
        assert_eq!(got["nb-1-big-Statistics.db"], "backup1-Statistics.db");
        assert_eq!(got.len(), 6, "{got:?}");
        // The first run's displaced files are untouched.
        assert_eq!(tree(&n.staging.join("run-1/displaced")), first);
        assert_eq!(
            tree(&n.staging.join("run-2/displaced"))
                .values()
                .filter(|v| *v == "repaired")
                .count(),
            1
        );
    }

    fn run_cleanup_blocking(n: &Node, run: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(run_cleanup(CleanupRequest {
            staging_root: n.staging.display().to_string(),
            run_dir: Some(n.staging.join(run).display().to_string()),
            keep_displaced: true,
        }))
        .unwrap();
        assert!(!n.staging.join(run).join(PLAN_FILE).exists());
    }

    #[test]
    fn a_move_failing_midway_is_rolled_back_with_the_commit_log() {
        let n = node();
        let before_data = tree(&n.data);
        let before_staging = tree(&n.staging);
        let before_log = tree(&n.commitlog);
        clear_commitlog(&n, "run-1");
        let req = request(&n, "run-1");
        // A saved plan whose last step cannot run (its file is gone): everything before it ran.
        let root = n.staging.clone();
        let run_dir = root.join("run-1");
        let mut plan = make_plan(&req, &root, &run_dir).unwrap();
        plan.steps.push(Step {
            from: root.join("shop/orders-aaaa/nb-9-big-Data.db"),
            to: n.data.join(format!("shop/orders-{ID}/nb-9-big-Data.db")),
            kind: "restore".into(),
        });
        std::fs::create_dir_all(&run_dir).unwrap();
        write_atomic(
            &run_dir.join(PLAN_FILE),
            &serde_json::to_vec(&plan).unwrap(),
        )
        .unwrap();
        let r = move_blocking(&req).unwrap();
        let failed = r.failed.clone().expect("the move failed");
        assert!(failed.contains("nb-9-big-Data.db is missing"), "{failed}");
        assert_eq!(r.rolled_back, 12 + 1, "{r:?}");
        assert_eq!(tree(&n.data), before_data);
        assert_eq!(tree(&n.commitlog), before_log);
        let staging_now: BTreeMap<String, String> = tree(&n.staging);
        assert_eq!(staging_now, before_staging);
        assert!(
            !run_dir.join(PLAN_FILE).exists(),
            "a rolled back plan is not replayed"
        );
        // The same run again (the cause removed) finishes.
        let r = move_blocking(&req).unwrap();
        assert_eq!(r.failed, None);
        assert_eq!(r.restored_files, 6);
    }

    #[test]
    fn check_only_finds_what_is_in_the_way_and_changes_nothing() {
        let n = node();
        let live = n.data.join(format!("shop/orders-{ID}"));
        // A folder where an incoming file goes.
        std::fs::create_dir_all(live.join("nb-3-big-Data.db")).unwrap();
        let before = (tree(&n.data), tree(&n.staging));
        let mut req = request(&n, "run-1");
        req.check_only = true;
        let e = move_blocking(&req).unwrap_err();
        assert!(e.message.contains("refusing to overwrite"), "{}", e.message);
        assert!(e.message.contains("nb-3-big-Data.db"), "{}", e.message);
        assert_eq!((tree(&n.data), tree(&n.staging)), before);
        assert!(!n.staging.join("run-1").exists());
        // The move itself refuses it before renaming anything, and says so.
        req.check_only = false;
        let r = move_blocking(&req).unwrap();
        assert!(r.failed.is_some());
        assert_eq!(r.rolled_back, 0, "{r:?}");
        assert_eq!((tree(&n.data), tree(&n.staging)), before);
        std::fs::remove_dir(live.join("nb-3-big-Data.db")).unwrap();
        req.check_only = true;
        let r = move_blocking(&req).unwrap();
        assert_eq!((r.restored_files, r.displaced_files), (6, 6));
    }
}
