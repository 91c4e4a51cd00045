//! Parallel where safe (issue 16, point 3) over an emulated 3-node cluster on real sshd with
//! moto: `[restore] repair_parallelism = 2` repairs every host's primary token ranges with
//! `nodetool repair -st/-et`, two hosts at once, every range of the ring exactly once; the
//! default (1) keeps one host after the other. `limits.cluster_bandwidth` caps the restore's
//! fetches of all hosts together.

use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, setup_with};
use std::collections::BTreeMap;

/// One `nodetool repair` command as the emulator records it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Repair {
    keyspace: String,
    ranges: Vec<(String, String)>,
    start: f64,
    end: f64,
}

/// Every host learns the others' tokens (what gossip gives a real node), so `nodetool ring`
/// shows the whole ring; returns every host's tokens.
fn join_ring(c: &TestCluster) -> BTreeMap<String, Vec<i128>> {
    let tokens: BTreeMap<String, Vec<i128>> = c
        .hosts()
        .into_iter()
        .map(|h| {
            let info = c.sh(&h, "nodetool info -T");
            let t = info
                .lines()
                .filter(|l| l.starts_with("Token "))
                .map(|l| l.split(':').nth(1).unwrap().trim().parse().unwrap())
                .collect();
            (h, t)
        })
        .collect();
    for h in c.hosts() {
        for (peer, toks) in &tokens {
            if *peer != h {
                let list: Vec<String> = toks.iter().map(i128::to_string).collect();
                c.sh(
                    &h,
                    &format!(
                        "cassandra-emu add-peer --address {} --token-list={}",
                        c.address(peer),
                        list.join(",")
                    ),
                );
            }
        }
    }
    tokens
}

/// (host, repair) of every repair command recorded since the last call (the records are removed).
fn take_repairs(c: &TestCluster) -> Vec<(String, Repair)> {
    let mut out = Vec::new();
    for h in c.hosts() {
        let p = c.conf_dir(&h).join("emulator/repairs.jsonl");
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let _ = std::fs::remove_file(&p);
        for l in text.lines() {
            out.push((h.clone(), serde_json::from_str(l).unwrap()));
        }
    }
    out
}

/// The most repairs running at one moment (one host runs its calls one after the other).
fn concurrency(repairs: &[(String, Repair)]) -> usize {
    repairs
        .iter()
        .map(|(_, r)| {
            repairs
                .iter()
                .filter(|(_, o)| o.start <= r.start && r.start < o.end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn restore_plan(env: &Env, file: &str, extra: &str) -> std::path::PathBuf {
    env.plan(
        file,
        &env.cluster,
        &format!(
            "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n{extra}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_runs_by_token_range_on_two_hosts_at_once_and_covers_the_ring_once() {
    let env = setup_with("4.1", "--tokens 4").await;
    let c = &env.cluster;
    let tokens = join_ring(c);
    let (code, log) = env.apply(&env.backup_plan(), "2026-06-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    c.sh_all("cassandra-emu repair-duration 1500");
    take_repairs(c);

    let plan = restore_plan(&env, "restore-par.toml", "repair_parallelism = 2\n");
    let (shown, code, log) = env.plan_and_apply(&plan, "2026-06-01T03:00:00Z");
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        let line = shown
            .lines()
            .find(|l| l.contains(&format!("repair[{h}]")))
            .unwrap_or_else(|| panic!("no repair[{h}] in the plan: {shown}"));
        assert!(line.contains("ranges=primary"), "{line}");
        assert!(line.contains("(at most 2 at a time)"), "{line}");
    }
    let repairs = take_repairs(c);
    // One call per range: each host's primary ranges, so the whole ring exactly once.
    let mut ring: Vec<i128> = tokens.values().flatten().copied().collect();
    ring.sort_unstable();
    let mut want: Vec<(i128, i128)> = (0..ring.len())
        .map(|i| (ring[(i + ring.len() - 1) % ring.len()], ring[i]))
        .collect();
    want.sort_unstable();
    let mut got: Vec<(i128, i128)> = Vec::new();
    for (h, r) in &repairs {
        assert_eq!(r.keyspace, "shop");
        assert_eq!(r.ranges.len(), 1, "{h}: one range per call: {r:?}");
        let (s, e) = (&r.ranges[0].0, &r.ranges[0].1);
        let (s, e): (i128, i128) = (s.parse().unwrap(), e.parse().unwrap());
        assert!(
            tokens[h].contains(&e),
            "{h} repaired ({s},{e}], not its own range"
        );
        got.push((s, e));
    }
    got.sort_unstable();
    assert_eq!(
        got, want,
        "every range of the ring, exactly once: {repairs:?}"
    );
    assert_eq!(
        concurrency(&repairs),
        2,
        "two hosts repair at once, never three: {repairs:?}"
    );
    assert!(log.contains("4 primary ranges repaired"), "{log}");

    // The default: one host after the other, one call per keyspace on each (today's behaviour).
    let plan = restore_plan(&env, "restore-one.toml", "");
    let (shown, code, log) = env.plan_and_apply(&plan, "2026-06-01T04:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(
        shown
            .lines()
            .any(|l| l.contains("repair[node2]") && l.contains("(at most 1 at a time)")),
        "{shown}"
    );
    let repairs = take_repairs(c);
    assert_eq!(repairs.len(), 3, "{repairs:?}");
    assert_eq!(concurrency(&repairs), 1, "never two at once: {repairs:?}");
}

/// Bytes in the staging folders (files being written included).
fn staged_bytes(dirs: &[std::path::PathBuf]) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        rd.flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    dirs.iter().map(|d| walk(d)).sum()
}

/// The cluster cap: 3 nodes with 8, 30 and 46 MiB to fetch, `cluster_bandwidth = "1200KiB/s"`.
/// Every 60 s window of the fetch moves 60 s × the cap within 10% (measured as the bytes
/// arriving in the staging folders, sampled every 250 ms). The small node finishes after about
/// 20 s; a fixed split (a third each) would then leave a third of the cap unused and the first
/// window at about 78% of the cap, so the lower bound checks that its share is handed on.
#[tokio::test(flavor = "multi_thread")]
async fn fetches_share_the_cluster_bandwidth_and_hold_it_within_ten_percent() {
    const CAP: f64 = 1200.0 * 1024.0;
    let env = setup_with("4.1", "").await;
    let c = &env.cluster;
    for (h, mib) in [("node1", 8u64), ("node2", 30), ("node3", 46)] {
        env.big_data_file(h, mib << 20);
    }
    let (code, log) = env.apply(&env.backup_plan(), "2026-06-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let plan = env.plan(
        "restore-capped.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair = false\n[limits]\ncluster_bandwidth = \"1200KiB/s\"\n",
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let dirs: Vec<std::path::PathBuf> = c
            .hosts()
            .iter()
            // The staged copies only (not the run's `displaced/`, which the move fills later).
            .map(|h| {
                c.data_dir(h)
                    .join("cbk-staging/nightly-20260601T020000Z/shop")
            })
            .collect();
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            let mut samples: Vec<(f64, u64)> = Vec::new();
            let mut high = 0;
            // Bounded: the apply ends long before 10 minutes.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && t0.elapsed().as_secs() < 600 {
                high = high.max(staged_bytes(&dirs));
                samples.push((t0.elapsed().as_secs_f64(), high));
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            samples
        })
    };
    let (shown, code, log) = env.plan_and_apply(&plan, "2026-06-01T03:00:00Z");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    assert_eq!(code, 0, "{log}");
    assert!(shown.contains("limits.cluster_bandwidth"), "{shown}");
    let total = samples.last().unwrap().1;
    assert!(total >= 84 << 20, "staged {total} bytes");
    let first = samples.iter().find(|s| s.1 > 0).unwrap().0;
    let done = samples.iter().find(|s| s.1 == total).unwrap().0;
    let took = done - first;
    eprintln!(
        "fetched {total} bytes in {took:.1} s: {:.1}% of the cap on average",
        total as f64 / took / CAP * 100.0
    );
    assert!(took >= 62.0, "the fetch took {took:.1} s: no 60 s window");
    let at = |t: f64| {
        samples
            .iter()
            .take_while(|s| s.0 <= t)
            .last()
            .map_or(0, |s| s.1)
    };
    let mut worst = (f64::MAX, 0.0f64);
    let mut start = first;
    while start + 60.0 <= done {
        let ratio = (at(start + 60.0) - at(start)) as f64 / 60.0 / CAP;
        worst = (worst.0.min(ratio), worst.1.max(ratio));
        start += 0.5;
    }
    eprintln!(
        "60 s windows: between {:.1}% and {:.1}% of the cap",
        worst.0 * 100.0,
        worst.1 * 100.0
    );
    assert!(
        worst.0 >= 0.9 && worst.1 <= 1.1,
        "60 s windows moved between {:.1}% and {:.1}% of the cap",
        worst.0 * 100.0,
        worst.1 * 100.0
    );
}
