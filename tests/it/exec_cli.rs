//! `cbk apply`, `cbk state` and `cbk unlock` as a user runs them: exit codes and messages for
//! refusals (no confirmation, stale plan, held lock), Ctrl-C and resume.

use crate::exec_support::{planned_run, task};
use crate::support::cbk_command as cbk;
use crate::support::{sigint, sigint_until_exit, wait_for};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Writes a saved plan of controller `exec` tasks `(name, run, after)` into `dir`.
fn saved_plan(dir: &Path, source: &str, tasks: &[(&str, &str, &[&str])]) -> PathBuf {
    let tasks = tasks
        .iter()
        .map(|(name, run, after)| {
            let mut t = task(name, None, "s", after);
            t.spec = cbk::graph::spec::TaskSpec::from_parts(
                cbk::graph::run::TaskKind::Exec,
                serde_json::json!({ "run": run }),
            )
            .expect("exec params");
            t
        })
        .collect();
    let path = dir.join("plan.json");
    let run = planned_run(tasks, source);
    std::fs::write(&path, serde_json::to_vec_pretty(&run).expect("json")).expect("write");
    path
}

fn apply(plan: &Path, state: &Path) -> Command {
    let mut c = cbk();
    c.arg("apply")
        .arg(plan)
        .arg("--state")
        .arg(state)
        .args(["--progress", "plain"]);
    c
}

fn journal_has(state: &Path, needle: &str) -> bool {
    std::fs::read_to_string(state.join("runs/00000001.jsonl")).is_ok_and(|t| t.contains(needle))
}

#[test]
fn a_toml_plan_without_terminal_or_yes_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = dir.path().join("backup.toml");
    std::fs::write(&toml, "version = 1\n").expect("write");
    let out = cbk().arg("apply").arg(&toml).output().expect("run");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("without confirmation: no terminal to ask on; pass --yes"),
        "{err}"
    );
    assert!(!dir.path().join(".cbk").exists(), "nothing may be written");
}

#[test]
fn a_stale_saved_plan_is_refused_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("backup.toml");
    std::fs::write(&source, "version = 1\n").expect("write");
    let marker = dir.path().join("ran");
    let plan = saved_plan(
        dir.path(),
        source.to_str().expect("utf8"),
        &[("exec[a]", &format!("touch '{}'", marker.display()), &[])],
    );
    std::fs::write(&source, "version = 1\n# edited after planning\n").expect("write");
    let out = apply(&plan, &dir.path().join("state"))
        .output()
        .expect("run");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("refusing a stale plan: the source `")
            && err.contains("backup.toml` changed since the plan was made"),
        "{err}"
    );
    assert!(!marker.exists());
}

#[test]
fn a_held_lock_is_reported_with_its_holder_and_unlock_needs_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let plan = saved_plan(
        dir.path(),
        "/nonexistent.toml",
        &[("exec[slow]", "sleep 2", &[])],
    );
    let mut first = apply(&plan, &state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("the first apply to start its task", || {
        journal_has(&state, "\"started\"")
    });
    let out = apply(&plan, &state).output().expect("second");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(75), "{err}");
    let holder = format!("(pid {})", first.id());
    assert!(err.contains("the state is locked: lock "), "{err}");
    assert!(err.contains(&holder), "{err}");
    assert!(err.contains("for `apply` of "), "{err}");
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("lock")).expect("lock")).expect("json");
    let id = lock["id"].as_str().expect("id").to_string();
    assert!(err.contains(&format!("cbk unlock {id}")), "{err}");

    let st = cbk()
        .arg("state")
        .arg("--state")
        .arg(&state)
        .output()
        .expect("state");
    let (so, _) = text(&st);
    assert!(so.contains(&format!("Locked: lock {id} held by ")), "{so}");
    assert!(so.contains("running"), "{so}");

    let wrong = cbk()
        .args(["unlock", "0000", "--state"])
        .arg(&state)
        .output()
        .expect("unlock");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong).1.contains("no lock with id `0000`"));
    assert!(state.join("lock").exists());
    // The holder is alive: unlock refuses (removing its lock would let a second apply run at
    // the same time), names the holder and the way out.
    let live = cbk()
        .args(["unlock", &id, "--state"])
        .arg(&state)
        .output()
        .expect("unlock");
    let (_, live_err) = text(&live);
    assert_eq!(live.status.code(), Some(75), "{live_err}");
    assert!(live_err.contains("is alive"), "{live_err}");
    assert!(live_err.contains(&holder), "{live_err}");
    assert!(live_err.contains("--force"), "{live_err}");
    assert!(state.join("lock").exists());
    let second = apply(&plan, &state)
        .output()
        .expect("second after refused unlock");
    assert_eq!(second.status.code(), Some(75), "{:?}", text(&second));
    // --force removes it all the same (for a holder known to be hung), and says so.
    let forced = cbk()
        .args(["unlock", &id, "--force", "--state"])
        .arg(&state)
        .output()
        .expect("unlock --force");
    assert_eq!(forced.status.code(), Some(0), "{:?}", text(&forced));
    assert!(text(&forced).1.contains("warning: "), "{:?}", text(&forced));
    assert!(!state.join("lock").exists());
    assert_eq!(first.wait().expect("wait").code(), Some(0));
}

#[test]
fn unlock_removes_a_stale_remote_lock_of_a_dead_process_on_this_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    // A lock left by an apply on this host whose process is gone (pid 0 is never a process).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lock = serde_json::json!({
        "id": "deadbeef", "operation": "apply", "who": format!("root@{}", host.trim()),
        "pid": 999_999_999u32, "created": "2026-12-07T00:00:00Z", "plan": "p",
    });
    std::fs::write(store.join("lock.json"), lock.to_string()).unwrap();
    let url = format!("file://{}", store.display());
    let out = cbk()
        .args(["unlock", "deadbeef", "--state", &url])
        .output()
        .expect("unlock");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("stale"), "{:?}", text(&out));
    assert!(!store.join("lock.json").exists());
    // One from another host cannot be checked from here: without a terminal it needs --force.
    let other = serde_json::json!({
        "id": "cafe", "operation": "apply", "who": "root@elsewhere.example", "pid": 1u32,
        "created": "2026-12-07T00:00:00Z", "plan": "p",
    });
    std::fs::write(store.join("lock.json"), other.to_string()).unwrap();
    let out = cbk()
        .args(["unlock", "cafe", "--state", &url])
        .stdin(Stdio::null())
        .output()
        .expect("unlock");
    assert_eq!(out.status.code(), Some(75), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("elsewhere.example"),
        "{:?}",
        text(&out)
    );
    assert!(store.join("lock.json").exists());
    let out = cbk()
        .args(["unlock", "cafe", "--force", "--state", &url])
        .output()
        .expect("unlock --force");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(!store.join("lock.json").exists());
}

#[test]
fn ctrl_c_stops_at_a_safe_point_and_the_next_apply_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let log = dir.path().join("log");
    let l = log.display();
    let plan = saved_plan(
        dir.path(),
        "/nonexistent.toml",
        &[
            ("exec[a]", &format!("echo a >> '{l}'"), &[]),
            (
                "exec[b]",
                &format!("touch '{l}.b'; sleep 3; echo b >> '{l}'"),
                &["exec[a]"],
            ),
            ("exec[c]", &format!("echo c >> '{l}'"), &["exec[b]"]),
        ],
    );
    let child = apply(&plan, &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // b's command itself is running (not only journaled as started), with 3 s to go: Ctrl-C
    // lands while it runs even on a loaded machine.
    let started = PathBuf::from(format!("{l}.b"));
    wait_for("exec[b]'s command to start", || started.exists());
    sigint(&child);
    let out = child.wait_with_output().expect("wait");
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{so}\n{se}");
    assert!(se.contains("Interrupted: no new tasks start"), "{se}");
    assert!(
        so.contains("Apply interrupted (run the same apply again to resume)"),
        "{so}"
    );
    // b was let finish (a safe point), c never started.
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "a\nb\n");
    assert!(journal_has(&state, "\"status\":\"interrupted\""));

    let out = apply(&plan, &state).output().expect("resume");
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(
        so.contains("1 applied, 0 already satisfied, 2 done earlier"),
        "{so}"
    );
    assert!(so.contains(", resumed"), "{so}");
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "a\nb\nc\n");

    let st = cbk()
        .args(["state", "--json", "--state"])
        .arg(&state)
        .output()
        .expect("state");
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("json");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["serial"], 1);
    assert_eq!(v["attempts"], 2);
    let statuses: Vec<(&str, &str)> = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["address"].as_str().unwrap_or(""),
                t["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("exec[a]", "applied"),
            ("exec[b]", "applied"),
            ("exec[c]", "applied")
        ]
    );
}

#[test]
fn a_second_ctrl_c_aborts_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let plan = saved_plan(
        dir.path(),
        "/nonexistent.toml",
        &[("exec[long]", "sleep 3", &[])],
    );
    let mut child = apply(&plan, &state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for("exec[long] to start", || journal_has(&state, "\"started\""));
    let t = Instant::now();
    sigint(&child);
    std::thread::sleep(Duration::from_millis(200));
    sigint_until_exit(&mut child);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130));
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(text(&out).1.contains("Aborted. The next apply resumes"));
    // The journal is consistent: it replays and the task is `started` without an end.
    let recs = cbk::exec::journal::replay(&state.join("runs/00000001.jsonl")).expect("replay");
    let prior = cbk::exec::journal::Prior::from_records(&recs);
    assert!(prior.done.is_empty());
    assert_eq!(prior.finished, None);
}

#[test]
fn json_progress_is_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let plan = saved_plan(
        dir.path(),
        "/nonexistent.toml",
        &[
            ("exec[a]", "echo hello", &[]),
            ("exec[b]", "exit 2", &["exec[a]"]),
            ("exec[c]", "true", &["exec[b]"]),
        ],
    );
    let out = cbk()
        .arg("apply")
        .arg(&plan)
        .arg("--state")
        .arg(&state)
        .args(["--progress", "json"])
        .output()
        .expect("run");
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    let events: Vec<serde_json::Value> = se
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let finished: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "task_finished")
        .map(|e| {
            (
                e["address"].as_str().unwrap_or("").to_string(),
                e["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        finished,
        vec![
            ("exec[a]".to_string(), "applied".to_string()),
            ("exec[b]".to_string(), "failed".to_string()),
            ("exec[c]".to_string(), "skipped".to_string()),
        ]
    );
    assert!(events.iter().any(|e| e["text"] == "exec[a]: hello"));
    // The end summary is an event too (the last one); stdout stays empty.
    assert!(so.is_empty(), "{so}");
    let summary = events.last().expect("events");
    assert_eq!(summary["event"], "run_finished", "{summary}");
    let tasks = summary["tasks"].as_array().expect("tasks");
    assert_eq!(tasks[1]["address"], "exec[b]");
    assert_eq!(tasks[1]["error"], "command exited with status 2");
    assert_eq!(tasks[2]["address"], "exec[c]");
    assert_eq!(tasks[2]["reason"], "upstream failed: exec[b]");
}

/// A runbook of controller steps: `a` logs the run's `now`, `b` waits (at most 30 s) for `gate`.
fn runbook(dir: &Path, name: &str, log: &Path, gate: &Path) -> PathBuf {
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
run = "echo a {{{{ now }}}} >> '{log}'"

[[step]]
name = "b"
on = "controller"
run = "for i in $(seq 600); do [ -e '{gate}' ] && break; sleep 0.05; done; [ -e '{gate}' ] && echo b >> '{log}'"
after = ["a"]
"#,
        log = log.display(),
        gate = gate.display()
    );
    std::fs::write(&path, text).expect("write");
    path
}

/// `cbk apply x.toml` run again after kill -9 resumes the same run (same `now`, steps that
/// finished are not run again), in the plan's own state folder `.cbk/<stem>/`; `--fresh` starts
/// a new run, and superseding an unfinished run says so.
#[test]
fn a_toml_plan_killed_mid_run_resumes_with_its_now_in_its_own_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let gate = dir.path().join("gate");
    let plan = runbook(dir.path(), "nightly", &log, &gate);
    let other = runbook(dir.path(), "weekly", &dir.path().join("log2"), &gate);
    let state = dir.path().join(".cbk/nightly");
    // In its own process group, so kill -9 takes the whole tree (as cron or systemd would).
    let mut first = cbk()
        .args(["apply", "--yes", "--progress", "plain"])
        .arg(&plan)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn");
    wait_for("exec[b] to start", || {
        std::fs::read_to_string(state.join("runs/00000001.jsonl"))
            .is_ok_and(|t| t.contains("\"address\":\"exec[b]\""))
    });
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", first.id())])
        .status()
        .expect("kill");
    assert!(killed.success());
    first.wait().expect("wait");
    // The step's shell runs in a process group of its own (so cbk can stop it): end it as an
    // operator would, before it can see the gate.
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", &gate.display().to_string()])
        .status();
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.starts_with("a "), "{logged}");

    // Another plan in the same folder has its own state: it neither sees nor supersedes it.
    std::fs::write(&gate, "").expect("gate");
    let out = cbk()
        .args(["apply", "--yes", "--progress", "plain"])
        .arg(&other)
        .output()
        .expect("other plan");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(dir.path().join(".cbk/weekly/state.json").exists());

    // The same command again resumes: `a` is not run again, `now` is the first run's.
    let out = cbk()
        .args(["apply", "--yes", "--progress", "plain"])
        .arg(&plan)
        .output()
        .expect("resume");
    let (so, se) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(format!("{so}{se}").contains("resuming run"), "{so}\n{se}");
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        format!("{logged}b\n")
    );

    // `cbk state` alone in the plans' folder points at the per-plan state.
    let st = cbk()
        .arg("state")
        .current_dir(dir.path())
        .output()
        .expect("state");
    assert_eq!(st.status.code(), Some(1));
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains("`cbk state PLAN.toml`"), "{err}");
    assert!(err.contains("nightly") && err.contains("weekly"), "{err}");
    // `cbk state PLAN.toml` finds the plan's state.
    let st = cbk()
        .args(["state", "--json"])
        .arg(&plan)
        .output()
        .expect("state");
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("json");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["attempts"], 2, "{v}");

    // --fresh starts a new run (a new `now`) even though nothing is unfinished.
    let out = cbk()
        .args(["apply", "--yes", "--fresh", "--progress", "plain"])
        .arg(&plan)
        .output()
        .expect("fresh");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&log)
            .expect("log")
            .matches("a ")
            .count(),
        2
    );
}

/// `cbk apply --now TIME` (and CBK_NOW) fixes the run's `now`, as `cbk plan --now` does.
#[test]
fn apply_honours_now_and_cbk_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let gate = dir.path().join("gate");
    std::fs::write(&gate, "").expect("gate");
    let plan = runbook(dir.path(), "p", &log, &gate);
    let out = cbk()
        .args([
            "apply",
            "--yes",
            "--progress",
            "plain",
            "--now",
            "2026-01-02T03:04:05Z",
        ])
        .arg(&plan)
        .output()
        .expect("apply");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = cbk()
        .args(["apply", "--yes", "--fresh", "--progress", "plain"])
        .env("CBK_NOW", "2026-02-03T04:05:06Z")
        .arg(&plan)
        .output()
        .expect("apply");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("a 2026-01-02T03:04:05Z"), "{logged}");
    assert!(logged.contains("a 2026-02-03T04:05:06Z"), "{logged}");
}

/// `--lock-timeout` waits for a held lock instead of failing at once, and still fails (75, with
/// the holder) when the wait runs out.
#[test]
fn lock_timeout_waits_for_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let log = dir.path().join("log");
    let plan = saved_plan(
        dir.path(),
        "/nonexistent.toml",
        &[(
            "exec[slow]",
            &format!("sleep 2; echo slow >> '{}'", log.display()),
            &[],
        )],
    );
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let plan2 = saved_plan(
        &other,
        "/nonexistent.toml",
        &[(
            "exec[quick]",
            &format!("echo quick >> '{}'", log.display()),
            &[],
        )],
    );
    let mut first = apply(&plan, &state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("the first apply to start its task", || {
        journal_has(&state, "\"started\"")
    });
    // Too short a wait: refused with the holder named.
    let out = apply(&plan2, &state)
        .args(["--lock-timeout", "1s"])
        .output()
        .expect("short wait");
    assert_eq!(out.status.code(), Some(75), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("the state is locked"),
        "{:?}",
        text(&out)
    );
    // Long enough: runs once the first apply is done.
    let out = apply(&plan2, &state)
        .args(["--lock-timeout", "1m"])
        .output()
        .expect("long wait");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(first.wait().expect("wait").code(), Some(0));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "slow\nquick\n");
}

/// A metrics file that cannot be written fails the apply (exit 1, the path named): a monitoring
/// gap must not look like a successful run. The run itself is done and recorded.
#[test]
fn an_unwritable_metrics_file_fails_the_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let plan = saved_plan(dir.path(), "/nonexistent.toml", &[("exec[a]", "true", &[])]);
    let bad = dir.path().join("no-such-folder/cbk.prom");
    let out = apply(&plan, &state)
        .arg("--metrics-file")
        .arg(&bad)
        .output()
        .expect("apply");
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write metrics"), "{err}");
    assert!(err.contains("no-such-folder/cbk.prom"), "{err}");
    assert!(journal_has(&state, "\"status\":\"ok\""));
}
