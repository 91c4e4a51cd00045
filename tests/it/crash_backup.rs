//! Kill -9 of a real backup apply (local transport, fs store, emulated node) at 25+ seeded
//! moments, many of them while `upload` runs. After each kill the apply is run again until it
//! finishes; then the backup must be complete and correct, and no object may have been written
//! twice.
//!
//! Exactly-once evidence: the fs store writes every object to a temp file and renames it into
//! place, so rewriting an object gives it a new inode. After every kill the test records the
//! identity (inode, mtime, size) of every object in the store; at the end every object seen
//! after any kill must still have that identity (uploaded once, never again), every object a
//! node manifest references must exist and decompress to bytes with the manifest's CRC32 that
//! equal the live file, the store holds no sstable object no manifest references, the
//! snapshot is cleared, every journal replays and `cbk verify --deep` passes.

use crate::support;

use crate::support::crash::{self, Attempt, Ident};
use crate::support::emu::{EmuNode, cbk};
use cbk::repo::manifest::{Catalog, NodeManifest};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KILLS: usize = 25;

struct Env {
    _tmp: tempfile::TempDir,
    node: EmuNode,
    store: PathBuf,
    dir: PathBuf,
}

fn setup() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let node = EmuNode::start(&dir, "4.1", 2, &[]);
    node.create_shop();
    let store = dir.join("store");
    Env {
        _tmp: tmp,
        node,
        store,
        dir,
    }
}

impl Env {
    /// Writes the backup plan and saves `cbk plan` of it for the clock `now`.
    fn saved_plan(&self, now: &str) -> PathBuf {
        let text = format!(
            "version = 1\nkind = \"backup\"\n[backup]\nname = \"b-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\n\
             mode = \"snapshot\"\ninclude = [\"shop.*\"]\n[cluster]\nname = \"demo\"\nhosts = [\"n1\"]\n\n\
             [connection]\ntransport = \"local\"\n\n{}\n[storage]\nurl = \"file://{}\"\n",
            self.node.cassandra_section(),
            self.store.display()
        );
        let toml = self.dir.join("backup.toml");
        std::fs::write(&toml, text).unwrap();
        let out = self.dir.join(format!("backup-{now}.json"));
        crash::save_plan(&self.node.conf, &toml, now, &out);
        out
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> T {
        let p = self.store.join(key);
        serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{key}: {e}")))
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    }
}

/// Checks every file of the manifest at the store against the live file; returns the keys.
fn check_manifest(env: &Env, m: &NodeManifest) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for t in &m.tables {
        for f in &t.files {
            let stored = std::fs::read(env.store.join(&f.key))
                .unwrap_or_else(|e| panic!("object {} missing: {e}", f.key));
            let plain = support::decode_stored(&stored, f);
            if t.keyspace == "shop" {
                let live = Path::new(&m.node.data_dirs[f.data_dir])
                    .join(&t.keyspace)
                    .join(t.folder())
                    .join(&f.path);
                assert_eq!(
                    std::fs::read(&live).unwrap(),
                    plain,
                    "{} differs from {}",
                    f.key,
                    live.display()
                );
            }
            keys.insert(f.key.clone());
        }
    }
    keys
}

/// One backup, killed until it finishes. Returns the number of kills.
fn killed_backup(
    env: &Env,
    now: &str,
    rng: &mut rand::rngs::StdRng,
    seen: &mut BTreeMap<String, Ident>,
    moments: &mut Vec<String>,
) -> usize {
    let plan = env.saved_plan(now);
    let state = env.dir.join(format!("state-{now}"));
    let mut kills = 0;
    for attempt in 1.. {
        assert!(
            attempt < 40,
            "{now}: no convergence after {attempt} attempts"
        );
        // Half the kills land at a random moment, half a random time after `upload` started.
        let during_upload = rng.random_bool(0.5);
        let delay = Duration::from_millis(if during_upload {
            rng.random_range(0..400)
        } else {
            rng.random_range(50..2500)
        });
        let max_attempts_with_kill = 6;
        let max = if attempt > max_attempts_with_kill {
            Duration::from_secs(120)
        } else if during_upload {
            Duration::from_secs(20)
        } else {
            delay
        };
        let mut upload_seen: Option<Instant> = None;
        let mut what = String::new();
        let st = state.clone();
        let r = crash::attempt(&env.node.conf, &plan, &state, max, || {
            if !during_upload || attempt > max_attempts_with_kill {
                return false;
            }
            let running = crash::running_tasks(&st);
            if upload_seen.is_none() && running.iter().any(|t| t.starts_with("upload[")) {
                upload_seen = Some(Instant::now());
            }
            if upload_seen.is_some_and(|t| t.elapsed() >= delay) {
                what = format!("{delay:?} after upload started, running {running:?}");
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
                moments.push(format!("{now} attempt {attempt}: kill {what}"));
                // Objects stored so far: none of them may be written again.
                for (k, id) in crash::inventory(&env.store.join("nodes")) {
                    if let Some(old) = seen.insert(k.clone(), id) {
                        assert_eq!(old, id, "{k} was rewritten after a kill");
                    }
                }
            }
            Attempt::Finished { code, output } => {
                assert_eq!(code, 0, "{now}: apply failed after {kills} kills: {output}");
                break;
            }
        }
    }
    assert_eq!(
        crash::assert_journals_replay(&state),
        Some(cbk::exec::RunStatus::Ok),
        "{now}: last journal did not finish ok"
    );
    kills
}

#[test]
fn backup_converges_after_sigkill_during_uploads() {
    let seed = crash::seed(20261125);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let env = setup();
    let mut seen: BTreeMap<String, Ident> = BTreeMap::new();
    let mut moments = Vec::new();
    let mut kills = 0;
    let mut backups = Vec::new();
    for round in 0..40 {
        // New sstables every round so every backup has uploads to interrupt.
        for _ in 0..3 {
            env.node.write_flush("shop", "orders", 2000);
            env.node.write_flush("shop", "customers", 800);
        }
        let now = format!("2026-03-01T00:{:02}:00Z", round + 1);
        kills += killed_backup(&env, &now, &mut rng, &mut seen, &mut moments);
        backups.push(format!("b-20260301T00{:02}00Z", round + 1));
        if kills >= KILLS {
            break;
        }
    }
    for m in &moments {
        eprintln!("{m}");
    }
    assert!(kills >= KILLS, "only {kills} kills");

    // Every backup is complete and correct; the latest references every current sstable.
    let mut referenced = BTreeSet::new();
    for b in &backups {
        let c: Catalog = env.read(&format!("catalog/{b}.json"));
        assert_eq!(c.hosts.len(), 1);
        let m: NodeManifest = env.read(&c.hosts[0].manifest);
        referenced.extend(check_manifest(&env, &m));
    }
    // No object uploaded twice: every identity recorded after a kill is unchanged.
    let now_inv = crash::inventory(&env.store.join("nodes"));
    for (k, id) in &seen {
        assert_eq!(now_inv.get(k), Some(id), "{k} was rewritten or removed");
    }
    // Nothing stored that no backup references (partial uploads leave only temp files).
    let sst: BTreeSet<String> = now_inv
        .keys()
        .map(|k| format!("nodes/{k}"))
        .filter(|k| k.contains("/sst/"))
        .collect();
    let stray: Vec<_> = sst.difference(&referenced).collect();
    assert!(
        stray.is_empty(),
        "objects no manifest references: {stray:?}"
    );
    // No snapshot left behind on the node.
    let snaps = support::crash::inventory(&env.node.data_root)
        .keys()
        .filter(|k| k.contains("/snapshots/"))
        .count();
    assert_eq!(snaps, 0, "snapshot files left behind");
    let (code, o, e) = cbk(
        &env.node.conf,
        &[
            "verify",
            "--storage",
            &format!("file://{}", env.store.display()),
            "--deep",
        ],
    );
    assert_eq!(code, 0, "verify --deep: {o}{e}");
    eprintln!(
        "crash_backup: seed {seed}, {kills} kills over {} backups, {} objects checked, {} kept from before a kill, {} temp leftovers, {:?}",
        backups.len(),
        referenced.len(),
        seen.len(),
        crash::temp_leftovers(&env.store),
        started.elapsed()
    );
}
