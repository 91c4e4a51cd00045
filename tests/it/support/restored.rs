//! Restores into other clusters (topology, host map): a backup of uneven nodes, what each
//! backup host stored and what a target node holds afterwards, compared per table as a
//! multiset of (component, sha256), and the restore plan these tests write.

use super::cluster::TestCluster;
use super::e2e::{Env, read_json, stored_plain};
use cbk::repo::manifest::{Catalog, NodeManifest};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// table -> sorted (component, sha256) of its base sstable files (index folders excluded).
pub type TableFiles = BTreeMap<String, Vec<(String, String)>>;

/// The backup that [`backup_uneven_nodes`] takes.
pub const UNEVEN_BACKUP: &str = "nightly-20260301T020000Z";

/// `nb-1-big-Data.db` -> `big-Data.db`: a file's name without its generation (the target
/// names restored files itself).
pub fn component(file: &str) -> String {
    file.splitn(4, '-').nth(3).unwrap_or(file).to_string()
}

/// The base-table sstable files in the live folders of keyspace shop on a host.
pub fn live_table_files(c: &TestCluster, host: &str) -> TableFiles {
    live_files_of(c, host, "shop")
}

/// The base-table sstable files in the live folders of `keyspace` on a host.
pub fn live_files_of(c: &TestCluster, host: &str, keyspace: &str) -> TableFiles {
    let out = c.sh(
        host,
        &format!("cd /var/lib/cassandra && for f in $(find data*/{keyspace} -mindepth 2 -maxdepth 2 -type f 2>/dev/null | sort); do \
         echo \"$f $(sha256sum < $f | cut -c1-64)\"; done"),
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

/// What each backup host of `backup` stored for keyspace shop, decoded from the store.
pub async fn backed_up(env: &Env, backup: &str) -> BTreeMap<String, TableFiles> {
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    let mut expected: BTreeMap<String, TableFiles> = BTreeMap::new();
    for h in &catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        let tables = expected.entry(h.name.clone()).or_default();
        for t in m.tables.iter().filter(|t| t.keyspace == "shop") {
            for f in t.files.iter().filter(|f| !f.path.contains('/')) {
                let plain = stored_plain(store.as_ref(), f).await;
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

/// Backs up the env's cluster after node1 got one more sstable of `shop.orders` and node3 two
/// more, so that a wrong assignment of backup hosts to targets cannot match by chance; returns
/// what each host stored ([`UNEVEN_BACKUP`]).
pub async fn backup_uneven_nodes(env: &Env) -> BTreeMap<String, TableFiles> {
    for (h, flushes) in [("node1", 1), ("node3", 2)] {
        for _ in 0..flushes {
            env.cluster.sh(
                h,
                "cassandra-emu write shop orders --rows 1 && nodetool flush shop",
            );
        }
    }
    let (code, log) = env.apply(&env.backup_plan(), "2026-03-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    backed_up(env, UNEVEN_BACKUP).await
}

/// The union (multiset) of the files of `sources`.
pub fn union(expected: &BTreeMap<String, TableFiles>, sources: &[&str]) -> TableFiles {
    let mut m = TableFiles::new();
    for s in sources {
        for (t, files) in &expected[*s] {
            m.entry(t.clone())
                .or_default()
                .extend(files.iter().cloned());
        }
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// A restore plan of the latest backup's `shop.*` into `target` with `method`, creating
/// missing tables (`extra`: more lines after `[restore]`'s keys, e.g. a `[restore.host_map]`).
pub fn restore_plan(
    env: &Env,
    target: &TestCluster,
    name: &str,
    method: &str,
    extra: &str,
) -> PathBuf {
    env.plan(
        name,
        target,
        &format!(
            "kind = \"restore\"\n[restore]\nsource = \"latest\"\nmethod = \"{method}\"\ninclude = [\"shop.*\"]\n\
             create_missing_tables = true\n{extra}"
        ),
    )
}
