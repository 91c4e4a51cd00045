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
    /// Wait this long for a held lock (`--lock-timeout`) instead of refusing at once.
    pub lock_timeout: Option<std::time::Duration>,
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
        // A plan made without knowing the state (`prior_state` absent) cannot be checked
        // against it; the source and version checks above still apply.
        _ => None,
    }
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// Applies a planned run: the entry point of `cbk apply` and of the tests.
///
/// Remote state needs a multi-thread tokio runtime (journal appends block in place).
pub async fn apply(
    run: &PlannedRun,
    runner: Arc<dyn TaskRunner>,
    opts: ApplyOptions,
) -> Result<RunReport, ExecError> {
    let digest = plan_digest(run);
    let info = LockInfo::new(
        "apply",
        &format!("{} (plan {})", opts.plan_label, short(&digest)),
    );
    let (backend, held) = match &opts.state {
        StateLocation::Local(dir) => {
            let st = LocalState::open(dir)?;
            let path = st.lock_path();
            let held = wait_for_lock(&opts, || lock::acquire_local(&path, info.clone())).await?;
            (Backend::Local(st), held)
        }
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
            let held = {
                let deadline = opts.lock_timeout.map(|t| std::time::Instant::now() + t);
                loop {
                    match lock::acquire_remote(store.clone(), REMOTE_LOCK, info.clone()).await {
                        Err(LockError::Held(_) | LockError::HeldUnknown(_))
                            if lock_wait(&opts, deadline).await => {}
                        other => break other?,
                    }
                }
            };
            (Backend::Remote(store.clone()), held)
        }
    };
    let result = apply_locked(run, runner, &backend, &digest, &opts).await;
    let released = held.release().await;
    let report = result?;
    released?;
    Ok(report)
}

/// The unfinished run of a state: what `cbk apply x.toml` resumes instead of starting anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRun {
    /// The run's journal name (`runs/00000003.jsonl`, or its remote prefix).
    pub name: String,
    /// sha256 of the source TOML of the plan it runs (journals since this was recorded).
    pub source_sha256: Option<String>,
    /// The plan's captured `now`.
    pub now: Option<String>,
}

/// Reads the unfinished run of a state without creating or locking anything (`None` when the
/// state is new or its last run finished).
pub async fn open_run(location: &StateLocation) -> Result<Option<OpenRun>, ExecError> {
    let (backend, state) = match location {
        StateLocation::Local(dir) => {
            let st = LocalState::existing(dir);
            let Some(state) = st.read()? else {
                return Ok(None);
            };
            (Backend::Local(st), state)
        }
        StateLocation::Remote(store) => match store.get_bytes(REMOTE_STATE).await {
            Ok(b) => {
                let state: StateFile = serde_json::from_slice(&b).map_err(|e| {
                    ExecError::RemoteState(format!("{REMOTE_STATE} is corrupt: {e}"))
                })?;
                (Backend::Remote(store.clone()), state)
            }
            Err(crate::store::StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(ExecError::RemoteState(e.to_string())),
        },
    };
    let name = backend.run_name(state.serial);
    let Some((records, _)) = backend.records(&name).await? else {
        return Ok(None);
    };
    let p = Prior::from_records(&records);
    if matches!(p.finished, Some(RunStatus::Ok | RunStatus::Superseded)) {
        return Ok(None);
    }
    Ok(Some(OpenRun {
        name: name
            .trim_end_matches(".jsonl")
            .trim_end_matches('/')
            .to_string(),
        source_sha256: p.source_sha256,
        now: p.now,
    }))
}

/// Takes a local lock, waiting up to `--lock-timeout` while another apply holds it.
async fn wait_for_lock(
    opts: &ApplyOptions,
    mut acquire: impl FnMut() -> Result<lock::HeldLock, LockError>,
) -> Result<lock::HeldLock, LockError> {
    let deadline = opts.lock_timeout.map(|t| std::time::Instant::now() + t);
    loop {
        match acquire() {
            Err(LockError::Held(_) | LockError::HeldUnknown(_))
                if lock_wait(opts, deadline).await => {}
            other => return other,
        }
    }
}

/// One pause between lock attempts; `false` when the wait is over (no timeout, the deadline
/// passed, or Ctrl-C).
async fn lock_wait(opts: &ApplyOptions, deadline: Option<std::time::Instant>) -> bool {
    const POLL: std::time::Duration = std::time::Duration::from_millis(500);
    let Some(deadline) = deadline else {
        return false;
    };
    let now = std::time::Instant::now();
    if now >= deadline || opts.cancel.is_cancelled() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(POLL.min(deadline - now)) => true,
        _ = opts.cancel.cancelled() => false,
    }
}

/// Key of the lock object in a remote state store.
pub const REMOTE_LOCK: &str = "lock.json";
const REMOTE_STATE: &str = "state.json";

/// Where state and journals are kept.
enum Backend {
    Local(LocalState),
    Remote(Arc<dyn Store>),
}

impl Backend {
    async fn load_or_init(&self) -> Result<StateFile, ExecError> {
        match self {
            Backend::Local(st) => Ok(st.load_or_init()?),
            Backend::Remote(store) => match store.get_bytes(REMOTE_STATE).await {
                Ok(b) => serde_json::from_slice(&b)
                    .map_err(|e| ExecError::RemoteState(format!("{REMOTE_STATE} is corrupt: {e}"))),
                Err(crate::store::StoreError::NotFound(_)) => {
                    let s = StateFile {
                        lineage: super::state::new_lineage(),
                        serial: 0,
                        last_run: None,
                    };
                    self.save(&s).await?;
                    Ok(s)
                }
                Err(e) => Err(ExecError::RemoteState(e.to_string())),
            },
        }
    }

    async fn save(&self, s: &StateFile) -> Result<(), ExecError> {
        match self {
            Backend::Local(st) => Ok(st.save(s)?),
            Backend::Remote(store) => {
                let bytes = serde_json::to_vec_pretty(s)
                    .map_err(|e| ExecError::RemoteState(e.to_string()))?;
                store
                    .put_bytes(REMOTE_STATE, bytes.into())
                    .await
                    .map_err(|e| ExecError::RemoteState(e.to_string()))
            }
        }
    }

    fn run_name(&self, serial: u64) -> String {
        match self {
            Backend::Local(_) => LocalState::run_name(serial),
            Backend::Remote(_) => format!("runs/{:08}/", serial + 1),
        }
    }

    /// A run's records and the next record number, or `None` if the run has no journal.
    async fn records(&self, name: &str) -> Result<Option<(Vec<Record>, u64)>, ExecError> {
        match self {
            Backend::Local(st) => {
                let path = st.run_path(name);
                if !path.exists() {
                    return Ok(None);
                }
                let r = journal::replay(&path)?;
                let n = r.len() as u64;
                Ok(Some((r, n)))
            }
            Backend::Remote(store) => Ok(journal::replay_remote(store.as_ref(), name).await?),
        }
    }

    fn open_journal(
        &self,
        name: &str,
        next: u64,
        checkpoints: std::collections::HashMap<String, serde_json::Value>,
    ) -> Result<Journal, ExecError> {
        match self {
            Backend::Local(st) => Ok(Journal::open(&st.run_path(name), checkpoints)?),
            Backend::Remote(store) => {
                Ok(Journal::open_remote(store.clone(), name, next, checkpoints))
            }
        }
    }

    /// Closes runs whose `run_finished{ok|superseded}` reached the journal but whose state
    /// update did not (a crash in between).
    async fn repair(&self, state: &mut StateFile) -> Result<(), ExecError> {
        let name = self.run_name(state.serial);
        let Some((records, _)) = self.records(&name).await? else {
            return Ok(());
        };
        let prior = Prior::from_records(&records);
        if matches!(prior.finished, Some(RunStatus::Ok | RunStatus::Superseded)) {
            state.serial += 1;
            state.last_run = Some(name);
            self.save(state).await?;
        }
        Ok(())
    }
}

async fn apply_locked(
    run: &PlannedRun,
    runner: Arc<dyn TaskRunner>,
    backend: &Backend,
    digest: &str,
    opts: &ApplyOptions,
) -> Result<RunReport, ExecError> {
    let mut state = backend.load_or_init().await?;
    backend.repair(&mut state).await?;

    if opts.saved_plan {
        // The last finished run was this very plan: there is nothing left to do.
        if let Some(last) = &state.last_run
            && let Some((records, _)) = backend.records(last).await?
        {
            let p = Prior::from_records(&records);
            if p.plan_digest.as_deref() == Some(digest) && p.finished == Some(RunStatus::Ok) {
                return Err(ExecError::AlreadyApplied { run: last.clone() });
            }
        }
        if let Some(reason) = stale_reason(run, &state) {
            return Err(ExecError::Stale(reason));
        }
    }

    // An open run: resume it if it is this plan, otherwise close it as superseded.
    let mut name = backend.run_name(state.serial);
    let mut prior = Prior::default();
    let mut next = 0;
    if let Some((records, n)) = backend.records(&name).await? {
        let p = Prior::from_records(&records);
        if p.plan_digest.as_deref() == Some(digest) {
            prior = p;
            next = n;
        } else {
            if p.finished != Some(RunStatus::Ok) {
                opts.progress.warning(
                    &format!(
                        "superseding unfinished run {name} (another plan, or --fresh): its remaining tasks will not run"
                    ),
                    None,
                );
            }
            backend
                .open_journal(&name, n, Default::default())?
                .append(&Record::RunFinished {
                    status: RunStatus::Superseded,
                    at: journal::now(),
                })
                .map_err(ExecError::JournalWrite)?;
            state.serial += 1;
            state.last_run = Some(name);
            backend.save(&state).await?;
            name = backend.run_name(state.serial);
        }
    }
    let resumed = prior.plan_digest.is_some();
    let journal = Arc::new(backend.open_journal(&name, next, prior.checkpoints.clone())?);
    journal
        .append(&Record::RunStarted {
            plan_digest: digest.to_string(),
            lineage: state.lineage.clone(),
            serial: state.serial,
            at: journal::now(),
            pid: std::process::id(),
            source_sha256: Some(run.source.sha256.clone()),
            now: Some(run.inputs.now.clone()),
        })
        .map_err(ExecError::JournalWrite)?;
    opts.progress.event(&super::events::Event::RunStarted {
        plan: &opts.plan_label,
        run: super::events::run_id(&name),
        now: &run.inputs.now,
        backup: run.inputs.backup_name.as_deref(),
        kind: run.plan.kind,
        tasks: run.tasks.len(),
        resumed,
    });
    opts.progress.event(&super::events::Event::plan(run));
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
        backend.save(&state).await?;
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
