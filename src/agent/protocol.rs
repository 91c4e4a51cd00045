//! The agent's wire format: one request on stdin, JSON-line events on stdout.
//!
//! A request names one operation in `op.op`; [`Op`] has one variant per operation, each with
//! its typed request, and [`AgentOp`] ties a request type to its typed result and says whether
//! it gets the store (settings, credentials, identity). Both sides use these types, so the
//! controller cannot send what the agent does not read, nor read what it does not send.

use crate::store::Credentials;
use crate::store::config::StorageConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use super::ops::backup::{UploadRequest, UploadResult};
pub use super::ops::delta::{CompareRequest, CompareResult};
pub use super::ops::fetch::{FetchRequest, FetchResult};
pub use super::ops::inspect::{InspectRequest, InspectResult};
pub use super::ops::relocate::{
    CleanupRequest, CleanupResult, ClearCommitlogRequest, ClearCommitlogResult, HandOverRequest,
    HandOverResult, MoveRequest, MoveResult,
};

/// Version of the request/event format; the controller refuses an agent that speaks another.
pub const PROTOCOL_VERSION: u32 = 1;

/// One request: the operation `op` (typed [`Op`] by default) and what it may need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRequest<O = Op> {
    pub protocol: u32,
    /// The store to use (if the operation needs one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StorageConfig>,
    /// Static credentials, if the plan names environment variables for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// The age identity (restore of an encrypted repository): like credentials, only here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::crypt::SecretText>,
    /// What to do.
    pub op: O,
}

/// Every operation an agent runs, tagged by `op` (`{"op": "inspect", "config": ...}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Ping(PingRequest),
    Sleep(SleepRequest),
    Inspect(InspectRequest),
    BackupUpload(UploadRequest),
    Fetch(FetchRequest),
    CompareLive(CompareRequest),
    Move(MoveRequest),
    HandOver(HandOverRequest),
    ClearCommitlog(ClearCommitlogRequest),
    Cleanup(CleanupRequest),
}

impl Op {
    /// The name of every operation (`op.op`), for the error naming an unknown one.
    pub const NAMES: &'static [&'static str] = &[
        "backup_upload",
        "cleanup",
        "clear_commitlog",
        "compare_live",
        "fetch",
        "hand_over",
        "inspect",
        "move",
        "ping",
        "sleep",
    ];

    /// The operation's name (`op.op`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Ping(_) => "ping",
            Op::Sleep(_) => "sleep",
            Op::Inspect(_) => "inspect",
            Op::BackupUpload(_) => "backup_upload",
            Op::Fetch(_) => "fetch",
            Op::CompareLive(_) => "compare_live",
            Op::Move(_) => "move",
            Op::HandOver(_) => "hand_over",
            Op::ClearCommitlog(_) => "clear_commitlog",
            Op::Cleanup(_) => "cleanup",
        }
    }

    /// Whether the operation reads or writes the store.
    pub fn needs_store(&self) -> bool {
        match self {
            Op::Ping(o) => o.needs_store(),
            Op::Sleep(o) => o.needs_store(),
            Op::Inspect(o) => o.needs_store(),
            Op::BackupUpload(o) => o.needs_store(),
            Op::Fetch(o) => o.needs_store(),
            Op::CompareLive(o) => o.needs_store(),
            Op::Move(o) => o.needs_store(),
            Op::HandOver(o) => o.needs_store(),
            Op::ClearCommitlog(o) => o.needs_store(),
            Op::Cleanup(o) => o.needs_store(),
        }
    }
}

/// A typed operation request: its result type and whether it uses the store.
pub trait AgentOp: Serialize + Into<Op> {
    /// The `result` event's data.
    type Response: Serialize + DeserializeOwned;
    /// Whether the operation reads or writes the store: only then does the request carry the
    /// store settings, the credentials and the identity.
    fn needs_store(&self) -> bool {
        false
    }
}

/// `impl From<Request> for Op` and `impl AgentOp for Request` in one line per operation.
macro_rules! agent_op {
    ($variant:ident($req:ty) -> $resp:ty $(, store = $store:expr)?) => {
        impl From<$req> for Op {
            fn from(r: $req) -> Op {
                Op::$variant(r)
            }
        }
        impl AgentOp for $req {
            type Response = $resp;
            $(fn needs_store(&self) -> bool {
                $store
            })?
        }
    };
}

agent_op!(Ping(PingRequest) -> PingResult);
agent_op!(Sleep(SleepRequest) -> SleepResult);
agent_op!(Inspect(InspectRequest) -> InspectResult);
agent_op!(BackupUpload(UploadRequest) -> UploadResult, store = true);
agent_op!(Fetch(FetchRequest) -> FetchResult, store = true);
agent_op!(CompareLive(CompareRequest) -> CompareResult);
agent_op!(Move(MoveRequest) -> MoveResult);
agent_op!(HandOver(HandOverRequest) -> HandOverResult);
agent_op!(ClearCommitlog(ClearCommitlogRequest) -> ClearCommitlogResult);
agent_op!(Cleanup(CleanupRequest) -> CleanupResult);

/// `{"op":"ping"}`: who and where the agent is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PingRequest {}

/// The `ping` result; never echoes credentials, only whether any came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    pub pong: bool,
    pub version: String,
    pub protocol: u32,
    pub hostname: String,
    pub uid: Option<u32>,
    pub pid: u32,
    pub platform: String,
    pub has_credentials: bool,
}

/// `{"op":"sleep","ms":N}`: waits N ms (stands in for a long transfer in tests).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SleepRequest {
    pub ms: u64,
}

/// The `sleep` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepResult {
    pub slept_ms: u64,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// First line: who is answering.
    Hello {
        version: String,
        protocol: u32,
        pid: u32,
    },
    /// Bytes moved since the last progress event.
    Progress { bytes: u64 },
    /// Total bytes the operation will move (when known).
    Total { bytes: u64 },
    /// A checkpoint to record in the journal (e.g. a multipart upload id and its parts).
    Checkpoint { data: serde_json::Value },
    /// A line for the operator's log.
    Log { message: String },
    /// The operation's result (last line on success).
    Result { data: serde_json::Value },
    /// The operation failed (last line on failure).
    Error { message: String, retryable: bool },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name in [`Op::NAMES`] is a variant, and every variant's name is listed.
    #[test]
    fn names_match_the_variants() {
        for name in Op::NAMES {
            let err = serde_json::from_value::<Op>(serde_json::json!({ "op": name }))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{name}: {err}");
        }
        let ping = Op::from(PingRequest {});
        assert_eq!(ping.name(), "ping");
        assert_eq!(
            serde_json::to_value(ping).unwrap(),
            serde_json::json!({ "op": "ping" })
        );
        let sleep = Op::from(SleepRequest { ms: 5 });
        assert_eq!(sleep.name(), "sleep");
        assert_eq!(
            serde_json::to_value(sleep).unwrap(),
            serde_json::json!({ "op": "sleep", "ms": 5 })
        );
        let err = serde_json::from_value::<Op>(serde_json::json!({ "op": "nope" }))
            .unwrap_err()
            .to_string();
        for name in Op::NAMES {
            assert!(
                err.contains(&format!("`{name}`")),
                "{name} missing in: {err}"
            );
        }
        assert_eq!(err.matches('`').count(), 2 * (Op::NAMES.len() + 1), "{err}");
    }

    #[test]
    fn only_store_operations_get_the_store() {
        assert!(!Op::from(PingRequest {}).needs_store());
        assert!(!Op::from(SleepRequest { ms: 1 }).needs_store());
        assert!(!Op::from(InspectRequest::default()).needs_store());
        let fetch = FetchRequest {
            staging_root: "/s".into(),
            files: vec![],
            file_concurrency: 1,
            displaced_bytes: 0,
            encrypted: false,
        };
        assert!(Op::from(fetch).needs_store());
    }
}
