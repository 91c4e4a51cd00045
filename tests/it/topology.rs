//! Restores into another topology over real sshd + the node emulator + moto (docs/restore.md,
//! "Restoring into another topology"): a 3-node backup loaded (`method = "loader"`) into 2
//! nodes (a target streams two backup hosts) and into 5 nodes (two targets stream nothing),
//! with `cbk plan` showing which target streams which backup host.
//!
//! The emulator's sstableloader streams into the node of the host it runs on (docs/emulator.md,
//! "Simplification"), so after a restore each target node holds exactly what it streamed:
//! the test compares that, per table, as a multiset of (component, sha256) with the backed-up
//! files of the backup hosts assigned to it. A source streamed twice would double its files,
//! one streamed by no target would be missing.

use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, setup, start_nodes};
use crate::support::restored::{
    TableFiles, UNEVEN_BACKUP, backed_up, backup_uneven_nodes, live_files_of, live_table_files,
    restore_plan, union,
};

/// A target cluster of `n` nodes with keyspace shop (RF = `rf`) and no tables: the restore
/// creates them from the backed-up schema.
fn target_cluster(n: usize, rf: usize) -> TestCluster {
    let b = TestCluster::start(n);
    start_nodes(&b, "4.1", "");
    for h in b.hosts() {
        b.sh(
            &h,
            &format!(
                "cassandra-emu cql \"CREATE KEYSPACE shop WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': {rf}}}\""
            ),
        );
    }
    b
}

/// A loader restore plan of `shop.*` into `b` (`extra`: more `[restore]` lines).
fn loader_plan(env: &Env, b: &TestCluster, name: &str, extra: &str) -> std::path::PathBuf {
    restore_plan(env, b, name, "loader", extra)
}

/// The task line of `address` in a human plan view.
fn task_line<'a>(shown: &'a str, address: &str) -> &'a str {
    shown
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(address))
        .unwrap_or_else(|| panic!("no {address} in {shown}"))
}

/// The params of `address` in a JSON plan view.
fn json_params(json: &str, address: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["address"] == address)
        .unwrap_or_else(|| panic!("no {address} in {json}"))["params"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn loader_restores_three_nodes_into_two_and_into_five() {
    let env = setup("4.1").await;
    let expected = backup_uneven_nodes(&env).await;
    assert_eq!(expected.len(), 3);

    // Into 2 nodes whose keyspace shop keeps RF 3: refused by `resolve`, before any node is
    // touched (nothing staged, no table created).
    let rf3 = target_cluster(2, 3);
    let plan = loader_plan(&env, &rf3, "into-two-rf3.toml", "");
    let (code, log) = env.apply(&plan, "2026-03-01T12:00:00Z");
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("keyspace shop has replication factor 3 but the restore targets 2 node(s)"),
        "{log}"
    );
    for h in rf3.hosts() {
        assert_eq!(
            rf3.sh(&h, "ls /var/lib/cassandra/cbk-staging 2>/dev/null | wc -l")
                .trim(),
            "0",
            "{h} was touched"
        );
        assert!(!rf3.sh(&h, "cassandra-emu show").contains("orders"), "{h}");
    }
    drop(rf3);

    // 3 -> 2 without a host map: node1 and node2 by name, node3 to the first target with the
    // fewest sources (node1).
    let two = target_cluster(2, 2);
    let plan = loader_plan(&env, &two, "into-two.toml", "");
    let (shown, code, log) = env.plan_and_apply(&plan, "2026-03-02T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(
        task_line(&shown, "resolve").contains(
            "unmatched_sources=each backup host without a target of its name goes to the target with the fewest sources"
        ),
        "{shown}"
    );
    assert!(
        task_line(&shown, "loader[node1]").contains("source_host=node1"),
        "{shown}"
    );
    let resolve = log
        .lines()
        .find(|l| l.contains("restoring backup nightly-20260301T020000Z"))
        .unwrap_or_else(|| panic!("{log}"));
    for pair in ["node1 (", "node2 (", "node3 ("] {
        assert!(resolve.contains(pair), "{resolve}");
    }
    assert!(resolve.contains("-> node1 ["), "{resolve}");
    assert!(
        resolve
            .split("; ")
            .any(|p| p.starts_with("node3 (") && p.contains("-> node1 [")),
        "node3 is not streamed by node1: {resolve}"
    );
    assert_eq!(
        live_table_files(&two, "node1"),
        union(&expected, &["node1", "node3"]),
        "node1 does not hold exactly node1's and node3's backup"
    );
    assert_eq!(
        live_table_files(&two, "node2"),
        union(&expected, &["node2"])
    );
    assert!(
        resolve.contains("replication factors of shop fit 2 target nodes"),
        "{resolve}"
    );
    assert!(
        log.contains("shop.orders from node3: "),
        "the loads of node1 do not name their source: {log}"
    );
    for h in two.hosts() {
        assert_eq!(
            two.sh(&h, "find /var/lib/cassandra/cbk-staging -type f | wc -l")
                .trim(),
            "0",
            "staging of {h}"
        );
    }
    // The same saved plan again: every load is recorded, nothing streams twice.
    let saved = plan.with_extension("2026-03-02T02:00:00Z.json");
    let (code, again) = env.cbk(&[
        "apply",
        &saved.display().to_string(),
        "--state",
        &env.state("2026-03-02T02:00:00Z").display().to_string(),
    ]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        live_table_files(&two, "node1"),
        union(&expected, &["node1", "node3"])
    );

    // 3 -> 5 through a host map: node4, node5 and node1 stream one backup host each, node2
    // and node3 none.
    let five = target_cluster(5, 3);
    let map = "[restore.host_map]\nnode1 = \"node5\"\nnode2 = \"node4\"\nnode3 = \"node1\"\n";
    let plan = loader_plan(&env, &five, "into-five.toml", map);
    let (code, json) = env.cbk(&[
        "plan",
        &plan.display().to_string(),
        "--now",
        "2026-03-03T02:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json_params(&json, "loader[node5]")["source_host"], "node1");
    assert_eq!(
        json_params(&json, "fetch[node2]")["source_hosts"],
        serde_json::json!([])
    );
    let (shown, code, log) = env.plan_and_apply(&plan, "2026-03-03T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(
        task_line(&shown, "loader[node2]").contains("source_hosts=none"),
        "{shown}"
    );
    assert!(
        task_line(&shown, "fetch[node4]").contains("source_host=node2"),
        "{shown}"
    );
    assert!(
        log.contains("nothing to stage: no backup host is assigned to node2"),
        "{log}"
    );
    for (src, dst) in [("node1", "node5"), ("node2", "node4"), ("node3", "node1")] {
        assert_eq!(
            live_table_files(&five, dst),
            union(&expected, &[src]),
            "{dst} does not hold exactly {src}'s backup"
        );
    }
    for dst in ["node2", "node3"] {
        assert_eq!(live_table_files(&five, dst), TableFiles::new(), "{dst}");
    }
}

/// `cbk plan` of a host map that sends two backup hosts to one target: allowed for `loader`
/// and shown on every task of that target; refused for the other methods.
#[test]
fn host_map_with_two_sources_per_target_is_planned_for_loader_only() {
    let dir = tempfile::tempdir().unwrap();
    let plan = |method: &str| {
        let p = dir.path().join(format!("{method}.toml"));
        std::fs::write(
            &p,
            format!(
                "version = 1\nkind = \"restore\"\n[cluster]\nname = \"c\"\nhosts = [\"b1\", \"b2\"]\n\
                 [storage]\nurl = \"file:///tmp/none\"\n[restore]\nsource = \"latest\"\nmethod = \"{method}\"\n\
                 [restore.host_map]\na1 = \"b1\"\na2 = \"b2\"\na3 = \"b1\"\n"
            ),
        )
        .unwrap();
        p
    };
    let p = plan("loader");
    let (code, shown) = crate::support::run_cbk(
        &[
            "plan",
            &p.display().to_string(),
            "--now",
            "2026-03-01T00:00:00Z",
        ],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        task_line(&shown, "loader[b1]").contains("source_hosts=a1 a3"),
        "{shown}"
    );
    assert!(
        task_line(&shown, "fetch[b2]").contains("source_host=a2"),
        "{shown}"
    );
    let (code, json) = crate::support::run_cbk(
        &[
            "plan",
            &p.display().to_string(),
            "--now",
            "2026-03-01T00:00:00Z",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        json_params(&json, "fetch[b1]")["source_hosts"],
        serde_json::json!(["a1", "a3"])
    );
    let p = plan("import");
    let (code, err) = crate::support::run_cbk(
        &[
            "plan",
            &p.display().to_string(),
            "--now",
            "2026-03-01T00:00:00Z",
        ],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(code, 64, "{err}");
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        err.contains("hosts `a1` and `a3` both map to `b1`"),
        "{err}"
    );
    assert!(err.contains("method = \"loader\" streams several"), "{err}");
}

/// The live table folders (`table-id`) of `keyspace` on a host.
fn live_folders(c: &TestCluster, host: &str, keyspace: &str) -> Vec<String> {
    let out = c.sh(
        host,
        &format!("ls -d /var/lib/cassandra/data*/{keyspace}/*/ 2>/dev/null | xargs -rn1 basename | sort -u"),
    );
    out.lines().map(String::from).collect()
}

/// `target_table` (import) and `target_keyspace` (loader) restore beside the live tables of the
/// same cluster: new tables created from the backed-up schema under the new names (with ids of
/// their own), each holding exactly the backed-up files of its node, the live tables untouched;
/// `restart` with a target name is refused at plan time.
#[tokio::test(flavor = "multi_thread")]
async fn target_keyspace_and_table_restore_beside_the_live_data() {
    let env = setup("4.1").await;
    let a = &env.cluster;
    let (code, log) = env.apply(&env.backup_plan(), "2026-03-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let expected = backed_up(&env, UNEVEN_BACKUP).await;
    // Writes after the backup: the live tables now differ from it.
    for h in a.hosts() {
        crate::support::e2e::write_flush(a, &h, 10, 10);
    }
    let live_before: Vec<TableFiles> = a.hosts().iter().map(|h| live_table_files(a, h)).collect();
    let orders_id = crate::support::e2e::ORDERS_ID.replace('-', "");

    // import into shop.orders_restored (created from the backed-up schema, without its id).
    let plan = env.plan(
        "beside-import.toml",
        a,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\nmethod = \"import\"\ninclude = [\"shop.orders\"]\n\
         target_table = \"orders_restored\"\ncreate_missing_tables = true\n",
    );
    let (code, log) = env.apply(&plan, "2026-03-02T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("(backed up as shop.orders)"), "{log}");
    for (i, h) in a.hosts().iter().enumerate() {
        let live = live_table_files(a, h);
        assert_eq!(
            live["orders_restored"], expected[h]["orders"],
            "{h}: orders_restored does not hold exactly the backed-up orders"
        );
        let mut others = live.clone();
        others.remove("orders_restored");
        assert_eq!(others, live_before[i], "{h}: a live table changed");
        let folders = live_folders(a, h, "shop");
        let restored: Vec<&String> = folders
            .iter()
            .filter(|f| f.starts_with("orders_restored-"))
            .collect();
        assert_eq!(restored.len(), 1, "{folders:?}");
        assert!(
            !restored[0].ends_with(&orders_id),
            "took the live id: {folders:?}"
        );
    }

    // loader into keyspace shop_copy (it exists; the table and its index are created there).
    for h in a.hosts() {
        a.sh(
            &h,
            "cassandra-emu cql \"CREATE KEYSPACE shop_copy WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}\"",
        );
    }
    let plan = env.plan(
        "beside-loader.toml",
        a,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\nmethod = \"loader\"\ninclude = [\"shop.customers\"]\n\
         target_keyspace = \"shop_copy\"\ncreate_missing_tables = true\n",
    );
    let (code, log) = env.apply(&plan, "2026-03-03T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    for (i, h) in a.hosts().iter().enumerate() {
        let copy = live_files_of(a, h, "shop_copy");
        assert_eq!(
            copy.keys().collect::<Vec<_>>(),
            ["customers"],
            "{h}: {copy:?}"
        );
        assert_eq!(copy["customers"], expected[h]["customers"], "{h}");
        let mut shop = live_table_files(a, h);
        shop.remove("orders_restored");
        assert_eq!(shop, live_before[i], "{h}: a live table of shop changed");
        let show = a.sh(h, "cassandra-emu show");
        assert!(show.contains("shop_copy"), "{show}");
    }

    // restart with a target name: refused at plan time, with the place in the file.
    let plan = env.plan(
        "beside-restart.toml",
        a,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\nmethod = \"restart\"\ninclude = [\"shop.orders\"]\n\
         target_table = \"orders_restored\"\n",
    );
    let (code, err) = env.cbk(&["plan", &plan.display().to_string()]);
    assert_eq!(code, 64, "{err}");
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("`target_table` does not apply to method `restart`"),
        "{err}"
    );
    assert!(flat.contains("beside-restart.toml:7:16"), "{err}");
    assert!(flat.contains("use `method = \"import\"`"), "{err}");
}

/// `datacenters = ["dc1"]`: a loader restore of a backup of two data centers (node1, node2 in
/// dc1, node3 in dc2, as each node reported at backup time) restores only the dc1 hosts.
#[tokio::test(flavor = "multi_thread")]
async fn datacenters_restores_only_the_hosts_of_that_data_center() {
    let cluster = TestCluster::start(3);
    for (i, h) in cluster.hosts().iter().enumerate() {
        let dc = if i < 2 { "dc1" } else { "dc2" };
        cluster.sh(
            h,
            &format!(
                "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && cassandra-emu init --force --version 4.1 \
                 --data-root /var/lib/cassandra --data-dirs 2 --cluster prod --listen-address {} --dc {dc} --rack rack1 && \
                 cassandra-emu start && \
                 cassandra-emu cql \"CREATE KEYSPACE shop WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 2}}\" && \
                 cassandra-emu cql \"CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal)\" && \
                 cassandra-emu write shop orders --rows {} && nodetool flush shop",
                cluster.address(h),
                10 * (i + 1)
            ),
        );
    }
    let moto = crate::support::s3::Moto::start();
    let bucket = crate::support::s3::new_bucket(&moto).await;
    let env = Env {
        cluster,
        moto,
        bucket,
        dir: tempfile::tempdir().unwrap(),
    };
    let (code, log) = env.apply(&env.backup_plan(), "2026-03-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let expected = backed_up(&env, UNEVEN_BACKUP).await;
    let b = target_cluster(2, 2);
    let plan = loader_plan(&env, &b, "dc1.toml", "datacenters = [\"dc1\"]\n");
    let (code, log) = env.apply(&plan, "2026-03-02T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("not restored (data center not in restore.datacenters): node3"),
        "{log}"
    );
    for h in ["node1", "node2"] {
        assert_eq!(live_table_files(&b, h), union(&expected, &[h]), "{h}");
    }
}
