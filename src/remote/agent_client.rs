//! The controller's side of the agent protocol, shared by both transports: check the `hello`
//! handshake, send the request, then hand out JSON-line events until the agent exits.

use super::{AgentSession, RemoteError, RemoteResult};
use crate::agent::protocol::{AgentControl, PROTOCOL_VERSION};
use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// Exit code of an agent whose operation failed (it has sent an `error` event).
pub const AGENT_EXIT_OP_ERROR: i32 = 3;

/// How long a starting agent may take to say hello (a cold start of a big binary over SSH on
/// a busy node takes seconds, not minutes).
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Longest stderr kept for error messages.
const STDERR_KEEP: usize = 8 * 1024;

/// A started agent process, as the transports hand it over.
pub(crate) struct Started {
    pub host: String,
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    pub stderr: Box<dyn AsyncRead + Send + Unpin>,
    /// Waits for the process and yields its exit code.
    pub wait: BoxFuture<'static, RemoteResult<i32>>,
    /// Held while the agent runs (e.g. a per-host session permit).
    pub guard: Option<Box<dyn Send>>,
    /// New bandwidths to forward to the agent while it runs.
    pub rates: Option<super::Rates>,
}

/// Sends `request`, reads and checks `hello`, and returns the session.
pub(crate) async fn start(
    started: Started,
    request: &serde_json::Value,
) -> RemoteResult<Box<dyn AgentSession>> {
    let Started {
        host,
        mut stdin,
        stdout,
        mut stderr,
        wait,
        guard,
        rates,
    } = started;
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr)
            .take(STDERR_KEEP as u64)
            .read_to_end(&mut buf)
            .await;
        // Keep draining so the agent never blocks on a full stderr pipe.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        buf
    });
    let mut session = LineSession {
        host: host.clone(),
        lines: BufReader::new(stdout),
        stderr: Some(stderr_task),
        wait: Some(wait),
        _guard: guard,
    };
    // The agent says hello before reading anything: check it first, so a mismatched binary
    // never receives the request (and the credentials in it).
    let first = match tokio::time::timeout(HELLO_TIMEOUT, session.read_event()).await {
        Ok(Ok(Some(ev))) => ev,
        Ok(Ok(None)) => return Err(session.died("agent ended before saying hello").await),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(RemoteError::Agent {
                host,
                message: format!("no hello from the agent within {HELLO_TIMEOUT:?}"),
            });
        }
    };
    check_hello(&host, &first)?;
    let mut body = serde_json::to_vec(request).map_err(|e| RemoteError::Agent {
        host: host.clone(),
        message: format!("cannot encode the request: {e}"),
    })?;
    body.push(b'\n');
    // Control lines only to an agent that reads them (an older one reads stdin to its end).
    let rates = rates.filter(|_| first.get("controls").and_then(|v| v.as_bool()) == Some(true));
    let write = async {
        stdin.write_all(&body).await?;
        match rates {
            Some(rates) => {
                stdin.flush().await?;
                tokio::spawn(forward_rates(stdin, rates));
                Ok(())
            }
            None => stdin.shutdown().await,
        }
    }
    .await;
    drop(body);
    if let Err(e) = write {
        // The agent died early; its exit code and stderr say why.
        return Err(session
            .died(&format!("cannot send the request to the agent: {e}"))
            .await);
    }
    Ok(Box::new(session))
}

/// Sends each new rate as a control line until the lease ends (its sender is dropped) or the
/// agent stops reading; then closes stdin.
async fn forward_rates(mut stdin: Box<dyn AsyncWrite + Send + Unpin>, mut rates: super::Rates) {
    while rates.changed().await.is_ok() {
        let control = AgentControl::Bandwidth {
            bytes_per_second: *rates.borrow_and_update(),
        };
        let Ok(mut line) = serde_json::to_vec(&control) else {
            break;
        };
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Checks the first event: `hello` with our protocol version.
fn check_hello(host: &str, ev: &serde_json::Value) -> RemoteResult<()> {
    if ev.get("event").and_then(|v| v.as_str()) != Some("hello") {
        return Err(RemoteError::Agent {
            host: host.to_string(),
            message: format!("expected a `hello` event first, got {ev}"),
        });
    }
    let protocol = ev.get("protocol").and_then(|v| v.as_u64());
    if protocol != Some(u64::from(PROTOCOL_VERSION)) {
        let version = ev.get("version").and_then(|v| v.as_str()).unwrap_or("?");
        return Err(RemoteError::Agent {
            host: host.to_string(),
            message: format!(
                "the agent (cbk {version}) speaks protocol {}, this cbk ({}) speaks {PROTOCOL_VERSION}; \
                 install the same cbk version on the node or point connection.agent_path at it",
                protocol.map_or_else(|| "?".to_string(), |p| p.to_string()),
                crate::VERSION
            ),
        });
    }
    Ok(())
}

struct LineSession {
    host: String,
    lines: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    wait: Option<BoxFuture<'static, RemoteResult<i32>>>,
    _guard: Option<Box<dyn Send>>,
}

impl LineSession {
    async fn read_event(&mut self) -> RemoteResult<Option<serde_json::Value>> {
        loop {
            let mut line = String::new();
            let n =
                self.lines
                    .read_line(&mut line)
                    .await
                    .map_err(|e| RemoteError::Disconnected {
                        host: self.host.clone(),
                        message: format!("reading agent events: {e}"),
                    })?;
            if n == 0 {
                return Ok(None);
            }
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            return serde_json::from_str(text).map(Some).map_err(|e| {
                let shown: String = text.chars().take(200).collect();
                RemoteError::Agent {
                    host: self.host.clone(),
                    message: format!("unreadable event ({e}): {shown}"),
                }
            });
        }
    }

    /// Waits for the process; returns its exit code and what it wrote on stderr.
    async fn wait_exit(&mut self) -> (RemoteResult<i32>, String) {
        // Drain what is left so the agent never blocks writing events nobody reads.
        let _ = tokio::io::copy(&mut self.lines, &mut tokio::io::sink()).await;
        let code = match self.wait.take() {
            Some(w) => w.await,
            None => Err(RemoteError::Agent {
                host: self.host.clone(),
                message: "agent already finished".into(),
            }),
        };
        let stderr = match self.stderr.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => Vec::new(),
        };
        (code, String::from_utf8_lossy(&stderr).trim().to_string())
    }

    /// An error for an agent that stopped talking: with its exit code and stderr.
    async fn died(&mut self, what: &str) -> RemoteError {
        let (code, stderr) = self.wait_exit().await;
        let code = match code {
            Ok(c) => c.to_string(),
            Err(e) => return e,
        };
        RemoteError::Agent {
            host: self.host.clone(),
            message: format!("{what} (exit code {code}){}", stderr_suffix(&stderr)),
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

#[async_trait]
impl AgentSession for LineSession {
    async fn next_event(&mut self) -> RemoteResult<Option<serde_json::Value>> {
        self.read_event().await
    }

    async fn finish(mut self: Box<Self>) -> RemoteResult<i32> {
        let (code, stderr) = self.wait_exit().await;
        let code = code?;
        if code == 0 || code == AGENT_EXIT_OP_ERROR {
            return Ok(code);
        }
        Err(RemoteError::Agent {
            host: self.host.clone(),
            message: format!("agent exited with code {code}{}", stderr_suffix(&stderr)),
        })
    }
}
