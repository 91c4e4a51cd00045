//! Talking to one node from a task: nodetool calls with typed errors, plan commands (stop,
//! start, cqlsh), and agent operations whose events feed progress bars and the journal.

use super::{Runtime, remote_err};
use crate::agent::protocol::{AgentEvent, AgentOp, InspectRequest, InspectResult, Op};
use crate::cassandra::nodetool::{self, Nodetool, NodetoolError};
use crate::exec::{TaskContext, TaskError};
use crate::plan::model::CommandSpec;
use crate::remote::{Cmd, Output};
use std::time::Duration;

/// Default cassandra.yaml location (Debian packages, Docker image).
pub const DEFAULT_CONFIG: &str = "/etc/cassandra/cassandra.yaml";

/// Runs `nodetool ARGS` on `host` and maps failures to typed errors.
pub async fn nodetool(rt: &Runtime, host: &str, args: &[String]) -> Result<String, NodetoolError> {
    let out = nodetool_raw(rt, host, args).await?;
    nodetool::check_output(host, out.code, &out.stdout, &out.stderr)
}

/// Runs `nodetool ARGS` and returns the raw output (for calls whose failure is an answer).
pub async fn nodetool_raw(
    rt: &Runtime,
    host: &str,
    args: &[String],
) -> Result<Output, NodetoolError> {
    let tool = Nodetool::from_config(&rt.run.plan.cassandra)?;
    let argv = tool.argv(args);
    let t = rt
        .transport(host)
        .await
        .map_err(|e| NodetoolError::Failed {
            host: host.to_string(),
            code: -1,
            message: e.message,
        })?;
    let cmd = Cmd::new(argv[0].clone())
        .args(argv[1..].iter().cloned())
        .idempotent();
    let cmd = if rt.run.plan.connection.sudo {
        cmd.sudo()
    } else {
        cmd
    };
    t.exec(&cmd).await.map_err(|e| NodetoolError::Failed {
        host: host.to_string(),
        code: -1,
        message: e.to_string(),
    })
}

/// Maps a nodetool error to a task error.
/// The node's tokens as `nodetool info -T` prints them.
pub async fn tokens(rt: &Runtime, host: &str) -> Result<Vec<String>, NodetoolError> {
    let out = nodetool(rt, host, &["info".into(), "-T".into()]).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim() == "Token")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.starts_with('('))
        .collect())
}

pub fn nt_err(e: NodetoolError) -> TaskError {
    TaskError::fatal(e.to_string())
}

/// Whether Cassandra answers nodetool on `host`.
pub async fn is_up(rt: &Runtime, host: &str) -> Result<bool, TaskError> {
    match nodetool(rt, host, &["version".to_string()]).await {
        Ok(_) => Ok(true),
        Err(NodetoolError::NotRunning { .. }) => Ok(false),
        Err(e) => Err(nt_err(e)),
    }
}

/// Runs a command from the plan (stop, start, cqlsh, custom steps) on `host`.
pub async fn run_plan_command(
    rt: &Runtime,
    host: &str,
    spec: &CommandSpec,
    extra: &[String],
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
) -> Result<Output, TaskError> {
    let t = rt.transport(host).await?;
    let mut cmd = plan_cmd(spec, extra)?;
    if rt.run.plan.connection.sudo {
        cmd = cmd.sudo();
    }
    if let Some(b) = stdin {
        cmd = cmd.stdin(b);
    }
    if let Some(d) = timeout {
        cmd = cmd.timeout(d);
    }
    t.exec(&cmd).await.map_err(remote_err)
}

/// The remote command for a plan's command, with `extra` arguments after it (a shell string
/// gets them as `"$@"`).
pub fn plan_cmd(spec: &CommandSpec, extra: &[String]) -> Result<Cmd, TaskError> {
    Ok(match spec {
        CommandSpec::Shell(s) if extra.is_empty() => Cmd::shell(s.clone()),
        CommandSpec::Shell(s) => Cmd::new("sh")
            .args(["-c".to_string(), format!("{s} \"$@\""), "cbk".to_string()])
            .args(extra.iter().cloned()),
        CommandSpec::Argv(v) if v.is_empty() => {
            return Err(TaskError::fatal("empty command in the plan"));
        }
        CommandSpec::Argv(v) => Cmd::new(v[0].clone())
            .args(v[1..].iter().cloned())
            .args(extra.iter().cloned()),
    })
}

/// Like [`run_plan_command`] but a non-zero exit is an error naming the command.
pub async fn run_checked(
    rt: &Runtime,
    host: &str,
    what: &str,
    spec: &CommandSpec,
    extra: &[String],
    stdin: Option<Vec<u8>>,
) -> Result<Output, TaskError> {
    let out = run_plan_command(rt, host, spec, extra, stdin, None).await?;
    if out.code != 0 {
        let err = out.stderr_str();
        let msg = if err.trim().is_empty() {
            out.stdout_str()
        } else {
            err
        };
        return Err(TaskError::fatal(format!(
            "{what} on {host} exited with {}: {}",
            out.code,
            msg.trim()
        )));
    }
    Ok(out)
}

/// Path of cassandra.yaml on the nodes.
pub fn config_path(rt: &Runtime) -> String {
    rt.run
        .plan
        .cassandra
        .config
        .clone()
        .unwrap_or_else(|| DEFAULT_CONFIG.to_string())
}

/// Runs an agent operation on `host` and returns its typed result: progress goes to the bars,
/// checkpoints to the journal (merged into one JSON object per task under `checkpoint_key`),
/// log lines to the operator.
pub async fn agent<O: AgentOp>(
    rt: &Runtime,
    host: &str,
    op: O,
    cx: Option<(&TaskContext, &str)>,
) -> Result<O::Response, TaskError> {
    let t = rt.transport(host).await?;
    let op: Op = op.into();
    let needs_store = op.needs_store();
    let name = op.name();
    let request = rt.agent_request(op);
    let mut session = t.agent(&request).await.map_err(remote_err)?;
    let mut result = None;
    let mut saved: serde_json::Map<String, serde_json::Value> = match cx {
        Some((cx, addr)) => cx
            .checkpoints
            .last(addr)
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default(),
        None => Default::default(),
    };
    // Store transfers can run for long (or keep failing with retryable errors): the first
    // Ctrl-C (or SIGTERM) stops them at once. Ending the session stops the agent (it exits
    // when its controller is gone) and the multipart checkpoints let the next apply resume.
    let cancel = cx
        .filter(|_| needs_store)
        .map(|(cx, _)| cx.cancel.clone())
        .unwrap_or_default();
    loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                drop(session);
                return Err(TaskError::transient(format!("on {host}: interrupted")));
            }
            next = session.next_event() => next,
        };
        let Some(ev) = next.map_err(remote_err)? else {
            break;
        };
        let Ok(ev) = serde_json::from_value::<AgentEvent>(ev) else {
            continue;
        };
        match ev {
            AgentEvent::Hello { .. } => {}
            AgentEvent::Total { bytes } => {
                if let Some((cx, _)) = cx {
                    cx.progress.add_total(Some(host), bytes);
                }
            }
            AgentEvent::Progress { bytes } => {
                if let Some((cx, _)) = cx {
                    cx.progress.advance(Some(host), bytes);
                }
            }
            AgentEvent::Checkpoint { data } => {
                if let (Some((cx, addr)), Some(obj)) = (cx, data.as_object()) {
                    merge_checkpoint(&mut saved, obj);
                    cx.checkpoints
                        .save(addr, &serde_json::Value::Object(saved.clone()))
                        .map_err(|e| TaskError::fatal(format!("cannot write the journal: {e}")))?;
                }
            }
            AgentEvent::Log { message } => {
                if let Some((cx, _)) = cx {
                    cx.progress.message(&format!("{host}: {message}"));
                }
            }
            AgentEvent::Result { data } => result = Some(Ok(data)),
            AgentEvent::Error { message, retryable } => {
                result = Some(Err(TaskError {
                    message: format!("on {host}: {message}"),
                    retryable,
                }))
            }
        }
    }
    let code = session.finish().await.map_err(remote_err)?;
    let data = result.unwrap_or_else(|| {
        Err(TaskError::transient(format!(
            "the agent on {host} ended without a result (exit {code})"
        )))
    })?;
    serde_json::from_value(data)
        .map_err(|e| TaskError::fatal(format!("bad {name} result from {host}: {e}")))
}

/// A typed result as an outcome's `data` (what the journal keeps of it).
pub fn data<T: serde::Serialize>(result: &T) -> serde_json::Value {
    serde_json::to_value(result).unwrap_or_default()
}

/// Multipart checkpoints are kept per object key: `{"multipart": {KEY: state}}`.
fn merge_checkpoint(
    saved: &mut serde_json::Map<String, serde_json::Value>,
    new: &serde_json::Map<String, serde_json::Value>,
) {
    if let Some(state) = new.get("multipart") {
        let key = state
            .get("key")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let entry = saved
            .entry("multipart")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.insert(key, state.clone());
        }
    }
}

/// `inspect` on the node.
pub async fn inspect(
    rt: &Runtime,
    host: &str,
    snapshot_tag: Option<&str>,
) -> Result<InspectResult, TaskError> {
    let op = InspectRequest {
        config: config_path(rt),
        data_dirs: rt.host_spec(host).data_dirs,
        snapshot_tag: snapshot_tag.map(str::to_owned),
        snapshot_cover: None,
    };
    agent(rt, host, op, None).await
}
