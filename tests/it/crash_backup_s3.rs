//! Kill -9 of a real backup apply of an emulated 3-node cluster (real sshd per host) storing to
//! moto, at seeded moments while uploads run. After each kill the apply is run again until it
//! finishes; then every backup must be complete and correct, and no object may have been
//! uploaded twice except uploads under way at a kill.
//!
//! Exactly-once evidence: the agents reach moto through a proxy (mitmproxy, no faults) that
//! logs every request with its start and end time. An upload (PutObject or
//! CompleteMultipartUpload) may have stored its object when it was answered 200 or cut off
//! without an answer (the agent died with its controller). It is "interrupted" when it was cut
//! off or under way at a kill moment. Per object key, the uploads that may have stored it and
//! were not interrupted must be at most one: a rerun that uploaded already stored objects
//! again, or an agent that kept uploading after its controller was killed (racing the rerun's
//! agent), fails the test. Every object a manifest references was uploaded.

use crate::support::crash::{self, Attempt};
use crate::support::e2e::{Env, assert_manifest_matches_live, read_json, setup, write_flush};
use crate::support::s3::{FaultAction, FaultProxy, Faults, LoggedRequest, S3Server};
use cbk::repo::manifest::{Catalog, NodeManifest};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KILLS: usize = 10;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One backup, killed until it finishes; records each kill as (just before, just after).
/// Each kill lands right after a seeded number of sstable uploads of that attempt completed,
/// so uploads are under way (an attempt that stores everything first is not killed).
fn killed_backup(
    env: &Env,
    proxy: &FaultProxy,
    plan: &Path,
    now: &str,
    rng: &mut rand::rngs::StdRng,
    kills: &mut Vec<(f64, f64)>,
    moments: &mut Vec<String>,
) {
    let saved = env.save_plan(plan, now);
    let state = env.state(now);
    let store_env = env.store_env();
    let mut killed_here = 0;
    let mut cursor = 0;
    proxy.requests_after(&mut cursor);
    for attempt in 1.. {
        assert!(
            attempt < 20,
            "{now}: no convergence after {attempt} attempts"
        );
        // At most 4 kills per backup.
        let kill = killed_here < 4;
        let target = rng.random_range(1..=16);
        let mut stored = 0;
        let mut polled = Instant::now();
        let mut at = 0.0;
        let r = crash::attempt_env(&store_env, &saved, &state, Duration::from_secs(300), || {
            if !kill || polled.elapsed() < Duration::from_millis(20) {
                return false;
            }
            polled = Instant::now();
            stored += proxy
                .requests_after(&mut cursor)
                .iter()
                .filter(|r| {
                    r.completed_object(&env.bucket)
                        .is_some_and(|k| k.contains("/sst/"))
                })
                .count();
            if stored >= target {
                at = unix_now();
                return true;
            }
            false
        });
        match r {
            Attempt::Killed => {
                assert!(at > 0.0, "{now}: attempt {attempt} timed out");
                kills.push((at, unix_now()));
                killed_here += 1;
                moments.push(format!(
                    "{now} attempt {attempt}: kill after {stored} uploads, running {:?}",
                    crash::running_tasks(&state)
                ));
            }
            Attempt::Finished { code, output } => {
                assert_eq!(
                    code, 0,
                    "{now}: apply failed after {killed_here} kills: {output}"
                );
                break;
            }
        }
        proxy.requests_after(&mut cursor);
    }
    assert_eq!(
        crash::assert_journals_replay(&state),
        Some(cbk::exec::RunStatus::Ok),
        "{now}: last journal did not finish ok"
    );
}

/// Per sstable object key: the uploads that may have stored it (answered 200, or cut off
/// without an answer), and how many of those were interrupted (under way at a kill, or cut
/// off).
fn uploads(
    requests: &[LoggedRequest],
    bucket: &str,
    kills: &[(f64, f64)],
) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in requests {
        if let Some(k) = r.stores_object(bucket)
            && k.contains("/sst/")
            && matches!(r.status, Some(200) | None)
        {
            let e = out.entry(k.to_string()).or_default();
            e.0 += 1;
            if r.status.is_none() || kills.iter().any(|(a, b)| r.t0 <= *b && r.t1 >= *a) {
                e.1 += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_backup_to_s3_converges_after_sigkill_during_uploads() {
    let seed = crash::seed(20261126);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let env = setup("4.1").await;
    let c = &env.cluster;
    let proxy = FaultProxy::start(&env.moto.endpoint(), Faults::NONE);
    // A slow link for sstable objects (250 ms per upload), so kills catch uploads under way.
    let sst_puts = format!("^PUT /{}/prod/nodes/", env.bucket);
    proxy.set_rules(&[(sst_puts.as_str(), FaultAction::Stall(250))]);
    let plan = env.backup_plan_via("backup.toml", "snapshot", &proxy.endpoint());
    let mut kills = Vec::new();
    let mut moments = Vec::new();
    let mut backups = Vec::new();
    for round in 0..10 {
        // New sstables every round so every backup has uploads to interrupt.
        for h in c.hosts() {
            for _ in 0..2 {
                write_flush(c, &h, 1500, 600);
            }
        }
        let now = format!("2026-05-01T00:{:02}:00Z", round + 1);
        killed_backup(
            &env,
            &proxy,
            &plan,
            &now,
            &mut rng,
            &mut kills,
            &mut moments,
        );
        backups.push(format!("nightly-20260501T00{:02}00Z", round + 1));
        if kills.len() >= KILLS {
            break;
        }
    }
    for m in &moments {
        eprintln!("{m}");
    }
    assert!(kills.len() >= KILLS, "only {} kills", kills.len());

    // Every backup is complete and intact. Nothing was compacted, so the newest one
    // references every object of the older ones: its objects, decompressed, must equal the
    // nodes' files.
    let store = env.store().await;
    let mut referenced = BTreeSet::new();
    let mut checked = 0;
    for (i, b) in backups.iter().enumerate() {
        let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{b}.json")).await;
        assert_eq!(catalog.hosts.len(), 3, "{b}");
        let mut keys = BTreeSet::new();
        for h in &catalog.hosts {
            let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
            if i + 1 == backups.len() {
                checked += assert_manifest_matches_live(store.as_ref(), c, &h.name, &m).await;
            }
            keys.extend(
                m.tables
                    .iter()
                    .flat_map(|t| t.files.iter().map(|f| f.key.clone())),
            );
        }
        assert!(
            keys.is_superset(&referenced),
            "{b} lost objects of an older backup"
        );
        referenced = keys;
        env.assert_verify_deep(&plan, b);
    }
    for h in c.hosts() {
        assert_eq!(
            c.sh(
                &h,
                "find /var/lib/cassandra -path '*/snapshots/*' -type f | wc -l"
            )
            .trim(),
            "0",
            "snapshot files left behind on {h}"
        );
    }
    // Nothing stored that no backup references.
    let stray: Vec<String> = store
        .list("nodes/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.contains("/sst/") && !referenced.contains(k))
        .collect();
    assert!(
        stray.is_empty(),
        "objects no manifest references: {stray:?}"
    );

    // Uploaded once, except uploads under way at a kill.
    let requests = proxy.requests();
    let per_key = uploads(&requests, &env.bucket, &kills);
    let twice: Vec<&String> = per_key
        .iter()
        .filter(|(_, (n, interrupted))| n - interrupted > 1)
        .map(|(k, _)| k)
        .collect();
    if let Some(first) = twice.first() {
        // When each upload of the first such object ran, relative to the last kill before it.
        let spans: Vec<String> = requests
            .iter()
            .filter(|r| r.stores_object(&env.bucket) == Some(first.as_str()))
            .map(|r| {
                let kill = kills
                    .iter()
                    .map(|k| k.0)
                    .filter(|k| *k <= r.t0)
                    .fold(0.0, f64::max);
                format!(
                    "{:?} {:.3}s..{:.3}s after a kill",
                    r.status,
                    r.t0 - kill,
                    r.t1 - kill
                )
            })
            .collect();
        panic!(
            "{} objects uploaded more than once beyond the interrupted uploads, e.g. {first}: {spans:?}",
            twice.len()
        );
    }
    for k in &referenced {
        assert!(
            per_key.contains_key(&format!("prod/{k}")),
            "{k} was never uploaded"
        );
    }
    let uploads_n: usize = per_key.values().map(|(n, _)| n).sum();
    let repeated: usize = per_key.values().map(|(n, _)| n - 1).sum();
    let interrupted: usize = per_key.values().map(|(_, i)| i).sum();
    let cut_off = requests
        .iter()
        .filter(|r| r.status.is_none() && r.stores_object(&env.bucket).is_some())
        .count();
    // The kills really hit uploads: object PUTs were under way at most of them.
    let during_puts = kills
        .iter()
        .filter(|(a, b)| {
            requests
                .iter()
                .any(|r| r.method == "PUT" && r.t0 <= *b && r.t1 >= *a)
        })
        .count();
    assert!(
        during_puts * 2 >= kills.len(),
        "only {during_puts} of {} kills hit an upload",
        kills.len()
    );
    eprintln!(
        "crash_backup_s3: seed {seed}, {} kills ({during_puts} with a PUT under way) over {} backups; \
         {} requests, {uploads_n} uploads of {} sstable objects ({interrupted} interrupted, {cut_off} of \
         all uploads cut off), {repeated} repeated; {checked} files checked; {:?}",
        kills.len(),
        backups.len(),
        requests.len(),
        per_key.len(),
        started.elapsed()
    );
}
