//! Node-side data operations of the agent: inspecting the node, uploading SSTables, fetching a
//! backup into staging, and moving staged files into the live data folders.
//!
//! Each operation is idempotent: run again after a crash it finishes the job without redoing
//! what is already in place.

pub mod backup;
pub mod delta;
pub mod fetch;
pub mod inspect;
pub mod pipeline;
pub mod relocate;

use super::protocol::AgentEvent;
pub use super::serve::OpError;
use super::serve::Registry;
use crate::store::{Store, StoreError};
use std::sync::Arc;

impl OpError {
    /// Maps a store error, keeping whether it may be retried.
    pub fn from_store(e: StoreError) -> Self {
        let retryable = matches!(
            e,
            StoreError::Request {
                retryable: true,
                ..
            }
        );
        OpError {
            message: e.to_string(),
            retryable,
        }
    }
    /// Maps an I/O error on a path.
    pub fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        OpError::fatal(io_message(path, &e))
    }
}

/// The text of an I/O error on `path`; a full disk says so and names the path.
pub fn io_message(path: &std::path::Path, e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        format!("no space left on device at {}", path.display())
    } else {
        format!("{}: {e}", path.display())
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
    /// The age identity, when the controller sent one (reading an encrypted repository).
    pub identity: Option<crate::crypt::Identities>,
}

impl OpContext {
    /// The store, or an error if the request named none.
    pub fn store(&self) -> OpResult<&Arc<dyn Store>> {
        self.store
            .as_ref()
            .ok_or_else(|| OpError::fatal("this operation needs a store"))
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
        (self.events)(AgentEvent::Log {
            message: message.into(),
        });
    }
    /// Sends a checkpoint for the journal.
    pub fn checkpoint(&self, data: serde_json::Value) {
        (self.events)(AgentEvent::Checkpoint { data });
    }
}

/// Adds the data operations to an agent's registry.
pub fn register(registry: &mut Registry) {
    registry.register("inspect", |c| {
        Box::pin(adapt(c, |op, _| async move {
            to_json(inspect::run(parse(op)?).await?)
        }))
    });
    registry.register("backup_upload", |c| {
        Box::pin(adapt(c, |op, cx| async move {
            to_json(backup::run(parse(op)?, &cx).await?)
        }))
    });
    registry.register("fetch", |c| {
        Box::pin(adapt(c, |op, cx| async move {
            to_json(fetch::run(parse(op)?, &cx).await?)
        }))
    });
    registry.register("compare_live", |c| {
        Box::pin(adapt(c, |op, _| async move {
            to_json(delta::run(parse(op)?).await?)
        }))
    });
    registry.register("move", |c| {
        Box::pin(adapt(c, |op, cx| async move {
            to_json(relocate::run_move(parse(op)?, &cx).await?)
        }))
    });
    registry.register("hand_over", |c| {
        Box::pin(adapt(c, |op, _| async move {
            to_json(relocate::run_hand_over(parse(op)?).await?)
        }))
    });
    registry.register("clear_commitlog", |c| {
        Box::pin(adapt(c, |op, _| async move {
            to_json(relocate::run_clear_commitlog(parse(op)?).await?)
        }))
    });
    registry.register("cleanup", |c| {
        Box::pin(adapt(c, |op, _| async move {
            to_json(relocate::run_cleanup(parse(op)?).await?)
        }))
    });
}

fn parse<T: serde::de::DeserializeOwned>(op: serde_json::Value) -> OpResult<T> {
    serde_json::from_value(op).map_err(|e| OpError::fatal(format!("bad parameters: {e}")))
}

/// Runs an operation with a synchronous event sink whose events are written, in order, before
/// the operation's result.
async fn adapt<F, Fut>(ctx: super::serve::OpContext, f: F) -> OpResult<serde_json::Value>
where
    F: FnOnce(serde_json::Value, OpContext) -> Fut,
    Fut: std::future::Future<Output = OpResult<serde_json::Value>>,
{
    let store = match &ctx.request.store {
        Some(config) => Some(
            crate::store::open(config, ctx.request.credentials.clone())
                .await
                .map_err(OpError::from_store)?,
        ),
        None => None,
    };
    let identity = match &ctx.request.identity {
        Some(text) => Some(
            crate::crypt::Identities::parse(&text.0).map_err(|e| OpError::fatal(e.to_string()))?,
        ),
        None => None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AgentEvent>();
    let events = ctx.events.clone();
    let forward = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if events.send(&ev).await.is_err() {
                break;
            }
        }
    });
    let sink: EventSink = Arc::new(move |ev| {
        let _ = tx.send(ev);
    });
    let out = f(
        ctx.request.op.clone(),
        OpContext {
            events: sink,
            store,
            identity,
        },
    )
    .await;
    let _ = forward.await;
    out
}

fn to_json<T: serde::Serialize>(v: T) -> OpResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| OpError::fatal(format!("cannot encode result: {e}")))
}
