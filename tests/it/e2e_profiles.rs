//! Backup, deep verify and restore on every Cassandra version profile the emulator models, with
//! two data folders and a secondary index (its sstables live in a `.<index>/` subfolder): the
//! SSTable formats la (2.2, Adler-32 digests), mc/me (3.x), nb (4.x), oa and da/BTI (5.0).

use crate::support::emu::{EmuNode, cbk};
use std::path::PathBuf;

fn round_trip(version: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = EmuNode::start(dir, version, 2, extra);
    node.cql("CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    node.cql("CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text)");
    node.cql("CREATE INDEX customers_name ON shop.customers (name)");
    for _ in 0..2 {
        node.write_flush("shop", "customers", 200);
    }
    let store = dir.join("store");
    let plan = |name: &str, body: &str| -> PathBuf {
        let text = format!(
            "version = 1\n{body}\n[cluster]\nname = \"demo\"\nhosts = [\"n1\"]\n\n[connection]\ntransport = \"local\"\n\n{}\n[storage]\nurl = \"file://{}\"\n",
            node.cassandra_section(),
            store.display()
        );
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let run = |p: &PathBuf, now: &str| {
        let out = p.with_extension("json");
        let (code, o, e) = cbk(
            &node.conf,
            &[
                "plan",
                &p.display().to_string(),
                "--now",
                now,
                "--out",
                &out.display().to_string(),
            ],
        );
        assert_eq!(code, 0, "{version}: plan: {o}{e}");
        let state = dir.join(format!("state-{now}"));
        let (code, o, e) = cbk(
            &node.conf,
            &[
                "apply",
                &out.display().to_string(),
                "--state",
                &state.display().to_string(),
            ],
        );
        assert_eq!(code, 0, "{version}: apply: {o}{e}");
    };
    let backup = plan(
        "backup.toml",
        "kind = \"backup\"\n[backup]\nname = \"b-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\ninclude = [\"shop.*\"]\n",
    );
    run(&backup, "2026-04-01T00:00:00Z");
    let storage = format!("file://{}", store.display());
    let (code, o, e) = cbk(&node.conf, &["verify", "--storage", &storage, "--deep"]);
    assert_eq!(code, 0, "{version}: verify: {o}{e}");
    let before = node.live_sums("shop");
    assert!(
        before.iter().any(|(f, _)| f.contains("/.customers_name/")),
        "{version}: no index sstables: {before:?}"
    );
    // Damage: delete every live Data.db of the index and one of the table.
    for (f, _) in &before {
        if f.ends_with("-Data.db") && (f.contains("/.customers_name/") || f.contains("-1-")) {
            for dd in std::fs::read_dir(&node.data_root).unwrap().flatten() {
                let _ = std::fs::remove_file(dd.path().join("shop").join(f));
            }
        }
    }
    assert_ne!(node.live_sums("shop"), before);
    let restore = plan(
        "restore.toml",
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\n",
    );
    run(&restore, "2026-04-01T01:00:00Z");
    assert_eq!(
        node.live_sums("shop"),
        before,
        "{version}: restored files differ"
    );
    assert!(node.emu(&["status"]).contains("running"));
}

#[test]
fn cassandra_2_2_la_adler32() {
    round_trip("2.2", &[]);
}

#[test]
fn cassandra_3_11() {
    round_trip("3.11", &[]);
}

#[test]
fn cassandra_4_0() {
    round_trip("4.0", &[]);
}

#[test]
fn cassandra_5_0_oa() {
    round_trip("5.0", &["--storage-compatibility-mode", "NONE"]);
}

#[test]
fn cassandra_5_0_bti_uuid_ids() {
    round_trip(
        "5.0",
        &[
            "--storage-compatibility-mode",
            "NONE",
            "--sstable-format",
            "bti",
            "--uuid-ids",
        ],
    );
}
