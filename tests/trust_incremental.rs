//! Issue 17 over real sshd + the node emulator + moto: incremental backups and compaction
//! inputs (a restore takes only incremental files flushed after the base snapshot, and an
//! incremental upload leaves out what the base covers), legacy restores and secondary indexes.

mod support;

use cbk::repo::manifest::{Catalog, NodeManifest};
use std::collections::BTreeSet;
use support::e2e::{live_sums, read_json, setup_with, write_flush};
use support::s3::S3Server;

/// Names of the `shop` files in `backups/` of `host` (`orders-<id>/nb-3-big-Data.db`,
/// `customers-<id>/.customers_name/nb-1-big-Data.db`).
fn backup_names(c: &support::cluster::TestCluster, host: &str) -> BTreeSet<String> {
    c.sh(
        host,
        "cd /var/lib/cassandra && find data*/shop -path '*/backups/*' -type f | sed -e 's#^data[0-9]*/shop/##' -e 's#/backups/#/#'",
    )
    .lines()
    .map(String::from)
    .collect()
}

/// `orders-<id>/nb-3-big-Data.db` of a `live_sums` line (`shop/orders-<id>/… <sha>`).
fn live_name(line: &str) -> String {
    let path = line.split(' ').next().unwrap();
    path.strip_prefix("shop/").unwrap_or(path).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_restore_leaves_out_compaction_inputs() {
    let env = setup_with("4.1", "--incremental-backups").await;
    let c = &env.cluster;
    let store = env.store().await;

    // Two more flushes, then a compaction: the live folders hold only the compaction result,
    // backups/ still links every flushed input (Cassandra never removes them).
    let mut inputs = std::collections::BTreeMap::new();
    for h in c.hosts() {
        write_flush(c, &h, 100, 50);
        c.sh(
            &h,
            "cassandra-emu compact shop orders && cassandra-emu compact shop customers",
        );
        let links = backup_names(c, &h);
        let live: BTreeSet<String> = live_sums(c, &h).iter().map(|l| live_name(l)).collect();
        let gone: BTreeSet<String> = links.difference(&live).cloned().collect();
        assert!(
            gone.iter().filter(|n| n.ends_with("-Data.db")).count() >= 6,
            "{h}: the compaction inputs stay in backups/: links {links:?}, live {live:?}"
        );
        inputs.insert(h.clone(), gone);
    }

    // The base snapshot (T0), new flushes, then the first incremental (T1).
    let (code, log) = env.apply(&env.backup_plan(), "2026-04-01T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        write_flush(c, &h, 60, 30);
    }
    let expected: Vec<(String, Vec<String>)> =
        c.hosts().into_iter().map(|h| (h.clone(), live_sums(c, &h))).collect();
    let inc = env.backup_plan_via("inc.toml", "incremental", &env.moto.endpoint());
    let (code, log) = env.apply(&inc, "2026-04-01T06:00:00Z");
    assert_eq!(code, 0, "{log}");
    let inc_catalog: Catalog =
        read_json(store.as_ref(), "catalog/incremental-20260401T060000Z.json").await;
    for h in &inc_catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        assert_eq!(m.base.as_deref(), Some("nightly-20260401T000000Z"));
        let stored: BTreeSet<String> = m
            .tables
            .iter()
            .flat_map(|t| t.files.iter().map(move |f| format!("{}/{}", t.folder(), f.path)))
            .collect();
        let dup: Vec<&String> = stored.intersection(&inputs[&h.name]).collect();
        assert!(
            dup.is_empty(),
            "{}: the incremental stored compaction inputs the base snapshot covers: {dup:?}",
            h.name
        );
        assert!(
            stored.iter().any(|n| n.ends_with("-Data.db")),
            "{}: the new flushes are in the incremental",
            h.name
        );
    }

    // Restore to a time after the incremental: exactly the live files of T1 come back.
    let plan = env.plan(
        "restore.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"latest-before:2026-04-01T07:00:00Z\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n",
    );
    for h in c.hosts() {
        write_flush(c, &h, 10, 10);
    }
    let (code, log) = env.apply(&plan, "2026-04-01T08:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("(+1 incrementals)"), "{log}");
    for (h, want) in &expected {
        let got = live_sums(c, h);
        let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
        let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{h}: restored files differ from the live files at the incremental\n extra: {extra:#?}\n missing: {missing:#?}"
        );
        assert_eq!(c.sh(h, "cassandra-emu status").trim(), "running");
    }
}
