//! Kill -9 of a restore apply (Node Restart Method; local transport, fs store, emulated node)
//! at 10+ seeded moments: during `fetch`, around `stop`, during `move`, around `start`, and at
//! random times. Each round damages the node (a deleted Data.db, a new sstable written after
//! the backup), then restores with kills until an apply finishes. After every round:
//! - the live sstables equal the backed-up ones (sha256 of every file);
//! - the node is running;
//! - no data is lost: every sstable file that was live before the restore is now live or kept
//!   among the displaced files in staging (by content);
//! - staging holds no staged copies any more, and every journal replays.

use crate::support::crash::{self, Attempt};
use crate::support::emu::EmuNode;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const KILLS: usize = 12;
/// Tasks whose run a kill aims at.
const TARGETS: [&str; 5] = ["fetch[", "stop[", "clear_commitlog[", "move[", "start["];

fn plan_toml(node: &EmuNode, store: &std::path::Path, body: &str) -> String {
    node.local_plan("n1", store, body)
}

#[test]
fn restore_converges_after_sigkill_at_fetch_stop_and_move() {
    let seed = crash::seed(20261125);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let node = EmuNode::start(&dir, "4.1", 2, &[]);
    node.create_shop();
    node.fill_shop(3, 2000, 800);
    let store = dir.join("store");

    // One backup, not interrupted: the state every restore must return to.
    let backup = dir.join("backup.toml");
    std::fs::write(
        &backup,
        plan_toml(
            &node,
            &store,
            "kind = \"backup\"\n[backup]\nname = \"b-{{ now | strftime('%Y%m%d') }}\"\nmode = \"snapshot\"\ninclude = [\"shop.*\"]\n",
        ),
    )
    .unwrap();
    let saved = dir.join("backup.json");
    crash::save_plan(&node.conf, &backup, "2026-04-01T00:00:00Z", &saved);
    match crash::attempt(
        &node.conf,
        &saved,
        &dir.join("state-backup"),
        Duration::from_secs(300),
        || false,
    ) {
        Attempt::Finished { code, output } => assert_eq!(code, 0, "backup: {output}"),
        Attempt::Killed => unreachable!("never killed"),
    }
    let backed_up = node.live_sums("shop");
    assert!(backed_up.len() >= 2 * 3 * 8, "{}", backed_up.len());

    let restore = dir.join("restore.toml");
    std::fs::write(
        &restore,
        plan_toml(
            &node,
            &store,
            "kind = \"restore\"\n[restore]\nsource = \"b-20260401\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\n",
        ),
    )
    .unwrap();
    let staging = dir.join("staging");
    let mut kills = 0;
    let mut moments = Vec::new();
    for round in 1..=30 {
        // Damage: one Data.db gone, one sstable written after the backup.
        let victim = crash::inventory(&node.data_root)
            .into_keys()
            .find(|k| k.contains("/shop/customers-") && k.ends_with("-Data.db"))
            .expect("a customers Data.db");
        std::fs::remove_file(node.data_root.join(&victim)).unwrap();
        node.write_flush("shop", "orders", 50 + round);
        assert_ne!(node.live_sums("shop"), backed_up);
        let before = crash::sstable_digests(&node.data_root);

        let now = format!("2026-04-01T00:{:02}:00Z", round + 1);
        let saved = dir.join(format!("restore-{round}.json"));
        crash::save_plan(&node.conf, &restore, &now, &saved);
        let state = dir.join(format!("state-restore-{round}"));
        for attempt in 1.. {
            assert!(attempt < 30, "round {round}: no convergence");
            let kill = attempt <= 4;
            let target = TARGETS[rng.random_range(0..TARGETS.len())];
            let by_task = rng.random_bool(0.7);
            let delay = Duration::from_millis(if by_task {
                rng.random_range(0..300)
            } else {
                rng.random_range(100..4000)
            });
            let max = if !kill {
                Duration::from_secs(180)
            } else if by_task {
                Duration::from_secs(30)
            } else {
                delay
            };
            let mut seen_at: Option<Instant> = None;
            let mut what = String::new();
            let st = state.clone();
            let r = crash::attempt(&node.conf, &saved, &state, max, || {
                if !kill || !by_task {
                    return false;
                }
                let running = crash::running_tasks(&st);
                if seen_at.is_none() && running.iter().any(|t| t.starts_with(target)) {
                    seen_at = Some(Instant::now());
                }
                if seen_at.is_some_and(|t| t.elapsed() >= delay) {
                    what = format!("{delay:?} after {target}..] started, running {running:?}");
                    return true;
                }
                false
            });
            match r {
                Attempt::Killed => {
                    kills += 1;
                    if what.is_empty() {
                        what = format!("at {delay:?}, running {:?}", crash::running_tasks(&state));
                    }
                    moments.push(format!("round {round} attempt {attempt}: kill {what}"));
                }
                Attempt::Finished { code, output } => {
                    assert_eq!(
                        code, 0,
                        "round {round}: restore failed after kills {moments:#?}: {output}"
                    );
                    break;
                }
            }
        }
        assert_eq!(
            crash::assert_journals_replay(&state),
            Some(cbk::exec::RunStatus::Ok)
        );
        assert_eq!(
            node.live_sums("shop"),
            backed_up,
            "round {round}: live files differ from the backup; kills: {moments:#?}"
        );
        assert!(
            node.emu(&["status"]).contains("running"),
            "round {round}: node not running"
        );
        // No data lost: every file live before the restore is live now or kept displaced.
        let mut after = crash::sstable_digests(&node.data_root);
        for (d, n) in crash::sstable_digests(&staging) {
            *after.entry(d).or_insert(0) += n;
        }
        for (d, n) in &before {
            assert!(
                after.get(d).copied().unwrap_or(0) >= *n,
                "round {round}: a live file ({d}) was lost; kills: {moments:#?}"
            );
        }
        // Staging keeps only displaced files.
        let staged: Vec<String> = crash::inventory(&staging)
            .into_keys()
            .filter(|k| !k.contains("displaced"))
            .collect();
        assert!(
            staged.is_empty(),
            "round {round}: staging not cleaned: {staged:?}"
        );
        if kills >= KILLS {
            break;
        }
    }
    for m in &moments {
        eprintln!("{m}");
    }
    assert!(kills >= KILLS, "only {kills} kills");
    eprintln!(
        "crash_restore: seed {seed}, {kills} kills, {:?}",
        started.elapsed()
    );
}
