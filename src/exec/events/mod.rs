//! The JSON-lines events of `cbk apply --progress json`: one typed enum and one stream
//! (stderr), so that everything an apply prints can be read by a log shipper or `jq`
//! (schemas/progress-event.schema.json, docs/monitoring.md).
//!
//! Lines are written in the order they happen, with one exception that keeps `run_started`
//! and `plan` the first lines of a run: once [`hold`] was called, other events (such as
//! "resuming run", a superseded run, log records) wait until `plan` is written and follow it.
//! [`release`] writes them when the apply ends without a run (a refusal, an error).

mod log;

pub use log::JsonLog;

use crate::exec::journal::RunStatus;
use crate::exec::walker::TaskReport;
use crate::graph::run::{Action, PlannedRun, Summary};
use crate::plan::model::PlanKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

/// One event (`event` names the variant; [`emit`] adds `at`).
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The run took the lock and opened its journal.
    RunStarted {
        /// The plan file as given on the command line.
        plan: &'a str,
        /// The run's journal: `00000003` (local state) or `runs/00000003` (remote state).
        run: &'a str,
        now: &'a str,
        /// Backup name (backup plans) or resolved source (restore plans).
        backup: Option<&'a str>,
        kind: PlanKind,
        tasks: usize,
        resumed: bool,
    },
    /// The tasks of the run (what the human view lists before it starts).
    Plan {
        tasks: Vec<PlanTask<'a>>,
        summary: &'a Summary,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        warnings: &'a [String],
    },
    TaskStarted {
        address: &'a str,
        host: Option<&'a str>,
    },
    TaskFinished {
        address: &'a str,
        host: Option<&'a str>,
        status: &'a str,
        /// Since its `task_started` (absent for tasks settled without running).
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
    /// Bytes moved per host (`controller` for the controller).
    Bytes {
        host: &'a str,
        done: u64,
        total: u64,
    },
    /// A note: a command's output line, a node's log line, resuming a run.
    Message { text: &'a str },
    /// Something to look at that did not stop the run.
    Warning {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fields: Option<&'a serde_json::Map<String, serde_json::Value>>,
    },
    /// A task failed (`address`), an error log record (`target`), or the apply ended with an
    /// error (`exit_code`: then it is the last event).
    Error {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        address: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fields: Option<&'a serde_json::Map<String, serde_json::Value>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<u8>,
    },
    /// A log record below warning (`--log info`).
    Log {
        level: &'a str,
        target: &'a str,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        fields: Option<&'a serde_json::Map<String, serde_json::Value>>,
    },
    /// The end summary: the last event of a run.
    RunFinished {
        run: &'a str,
        status: RunStatus,
        resumed: bool,
        /// Tasks per final status (every status present).
        counts: BTreeMap<&'static str, usize>,
        /// Every task, in plan order, as `cbk state --json` shows them.
        tasks: &'a [TaskReport],
        duration_ms: u64,
        exit_code: u8,
    },
    /// A saved plan that already finished ok: nothing ran.
    AlreadyApplied {
        run: &'a str,
        text: &'a str,
        exit_code: u8,
    },
}

/// A task as the `plan` event lists it.
#[derive(Debug, Serialize)]
pub struct PlanTask<'a> {
    address: &'a str,
    kind: &'static str,
    step: &'a str,
    host: Option<&'a str>,
    action: Action,
    disruptive: bool,
    after: &'a [String],
}

impl<'a> Event<'a> {
    /// The `plan` event of a planned run.
    pub fn plan(run: &'a PlannedRun) -> Event<'a> {
        Event::Plan {
            tasks: run
                .tasks
                .iter()
                .map(|t| PlanTask {
                    address: &t.address,
                    kind: t.kind().as_str(),
                    step: &t.step,
                    host: t.host.as_deref(),
                    action: t.action,
                    disruptive: t.disruptive,
                    after: &t.after,
                })
                .collect(),
            summary: &run.summary,
            warnings: &run.warnings,
        }
    }
}

/// The final task statuses counted by `run_finished` (and the human summary).
pub const TASK_STATUSES: [&str; 7] = [
    "applied",
    "satisfied",
    "already_done",
    "failed",
    "skipped",
    "not_started",
    "interrupted",
];

/// A run's name in events and messages: its journal without `.jsonl` (or a trailing `/`).
pub fn run_id(journal_name: &str) -> &str {
    journal_name
        .trim_end_matches(".jsonl")
        .trim_end_matches('/')
}

/// Lines waiting for `run_started` (`None`: not holding).
static HELD: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// From now on, events other than `run_started` wait until `plan` is written.
pub fn hold() {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.get_or_insert_with(Vec::new);
}

/// Writes the waiting events (if any) and stops holding.
pub fn release() {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lines) = held.take() {
        write_lines(&lines);
    }
}

/// Writes one event as a JSON line on stderr, with `at` (RFC 3339, UTC).
pub fn emit(event: &Event<'_>) {
    let Ok(mut v) = serde_json::to_value(event) else {
        return;
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("at".into(), super::journal::now().into());
    }
    let line = v.to_string();
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    match (held.as_mut(), event) {
        // The run's first two lines, then what waited for them.
        (Some(_), Event::RunStarted { .. }) | (None, _) => write_lines(&[line]),
        (Some(waiting), Event::Plan { .. }) => {
            let mut lines = vec![line];
            lines.append(waiting);
            *held = None;
            write_lines(&lines);
        }
        (Some(waiting), _) => waiting.push(line),
    }
}

fn write_lines(lines: &[String]) {
    let mut err = std::io::stderr().lock();
    for l in lines {
        let _ = writeln!(err, "{l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_drop_the_journal_suffix() {
        assert_eq!(run_id("00000003.jsonl"), "00000003");
        assert_eq!(run_id("runs/00000003/"), "runs/00000003");
    }

    #[test]
    fn events_are_tagged_and_skip_absent_fields() {
        let v = serde_json::to_value(Event::Warning {
            text: "retrying",
            address: Some("upload[a/b]"),
            target: None,
            fields: None,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "warning", "text": "retrying", "address": "upload[a/b]"})
        );
        let v = serde_json::to_value(Event::TaskStarted {
            address: "catalog",
            host: None,
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "task_started", "address": "catalog", "host": null})
        );
    }
}
