//! Restores that follow other restores (issue 17, items 1 and 4), over an emulated 3-node
//! cluster on real sshd with moto:
//! - the same backup restored three times in a row with the Node Restart Method (the live files
//!   changed in place before each, so what each restore displaces differs from what the one
//!   before displaced under the same names), then a restore whose `move` fails after every node
//!   stopped (its live folders and commit log must be left as they were, and the output says how
//!   to start the node again), then a restore after that failed one: each must end with the live
//!   files equal to the backup on every node (sha256 of every file against the live files at
//!   backup time, and the CRC32 of every live file against the backup's node manifests, with
//!   no file more or less);
//! - a restart restore whose `include` spans two keyspaces (one repair call per keyspace).

use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, live_sums, read_json, setup};
use cbk::repo::manifest::{Catalog, NodeManifest};
use std::collections::BTreeSet;
use std::path::PathBuf;

const BACKUP: &str = "nightly-20260301T020000Z";

/// Live sstable files (folder/[.idx/]file -> sha256) of keyspace `ks` on `host`.
fn sums(c: &TestCluster, host: &str, ks: &str) -> Vec<String> {
    let out = c.sh(
        host,
        &format!(
            "cd /var/lib/cassandra && for f in $(find data* -path '*/{ks}/*' -type f \\( -name '*.db' -o -name '*.txt' -o -name '*.crc32' \\) \
             -not -path '*/snapshots/*' -not -path '*/backups/*' | sort); do echo \"${{f#*/}} $(sha256sum < $f | cut -c1-64)\"; done"
        ),
    );
    let mut v: Vec<String> = out.lines().map(String::from).collect();
    v.sort();
    v
}

fn restore_plan(env: &Env, file: &str, include: &str, stop: Option<&str>) -> PathBuf {
    let p = env.plan(
        file,
        &env.cluster,
        &format!(
            "kind = \"restore\"\n[restore]\nsource = \"{BACKUP}\"\ninclude = [{include}]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n"
        ),
    );
    if let Some(stop) = stop {
        let text = std::fs::read_to_string(&p).unwrap();
        let text = text.replace(
            "stop = \"cassandra-emu stop\"",
            &format!("stop = \"{stop}\""),
        );
        std::fs::write(&p, text).unwrap();
    }
    p
}

/// Every host's live `shop` files equal `expected` and Cassandra runs.
fn assert_live(c: &TestCluster, expected: &[Vec<String>], what: &str) {
    for (i, h) in c.hosts().iter().enumerate() {
        assert_eq!(
            live_sums(c, h),
            expected[i],
            "{what}: live files of {h} differ from the backup"
        );
        assert_eq!(
            c.sh(h, "cassandra-emu status").trim(),
            "running",
            "{what}: {h}"
        );
    }
}

/// Every host's live `shop` files are the backup's: each file its node manifest lists is live
/// (in one of the node's data folders: a restore may place an sstable in another data folder
/// than the one it was backed up from) with the CRC32 the manifest recorded, and no other live
/// file exists.
async fn assert_live_crc32_is_backup(env: &Env, what: &str) {
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{BACKUP}.json")).await;
    assert_eq!(catalog.hosts.len(), env.cluster.hosts().len());
    let mut checked = 0;
    for h in &catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        let root = env.cluster.data_dir(&h.name);
        let data_dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("data"))
            .collect();
        let mut listed = BTreeSet::new();
        for t in m.tables.iter().filter(|t| t.keyspace == "shop") {
            for f in &t.files {
                let rel = format!("shop/{}/{}", t.folder(), f.path);
                let live: Vec<PathBuf> = data_dirs
                    .iter()
                    .map(|d| d.join(&rel))
                    .filter(|p| p.exists())
                    .collect();
                assert_eq!(live.len(), 1, "{what}: {rel} on {}: {live:?}", h.name);
                let bytes = std::fs::read(&live[0]).unwrap();
                assert_eq!(
                    crc32fast::hash(&bytes),
                    f.crc32,
                    "{what}: CRC32 of {} on {} differs from the backup's",
                    live[0].display(),
                    h.name
                );
                listed.insert(rel);
                checked += 1;
            }
        }
        let live: BTreeSet<String> = live_sums(&env.cluster, &h.name)
            .iter()
            .map(|l| l.split_once(' ').map_or(l.as_str(), |(p, _)| p).to_string())
            .collect();
        assert_eq!(
            live, listed,
            "{what}: the live files of {} are not the backup's",
            h.name
        );
    }
    assert!(checked >= 3 * 4 * 8, "{what}: {checked} files");
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_restore_three_times_then_after_a_failed_move() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let (code, log) = env.apply(&env.backup_plan(), "2026-03-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let backed_up: Vec<Vec<String>> = c.hosts().iter().map(|h| live_sums(c, h)).collect();
    assert!(backed_up.iter().all(|s| s.len() >= 4 * 8), "{backed_up:?}");

    let restore = restore_plan(&env, "restore.toml", "\"shop.*\"", None);
    for round in 1..=3 {
        // The same live file changed in place, with other bytes each round.
        for (i, h) in c.hosts().iter().enumerate() {
            c.sh(
                h,
                &format!(
                    "f=$(find /var/lib/cassandra/data* -path '*/shop/orders-*' -name '*-Data.db' -not -path '*/snapshots/*' \
                     -not -path '*/backups/*' | sort | head -1); printf 'round{round}' | dd of=$f bs=1 seek=5 conv=notrunc status=none"
                ),
            );
            assert_ne!(live_sums(c, h), backed_up[i], "no damage on {h}");
        }
        let now = format!("2026-03-01T0{}:00:00Z", 2 + round);
        let (code, log) = env.apply(&restore, &now);
        assert_eq!(code, 0, "restore {round}: {log}");
        assert_live(c, &backed_up, &format!("restore {round}"));
        assert_live_crc32_is_backup(&env, &format!("restore {round}")).await;
    }

    // A restore whose move fails after every node stopped: the stop command leaves a folder
    // where an incoming file goes (the name of a Data.db deleted from the live folder).
    for h in c.hosts() {
        c.sh(
            &h,
            "f=$(find /var/lib/cassandra/data* -path '*/shop/orders-*' -name '*-Data.db' -not -path '*/snapshots/*' \
             -not -path '*/backups/*' | sort | tail -1); basename $f > /var/lib/cassandra/obstacle.name && rm $f",
        );
    }
    let damaged: Vec<Vec<String>> = c.hosts().iter().map(|h| live_sums(c, h)).collect();
    let failing = restore_plan(
        &env,
        "restore-failing.toml",
        "\"shop.*\"",
        Some(
            "cassandra-emu stop && n=$(cat /var/lib/cassandra/obstacle.name) && \
             for d in /var/lib/cassandra/data*/shop/orders-*; do mkdir -p $d/$n; done",
        ),
    );
    let (code, log) = env.apply(&failing, "2026-03-01T06:00:00Z");
    assert_eq!(code, 1, "{log}");
    for l in log.lines().filter(|l| l.contains("failed: move[")) {
        eprintln!("{l}");
    }
    assert!(log.contains("refusing to overwrite"), "{log}");
    assert!(log.contains("the move was rolled back"), "{log}");
    assert!(
        log.contains("start it again with `cassandra-emu start`"),
        "no hint how to start the node: {log}"
    );
    for (i, h) in c.hosts().iter().enumerate() {
        let status = c.exec_on(h, "cassandra-emu status");
        assert_ne!(
            String::from_utf8_lossy(&status.stdout).trim(),
            "running",
            "{h} was started after the failed move"
        );
        c.sh(
            h,
            "for d in /var/lib/cassandra/data*/shop/orders-*; do rmdir $d/$(cat /var/lib/cassandra/obstacle.name) 2>/dev/null || true; done",
        );
        assert_eq!(
            live_sums(c, h),
            damaged[i],
            "the failed move changed the live files of {h}"
        );
        // Commit log segments moved aside by clear_commitlog are back (a clean stop may have
        // dropped flushed ones itself, as Cassandra does).
        assert_eq!(
            c.sh(
                h,
                "find /var/lib/cassandra/cbk-staging -path '*/run-20260301T060000Z-*/displaced-commitlog/*' -type f | wc -l"
            )
            .trim(),
            "0",
            "the failed restore left commit log segments of {h} aside"
        );
        // As the output says: start the node again.
        c.sh(h, "cassandra-emu start");
    }

    // A restore after the failed one.
    let (code, log) = env.apply(&restore, "2026-03-01T07:00:00Z");
    assert_eq!(code, 0, "restore after a failed one: {log}");
    assert_live(c, &backed_up, "restore after a failed one");
    assert_live_crc32_is_backup(&env, "restore after a failed one").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_restore_of_two_keyspaces_repairs_each() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    for h in c.hosts() {
        for stmt in [
            "CREATE KEYSPACE metrics WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
            "CREATE TABLE metrics.points (id uuid PRIMARY KEY, name text)",
        ] {
            c.sh(&h, &format!("cassandra-emu cql \"{stmt}\""));
        }
        c.sh(
            &h,
            "cassandra-emu write metrics points --rows 100 && nodetool flush metrics",
        );
    }
    let backup = env.plan(
        "backup.toml",
        c,
        "kind = \"backup\"\n[backup]\nname = \"nightly-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\nmode = \"snapshot\"\ninclude = [\"shop.*\", \"metrics.*\"]\n",
    );
    let (code, log) = env.apply(&backup, "2026-03-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let backed_up: Vec<(Vec<String>, Vec<String>)> = c
        .hosts()
        .iter()
        .map(|h| (sums(c, h, "shop"), sums(c, h, "metrics")))
        .collect();
    assert!(
        backed_up
            .iter()
            .all(|(s, m)| !s.is_empty() && !m.is_empty())
    );
    for h in c.hosts() {
        c.sh(
            &h,
            "cassandra-emu write metrics points --rows 10 && nodetool flush metrics",
        );
    }
    let restore = restore_plan(&env, "restore.toml", "\"shop.*\", \"metrics.points\"", None);
    let (code, log) = env.apply(&restore, "2026-03-01T03:00:00Z");
    assert_eq!(code, 0, "{log}");
    for (i, h) in c.hosts().iter().enumerate() {
        assert_eq!(
            (sums(c, h, "shop"), sums(c, h, "metrics")),
            backed_up[i],
            "live files of {h} differ from the backup"
        );
    }
    // One repair call per keyspace, each naming its restored tables.
    let state = env.state("2026-03-01T03:00:00Z");
    let (code, json) = env.cbk(&["state", "--state", &state.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let repairs: Vec<&serde_json::Value> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["address"].as_str().unwrap_or("").starts_with("repair["))
        .collect();
    assert_eq!(repairs.len(), 3, "{json}");
    for r in repairs {
        let s = r.to_string();
        assert!(s.contains("metrics") && s.contains("shop"), "{s}");
    }
}
