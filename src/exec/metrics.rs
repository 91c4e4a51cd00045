//! Prometheus textfile-collector metrics for `cbk apply --metrics-file`, so a scheduled apply
//! (cron, systemd timer) can be alerted on: last success, duration, bytes, per-host status.
//!
//! [`render`] is a pure function of the planned run and its report; [`write_metrics_file`]
//! carries the last-success time over from the previous file and replaces the file atomically
//! (temporary file in the same folder, then rename), as node_exporter's textfile collector
//! requires. One file per plan: the collector merges files, not series inside one file.

use super::{RunReport, RunStatus};
use crate::graph::run::{PlannedRun, TaskKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

/// Every task status name, so each series exists (as 0) even when no task had that status.
const STATUSES: [&str; 7] = [
    "applied",
    "satisfied",
    "already_done",
    "failed",
    "skipped",
    "not_started",
    "interrupted",
];

const LAST_SUCCESS: &str = "cbk_apply_last_success_timestamp_seconds";

/// Bytes moved by the run, read from the task summaries of the data tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes {
    /// Bytes sent to the store by `upload` / `upload_incremental` tasks.
    pub sent: Option<u64>,
    /// Bytes staged on nodes by `fetch` tasks.
    pub staged: Option<u64>,
}

/// Everything the metrics describe, gathered before rendering.
#[derive(Debug, Clone)]
pub struct MetricsInput<'a> {
    pub run: &'a PlannedRun,
    pub report: &'a RunReport,
    pub elapsed: Duration,
    /// When the apply ended.
    pub now: jiff::Timestamp,
    /// `cbk_apply_last_success_timestamp_seconds` of the previous file (same labels), if any.
    pub previous_success: Option<f64>,
}

/// The `plan` label: the source file's stem (`plans/nightly-backup.toml` -> `nightly-backup`).
pub fn plan_label(run: &PlannedRun) -> String {
    Path::new(&run.source.path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.source.path.clone())
}

fn kind_label(run: &PlannedRun) -> String {
    serde_json::to_value(run.plan.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Escapes a label value per the text exposition format (backslash, quote, newline).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The number right after `marker`'s digits: `"(123 bytes sent)"` with `" bytes sent"` -> 123.
fn number_before(summary: &str, marker: &str) -> Option<u64> {
    let end = summary.find(marker)?;
    let head = &summary[..end];
    let start = head
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    head[start..].parse().ok()
}

/// Bytes moved, from the summaries of `upload`, `upload_incremental` and `fetch` tasks that
/// ran in this apply (tasks done by an earlier attempt are not counted again).
pub fn bytes_moved(run: &PlannedRun, report: &RunReport) -> Bytes {
    let kinds: BTreeMap<&str, TaskKind> = run
        .tasks
        .iter()
        .map(|t| (t.address.as_str(), t.kind()))
        .collect();
    let mut bytes = Bytes::default();
    for t in &report.tasks {
        let super::TaskStatus::Applied { summary } = &t.status else {
            continue;
        };
        match kinds.get(t.address.as_str()) {
            Some(TaskKind::Upload | TaskKind::UploadIncremental) => {
                if let Some(n) = number_before(summary, " bytes sent)") {
                    *bytes.sent.get_or_insert(0) += n;
                }
            }
            Some(TaskKind::Fetch) => {
                if let Some(n) = number_before(summary, " bytes) staged") {
                    *bytes.staged.get_or_insert(0) += n;
                }
            }
            _ => {}
        }
    }
    bytes
}

pub fn seconds(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// Appends one gauge (HELP, TYPE and a line per `(labels, value)`) in the text format.
pub fn write_gauge(out: &mut String, name: &str, help: &str, series: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in series {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// Renders the metrics in the Prometheus text exposition format (textfile collector).
pub fn render(input: &MetricsInput<'_>) -> String {
    let run = input.run;
    let report = input.report;
    let base = format!(
        "plan=\"{}\",kind=\"{}\",cluster=\"{}\"",
        escape(&plan_label(run)),
        escape(&kind_label(run)),
        escape(&run.plan.cluster.name)
    );
    let now = seconds(input.now);
    let ok = report.status == RunStatus::Ok;
    let last_success = if ok {
        Some(now)
    } else {
        input.previous_success
    };

    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, series: &[(String, f64)]| {
        write_gauge(&mut out, name, help, series);
    };
    gauge(
        "cbk_apply_last_run_timestamp_seconds",
        "Unix time the last cbk apply of this plan ended.",
        &[(base.clone(), now)],
    );
    if let Some(t) = last_success {
        gauge(
            LAST_SUCCESS,
            "Unix time the last successful cbk apply of this plan ended.",
            &[(base.clone(), t)],
        );
    }
    gauge(
        "cbk_apply_last_run_success",
        "1 if the last apply of this plan finished ok, 0 otherwise.",
        &[(base.clone(), if ok { 1.0 } else { 0.0 })],
    );
    gauge(
        "cbk_apply_duration_seconds",
        "Wall-clock duration of the last apply.",
        &[(base.clone(), input.elapsed.as_secs_f64())],
    );
    let tasks: Vec<(String, f64)> = STATUSES
        .iter()
        .map(|s| (format!("{base},status=\"{s}\""), report.count(s) as f64))
        .collect();
    gauge(
        "cbk_apply_tasks",
        "Tasks of the last apply by final status.",
        &tasks,
    );
    let bytes = bytes_moved(run, report);
    let mut moved = Vec::new();
    if let Some(n) = bytes.sent {
        moved.push((format!("{base},direction=\"sent\""), n as f64));
    }
    if let Some(n) = bytes.staged {
        moved.push((format!("{base},direction=\"staged\""), n as f64));
    }
    if !moved.is_empty() {
        gauge(
            "cbk_apply_bytes",
            "Bytes moved by the last apply: sent to the store (backup) or staged on nodes (restore).",
            &moved,
        );
    }
    let mut hosts: BTreeMap<&str, bool> = BTreeMap::new();
    for t in &report.tasks {
        if let Some(h) = &t.host {
            *hosts.entry(h.as_str()).or_insert(true) &= t.status.is_ok();
        }
    }
    let per_host: Vec<(String, f64)> = hosts
        .iter()
        .map(|(h, ok)| {
            (
                format!("{base},host=\"{}\"", escape(h)),
                if *ok { 1.0 } else { 0.0 },
            )
        })
        .collect();
    if !per_host.is_empty() {
        gauge(
            "cbk_apply_host_ok",
            "1 if every task of the last apply on this host ended ok, 0 otherwise.",
            &per_host,
        );
    }
    out
}

/// The last-success time recorded for these labels in a previous metrics file.
pub fn previous_success(text: &str, run: &PlannedRun) -> Option<f64> {
    let plan = format!("plan=\"{}\"", escape(&plan_label(run)));
    text.lines()
        .filter(|l| l.starts_with(LAST_SUCCESS) && l.contains(&plan))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .next_back()
}

/// Writes the metrics of an apply to `path` atomically, keeping the previous last-success time
/// when this run did not succeed.
pub fn write_metrics_file(
    path: &Path,
    run: &PlannedRun,
    report: &RunReport,
    elapsed: Duration,
) -> std::io::Result<()> {
    let previous = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| previous_success(&text, run));
    let text = render(&MetricsInput {
        run,
        report,
        elapsed,
        now: jiff::Timestamp::now(),
        previous_success: previous,
    });
    write_textfile(path, &text)
}

/// Replaces `path` with `text` atomically (a temporary file in the same folder, synced, then
/// renamed), as node_exporter's textfile collector requires.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Named *.prom.tmp-like by tempfile's random name without the .prom suffix, so the textfile
    // collector never reads a half-written file.
    let mut tmp = tempfile::Builder::new()
        .prefix(".cbk-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_before_markers() {
        assert_eq!(
            number_before(
                "3 files (900 bytes): 2 uploaded (600 bytes sent), 1 already stored",
                " bytes sent)"
            ),
            Some(600)
        );
        assert_eq!(
            number_before("4 files (77 bytes) staged and verified", " bytes) staged"),
            Some(77)
        );
        assert_eq!(number_before("nothing here", " bytes sent)"), None);
        assert_eq!(number_before("( bytes sent)", " bytes sent)"), None);
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
