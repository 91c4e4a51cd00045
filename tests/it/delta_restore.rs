//! Delta restore (issue 16, point 2) over an emulated 3-node cluster on real sshd with moto:
//! `[restore] delta = true` stages only the sstables that differ from the backup, keeps the
//! identical live files in place (same inode and mtime), and ends with the live files equal to
//! the backup (per-file size and CRC32 against the node manifest); over an unchanged node it
//! stages nothing. The free-space check before fetch counts the live bytes the move displaces
//! into another filesystem. `delta` with a method that adds files (import/loader/refresh) is
//! refused at plan time.

use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, read_json, setup, write_flush};
use cbk::repo::keys;
use cbk::repo::manifest::{Catalog, NodeManifest};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `table folder/[.idx/]file` -> (size, CRC32) of every live `shop` sstable file on `host`.
fn live_crcs(c: &TestCluster, host: &str) -> BTreeMap<String, (u64, u32)> {
    files_of(c, host)
        .into_iter()
        .map(|(rel, path)| {
            let bytes = std::fs::read(&path).unwrap();
            (rel, (bytes.len() as u64, crc32fast::hash(&bytes)))
        })
        .collect()
}

/// `table folder/[.idx/]file` -> (inode, mtime in ns) of the live `shop` files on `host`.
fn live_stat(c: &TestCluster, host: &str) -> BTreeMap<String, (u64, i128)> {
    files_of(c, host)
        .into_iter()
        .map(|(rel, path)| {
            let m = std::fs::metadata(&path).unwrap();
            let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
            (rel, (m.ino(), mtime))
        })
        .collect()
}

/// Live sstable files of keyspace `shop` on `host`, outside snapshots/ and backups/.
fn files_of(c: &TestCluster, host: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let root = c.data_dir(host);
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("data") || !dir.join("shop").is_dir() {
            continue;
        }
        for table in std::fs::read_dir(dir.join("shop")).unwrap() {
            let table = table.unwrap().path();
            walk(&table, &table, &mut out);
        }
    }
    out.sort();
    out
}

fn walk(table: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name.starts_with('.') {
                walk(table, &p, out);
            }
        } else if name.ends_with(".db") || name.ends_with(".txt") || name.ends_with(".crc32") {
            let folder = table.file_name().unwrap().to_string_lossy();
            let rel = p.strip_prefix(table).unwrap().display().to_string();
            out.push((format!("{folder}/{rel}"), p));
        }
    }
}

/// The backed-up `shop` files of every host, as [`live_crcs`] spells them.
async fn backed_up(env: &Env, backup: &str) -> BTreeMap<String, BTreeMap<String, (u64, u32)>> {
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), &keys::catalog_key(backup)).await;
    let mut out = BTreeMap::new();
    for h in &catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        let files = m
            .tables
            .iter()
            .filter(|t| t.keyspace == "shop")
            .flat_map(|t| {
                t.files
                    .iter()
                    .map(move |f| (format!("{}/{}", t.folder(), f.path), (f.size, f.crc32)))
            })
            .collect();
        out.insert(h.name.clone(), files);
    }
    out
}

/// (files, bytes) of the `fetch[HOST]: N files (B bytes) staged` line of an apply.
fn staged(log: &str, host: &str) -> (u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("fetch[{host}]")) && l.contains("staged and verified"))
        .unwrap_or_else(|| panic!("no fetch summary of {host}: {log}"));
    let after = &line[line.find(&format!("fetch[{host}]: ")).unwrap() + host.len() + 9..];
    let n: u64 = after.split(' ').next().unwrap().parse().unwrap();
    let b = after[after.find('(').unwrap() + 1..]
        .split(' ')
        .next()
        .unwrap();
    (n, b.parse().unwrap())
}

/// `folder/[.idx/]prefix` of an sstable file.
fn sstable_of(rel: &str) -> String {
    let (dir, name) = rel.rsplit_once('/').unwrap();
    let parsed = cbk::cassandra::sstable::SstableName::parse(name).unwrap();
    format!("{dir}/{}", parsed.prefix())
}

fn restore_plan(env: &Env, file: &str, extra: &str) -> PathBuf {
    env.plan(
        file,
        &env.cluster,
        &format!(
            "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair = false\n{extra}"
        ),
    )
}

/// Many sstables per node, so that one changed sstable is a few percent of the node.
fn more_sstables(c: &TestCluster) {
    for h in c.hosts() {
        for _ in 0..8 {
            write_flush(c, &h, 200, 100);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_restore_stages_only_what_changed_and_keeps_the_rest_in_place() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    more_sstables(c);
    let (code, log) = env.apply(&env.backup_plan(), "2026-06-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let backup = backed_up(&env, "nightly-20260601T020000Z").await;
    for h in c.hosts() {
        assert_eq!(live_crcs(c, &h), backup[&h], "backup of {h}");
    }

    // node1 changes: one orders Data.db grows (damage), one customers sstable is removed, and
    // a flush adds new sstables (displaced by the restore).
    let node1 = "node1";
    c.sh(
        node1,
        "f=$(find /var/lib/cassandra/data* -path '*/shop/orders-*' -name '*-Data.db' -not -path '*/snapshots/*' \
         -not -path '*/backups/*' | sort | head -1); printf 'damage' >> $f; \
         g=$(find /var/lib/cassandra/data* -path '*/shop/customers-*' -name '*-Data.db' -not -path '*/snapshots/*' \
         -not -path '*/backups/*' -not -path '*/.*' | sort | tail -1); rm ${g%-Data.db}-*",
    );
    write_flush(c, node1, 50, 20);
    let before = live_crcs(c, node1);
    // Every file of an sstable with a changed (or missing) file is fetched again.
    let damaged: BTreeSet<String> = backup[node1]
        .iter()
        .filter(|(rel, v)| before.get(*rel) != Some(v))
        .map(|(rel, _)| sstable_of(rel))
        .collect();
    let changed: BTreeSet<String> = backup[node1]
        .keys()
        .filter(|rel| damaged.contains(&sstable_of(rel)))
        .cloned()
        .collect();
    assert_eq!(damaged.len(), 2, "{damaged:?}");
    let changed_bytes: u64 = changed.iter().map(|r| backup[node1][r].0).sum();
    let total_bytes: u64 = backup[node1].values().map(|v| v.0).sum();
    assert!(!changed.is_empty(), "nothing changed");
    assert!(
        changed_bytes * 100 < total_bytes * 15,
        "{changed_bytes} of {total_bytes} bytes changed: not a small change"
    );
    let stat_before = live_stat(c, node1);

    let restore = restore_plan(&env, "restore-delta.toml", "delta = true\n");
    let (code, log) = env.apply(&restore, "2026-06-01T03:00:00Z");
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        assert_eq!(
            live_crcs(c, &h),
            backup[&h],
            "live files of {h} after the delta restore"
        );
    }
    // Only the changed sstables' files were fetched: exactly their bytes.
    let (files, bytes) = staged(&log, node1);
    assert_eq!(
        (files, bytes),
        (changed.len() as u64, changed_bytes),
        "node1 should stage exactly the changed sstables ({changed:?}): {log}"
    );
    assert!(log.contains("kept in place"), "{log}");
    for h in ["node2", "node3"] {
        assert_eq!(staged(&log, h), (0, 0), "unchanged {h}: {log}");
    }
    // Files identical to the backup were not touched: same inode, same mtime.
    let stat_after = live_stat(c, node1);
    for (rel, st) in &stat_before {
        if backup[node1].contains_key(rel) && !changed.contains(rel) {
            assert_eq!(
                stat_after.get(rel),
                Some(st),
                "{rel} was moved or rewritten"
            );
        }
    }

    // Applied again over the restored (now unchanged) cluster: nothing to stage anywhere.
    let (code, log) = env.apply(&restore, "2026-06-01T04:00:00Z");
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        assert_eq!(staged(&log, &h), (0, 0), "unchanged {h}: {log}");
        assert_eq!(
            live_crcs(c, &h),
            backup[&h],
            "{h} after the second delta restore"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn displaced_live_bytes_count_in_the_free_space_check_before_any_stop() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let (code, log) = env.apply(&env.backup_plan(), "2026-06-02T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    // node1's staging folder is a small tmpfs (another filesystem than its data): nothing needs
    // staging (delta, node unchanged) but a new flush must be displaced into it.
    let small = "/var/lib/cassandra/small";
    c.sh(
        "node1",
        &format!("mkdir -p {small} && mount -t tmpfs -o size=64k tmpfs {small}"),
    );
    write_flush(c, "node1", 100, 50);
    let before = live_crcs(c, "node1");
    let restore = restore_plan(&env, "restore-small.toml", "delta = true\n");
    let text = std::fs::read_to_string(&restore).unwrap().replace(
        "[cassandra]\n",
        &format!("[cassandra]\nstaging = \"{small}\"\n"),
    );
    std::fs::write(&restore, text).unwrap();
    let (code, log) = env.apply(&restore, "2026-06-02T03:00:00Z");
    c.sh("node1", &format!("umount {small}"));
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains(&format!("not enough free space at {small}")),
        "{log}"
    );
    assert!(
        log.contains("of live files the move displaces there") && log.contains("free"),
        "both figures: {log}"
    );
    for h in c.hosts() {
        assert_eq!(
            c.sh(&h, "cassandra-emu status").trim(),
            "running",
            "{h} was stopped"
        );
    }
    assert_eq!(live_crcs(c, "node1"), before, "live files of node1 changed");
}

#[test]
fn delta_is_refused_at_plan_time_for_methods_that_add_files() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let base = std::fs::read_to_string(root.join("plans/restore-keyspace.toml")).unwrap();
    let base = &base[..base.find("[limits]").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    for (method, code) in [
        ("restart", 0),
        ("import", 64),
        ("loader", 64),
        ("refresh", 64),
    ] {
        let text = base
            .replace("#:schema ../schemas/plan.schema.json\n", "")
            .replace(
                "method = \"restart\"",
                &format!("method = \"{method}\"\ndelta = true"),
            );
        let p = dir.path().join(format!("{method}.toml"));
        std::fs::write(&p, text).unwrap();
        let out = assert_cmd::Command::cargo_bin("cbk")
            .unwrap()
            .env("NO_COLOR", "1")
            .args(["validate", &p.display().to_string()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{method}: {err}");
        if code != 0 {
            assert!(
                err.contains(&format!(
                    "`delta = true` does not apply to method `{method}`"
                )) && err.contains("use `method = \"restart\"`"),
                "{method}: {err}"
            );
        }
    }
}

/// BENCHMARKS.md "Delta restore": a full and a delta restore of the same ~5%-changed node.
/// `cargo test --test it -- --ignored --nocapture delta_restore::bench_full_vs_delta`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn bench_full_vs_delta_restore_of_a_5_percent_changed_node() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    for h in c.hosts() {
        for _ in 0..18 {
            write_flush(c, &h, 2000, 1000);
        }
    }
    let (code, log) = env.apply(&env.backup_plan(), "2026-06-03T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let backup = backed_up(&env, "nightly-20260603T020000Z").await;
    let total: u64 = backup["node1"].values().map(|v| v.0).sum();
    // The change: 3 of node1's 60 sstables (5%): the largest Data.db of 2 orders and 1
    // customers sstables grow.
    let change = || {
        c.sh(
            "node1",
            "for t in orders orders customers; do f=$(find /var/lib/cassandra/data* -path \"*/shop/$t-*\" -name '*-Data.db' \
             -not -path '*/snapshots/*' -not -path '*/backups/*' -not -path '*/.*' -newermt 2001-01-01 -printf '%s %p\\n' | sort -n | tail -1 | cut -d' ' -f2); \
             printf 'damage' >> $f; touch -d 2000-01-01 $f; done",
        );
    };
    for (delta, now) in [
        (false, "2026-06-03T03:00:00Z"),
        (true, "2026-06-03T04:00:00Z"),
    ] {
        change();
        let plan = restore_plan(
            &env,
            &format!("restore-{delta}.toml"),
            &format!("delta = {delta}\n"),
        );
        let start = std::time::Instant::now();
        let (code, log) = env.apply(&plan, now);
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(code, 0, "{log}");
        let (files, bytes) = staged(&log, "node1");
        let fetch_line = log
            .lines()
            .filter(|l| {
                l.contains("fetch[node1]") || l.contains("Apply complete") || l.contains("elapsed")
            })
            .collect::<Vec<_>>()
            .join("\n  ");
        println!(
            "BENCH delta={delta}: node1 staged {files} files, {bytes} of {total} bytes ({:.1}%); \
             apply {secs:.1} s (3 nodes)\n  {fetch_line}",
            bytes as f64 * 100.0 / total as f64
        );
        for h in c.hosts() {
            assert_eq!(live_crcs(c, &h), backup[&h]);
        }
    }
}
