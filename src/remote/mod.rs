//! How cbk reaches a node: run a command there, or start the node agent there.
//!
//! Two transports implement [`Transport`]: `local` (cbk runs on the node itself) and `ssh`
//! (OpenSSH with ControlMaster multiplexing). Everything that crosses to a remote shell goes
//! through [`quote`] and names are checked by [`validate`] before they get near a shell.

pub mod local;
pub mod quote;
pub mod ssh;
pub mod validate;

use async_trait::async_trait;
use std::time::Duration;

/// Errors reaching or running things on a node.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot connect to {host}: {message}")]
    Connect { host: String, message: String },
    #[error("connection to {host} was lost: {message}")]
    Disconnected { host: String, message: String },
    #[error("on {host}: `{command}` exited with {code}: {stderr}")]
    Failed {
        host: String,
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("invalid {what} `{value}`: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("on {host}: agent error: {message}")]
    Agent { host: String, message: String },
    #[error("on {host}: {message}")]
    Other { host: String, message: String },
}

/// Result alias for transports.
pub type RemoteResult<T> = Result<T, RemoteError>;

/// A command to run on a node: a program and arguments, each quoted for the remote shell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Run through the plan's sudo settings.
    pub sudo: bool,
    /// Bytes written to the command's stdin (never secrets on argv).
    pub stdin: Option<Vec<u8>>,
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// A trusted shell snippet (from the plan file itself) instead of program+args.
    pub shell: Option<String>,
}

impl Cmd {
    /// `program arg...`
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            ..Default::default()
        }
    }
    /// Adds an argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    /// Adds arguments.
    pub fn args<I, S>(mut self, a: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    /// A shell snippet written by the plan's author.
    pub fn shell(snippet: impl Into<String>) -> Self {
        Cmd {
            shell: Some(snippet.into()),
            ..Default::default()
        }
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A running agent: send one request, read JSON-line events until it ends.
#[async_trait]
pub trait AgentSession: Send {
    /// The next event line (already parsed as JSON), or `None` at the end.
    async fn next_event(&mut self) -> RemoteResult<Option<serde_json::Value>>;
    /// Waits for the agent process to exit and returns its exit code.
    async fn finish(self: Box<Self>) -> RemoteResult<i32>;
}

/// A way of running things on one node.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The host name as the plan spells it.
    fn host(&self) -> &str;
    /// Runs a command and collects its output (remote output never reaches the terminal).
    async fn exec(&self, cmd: &Cmd) -> RemoteResult<Output>;
    /// Starts `cbk agent` on the node (installing it first if needed) and sends it `request`
    /// on stdin. Credentials live only inside `request`.
    async fn agent(&self, request: &serde_json::Value) -> RemoteResult<Box<dyn AgentSession>>;
    /// Closes connections.
    async fn close(&self) -> RemoteResult<()>;
}
