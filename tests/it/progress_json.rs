//! `cbk apply --progress json` as a log shipper sees it: every line cbk prints (stdout and
//! stderr) is a JSON event valid against schemas/progress-event.schema.json, `run_started` comes
//! first and `run_finished` (status, counts, exit code) last, for a backup over the `fs` store, a
//! backup over the test cluster and moto, a failing run, an interrupted and resumed run, and the
//! refusals; and the `jq` examples of the docs work on that output as written.

use crate::support;

use crate::support::emu::EmuNode;
use crate::support::{sigint, sigint_until_exit, wait_for};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cbk() -> Command {
    let mut c = Command::new(support::CBK);
    c.stdin(Stdio::null()).env("NO_COLOR", "1");
    c
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/progress-event.schema.json"))
        .expect("schemas/progress-event.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// The events of one apply: every line of stdout and stderr must be a JSON object with an
/// `event` and an `at`, valid against the schema; all of them are on stderr (stdout stays
/// empty), in the order they happened.
fn events(out: &Output) -> Vec<Value> {
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    let schema = validator();
    let mut all = Vec::new();
    for (stream, text) in [("stdout", &so), ("stderr", &se)] {
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{stream} line is not JSON ({e}): {line}\n{so}\n{se}"));
            assert!(v["event"].is_string(), "no `event` in {line}");
            assert!(v["at"].is_string(), "no `at` in {line}");
            let errors: Vec<String> = schema.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{line} does not match the schema: {errors:?}"
            );
            all.push(v);
        }
    }
    assert!(
        so.is_empty(),
        "stdout must stay empty: every event is on stderr:\n{so}"
    );
    all
}

fn kinds(ev: &[Value]) -> Vec<&str> {
    ev.iter()
        .map(|e| e["event"].as_str().unwrap_or(""))
        .collect()
}

/// The `run_finished` event, which must be the last one, with the exit code of the process.
fn finished<'a>(ev: &'a [Value], out: &Output) -> &'a Value {
    let last = ev.last().expect("some events");
    assert_eq!(last["event"], "run_finished", "{:?}", kinds(ev));
    assert_eq!(
        last["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{last}"
    );
    assert_eq!(
        kinds(ev).iter().filter(|k| **k == "run_finished").count(),
        1
    );
    last
}

/// The `run_started` event, which must be the first one, followed by `plan`.
fn started(ev: &[Value]) -> &Value {
    let first = ev.first().expect("some events");
    assert_eq!(first["event"], "run_started", "{:?}", kinds(ev));
    assert_eq!(ev[1]["event"], "plan", "{:?}", kinds(ev));
    assert_eq!(kinds(ev).iter().filter(|k| **k == "run_started").count(), 1);
    first
}

fn task_statuses(ev: &[Value]) -> Vec<(String, String)> {
    ev.iter()
        .filter(|e| e["event"] == "task_finished")
        .map(|e| {
            (
                e["address"].as_str().unwrap_or("").to_string(),
                e["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A runbook of controller steps: `a` echoes, `b` runs `b_cmd` after `a`, `c` runs after `b`.
fn runbook(dir: &Path, name: &str, b_cmd: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"version = 1
kind = "runbook"

[cluster]
name = "demo"
hosts = ["h1"]

[[step]]
name = "a"
on = "controller"
run = "echo hello from a"

[[step]]
name = "b"
on = "controller"
run = "{b_cmd}"
after = ["a"]

[[step]]
name = "c"
on = "controller"
run = "true"
after = ["b"]
"#
    );
    std::fs::write(&path, text).expect("write");
    path
}

/// A command that waits (at most 30 s) for `gate` to exist.
fn wait_gate(gate: &Path) -> String {
    let g = gate.display();
    format!("for i in $(seq 600); do [ -e '{g}' ] && break; sleep 0.05; done; [ -e '{g}' ]")
}

fn apply_json(plan: &Path, state: &Path) -> Command {
    let mut c = cbk();
    c.args(["apply", "--yes", "--progress", "json", "--state"])
        .arg(state)
        .arg(plan);
    c
}

/// A backup over the `fs` store on one emulated node: run_started (plan, run, now, backup name,
/// task count) first, the plan listing, one task_finished per task, and run_finished with the
/// counts and exit code 0 last.
#[test]
fn progress_json_backup_over_fs_store_is_json_lines_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = EmuNode::start(dir, "4.1", 2, &[]);
    node.create_shop();
    node.fill_shop(2, 300, 100);
    let store = dir.join("store");
    let plan = dir.join("backup.toml");
    std::fs::write(
        &plan,
        node.local_plan(
            "n1",
            &store,
            "kind = \"backup\"\n[backup]\nname = \"b-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\nmode = \"snapshot\"\ninclude = [\"shop.*\"]\n",
        ),
    )
    .unwrap();
    let state = dir.join("state");
    let out = apply_json(&plan, &state)
        .args(["--now", "2026-12-01T01:30:00Z"])
        .env("CASSANDRA_CONF", &node.conf)
        .output()
        .unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", kinds(&ev));

    let s = started(&ev);
    assert_eq!(s["plan"], plan.display().to_string(), "{s}");
    assert_eq!(s["run"], "00000001", "{s}");
    assert_eq!(s["now"], "2026-12-01T01:30:00Z", "{s}");
    assert_eq!(s["backup"], "b-20261201T013000Z", "{s}");
    assert_eq!(s["resumed"], false, "{s}");
    let n = s["tasks"].as_u64().expect("task count") as usize;
    assert!(n >= 4, "{s}");

    let listing: Vec<&Value> = ev.iter().filter(|e| e["event"] == "plan").collect();
    assert_eq!(listing.len(), 1, "{:?}", kinds(&ev));
    let planned = listing[0]["tasks"].as_array().expect("tasks");
    assert_eq!(planned.len(), n);
    assert!(
        planned
            .iter()
            .any(|t| t["address"] == "upload[n1/shop.*]" && t["host"] == "n1"),
        "{}",
        listing[0]
    );
    let statuses = task_statuses(&ev);
    assert_eq!(statuses.len(), n, "{statuses:?}");
    assert!(statuses.iter().all(|(_, s)| s == "applied"), "{statuses:?}");

    let f = finished(&ev, &out);
    assert_eq!(f["status"], "ok", "{f}");
    assert_eq!(f["run"], "00000001", "{f}");
    assert_eq!(f["counts"]["applied"].as_u64(), Some(n as u64), "{f}");
    assert_eq!(f["counts"]["failed"].as_u64(), Some(0), "{f}");
    assert_eq!(f["tasks"].as_array().map(Vec::len), Some(n), "{f}");
    assert!(f["duration_ms"].is_u64(), "{f}");
    // The backup it reports is really in the store.
    assert!(store.join("catalog/b-20261201T013000Z.json").exists());
}

/// A failing step: each failure is an `error` event naming the task, and run_finished says
/// `failed` with exit code 1 and the counts (1 applied, 1 failed, 1 skipped).
#[test]
fn progress_json_failing_run_reports_failed_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = runbook(tmp.path(), "nightly", "echo disk full >&2; exit 3");
    let out = apply_json(&plan, &tmp.path().join("state"))
        .output()
        .unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(1), "{:?}", kinds(&ev));
    assert_eq!(started(&ev)["tasks"], 3);
    assert_eq!(
        task_statuses(&ev),
        vec![
            ("exec[a]".to_string(), "applied".to_string()),
            ("exec[b]".to_string(), "failed".to_string()),
            ("exec[c]".to_string(), "skipped".to_string()),
        ]
    );
    assert!(
        ev.iter()
            .any(|e| e["event"] == "message" && e["text"] == "exec[a]: hello from a"),
        "{ev:?}"
    );
    let err = ev
        .iter()
        .find(|e| e["event"] == "error")
        .expect("an error event");
    assert_eq!(err["address"], "exec[b]", "{err}");
    assert!(
        err["text"]
            .as_str()
            .is_some_and(|t| t.contains("status 3") && t.contains("disk full")),
        "{err}"
    );
    let f = finished(&ev, &out);
    assert_eq!(f["status"], "failed", "{f}");
    assert_eq!(f["exit_code"], 1, "{f}");
    for (k, n) in [
        ("applied", 1),
        ("failed", 1),
        ("skipped", 1),
        ("not_started", 0),
    ] {
        assert_eq!(f["counts"][k], n, "{k}: {f}");
    }
    let failed = f["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["address"] == "exec[b]")
        .expect("exec[b] in the summary");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("status 3"))
    );
}

/// A metrics file that cannot be written: an `error` event, then run_finished with status ok
/// and exit code 1 (the run is done, monitoring cannot see it).
#[test]
fn progress_json_unwritable_metrics_file_is_an_error_event() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = runbook(tmp.path(), "nightly", "true");
    let out = apply_json(&plan, &tmp.path().join("state"))
        .arg("--metrics-file")
        .arg(tmp.path().join("missing/dir/cbk.prom"))
        .output()
        .unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(1), "{ev:?}");
    assert!(
        ev.iter().any(|e| e["event"] == "error"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("cannot write metrics to"))),
        "{ev:?}"
    );
    let f = finished(&ev, &out);
    assert_eq!(f["status"], "ok", "{f}");
    assert_eq!(f["exit_code"], 1, "{f}");
}

/// Ctrl-C: run_finished says `interrupted` (exit 130); the same command again resumes the run
/// (run_started first with `resumed: true` and the first run's `now`, even though cbk also says
/// it is resuming before taking the lock) and finishes it.
#[test]
fn progress_json_interrupted_run_then_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = tmp.path().join("gate");
    let plan = runbook(tmp.path(), "nightly", &wait_gate(&gate));
    let state = tmp.path().join("state");
    let child = apply_json(&plan, &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("exec[b] to start", || {
        std::fs::read_to_string(state.join("runs/00000001.jsonl"))
            .is_ok_and(|t| t.contains("\"started\"") && t.contains("exec[b]"))
    });
    sigint(&child);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&gate, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(130), "{ev:?}");
    let first_now = started(&ev)["now"].clone();
    assert!(
        ev.iter().any(|e| e["event"] == "warning"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Interrupted"))),
        "{ev:?}"
    );
    let f = finished(&ev, &out);
    assert_eq!(f["status"], "interrupted", "{f}");
    assert_eq!(f["counts"]["not_started"], 1, "{f}");

    let out = apply_json(&plan, &state).output().unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(0), "{ev:?}");
    let s = started(&ev);
    assert_eq!(s["resumed"], true, "{s}");
    assert_eq!(s["run"], "00000001", "{s}");
    assert_eq!(s["now"], first_now, "{s}");
    assert!(
        ev.iter().any(|e| e["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("resuming run"))),
        "{ev:?}"
    );
    let f = finished(&ev, &out);
    assert_eq!(f["status"], "ok", "{f}");
    assert_eq!(f["resumed"], true, "{f}");
    assert_eq!(f["counts"]["already_done"], 2, "{f}");
    assert_eq!(f["counts"]["applied"], 1, "{f}");
}

/// What ends an apply before or outside a run is one `error` event with the exit code, last:
/// no confirmation, an invalid plan, a held lock, a second Ctrl-C; superseding an unfinished
/// run is a `warning`; an already applied saved plan is an `already_applied` event with exit
/// code 0.
#[test]
fn progress_json_refusals_and_errors_are_events_with_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let last_error = |out: &Output, code: i32| -> Value {
        let ev = events(out);
        assert_eq!(out.status.code(), Some(code), "{ev:?}");
        let last = ev.last().expect("an event").clone();
        assert_eq!(last["event"], "error", "{ev:?}");
        assert_eq!(last["exit_code"], code, "{last}");
        assert!(!kinds(&ev).contains(&"run_started"), "{ev:?}");
        last
    };

    // No --yes and no terminal.
    let plan = runbook(dir, "p", "true");
    let out = cbk()
        .args(["apply", "--progress", "json"])
        .arg(&plan)
        .output()
        .unwrap();
    let e = last_error(&out, 75);
    assert!(e["text"].as_str().unwrap().contains("pass --yes"), "{e}");

    // An invalid plan: the diagnostics, without colours, in the event.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "version = 1\nkind = \"backup\"\nretension = 3\n").unwrap();
    let out = apply_json(&bad, &dir.join("s-bad")).output().unwrap();
    let e = last_error(&out, 1);
    let text = e["text"].as_str().unwrap();
    assert!(text.contains("retension"), "{e}");
    assert!(!text.contains('\u{1b}'), "no terminal colours: {e}");

    // A held lock: a running apply holds it.
    let gate = dir.join("gate");
    let slow = runbook(dir, "slow", &wait_gate(&gate));
    let state = dir.join("s-slow");
    let mut first = apply_json(&slow, &state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first apply to hold the lock", || {
        std::fs::read_to_string(state.join("runs/00000001.jsonl"))
            .is_ok_and(|t| t.contains("exec[b]"))
    });
    let out = apply_json(&slow, &state).output().unwrap();
    std::fs::write(&gate, "").unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
    let e = last_error(&out, 75);
    assert!(e["text"].as_str().unwrap().contains("lock"), "{e}");

    // A second Ctrl-C aborts at once: the last event says so, with 130.
    let gate2 = dir.join("gate2");
    let slow2 = runbook(dir, "slow2", &wait_gate(&gate2));
    let state2 = dir.join("s-slow2");
    let mut child = apply_json(&slow2, &state2)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for("exec[b] to start", || {
        std::fs::read_to_string(state2.join("runs/00000001.jsonl"))
            .is_ok_and(|t| t.contains("\"started\"") && t.contains("exec[b]"))
    });
    sigint(&child);
    std::thread::sleep(Duration::from_millis(200));
    sigint_until_exit(&mut child);
    let out = child.wait_with_output().unwrap();
    std::fs::write(&gate2, "").unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(130), "{ev:?}");
    assert_eq!(started(&ev)["run"], "00000001");
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "error", "{ev:?}");
    assert_eq!(last["exit_code"], 130, "{last}");
    assert!(
        last["text"].as_str().unwrap().starts_with("Aborted"),
        "{last}"
    );

    // Another plan over that unfinished run supersedes it and says so, after run_started/plan.
    let out = apply_json(&plan, &state2).output().unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(0), "{ev:?}");
    assert_eq!(started(&ev)["run"], "00000002");
    let w = ev
        .iter()
        .position(|e| {
            e["event"] == "warning"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("superseding unfinished run 00000001"))
        })
        .unwrap_or_else(|| panic!("a supersede warning: {ev:?}"));
    assert!(w > 1, "{ev:?}");
    assert_eq!(finished(&ev, &out)["status"], "ok");

    // A saved plan applied twice: the second time there is nothing to do.
    let saved = dir.join("p.json");
    let made = cbk()
        .args(["plan", "--out"])
        .arg(&saved)
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let state3 = dir.join("s-saved");
    let out = apply_json(&saved, &state3).output().unwrap();
    let ev = events(&out);
    assert_eq!(finished(&ev, &out)["status"], "ok");
    let out = apply_json(&saved, &state3).output().unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(kinds(&ev), vec!["already_applied"], "{ev:?}");
    assert_eq!(ev[0]["exit_code"], 0);
    assert_eq!(ev[0]["run"], "00000001");
}

/// The `jq` command lines of the docs (`journalctl … | jq …` and `jq … FILE`), taken from the
/// Markdown as written, run over real output: a night that failed and one that succeeded, as
/// `journalctl -u UNIT -o cat` shows them (with systemd's own lines about the unit between) and
/// as the cron example's log file holds them. Each must succeed and select something.
#[test]
fn progress_json_docs_jq_examples_work_as_written() {
    if Command::new("jq").arg("--version").output().is_err() {
        eprintln!("jq not installed; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let failing = runbook(dir, "nightly-backup", "echo disk full >&2; exit 3");
    let out = apply_json(&failing, &dir.join("s1")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let night1 = String::from_utf8_lossy(&out.stderr).into_owned();
    let fixed = runbook(dir, "nightly-backup", "true");
    let out = apply_json(&fixed, &dir.join("s2")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let night2 = String::from_utf8_lossy(&out.stderr).into_owned();
    let journal = format!(
        "Starting cbk-backup.service - Nightly cbk backup...\n{night1}cbk-backup.service: Main process exited, code=exited, status=1/FAILURE\n\
         cbk-backup.service: Failed with result 'exit-code'.\nFailed to start cbk-backup.service - Nightly cbk backup.\n\
         Starting cbk-backup.service - Nightly cbk backup...\n{night2}cbk-backup.service: Deactivated successfully.\nFinished cbk-backup.service - Nightly cbk backup.\n"
    );
    std::fs::write(dir.join("nightly-backup.log"), format!("{night1}{night2}")).unwrap();

    let mut found = 0;
    for doc in ["docs/monitoring.md", "docs/scheduling.md", "docs/apply.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        for line in text.lines() {
            let line = line.trim();
            let cmd = if let Some((_, jq)) = line.split_once("| jq ") {
                format!("jq {jq}")
            } else if line.starts_with("jq ") {
                line.to_string()
            } else {
                continue;
            };
            found += 1;
            let out = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .current_dir(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(journal.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            let so = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{doc}: `{line}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!so.trim().is_empty(), "{doc}: `{line}` selected nothing");
        }
    }
    assert!(
        found >= 3,
        "the docs should show jq examples (found {found})"
    );
}

/// A backup over the test cluster (ssh, node agents, moto) with `--log debug`: the log records
/// of the run (the S3 client's, cbk's) are events too.
#[tokio::test(flavor = "multi_thread")]
async fn progress_json_backup_over_the_test_cluster() {
    let cluster = support::cluster::TestCluster::start(1);
    support::e2e::init_nodes(&cluster, "4.1");
    let moto = support::s3::Moto::start();
    let bucket = support::s3::new_bucket(&moto).await;
    let env = support::e2e::Env {
        cluster,
        moto,
        bucket,
        dir: tempfile::tempdir().unwrap(),
    };
    let plan = env.backup_plan();
    let state = env.dir.path().join("state");
    let mut cmd = apply_json(&plan, &state);
    cmd.args(["--now", "2026-12-02T01:30:00Z", "--log", "debug"]);
    for (k, v) in env.store_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(0), "{ev:?}");
    let s = started(&ev);
    assert_eq!(s["backup"], "nightly-20261202T013000Z", "{s}");
    assert!(
        ev.iter()
            .any(|e| e["event"] == "log" && e["level"] == "debug" && e["target"].is_string()),
        "debug log records are events: {:?}",
        kinds(&ev)
    );
    let f = finished(&ev, &out);
    assert_eq!(f["status"], "ok", "{f}");
    assert_eq!(f["counts"]["applied"].as_u64(), s["tasks"].as_u64(), "{f}");
}
