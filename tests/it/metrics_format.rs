//! `--metrics-file` output: parsed by a Prometheus text-format parser (prometheus-parse) and
//! checked strictly line by line; last-success carry-over and the atomic write are exercised on
//! real files.

use cbk::exec::metrics::{self, MetricsInput};
use cbk::exec::{RunReport, RunStatus, TaskReport, TaskStatus};
use cbk::graph::run::{PlannedRun, TaskKind};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const PLAN: &str = r#"
version = 1
kind = "backup"
[cluster]
name = "prod-eu"
hosts = ["cass-01", "cass-02"]
[connection]
transport = "ssh"
[storage]
url = "s3://bucket/prefix"
[backup]
name = "nightly-{{ now | strftime('%Y%m%d') }}"
include = ["shop.*"]
"#;

fn planned() -> PlannedRun {
    let now: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    cbk::graph::compile_source("plans/nightly-backup.toml", PLAN, now).expect("plan compiles")
}

/// A report where every task is applied, except `fail_host`'s upload tasks which failed.
fn report(run: &PlannedRun, fail_host: Option<&str>) -> RunReport {
    let tasks: Vec<TaskReport> = run
        .tasks
        .iter()
        .map(|t| {
            let failed = fail_host.is_some() && t.host.as_deref() == fail_host;
            let status = if failed && t.kind() == TaskKind::Upload {
                TaskStatus::Failed {
                    error: "connection reset".into(),
                }
            } else if failed {
                TaskStatus::Skipped {
                    reason: "upstream failed".into(),
                }
            } else if t.kind() == TaskKind::Upload {
                TaskStatus::Applied {
                    summary: "3 files (900 bytes): 2 uploaded (600 bytes sent), 1 already stored"
                        .into(),
                }
            } else {
                TaskStatus::Applied {
                    summary: "done".into(),
                }
            };
            TaskReport {
                address: t.address.clone(),
                host: t.host.clone(),
                status,
                duration_ms: 10,
                attempts: 1,
            }
        })
        .collect();
    let failed = tasks.iter().any(|t| !t.status.is_ok());
    RunReport {
        run: "run-1".into(),
        resumed: false,
        status: if failed {
            RunStatus::Failed
        } else {
            RunStatus::Ok
        },
        serial: 1,
        lineage: "lineage".into(),
        tasks,
    }
}

type Series = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses with prometheus-parse and checks the exposition format strictly; returns the series.
fn parse_strict(text: &str) -> Series {
    assert!(text.ends_with('\n'), "a textfile must end with a newline");
    let name_ok = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    };
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut sample_lines = 0;
    for line in text.lines() {
        assert!(!line.trim().is_empty(), "no blank lines expected");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(name_ok(name) && !help.is_empty(), "bad HELP: {line}");
            assert!(helped.insert(name.to_owned()), "duplicate HELP for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE has a type");
            assert!(name_ok(name), "bad TYPE: {line}");
            assert_eq!(ty, "gauge", "{line}");
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(typed.insert(name.to_owned()), "duplicate TYPE for {name}");
        } else {
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "sample before its TYPE: {line}");
            let value = line.rsplit_once(' ').unwrap().1;
            assert!(value.parse::<f64>().unwrap().is_finite(), "{line}");
            sample_lines += 1;
        }
    }
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "the parser must read every sample line"
    );
    let mut series = Series::new();
    for s in scrape.samples {
        let prometheus_parse::Value::Gauge(v) = s.value else {
            panic!("{} is not a gauge", s.metric);
        };
        let labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(
            series.insert((s.metric.clone(), labels), v).is_none(),
            "duplicate series {}",
            s.metric
        );
    }
    series
}

fn get(series: &Series, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let mut labels: BTreeMap<String, String> = [
        ("plan", "nightly-backup"),
        ("kind", "backup"),
        ("cluster", "prod-eu"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.retain(|_, v| !v.is_empty());
    series.get(&(name.to_owned(), labels)).copied()
}

#[test]
fn successful_run_renders_every_metric() {
    let run = planned();
    let rep = report(&run, None);
    let now: jiff::Timestamp = "2026-01-02T04:00:00Z".parse().unwrap();
    let text = metrics::render(&MetricsInput {
        run: &run,
        report: &rep,
        elapsed: Duration::from_millis(12_500),
        now,
        previous_success: Some(1.0),
    });
    let s = parse_strict(&text);
    let t = now.as_second() as f64;
    assert_eq!(
        get(&s, "cbk_apply_last_run_timestamp_seconds", &[]),
        Some(t)
    );
    assert_eq!(
        get(&s, "cbk_apply_last_success_timestamp_seconds", &[]),
        Some(t)
    );
    assert_eq!(get(&s, "cbk_apply_last_run_success", &[]), Some(1.0));
    assert_eq!(get(&s, "cbk_apply_duration_seconds", &[]), Some(12.5));
    let total = run.tasks.len() as f64;
    assert_eq!(
        get(&s, "cbk_apply_tasks", &[("status", "applied")]),
        Some(total)
    );
    assert_eq!(
        get(&s, "cbk_apply_tasks", &[("status", "failed")]),
        Some(0.0)
    );
    let uploads = run
        .tasks
        .iter()
        .filter(|t| t.kind() == TaskKind::Upload)
        .count();
    assert!(uploads > 0);
    assert_eq!(
        get(&s, "cbk_apply_bytes", &[("direction", "sent")]),
        Some(600.0 * uploads as f64)
    );
    assert_eq!(get(&s, "cbk_apply_bytes", &[("direction", "staged")]), None);
    for h in ["cass-01", "cass-02"] {
        assert_eq!(get(&s, "cbk_apply_host_ok", &[("host", h)]), Some(1.0));
    }
}

#[test]
fn failed_run_keeps_the_previous_success_and_flags_the_host() {
    let run = planned();
    let rep = report(&run, Some("cass-02"));
    let text = metrics::render(&MetricsInput {
        run: &run,
        report: &rep,
        elapsed: Duration::from_secs(3),
        now: "2026-01-03T04:00:00Z".parse().unwrap(),
        previous_success: Some(1_767_326_400.0),
    });
    let s = parse_strict(&text);
    assert_eq!(
        get(&s, "cbk_apply_last_success_timestamp_seconds", &[]),
        Some(1_767_326_400.0)
    );
    assert_eq!(get(&s, "cbk_apply_last_run_success", &[]), Some(0.0));
    assert_eq!(
        get(&s, "cbk_apply_host_ok", &[("host", "cass-01")]),
        Some(1.0)
    );
    assert_eq!(
        get(&s, "cbk_apply_host_ok", &[("host", "cass-02")]),
        Some(0.0)
    );
    assert!(get(&s, "cbk_apply_tasks", &[("status", "failed")]).unwrap() >= 1.0);

    // No earlier success known: the series is left out rather than invented.
    let text = metrics::render(&MetricsInput {
        run: &run,
        report: &rep,
        elapsed: Duration::from_secs(3),
        now: "2026-01-03T04:00:00Z".parse().unwrap(),
        previous_success: None,
    });
    assert!(!text.contains("cbk_apply_last_success_timestamp_seconds{"));
    parse_strict(&text);
}

#[test]
fn file_is_replaced_atomically_and_carries_the_last_success_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cbk-nightly.prom");
    let run = planned();

    metrics::write_metrics_file(&path, &run, &report(&run, None), Duration::from_secs(1)).unwrap();
    let first = parse_strict(&std::fs::read_to_string(&path).unwrap());
    let success = get(&first, "cbk_apply_last_success_timestamp_seconds", &[]).unwrap();
    assert!(success > 1.7e9, "a real clock time: {success}");

    metrics::write_metrics_file(
        &path,
        &run,
        &report(&run, Some("cass-01")),
        Duration::from_secs(2),
    )
    .unwrap();
    let second = parse_strict(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(
        get(&second, "cbk_apply_last_success_timestamp_seconds", &[]),
        Some(success),
        "a failed run must not move the last success"
    );
    assert_eq!(get(&second, "cbk_apply_last_run_success", &[]), Some(0.0));

    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["cbk-nightly.prom"],
        "no temporary files left behind"
    );
}

#[test]
fn write_into_a_missing_folder_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("cbk.prom");
    let run = planned();
    let err = metrics::write_metrics_file(&path, &run, &report(&run, None), Duration::ZERO)
        .expect_err("no folder");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
