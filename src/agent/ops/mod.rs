//! Node-side data operations of the agent: inspecting the node, uploading SSTables, fetching a
//! backup into staging, and moving staged files into the live data folders.
//!
//! Each operation is idempotent: run again after a crash it finishes the job without redoing
//! what is already in place.

pub mod backup;
pub mod channel;
pub mod fetch;
pub mod inspect;
pub mod pipeline;
pub mod relocate;

use super::protocol::AgentEvent;
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub message: String,
    pub retryable: bool,
}

impl OpError {
    /// A permanent failure.
    pub fn fatal(message: impl Into<String>) -> Self {
        OpError { message: message.into(), retryable: false }
    }
    /// Maps a store error, keeping whether it may be retried.
    pub fn from_store(e: StoreError) -> Self {
        let retryable = matches!(e, StoreError::Request { retryable: true, .. });
        OpError { message: e.to_string(), retryable }
    }
    /// Maps an I/O error on a path.
    pub fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        OpError::fatal(format!("{}: {e}", path.display()))
    }
}

/// Result alias for operations.
pub type OpResult<T> = Result<T, OpError>;

/// Sends events to the controller.
pub type EventSink = Arc<dyn Fn(AgentEvent) + Send + Sync>;

/// What an operation gets.
#[derive(Clone)]
pub struct OpContext {
    pub events: EventSink,
    pub store: Option<Arc<dyn Store>>,
}

impl OpContext {
    /// The store, or an error if the request named none.
    pub fn store(&self) -> OpResult<&Arc<dyn Store>> {
        self.store.as_ref().ok_or_else(|| OpError::fatal("this operation needs a store"))
    }
    /// Reports bytes moved.
    pub fn progress(&self, bytes: u64) {
        (self.events)(AgentEvent::Progress { bytes });
    }
    /// Reports the total bytes to move.
    pub fn total(&self, bytes: u64) {
        (self.events)(AgentEvent::Total { bytes });
    }
    /// Sends a log line.
    pub fn log(&self, message: impl Into<String>) {
        (self.events)(AgentEvent::Log { message: message.into() });
    }
    /// Sends a checkpoint for the journal.
    pub fn checkpoint(&self, data: serde_json::Value) {
        (self.events)(AgentEvent::Checkpoint { data });
    }
}

/// Runs the operation named in `op["op"]`.
pub async fn dispatch(op: serde_json::Value, cx: &OpContext) -> OpResult<serde_json::Value> {
    let name = op.get("op").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    fn parse<T: serde::de::DeserializeOwned>(op: serde_json::Value) -> OpResult<T> {
        serde_json::from_value(op).map_err(|e| OpError::fatal(format!("bad request: {e}")))
    }
    let out = match name.as_str() {
        "inspect" => to_json(inspect::run(parse(op)?).await?),
        "backup_upload" => to_json(backup::run(parse(op)?, cx).await?),
        "fetch" => to_json(fetch::run(parse(op)?, cx).await?),
        "move" => to_json(relocate::run_move(parse(op)?, cx).await?),
        "clear_commitlog" => to_json(relocate::run_clear_commitlog(parse(op)?).await?),
        "cleanup" => to_json(relocate::run_cleanup(parse(op)?).await?),
        other => return Err(OpError::fatal(format!("unknown agent operation `{other}`"))),
    };
    out
}

fn to_json<T: serde::Serialize>(v: T) -> OpResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| OpError::fatal(format!("cannot encode result: {e}")))
}
