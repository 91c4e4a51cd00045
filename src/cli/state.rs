//! `cbk state` (the last run, task by task, from its journal) and `cbk unlock`.

use crate::error::exit;
use crate::exec::journal::{self, DoneOutcome, Record, RunStatus};
use crate::exec::lock;
use crate::exec::state::{DEFAULT_DIR, LocalState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `cbk state`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan (TOML or saved) whose state to show: `.cbk/<plan stem>/` beside it.
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// State folder (default: the plan's, else `.cbk` in the current folder).
    #[arg(long, value_name = "DIR", conflicts_with = "plan")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub output: super::OutputArgs,
}

/// One task as the journal tells it.
#[derive(Debug, Clone, Default, Serialize)]
struct TaskLine {
    address: String,
    /// applied, satisfied, failed, skipped, or started (no end recorded).
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct StateView {
    state: String,
    lineage: String,
    serial: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    /// ok, failed, interrupted, superseded, or running/unfinished.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    attempts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<lock::LockInfo>,
    tasks: Vec<TaskLine>,
}

fn millis_between(a: &str, b: &str) -> Option<u64> {
    let a: jiff::Timestamp = a.parse().ok()?;
    let b: jiff::Timestamp = b.parse().ok()?;
    let d = b.duration_since(a);
    u64::try_from(d.as_millis()).ok()
}

/// The line of `address`, created (and remembered in `order`) on first sight.
fn entry<'a>(
    lines: &'a mut BTreeMap<String, TaskLine>,
    order: &mut Vec<String>,
    address: &str,
) -> &'a mut TaskLine {
    if !lines.contains_key(address) {
        order.push(address.to_string());
    }
    lines
        .entry(address.to_string())
        .or_insert_with(|| TaskLine {
            address: address.to_string(),
            ..Default::default()
        })
}

/// Folds a run's records into one line per task, in first-seen order.
fn task_lines(records: &[Record]) -> (Vec<TaskLine>, Option<RunStatus>, usize) {
    let mut order: Vec<String> = Vec::new();
    let mut lines: BTreeMap<String, TaskLine> = BTreeMap::new();
    let mut finished = None;
    let mut attempts = 0;
    for r in records {
        match r {
            Record::RunStarted { .. } => {
                attempts += 1;
                finished = None;
            }
            Record::RunFinished { status, .. } => finished = Some(*status),
            Record::Checkpoint { .. } => {}
            Record::Started { address, at } => {
                let l = entry(&mut lines, &mut order, address);
                *l = TaskLine {
                    address: address.clone(),
                    status: "started".into(),
                    started: Some(at.clone()),
                    ..Default::default()
                };
            }
            Record::Done {
                address,
                outcome,
                summary,
                at,
                ..
            } => {
                let l = entry(&mut lines, &mut order, address);
                l.status = match outcome {
                    DoneOutcome::Applied => "applied",
                    DoneOutcome::Satisfied => "satisfied",
                }
                .into();
                l.duration_ms = l.started.as_deref().and_then(|s| millis_between(s, at));
                l.ended = Some(at.clone());
                l.summary = Some(summary.clone());
            }
            Record::Failed { address, error, at } => {
                let l = entry(&mut lines, &mut order, address);
                l.status = "failed".into();
                l.duration_ms = l.started.as_deref().and_then(|s| millis_between(s, at));
                l.ended = Some(at.clone());
                l.error = Some(error.clone());
            }
            Record::Skipped {
                address,
                reason,
                at,
            } => {
                let l = entry(&mut lines, &mut order, address);
                l.status = "skipped".into();
                l.ended = Some(at.clone());
                l.reason = Some(reason.clone());
            }
        }
    }
    let out = order.into_iter().filter_map(|a| lines.remove(&a)).collect();
    (out, finished, attempts)
}

/// The state folder: `--state DIR`, else the plan's own (`.cbk/<stem>/` beside the plan's
/// source TOML; a saved plan names its source), else `.cbk` here.
fn state_dir(state: Option<&std::path::Path>, plan: Option<&std::path::Path>) -> PathBuf {
    if let Some(dir) = state {
        return dir.to_path_buf();
    }
    let Some(plan) = plan else {
        return PathBuf::from(DEFAULT_DIR);
    };
    let source = std::fs::read_to_string(plan)
        .ok()
        .filter(|t| super::validate::is_saved_plan(t))
        .and_then(|t| serde_json::from_str::<crate::graph::run::PlannedRun>(&t).ok())
        .map(|run| PathBuf::from(run.source.path));
    crate::exec::state::default_dir(source.as_deref().unwrap_or(plan))
}

/// Runs `cbk state`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let dir = state_dir(args.state.as_deref(), args.plan.as_deref());
    let st = LocalState::existing(&dir);
    let Some(state) = st.read().map_err(|e| miette::miette!("{e}"))? else {
        eprintln!(
            "no state in `{}` (nothing was applied there yet)",
            dir.display()
        );
        // State is kept per plan (`.cbk/<plan stem>/`): name the plans that have some here.
        let plans: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("state.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !plans.is_empty() {
            eprintln!(
                "hint: state is kept per plan; `cbk state PLAN.toml` shows one (state here for: {})",
                plans.join(", ")
            );
        }
        return Ok(exit::FAILED);
    };
    // The open run (if any) is the latest; otherwise the last finished one.
    let open = LocalState::run_name(state.serial);
    let run = if st.run_path(&open).exists() {
        Some(open)
    } else {
        state.last_run.clone()
    };
    let (tasks, finished, attempts) = match &run {
        Some(name) => {
            let recs = journal::replay(&st.run_path(name)).map_err(|e| miette::miette!("{e}"))?;
            task_lines(&recs)
        }
        None => (Vec::new(), None, 0),
    };
    let holder = lock::local_holder(&st.lock_path()).map_err(|e| miette::miette!("{e}"))?;
    let view = StateView {
        state: dir.display().to_string(),
        lineage: state.lineage,
        serial: state.serial,
        run: run.map(|r| r.trim_end_matches(".jsonl").to_string()),
        status: match (finished, &holder) {
            (Some(s), _) => Some(s.as_str().into()),
            (None, Some(_)) => Some("running".into()),
            (None, None) => Some("unfinished".into()),
        },
        attempts,
        lock: holder,
        tasks,
    };
    let mut out = std::io::stdout().lock();
    if args.output.is_json() {
        let text = serde_json::to_string_pretty(&view).map_err(|e| miette::miette!("{e}"))?;
        let _ = writeln!(out, "{text}");
        return Ok(exit::OK);
    }
    let _ = writeln!(
        out,
        "State {} (lineage {}, serial {})",
        view.state,
        view.lineage.get(..12).unwrap_or(&view.lineage),
        view.serial
    );
    if let Some(l) = &view.lock {
        let _ = writeln!(out, "Locked: {l}");
    }
    let Some(run) = &view.run else {
        let _ = writeln!(out, "No run yet.");
        return Ok(exit::OK);
    };
    let _ = writeln!(
        out,
        "Run {run}: {} ({} attempt{})\n",
        view.status.as_deref().unwrap_or("?"),
        view.attempts,
        if view.attempts == 1 { "" } else { "s" }
    );
    for t in &view.tasks {
        let dur = t
            .duration_ms
            .map_or_else(|| "-".to_string(), |d| format!("{:.1}s", d as f64 / 1000.0));
        let detail = match t.status.as_str() {
            "started" => "no end recorded: re-checked on the next apply".to_string(),
            _ => t
                .error
                .clone()
                .or_else(|| t.reason.clone())
                .or_else(|| t.summary.clone())
                .unwrap_or_default(),
        };
        let _ = writeln!(out, "  {:<10} {dur:>7}  {}  {detail}", t.status, t.address);
    }
    Ok(exit::OK)
}

/// Arguments of `cbk unlock`.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The lock id printed by the refused apply.
    pub lock_id: String,
    /// State folder, or the store URL of remote state (default: the plan's, else `.cbk` here).
    #[arg(long, value_name = "DIR|URL", conflicts_with = "plan")]
    pub state: Option<String>,
    /// The plan whose state holds the lock (`.cbk/<plan stem>/` beside it).
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Remove the lock even if its holder looks alive or cannot be checked (a hung apply).
    #[arg(long)]
    pub force: bool,
}

/// Asks on the terminal whether to remove a lock taken on another host; no terminal: no.
fn confirm_other_host(info: &lock::LockInfo, host: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!(
        "{info}\nIt was taken on {host}, which cannot be checked from here. Is that apply gone? Remove the lock? [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Runs `cbk unlock`.
pub async fn unlock(args: UnlockArgs) -> miette::Result<u8> {
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| state_dir(None, args.plan.as_deref()).display().to_string());
    let result = if crate::store::url::is_store_url(&state) {
        let config = crate::plan::model::StorageConfig {
            url: state.clone(),
            ..Default::default()
        };
        let store = crate::store::open(&config, None)
            .await
            .map_err(|e| miette::miette!("{e}"))?;
        lock::unlock_remote(
            store.as_ref(),
            crate::exec::REMOTE_LOCK,
            &args.lock_id,
            args.force,
            &confirm_other_host,
        )
        .await
    } else {
        let st = LocalState::existing(std::path::Path::new(&state));
        lock::unlock_local(&st.lock_path(), &args.lock_id, args.force)
    };
    match result {
        Ok(done) if done.stale => {
            println!("Removed the stale {} (its holder is gone).", done.info);
            Ok(exit::OK)
        }
        Ok(done) => {
            eprintln!(
                "warning: removed {} by --force; if that apply still runs, stop it before the next apply",
                done.info
            );
            Ok(exit::OK)
        }
        Err(e @ (lock::LockError::Alive(_) | lock::LockError::Unconfirmed { .. })) => {
            eprintln!("error: {e}");
            Ok(exit::REFUSED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::FAILED)
        }
    }
}
