//! Backup and restore of an emulated 3-node cluster over real sshd (one per host, each in its
//! own namespaces) to a real S3 server (moto, checking signatures): the Node Restart Method
//! after damage and a DROP/re-CREATE, restore safety against corrupt, truncated and malicious
//! backups, and a restore into a second cluster through a host map with `nodetool import`.

mod support;

use cbk::repo::manifest::{Catalog, NodeManifest};
use cbk::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::cluster::TestCluster;
use support::s3::{Moto, S3Server};

const ORDERS_ID: &str = "5a1f6c10-0000-11f1-8000-000000000001";
const CUSTOMERS_ID: &str = "5a1f6c10-0000-11f1-8000-000000000002";
/// The id `customers` gets when it is dropped and re-created after the backup (as Cassandra,
/// every node agrees on it).
const NEW_CUSTOMERS_ID: &str = "7c2e9d40-0000-11f1-8000-000000000003";

struct Env {
    cluster: TestCluster,
    moto: Moto,
    bucket: String,
    dir: tempfile::TempDir,
}

fn init_nodes(c: &TestCluster, version: &str) {
    for (i, h) in c.hosts().iter().enumerate() {
        c.sh(
            h,
            &format!(
                "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && cassandra-emu init --force --version {version} --data-root /var/lib/cassandra --data-dirs 2 \
                 --cluster prod --listen-address {} --rack rack{} && cassandra-emu start",
                c.address(h),
                i + 1
            ),
        );
        for stmt in [
            "CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}".to_string(),
            format!("CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal) WITH ID = {ORDERS_ID}"),
            format!("CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text) WITH ID = {CUSTOMERS_ID}"),
            "CREATE INDEX customers_name ON shop.customers (name)".to_string(),
        ] {
            c.sh(h, &format!("cassandra-emu cql \"{stmt}\""));
        }
        for _ in 0..2 {
            c.sh(h, "cassandra-emu write shop orders --rows 200 && cassandra-emu write shop customers --rows 100 && nodetool flush shop");
        }
    }
}

async fn setup(version: &str) -> Env {
    let cluster = TestCluster::start(3);
    init_nodes(&cluster, version);
    let moto = Moto::start();
    let bucket = support::s3::new_bucket(&moto).await;
    Env {
        cluster,
        moto,
        bucket,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Env {
    fn plan(&self, name: &str, cluster: &TestCluster, body: &str) -> PathBuf {
        let hosts: Vec<String> = cluster.hosts().iter().map(|h| format!("\"{h}\"")).collect();
        let text = format!(
            r#"version = 1
{body}
[cluster]
name = "prod"
hosts = [{hosts}]

[connection]
transport = "ssh"
ssh_config = "{ssh_config}"
known_hosts_file = "{known_hosts}"
connect_timeout = "10s"
agent_path = "{agent}"

[cassandra]
cqlsh = "cqlsh"
stop = "cassandra-emu stop"
start = "cassandra-emu start"

[storage]
url = "s3://{bucket}/prod"
endpoint = "{endpoint}"
region = "us-east-1"
path_style = true
access_key_id_env = "CBK_TEST_S3_KEY_ID"
secret_access_key_env = "CBK_TEST_S3_SECRET"
"#,
            hosts = hosts.join(", "),
            ssh_config = cluster.ssh_config().display(),
            known_hosts = cluster.known_hosts().display(),
            agent = env!("CARGO_BIN_EXE_cbk"),
            bucket = self.bucket,
            endpoint = self.moto.endpoint(),
        );
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn cbk(&self, args: &[&str]) -> (i32, String) {
        let creds = self.moto.credentials();
        let out = Command::new(env!("CARGO_BIN_EXE_cbk"))
            .args(args)
            .env("CBK_TEST_S3_KEY_ID", &creds.access_key_id)
            .env("CBK_TEST_S3_SECRET", &creds.secret_access_key)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn apply(&self, plan: &Path, now: &str) -> (i32, String) {
        let saved = plan.with_extension(format!("{now}.json"));
        let (code, log) = self.cbk(&[
            "plan",
            &plan.display().to_string(),
            "--now",
            now,
            "--out",
            &saved.display().to_string(),
        ]);
        assert_eq!(code, 0, "plan: {log}");
        let state = self.dir.path().join(format!("state-{now}"));
        self.cbk(&[
            "apply",
            &saved.display().to_string(),
            "--state",
            &state.display().to_string(),
            "--progress",
            "plain",
        ])
    }

    async fn store(&self) -> std::sync::Arc<dyn Store> {
        let cfg = support::s3::storage_config(&self.moto.endpoint(), &self.bucket, "prod");
        cbk::store::open(&cfg, Some(self.moto.credentials()))
            .await
            .unwrap()
    }

    fn backup_plan(&self) -> PathBuf {
        self.plan(
            "backup.toml",
            &self.cluster,
            "kind = \"backup\"\n[backup]\nname = \"nightly-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\ninclude = [\"shop.*\"]\n",
        )
    }
}

/// Live sstable files (table folder/[.idx/]file -> sha256) of keyspace shop on a host.
fn live_sums(c: &TestCluster, host: &str) -> Vec<String> {
    let out = c.sh(
        host,
        "cd /var/lib/cassandra && for f in $(find data* -path '*/shop/*' -type f \\( -name '*.db' -o -name '*.txt' -o -name '*.crc32' \\) \
         -not -path '*/snapshots/*' -not -path '*/backups/*' | sort); do echo \"${f#*/} $(sha256sum < $f | cut -c1-64)\"; done",
    );
    let mut v: Vec<String> = out.lines().map(String::from).collect();
    v.sort();
    v
}

async fn read_json<T: serde::de::DeserializeOwned>(store: &dyn Store, key: &str) -> T {
    serde_json::from_slice(&store.get_bytes(key).await.unwrap()).unwrap()
}

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
        for t in m.tables.iter().filter(|t| t.keyspace == "shop") {
            for f in &t.files {
                let node_path = Path::new(&m.node.data_dirs[f.data_dir])
                    .join(&t.keyspace)
                    .join(t.folder())
                    .join(&f.path);
                let rel = node_path.strip_prefix("/var/lib/cassandra").unwrap();
                let original = std::fs::read(c.data_dir(&h.name).join(rel)).unwrap();
                let stored = store.get_bytes(&f.key).await.unwrap();
                let codec = cbk::agent::ops::pipeline::stored_codec(&f.codec).unwrap();
                let mut plain = Vec::new();
                cbk::codec::decode(codec, &stored[..], &mut plain).unwrap();
                assert_eq!(plain, original, "{}", f.key);
                checked += 1;
            }
        }
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
