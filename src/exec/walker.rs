//! The walker: ready-set scheduling of the task graph on tokio with global, per-host and per-step limits.
//!
//! The scheduler loop owns all bookkeeping (remaining dependencies, statuses, skips) and never
//! blocks on a limit: every ready task is spawned at once and takes its permits inside its own
//! future, always in the same order (step, then host, then global), so no two tasks can wait on
//! each other's permits. Each task is journaled `started` (fsync) before its `check`, then
//! `done`/`failed`; a failure skips every descendant with one `skipped{upstream failed}`
//! record each, and independent branches go on.

use super::journal::{DoneOutcome, Journal, Prior, Record, now};
use super::{Check, Progress, TaskContext, TaskError, TaskRunner};
use crate::graph::run::PlannedTask;
use futures::FutureExt;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Limits and policies of one walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Tasks running at once over the whole run.
    pub parallelism: usize,
    /// Tasks running at once on one host.
    pub per_host: usize,
    /// Stop scheduling new tasks after the first failure.
    pub fail_fast: bool,
    /// Extra attempts for retryable task errors.
    pub retries: u32,
    /// Wait before the first retry (doubled for each further one).
    pub retry_backoff: Duration,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            parallelism: 10,
            per_host: 4,
            fail_fast: false,
            retries: 2,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

/// How one task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskStatus {
    /// `apply` ran.
    Applied {
        summary: String,
    },
    /// `check` found the effect already there.
    Satisfied {
        summary: String,
    },
    /// Journaled `done` by an earlier attempt of this run; not touched.
    AlreadyDone {
        summary: String,
    },
    Failed {
        error: String,
    },
    Skipped {
        reason: String,
    },
    /// Never started (Ctrl-C or `--fail-fast` came first).
    NotStarted,
    /// Was running when Ctrl-C came and stopped at a safe point; the next apply re-checks it.
    Interrupted,
}

impl TaskStatus {
    /// Short name (`applied`, `satisfied`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            TaskStatus::Applied { .. } => "applied",
            TaskStatus::Satisfied { .. } => "satisfied",
            TaskStatus::AlreadyDone { .. } => "already_done",
            TaskStatus::Failed { .. } => "failed",
            TaskStatus::Skipped { .. } => "skipped",
            TaskStatus::NotStarted => "not_started",
            TaskStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the task's effect is in place.
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            TaskStatus::Applied { .. }
                | TaskStatus::Satisfied { .. }
                | TaskStatus::AlreadyDone { .. }
        )
    }
}

/// One task's line in the run report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(flatten)]
    pub status: TaskStatus,
    /// Time from `started` to the end (0 for tasks that did not run).
    pub duration_ms: u64,
    /// Attempts made (more than 1 after retries).
    pub attempts: u32,
}

/// Errors that stop a walk (task failures do not: they are statuses).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("task `{task}` waits for `{dep}`, which is not in the plan")]
    UnknownDependency { task: String, dep: String },
    #[error("two tasks have the address `{0}`")]
    DuplicateAddress(String),
    #[error("the task graph has a cycle through `{0}`")]
    Cycle(String),
    #[error("cannot write the journal: {0}")]
    Journal(#[source] std::io::Error),
    #[error("internal error: a task future was lost: {0}")]
    Lost(String),
}

/// What the spawned part of a task hands back to the loop.
struct Finished {
    index: usize,
    status: TaskStatus,
    duration: Duration,
    attempts: u32,
    /// Set when the task could not write its journal records.
    journal_error: Option<std::io::Error>,
}

/// Everything a spawned task needs, shared.
struct Shared {
    runner: Arc<dyn TaskRunner>,
    journal: Arc<Journal>,
    progress: Arc<dyn Progress>,
    cx: TaskContext,
    /// Cancelled on Ctrl-C and on `--fail-fast`: no new task starts.
    stop: CancellationToken,
    opts: WalkOptions,
}

/// Walks the tasks (in any order that respects `after`), journaling every transition.
/// Tasks found `done` in `prior` are not touched.
pub async fn walk(
    tasks: &[PlannedTask],
    runner: Arc<dyn TaskRunner>,
    journal: Arc<Journal>,
    prior: &Prior,
    progress: Arc<dyn Progress>,
    opts: &WalkOptions,
    cancel: CancellationToken,
) -> Result<Vec<TaskReport>, WalkError> {
    let graph = build_graph(tasks)?;
    let n = tasks.len();
    let mut remaining: Vec<usize> = (0..n)
        .map(|i| {
            graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let dependents: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let mut d: Vec<usize> = graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
                .map(|x| x.index())
                .collect();
            d.sort_unstable();
            d
        })
        .collect();
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();

    let global = Arc::new(Semaphore::new(opts.parallelism.max(1)));
    let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut steps: HashMap<String, Arc<Semaphore>> = HashMap::new();
    for t in tasks {
        if let Some(h) = &t.host {
            hosts
                .entry(h.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(opts.per_host.max(1))));
        }
        if let Some(limit) = t.step_limit {
            steps
                .entry(t.step.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1) as usize)));
        }
    }

    let shared = Arc::new(Shared {
        runner,
        journal: journal.clone(),
        progress: progress.clone(),
        cx: TaskContext {
            progress: progress.clone(),
            checkpoints: journal.clone(),
            cancel: cancel.clone(),
        },
        stop: cancel.child_token(),
        opts: opts.clone(),
    });

    let mut reports: Vec<Option<TaskReport>> = vec![None; n];
    let mut set: JoinSet<Finished> = JoinSet::new();
    let mut journal_error: Option<std::io::Error> = None;
    let report = |i: usize, status: TaskStatus, duration: Duration, attempts: u32| TaskReport {
        address: tasks[i].address.clone(),
        host: tasks[i].host.clone(),
        status,
        duration_ms: duration.as_millis() as u64,
        attempts,
    };

    loop {
        while let Some(i) = ready.pop_front() {
            if shared.stop.is_cancelled() || reports[i].is_some() {
                continue;
            }
            let task = &tasks[i];
            if let Some((_, summary)) = prior.done.get(&task.address) {
                let status = TaskStatus::AlreadyDone {
                    summary: summary.clone(),
                };
                progress.task_finished(task, status.name());
                reports[i] = Some(report(i, status, Duration::ZERO, 0));
                release(i, &dependents, &mut remaining, &mut ready);
                continue;
            }
            let permits = (
                steps
                    .get(&task.step)
                    .filter(|_| task.step_limit.is_some())
                    .cloned(),
                task.host.as_ref().and_then(|h| hosts.get(h)).cloned(),
                global.clone(),
            );
            let shared = shared.clone();
            let task = task.clone();
            set.spawn(async move {
                let started = Instant::now();
                let run = std::panic::AssertUnwindSafe(run_one(&task, permits, &shared))
                    .catch_unwind()
                    .await;
                match run {
                    Ok((status, attempts, journal_error)) => Finished {
                        index: i,
                        status,
                        duration: started.elapsed(),
                        attempts,
                        journal_error,
                    },
                    Err(panic) => {
                        let error = format!("task panicked: {}", panic_message(&panic));
                        let journal_error = shared
                            .journal
                            .append(&Record::Failed {
                                address: task.address.clone(),
                                error: error.clone(),
                                at: now(),
                            })
                            .err();
                        Finished {
                            index: i,
                            status: TaskStatus::Failed { error },
                            duration: started.elapsed(),
                            attempts: 1,
                            journal_error,
                        }
                    }
                }
            });
        }
        if set.is_empty() {
            break;
        }
        tokio::select! {
            joined = set.join_next() => {
                let Some(joined) = joined else { break };
                let f = joined.map_err(|e| WalkError::Lost(e.to_string()))?;
                let i = f.index;
                if let Some(e) = f.journal_error {
                    // Without a journal nothing is safe: stop everything and report.
                    journal_error.get_or_insert(e);
                    cancel.cancel();
                }
                if f.status != TaskStatus::NotStarted {
                    progress.task_finished(&tasks[i], f.status.name());
                }
                match &f.status {
                    s if s.is_ok() => release(i, &dependents, &mut remaining, &mut ready),
                    TaskStatus::Failed { error } => {
                        progress.task_failed(&tasks[i], error);
                        let reason = format!("upstream failed: {}", tasks[i].address);
                        // `always` tasks still run once their upstream tasks are all settled.
                        release(i, &dependents, &mut remaining, &mut ready);
                        for d in descendants_until_always(i, &dependents, tasks) {
                            if reports[d].is_some() {
                                continue;
                            }
                            if let Err(e) = journal.append(&Record::Skipped {
                                address: tasks[d].address.clone(),
                                reason: reason.clone(),
                                at: now(),
                            }) {
                                journal_error.get_or_insert(e);
                                cancel.cancel();
                            }
                            let status = TaskStatus::Skipped { reason: reason.clone() };
                            progress.task_finished(&tasks[d], status.name());
                            reports[d] = Some(report(d, status, Duration::ZERO, 0));
                            release(d, &dependents, &mut remaining, &mut ready);
                        }
                        if opts.fail_fast {
                            shared.stop.cancel();
                        }
                    }
                    _ => {}
                }
                reports[i] = Some(report(i, f.status, f.duration, f.attempts));
            }
            _ = shared.stop.cancelled(), if !shared.stop.is_cancelled() => {}
        }
    }
    if let Some(e) = journal_error {
        return Err(WalkError::Journal(e));
    }
    Ok(reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| report(i, TaskStatus::NotStarted, Duration::ZERO, 0)))
        .collect())
}

/// Checks addresses and dependencies and builds the graph (edge = "must finish before").
fn build_graph(tasks: &[PlannedTask]) -> Result<DiGraph<(), ()>, WalkError> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tasks.len());
    let mut g: DiGraph<(), ()> = DiGraph::with_capacity(tasks.len(), tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        if index.insert(t.address.as_str(), i).is_some() {
            return Err(WalkError::DuplicateAddress(t.address.clone()));
        }
        g.add_node(());
    }
    for (i, t) in tasks.iter().enumerate() {
        for dep in &t.after {
            let Some(&d) = index.get(dep.as_str()) else {
                return Err(WalkError::UnknownDependency {
                    task: t.address.clone(),
                    dep: dep.clone(),
                });
            };
            g.update_edge(NodeIndex::new(d), NodeIndex::new(i), ());
        }
    }
    if let Err(c) = petgraph::algo::toposort(&g, None) {
        return Err(WalkError::Cycle(tasks[c.node_id().index()].address.clone()));
    }
    Ok(g)
}

fn release(
    i: usize,
    dependents: &[Vec<usize>],
    remaining: &mut [usize],
    ready: &mut VecDeque<usize>,
) {
    for &d in &dependents[i] {
        remaining[d] -= 1;
        if remaining[d] == 0 {
            ready.push_back(d);
        }
    }
}

/// Every task that (transitively) waits for `i`, in index order, except `always` tasks and
/// what waits only behind them.
fn descendants_until_always(
    i: usize,
    dependents: &[Vec<usize>],
    tasks: &[PlannedTask],
) -> Vec<usize> {
    let mut seen = vec![false; dependents.len()];
    let mut stack = vec![i];
    let mut out = Vec::new();
    while let Some(x) = stack.pop() {
        for &d in &dependents[x] {
            if !seen[d] && !tasks[d].always {
                seen[d] = true;
                out.push(d);
                stack.push(d);
            }
        }
    }
    out.sort_unstable();
    out
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Takes one permit unless the walk is stopping.
async fn permit(
    sem: &Option<Arc<Semaphore>>,
    stop: &CancellationToken,
) -> Option<Option<OwnedSemaphorePermit>> {
    let Some(sem) = sem else { return Some(None) };
    tokio::select! {
        p = sem.clone().acquire_owned() => p.ok().map(Some),
        _ = stop.cancelled() => None,
    }
}

/// Runs one task: permits, `started`, check, apply (with retries), `done`/`failed`.
/// Returns the status, the attempts made and a journal error if one happened.
async fn run_one(
    task: &PlannedTask,
    permits: (
        Option<Arc<Semaphore>>,
        Option<Arc<Semaphore>>,
        Arc<Semaphore>,
    ),
    sh: &Shared,
) -> (TaskStatus, u32, Option<std::io::Error>) {
    let (step, host, global) = permits;
    let Some(_step) = permit(&step, &sh.stop).await else {
        return (TaskStatus::NotStarted, 0, None);
    };
    let Some(_host) = permit(&host, &sh.stop).await else {
        return (TaskStatus::NotStarted, 0, None);
    };
    let Some(_global) = permit(&Some(global), &sh.stop).await else {
        return (TaskStatus::NotStarted, 0, None);
    };
    if sh.stop.is_cancelled() {
        return (TaskStatus::NotStarted, 0, None);
    }
    if let Err(e) = sh.journal.append(&Record::Started {
        address: task.address.clone(),
        at: now(),
    }) {
        return (TaskStatus::NotStarted, 0, Some(e));
    }
    sh.progress.task_started(task);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match check_then_apply(task, sh).await {
            Ok((outcome, summary, data)) => {
                let record = Record::Done {
                    address: task.address.clone(),
                    outcome,
                    summary: summary.clone(),
                    data,
                    at: now(),
                };
                let status = match outcome {
                    DoneOutcome::Applied => TaskStatus::Applied { summary },
                    DoneOutcome::Satisfied => TaskStatus::Satisfied { summary },
                };
                return (status, attempts, sh.journal.append(&record).err());
            }
            Err(_) if sh.cx.cancel.is_cancelled() => {
                // Stopped at a safe point: leave `started` alone, the next apply re-checks.
                return (TaskStatus::Interrupted, attempts, None);
            }
            Err(e) if e.retryable && attempts <= sh.opts.retries => {
                sh.progress.warning(
                    &format!(
                        "retrying {} (attempt {} of {}): {}",
                        task.address,
                        attempts + 1,
                        sh.opts.retries + 1,
                        e.message
                    ),
                    Some(&task.address),
                );
                let wait = sh.opts.retry_backoff * 2u32.saturating_pow(attempts - 1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = sh.cx.cancel.cancelled() => return (TaskStatus::Interrupted, attempts, None),
                }
            }
            Err(e) => {
                let record = Record::Failed {
                    address: task.address.clone(),
                    error: e.message.clone(),
                    at: now(),
                };
                let err = sh.journal.append(&record).err();
                return (TaskStatus::Failed { error: e.message }, attempts, err);
            }
        }
    }
}

async fn check_then_apply(
    task: &PlannedTask,
    sh: &Shared,
) -> Result<(DoneOutcome, String, serde_json::Value), TaskError> {
    match sh.runner.check(task, &sh.cx).await? {
        Check::Satisfied(summary) => Ok((DoneOutcome::Satisfied, summary, serde_json::Value::Null)),
        Check::Needed => {
            if sh.cx.cancel.is_cancelled() {
                return Err(TaskError::fatal("interrupted before apply"));
            }
            let o = sh.runner.apply(task, &sh.cx).await?;
            Ok((DoneOutcome::Applied, o.summary, o.data))
        }
    }
}
