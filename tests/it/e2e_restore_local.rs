//! Restore end to end on one emulated node with the `local` transport and the `fs` store:
//! damaged stored objects and unsafe manifest paths are refused before the node is stopped,
//! `import` (4.x/5.0) loads a backup without stopping the node, `refresh` (3.11) moves staged
//! files in under new generations without displacing any live file, and `loader`
//! (sstableloader) streams them in without downtime, each table once.

use crate::support::emu::{EmuNode, plan_and_apply, task_status};
use cbk::repo::manifest::{Catalog, NodeManifest};
use std::path::{Path, PathBuf};

struct Env {
    _tmp: tempfile::TempDir,
    node: EmuNode,
    store: PathBuf,
    dir: PathBuf,
    host: String,
}

fn setup(version: &str) -> Env {
    let env = empty_node(version, "n1", None);
    env.node
        .cql("CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal)");
    env.node.write_flush("shop", "orders", 200);
    env.node.write_flush("shop", "orders", 100);
    env
}

/// A node named `host` with an empty `shop` keyspace, using `store` (default: its own).
fn empty_node(version: &str, host: &str, store: Option<&Path>) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let node = EmuNode::start(&dir, version, 2, &[]);
    node.cql("CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    let store = store.map_or_else(|| dir.join("store"), Path::to_path_buf);
    Env {
        _tmp: tmp,
        node,
        store,
        dir,
        host: host.to_string(),
    }
}

impl Env {
    fn plan(&self, name: &str, body: &str) -> PathBuf {
        let text = self.node.local_plan(&self.host, &self.store, body);
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn restore_plan(&self, method: &str) -> PathBuf {
        self.plan(
            &format!("restore-{method}.toml"),
            &format!(
                "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"{method}\"\n{}",
                // The emulated node answers on loopback, not on its plan name.
                if method == "loader" {
                    "[restore.loader]\nnodes = [\"127.0.0.1\"]\n"
                } else {
                    ""
                }
            ),
        )
    }

    /// Plans and applies; returns (exit code, output, state folder).
    fn apply(&self, plan: &Path, now: &str) -> (i32, String, PathBuf) {
        plan_and_apply(&self.node.conf, plan, now, &self.dir)
    }

    fn backup(&self) -> NodeManifest {
        let plan = self.plan(
            "backup.toml",
            "kind = \"backup\"\n[backup]\nname = \"b-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\nmode = \"snapshot\"\ninclude = [\"shop.*\"]\n",
        );
        let (code, log, _) = self.apply(&plan, "2026-03-01T00:00:00Z");
        assert_eq!(code, 0, "{log}");
        let c: Catalog = self.read("catalog/b-20260301T000000Z.json");
        self.read(&c.hosts[0].manifest)
    }

    fn manifest_key(&self) -> String {
        let c: Catalog = self.read("catalog/b-20260301T000000Z.json");
        c.hosts[0].manifest.clone()
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> T {
        serde_json::from_slice(&std::fs::read(self.store.join(key)).unwrap()).unwrap()
    }

    /// Task address -> status, from `cbk state --json`.
    fn task_status(&self, state: &Path) -> Vec<(String, String)> {
        task_status(&self.node.conf, state)
    }

    /// When the emulated node last started (ms), from the emulator's own state.
    fn started_ms(&self) -> u64 {
        self.node.started_ms()
    }

    fn running(&self) -> bool {
        self.node.running()
    }
}

fn data_key(m: &NodeManifest) -> String {
    m.tables
        .iter()
        .flat_map(|t| &t.files)
        .find(|f| f.path.ends_with("-Data.db"))
        .unwrap()
        .key
        .clone()
}

/// Asserts a refused restore: exit code, message, node untouched, stop never ran.
fn assert_refused(env: &Env, now: &str, expect: &str, before: &[(String, String)]) {
    let started = env.started_ms();
    let (code, log, state) = env.apply(&env.restore_plan("restart"), now);
    assert_ne!(code, 0, "restore of a damaged backup succeeded: {log}");
    assert!(log.contains(expect), "expected `{expect}` in:\n{log}");
    let tasks = env.task_status(&state);
    assert!(
        tasks.iter().any(|(a, s)| a == "fetch[n1]" && s == "failed"),
        "{tasks:?}"
    );
    assert!(
        tasks
            .iter()
            .filter(|(a, _)| a.starts_with("stop["))
            .all(|(_, s)| s == "skipped"),
        "stop ran: {tasks:?}"
    );
    assert!(env.running(), "node not running");
    assert_eq!(env.started_ms(), started, "node restarted");
    assert_eq!(env.node.live_sums("shop"), before, "live files changed");
}

#[test]
fn damaged_objects_and_unsafe_paths_are_refused_before_any_stop() {
    let env = setup("4.1");
    let m = env.backup();
    let before = env.node.live_sums("shop");
    let key = data_key(&m);
    let object = env.store.join(&key);
    let good = std::fs::read(&object).unwrap();

    // 1. A corrupted object (one byte flipped in the middle).
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x5a;
    std::fs::write(&object, &bad).unwrap();
    assert_refused(&env, "2026-03-02T00:00:00Z", &key, &before);

    // 2. A truncated object.
    std::fs::write(&object, &good[..good.len() * 2 / 3]).unwrap();
    assert_refused(&env, "2026-03-02T01:00:00Z", &key, &before);
    std::fs::write(&object, &good).unwrap();

    // 3. Node manifests naming `../` and absolute paths.
    let mkey = env.manifest_key();
    let mpath = env.store.join(&mkey);
    let original = std::fs::read(&mpath).unwrap();
    for (i, evil) in ["../../../escaped-Data.db", "/etc/cbk-evil-Data.db"]
        .iter()
        .enumerate()
    {
        let mut v: serde_json::Value = serde_json::from_slice(&original).unwrap();
        v["tables"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|t| t["keyspace"] == "shop")
            .unwrap()["files"][0]["path"] = serde_json::json!(evil);
        std::fs::write(&mpath, serde_json::to_vec(&v).unwrap()).unwrap();
        assert_refused(
            &env,
            &format!("2026-03-02T0{}:00:00Z", i + 2),
            &format!("manifest `{mkey}`"),
            &before,
        );
        assert!(!env.dir.join("escaped-Data.db").exists());
        assert!(!Path::new("/etc/cbk-evil-Data.db").exists());
    }
    std::fs::write(&mpath, &original).unwrap();

    // 4. Repaired store: the same restore now succeeds and converges.
    let (code, log, _) = env.apply(&env.restore_plan("restart"), "2026-03-02T05:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert_eq!(env.node.live_sums("shop"), before);
}

/// Generations of live Data.db files of a keyspace.
fn data_files(env: &Env) -> Vec<String> {
    env.node
        .live_sums("shop")
        .into_iter()
        .filter(|(n, _)| n.ends_with("-Data.db"))
        .map(|(n, _)| n)
        .collect()
}

/// A no-downtime load (`import` / `refresh`): the node never restarts, no stop/move task runs,
/// the backed-up sstables come back under new generations, and the live files that were there
/// are still there, unchanged.
fn no_downtime_load(version: &str, method: &str) {
    let env = setup(version);
    let m = env.backup();
    let backed_up: Vec<String> = m
        .tables
        .iter()
        .filter(|t| t.keyspace == "shop")
        .flat_map(|t| t.files.iter().map(|f| f.path.clone()))
        .collect();
    // Damage: delete one backed-up Data.db set, add a new flush (kept: it is live data).
    let sums = env.node.live_sums("shop");
    let victim = data_files(&env)[0].clone();
    let gen_prefix = victim.trim_end_matches("Data.db").to_string();
    for (name, _) in &sums {
        if name.starts_with(&gen_prefix) {
            let p = walk_find(&env.node.data_root, name);
            std::fs::remove_file(p).unwrap();
        }
    }
    env.node.nodetool(&["refresh", "shop", "orders"]);
    env.node.write_flush("shop", "orders", 10);
    let live_before = env.node.live_sums("shop");
    let started = env.started_ms();

    let (code, log, state) = env.apply(&env.restore_plan(method), "2026-03-03T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    let tasks = env.task_status(&state);
    let addrs: Vec<&str> = tasks.iter().map(|(a, _)| a.as_str()).collect();
    assert!(
        addrs.contains(&format!("{method}[n1]").as_str()),
        "{addrs:?}"
    );
    assert!(tasks.iter().all(|(_, s)| s == "applied"), "{tasks:?}");
    for t in ["stop[n1]", "move[n1]", "start[n1]", "clear_commitlog[n1]"] {
        assert!(!addrs.contains(&t), "{t} ran: {addrs:?}");
    }
    assert!(env.running());
    assert_eq!(env.started_ms(), started, "the node restarted");

    let after = env.node.live_sums("shop");
    // Nothing live was displaced or overwritten.
    for f in &live_before {
        assert!(after.contains(f), "live file {} lost or changed", f.0);
    }
    // Every backed-up sstable is live again, under new generations (content equal).
    let after_hashes: Vec<&String> = after.iter().map(|(_, h)| h).collect();
    let originals: Vec<&(String, String)> = sums
        .iter()
        .filter(|(n, _)| backed_up.iter().any(|b| n.ends_with(b.as_str())))
        .collect();
    assert!(!originals.is_empty());
    for (name, hash) in &originals {
        if name.ends_with("-Data.db") {
            assert!(after_hashes.contains(&hash), "{name} not restored");
        }
    }
    assert!(after.len() > live_before.len(), "nothing loaded: {after:?}");
    if method == "refresh" {
        return; // refresh drops staged files that are still live under the same name
    }
    // Each backed-up sstable came in once: as many new Data.db files as backed-up ones.
    let new_data = after
        .iter()
        .filter(|f| f.0.ends_with("-Data.db") && !live_before.contains(f))
        .count();
    let backed_up_data = backed_up.iter().filter(|b| b.ends_with("-Data.db")).count();
    assert_eq!(new_data, backed_up_data, "{after:?}");
}

fn walk_find(root: &Path, rel: &str) -> PathBuf {
    for dd in std::fs::read_dir(root).unwrap().flatten() {
        let p = dd.path().join("shop").join(rel);
        if p.exists() {
            return p;
        }
    }
    panic!("{rel} not found under {}", root.display());
}

#[test]
fn import_on_41_keeps_the_node_up() {
    no_downtime_load("4.1", "import");
}

#[test]
fn import_on_50_keeps_the_node_up() {
    no_downtime_load("5.0", "import");
}

#[test]
fn refresh_on_311_never_displaces_live_files() {
    no_downtime_load("3.11", "refresh");
}

#[test]
fn loader_on_41_keeps_the_node_up() {
    no_downtime_load("4.1", "loader");
}

#[test]
fn restore_into_another_cluster_through_a_host_map() {
    // Cluster A: node n1 with two tables.
    let a = setup("4.1");
    a.node
        .cql("CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text)");
    a.node.write_flush("shop", "customers", 50);
    let m = a.backup();
    let a_sums = a.node.live_sums("shop");
    let a_orders = m.tables.iter().find(|t| t.table == "orders").unwrap();
    let a_customers = m.tables.iter().find(|t| t.table == "customers").unwrap();

    // Cluster B: node m1 with its own `shop.orders` (another id), no `shop.customers`.
    let b = empty_node("4.1", "m1", Some(&a.store));
    b.node
        .cql("CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal)");
    let b_orders_dir = b.node.live_sums("shop");
    assert!(b_orders_dir.is_empty());
    let plan = b.plan(
        "restore-b.toml",
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"import\"\n\
         create_missing_tables = true\npin_tokens = true\nhost_map = { n1 = \"m1\" }\n",
    );
    let (code, log, _) = b.apply(&plan, "2026-03-04T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!("n1 ({}) -> m1 [initial_token: ", m.node.host_id)),
        "{log}"
    );
    let b_sums = b.node.live_sums("shop");
    // orders: into B's own id folder, never A's.
    let b_ids: Vec<String> = b_sums
        .iter()
        .map(|(n, _)| n.split('/').next().unwrap().to_string())
        .collect();
    assert!(
        !b_ids.contains(&format!("orders-{}", a_orders.id)),
        "files went to A's id folder: {b_ids:?}"
    );
    assert!(b_ids.iter().any(|f| f.starts_with("orders-")));
    // customers: created WITH ID of the backup.
    assert!(
        b_ids.contains(&format!("customers-{}", a_customers.id)),
        "{b_ids:?}"
    );
    // Content: every Data.db of A is live on B.
    let b_hashes: Vec<&String> = b_sums.iter().map(|(_, h)| h).collect();
    for (name, hash) in a_sums.iter().filter(|(n, _)| n.ends_with("-Data.db")) {
        assert!(b_hashes.contains(&hash), "{name} missing on B");
    }
    assert!(b.running());
}

#[test]
fn restart_restore_onto_a_node_with_other_tokens_is_refused_before_any_stop() {
    let a = setup("4.1");
    a.backup();
    // Cluster B's m1 got its own random tokens when it was created.
    let b = empty_node("4.1", "m1", Some(&a.store));
    let started = b.started_ms();
    let before = b.node.live_sums("shop");
    let body = "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\n\
                method = \"restart\"\ncreate_missing_tables = true\nhost_map = { n1 = \"m1\" }\n";
    let plan = b.plan("restore-restart-b.toml", body);
    let (code, log, _) = b.apply(&plan, "2026-03-04T00:00:00Z");
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("m1 owns other tokens than n1") && log.contains("allow_token_mismatch"),
        "{log}"
    );
    assert!(
        log.contains("skipped stop[m1]") && !log.contains("applied stop[m1]"),
        "{log}"
    );
    assert!(b.running());
    assert_eq!(b.started_ms(), started, "m1 was restarted");
    assert_eq!(b.node.live_sums("shop"), before, "live files changed");

    // The operator's explicit choice goes through (and restores the files).
    let plan = b.plan(
        "restore-restart-b2.toml",
        &format!("{body}allow_token_mismatch = true\n"),
    );
    let (code, log, _) = b.apply(&plan, "2026-03-04T01:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(b.running());
    assert_ne!(b.node.live_sums("shop"), before);
}
