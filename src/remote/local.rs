//! Transport that runs commands and the agent on the machine cbk itself runs on.
//!
//! Commands run as `sh -c LINE` with the same quoted command line the SSH transport sends, so a
//! plan behaves the same locally and remotely. Each command gets its own process group, which is
//! killed as a whole on timeout.

use super::agent_client::{self, Started};
use super::quote::{self, Sudo};
use super::{AgentSession, Cmd, Output, RemoteError, RemoteResult, Transport};
use async_trait::async_trait;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs things on this machine.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    host: String,
    sudo: Sudo,
    agent_path: Option<PathBuf>,
}

impl LocalTransport {
    /// A local transport named `host` (the plan's host name), with the plan's sudo settings.
    pub fn new(host: impl Into<String>, sudo: Sudo) -> Self {
        LocalTransport {
            host: host.into(),
            sudo,
            agent_path: None,
        }
    }

    /// Runs this cbk binary as the agent instead of the current executable.
    pub fn with_agent_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.agent_path = Some(path.into());
        self
    }

    fn agent_program(&self) -> RemoteResult<PathBuf> {
        match &self.agent_path {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe().map_err(|e| RemoteError::Other {
                host: self.host.clone(),
                message: format!("cannot find the cbk executable: {e}"),
            }),
        }
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> RemoteError {
        RemoteError::Other {
            host: self.host.clone(),
            message: format!("{what}: {e}"),
        }
    }
}

/// Kills a whole process group (the command and everything it started).
fn kill_group(pgid: u32) {
    // `kill` is a POSIX utility; using it avoids unsafe libc calls in this crate.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Exit code of a finished process: its code, or 128 + signal like a shell reports it.
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(&self, cmd: &Cmd) -> RemoteResult<Output> {
        let line = quote::command_line(cmd, &self.sudo);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.io_error("cannot start sh", e))?;
        let pgid = child.id();
        if let (Some(bytes), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // The command may exit without reading everything; that is its business.
                let _ = stdin.write_all(&bytes).await;
                let _ = stdin.shutdown().await;
            });
        }
        let run = child.wait_with_output();
        let out = match cmd.timeout {
            None => run.await,
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(r) => r,
                Err(_) => {
                    if let Some(pgid) = pgid {
                        kill_group(pgid);
                    }
                    return Err(RemoteError::Timeout {
                        host: self.host.clone(),
                        command: quote::describe(cmd),
                        after: limit,
                    });
                }
            },
        }
        .map_err(|e| self.io_error("waiting for the command", e))?;
        super::not_found_check(
            &self.host,
            cmd,
            Output {
                code: exit_code(out.status),
                stdout: out.stdout,
                stderr: out.stderr,
            },
        )
    }

    async fn agent(&self, request: &serde_json::Value) -> RemoteResult<Box<dyn AgentSession>> {
        self.agent_paced(request, None).await
    }

    async fn agent_paced(
        &self,
        request: &serde_json::Value,
        rates: Option<super::Rates>,
    ) -> RemoteResult<Box<dyn AgentSession>> {
        let program = self.agent_program()?;
        let words = self.sudo.wrap(vec![
            program.to_string_lossy().into_owned(),
            "agent".to_string(),
        ]);
        let mut child = Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.io_error(&format!("cannot start {}", words[0]), e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(self.io_error("agent pipes", std::io::Error::other("missing")));
        };
        let host = self.host.clone();
        let wait = Box::pin(async move {
            child
                .wait()
                .await
                .map(exit_code)
                .map_err(|e| RemoteError::Other {
                    host,
                    message: format!("waiting for the agent: {e}"),
                })
        });
        agent_client::start(
            Started {
                host: self.host.clone(),
                stdin: Box::new(stdin),
                stdout: Box::new(stdout),
                stderr: Box::new(stderr),
                wait,
                guard: None,
                rates,
            },
            request,
        )
        .await
    }

    async fn close(&self) -> RemoteResult<()> {
        Ok(())
    }
}
