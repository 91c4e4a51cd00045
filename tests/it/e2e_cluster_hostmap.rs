//! Restore into a second cluster through a host map, over real sshd (one per host, own
//! namespaces) and a real S3 server (moto): cluster A (3 hosts) is backed up, then two new
//! clusters of 3 other hosts each (`shop.orders` created with a different table id,
//! `shop.customers` missing) get A's data through a rotated `host_map`: B with the `loader`
//! method (sstableloader), C with `import`.
//!
//! Checked for each: every target node's live table folders hold exactly the backed-up sstable
//! files of the A node mapped to it (per table, as a multiset of component + sha256; the target
//! names them itself), loaded sstables are linked into the target's `backups/` (incremental
//! backups on), no target node was stopped, the missing table was created from the backed-up
//! schema, staging is empty afterwards; and A is untouched.

use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, ORDERS_ID, live_sums, setup, start_nodes};
use crate::support::restored::{TableFiles, backup_uneven_nodes, live_table_files, restore_plan};
use std::collections::BTreeMap;

/// `shop.orders` on cluster B: same name, another id.
const B_ORDERS_ID: &str = "9b3d1e70-0000-11f1-8000-0000000000b1";

/// Number of hard-linked `backups/` files and of live files per table folder on a host.
fn backup_links(c: &TestCluster, host: &str) -> (usize, usize) {
    let out = c.sh(
        host,
        "cd /var/lib/cassandra && l=0; b=0; for f in $(find data*/shop -mindepth 2 -maxdepth 2 -type f); do \
         d=$(dirname $f); l=$((l+1)); [ $f -ef $d/backups/$(basename $f) ] && b=$((b+1)); done; echo $l $b",
    );
    let mut it = out.split_whitespace().map(|x| x.parse::<usize>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// `started_ms` of each host's emulated node (changes on every start).
fn started(c: &TestCluster) -> Vec<String> {
    c.hosts()
        .iter()
        .map(|h| {
            let s: serde_json::Value = serde_json::from_slice(
                &std::fs::read(c.conf_dir(h).join("emulator/state.json")).unwrap(),
            )
            .unwrap();
            s["started_ms"].to_string()
        })
        .collect()
}

/// Restores the backup into a new 3-host cluster with `method` through a rotated host map and
/// checks every target node; returns how long the restore took.
fn restore_into_new_cluster(
    env: &Env,
    expected: &BTreeMap<String, TableFiles>,
    method: &str,
    now: &str,
) -> std::time::Duration {
    // The target cluster: incremental backups on, orders with another id and no data,
    // customers missing.
    let b = TestCluster::start(3);
    start_nodes(&b, "4.1", "--incremental-backups");
    for h in b.hosts() {
        b.sh(
            &h,
            &format!(
                "cassandra-emu cql \"CREATE KEYSPACE shop WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 3}}\" && \
                 cassandra-emu cql \"CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal) WITH ID = {B_ORDERS_ID}\""
            ),
        );
    }
    let b_started = started(&b);
    let map = [("node1", "node2"), ("node2", "node3"), ("node3", "node1")];
    let host_map: String = map
        .iter()
        .map(|(s, t)| format!("{s} = \"{t}\"\n"))
        .collect();
    let plan = restore_plan(
        env,
        &b,
        &format!("restore-{method}.toml"),
        method,
        &format!("[restore.host_map]\n{host_map}"),
    );
    let t1 = std::time::Instant::now();
    let (code, log) = env.apply(&plan, now);
    let restored_in = t1.elapsed();
    assert_eq!(code, 0, "{log}");
    for task in ["stop[", "start[", "move[", "clear_commitlog[", "repair["] {
        assert!(!log.contains(task), "{task} ran: {log}");
    }
    assert!(log.contains(&format!("{method}[node1]")), "{log}");

    // Every target node holds exactly the files of the A node mapped to it.
    for (src, dst) in map {
        let live = live_table_files(&b, dst);
        assert_eq!(live, expected[src], "{dst} does not hold {src}'s backup");
        let ids = b.sh(
            dst,
            "ls -d /var/lib/cassandra/data*/shop/*/ | xargs -n1 basename | sort -u",
        );
        assert!(
            ids.contains(&format!("orders-{}", B_ORDERS_ID.replace('-', ""))),
            "{ids}"
        );
        assert!(
            !ids.contains(&format!("orders-{}", ORDERS_ID.replace('-', ""))),
            "files went to A's orders id on {dst}: {ids}"
        );
        assert!(
            ids.contains("customers-"),
            "customers was not created: {ids}"
        );
        let (live_files, linked) = backup_links(&b, dst);
        assert!(live_files > 0);
        assert_eq!(
            linked, live_files,
            "loaded sstables not in backups/ on {dst}"
        );
        assert_eq!(b.sh(dst, "cassandra-emu status").trim(), "running");
        // Nothing is left in staging (sstables, markers, locks).
        assert_eq!(
            b.sh(dst, "find /var/lib/cassandra/cbk-staging -type f | wc -l")
                .trim(),
            "0",
            "staging of {dst}"
        );
    }
    assert_eq!(started(&b), b_started, "a B node was restarted");
    assert_eq!(
        started(&b),
        b_started,
        "a target node was restarted ({method})"
    );
    restored_in
}

#[tokio::test(flavor = "multi_thread")]
async fn loader_and_import_restores_into_other_clusters_through_a_host_map() {
    let t0 = std::time::Instant::now();
    let env = setup("4.1").await;
    let a = &env.cluster;
    // Different sstable counts per node, so a wrong mapping cannot match by chance.
    let expected = backup_uneven_nodes(&env).await;
    let backed_up_at = t0.elapsed();
    assert_eq!(expected.len(), 3);
    let counts: Vec<usize> = expected.values().map(|t| t["orders"].len()).collect();
    assert!(
        counts[0] != counts[1] && counts[1] != counts[2] && counts[0] != counts[2],
        "{counts:?}"
    );
    for (h, tables) in &expected {
        assert_eq!(
            tables.keys().collect::<Vec<_>>(),
            ["customers", "orders"],
            "{h}"
        );
    }
    let a_before: Vec<Vec<String>> = a.hosts().iter().map(|h| live_sums(a, h)).collect();

    let loader = restore_into_new_cluster(&env, &expected, "loader", "2026-03-02T02:00:00Z");
    let import = restore_into_new_cluster(&env, &expected, "import", "2026-03-03T02:00:00Z");
    let a_after: Vec<Vec<String>> = a.hosts().iter().map(|h| live_sums(a, h)).collect();
    assert_eq!(a_after, a_before, "cluster A changed");
    eprintln!(
        "hostmap restores: backup of A {:.1}s, loader into B {:.1}s, import into C {:.1}s, total {:.1}s",
        backed_up_at.as_secs_f64(),
        loader.as_secs_f64(),
        import.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
