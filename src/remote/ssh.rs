//! Transport over OpenSSH (openssh crate, native mux): strict host keys, sudo, reconnects.
//!
//! One ControlMaster connection per host (the system `ssh`, so `~/.ssh/config`, agents, jump
//! hosts and certificates keep working), every command a multiplexed channel. The master lives in
//! a private, short control directory under /tmp (unix socket paths are limited to ~104 bytes).
//! A semaphore keeps concurrent channels below sshd's `MaxSessions`. When the master dies the
//! next command rebuilds it; a command that never started is retried once, and one that was cut
//! off mid-run only when it is marked idempotent. Remote stdin/stdout/stderr are always set
//! explicitly: nothing a node prints reaches the operator's terminal.

use super::agent_client::{self, Started};
use super::config::{ConnectionConfig, HostSpec, KnownHosts};
use super::quote::{self, Sudo};
use super::{AgentSession, Cmd, Output, RemoteError, RemoteResult, Transport, validate};
use async_trait::async_trait;
use openssh::{ControlPersist, Session, SessionBuilder, Stdio};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, OnceCell, OwnedSemaphorePermit, Semaphore};

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default keep-alive interval (a dead peer is noticed after three missed answers).
pub const DEFAULT_SERVER_ALIVE: Duration = Duration::from_secs(15);
/// Default limit of concurrent channels per host (sshd's `MaxSessions` defaults to 10; one or
/// two stay free for `check` and installs).
pub const DEFAULT_MAX_SESSIONS: usize = 8;
/// An idle master exits after this long (and is rebuilt on demand), so a crashed cbk never
/// leaves masters behind for long.
const MASTER_IDLE_SECS: usize = 300;
/// Exit code of coreutils `timeout` when the limit was hit.
const EXIT_TIMED_OUT: i32 = 124;
/// Extra time the local side waits beyond a command's own limit before giving up on it.
const TIMEOUT_SLACK: Duration = Duration::from_secs(10);

/// Everything needed to reach one host over SSH.
#[derive(Debug, Clone, PartialEq)]
pub struct SshSettings {
    /// Address or ssh_config alias to connect to.
    pub destination: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Private key (`-i`, with `IdentitiesOnly=yes`).
    pub identity: Option<PathBuf>,
    /// ssh config file (`-F`).
    pub config_file: Option<PathBuf>,
    /// known_hosts file instead of the user's.
    pub known_hosts_file: Option<PathBuf>,
    pub known_hosts: KnownHosts,
    /// Jump hosts (`-J`), `[user@]host[:port]`.
    pub jump_hosts: Vec<String>,
    pub connect_timeout: Duration,
    pub server_alive_interval: Duration,
    pub sudo: Sudo,
    /// cbk on the node; when `None` the controller installs its own binary.
    pub agent_path: Option<String>,
    /// The binary uploaded when `agent_path` is `None` (default: the running executable).
    pub local_agent_binary: Option<PathBuf>,
    /// Concurrent channels on this host.
    pub max_sessions: usize,
}

impl SshSettings {
    /// Defaults for `destination`: strict host keys, 10 s connect timeout, 8 channels.
    pub fn new(destination: impl Into<String>) -> Self {
        SshSettings {
            destination: destination.into(),
            user: None,
            port: None,
            identity: None,
            config_file: None,
            known_hosts_file: None,
            known_hosts: KnownHosts::Strict,
            jump_hosts: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            server_alive_interval: DEFAULT_SERVER_ALIVE,
            sudo: Sudo::default(),
            agent_path: None,
            local_agent_binary: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }

    /// From a plan's `[connection]` and one host (its address/port/user override the plan's).
    /// Every name is validated here, before anything runs.
    pub fn from_plan(conn: &ConnectionConfig, host: &HostSpec) -> RemoteResult<Self> {
        let destination = host.address.clone().unwrap_or_else(|| host.name.clone());
        let mut s = SshSettings::new(destination);
        s.user = host.user.clone().or_else(|| conn.user.clone());
        s.port = host.port.or(conn.port);
        s.identity = conn.identity.as_deref().map(expand_home);
        s.config_file = conn.ssh_config.as_deref().map(expand_home);
        s.known_hosts_file = conn.known_hosts_file.as_deref().map(expand_home);
        s.known_hosts = conn.known_hosts;
        s.jump_hosts = conn.jump_hosts.clone();
        if let Some(t) = &conn.connect_timeout {
            if t.is_zero() {
                return Err(RemoteError::Invalid {
                    what: "connect_timeout",
                    value: t.to_string(),
                    reason: "must be more than 0".into(),
                });
            }
            s.connect_timeout = t.get();
        }
        s.sudo = Sudo::from_plan(conn.sudo, conn.sudo_user.as_deref())?;
        s.agent_path = conn.agent_path.clone();
        s.validate()?;
        Ok(s)
    }

    /// Checks every name that ends up on ssh's command line or in a remote shell.
    pub fn validate(&self) -> RemoteResult<()> {
        validate::host(&self.destination)?;
        if let Some(u) = &self.user {
            validate::user(u)?;
        }
        for j in &self.jump_hosts {
            let (user, rest) = j
                .split_once('@')
                .map_or((None, j.as_str()), |(u, r)| (Some(u), r));
            if let Some(u) = user {
                validate::user(u)?;
            }
            validate::host(rest)?;
        }
        if let Some(p) = &self.agent_path {
            validate::abs_path(p)?;
        }
        if let Some(u) = &self.sudo.user {
            validate::user(u)?;
        }
        if self.max_sessions == 0 {
            return Err(RemoteError::Invalid {
                what: "max_sessions",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// `~/x` -> `$HOME/x` (ssh does this itself for config entries, not for every option).
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// `uname -sm` of the machine this cbk was built for.
fn local_platform() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        other => other,
    };
    let arch = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("macos", "aarch64") => "arm64",
        (_, a) => a,
    };
    format!("{os} {arch}")
}

/// SHA-256 of a local file, computed once per path and process: the first caller hashes,
/// the callers that come meanwhile wait for its result. (Each of hundreds of hosts connecting
/// at once used to hash the 200 MB binary itself, on a blocking thread of its own.)
async fn file_sha256(path: &Path) -> std::io::Result<String> {
    type Cell = Arc<OnceCell<String>>;
    static CACHE: std::sync::Mutex<BTreeMap<PathBuf, Cell>> =
        std::sync::Mutex::new(BTreeMap::new());
    let cell: Cell = CACHE
        .lock()
        .map_err(|_| std::io::Error::other("digest cache poisoned"))?
        .entry(path.to_path_buf())
        .or_default()
        .clone();
    let owned = path.to_path_buf();
    cell.get_or_try_init(|| async move {
        tokio::task::spawn_blocking(move || hash_file(&owned))
            .await
            .map_err(std::io::Error::other)?
    })
    .await
    .cloned()
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    #[cfg(test)]
    tests::HASHED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// How a run over an existing master went wrong.
enum RunError {
    /// The channel could not be opened: nothing ran, retrying is always safe.
    NotStarted(openssh::Error),
    /// The channel broke while the command ran.
    Lost(openssh::Error),
    /// Anything else (already mapped).
    Other(RemoteError),
}

fn connection_lost(e: &openssh::Error) -> bool {
    matches!(
        e,
        openssh::Error::Disconnected
            | openssh::Error::RemoteProcessTerminated
            | openssh::Error::SshMux(_)
    )
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(text.trim());
        }
        src = s.source();
    }
    msg
}

/// Runs things on one host over SSH.
pub struct SshTransport {
    host: String,
    settings: SshSettings,
    /// Private folder of the control sockets (`None` only while dropping).
    control_dir: Option<tempfile::TempDir>,
    master: Mutex<Option<Arc<Session>>>,
    permits: Arc<Semaphore>,
    /// When the last command or agent session ended (or the transport was made): how long the
    /// connection has been idle, for [`super::pool::Pool`].
    last_used: Arc<std::sync::Mutex<Instant>>,
    installed: OnceCell<String>,
}

/// One channel in use: holds a permit, and marks the transport used when it ends.
struct InUse {
    _permit: OwnedSemaphorePermit,
    last_used: Arc<std::sync::Mutex<Instant>>,
}

impl Drop for InUse {
    fn drop(&mut self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("host", &self.host)
            .field("destination", &self.settings.destination)
            .finish()
    }
}

impl SshTransport {
    /// A transport for the plan host `host`; connects lazily on first use.
    pub fn new(host: impl Into<String>, settings: SshSettings) -> RemoteResult<Self> {
        let host = host.into();
        settings.validate()?;
        // tempfile creates the directory with mode 0700.
        let control_dir = tempfile::Builder::new()
            .prefix("cbk-ssh-")
            .tempdir_in("/tmp")
            .map_err(|e| RemoteError::Other {
                host: host.clone(),
                message: format!("cannot create a control directory in /tmp: {e}"),
            })?;
        Ok(SshTransport {
            host,
            permits: Arc::new(Semaphore::new(settings.max_sessions)),
            settings,
            control_dir: Some(control_dir),
            master: Mutex::new(None),
            last_used: Arc::new(std::sync::Mutex::new(Instant::now())),
            installed: OnceCell::new(),
        })
    }

    /// From a plan's `[connection]` and one of its hosts.
    pub fn from_plan(conn: &ConnectionConfig, host: &HostSpec) -> RemoteResult<Self> {
        SshTransport::new(host.name.clone(), SshSettings::from_plan(conn, host)?)
    }

    /// The settings in use.
    pub fn settings(&self) -> &SshSettings {
        &self.settings
    }

    /// The current master's control socket (for diagnostics and tests), if connected.
    pub async fn control_socket(&self) -> Option<PathBuf> {
        self.master
            .lock()
            .await
            .as_ref()
            .map(|s| s.control_socket().to_path_buf())
    }

    async fn connect(&self) -> RemoteResult<Session> {
        let s = &self.settings;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match s.known_hosts {
            KnownHosts::Strict => openssh::KnownHosts::Strict,
            KnownHosts::AcceptNew => openssh::KnownHosts::Add,
        })
        .connect_timeout(s.connect_timeout)
        .server_alive_interval(s.server_alive_interval)
        .control_directory(
            self.control_dir
                .as_ref()
                .map_or(Path::new("/tmp"), |d| d.path()),
        )
        .control_persist(ControlPersist::IdleFor(
            std::num::NonZeroUsize::new(MASTER_IDLE_SECS).unwrap_or(std::num::NonZeroUsize::MIN),
        ));
        if let Some(u) = &s.user {
            b.user(u.clone());
        }
        if let Some(p) = s.port {
            b.port(p);
        }
        if let Some(k) = &s.identity {
            b.keyfile(k);
        }
        if let Some(f) = &s.config_file {
            b.config_file(f);
        }
        if let Some(f) = &s.known_hosts_file {
            b.user_known_hosts_file(f);
        }
        if !s.jump_hosts.is_empty() {
            b.jump_hosts(&s.jump_hosts);
        }
        let limit = s.connect_timeout + Duration::from_secs(5);
        match tokio::time::timeout(limit, b.connect_mux(&s.destination)).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(e)) => Err(RemoteError::Connect {
                host: self.host.clone(),
                message: chain(&e).replace("\r\n", "; ").replace('\n', "; "),
            }),
            Err(_) => Err(RemoteError::Connect {
                host: self.host.clone(),
                message: format!("no answer within {limit:?}"),
            }),
        }
    }

    /// The live master, connecting if there is none.
    async fn session(&self) -> RemoteResult<Arc<Session>> {
        let mut master = self.master.lock().await;
        if let Some(s) = master.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(self.connect().await?);
        *master = Some(s.clone());
        Ok(s)
    }

    /// After a lost connection: keep the master if it still answers, else rebuild it.
    async fn recover(&self, broken: &Arc<Session>) -> RemoteResult<()> {
        let mut master = self.master.lock().await;
        let Some(current) = master.as_ref() else {
            return Ok(());
        };
        if !Arc::ptr_eq(current, broken) {
            return Ok(()); // someone else already replaced it
        }
        if current.check().await.is_ok() {
            return Ok(());
        }
        tracing::info!(host = %self.host, "ssh master connection lost; reconnecting");
        if let Some(old) = master.take() {
            dispose(old).await;
        }
        *master = Some(Arc::new(self.connect().await?));
        Ok(())
    }

    async fn run_once(&self, session: &Session, line: &str, cmd: &Cmd) -> Result<Output, RunError> {
        let mut command = session.raw_command(line);
        command
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().await.map_err(RunError::NotStarted)?;
        if let (Some(bytes), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin().take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
                let _ = stdin.shutdown().await;
            });
        }
        let (Some(mut out), Some(mut err)) = (child.stdout().take(), child.stderr().take()) else {
            return Err(RunError::Other(self.other("remote pipes are missing")));
        };
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let read = tokio::try_join!(out.read_to_end(&mut stdout), err.read_to_end(&mut stderr));
        let status = child.wait().await;
        let stderr_text = String::from_utf8_lossy(&stderr).trim().to_string();
        match status {
            Ok(st) => {
                read.map_err(|e| RunError::Lost(openssh::Error::ChildIo(e)))?;
                let code = super::local::exit_code(st);
                Ok(Output {
                    code,
                    stdout,
                    stderr,
                })
            }
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(RunError::Other(RemoteError::NotFound {
                    host: self.host.clone(),
                    command: quote::describe(cmd),
                    stderr: stderr_text,
                }))
            }
            Err(e) => Err(RunError::Lost(e)),
        }
    }

    fn other(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::Other {
            host: self.host.clone(),
            message: message.into(),
        }
    }

    fn lost(&self, e: &openssh::Error) -> RemoteError {
        RemoteError::Disconnected {
            host: self.host.clone(),
            message: chain(e),
        }
    }

    /// A channel permit (waits while `max_sessions` channels are open).
    async fn channel(&self) -> RemoteResult<InUse> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| self.other("transport closed"))?;
        Ok(InUse {
            _permit: permit,
            last_used: self.last_used.clone(),
        })
    }

    /// Runs a command line, reconnecting once if the master died.
    async fn run_line(&self, line: &str, cmd: &Cmd) -> RemoteResult<Output> {
        let _channel = self.channel().await?;
        let mut retried = false;
        loop {
            let session = self.session().await?;
            let e = match self.run_once(&session, line, cmd).await {
                Ok(out) => return Ok(out),
                Err(RunError::Other(e)) => return Err(e),
                Err(RunError::NotStarted(e)) if connection_lost(&e) && !retried => e,
                Err(RunError::Lost(e)) if connection_lost(&e) && cmd.idempotent && !retried => e,
                Err(RunError::NotStarted(e)) | Err(RunError::Lost(e)) => {
                    // A broken master must not poison the next command either.
                    if connection_lost(&e) {
                        let _ = self.recover(&session).await;
                    }
                    return Err(self.lost(&e));
                }
            };
            tracing::debug!(host = %self.host, error = %chain(&e), "retrying after a lost connection");
            self.recover(&session).await?;
            retried = true;
        }
    }

    /// Path of cbk on the node: the plan's `agent_path`, or the controller's own binary,
    /// installed into `~/.cache/cbk/VERSION-SHA/cbk` when missing.
    async fn agent_program(&self) -> RemoteResult<String> {
        if let Some(p) = &self.settings.agent_path {
            return Ok(p.clone());
        }
        self.installed
            .get_or_try_init(|| self.install_agent())
            .await
            .cloned()
    }

    async fn install_agent(&self) -> RemoteResult<String> {
        let local = match &self.settings.local_agent_binary {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| self.other(format!("cannot find the cbk executable: {e}")))?,
        };
        let sha = file_sha256(&local)
            .await
            .map_err(|e| self.other(format!("cannot read {}: {e}", local.display())))?;
        let rel = format!(".cache/cbk/{}-{}", crate::VERSION, &sha[..16]);
        // Probe and upload run as the agent will (through sudo when configured), so the binary
        // lands in the cache of the user that runs it.
        let probe = Cmd::shell(format!(
            "uname -sm; printf '%s\\n' \"$HOME\"; if [ -x \"$HOME\"/{rel}/cbk ]; then echo present; else echo absent; fi",
            rel = quote::quote(&rel)
        ))
        .sudo()
        .idempotent();
        let out = self
            .run_line(&quote::command_line(&probe, &self.settings.sudo), &probe)
            .await?
            .check(&self.host, &probe)?;
        let text = out.stdout_str();
        let mut lines = text.lines();
        let (Some(platform), Some(home), Some(state)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(self.other(format!("unexpected answer while probing for cbk: {text:?}")));
        };
        validate::abs_path(home)?;
        let dir = format!("{}/{rel}", home.trim_end_matches('/'));
        let path = format!("{dir}/cbk");
        if state == "present" {
            return Ok(path);
        }
        let want = local_platform();
        if platform.trim() != want {
            return Err(RemoteError::Agent {
                host: self.host.clone(),
                message: format!(
                    "cbk is not installed there and the node is `{}` while this cbk is built for `{want}`; \
                     install cbk on the node and set connection.agent_path",
                    platform.trim()
                ),
            });
        }
        tracing::info!(host = %self.host, path = %path, "installing the cbk agent");
        self.upload(&local, &dir, &sha).await?;
        Ok(path)
    }

    /// Streams `local` to `DIR/cbk` (temp file, digest check, rename).
    async fn upload(&self, local: &Path, dir: &str, sha: &str) -> RemoteResult<()> {
        let script = format!(
            "umask 022; d={d}; mkdir -p \"$d\" && t=\"$d/cbk.tmp.$$\" && cat > \"$t\" && chmod 0755 \"$t\" \
             && s=$(sha256sum \"$t\") && s=${{s%% *}} && if [ \"$s\" = {sha} ]; then mv -f \"$t\" \"$d/cbk\"; \
             else rm -f \"$t\"; echo \"digest mismatch after upload: $s\" >&2; exit 3; fi",
            d = quote::quote(dir),
            sha = quote::quote(sha)
        );
        let _channel = self.channel().await?;
        let line = quote::command_line(&Cmd::shell(script).sudo(), &self.settings.sudo);
        let session = self.session().await?;
        let mut child = session
            .raw_command(&line)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.lost(&e))?;
        let (Some(mut stdin), Some(mut err)) = (child.stdin().take(), child.stderr().take()) else {
            return Err(self.other("remote pipes are missing"));
        };
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| self.other(format!("cannot open {}: {e}", local.display())))?;
        let send = async {
            tokio::io::copy(&mut file, &mut stdin).await?;
            stdin.shutdown().await?;
            drop(stdin);
            Ok::<_, std::io::Error>(())
        };
        let mut stderr = Vec::new();
        let (sent, _) = tokio::join!(send, err.read_to_end(&mut stderr));
        let status = child.wait().await.map_err(|e| self.lost(&e))?;
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        let code = super::local::exit_code(status);
        if code != 0 || sent.is_err() {
            return Err(RemoteError::Agent {
                host: self.host.clone(),
                message: format!(
                    "installing cbk into {dir} failed (exit {code}{}): {stderr}",
                    sent.err().map(|e| format!(", {e}")).unwrap_or_default()
                ),
            });
        }
        Ok(())
    }
}

impl Drop for SshTransport {
    /// Prefer [`Transport::close`]. Without it, the master is told to exit here, off the async
    /// runtime's threads when there is one, and only then is its control folder removed.
    fn drop(&mut self) {
        let master = self.master.get_mut().take();
        let dir = self.control_dir.take();
        // Closed already (`close`, or never connected): nothing here blocks. A blocking task
        // per transport made hundreds of threads when an apply over hundreds of hosts ended.
        if master.is_none() {
            drop(dir);
            return;
        }
        #[cfg(test)]
        tests::BLOCKING_DROPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let finish = move || {
            drop(master);
            drop(dir);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(finish);
            }
            Err(_) => finish(),
        }
    }
}

/// Closes a master we no longer use, without blocking the runtime.
async fn dispose(old: Arc<Session>) {
    match Arc::try_unwrap(old) {
        Ok(s) => {
            let _ = s.close().await;
        }
        // Still used by a running child; its last owner drops it (openssh's Drop blocks
        // briefly on `ssh -O exit`), so let that happen off the runtime threads.
        Err(shared) => {
            tokio::task::spawn_blocking(move || drop(shared));
        }
    }
}

#[async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(&self, cmd: &Cmd) -> RemoteResult<Output> {
        let mut line = quote::command_line(cmd, &self.settings.sudo);
        if let Some(limit) = cmd.timeout {
            // The remote side enforces the limit itself: without a PTY, dropping the channel
            // would leave the command running on the node.
            let secs = limit.as_secs_f64().max(0.001);
            line = format!("timeout -k 5 {secs:.3} sh -c {}", quote::quote(&line));
        }
        let run = self.run_line(&line, cmd);
        let out = match cmd.timeout {
            None => run.await?,
            Some(limit) => tokio::time::timeout(limit + TIMEOUT_SLACK, run)
                .await
                .map_err(|_| RemoteError::Timeout {
                    host: self.host.clone(),
                    command: quote::describe(cmd),
                    after: limit,
                })??,
        };
        if let Some(limit) = cmd.timeout
            && out.code == EXIT_TIMED_OUT
        {
            return Err(RemoteError::Timeout {
                host: self.host.clone(),
                command: quote::describe(cmd),
                after: limit,
            });
        }
        super::not_found_check(&self.host, cmd, out)
    }

    async fn agent(&self, request: &serde_json::Value) -> RemoteResult<Box<dyn AgentSession>> {
        self.agent_paced(request, None).await
    }

    async fn agent_paced(
        &self,
        request: &serde_json::Value,
        rates: Option<super::Rates>,
    ) -> RemoteResult<Box<dyn AgentSession>> {
        let program = self.agent_program().await?;
        let shown = format!("{program} agent");
        let line = quote::join(self.settings.sudo.wrap(vec![program, "agent".to_string()]));
        let channel = self.channel().await?;
        let mut retried = false;
        let mut child = loop {
            let session = self.session().await?;
            let spawned = Session::to_raw_command(session.clone(), &line)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await;
            match spawned {
                Ok(c) => break c,
                Err(e) if connection_lost(&e) && !retried => {
                    self.recover(&session).await?;
                    retried = true;
                }
                Err(e) => return Err(self.lost(&e)),
            }
        };
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            child.stdin().take(),
            child.stdout().take(),
            child.stderr().take(),
        ) else {
            return Err(self.other("remote pipes are missing"));
        };
        let host = self.host.clone();
        let wait = Box::pin(async move {
            match child.wait().await {
                Ok(st) => Ok(super::local::exit_code(st)),
                Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(RemoteError::NotFound {
                        host,
                        command: shown,
                        stderr: e.to_string(),
                    })
                }
                Err(e) => Err(RemoteError::Disconnected {
                    host,
                    message: chain(&e),
                }),
            }
        });
        let stdout: Box<dyn AsyncRead + Send + Unpin> = Box::new(stdout);
        agent_client::start(
            Started {
                host: self.host.clone(),
                stdin: Box::new(stdin),
                stdout,
                stderr: Box::new(stderr),
                wait,
                guard: Some(Box::new(channel)),
                rates,
            },
            request,
        )
        .await
    }

    async fn close(&self) -> RemoteResult<()> {
        let old = self.master.lock().await.take();
        if let Some(old) = old {
            dispose(old).await;
        }
        Ok(())
    }

    fn connected(&self) -> bool {
        // A master being built (lock held) counts as connected.
        self.master.try_lock().map_or(true, |m| m.is_some())
    }

    fn idle_since(&self) -> Option<Instant> {
        let busy = self.permits.available_permits() < self.settings.max_sessions
            || self.master.try_lock().is_err();
        match busy {
            true => None,
            false => self.last_used.lock().ok().map(|t| *t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transports whose drop needed a blocking task.
    pub(super) static BLOCKING_DROPS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    /// Dropping transports that are closed (here: never connected) starts no blocking task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_closed_transports_starts_no_blocking_task() {
        let before = BLOCKING_DROPS.load(std::sync::atomic::Ordering::SeqCst);
        let transports: Vec<SshTransport> = (0..50)
            .map(|i| SshTransport::new(format!("h{i}"), SshSettings::new("127.0.0.1")).unwrap())
            .collect();
        drop(transports);
        assert_eq!(
            BLOCKING_DROPS.load(std::sync::atomic::Ordering::SeqCst),
            before
        );
    }

    /// Files hashed by [`hash_file`].
    pub(super) static HASHED: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_agent_binary_is_hashed_once_however_many_hosts_ask_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cbk");
        std::fs::write(&path, vec![7u8; 8 << 20]).unwrap();
        let before = HASHED.load(std::sync::atomic::Ordering::SeqCst);
        let asks: Vec<_> = (0..64)
            .map(|_| {
                let p = path.clone();
                tokio::spawn(async move { file_sha256(&p).await.unwrap() })
            })
            .collect();
        let mut sums = std::collections::BTreeSet::new();
        for a in asks {
            sums.insert(a.await.unwrap());
        }
        assert_eq!(sums.len(), 1);
        assert_eq!(HASHED.load(std::sync::atomic::Ordering::SeqCst) - before, 1);
    }

    #[test]
    fn settings_from_plan_apply_host_overrides_and_validate() {
        let conn = ConnectionConfig {
            user: Some("ops".into()),
            port: Some(2222),
            connect_timeout: Some("3s".parse().unwrap()),
            sudo_user: Some("cassandra".into()),
            jump_hosts: vec!["jump@bastion:22".into()],
            known_hosts: KnownHosts::AcceptNew,
            ..Default::default()
        };
        let host = HostSpec {
            name: "cass1".into(),
            address: Some("10.0.0.5".into()),
            user: Some("root".into()),
            ..Default::default()
        };
        let s = SshSettings::from_plan(&conn, &host).expect("valid");
        assert_eq!(s.destination, "10.0.0.5");
        assert_eq!(s.user.as_deref(), Some("root"));
        assert_eq!(s.port, Some(2222));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.known_hosts, KnownHosts::AcceptNew);
        assert!(s.sudo.enabled);
        assert_eq!(s.sudo.user.as_deref(), Some("cassandra"));

        let bad_host = HostSpec {
            name: "x".into(),
            address: Some("-oProxyCommand=touch /tmp/pwned".into()),
            ..Default::default()
        };
        let e = SshSettings::from_plan(&conn, &bad_host).expect_err("hostile address");
        assert!(e.to_string().starts_with("invalid host name"), "{e}");
        let bad_timeout = ConnectionConfig {
            connect_timeout: Some("0s".parse().unwrap()),
            ..Default::default()
        };
        assert!(SshSettings::from_plan(&bad_timeout, &host).is_err());
        let bad_agent = ConnectionConfig {
            agent_path: Some("/opt/../tmp/cbk".into()),
            ..Default::default()
        };
        assert!(SshSettings::from_plan(&bad_agent, &host).is_err());
    }

    #[test]
    fn platform_string_looks_like_uname() {
        let p = local_platform();
        assert!(p.contains(' '), "{p}");
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(p, "Linux x86_64");
        }
    }
}
