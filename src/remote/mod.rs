//! How cbk reaches a node: run a command there, or start the node agent there.
//!
//! Two transports implement [`Transport`]: `local` (cbk runs on the node itself) and `ssh`
//! (OpenSSH with ControlMaster multiplexing). Everything that crosses to a remote shell goes
//! through [`quote`] and names are checked by [`validate`] before they get near a shell.

mod agent_client;
pub mod config;
pub mod local;
pub mod pool;
pub mod quote;
pub mod ssh;
pub mod validate;

pub use quote::{Sudo, quote};

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
    #[error("on {host}: command not found: `{command}` ({stderr})")]
    NotFound {
        host: String,
        command: String,
        stderr: String,
    },
    #[error("on {host}: `{command}` did not finish within {after:?}")]
    Timeout {
        host: String,
        command: String,
        after: Duration,
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
    /// Safe to run again: if the connection drops while it runs, the transport reconnects and
    /// runs it once more (commands that never started are always retried).
    pub idempotent: bool,
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
    /// Runs the command through the plan's sudo settings.
    pub fn sudo(mut self) -> Self {
        self.sudo = true;
        self
    }
    /// Bytes for the command's stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }
    /// Gives up (and kills the command) after `d`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// Marks the command safe to run twice (see [`Cmd::idempotent`]).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
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
    /// True when the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
    /// `Ok(self)` on exit 0, else a [`RemoteError::Failed`] naming the command and its stderr.
    pub fn check(self, host: &str, cmd: &Cmd) -> RemoteResult<Self> {
        if self.success() {
            return Ok(self);
        }
        Err(RemoteError::Failed {
            host: host.to_string(),
            command: quote::describe(cmd),
            code: self.code,
            stderr: self.stderr_str().trim().to_string(),
        })
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// The transport a plan asks for, for one of its hosts (names validated first).
pub fn for_host(
    conn: &config::ConnectionConfig,
    host: &config::HostSpec,
) -> RemoteResult<std::sync::Arc<dyn Transport>> {
    use config::TransportKind;
    match conn.transport {
        TransportKind::Ssh => Ok(std::sync::Arc::new(ssh::SshTransport::from_plan(
            conn, host,
        )?)),
        TransportKind::Local => {
            let mut t = local::LocalTransport::new(
                host.name.clone(),
                Sudo::from_plan(conn.sudo, conn.sudo_user.as_deref())?,
            );
            if let Some(p) = &conn.agent_path {
                validate::abs_path(p)?;
                t = t.with_agent_path(p);
            }
            Ok(std::sync::Arc::new(t))
        }
    }
}

/// Exit code a shell uses for "command not found"; transports turn it into [`RemoteError::NotFound`].
pub const EXIT_NOT_FOUND: i32 = 127;

/// Maps a finished command's exit 127 to [`RemoteError::NotFound`] (shared by both transports).
fn not_found_check(host: &str, cmd: &Cmd, out: Output) -> RemoteResult<Output> {
    if out.code == EXIT_NOT_FOUND {
        return Err(RemoteError::NotFound {
            host: host.to_string(),
            command: quote::describe(cmd),
            stderr: out.stderr_str().trim().to_string(),
        });
    }
    Ok(out)
}

/// New bandwidths (bytes per second, `None`: unlimited) for a running agent's transfers.
pub type Rates = tokio::sync::watch::Receiver<Option<u64>>;

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
    /// [`Transport::agent`], then, while the agent runs, each new rate from `rates` is sent to it
    /// as an [`crate::agent::protocol::AgentControl::Bandwidth`] line (agents that announce
    /// `controls` in their hello; others keep the rate of the request).
    async fn agent_paced(
        &self,
        request: &serde_json::Value,
        rates: Option<Rates>,
    ) -> RemoteResult<Box<dyn AgentSession>> {
        let _ = rates;
        self.agent(request).await
    }
    /// Closes connections (the next command opens them again).
    async fn close(&self) -> RemoteResult<()>;
    /// Whether a connection is open (or being opened) and would count against
    /// [`pool::Pool`]'s limit; the local transport has none.
    fn connected(&self) -> bool {
        false
    }
    /// When the transport last finished its work, or `None` while a command or agent session
    /// runs on it (it must not be closed then).
    fn idle_since(&self) -> Option<std::time::Instant> {
        None
    }
}
