//! One apply from start to end: lock the state, refuse a stale plan, resume or supersede an
//! open run, walk the graph with the journal, close the run and move the state's serial.

use super::journal::{self, Journal, JournalError, Prior, Record, RunStatus};
use super::lock::{self, LockError, LockInfo};
use super::state::{LocalState, StateError, StateFile};
use super::walker::{self, TaskReport, TaskStatus, WalkError, WalkOptions};
use super::{Progress, TaskRunner};
use crate::graph::run::{FORMAT_VERSION, PlannedRun};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where the state of an apply lives.
#[derive(Clone)]
pub enum StateLocation {
    /// A local folder (`.cbk/` beside the plan by default).
    Local(PathBuf),
    /// A store (`--state s3://...`), for teams.
    Remote(Arc<dyn Store>),
}

/// How to apply.
#[derive(Clone)]
pub struct ApplyOptions {
    pub state: StateLocation,
    /// Limits, `--fail-fast`, retries.
    pub walk: WalkOptions,
    pub progress: Arc<dyn Progress>,
    /// Cancel on the first Ctrl-C: no new task starts, running ones reach a safe point.
    pub cancel: CancellationToken,
    /// The plan is a saved one: refuse it if stale. (A plan compiled just now is fresh.)
    pub saved_plan: bool,
    /// How the lock names the plan (e.g. its path).
    pub plan_label: String,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// Journal name of the run (under `runs/`).
    pub run: String,
    /// `true` when an interrupted or failed attempt of the same plan was continued.
    pub resumed: bool,
    pub status: RunStatus,
    /// The state's serial after the apply.
    pub serial: u64,
    pub lineage: String,
    /// Every task of the plan, in plan order.
    pub tasks: Vec<TaskReport>,
}

impl RunReport {
    /// Tasks with the given status name.
    pub fn count(&self, name: &str) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.status.name() == name)
            .count()
    }
}

/// Errors that stop an apply before or around the walk.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("refusing a stale plan: {0}")]
    Stale(String),
    #[error("this plan was already applied (run {run} finished ok); make a new plan to run again")]
    AlreadyApplied { run: String },
    #[error("remote state: {0}")]
    RemoteState(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("journal write failed: {0}")]
    JournalWrite(#[source] std::io::Error),
    #[error(transparent)]
    Walk(#[from] WalkError),
}

impl ExecError {
    /// Whether this is a refusal (exit code 75) rather than a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ExecError::Lock(LockError::Held(_) | LockError::HeldUnknown(_))
                | ExecError::Stale(_)
                | ExecError::RemoteState(_)
        )
    }
}

/// The digest that identifies a planned run (sha256 of its JSON).
pub fn plan_digest(run: &PlannedRun) -> String {
    let bytes = serde_json::to_vec(run).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Why a saved plan may not be applied over `state`, or `None` if it is current.
pub fn stale_reason(run: &PlannedRun, state: &StateFile) -> Option<String> {
    if run.format_version != FORMAT_VERSION {
        return Some(format!(
            "the plan is in format version {}, this cbk reads version {FORMAT_VERSION}; make a new plan",
            run.format_version
        ));
    }
    if run.cbk_version != crate::VERSION {
        return Some(format!(
            "the plan was made by cbk {}, this is cbk {}; make a new plan",
            run.cbk_version,
            crate::VERSION
        ));
    }
    if let Ok(bytes) = std::fs::read(&run.source.path) {
        let now = hex::encode(Sha256::digest(&bytes));
        if now != run.source.sha256 {
            return Some(format!(
                "the source `{}` changed since the plan was made (sha256 was {}, is now {}); make a new plan",
                run.source.path,
                short(&run.source.sha256),
                short(&now)
            ));
        }
    }
    match &run.prior_state {
        Some(p) if p.lineage != state.lineage => Some(format!(
            "the plan was made against different state (lineage {}, this state has lineage {}); check --state",
            short(&p.lineage),
            short(&state.lineage)
        )),
        Some(p) if p.serial != state.serial => Some(format!(
            "the state moved since the plan was made (plan made at serial {}, state is at serial {}: another apply ran); make a new plan",
            p.serial, state.serial
        )),
        None if state.serial > 0 => Some(format!(
            "the plan records no prior state but the state is at serial {}; make a new plan",
            state.serial
        )),
        _ => None,
    }
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// Applies a planned run: the entry point of `cbk apply` and of the tests.
pub async fn apply(
    run: &PlannedRun,
    runner: Arc<dyn TaskRunner>,
    opts: ApplyOptions,
) -> Result<RunReport, ExecError> {
    match &opts.state {
        StateLocation::Local(dir) => apply_local(run, runner, dir.clone(), &opts).await,
        StateLocation::Remote(store) => {
            let honoured = store
                .probe_conditional_writes()
                .await
                .map_err(|e| ExecError::RemoteState(e.to_string()))?;
            if !honoured {
                return Err(ExecError::RemoteState(format!(
                    "the store {} does not honour conditional writes (If-None-Match), so two applies could not be kept apart; use local state (--state DIR) or a store that supports them",
                    store.describe()
                )));
            }
            Err(ExecError::RemoteState(format!(
                "state in the store ({}) is not available in this build yet; use --state DIR",
                store.describe()
            )))
        }
    }
}

/// Closes runs whose `run_finished{ok|superseded}` reached the journal but whose state update
/// did not (a crash in between).
fn repair(st: &LocalState, state: &mut StateFile) -> Result<(), ExecError> {
    let name = LocalState::run_name(state.serial);
    let path = st.run_path(&name);
    if !path.exists() {
        return Ok(());
    }
    let prior = Prior::from_records(&journal::replay(&path)?);
    if matches!(prior.finished, Some(RunStatus::Ok | RunStatus::Superseded)) {
        state.serial += 1;
        state.last_run = Some(name);
        st.save(state)?;
    }
    Ok(())
}

async fn apply_local(
    run: &PlannedRun,
    runner: Arc<dyn TaskRunner>,
    dir: PathBuf,
    opts: &ApplyOptions,
) -> Result<RunReport, ExecError> {
    let st = LocalState::open(&dir)?;
    let digest = plan_digest(run);
    let _lock = lock::acquire_local(
        &st.lock_path(),
        LockInfo::new(
            "apply",
            &format!("{} (plan {})", opts.plan_label, short(&digest)),
        ),
    )?;
    let mut state = st.load_or_init()?;
    repair(&st, &mut state)?;

    if opts.saved_plan
        && let Some(reason) = stale_reason(run, &state)
    {
        if let Some(last) = &state.last_run {
            let p = Prior::from_records(&journal::replay(&st.run_path(last))?);
            if p.plan_digest.as_deref() == Some(digest.as_str())
                && p.finished == Some(RunStatus::Ok)
            {
                return Err(ExecError::AlreadyApplied { run: last.clone() });
            }
        }
        return Err(ExecError::Stale(reason));
    }

    // An open run: resume it if it is this plan, otherwise close it as superseded.
    let mut name = LocalState::run_name(state.serial);
    let mut prior = Prior::default();
    let path = st.run_path(&name);
    if path.exists() {
        let p = Prior::from_records(&journal::replay(&path)?);
        if p.plan_digest.as_deref() == Some(digest.as_str()) {
            prior = p;
        } else {
            let old = Journal::open(&path, Default::default())?;
            old.append(&Record::RunFinished {
                status: RunStatus::Superseded,
                at: journal::now(),
            })
            .map_err(ExecError::JournalWrite)?;
            state.serial += 1;
            state.last_run = Some(name);
            st.save(&state)?;
            name = LocalState::run_name(state.serial);
        }
    }
    let resumed = prior.plan_digest.is_some();
    let journal = Arc::new(Journal::open(
        &st.run_path(&name),
        prior.checkpoints.clone(),
    )?);
    journal
        .append(&Record::RunStarted {
            plan_digest: digest.clone(),
            lineage: state.lineage.clone(),
            serial: state.serial,
            at: journal::now(),
            pid: std::process::id(),
        })
        .map_err(ExecError::JournalWrite)?;
    if resumed {
        opts.progress.message(&format!(
            "resuming run {name}: {} task(s) already done",
            prior.done.len()
        ));
    }

    let walked = walker::walk(
        &run.tasks,
        runner,
        journal.clone(),
        &prior,
        opts.progress.clone(),
        &opts.walk,
        opts.cancel.clone(),
    )
    .await;
    opts.progress.finish();
    let tasks = walked?;

    let status = if opts.cancel.is_cancelled() {
        RunStatus::Interrupted
    } else if tasks.iter().all(|t| t.status.is_ok()) {
        RunStatus::Ok
    } else if tasks
        .iter()
        .any(|t| matches!(t.status, TaskStatus::Failed { .. }))
    {
        RunStatus::Failed
    } else {
        RunStatus::Interrupted
    };
    journal
        .append(&Record::RunFinished {
            status,
            at: journal::now(),
        })
        .map_err(ExecError::JournalWrite)?;
    if status == RunStatus::Ok {
        state.serial += 1;
        state.last_run = Some(name.clone());
        st.save(&state)?;
    }
    Ok(RunReport {
        run: name,
        resumed,
        status,
        serial: state.serial,
        lineage: state.lineage,
        tasks,
    })
}
