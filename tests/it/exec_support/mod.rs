//! Shared helpers of the exec tests: hand-built planned runs and a scriptable fake task runner
//! that measures concurrency.
#![allow(dead_code)]

use async_trait::async_trait;
use cbk::exec::{Check, Outcome, TaskContext, TaskError, TaskRunner};
use cbk::graph::run::{PlannedRun, PlannedTask, TaskKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A task on `host` (None = controller) of `step`, waiting for `after`.
pub fn task(address: &str, host: Option<&str>, step: &str, after: &[&str]) -> PlannedTask {
    serde_json::from_value(serde_json::json!({
        "address": address,
        "kind": "exec",
        "step": step,
        "host": host,
        "action": "run",
        "disruptive": false,
        "after": after,
        "params": {},
    }))
    .expect("task json")
}

/// A planned run over `tasks` whose source is `source` (its sha256 is computed now if it exists).
pub fn planned_run(tasks: Vec<PlannedTask>, source: &str) -> PlannedRun {
    let sha = std::fs::read(source)
        .map(|b| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&b))
        })
        .unwrap_or_else(|_| "0".repeat(64));
    let mut run: PlannedRun = serde_json::from_value(serde_json::json!({
        "format_version": cbk::graph::run::FORMAT_VERSION,
        "cbk_version": cbk::VERSION,
        "source": {"path": source, "sha256": sha},
        "inputs": {"now": "2026-01-01T00:00:00Z"},
        "inputs_sha256": "0",
        "plan": {"version": 1, "kind": "runbook", "cluster": {"name": "c", "hosts": ["h1"]}},
        "tasks": [],
        "summary": {"to_run": 0, "satisfied": 0, "disruptive": 0, "to_delete": 0, "read_only": 0},
    }))
    .expect("run json");
    run.summary.to_run = tasks.len();
    run.tasks = tasks;
    assert!(tasks_kind_ok(&run));
    run
}

fn tasks_kind_ok(run: &PlannedRun) -> bool {
    run.tasks.iter().all(|t| t.kind() == TaskKind::Exec)
}

/// What the fake runner does for one address.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// `check` says satisfied.
    pub satisfied: bool,
    /// `apply` fails permanently.
    pub fail: bool,
    /// `apply` fails with a transient error this many times first.
    pub transient: usize,
    /// `apply` panics.
    pub panic: bool,
    /// `apply` sleeps this long (cancellable).
    pub sleep: Duration,
}

/// Live and maximum concurrency counters.
#[derive(Default)]
pub struct Gauge {
    now: AtomicUsize,
    pub max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let v = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(v, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A runner whose behaviour is scripted per address and which measures what it sees.
#[derive(Default)]
pub struct FakeRunner {
    pub behaviour: HashMap<String, Behaviour>,
    pub global: Gauge,
    pub hosts: Mutex<HashMap<String, Arc<Gauge>>>,
    pub steps: Mutex<HashMap<String, Arc<Gauge>>>,
    /// Global sequence: (event number at start, event number at end) per address.
    pub seq: AtomicUsize,
    pub spans: Mutex<HashMap<String, (usize, usize)>>,
    pub checks: Mutex<HashMap<String, usize>>,
    pub applies: Mutex<HashMap<String, usize>>,
    pub transient_seen: Mutex<HashMap<String, usize>>,
}

fn gauge(map: &Mutex<HashMap<String, Arc<Gauge>>>, key: &str) -> Arc<Gauge> {
    map.lock()
        .expect("lock")
        .entry(key.to_string())
        .or_default()
        .clone()
}

impl FakeRunner {
    /// Highest concurrency seen for a host or step.
    pub fn max_of(map: &Mutex<HashMap<String, Arc<Gauge>>>) -> HashMap<String, usize> {
        map.lock()
            .expect("lock")
            .iter()
            .map(|(k, g)| (k.clone(), g.max.load(Ordering::SeqCst)))
            .collect()
    }
    pub fn applies_of(&self, a: &str) -> usize {
        self.applies
            .lock()
            .expect("lock")
            .get(a)
            .copied()
            .unwrap_or(0)
    }
    pub fn checks_of(&self, a: &str) -> usize {
        self.checks
            .lock()
            .expect("lock")
            .get(a)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl TaskRunner for FakeRunner {
    async fn check(&self, task: &PlannedTask, _cx: &TaskContext) -> Result<Check, TaskError> {
        *self
            .checks
            .lock()
            .expect("lock")
            .entry(task.address.clone())
            .or_default() += 1;
        let b = self
            .behaviour
            .get(&task.address)
            .cloned()
            .unwrap_or_default();
        Ok(if b.satisfied {
            Check::Satisfied("already there".into())
        } else {
            Check::Needed
        })
    }

    async fn apply(&self, task: &PlannedTask, cx: &TaskContext) -> Result<Outcome, TaskError> {
        let b = self
            .behaviour
            .get(&task.address)
            .cloned()
            .unwrap_or_default();
        *self
            .applies
            .lock()
            .expect("lock")
            .entry(task.address.clone())
            .or_default() += 1;
        let start = self.seq.fetch_add(1, Ordering::SeqCst);
        self.global.enter();
        let host = task.host.clone().map(|h| gauge(&self.hosts, &h));
        let step = task.step_limit.map(|_| gauge(&self.steps, &task.step));
        for g in host.iter().chain(step.iter()) {
            g.enter();
        }
        let result = async {
            if b.panic {
                panic!("boom in {}", task.address);
            }
            tokio::select! {
                _ = tokio::time::sleep(b.sleep) => {}
                _ = cx.cancel.cancelled() => return Err(TaskError::fatal("cancelled")),
            }
            if b.transient > 0 {
                let mut seen = self.transient_seen.lock().expect("lock");
                let n = seen.entry(task.address.clone()).or_default();
                if *n < b.transient {
                    *n += 1;
                    return Err(TaskError::transient(format!("throttled #{n}")));
                }
            }
            if b.fail {
                return Err(TaskError::fatal(format!("{} exploded", task.address)));
            }
            Ok(Outcome {
                summary: format!("did {}", task.address),
                data: serde_json::Value::Null,
            })
        }
        .await;
        for g in host.iter().chain(step.iter()) {
            g.leave();
        }
        self.global.leave();
        let end = self.seq.fetch_add(1, Ordering::SeqCst);
        self.spans
            .lock()
            .expect("lock")
            .insert(task.address.clone(), (start, end));
        result
    }
}
