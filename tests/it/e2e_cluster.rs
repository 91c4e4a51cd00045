//! Backup and restore of an emulated 3-node cluster over real sshd (one per host, each in its
//! own namespaces) to a real S3 server (moto, checking signatures): the Node Restart Method
//! after damage and a DROP/re-CREATE, restore safety against corrupt, truncated and malicious
//! backups, and a restore into a second cluster through a host map with `nodetool import`.

use crate::support::e2e::{
    CUSTOMERS_ID, assert_manifest_matches_live, live_sums, read_json, setup,
};
use cbk::repo::manifest::{Catalog, NodeManifest};

/// The id `customers` gets when it is dropped and re-created after the backup (as Cassandra,
/// every node agrees on it).
const NEW_CUSTOMERS_ID: &str = "7c2e9d40-0000-11f1-8000-000000000003";

#[tokio::test(flavor = "multi_thread")]
async fn cluster_backup_damage_drop_recreate_and_restart_restore() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let plan = env.backup_plan();
    let (code, log) = env.apply(&plan, "2026-03-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");

    // Every stored object, decompressed, equals the node's file; snapshots are gone.
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), "catalog/nightly-20260301T020000Z.json").await;
    assert_eq!(catalog.hosts.len(), 3);
    let mut checked = 0;
    for h in &catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        assert_eq!(m.node.host_id, h.host_id);
        assert!(
            m.tables.iter().any(|t| t
                .files
                .iter()
                .any(|f| f.path.starts_with(".customers_name/"))),
            "index sstables missing"
        );
        checked += assert_manifest_matches_live(store.as_ref(), c, &h.name, &m).await;
        assert_eq!(
            c.sh(
                &h.name,
                "find /var/lib/cassandra -path '*/snapshots/*' -type f | wc -l"
            )
            .trim(),
            "0"
        );
    }
    assert!(checked >= 3 * 4 * 8, "{checked}");
    let before: Vec<Vec<String>> = c.hosts().iter().map(|h| live_sums(c, h)).collect();

    // Damage: delete on node1, corrupt on node2, newer data on node3, and drop + re-create
    // customers everywhere (new table id; the old folder stays).
    c.sh("node1", "rm -f $(find /var/lib/cassandra -path '*/shop/orders-*' -name '*-Data.db' -not -path '*/snapshots/*' | head -1)");
    c.sh("node2", "f=$(find /var/lib/cassandra -path '*/shop/orders-*' -name '*-Data.db' | head -1); printf garbage | dd of=$f bs=1 seek=5 conv=notrunc status=none");
    c.sh(
        "node3",
        "cassandra-emu write shop orders --rows 10 && nodetool flush shop",
    );
    for h in c.hosts() {
        c.sh(
            &h,
            &format!(
                "cassandra-emu cql 'DROP TABLE shop.customers' && cassandra-emu cql 'CREATE TABLE shop.customers \
                 (id uuid PRIMARY KEY, name text) WITH ID = {NEW_CUSTOMERS_ID}' && \
                 cassandra-emu cql 'CREATE INDEX customers_name ON shop.customers (name)'"
            ),
        );
    }
    let new_id = c.sh("node1", "cqlsh -e \"SELECT keyspace_name, table_name, id FROM system_schema.tables WHERE keyspace_name = 'shop'\" | grep customers | awk '{print $5}'");
    let new_id = new_id.trim().replace('-', "");
    assert_eq!(
        new_id,
        NEW_CUSTOMERS_ID.replace('-', ""),
        "the live id is read from system_schema"
    );

    let segments: Vec<String> = c
        .hosts()
        .iter()
        .map(|h| c.sh(h, "ls /var/lib/cassandra/commitlog"))
        .collect();
    assert!(
        segments.iter().all(|s| !s.trim().is_empty()),
        "no commit log to clear: {segments:?}"
    );
    let restore = env.plan(
        "restore.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n",
    );
    let (code, log) = env.apply(&restore, "2026-03-01T08:00:00Z");
    assert_eq!(code, 0, "{log}");
    for (i, h) in c.hosts().iter().enumerate() {
        let after = live_sums(c, h);
        let expected: Vec<String> = before[i]
            .iter()
            .map(|l| {
                l.replace(
                    &format!("customers-{}", CUSTOMERS_ID.replace('-', "")),
                    &format!("customers-{new_id}"),
                )
            })
            .collect();
        assert_eq!(after, expected, "live files of {h} differ from the backup");
        assert_eq!(c.sh(h, "cassandra-emu status").trim(), "running");
        let now_segments = c.sh(h, "ls /var/lib/cassandra/commitlog");
        for seg in segments[i].split_whitespace() {
            assert!(
                !now_segments.contains(seg),
                "commit log segment {seg} was not cleared on {h}"
            );
        }
        // Nothing was restored into the old id folder.
        let old = c.sh(h, &format!("find /var/lib/cassandra -path '*/customers-{}/*' -maxdepth 4 -name '*-Data.db' -not -path '*/snapshots/*' | wc -l", CUSTOMERS_ID.replace('-', "")));
        assert_eq!(
            old.trim(),
            "0",
            "files restored into the old table folder on {h}"
        );
    }
    // Repairs ran one host at a time.
    let state = env.dir.path().join("state-2026-03-01T08:00:00Z");
    let (code, json) = env.cbk(&["state", "--state", &state.display().to_string(), "--json"]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut spans: Vec<(String, String)> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["address"].as_str().unwrap_or("").starts_with("repair["))
        .map(|t| {
            (
                t["started"].as_str().unwrap_or("").to_string(),
                t["finished"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    spans.sort();
    assert_eq!(spans.len(), 3, "{json}");
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "repairs overlapped: {spans:?}");
    }
}
