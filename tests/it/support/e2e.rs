//! Cluster end-to-end helpers: emulated nodes on a [`TestCluster`], a moto bucket, plans that
//! reach the cluster over its ssh_config (and the store directly or through a fault proxy),
//! `cbk plan` + `cbk apply` runs of saved plans, and checks of stored objects against the
//! nodes' files.

use super::cluster::TestCluster;
use super::s3::{Moto, S3Server};
use cbk::repo::manifest::{FileEntry, NodeManifest, TableEntry};
use cbk::store::Store;
use std::path::{Path, PathBuf};

pub const ORDERS_ID: &str = "5a1f6c10-0000-11f1-8000-000000000001";
pub const CUSTOMERS_ID: &str = "5a1f6c10-0000-11f1-8000-000000000002";

/// Where each host keeps its data, as the host sees it.
pub const DATA_ROOT: &str = "/var/lib/cassandra";

/// A cluster with emulated nodes, a bucket on moto and a scratch folder.
pub struct Env {
    pub cluster: TestCluster,
    pub moto: Moto,
    pub bucket: String,
    pub dir: tempfile::TempDir,
}

/// Runs `setup(host, index)` for every host of `c` at once (one thread per host: each host's
/// setup is a few ssh calls that mostly wait); a panic in one is re-raised.
pub fn on_every_host(c: &TestCluster, setup: impl Fn(&str, usize) + Sync) {
    let hosts = c.hosts();
    std::thread::scope(|s| {
        let running: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let setup = &setup;
                s.spawn(move || setup(h, i))
            })
            .collect();
        for r in running {
            if let Err(e) = r.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
}

/// Gives every host an emulated, running node (`extra`: more `cassandra-emu init` options).
pub fn start_nodes(c: &TestCluster, version: &str, extra: &str) {
    on_every_host(c, |h, i| {
        c.sh(
            h,
            &format!(
                "chown cassandra:cassandra /etc/cassandra /var/lib/cassandra && cassandra-emu init --force --version {version} --data-root /var/lib/cassandra --data-dirs 2 \
                 --cluster prod --listen-address {} --rack rack{} {extra} && cassandra-emu start",
                c.address(h),
                i + 1
            ),
        );
    });
}

/// Emulated nodes with keyspace `shop` (RF 3): `orders` and `customers` (with an index), fixed
/// ids, two flushes of data each.
pub fn init_nodes(c: &TestCluster, version: &str) {
    init_nodes_with(c, version, "");
}

/// [`init_nodes`] with more `cassandra-emu init` options (`--incremental-backups`).
pub fn init_nodes_with(c: &TestCluster, version: &str, extra: &str) {
    start_nodes(c, version, extra);
    on_every_host(c, |h, _| {
        for stmt in [
            "CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}".to_string(),
            format!("CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal) WITH ID = {ORDERS_ID}"),
            format!("CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text) WITH ID = {CUSTOMERS_ID}"),
            "CREATE INDEX customers_name ON shop.customers (name)".to_string(),
        ] {
            c.sh(h, &format!("cassandra-emu cql \"{stmt}\""));
        }
        for _ in 0..2 {
            write_flush(c, h, 200, 100);
        }
    });
}

/// New rows in both tables of `host`, then `nodetool flush shop` (new sstables).
pub fn write_flush(c: &TestCluster, host: &str, orders: u32, customers: u32) {
    c.sh(
        host,
        &format!(
            "cassandra-emu write shop orders --rows {orders} && cassandra-emu write shop customers --rows {customers} && nodetool flush shop"
        ),
    );
}

/// A 3-host cluster with [`init_nodes`], and a fresh moto bucket.
pub async fn setup(version: &str) -> Env {
    setup_with(version, "").await
}

/// [`setup`] with more `cassandra-emu init` options.
pub async fn setup_with(version: &str, extra: &str) -> Env {
    let cluster = TestCluster::start(3);
    init_nodes_with(&cluster, version, extra);
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
        self.plan_via(name, cluster, body, &self.moto.endpoint())
    }

    /// [`Env::plan`] reaching the bucket at `endpoint` (a proxy in front of moto).
    pub fn plan_via(
        &self,
        name: &str,
        cluster: &TestCluster,
        body: &str,
        endpoint: &str,
    ) -> PathBuf {
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
            agent = super::CBK,
            bucket = self.bucket,
        );
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The environment cbk needs to reach the bucket (the plans name these variables).
    pub fn store_env(&self) -> Vec<(String, String)> {
        let creds = self.moto.credentials();
        vec![
            ("CBK_TEST_S3_KEY_ID".into(), creds.access_key_id),
            ("CBK_TEST_S3_SECRET".into(), creds.secret_access_key),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// Runs cbk with the bucket's credentials; returns (exit code, stdout + stderr).
    pub fn cbk(&self, args: &[&str]) -> (i32, String) {
        let env = self.store_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        super::run_cbk(args, &env)
    }

    /// Saves `cbk plan PLAN --now NOW` next to the plan and returns its path.
    pub fn save_plan(&self, plan: &Path, now: &str) -> PathBuf {
        self.save_plan_shown(plan, now).0
    }

    /// [`Env::save_plan`], also returning what `cbk plan` showed.
    fn save_plan_shown(&self, plan: &Path, now: &str) -> (PathBuf, String) {
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
        (saved, shown)
    }

    /// The state folder of the apply for clock `now`.
    pub fn state(&self, now: &str) -> PathBuf {
        self.dir.path().join(format!("state-{now}"))
    }

    /// `cbk plan --now NOW --out` then `cbk apply` of the saved plan (state `state-NOW`).
    pub fn apply(&self, plan: &Path, now: &str) -> (i32, String) {
        let (_, code, log) = self.plan_and_apply(plan, now);
        (code, log)
    }

    /// [`Env::apply`], also returning what `cbk plan` showed: (plan output, apply's exit code,
    /// apply's output).
    pub fn plan_and_apply(&self, plan: &Path, now: &str) -> (String, i32, String) {
        let (saved, shown) = self.save_plan_shown(plan, now);
        let (code, log) = self.cbk(&[
            "apply",
            &saved.display().to_string(),
            "--state",
            &self.state(now).display().to_string(),
            "--progress",
            "plain",
        ]);
        (shown, code, log)
    }

    /// [`Env::apply`] of `cbk plan --now NOW --out` with `extra` environment variables (e.g.
    /// `CBK_IDENTITY_FILE`).
    pub fn apply_with(&self, plan: &Path, now: &str, extra: &[(&str, &str)]) -> (i32, String) {
        let saved = self.save_plan(plan, now);
        let mut vars = self.store_env();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        super::run_cbk(
            &[
                "apply",
                &saved.display().to_string(),
                "--state",
                &self.state(now).display().to_string(),
                "--progress",
                "plain",
            ],
            &vars,
        )
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
        self.backup_plan_via("backup.toml", "snapshot", &self.moto.endpoint())
    }

    /// A backup plan of `shop.*` in `mode` (`snapshot`: named `nightly-<time>`, `incremental`:
    /// `incremental-<time>`) storing through `endpoint`.
    pub fn backup_plan_via(&self, file: &str, mode: &str, endpoint: &str) -> PathBuf {
        let prefix = if mode == "snapshot" { "nightly" } else { mode };
        self.plan_via(
            file,
            &self.cluster,
            &format!(
                "kind = \"backup\"\n[backup]\nname = \"{prefix}-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\nmode = \"{mode}\"\ninclude = [\"shop.*\"]\n"
            ),
            endpoint,
        )
    }

    /// [`Env::backup_plan_via`] (snapshot) with `part_size = "5MiB"`, so a 36 MiB file is a
    /// multipart upload of eight parts.
    pub fn backup_plan_5mib_parts(&self, endpoint: &str) -> PathBuf {
        let p = self.backup_plan_via("backup.toml", "snapshot", endpoint);
        let mut text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.trim_end()
                .ends_with("secret_access_key_env = \"CBK_TEST_S3_SECRET\"")
        );
        text.push_str("part_size = \"5MiB\"\n");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Replaces one live Data.db of `shop.orders` on `host` by `len` random bytes (with a
    /// matching Digest, so the backup reads it as a healthy sstable). Returns its path.
    pub fn big_data_file(&self, host: &str, len: u64) -> String {
        self.cluster
            .sh(
                host,
                &format!(
                    "cd /var/lib/cassandra && f=$(ls data*/shop/orders-*/*-Data.db | head -1) && \
                     head -c {len} /dev/urandom > $f && \
                     python3 -c 'import sys,zlib; print(zlib.crc32(open(sys.argv[1],\"rb\").read()))' $f > ${{f%Data.db}}Digest.crc32 && \
                     echo $f"
                ),
            )
            .trim()
            .to_string()
    }

    /// `cbk verify BACKUP --plan PLAN --deep` passes.
    pub fn assert_verify_deep(&self, plan: &Path, backup: &str) {
        let (code, log) = self.cbk(&[
            "verify",
            backup,
            "--plan",
            &plan.display().to_string(),
            "--deep",
        ]);
        assert_eq!(code, 0, "verify --deep {backup}: {log}");
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
    let bytes = store
        .get_bytes(key)
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// The object of `f`, decompressed; its size and CRC32 must match the entry.
pub async fn stored_plain(store: &dyn Store, f: &FileEntry) -> Vec<u8> {
    let stored = store
        .get_bytes(&f.key)
        .await
        .unwrap_or_else(|e| panic!("object {}: {e}", f.key));
    super::decode_stored(&stored, f)
}

/// Where the file of entry `f` (table `t` of manifest `m`) lives on `host`, as seen from
/// outside through `cluster`.
pub fn node_path(
    cluster: &TestCluster,
    host: &str,
    m: &NodeManifest,
    t: &TableEntry,
    f: &FileEntry,
) -> PathBuf {
    let inside = Path::new(&m.node.data_dirs[f.data_dir])
        .join(&t.keyspace)
        .join(t.folder())
        .join(&f.path);
    let rel = inside
        .strip_prefix(DATA_ROOT)
        .unwrap_or_else(|_| panic!("{} is outside {DATA_ROOT}", inside.display()));
    cluster.data_dir(host).join(rel)
}

/// Every object of `m`'s `shop` tables, decompressed, equals the live file on `host`; returns
/// the number of files checked.
pub async fn assert_manifest_matches_live(
    store: &dyn Store,
    cluster: &TestCluster,
    host: &str,
    m: &NodeManifest,
) -> usize {
    let mut checked = 0;
    for t in m.tables.iter().filter(|t| t.keyspace == "shop") {
        for f in &t.files {
            let live = node_path(cluster, host, m, t, f);
            let original =
                std::fs::read(&live).unwrap_or_else(|e| panic!("{}: {e}", live.display()));
            assert_eq!(
                stored_plain(store, f).await,
                original,
                "{} differs from {}",
                f.key,
                live.display()
            );
            checked += 1;
        }
    }
    checked
}

/// A fresh age identity file `dir/name`; returns (path, its recipient).
pub fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    use age::secrecy::ExposeSecret;
    #[allow(deprecated)]
    let id = age::x25519::Identity::generate();
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("# test identity\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    (p, id.to_public().to_string())
}
