//! Keyspace definitions recorded in backups, `restore.dc_map` and the replication check per data
//! center (docs/restore.md, "Restoring into another topology"), over real sshd + the node
//! emulator + moto: a backup of two data centers (node1, node2 in dc1; node3 in dc2; keyspace
//! shop with NetworkTopologyStrategy {dc1: 2, dc2: 1}) restored with `loader` into a cluster whose
//! data centers are named dcX and dcY.
//!
//! The emulated 4.1 nodes refuse `CREATE KEYSPACE` naming a data center they do not know, as
//! Cassandra 4.0+ does, so a keyspace created with the backed-up names would fail on the target.

use crate::support;
use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, read_json};
use cbk::repo::manifest::{Catalog, NodeManifest};
use std::collections::BTreeMap;

/// table -> sorted (component, sha256) of its base sstable files.
type TableFiles = BTreeMap<String, Vec<(String, String)>>;

fn component(file: &str) -> String {
    file.splitn(4, '-').nth(3).unwrap_or(file).to_string()
}

/// The base-table sstable files in the live folders of keyspace shop on a host.
fn live_files(c: &TestCluster, host: &str) -> TableFiles {
    let out = c.sh(
        host,
        "cd /var/lib/cassandra && for f in $(find data*/shop -mindepth 2 -maxdepth 2 -type f 2>/dev/null | sort); do \
         echo \"$f $(sha256sum < $f | cut -c1-64)\"; done",
    );
    let mut m = TableFiles::new();
    for line in out.lines() {
        let (path, sum) = line.split_once(' ').unwrap();
        let parts: Vec<&str> = path.split('/').collect();
        let table = parts[2].split('-').next().unwrap().to_string();
        m.entry(table)
            .or_default()
            .push((component(parts[3]), sum.to_string()));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// What each backup host stored (decoded from the store), by host name.
async fn backed_up(env: &Env, backup: &str) -> BTreeMap<String, TableFiles> {
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    let mut expected: BTreeMap<String, TableFiles> = BTreeMap::new();
    for h in &catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        let tables = expected.entry(h.name.clone()).or_default();
        for t in m.tables.iter().filter(|t| t.keyspace == "shop") {
            for f in t.files.iter().filter(|f| !f.path.contains('/')) {
                let plain = crate::support::e2e::stored_plain(store.as_ref(), f).await;
                use sha2::Digest;
                tables.entry(t.table.clone()).or_default().push((
                    component(&f.path),
                    hex::encode(sha2::Sha256::digest(&plain)),
                ));
            }
        }
        for v in tables.values_mut() {
            v.sort();
        }
    }
    expected
}

/// Emulated 4.1 nodes, node N in `dcs[N-1]`, each knowing the others as peers (so each knows
/// every data center of the cluster, as gossip would tell it).
fn dc_cluster(dcs: &[&str]) -> TestCluster {
    let c = TestCluster::start(dcs.len());
    let hosts = c.hosts();
    for (i, h) in hosts.iter().enumerate() {
        let peers: String = hosts
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, p)| {
                format!(
                    " && cassandra-emu add-peer --address {} --dc {}",
                    c.address(p),
                    dcs[j]
                )
            })
            .collect();
        c.sh(
            h,
            &format!(
                "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && cassandra-emu init --force --version 4.1 \
                 --data-root /var/lib/cassandra --data-dirs 2 --cluster prod --listen-address {} --dc {} --rack rack1{peers} && \
                 cassandra-emu start",
                c.address(h),
                dcs[i]
            ),
        );
    }
    c
}

const NTS: &str = "{'class': 'NetworkTopologyStrategy', 'dc1': 2, 'dc2': 1}";

/// The source cluster (dc1, dc1, dc2) with keyspace shop, two tables with data, backed up as
/// `nightly-20260301T020000Z`.
async fn backed_up_env() -> Env {
    let cluster = dc_cluster(&["dc1", "dc1", "dc2"]);
    for (i, h) in cluster.hosts().iter().enumerate() {
        cluster.sh(
            h,
            &format!(
                "cassandra-emu cql \"CREATE KEYSPACE shop WITH replication = {NTS}\" && \
                 cassandra-emu cql \"CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal)\" && \
                 cassandra-emu cql \"CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text)\" && \
                 cassandra-emu write shop orders --rows {} && cassandra-emu write shop customers --rows 7 && \
                 nodetool flush shop",
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
    env
}

/// A loader restore plan of `shop.*` into `hosts` of `b` (name, dc) with `extra` `[restore]`
/// lines.
fn plan(env: &Env, b: &TestCluster, name: &str, hosts: &[(&str, &str)], extra: &str) -> String {
    let p = env.plan(
        name,
        b,
        &format!(
            "kind = \"restore\"\n[restore]\nsource = \"latest\"\nmethod = \"loader\"\ninclude = [\"shop.*\"]\n\
             create_missing_tables = true\n{extra}"
        ),
    );
    let text = std::fs::read_to_string(&p).unwrap();
    let listed: Vec<String> = b.hosts().iter().map(|h| format!("\"{h}\"")).collect();
    let old = format!("hosts = [{}]", listed.join(", "));
    assert!(text.contains(&old), "{text}");
    let new: Vec<String> = hosts
        .iter()
        .map(|(h, dc)| format!("{{ name = \"{h}\", dc = \"{dc}\" }}"))
        .collect();
    std::fs::write(
        &p,
        text.replace(&old, &format!("hosts = [{}]", new.join(", "))),
    )
    .unwrap();
    p.display().to_string()
}

/// The replication of keyspace shop on a host, as cqlsh prints it ("" when it does not exist).
fn shop_replication(c: &TestCluster, host: &str) -> String {
    c.sh(
        host,
        "cqlsh -e \"SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'shop'\"",
    )
    .lines()
    .find(|l| l.contains("'class'"))
    .unwrap_or("")
    .trim()
    .to_string()
}

/// A backup of two data centers restored with `dc_map = { dc1 = "dcX", dc2 = "dcY" }` into a
/// cluster without keyspace shop: the keyspace is created from the definition the backup
/// recorded, with the data centers renamed; the backed-up hosts of dc1 restore onto the dcX hosts
/// (node2 onto node2, node1 onto node3), node3's (dc2) onto node1, the only dcY host; every target
/// holds exactly the backed-up files of its source.
#[tokio::test(flavor = "multi_thread")]
async fn dc_map_creates_the_keyspace_with_renamed_data_centers_and_restores_every_byte() {
    let env = backed_up_env().await;
    let backup = "nightly-20260301T020000Z";
    // The node manifests record the keyspace's definition.
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    for h in &catalog.hosts {
        let m: serde_json::Value = read_json(store.as_ref(), &h.manifest).await;
        let defs = &m["keyspaces"];
        assert_eq!(defs["format"], 1, "{m}");
        assert_eq!(defs["keyspaces"][0]["name"], "shop", "{m}");
        assert_eq!(defs["keyspaces"][0]["replication"]["dc1"], "2", "{m}");
        assert_eq!(defs["keyspaces"][0]["replication"]["dc2"], "1", "{m}");
        assert_eq!(defs["keyspaces"][0]["durable_writes"], true, "{m}");
    }
    let expected = backed_up(&env, backup).await;
    let b = dc_cluster(&["dcY", "dcX", "dcX"]);
    let p = plan(
        &env,
        &b,
        "dcmap.toml",
        &[("node1", "dcY"), ("node2", "dcX"), ("node3", "dcX")],
        "dc_map = { dc1 = \"dcX\", dc2 = \"dcY\" }\n",
    );
    // `--refresh` resolves at plan time and changes nothing: the keyspace is still missing.
    let (code, err) = env.cbk(&["plan", &p, "--now", "2026-03-02T02:00:00Z", "--refresh"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        support::says(
            &err,
            &format!("refresh: resolve: restoring backup {backup}")
        ),
        "{err}"
    );
    for h in b.hosts() {
        assert_eq!(
            shop_replication(&b, &h),
            "",
            "{h}: --refresh created the keyspace"
        );
    }
    let (code, log) = env.apply(std::path::Path::new(&p), "2026-03-02T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    for h in b.hosts() {
        let r = shop_replication(&b, &h);
        let mut entries: Vec<&str> = r
            .trim_matches(|c| c == '{' || c == '}')
            .split(", ")
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            [
                "'class': 'NetworkTopologyStrategy'",
                "'dcX': '2'",
                "'dcY': '1'"
            ],
            "{h}: {r}\n{log}"
        );
    }
    for (target, source) in [("node1", "node3"), ("node2", "node2"), ("node3", "node1")] {
        let live = live_files(&b, target);
        assert_eq!(
            live, expected[source],
            "{target} should hold {source}'s files"
        );
        assert_eq!(live.len(), 2, "{target}: {live:?}");
    }
}

/// dc1 (two backed-up hosts, replication factor 2) restored into one dcX host: `resolve` refuses
/// with the numbers from the backup's recorded definition (the keyspace does not exist on the
/// target), before anything is staged or created and with every node still up.
#[tokio::test(flavor = "multi_thread")]
async fn replication_is_checked_per_data_center_from_the_recorded_definition() {
    let env = backed_up_env().await;
    let b = dc_cluster(&["dcY", "dcX"]);
    let p = plan(
        &env,
        &b,
        "shrink.toml",
        &[("node1", "dcY"), ("node2", "dcX")],
        "dc_map = { dc1 = \"dcX\", dc2 = \"dcY\" }\n",
    );
    let refused = "keyspace shop has replication factor 2 in data center dcX but the restore \
                   targets 1 node(s) there (2 backed-up host(s) restored into it)";
    // `cbk plan` reads nothing and shows the plan; `cbk plan --refresh` runs `resolve` against
    // the store and the nodes and refuses at plan time, with the numbers.
    let (code, shown) = env.cbk(&["plan", &p, "--now", "2026-03-02T02:00:00Z"]);
    assert_eq!(code, 0, "{shown}");
    let (code, err) = env.cbk(&["plan", &p, "--now", "2026-03-02T02:00:00Z", "--refresh"]);
    assert_eq!(code, 1, "{err}");
    assert!(support::says(&err, refused), "{err}");
    assert!(support::says(&err, "nothing was changed"), "{err}");
    let (code, log) = env.apply(std::path::Path::new(&p), "2026-03-02T02:00:00Z");
    assert_eq!(code, 1, "{log}");
    assert!(support::says(&log, refused), "{log}");
    for h in b.hosts() {
        assert_eq!(shop_replication(&b, &h), "", "{h}: keyspace created");
        let staged = b.sh(&h, "ls /var/lib/cassandra/cbk-staging 2>/dev/null | wc -l");
        assert_eq!(staged.trim(), "0", "{h}: something was staged");
        let info = b.sh(&h, "nodetool info | head -1");
        assert!(info.contains("ID"), "{h} is not up: {info}");
    }
    // A bad dc_map is refused by `cbk plan`, with the place in the plan file.
    let bad = plan(
        &env,
        &b,
        "bad.toml",
        &[("node1", "dcY"), ("node2", "dcX")],
        "dc_map = { dc1 = \"dcZ\" }\n",
    );
    let (code, err) = env.cbk(&["plan", &bad]);
    assert_eq!(code, 64, "{err}");
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("no host of this plan is in data center `dcZ`"),
        "{err}"
    );
    assert!(flat.contains("bad.toml:8:18"), "{err}");
}

/// A backup without keyspace definitions (the manifests of a cbk that did not record them) still
/// restores into an existing keyspace; where the keyspace is missing, `create_missing_tables`
/// says that the backup records no definition.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_without_keyspace_definitions_still_restores() {
    let env = backed_up_env().await;
    let backup = "nightly-20260301T020000Z";
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    for h in &catalog.hosts {
        let mut m: serde_json::Value = read_json(store.as_ref(), &h.manifest).await;
        assert!(m["keyspaces"].is_object(), "{m}");
        m.as_object_mut().unwrap().remove("keyspaces");
        store
            .put_bytes(
                &h.manifest,
                bytes::Bytes::from(serde_json::to_vec_pretty(&m).unwrap()),
            )
            .await
            .unwrap();
    }
    let expected = backed_up(&env, backup).await;
    let b = dc_cluster(&["dcY", "dcX", "dcX"]);
    let hosts = [("node1", "dcY"), ("node2", "dcX"), ("node3", "dcX")];
    let map = "dc_map = { dc1 = \"dcX\", dc2 = \"dcY\" }\n";
    let p = plan(&env, &b, "old-missing.toml", &hosts, map);
    let (code, log) = env.apply(std::path::Path::new(&p), "2026-03-02T02:00:00Z");
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("keyspace shop does not exist on node")
            && log.contains("the backup records no keyspace definitions"),
        "{log}"
    );
    for h in b.hosts() {
        b.sh(
            &h,
            "cassandra-emu cql \"CREATE KEYSPACE shop WITH replication = {'class': 'NetworkTopologyStrategy', 'dcX': 2, 'dcY': 1}\"",
        );
    }
    let p = plan(&env, &b, "old.toml", &hosts, map);
    let (code, log) = env.apply(std::path::Path::new(&p), "2026-03-03T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    for (target, source) in [("node1", "node3"), ("node2", "node2"), ("node3", "node1")] {
        assert_eq!(live_files(&b, target), expected[source], "{target}");
    }
}
