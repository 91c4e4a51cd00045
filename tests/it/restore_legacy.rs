//! Restore from a bucket written by the old Python `cassandra_backups`: objects
//! `<base>/<name>/<host>/<absolute path>.lzo` compressed by the real `lzop` binary from the
//! Cassandra fixture sstables, a `backups/` sstable, metadata noise and `manifest.json`.
//! Over real sshd to two emulated 4.1 nodes from a real S3 server (moto; one host written in the
//! double-slash key form, one table dropped and re-created with a new id), and with the local
//! transport from the `fs` store: a misspelled snapshot, a missing manifest, corrupt lzop data and
//! a Data.db that does not match its Digest are refused before any node stops, a table missing on
//! the target is created from the snapshot's schema.cql, and `incrementals = false` leaves out
//! `backups/`. The agent's `fetch` op takes objects without a recorded size and CRC32 only when
//! they are lzop.

use crate::cassandra_support;
use crate::support;

use crate::support::cluster::TestCluster;
use crate::support::e2e::Env;
use crate::support::emu::{EmuNode, plan_and_apply};
use crate::support::s3::{Moto, S3Server};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BASE: &str = "webapp_prod";
const NAME: &str = "20161223";
/// Table ids at backup time (in the legacy keys).
const ORDERS_ID: &str = "5a1f6c10000011f18000000000000001";
const CUSTOMERS_OLD_ID: &str = "5a1f6c10000011f18000000000000002";
/// The id `customers` has now: dropped and re-created after the old backup.
const CUSTOMERS_NEW_ID: &str = "7c2e9d40-0000-11f1-8000-000000000003";
/// A table in the old backup that the target node does not have.
const INVOICES_ID: &str = "5a1f6c10000011f18000000000000004";

/// The nb fixture sstable `legacy_nb_<kind>` as files of generation `generation`.
fn sstable(kind: &str, generation: u32) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cassandra/nb/legacy_tables")
        .join(format!("legacy_nb_{kind}"));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let renamed = name.replacen("nb-1-", &format!("nb-{generation}-"), 1);
            (renamed, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "{}", dir.display());
    files
}

/// `data` compressed by the real `lzop` as the old tool's pipeline did.
fn lzop(name: &str, data: &[u8]) -> Vec<u8> {
    cassandra_support::lzop(name, data, &[])
}

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// Where one sstable of a legacy host folder comes from.
struct Sst {
    table: &'static str,
    old_id: &'static str,
    /// `snapshots/<name>` or `backups`.
    folder: &'static str,
    kind: &'static str,
    generation: u32,
}

/// One host folder of the legacy backup: the objects to store and the live files expected
/// after the restore (`<table>-<live id>/<file>` -> sha256).
struct HostFolder {
    objects: Vec<(String, Vec<u8>)>,
    expected: Vec<(String, String)>,
    /// Key of the Data.db object of the first sstable (for damage).
    first_data_key: String,
    first_data: Vec<u8>,
    /// Stored size of the objects restored (without the noise).
    restored_bytes: usize,
}

fn live_id(table: &str) -> String {
    match table {
        "orders" => ORDERS_ID.to_string(),
        "invoices" => INVOICES_ID.to_string(),
        _ => CUSTOMERS_NEW_ID.replace('-', ""),
    }
}

/// `5a1f…0004` -> `5a1f6c10-0000-…-000000000004`.
fn uuid(id: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..]
    )
}

/// `<prefix>/<host><sep>var/lib/cassandra/data/shop/<table>-<id>/<folder>/<file>.lzo` for
/// every file of `ssts`; `sep` is `/` or the old double slash `//`.
fn host_folder(prefix: &str, host: &str, sep: &str, ssts: &[Sst]) -> HostFolder {
    let mut out = HostFolder {
        objects: Vec::new(),
        expected: Vec::new(),
        first_data_key: String::new(),
        first_data: Vec::new(),
        restored_bytes: 0,
    };
    for s in ssts {
        for (file, bytes) in sstable(s.kind, s.generation) {
            let key = format!(
                "{prefix}/{host}{sep}var/lib/cassandra/data/shop/{}-{}/{}/{file}.lzo",
                s.table, s.old_id, s.folder
            );
            if out.first_data_key.is_empty() && file.ends_with("-Data.db") {
                out.first_data_key = key.clone();
                out.first_data = bytes.clone();
            }
            let lzo = lzop(&file, &bytes);
            out.restored_bytes += lzo.len();
            out.objects.push((key, lzo));
            out.expected.push((
                format!("{}-{}/{file}", s.table, live_id(s.table)),
                sha(&bytes),
            ));
        }
    }
    // Harmless noise the old tool leaves: a `backups/` copy of a snapshot component (the
    // first incremental run of a day uploads those again) and Cassandra's snapshot metadata
    // (its schema.cql creates the table `WITH ID` when the restore may create tables).
    let first = &ssts[0];
    let dir = format!(
        "{prefix}/{host}{sep}var/lib/cassandra/data/shop/{}-{}",
        first.table, first.old_id
    );
    let (file, bytes) = sstable(first.kind, first.generation).remove(1);
    out.objects
        .push((format!("{dir}/backups/{file}.lzo"), lzop(&file, &bytes)));
    let schema = format!(
        "CREATE TABLE IF NOT EXISTS shop.{} (id uuid PRIMARY KEY, total decimal) WITH ID = {};\n",
        first.table,
        uuid(first.old_id)
    );
    for (meta, body) in [
        ("manifest.json", &b"{\"files\": []}"[..]),
        ("schema.cql", schema.as_bytes()),
    ] {
        out.objects.push((
            format!("{dir}/snapshots/{NAME}/{meta}.lzo"),
            lzop(meta, body),
        ));
    }
    out.expected.sort();
    out
}

/// `<prefix>/manifest.json` as the old tool writes it, plus `ring` and `schema.cql`.
fn metadata(prefix: &str, hosts: &[&str]) -> Vec<(String, Vec<u8>)> {
    let manifest = serde_json::json!({
        "table": "", "hosts": hosts, "keyspaces": ["shop"], "name": NAME, "base_path": BASE
    });
    vec![
        (
            format!("{prefix}/manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        ),
        (format!("{prefix}/ring"), b"Datacenter: dc1\n".to_vec()),
        (
            format!("{prefix}/schema.cql"),
            b"CREATE KEYSPACE shop;".to_vec(),
        ),
    ]
}

/// Live sstable files of keyspace shop under `root` (any data dir, not snapshots/backups):
/// `<table folder>/<file>` -> sha256, sorted.
fn live_files(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dd in std::fs::read_dir(root).unwrap().flatten() {
        let Ok(tables) = std::fs::read_dir(dd.path().join("shop")) else {
            continue;
        };
        for t in tables.flatten() {
            for f in std::fs::read_dir(t.path()).unwrap().flatten() {
                if f.file_type().unwrap().is_file() {
                    out.push((
                        format!(
                            "{}/{}",
                            t.file_name().to_string_lossy(),
                            f.file_name().to_string_lossy()
                        ),
                        sha(&std::fs::read(f.path()).unwrap()),
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// Task address -> status, from `cbk state --json`.
fn task_status(conf: &Path, state: &Path) -> BTreeMap<String, String> {
    support::emu::task_status(conf, state).into_iter().collect()
}

fn assert_no_stop(tasks: &BTreeMap<String, String>) {
    assert!(
        tasks
            .iter()
            .filter(|(a, _)| a.starts_with("stop["))
            .all(|(_, s)| s == "skipped"),
        "a stop ran: {tasks:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Over sshd, from S3.

fn init_cluster_node(c: &TestCluster, h: &str) {
    c.sh(
        h,
        &format!(
            "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && cassandra-emu init --force --version 4.1 \
             --data-root /var/lib/cassandra --data-dirs 2 --cluster prod --listen-address {} && cassandra-emu start",
            c.address(h)
        ),
    );
    for stmt in [
        "CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 2}".to_string(),
        format!("CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal) WITH ID = {}", uuid(ORDERS_ID)),
        format!("CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text) WITH ID = {}", uuid(CUSTOMERS_OLD_ID)),
    ] {
        c.sh(h, &format!("cassandra-emu cql \"{stmt}\""));
    }
    // Live data that the restore displaces, then customers is dropped and re-created.
    for _ in 0..2 {
        c.sh(
            h,
            "cassandra-emu write shop orders --rows 50 && cassandra-emu write shop customers --rows 50 && nodetool flush shop",
        );
    }
    c.sh(
        h,
        &format!(
            "cassandra-emu cql 'DROP TABLE shop.customers' && cassandra-emu cql 'CREATE TABLE shop.customers \
             (id uuid PRIMARY KEY, name text) WITH ID = {CUSTOMERS_NEW_ID}' && cassandra-emu write shop customers --rows 20 \
             && cassandra-emu write shop orders --rows 20"
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_s3_bucket_restores_over_ssh_with_restart() {
    let cluster = TestCluster::start(2);
    for h in cluster.hosts() {
        init_cluster_node(&cluster, &h);
    }
    let moto = Moto::start();
    let bucket = support::s3::new_bucket(&moto).await;
    let env = Env {
        cluster,
        moto,
        bucket,
        dir: tempfile::tempdir().unwrap(),
    };
    let (cluster, moto, bucket) = (&env.cluster, &env.moto, &env.bucket);

    // node1's folder has the host name of the plan and single-slash keys; node2's was written
    // as `cass02.example.com` with the old double slash and is mapped by host_map.
    let prefix = format!("{BASE}/{NAME}");
    let n1 = host_folder(
        &prefix,
        "node1",
        "/",
        &[
            Sst {
                table: "orders",
                old_id: ORDERS_ID,
                folder: "snapshots/20161223",
                kind: "simple",
                generation: 11,
            },
            Sst {
                table: "orders",
                old_id: ORDERS_ID,
                folder: "backups",
                kind: "clust",
                generation: 12,
            },
            Sst {
                table: "customers",
                old_id: CUSTOMERS_OLD_ID,
                folder: "snapshots/20161223",
                kind: "clust",
                generation: 11,
            },
        ],
    );
    let n2 = host_folder(
        &prefix,
        "cass02.example.com",
        "//",
        &[
            Sst {
                table: "orders",
                old_id: ORDERS_ID,
                folder: "snapshots/20161223",
                kind: "clust",
                generation: 21,
            },
            Sst {
                table: "customers",
                old_id: CUSTOMERS_OLD_ID,
                folder: "snapshots/20161223",
                kind: "simple",
                generation: 22,
            },
            Sst {
                table: "customers",
                old_id: CUSTOMERS_OLD_ID,
                folder: "backups",
                kind: "simple",
                generation: 23,
            },
        ],
    );
    // Another day's snapshot under the same base must not be picked up.
    let other = host_folder(
        &format!("{BASE}/20161224"),
        "node1",
        "/",
        &[Sst {
            table: "orders",
            old_id: ORDERS_ID,
            folder: "snapshots/20161224",
            kind: "clust",
            generation: 31,
        }],
    );
    let store = cbk::store::s3::S3Store::new(
        &support::s3::storage_config(&moto.endpoint(), bucket, ""),
        Some(moto.credentials()),
    )
    .await
    .unwrap();
    let all: Vec<&(String, Vec<u8>)> = n1
        .objects
        .iter()
        .chain(&n2.objects)
        .chain(&other.objects)
        .collect();
    let meta = metadata(&prefix, &["node1", "cass02.example.com"]);
    for (key, body) in all.into_iter().chain(&meta) {
        store
            .client()
            .put_object()
            .bucket(bucket)
            .key(format!("prod/{key}"))
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
    }
    let listed = store
        .client()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("prod/{prefix}/cass02.example.com//"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents().len(),
        n2.objects.len(),
        "the server keeps the double-slash keys"
    );

    let plan = env.plan(
        "restore.toml",
        cluster,
        &format!(
            r#"kind = "restore"
[restore]
source = "legacy:{prefix}"
include = ["shop.*"]
method = "restart"
repair_options = ["-full"]
host_map = {{ "node1" = "node1", "cass02.example.com" = "node2" }}
"#
        ),
    );
    let started = std::time::Instant::now();
    let (shown, code, log) = env.plan_and_apply(&plan, "2026-03-01T08:00:00Z");
    eprintln!(
        "legacy restore of 2 nodes over ssh (plan and apply) took {:?}",
        started.elapsed()
    );
    assert!(shown.contains(&format!("legacy:{prefix}")), "{shown}");
    assert_eq!(code, 0, "{log}");
    // 3 sstables of 8 files per host; the backups/ copy of a snapshot file is skipped.
    for line in [
        "node1 -> node1: 24 objects",
        "cass02.example.com -> node2: 24 objects",
        "16 snapshot, 8 backups, 1 duplicates skipped",
    ] {
        assert!(log.contains(line), "`{line}` missing from:\n{log}");
    }
    for (h, folder) in [("node1", &n1), ("node2", &n2)] {
        let live = live_files(&cluster.data_dir(h));
        assert_eq!(live, folder.expected, "live files of {h}");
        assert_eq!(cluster.sh(h, "cassandra-emu status").trim(), "running");
        // Nothing went into the dropped table's old folder.
        assert!(
            !live
                .iter()
                .any(|(p, _)| p.starts_with(&format!("customers-{CUSTOMERS_OLD_ID}/"))),
            "{h}: {live:?}"
        );
        // The emulator loaded exactly the restored sstables at its start.
        let show: serde_json::Value =
            serde_json::from_str(&cluster.sh(h, "cassandra-emu show")).unwrap();
        let mut loaded: Vec<String> = ["orders", "customers"]
            .iter()
            .flat_map(|t| {
                let live = show["tables"][format!("shop.{t}")]["live"]
                    .as_array()
                    .unwrap();
                live.iter()
                    .map(|p| {
                        let p = p.as_str().unwrap();
                        format!("{t}/{}", p.rsplit('/').next().unwrap())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        loaded.sort();
        let mut want: Vec<String> = folder
            .expected
            .iter()
            .filter(|(p, _)| p.ends_with("-Data.db"))
            .map(|(p, _)| {
                let (table_dir, file) = p.split_once('/').unwrap();
                let table = table_dir.split('-').next().unwrap();
                format!("{table}/{}", file.trim_end_matches("-Data.db"))
            })
            .collect();
        want.sort();
        assert_eq!(loaded, want, "sstables loaded by {h}");
    }
}

// ---------------------------------------------------------------------------------------------
// Local transport, from a folder store.

#[test]
fn legacy_fs_store_refuses_damage_before_any_stop_then_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let node = EmuNode::start(dir, "4.1", 2, &[]);
    node.cql("CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    node.cql(&format!(
        "CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal) WITH ID = {}",
        uuid(ORDERS_ID)
    ));
    node.cql(&format!(
        "CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text) WITH ID = {CUSTOMERS_NEW_ID}"
    ));
    node.write_flush("shop", "orders", 100);
    node.write_flush("shop", "customers", 100);
    let store = dir.join("store");
    let prefix = format!("{BASE}/{NAME}");
    let folder = host_folder(
        &prefix,
        "cass01.example.com",
        "/",
        &[
            Sst {
                table: "orders",
                old_id: ORDERS_ID,
                folder: "snapshots/20161223",
                kind: "clust",
                generation: 5,
            },
            Sst {
                table: "customers",
                old_id: CUSTOMERS_OLD_ID,
                folder: "backups",
                kind: "simple",
                generation: 6,
            },
        ],
    );
    // A table the node does not have: created from the snapshot's schema.cql.
    let mut folder = folder;
    let invoices = host_folder(
        &prefix,
        "cass01.example.com",
        "/",
        &[Sst {
            table: "invoices",
            old_id: INVOICES_ID,
            folder: "snapshots/20161223",
            kind: "simple",
            generation: 7,
        }],
    );
    folder.objects.extend(invoices.objects);
    folder.expected.extend(invoices.expected);
    folder.expected.sort();
    folder.restored_bytes += invoices.restored_bytes;
    let put = |key: &str, body: &[u8]| {
        let p = store.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    for (k, b) in &folder.objects {
        put(k, b);
    }
    let plan = dir.join("restore.toml");
    std::fs::write(
        &plan,
        node.local_plan(
            "n1",
            &store,
            &format!(
                "kind = \"restore\"\n[restore]\nsource = \"legacy:{prefix}\"\ninclude = [\"shop.*\"]\n\
                 method = \"restart\"\nrepair = false\ncreate_missing_tables = true\nhost_map = {{ \"cass01.example.com\" = \"n1\" }}\n"
            ),
        ),
    )
    .unwrap();
    let before = live_files(&node.data_root);
    let refused_by = |plan: &Path, now: &str, expect: &str, failed: &str| {
        let started = node.started_ms();
        let (code, log, state) = plan_and_apply(&node.conf, plan, now, dir);
        assert_ne!(code, 0, "a damaged legacy backup was restored: {log}");
        assert!(log.contains(expect), "`{expect}` missing from:\n{log}");
        let tasks = task_status(&node.conf, &state);
        assert_eq!(
            tasks.get(failed).map(String::as_str),
            Some("failed"),
            "{tasks:?}"
        );
        assert_no_stop(&tasks);
        assert!(node.running());
        assert_eq!(node.started_ms(), started, "the node was restarted");
        assert_eq!(live_files(&node.data_root), before, "live files changed");
    };

    // 1. No manifest.json: the old tool had not finished its first snapshot.
    let refused = |now: &str, expect: &str, failed: &str| refused_by(&plan, now, expect, failed);

    // 0. A snapshot name with nothing stored under it.
    let misspelled = dir.join("restore-misspelled.toml");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&misspelled, text.replace(NAME, "20161299")).unwrap();
    refused_by(
        &misspelled,
        "2026-03-01T00:30:00Z",
        &format!("no legacy backup at `{BASE}/20161299/`"),
        "resolve",
    );

    refused(
        "2026-03-01T01:00:00Z",
        &format!("`{prefix}/manifest.json` is missing"),
        "resolve",
    );
    for (k, b) in metadata(&prefix, &["cass01.example.com"]) {
        put(&k, &b);
    }

    // 2. lzop data corrupted in the middle of the Data.db object.
    let good = std::fs::read(store.join(&folder.first_data_key)).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x5a;
    put(&folder.first_data_key, &bad);
    refused("2026-03-01T02:00:00Z", &folder.first_data_key, "fetch[n1]");

    // 3. A valid lzop file of a Data.db that does not match its Digest.
    let mut wrong = folder.first_data.clone();
    wrong[100] ^= 0x01;
    put(&folder.first_data_key, &lzop("nb-5-big-Data.db", &wrong));
    refused(
        "2026-03-01T03:00:00Z",
        "staged backup is corrupt",
        "fetch[n1]",
    );

    // 4. The intact object: the restore goes through and the node runs on the old files.
    put(&folder.first_data_key, &good);
    let started = node.started_ms();
    let (code, log, state) = plan_and_apply(&node.conf, &plan, "2026-03-01T04:00:00Z", dir);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!(
            "cass01.example.com -> n1: 24 objects ({} lzo bytes; 16 snapshot, 8 backups, 2 duplicates skipped) in 3 tables",
            folder.restored_bytes
        )),
        "{log}"
    );
    assert_eq!(live_files(&node.data_root), folder.expected);
    assert!(node.running());
    assert!(node.started_ms() > started, "the node was not restarted");
    let tasks = task_status(&node.conf, &state);
    assert!(
        tasks.values().all(|s| s == "applied" || s == "satisfied"),
        "{tasks:?}"
    );
    // 5. `incrementals = false`: only the snapshot files (customers came from backups/ only,
    // so it is not touched; orders gets the same snapshot files again).
    let snapshot_only = dir.join("restore-snapshot-only.toml");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &snapshot_only,
        text.replace("repair = false\n", "repair = false\nincrementals = false\n"),
    )
    .unwrap();
    let (code, log, _) = plan_and_apply(&node.conf, &snapshot_only, "2026-03-01T05:00:00Z", dir);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("cass01.example.com -> n1: 16 objects (")
            && log.contains("16 snapshot, 0 backups"),
        "{log}"
    );
    assert!(!log.contains("shop.customers:"), "{log}");
    assert_eq!(live_files(&node.data_root), folder.expected);
    let tables = node.tool(
        "cqlsh",
        &[
            "-e",
            "SELECT keyspace_name, table_name, id FROM system_schema.tables",
        ],
        true,
    );
    assert!(
        tables
            .lines()
            .any(|l| l.contains("invoices") && l.contains(&uuid(INVOICES_ID))),
        "{tables}"
    );
    let staging: PathBuf = dir.join("staging");
    assert!(
        !staging
            .join(format!("legacy-{BASE}-{NAME}"))
            .join("shop")
            .exists(),
        "staging left behind"
    );
}

// ---------------------------------------------------------------------------------------------
// The agent's `fetch` op without recorded sizes and checksums.

#[tokio::test]
async fn agent_fetch_without_size_and_crc_takes_lzop_only() {
    use cbk::remote::{Sudo, Transport};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("b/n")).unwrap();
    let (name, data) = sstable("clust", 3).remove(4);
    assert_eq!(name, "nb-3-big-Index.db");
    std::fs::write(store.join("b/n/Index.db.lzo"), lzop(&name, &data)).unwrap();
    let zstd = zstd::encode_all(&data[..], 3).unwrap();
    std::fs::write(store.join("b/n/Index.db.zst"), zstd).unwrap();
    let t = cbk::remote::local::LocalTransport::new("here", Sudo::default())
        .with_agent_path(support::CBK);
    let fetch = |key: &str, codec: &str| {
        serde_json::json!({"protocol": 1, "store": {"url": format!("file://{}", store.display())},
            "op": {"op": "fetch", "staging_root": dir.path().join("staging").display().to_string(),
                   "files": [{"key": key, "dest": format!("shop/orders-{ORDERS_ID}/{name}"), "codec": codec}]}})
    };
    let result = |req: serde_json::Value| {
        let t = &t;
        async move {
            let mut s = t.agent(&req).await.expect("agent");
            loop {
                let ev = s.next_event().await.expect("event").expect("an event");
                if ev["event"] == "result" || ev["event"] == "error" {
                    return ev;
                }
            }
        }
    };
    let ev = result(fetch("b/n/Index.db.zst", "zstd")).await;
    assert_eq!(ev["event"], "error", "{ev}");
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("has no recorded size and CRC32; only lzop objects"),
        "{ev}"
    );
    let ev = result(fetch("b/n/Index.db.lzo", "lzop")).await;
    assert_eq!(ev["event"], "result", "{ev}");
    assert_eq!(ev["data"]["files"], 1, "{ev}");
    assert_eq!(ev["data"]["bytes"], data.len() as u64, "{ev}");
    let staged = dir
        .path()
        .join(format!("staging/shop/orders-{ORDERS_ID}/{name}"));
    assert_eq!(std::fs::read(&staged).unwrap(), data);
    // Staged already: a rerun does not download it again.
    let ev = result(fetch("b/n/Index.db.lzo", "lzop")).await;
    assert_eq!(ev["data"]["already_staged"], 1, "{ev}");
}
