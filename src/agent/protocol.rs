//! The agent's wire format: one request on stdin, JSON-line events on stdout.

use crate::store::Credentials;
use crate::store::config::StorageConfig;
use serde::{Deserialize, Serialize};

/// Version of the request/event format; the controller refuses an agent that speaks another.
pub const PROTOCOL_VERSION: u32 = 1;

/// One request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRequest {
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
    pub op: serde_json::Value,
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
