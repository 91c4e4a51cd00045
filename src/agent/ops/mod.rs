//! Node-side data operations of the agent: inspecting the node, uploading SSTables, fetching a
//! backup into staging, and moving staged files into the live data folders.
//!
//! Each operation is idempotent: run again after a crash it finishes the job without redoing
//! what is already in place.

pub mod backup;
mod builtin;
pub mod delta;
pub mod fetch;
pub mod inspect;
pub mod pipeline;
pub mod relocate;

use super::protocol::{
    AgentEvent, AgentOp, AgentRequest, CleanupRequest, ClearCommitlogRequest, CompareRequest,
    FetchRequest, HandOverRequest, InspectRequest, MoveRequest, Op, PingRequest, SleepRequest,
    UploadRequest,
};
pub use super::serve::OpError;
use super::serve::{Events, Operations};
use crate::store::{Store, StoreError};
use futures::future::BoxFuture;
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

/// The operations `cbk agent` serves: every [`Op`].
pub struct Agent;

impl Operations for Agent {
    type Op = Op;
    fn names(&self) -> &'static [&'static str] {
        Op::NAMES
    }
    fn run(
        &self,
        request: AgentRequest,
        events: Events,
    ) -> BoxFuture<'static, OpResult<serde_json::Value>> {
        Box::pin(dispatch(request, events))
    }
}

/// Runs one operation: the one match from op to implementation.
async fn dispatch(request: AgentRequest, events: Events) -> OpResult<serde_json::Value> {
    let AgentRequest {
        store,
        credentials,
        identity,
        op,
        ..
    } = request;
    let env = Envelope {
        store,
        credentials,
        identity,
        events,
    };
    match op {
        Op::Ping(_) => reply::<PingRequest>(Ok(builtin::ping(env.credentials.is_some()))),
        Op::Sleep(r) => reply::<SleepRequest>(builtin::sleep(r, &env.events).await),
        Op::Inspect(r) => reply::<InspectRequest>(inspect::run(r).await),
        Op::BackupUpload(r) => {
            reply::<UploadRequest>(env.run(|cx| async move { backup::run(r, &cx).await }).await)
        }
        Op::Fetch(r) => {
            reply::<FetchRequest>(env.run(|cx| async move { fetch::run(r, &cx).await }).await)
        }
        Op::CompareLive(r) => reply::<CompareRequest>(delta::run(r).await),
        Op::Move(r) => reply::<MoveRequest>(
            env.run(|cx| async move { relocate::run_move(r, &cx).await })
                .await,
        ),
        Op::HandOver(r) => reply::<HandOverRequest>(relocate::run_hand_over(r).await),
        Op::ClearCommitlog(r) => {
            reply::<ClearCommitlogRequest>(relocate::run_clear_commitlog(r).await)
        }
        Op::Cleanup(r) => reply::<CleanupRequest>(relocate::run_cleanup(r).await),
    }
}

/// An operation's typed result as the `result` event's data.
fn reply<O: AgentOp>(r: OpResult<O::Response>) -> OpResult<serde_json::Value> {
    serde_json::to_value(r?).map_err(|e| OpError::fatal(format!("cannot encode result: {e}")))
}

/// What came with the request besides the op.
struct Envelope {
    store: Option<crate::store::config::StorageConfig>,
    credentials: Option<crate::store::Credentials>,
    identity: Option<crate::crypt::SecretText>,
    events: Events,
}

impl Envelope {
    /// Runs an operation with the store (when the request named one), the identity, and a
    /// synchronous event sink whose events are written, in order, before the result.
    async fn run<T, F, Fut>(self, f: F) -> OpResult<T>
    where
        F: FnOnce(OpContext) -> Fut,
        Fut: std::future::Future<Output = OpResult<T>>,
    {
        let store = match &self.store {
            Some(config) => Some(
                crate::store::open(config, self.credentials.clone())
                    .await
                    .map_err(OpError::from_store)?,
            ),
            None => None,
        };
        let identity = match &self.identity {
            Some(text) => Some(
                crate::crypt::Identities::parse(&text.0)
                    .map_err(|e| OpError::fatal(e.to_string()))?,
            ),
            None => None,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AgentEvent>();
        let events = self.events.clone();
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
        let out = f(OpContext {
            events: sink,
            store,
            identity,
        })
        .await;
        let _ = forward.await;
        out
    }
}
