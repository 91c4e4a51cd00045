//! Applying a planned run: the walker schedules tasks over the graph, the journal makes every
//! step durable, and tasks plug in through [`TaskRunner`].
//!
//! The engine knows nothing about Cassandra: it sees addresses, dependencies, limits and the
//! two-phase task contract (`check` is read-only, `apply` is idempotent).

mod engine;
pub mod events;
pub mod journal;
pub mod lock;
pub mod metrics;
pub mod progress;
pub mod repo_metrics;
pub mod state;
pub mod walker;

pub use engine::{
    ApplyOptions, ExecError, OpenRun, REMOTE_LOCK, RunReport, StateLocation, apply, open_run,
    plan_digest, stale_reason,
};
pub use journal::RunStatus;
pub use walker::{TaskReport, TaskStatus};

use crate::graph::run::PlannedTask;
use async_trait::async_trait;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Why a task failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct TaskError {
    pub message: String,
    /// A retry of the same task may succeed (network, throttling).
    pub retryable: bool,
}

impl TaskError {
    /// A permanent failure.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: false,
        }
    }
    /// A transient failure.
    pub fn transient(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// Result of `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The effect is already there: record the task as satisfied.
    Satisfied(String),
    /// The task must run.
    Needed,
}

/// Result of `apply`: a short human summary plus optional structured data kept in the journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub summary: String,
    pub data: serde_json::Value,
}

/// Progress reporting, injected so tasks never talk to a terminal.
pub trait Progress: Send + Sync {
    /// A task started on a host (or on the controller).
    fn task_started(&self, task: &PlannedTask);
    /// A task added `total` bytes of work for its host.
    fn add_total(&self, host: Option<&str>, total: u64);
    /// A task moved `n` bytes for its host.
    fn advance(&self, host: Option<&str>, n: u64);
    /// A log line that must not tear the bars.
    fn message(&self, line: &str);
    /// A task ended.
    fn task_finished(&self, task: &PlannedTask, status: &str);
    /// Something to look at that does not stop the run (a retry, a superseded run, Ctrl-C),
    /// about task `address` if any; shown as a message unless the sink tells them apart.
    fn warning(&self, line: &str, _address: Option<&str>) {
        self.message(line);
    }
    /// A task failed with `error`; shown as the message `failed: ADDRESS: ERROR` unless the sink
    /// tells failures apart.
    fn task_failed(&self, task: &PlannedTask, error: &str) {
        self.message(&format!("failed: {}: {error}", task.address));
    }
    /// An event only machine-readable output shows (`run_started`); the others show nothing.
    fn event(&self, _event: &events::Event<'_>) {}
    /// The run ended: stop redrawing (bars stay on screen).
    fn finish(&self) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn task_started(&self, _task: &PlannedTask) {}
    fn add_total(&self, _host: Option<&str>, _total: u64) {}
    fn advance(&self, _host: Option<&str>, _n: u64) {}
    fn message(&self, _line: &str) {}
    fn task_finished(&self, _task: &PlannedTask, _status: &str) {}
}

/// Lets a long task save and read progress inside itself (files done, multipart upload ids),
/// so a resumed task only does what is left.
pub trait Checkpoints: Send + Sync {
    /// The latest checkpoint this task wrote in any earlier (interrupted) run.
    fn last(&self, address: &str) -> Option<serde_json::Value>;
    /// Durably records a checkpoint (fsync) before returning.
    fn save(&self, address: &str, data: &serde_json::Value) -> std::io::Result<()>;
}

/// Checkpoints kept in memory, for runs that write no journal (`cbk plan --refresh`, tests).
#[derive(Default)]
pub struct MemoryCheckpoints(
    std::sync::Mutex<std::collections::BTreeMap<String, serde_json::Value>>,
);

impl Checkpoints for MemoryCheckpoints {
    fn last(&self, address: &str) -> Option<serde_json::Value> {
        self.0.lock().ok()?.get(address).cloned()
    }
    fn save(&self, address: &str, data: &serde_json::Value) -> std::io::Result<()> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(address.to_string(), data.clone());
        }
        Ok(())
    }
}

/// What a task gets while it runs.
#[derive(Clone)]
pub struct TaskContext {
    pub progress: Arc<dyn Progress>,
    pub checkpoints: Arc<dyn Checkpoints>,
    /// Cancelled on the first Ctrl-C: reach a safe point and return.
    pub cancel: CancellationToken,
}

/// The task implementations, looked up by the task's kind.
#[async_trait]
pub trait TaskRunner: Send + Sync {
    /// Read-only: is the effect already there?
    async fn check(&self, task: &PlannedTask, cx: &TaskContext) -> Result<Check, TaskError>;
    /// Makes the effect so; idempotent.
    async fn apply(&self, task: &PlannedTask, cx: &TaskContext) -> Result<Outcome, TaskError>;
}
