//! Issue 17 item 10 and issue 13 point 1, over the real test cluster (sshd hosts + the node
//! emulator + moto behind a fault proxy):
//! - a permanently failing UploadPart (403 AccessDenied) fails the backup within seconds, with
//!   S3's error code in the summary, instead of hanging the apply forever;
//! - SIGTERM during uploads that stall (a retryable condition) stops the apply like the first
//!   Ctrl-C (exit 130, `run_finished{interrupted}`), promptly, and the agents stop too.

use crate::support;

use crate::support::crash::{self, wait_max};
use crate::support::e2e::{Env, setup};
use crate::support::s3::{FaultAction, FaultProxy, Faults, S3Server};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// 36 MiB: seven 5 MiB parts and a last one.
const BIG: u64 = 36 * 1024 * 1024;

fn upload_part_rule(env: &Env) -> String {
    format!("^PUT /{}/prod/nodes/.*[?&]partNumber=", env.bucket)
}

/// Waits until the proxy stalls an UploadPart (so uploads are under way).
fn wait_stalled_part(proxy: &FaultProxy, child: &mut Child, max: Duration) {
    let deadline = Instant::now() + max;
    loop {
        if proxy.counts().stalled > 0 {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("apply ended ({status}) before any UploadPart");
        }
        assert!(Instant::now() < deadline, "no UploadPart within {max:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn last_run_status(state: &Path) -> Option<cbk::exec::RunStatus> {
    crash::assert_journals_replay(state)
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_part_403_fails_fast_with_the_s3_code() {
    let env = setup("4.1").await;
    let host = env.cluster.hosts()[0].clone();
    let big = env.big_data_file(&host, BIG);
    let proxy = FaultProxy::start(&env.moto.endpoint(), Faults::NONE);
    proxy.set_rules(&[(upload_part_rule(&env).as_str(), FaultAction::E403)]);
    let plan = env.backup_plan_5mib_parts(&proxy.endpoint());
    let now = "2026-12-07T10:00:00Z";
    let saved = env.save_plan(&plan, now);
    let state = env.state(now);
    let started = Instant::now();
    // Plain progress prints every retry, so a retried 403 would show.
    let mut child = crash::spawn_apply_progress(&saved, &state, &env.store_env(), "plain");
    let r = wait_max(&mut child, Duration::from_secs(120));
    let took = started.elapsed();
    let Some((code, out)) = r else {
        for r in proxy
            .requests()
            .iter()
            .filter(|r| r.status != Some(200) || r.query.contains("upload"))
        {
            eprintln!(
                "{} {}?{} {:?} {:?}",
                r.method, r.path, r.query, r.status, r.fault
            );
        }
        panic!("the apply still ran after {took:?} (403 on every UploadPart of {big})");
    };
    eprintln!("apply took {took:?}:\n{out}");
    assert_eq!(code, 1, "{out}");
    let failed: Vec<&str> = out.lines().filter(|l| l.contains("AccessDenied")).collect();
    assert!(
        failed
            .iter()
            .any(|l| l.contains("UploadPart") && l.contains("403")),
        "the failure names the call, AccessDenied and HTTP 403: {out}"
    );
    assert!(
        !out.contains("retrying upload"),
        "a 403 is not retried: {out}"
    );
    // Nothing retried a 403: each part number was refused at most once per upload.
    let parts = proxy
        .requests()
        .iter()
        .filter(|r| r.query.contains("partNumber="))
        .count();
    assert!(
        parts <= 8,
        "{parts} UploadPart requests for one 36 MiB object"
    );
    assert_eq!(last_run_status(&state), Some(cbk::exec::RunStatus::Failed));
    // The apply returns within seconds of the first refusal, not after timeouts.
    assert!(took < Duration::from_secs(90), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_stalled_uploads() {
    let env = setup("4.1").await;
    let host = env.cluster.hosts()[0].clone();
    env.big_data_file(&host, BIG);
    let proxy = FaultProxy::start(&env.moto.endpoint(), Faults::NONE);
    // A link that stopped moving: every UploadPart stalls for 10 minutes (retryable: the SDK
    // waits for its attempt timeout, then tries again).
    proxy.set_rules(&[(upload_part_rule(&env).as_str(), FaultAction::Stall(600_000))]);
    let plan = env.backup_plan_5mib_parts(&proxy.endpoint());
    let now = "2026-12-07T11:00:00Z";
    let saved = env.save_plan(&plan, now);
    let state = env.state(now);
    let mut child = crash::spawn_apply_env(&saved, &state, &env.store_env());
    wait_stalled_part(&proxy, &mut child, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let Some((code, out)) = wait_max(&mut child, Duration::from_secs(30)) else {
        panic!("SIGTERM did not stop the apply within 30 s");
    };
    let took = sent.elapsed();
    eprintln!("stopped {took:?} after SIGTERM:\n{out}");
    assert_eq!(code, 130, "{out}");
    assert!(out.contains("Apply interrupted"), "{out}");
    assert_eq!(
        last_run_status(&state),
        Some(cbk::exec::RunStatus::Interrupted)
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // No agent keeps uploading after the controller stopped: agents notice within their
    // heartbeat (2 s) that nobody reads them and exit.
    std::thread::sleep(Duration::from_secs(5));
    let before = proxy.requests().len();
    std::thread::sleep(Duration::from_secs(4));
    let after = proxy.requests().len();
    assert_eq!(before, after, "requests went on 5 s after the apply ended");
}

// ---- Issue 13 point 1: one grammar for sizes and durations, applied where validated. ----

/// A valid backup plan storing to a local folder, with `extra` appended to its sections.
fn unit_plan(dir: &Path, storage_extra: &str, extra: &str) -> std::path::PathBuf {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let text = format!(
        r#"version = 1
kind = "backup"

[cluster]
name = "prod"
hosts = ["cass-01"]

[storage]
url = "file://{store}"
{storage_extra}

[backup]
name = '{{{{ now | strftime("%Y%m%dT%H%M") }}}}'
{extra}
"#,
        store = store.display()
    );
    let p = dir.join("plan.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn validate(plan: &Path) -> (i32, String) {
    support::run_cbk(&["validate", &plan.display().to_string()], &[])
}

/// `retention.grace = "1w"` validated, then prune fell back to 24 h without a word.
#[test]
fn prune_applies_a_grace_of_one_week() {
    let dir = tempfile::tempdir().unwrap();
    // An (empty) repository: prune refuses a folder without the marker.
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    std::fs::write(
        dir.path().join("store/cbk-repository.json"),
        r#"{"format": "cbk-repository", "version": 1}"#,
    )
    .unwrap();
    for (grace, secs) in [
        (None, 86_400u64),
        (Some("1w"), 604_800),
        (Some("2d 12h"), 216_000),
        (Some("90m"), 5_400),
    ] {
        let line = grace.map_or(String::new(), |g| format!("grace = \"{g}\""));
        let plan = unit_plan(
            dir.path(),
            "",
            &format!("\n[retention]\nkeep_last = 3\n{line}"),
        );
        let (code, out) = validate(&plan);
        assert_eq!(code, 0, "{out}");
        let (code, out) = support::run_cbk(
            &[
                "prune",
                "--plan",
                &plan.display().to_string(),
                "--dry-run",
                "--json",
            ],
            &[],
        );
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["grace_seconds"], secs, "grace {grace:?}: {out}");
    }
    // Calendar units with no fixed length are refused at validate time.
    let plan = unit_plan(
        dir.path(),
        "",
        "\n[retention]\nkeep_last = 3\ngrace = \"1mo\"",
    );
    let (code, out) = validate(&plan);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("invalid duration `1mo`"), "{out}");
    assert!(out.contains("no fixed length"), "{out}");
}

/// `part_size = "8M"` was checked as 8,000,000 bytes and used as 8 MiB; `"5.5MiB"` was
/// refused by the loader and accepted by S3. One grammar now: `M` is refused as ambiguous
/// (with the two spellings to choose from), decimals work everywhere.
#[test]
fn part_size_has_one_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let plan = unit_plan(dir.path(), "part_size = \"8M\"", "");
    let (code, out) = validate(&plan);
    assert_ne!(code, 0, "8M must be refused: {out}");
    assert!(out.contains("invalid size `8M`"), "{out}");
    assert!(out.contains("`8MiB`") && out.contains("`8MB`"), "{out}");
    assert!(
        out.contains("plan.toml:10:13"),
        "the diagnostic points at the value: {out}"
    );
    for ok in ["5.5MiB", "8MiB", "8MB", "16 MiB"] {
        let plan = unit_plan(dir.path(), &format!("part_size = \"{ok}\""), "");
        let (code, out) = validate(&plan);
        assert_eq!(code, 0, "{ok}: {out}");
    }
    // Below S3's 5 MiB minimum (5,000,000 bytes is less than 5 MiB).
    let plan = unit_plan(dir.path(), "part_size = \"5MB\"", "");
    let (code, out) = validate(&plan);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("invalid part size `5MB`"), "{out}");
}

/// `connect_timeout = "-5s"` was accepted; `"0s"` is meaningless too.
#[test]
fn connect_timeout_must_be_positive() {
    let dir = tempfile::tempdir().unwrap();
    for (t, msg) in [
        (
            "-5s",
            "invalid duration `-5s`: a duration cannot be negative",
        ),
        ("0s", "a connect timeout must be more than 0"),
        ("ten seconds", "invalid duration `ten seconds`"),
    ] {
        let plan = unit_plan(
            dir.path(),
            "",
            &format!("\n[connection]\nconnect_timeout = \"{t}\""),
        );
        let (code, out) = validate(&plan);
        assert_ne!(code, 0, "{t}: {out}");
        assert!(out.contains(msg), "{t}: {out}");
        assert!(out.contains("plan.toml:16:19"), "{t}: {out}");
    }
}

/// `connect_timeout = "2m30s"` validated (jiff) and then failed at the first SSH connection
/// (ssh accepted only `<digits><unit>`). The loaded plan now connects over real sshd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_with_two_units_connects() {
    let c = support::cluster::TestCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let plan = unit_plan(
        dir.path(),
        "",
        &format!(
            "\n[connection]\ntransport = \"ssh\"\nconnect_timeout = \"2m30s\"\nssh_config = \"{}\"\nknown_hosts_file = \"{}\"",
            c.ssh_config().display(),
            c.known_hosts().display()
        ),
    );
    let (code, out) = validate(&plan);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&plan).unwrap();
    let resolved = cbk::graph::resolve("plan.toml", &text, "2026-12-07T10:00:00Z")
        .unwrap_or_else(|e| panic!("{e:?}"));
    let conn = resolved.plan.connection.clone();
    assert_eq!(
        conn.connect_timeout.as_ref().map(|t| t.get()),
        Some(Duration::from_secs(150))
    );
    let ssh = cbk::remote::for_host(&conn, &c.host_spec("node1"))
        .unwrap_or_else(|e| panic!("2m30s must be usable by ssh: {e}"));
    let out = ssh
        .exec(&cbk::remote::Cmd::new("hostname"))
        .await
        .expect("hostname over ssh");
    assert_eq!(out.stdout_str().trim(), "node1");
    ssh.close().await.expect("close");
}
