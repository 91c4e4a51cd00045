//! Issue 17 item 10 and issue 13 point 1, over the real test cluster (sshd hosts + the node
//! emulator + moto behind a fault proxy):
//! - a permanently failing UploadPart (403 AccessDenied) fails the backup within seconds, with
//!   S3's error code in the summary, instead of hanging the apply forever;
//! - SIGTERM during uploads that stall (a retryable condition) stops the apply like the first
//!   Ctrl-C (exit 130, `run_finished{interrupted}`), promptly, and the agents stop too.

mod support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};
use support::crash;
use support::e2e::{Env, setup};
use support::s3::{FaultAction, FaultProxy, Faults, S3Server};

/// 36 MiB: seven 5 MiB parts and a last one.
const BIG: u64 = 36 * 1024 * 1024;

/// Replaces one live Data.db of `shop.orders` on `host` by `BIG` random bytes (with a matching
/// Digest, so the backup reads it as a healthy sstable). Returns its path.
fn big_component(env: &Env, host: &str) -> String {
    env.cluster.sh(
        host,
        &format!(
            "cd /var/lib/cassandra && f=$(ls data*/shop/orders-*/*-Data.db | head -1) && \
             head -c {BIG} /dev/urandom > $f && \
             python3 -c 'import sys,zlib; print(zlib.crc32(open(sys.argv[1],\"rb\").read()))' $f > ${{f%Data.db}}Digest.crc32 && \
             echo $f"
        ),
    )
    .trim()
    .to_string()
}

/// A backup plan through `proxy` with 5 MiB parts.
fn plan(env: &Env, proxy: &FaultProxy) -> std::path::PathBuf {
    let p = env.backup_plan_via("backup.toml", "snapshot", &proxy.endpoint());
    let mut text = std::fs::read_to_string(&p).unwrap();
    assert!(text.trim_end().ends_with("secret_access_key_env = \"CBK_TEST_S3_SECRET\""));
    text.push_str("part_size = \"5MiB\"\n");
    std::fs::write(&p, text).unwrap();
    p
}

/// Waits up to `max` for the child to exit; kills it (and its agents) and returns `None` when
/// it is still running then.
fn wait_max(child: &mut Child, max: Duration) -> Option<(i32, String)> {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let mut out = String::new();
            use std::io::Read;
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            let _ = child.stderr.take().unwrap().read_to_string(&mut out);
            return Some((child.wait().unwrap().code().unwrap_or(-1), out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crash::crash(child);
    let mut out = String::new();
    use std::io::Read;
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.stderr.take().unwrap().read_to_string(&mut out);
    eprintln!("killed after {max:?}; its output:\n{out}");
    None
}

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
    let big = big_component(&env, &host);
    let proxy = FaultProxy::start(&env.moto.endpoint(), Faults::NONE);
    proxy.set_rules(&[(upload_part_rule(&env).as_str(), FaultAction::E403)]);
    let plan = plan(&env, &proxy);
    let now = "2026-12-07T10:00:00Z";
    let saved = env.save_plan(&plan, now);
    let state = env.state(now);
    let started = Instant::now();
    let mut child = crash::spawn_apply_env(&saved, &state, &env.store_env());
    let r = wait_max(&mut child, Duration::from_secs(120));
    let took = started.elapsed();
    let Some((code, out)) = r else {
        for r in proxy
            .requests()
            .iter()
            .filter(|r| r.status != Some(200) || r.query.contains("upload"))
        {
            eprintln!("{} {}?{} {:?} {:?}", r.method, r.path, r.query, r.status, r.fault);
        }
        panic!("the apply still ran after {took:?} (403 on every UploadPart of {big})");
    };
    eprintln!("apply took {took:?}:\n{out}");
    assert_eq!(code, 1, "{out}");
    let failed: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("AccessDenied"))
        .collect();
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
    assert!(parts <= 8, "{parts} UploadPart requests for one 36 MiB object");
    assert_eq!(last_run_status(&state), Some(cbk::exec::RunStatus::Failed));
    // The apply returns within seconds of the first refusal, not after timeouts.
    assert!(took < Duration::from_secs(90), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_stalled_uploads() {
    let env = setup("4.1").await;
    let host = env.cluster.hosts()[0].clone();
    big_component(&env, &host);
    let proxy = FaultProxy::start(&env.moto.endpoint(), Faults::NONE);
    // A link that stopped moving: every UploadPart stalls for 10 minutes (retryable: the SDK
    // waits for its attempt timeout, then tries again).
    proxy.set_rules(&[(upload_part_rule(&env).as_str(), FaultAction::Stall(600_000))]);
    let plan = plan(&env, &proxy);
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
