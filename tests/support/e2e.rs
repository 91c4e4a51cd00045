//! Cluster end-to-end helpers: emulated nodes on a [`TestCluster`], a moto bucket, plans that
//! reach the cluster over its ssh_config, and `cbk plan` + `cbk apply` runs of saved plans.

use super::cluster::TestCluster;
use super::s3::{Moto, S3Server};
use cbk::store::Store;
use std::path::{Path, PathBuf};

pub const ORDERS_ID: &str = "5a1f6c10-0000-11f1-8000-000000000001";
pub const CUSTOMERS_ID: &str = "5a1f6c10-0000-11f1-8000-000000000002";

/// A cluster with emulated nodes, a bucket on moto and a scratch folder.
pub struct Env {
    pub cluster: TestCluster,
    pub moto: Moto,
    pub bucket: String,
    pub dir: tempfile::TempDir,
}

/// Gives every host an emulated, running node (`extra`: more `cassandra-emu init` options).
pub fn start_nodes(c: &TestCluster, version: &str, extra: &str) {
    for (i, h) in c.hosts().iter().enumerate() {
        c.sh(
            h,
            &format!(
                "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && cassandra-emu init --force --version {version} --data-root /var/lib/cassandra --data-dirs 2 \
                 --cluster prod --listen-address {} --rack rack{} {extra} && cassandra-emu start",
                c.address(h),
                i + 1
            ),
        );
    }
}

/// Emulated nodes with keyspace `shop` (RF 3): `orders` and `customers` (with an index), fixed
/// ids, two flushes of data each.
pub fn init_nodes(c: &TestCluster, version: &str) {
    start_nodes(c, version, "");
    for h in c.hosts() {
        for stmt in [
            "CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}".to_string(),
            format!("CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal) WITH ID = {ORDERS_ID}"),
            format!("CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text) WITH ID = {CUSTOMERS_ID}"),
            "CREATE INDEX customers_name ON shop.customers (name)".to_string(),
        ] {
            c.sh(&h, &format!("cassandra-emu cql \"{stmt}\""));
        }
        for _ in 0..2 {
            c.sh(&h, "cassandra-emu write shop orders --rows 200 && cassandra-emu write shop customers --rows 100 && nodetool flush shop");
        }
    }
}

/// A 3-host cluster with [`init_nodes`], and a fresh moto bucket.
pub async fn setup(version: &str) -> Env {
    let cluster = TestCluster::start(3);
    init_nodes(&cluster, version);
    let moto = Moto::start();
    let bucket = super::s3::new_bucket(&moto).await;
    Env {
        cluster,
        moto,
        bucket,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Env {
    /// Writes a plan for `cluster` (ssh, emulator commands, the moto bucket) with `body`.
    pub fn plan(&self, name: &str, cluster: &TestCluster, body: &str) -> PathBuf {
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

    /// Runs cbk with the bucket's credentials; returns (exit code, stdout + stderr).
    pub fn cbk(&self, args: &[&str]) -> (i32, String) {
        let creds = self.moto.credentials();
        super::run_cbk(
            args,
            &[
                ("CBK_TEST_S3_KEY_ID", &creds.access_key_id),
                ("CBK_TEST_S3_SECRET", &creds.secret_access_key),
            ],
        )
    }

    /// `cbk plan --now NOW --out` then `cbk apply` of the saved plan (state `state-NOW`).
    pub fn apply(&self, plan: &Path, now: &str) -> (i32, String) {
        let (_, code, log) = self.plan_and_apply(plan, now);
        (code, log)
    }

    /// [`Env::apply`], also returning what `cbk plan` showed: (plan output, apply's exit code,
    /// apply's output).
    pub fn plan_and_apply(&self, plan: &Path, now: &str) -> (String, i32, String) {
        let saved = plan.with_extension(format!("{now}.json"));
        let (code, shown) = self.cbk(&[
            "plan",
            &plan.display().to_string(),
            "--now",
            now,
            "--out",
            &saved.display().to_string(),
        ]);
        assert_eq!(code, 0, "plan: {shown}");
        let state = self.dir.path().join(format!("state-{now}"));
        let (code, log) = self.cbk(&[
            "apply",
            &saved.display().to_string(),
            "--state",
            &state.display().to_string(),
            "--progress",
            "plain",
        ]);
        (shown, code, log)
    }

    /// The bucket as a store.
    pub async fn store(&self) -> std::sync::Arc<dyn Store> {
        let cfg = super::s3::storage_config(&self.moto.endpoint(), &self.bucket, "prod");
        cbk::store::open(&cfg, Some(self.moto.credentials()))
            .await
            .unwrap()
    }

    /// A snapshot backup plan of `shop.*` named `nightly-<time>`.
    pub fn backup_plan(&self) -> PathBuf {
        self.plan(
            "backup.toml",
            &self.cluster,
            "kind = \"backup\"\n[backup]\nname = \"nightly-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\ninclude = [\"shop.*\"]\n",
        )
    }
}

/// Live sstable files (table folder/[.idx/]file -> sha256) of keyspace shop on a host.
pub fn live_sums(c: &TestCluster, host: &str) -> Vec<String> {
    let out = c.sh(
        host,
        "cd /var/lib/cassandra && for f in $(find data* -path '*/shop/*' -type f \\( -name '*.db' -o -name '*.txt' -o -name '*.crc32' \\) \
         -not -path '*/snapshots/*' -not -path '*/backups/*' | sort); do echo \"${f#*/} $(sha256sum < $f | cut -c1-64)\"; done",
    );
    let mut v: Vec<String> = out.lines().map(String::from).collect();
    v.sort();
    v
}

/// A JSON object from the store.
pub async fn read_json<T: serde::de::DeserializeOwned>(store: &dyn Store, key: &str) -> T {
    serde_json::from_slice(&store.get_bytes(key).await.unwrap()).unwrap()
}
