//! `exec` tasks: a plan's own commands (drain, notify, disable autocompaction, ...) on a host
//! or on the controller.

use super::Runtime;
use super::node;
use crate::exec::{Check, Outcome, TaskContext, TaskError};
use crate::graph::run::PlannedTask;
use crate::plan::model::CommandSpec;

fn command(task: &PlannedTask) -> Result<CommandSpec, TaskError> {
    let v = task
        .params
        .get("run")
        .cloned()
        .ok_or_else(|| TaskError::fatal(format!("{} has no command", task.address)))?;
    serde_json::from_value(v)
        .map_err(|e| TaskError::fatal(format!("{}: bad command: {e}", task.address)))
}

/// An `exec` task is satisfied when its `creates` path exists (like Ansible's `creates`).
pub async fn check(
    rt: &Runtime,
    task: &PlannedTask,
    _cx: &TaskContext,
) -> Result<Check, TaskError> {
    let Some(path) = task.params.get("creates").and_then(|v| v.as_str()) else {
        return Ok(Check::Needed);
    };
    let test = CommandSpec::Argv(vec!["test".into(), "-e".into(), path.into()]);
    let code = match &task.host {
        Some(h) => {
            node::run_plan_command(rt, h, &test, &[], None, None)
                .await?
                .code
        }
        None => i32::from(!std::path::Path::new(path).exists()),
    };
    Ok(if code == 0 {
        Check::Satisfied(format!("{path} exists"))
    } else {
        Check::Needed
    })
}

/// Runs the command; a non-zero exit fails the task.
pub async fn apply(
    rt: &Runtime,
    task: &PlannedTask,
    _cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let spec = command(task)?;
    let out = match &task.host {
        Some(h) => node::run_checked(rt, h, &task.address, &spec, &[], None).await?,
        None => {
            let t = crate::remote::local::LocalTransport::new(
                "controller",
                crate::remote::quote::Sudo::default(),
            );
            let cmd = match &spec {
                CommandSpec::Shell(s) => crate::remote::Cmd::shell(s.clone()),
                CommandSpec::Argv(v) if !v.is_empty() => {
                    crate::remote::Cmd::new(v[0].clone()).args(v[1..].iter().cloned())
                }
                CommandSpec::Argv(_) => return Err(TaskError::fatal("empty command")),
            };
            let out = crate::remote::Transport::exec(&t, &cmd)
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
            out
        }
    };
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
