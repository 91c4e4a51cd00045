//! `exec` tasks: a plan's own commands (drain, notify, disable autocompaction, ...) on a host
//! or on the controller. One runner for both places: `creates`, `check` and the step's `sudo`
//! mean the same wherever the step runs.
//!
//! Parameters (as the compiler writes them):
//! - `run`: the command, a string run by the shell or an argv list;
//! - `creates` (optional): a path; when it exists (where the step runs) the task is satisfied;
//! - `check` (optional): a command run where the step runs; exit status 0 means satisfied;
//! - `sudo` (optional, host steps): overrides `[connection] sudo` for this step.
//!
//! Without `creates`/`check` the command always runs, so it must be idempotent itself. On the
//! controller the command may print `::cbk-checkpoint {JSON}` lines: each is saved durably in
//! the journal, and a resumed command finds the last one in `CBK_CHECKPOINT`.

use super::Runtime;
use super::node;
use crate::exec::{Check, Outcome, TaskContext, TaskError};
use crate::graph::run::PlannedTask;
use crate::graph::spec::ExecParams;
use crate::plan::model::CommandSpec;
use crate::remote::Cmd;
use crate::remote::quote::Sudo;
use tokio::io::AsyncBufReadExt;

/// Prefix of a stdout line by which a controller `exec` command saves a checkpoint.
pub const CHECKPOINT_PREFIX: &str = "::cbk-checkpoint ";

/// `command` (the step's `run` or `check`), refused when it is an empty list.
fn non_empty<'a>(
    task: &PlannedTask,
    key: &str,
    command: Option<&'a CommandSpec>,
) -> Result<Option<&'a CommandSpec>, TaskError> {
    match command {
        Some(CommandSpec::Argv(a)) if a.is_empty() => Err(TaskError::fatal(format!(
            "{}: `{key}` is an empty command",
            task.address
        ))),
        other => Ok(other),
    }
}

/// Whether the step runs through sudo on its host: its own `sudo`, else `[connection] sudo`.
fn sudo(rt: &Runtime, p: &ExecParams) -> bool {
    p.sudo.unwrap_or(rt.run.plan.connection.sudo)
}

/// The remote command for `spec`, through `sudo -n [-u sudo_user] --` when the step says so,
/// whatever `[connection] sudo` is (a step's `sudo = true` elevates only that step).
fn host_cmd(rt: &Runtime, p: &ExecParams, spec: &CommandSpec) -> Result<Cmd, TaskError> {
    if !sudo(rt, p) {
        return node::plan_cmd(spec, &[]);
    }
    let words = match spec {
        CommandSpec::Shell(s) => vec!["sh".to_string(), "-c".to_string(), s.clone()],
        CommandSpec::Argv(v) => v.clone(),
    };
    let user = rt.run.plan.connection.sudo_user.as_deref();
    let words = Sudo::from_plan(true, user)
        .map_err(super::remote_err)?
        .wrap(words);
    Ok(Cmd::new(words[0].clone()).args(words[1..].iter().cloned()))
}

/// A controller process for `spec`, in a process group of its own (Ctrl-C stops cbk, which lets
/// the command finish), with `CBK_TASK` set.
fn local_cmd(task: &PlannedTask, spec: &CommandSpec) -> tokio::process::Command {
    let mut cmd = match spec {
        CommandSpec::Shell(s) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
        CommandSpec::Argv(v) => {
            let mut c = tokio::process::Command::new(&v[0]);
            c.args(&v[1..]);
            c
        }
    };
    cmd.stdin(std::process::Stdio::null())
        .env("CBK_TASK", &task.address)
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// Whether `spec` exits 0 on `host`, run as the step runs (its `sudo`).
async fn passes_on_host(
    rt: &Runtime,
    p: &ExecParams,
    host: &str,
    spec: &CommandSpec,
) -> Result<bool, TaskError> {
    let t = rt.transport(host).await?;
    let out = t
        .exec(&host_cmd(rt, p, spec)?)
        .await
        .map_err(super::remote_err)?;
    Ok(out.code == 0)
}

/// Satisfied when `creates` exists or `check` exits 0, where the step runs.
pub async fn check(
    rt: &Runtime,
    task: &PlannedTask,
    p: &ExecParams,
    _cx: &TaskContext,
) -> Result<Check, TaskError> {
    if let Some(path) = p.creates.as_deref() {
        let exists = match &task.host {
            Some(h) => {
                let test = CommandSpec::Argv(vec!["test".into(), "-e".into(), path.into()]);
                passes_on_host(rt, p, h, &test).await?
            }
            None => std::path::Path::new(path).exists(),
        };
        if exists {
            return Ok(Check::Satisfied(format!("{path} exists")));
        }
    }
    if let Some(spec) = non_empty(task, "check", p.check.as_ref())? {
        let passed = match &task.host {
            Some(h) => passes_on_host(rt, p, h, spec).await?,
            None => local_cmd(task, spec)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await
                .map_err(|e| TaskError::fatal(format!("cannot run check: {e}")))?
                .success(),
        };
        if passed {
            return Ok(Check::Satisfied("check passed".into()));
        }
    }
    Ok(Check::Needed)
}

/// Runs the command; a non-zero exit fails the task.
pub async fn apply(
    rt: &Runtime,
    task: &PlannedTask,
    p: &ExecParams,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let spec = non_empty(task, "run", p.run.as_ref())?
        .ok_or_else(|| TaskError::fatal(format!("{} has no command", task.address)))?;
    let Some(h) = &task.host else {
        return apply_on_controller(task, spec, cx).await;
    };
    let t = rt.transport(h).await?;
    let out = t
        .exec(&host_cmd(rt, p, spec)?)
        .await
        .map_err(super::remote_err)?;
    if out.code != 0 {
        return Err(TaskError::fatal(format!(
            "{} exited with {}: {}",
            task.address,
            out.code,
            out.stderr_str().trim()
        )));
    }
    let last = out
        .stdout_str()
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(Outcome {
        summary: if last.is_empty() { "done".into() } else { last },
        data: serde_json::Value::Null,
    })
}

/// Runs a controller step, streaming its output: checkpoint lines go to the journal, others to
/// the progress display; the last lines of stderr explain a failure.
async fn apply_on_controller(
    task: &PlannedTask,
    spec: &CommandSpec,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let mut cmd = local_cmd(task, spec);
    if let Some(cp) = cx.checkpoints.last(&task.address) {
        cmd.env("CBK_CHECKPOINT", cp.to_string());
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| TaskError::fatal(format!("cannot start command: {e}")))?;
    let stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        let mut tail = Vec::new();
        if let Some(s) = stderr {
            let mut lines = tokio::io::BufReader::new(s).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                tail.push(l);
                if tail.len() > 5 {
                    tail.remove(0);
                }
            }
        }
        tail
    });
    let mut checkpoints = 0u32;
    if let Some(out) = child.stdout.take() {
        let mut lines = tokio::io::BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(json) = line.strip_prefix(CHECKPOINT_PREFIX) {
                let data: serde_json::Value = serde_json::from_str(json).map_err(|e| {
                    TaskError::fatal(format!("bad checkpoint line from the command: {e}"))
                })?;
                cx.checkpoints
                    .save(&task.address, &data)
                    .map_err(|e| TaskError::fatal(format!("cannot journal a checkpoint: {e}")))?;
                checkpoints += 1;
            } else {
                cx.progress.message(&format!("{}: {line}", task.address));
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| TaskError::fatal(format!("command did not finish: {e}")))?;
    let tail = err_task.await.unwrap_or_default();
    if status.success() {
        return Ok(Outcome {
            summary: match checkpoints {
                0 => "command succeeded".into(),
                n => format!("command succeeded ({n} checkpoints)"),
            },
            data: serde_json::Value::Null,
        });
    }
    let code = status
        .code()
        .map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
    let tail = tail.join(" | ");
    Err(TaskError::fatal(if tail.is_empty() {
        format!("command exited with {code}")
    } else {
        format!("command exited with {code}: {tail}")
    }))
}
