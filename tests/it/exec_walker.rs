//! Walker and engine behaviour: ordering, limits under load, skip-on-failure, fail-fast,
//! cancellation, retries, panics, resume, stale plans and locks.

use crate::exec_support::{Behaviour, FakeRunner, planned_run, task};
use cbk::exec::journal::{self, Record};
use cbk::exec::walker::WalkOptions;
use cbk::exec::{
    ApplyOptions, ExecError, NoProgress, RunReport, RunStatus, StateLocation, TaskStatus, apply,
};
use cbk::graph::run::{PlannedRun, PlannedTask};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn opts(state: &Path, walk: WalkOptions) -> ApplyOptions {
    ApplyOptions {
        state: StateLocation::Local(state.to_path_buf()),
        walk,
        progress: Arc::new(NoProgress),
        cancel: CancellationToken::new(),
        saved_plan: true,
        plan_label: "test".into(),
        lock_timeout: None,
    }
}

fn fast() -> WalkOptions {
    WalkOptions {
        retry_backoff: Duration::from_millis(5),
        ..WalkOptions::default()
    }
}

async fn run(
    run: &PlannedRun,
    runner: Arc<FakeRunner>,
    state: &Path,
    walk: WalkOptions,
) -> RunReport {
    apply(run, runner, opts(state, walk)).await.expect("apply")
}

fn status<'a>(r: &'a RunReport, a: &str) -> &'a TaskStatus {
    &r.tasks
        .iter()
        .find(|t| t.address == a)
        .unwrap_or_else(|| panic!("no task {a}"))
        .status
}

fn records(state: &Path, r: &RunReport) -> Vec<Record> {
    journal::replay(&state.join("runs").join(&r.run)).expect("replay")
}

/// A random DAG of `n` tasks over 5 hosts plus controller tasks; some tasks in a rolling step.
fn random_dag(seed: u64, n: usize) -> Vec<PlannedTask> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let host_n = rng.random_range(0..6);
        let host = (host_n < 5).then(|| format!("h{host_n}"));
        let rolling = rng.random_bool(0.2);
        let mut after = Vec::new();
        for _ in 0..rng.random_range(0..3) {
            if i > 0 {
                after.push(format!("t{}", rng.random_range(0..i)));
            }
        }
        after.sort();
        after.dedup();
        let after_ref: Vec<&str> = after.iter().map(String::as_str).collect();
        let mut t = task(
            &format!("t{i}"),
            host.as_deref(),
            if rolling { "restart" } else { "upload" },
            &after_ref,
        );
        if rolling {
            t.step_limit = Some(1);
        }
        tasks.push(t);
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_are_never_exceeded_and_order_is_respected_under_load() {
    let tasks = random_dag(7, 300);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut runner = FakeRunner::default();
    for t in &tasks {
        runner.behaviour.insert(
            t.address.clone(),
            Behaviour {
                sleep: Duration::from_micros(rng.random_range(0..4000)),
                ..Default::default()
            },
        );
    }
    let runner = Arc::new(runner);
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = planned_run(tasks.clone(), "/nonexistent/plan.toml");
    let walk = WalkOptions {
        parallelism: 6,
        per_host: 2,
        ..fast()
    };
    let report = run(&plan, runner.clone(), dir.path(), walk).await;
    assert_eq!(report.status, RunStatus::Ok);
    assert_eq!(report.count("applied"), 300);

    let global = runner.global.max.load(Ordering::SeqCst);
    assert!(global <= 6, "global max {global}");
    assert!(
        global >= 4,
        "the walk should run tasks concurrently (max {global})"
    );
    for (h, m) in FakeRunner::max_of(&runner.hosts) {
        assert!(m <= 2, "host {h} max {m}");
    }
    let steps = FakeRunner::max_of(&runner.steps);
    assert_eq!(steps.get("restart"), Some(&1), "rolling step max {steps:?}");

    let spans = runner.spans.lock().expect("lock");
    for t in &tasks {
        let (start, _) = spans[&t.address];
        for dep in &t.after {
            let (_, dep_end) = spans[dep];
            assert!(dep_end < start, "{} started before {dep} ended", t.address);
        }
    }
    // The journal has started + done for each task, in a valid order.
    let recs = records(dir.path(), &report);
    let started = recs
        .iter()
        .filter(|r| matches!(r, Record::Started { .. }))
        .count();
    let done = recs
        .iter()
        .filter(|r| matches!(r, Record::Done { .. }))
        .count();
    assert_eq!((started, done), (300, 300));
}

fn chain_plan() -> (PlannedRun, FakeRunner) {
    // a -> b -> c, a -> d; e independent and slow; f after e.
    let tasks = vec![
        task("a", Some("h1"), "s", &[]),
        task("b", Some("h1"), "s", &["a"]),
        task("c", Some("h2"), "s", &["b"]),
        task("d", None, "s", &["a"]),
        task("e", Some("h2"), "s", &[]),
        task("f", Some("h2"), "s", &["e"]),
    ];
    let mut runner = FakeRunner::default();
    runner.behaviour.insert(
        "a".into(),
        Behaviour {
            fail: true,
            ..Default::default()
        },
    );
    runner.behaviour.insert(
        "e".into(),
        Behaviour {
            sleep: Duration::from_millis(100),
            ..Default::default()
        },
    );
    (planned_run(tasks, "/nonexistent/plan.toml"), runner)
}

#[tokio::test]
async fn a_failure_skips_descendants_once_and_independent_branches_continue() {
    let (plan, runner) = chain_plan();
    let runner = Arc::new(runner);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(&plan, runner.clone(), dir.path(), fast()).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        status(&report, "a"),
        &TaskStatus::Failed {
            error: "a exploded".into()
        }
    );
    for s in ["b", "c", "d"] {
        assert_eq!(
            status(&report, s),
            &TaskStatus::Skipped {
                reason: "upstream failed: a".into()
            }
        );
        assert_eq!(runner.applies_of(s), 0);
    }
    assert!(status(&report, "f").is_ok());
    let recs = records(dir.path(), &report);
    let failed = recs
        .iter()
        .filter(|r| matches!(r, Record::Failed { .. }))
        .count();
    let skipped: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Skipped { address, .. } => Some(address.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(failed, 1);
    assert_eq!(skipped, vec!["b", "c", "d"]);
    assert!(matches!(
        recs.last(),
        Some(Record::RunFinished {
            status: RunStatus::Failed,
            ..
        })
    ));
}

#[tokio::test]
async fn fail_fast_stops_scheduling_but_lets_running_tasks_finish() {
    let (plan, runner) = chain_plan();
    let runner = Arc::new(runner);
    let dir = tempfile::tempdir().expect("tempdir");
    let walk = WalkOptions {
        fail_fast: true,
        ..fast()
    };
    let report = run(&plan, runner.clone(), dir.path(), walk).await;
    // e was running when a failed: it finishes; f (after e) never starts.
    assert!(status(&report, "e").is_ok(), "{:?}", status(&report, "e"));
    assert_eq!(status(&report, "f"), &TaskStatus::NotStarted);
    assert_eq!(runner.applies_of("f"), 0);
    assert_eq!(report.status, RunStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_interrupts_running_tasks_and_resume_rechecks_them() {
    let tasks = vec![
        task("quick", None, "s", &[]),
        task("slow1", Some("h1"), "s", &["quick"]),
        task("slow2", Some("h2"), "s", &["quick"]),
        task("later", None, "s", &["slow1", "slow2"]),
    ];
    let plan = planned_run(tasks, "/nonexistent/plan.toml");
    let mut runner = FakeRunner::default();
    for s in ["slow1", "slow2"] {
        runner.behaviour.insert(
            s.into(),
            Behaviour {
                sleep: Duration::from_secs(30),
                ..Default::default()
            },
        );
    }
    let runner = Arc::new(runner);
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), fast());
    let cancel = o.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let report = apply(&plan, runner.clone(), o).await.expect("apply");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.status, RunStatus::Interrupted);
    assert!(status(&report, "quick").is_ok());
    assert_eq!(status(&report, "slow1"), &TaskStatus::Interrupted);
    assert_eq!(status(&report, "slow2"), &TaskStatus::Interrupted);
    assert_eq!(status(&report, "later"), &TaskStatus::NotStarted);
    // No failure recorded for interrupted tasks: `started` without `done`.
    let recs = records(dir.path(), &report);
    assert!(!recs.iter().any(|r| matches!(r, Record::Failed { .. })));

    // Resume with a runner that finds slow1 already in place.
    let mut second = FakeRunner::default();
    second.behaviour.insert(
        "slow1".into(),
        Behaviour {
            satisfied: true,
            ..Default::default()
        },
    );
    let second = Arc::new(second);
    let report2 = run(&plan, second.clone(), dir.path(), fast()).await;
    assert_eq!(report2.status, RunStatus::Ok);
    assert!(report2.resumed);
    assert_eq!(report2.run, report.run, "the same run continues");
    assert!(matches!(
        status(&report2, "quick"),
        TaskStatus::AlreadyDone { .. }
    ));
    assert_eq!(second.checks_of("quick"), 0, "done tasks are not touched");
    assert_eq!(second.checks_of("slow1"), 1, "started tasks are re-checked");
    assert_eq!(second.applies_of("slow1"), 0);
    assert!(matches!(
        status(&report2, "slow1"),
        TaskStatus::Satisfied { .. }
    ));
    assert!(matches!(
        status(&report2, "slow2"),
        TaskStatus::Applied { .. }
    ));
    assert_eq!(report2.serial, 1);
}

#[tokio::test]
async fn transient_errors_are_retried_and_panics_become_failures() {
    let tasks = vec![
        task("flaky", None, "s", &[]),
        task("hopeless", None, "s", &[]),
        task("panics", None, "s", &[]),
        task("after_panic", None, "s", &["panics"]),
    ];
    let plan = planned_run(tasks, "/nonexistent/plan.toml");
    let mut runner = FakeRunner::default();
    runner.behaviour.insert(
        "flaky".into(),
        Behaviour {
            transient: 2,
            ..Default::default()
        },
    );
    runner.behaviour.insert(
        "hopeless".into(),
        Behaviour {
            transient: 100,
            ..Default::default()
        },
    );
    runner.behaviour.insert(
        "panics".into(),
        Behaviour {
            panic: true,
            ..Default::default()
        },
    );
    let runner = Arc::new(runner);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(&plan, runner.clone(), dir.path(), fast()).await;
    let flaky = report
        .tasks
        .iter()
        .find(|t| t.address == "flaky")
        .expect("flaky");
    assert!(flaky.status.is_ok());
    assert_eq!(flaky.attempts, 3);
    assert_eq!(
        status(&report, "hopeless"),
        &TaskStatus::Failed {
            error: "throttled #3".into()
        }
    );
    assert_eq!(runner.applies_of("hopeless"), 3, "1 try + 2 retries");
    assert_eq!(
        status(&report, "panics"),
        &TaskStatus::Failed {
            error: "task panicked: boom in panics".into()
        }
    );
    assert_eq!(
        status(&report, "after_panic"),
        &TaskStatus::Skipped {
            reason: "upstream failed: panics".into()
        }
    );
}

#[tokio::test]
async fn a_failed_run_resumes_with_the_same_plan_and_a_finished_one_is_not_reapplied() {
    let (plan, runner) = chain_plan();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run(&plan, Arc::new(runner), dir.path(), fast()).await;
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(first.serial, 0, "a failed run does not move the state");
    let fixed = Arc::new(FakeRunner::default());
    let second = run(&plan, fixed.clone(), dir.path(), fast()).await;
    assert_eq!(second.status, RunStatus::Ok);
    assert!(second.resumed);
    assert_eq!(fixed.applies_of("e"), 0, "done tasks stay done");
    assert_eq!(fixed.applies_of("a"), 1);
    assert_eq!(second.serial, 1);
    let again = apply(&plan, fixed.clone(), opts(dir.path(), fast())).await;
    assert!(
        matches!(&again, Err(ExecError::AlreadyApplied { run }) if run == &second.run),
        "{:?}",
        again.map(|r| r.status)
    );
}

#[tokio::test]
async fn stale_plans_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("plan.toml");
    std::fs::write(&source, "version = 1\n").expect("write");
    let state = dir.path().join(".cbk");
    let tasks = vec![task("a", None, "s", &[])];
    let plan = planned_run(tasks.clone(), source.to_str().expect("utf8"));

    // Source changed.
    std::fs::write(&source, "version = 1 # edited\n").expect("write");
    let err = apply(&plan, Arc::new(FakeRunner::default()), opts(&state, fast()))
        .await
        .expect_err("stale");
    assert!(err.is_refusal());
    let msg = err.to_string();
    assert!(msg.contains("changed since the plan was made"), "{msg}");

    // State moved: another plan ran in between.
    std::fs::write(&source, "version = 1\n").expect("write");
    let mut other = planned_run(vec![task("x", None, "s", &[])], "/nonexistent/other.toml");
    other.warnings.push("other".into());
    run(&other, Arc::new(FakeRunner::default()), &state, fast()).await;
    // A plan without `prior_state` cannot be checked against the state: it applies.
    let unchecked = run(&plan, Arc::new(FakeRunner::default()), &state, fast()).await;
    assert_eq!(unchecked.status, RunStatus::Ok);
    assert_eq!(unchecked.serial, 2);
    let mut other2 = other.clone();
    other2.warnings.push("again".into());
    run(&other2, Arc::new(FakeRunner::default()), &state, fast()).await;
    let mut planned_at_0 = plan.clone();
    let current = cbk::exec::state::current_ref(&state)
        .expect("ref")
        .expect("some");
    planned_at_0.prior_state = Some(cbk::graph::run::StateRef {
        lineage: current.lineage.clone(),
        serial: 0,
    });
    let msg = apply(
        &planned_at_0,
        Arc::new(FakeRunner::default()),
        opts(&state, fast()),
    )
    .await
    .expect_err("stale")
    .to_string();
    assert!(
        msg.contains(
            "state moved since the plan was made (plan made at serial 0, state is at serial 3"
        ),
        "{msg}"
    );
    let mut other_lineage = planned_at_0.clone();
    other_lineage.prior_state = Some(cbk::graph::run::StateRef {
        lineage: "f".repeat(32),
        serial: 3,
    });
    let msg = apply(
        &other_lineage,
        Arc::new(FakeRunner::default()),
        opts(&state, fast()),
    )
    .await
    .expect_err("stale")
    .to_string();
    assert!(
        msg.contains("different state (lineage ffffffffffff"),
        "{msg}"
    );
    let mut version = planned_at_0.clone();
    version.cbk_version = "0.0.0-old".into();
    let msg = apply(
        &version,
        Arc::new(FakeRunner::default()),
        opts(&state, fast()),
    )
    .await
    .expect_err("stale")
    .to_string();
    assert!(msg.contains("made by cbk 0.0.0-old"), "{msg}");

    // The current plan applies.
    let mut current_plan = planned_at_0;
    current_plan.prior_state = Some(current);
    let report = run(
        &current_plan,
        Arc::new(FakeRunner::default()),
        &state,
        fast(),
    )
    .await;
    assert_eq!(report.status, RunStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_apply_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = vec![task("slow", None, "s", &[])];
    let plan = planned_run(tasks, "/nonexistent/plan.toml");
    let mut runner = FakeRunner::default();
    runner.behaviour.insert(
        "slow".into(),
        Behaviour {
            sleep: Duration::from_millis(1500),
            ..Default::default()
        },
    );
    let runner = Arc::new(runner);
    let state = dir.path().to_path_buf();
    let first = {
        let (plan, runner, state) = (plan.clone(), runner.clone(), state.clone());
        tokio::spawn(async move { apply(&plan, runner, opts(&state, fast())).await })
    };
    // Wait until the first apply holds the lock (its holder info is written).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cbk::exec::lock::local_holder(&state.join("lock"))
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "first apply never locked"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = apply(&plan, runner.clone(), opts(&state, fast()))
        .await
        .expect_err("locked");
    assert!(err.is_refusal());
    let msg = err.to_string();
    assert!(msg.contains("the state is locked: lock "), "{msg}");
    assert!(
        msg.contains(&format!("(pid {})", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains("cbk unlock "), "{msg}");
    let report = first.await.expect("join").expect("first apply");
    assert_eq!(report.status, RunStatus::Ok);
}

/// Throughput of the engine itself (fsync per record): `cargo test --test it exec_walker:: -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_throughput_of_no_op_tasks() {
    let n = 5000;
    let mut tasks = random_dag(3, n);
    if std::env::var_os("CBK_MEASURE_FLAT").is_some() {
        tasks.iter_mut().for_each(|t| t.after.clear());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = planned_run(tasks, "/nonexistent/plan.toml");
    let t = std::time::Instant::now();
    let report = run(&plan, Arc::new(FakeRunner::default()), dir.path(), fast()).await;
    let e = t.elapsed();
    assert_eq!(report.count("applied"), n);
    eprintln!(
        "{n} no-op tasks in {:.2}s ({:.0} tasks/s, {} journal records)",
        e.as_secs_f64(),
        n as f64 / e.as_secs_f64(),
        records(dir.path(), &report).len()
    );
}
