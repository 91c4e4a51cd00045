//! Progress sinks: indicatif bars on a terminal, plain or JSON lines otherwise, or nothing.
//!
//! Tasks only see the [`Progress`] trait. Bars: one per host (bytes, rate, ETA) above an
//! overall bar counting tasks; every log line goes through `MultiProgress::println` so it never
//! tears the bars. Plain and JSON sinks write to stderr (stdout is for the human end summary;
//! with JSON lines, the summary is an event too).

use super::Progress;
use super::events::{self, Event};
use crate::graph::run::PlannedTask;
use indicatif::{BinaryBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which sink to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    Json,
    None,
}

/// Whether colours are allowed (`NO_COLOR` unset or empty).
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Label of a task's host bar (`controller` for tasks that run on the controller).
fn host_label(host: Option<&str>) -> String {
    host.unwrap_or("controller").to_string()
}

/// Builds the sink for `mode`; `total_tasks` sizes the overall bar.
pub fn make(mode: Mode, total_tasks: usize) -> std::sync::Arc<dyn Progress> {
    match mode {
        Mode::Bars => std::sync::Arc::new(Bars::new(total_tasks, ProgressDrawTarget::stderr())),
        Mode::Plain => std::sync::Arc::new(Lines::new(false)),
        Mode::Json => std::sync::Arc::new(Lines::new(true)),
        Mode::None => std::sync::Arc::new(super::NoProgress),
    }
}

/// indicatif bars.
pub struct Bars {
    mp: MultiProgress,
    overall: ProgressBar,
    hosts: Mutex<BTreeMap<String, ProgressBar>>,
    host_style: ProgressStyle,
}

impl Bars {
    /// Bars drawn to `target`.
    pub fn new(total_tasks: usize, target: ProgressDrawTarget) -> Bars {
        let color = color_enabled();
        let host_tpl = if color {
            "{prefix:12.bold} {wide_bar:.cyan/blue} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}"
        } else {
            "{prefix:12} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}"
        };
        let overall_tpl = if color {
            "{prefix:12.bold} {wide_bar:.green} {pos}/{len} tasks {elapsed_precise}"
        } else {
            "{prefix:12} {wide_bar} {pos}/{len} tasks {elapsed_precise}"
        };
        let fallback = ProgressStyle::default_bar;
        let host_style = ProgressStyle::with_template(host_tpl)
            .unwrap_or_else(|_| fallback())
            .progress_chars("=> ");
        let overall_style = ProgressStyle::with_template(overall_tpl)
            .unwrap_or_else(|_| fallback())
            .progress_chars("=> ");
        let mp = MultiProgress::with_draw_target(target);
        let overall = mp.add(
            ProgressBar::new(total_tasks as u64)
                .with_style(overall_style)
                .with_prefix("overall"),
        );
        overall.enable_steady_tick(Duration::from_millis(250));
        Bars {
            mp,
            overall,
            hosts: Mutex::new(BTreeMap::new()),
            host_style,
        }
    }

    fn bar(&self, host: Option<&str>) -> Option<ProgressBar> {
        let label = host_label(host);
        let mut hosts = self.hosts.lock().ok()?;
        if let Some(b) = hosts.get(&label) {
            return Some(b.clone());
        }
        let pb = ProgressBar::new(0)
            .with_style(self.host_style.clone())
            .with_prefix(label.clone());
        // Keep host bars sorted by name above the overall bar.
        let pb = match hosts.range(label.clone()..).next() {
            Some((_, next)) => self.mp.insert_before(next, pb),
            None => self.mp.insert_before(&self.overall, pb),
        };
        hosts.insert(label, pb.clone());
        Some(pb)
    }
}

impl Progress for Bars {
    fn task_started(&self, task: &PlannedTask) {
        if let Some(b) = self.bar(task.host.as_deref()) {
            b.set_message(task.address.clone());
        }
    }
    fn add_total(&self, host: Option<&str>, total: u64) {
        if let Some(b) = self.bar(host) {
            b.inc_length(total);
        }
    }
    fn advance(&self, host: Option<&str>, n: u64) {
        if let Some(b) = self.bar(host) {
            b.inc(n);
        }
    }
    fn message(&self, line: &str) {
        let _ = self.mp.println(line);
    }
    fn task_finished(&self, task: &PlannedTask, _status: &str) {
        self.overall.inc(1);
        if let Some(b) = self.bar(task.host.as_deref()) {
            b.set_message("");
        }
    }
    fn finish(&self) {
        if let Ok(hosts) = self.hosts.lock() {
            for b in hosts.values() {
                b.abandon();
            }
        }
        self.overall.abandon();
    }
}

/// Bytes (done, total) per host label.
type HostBytes = BTreeMap<String, (u64, u64)>;

/// Plain text or JSON lines on stderr; byte counts are reported at most every few seconds.
pub struct Lines {
    json: bool,
    start: Instant,
    /// Bytes (done, total) per host, and when they were last printed.
    bytes: Mutex<(HostBytes, Instant)>,
    every: Duration,
    /// When each running task started (JSON: `duration_ms` of `task_finished`).
    running: Mutex<BTreeMap<String, Instant>>,
}

impl Lines {
    /// A line sink; `json` selects JSON lines ([`events`]).
    pub fn new(json: bool) -> Lines {
        Lines {
            json,
            start: Instant::now(),
            bytes: Mutex::new((BTreeMap::new(), Instant::now())),
            every: if json {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            },
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// Writes `text` (plain) or `event` (JSON).
    fn emit(&self, text: &str, event: Event<'_>) {
        if self.json {
            events::emit(&event);
        } else {
            let line = format!("[{:>6.1}s] {text}", self.start.elapsed().as_secs_f64());
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }

    fn bytes(&self, host: Option<&str>, total: u64, done: u64) {
        let Ok(mut g) = self.bytes.lock() else { return };
        let e = g.0.entry(host_label(host)).or_default();
        e.0 += done;
        e.1 += total;
        if g.1.elapsed() < self.every {
            return;
        }
        g.1 = Instant::now();
        let snapshot = g.0.clone();
        drop(g);
        for (h, (d, t)) in snapshot {
            self.emit(
                &format!("{h}: {} of {}", BinaryBytes(d), BinaryBytes(t)),
                Event::Bytes {
                    host: &h,
                    done: d,
                    total: t,
                },
            );
        }
    }
}

impl Progress for Lines {
    fn task_started(&self, task: &PlannedTask) {
        if let Ok(mut r) = self.running.lock() {
            r.insert(task.address.clone(), Instant::now());
        }
        self.emit(
            &format!("started {}", task.address),
            Event::TaskStarted {
                address: &task.address,
                host: task.host.as_deref(),
            },
        );
    }
    fn add_total(&self, host: Option<&str>, total: u64) {
        self.bytes(host, total, 0);
    }
    fn advance(&self, host: Option<&str>, n: u64) {
        self.bytes(host, 0, n);
    }
    fn message(&self, line: &str) {
        self.emit(line, Event::Message { text: line });
    }
    fn warning(&self, line: &str, address: Option<&str>) {
        self.emit(
            line,
            Event::Warning {
                text: line,
                address,
                target: None,
                fields: None,
            },
        );
    }
    fn task_failed(&self, task: &PlannedTask, error: &str) {
        self.emit(
            &format!("failed: {}: {error}", task.address),
            Event::Error {
                text: error,
                address: Some(&task.address),
                target: None,
                fields: None,
                exit_code: None,
            },
        );
    }
    fn event(&self, event: &Event<'_>) {
        if self.json {
            events::emit(event);
        }
    }
    fn task_finished(&self, task: &PlannedTask, status: &str) {
        let started = self
            .running
            .lock()
            .ok()
            .and_then(|mut r| r.remove(&task.address));
        self.emit(
            &format!("{status} {}", task.address),
            Event::TaskFinished {
                address: &task.address,
                host: task.host.as_deref(),
                status,
                duration_ms: started.map(|t| t.elapsed().as_millis() as u64),
            },
        );
    }
}
