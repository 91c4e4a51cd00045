//! Incremental backups of an emulated 3-node cluster over real sshd to moto, with the store
//! failing mid-run: the hard links new flushes leave in `backups/` are deleted on a node only
//! once their stored copy is complete; what could not be stored stays; once the store
//! recovers, a rerun stores the rest (nothing twice) and then removes the links.
//!
//! The store fails through a fault proxy (mitmproxy) in front of moto: every PutObject of an
//! `orders` sstable answers 500 InternalError (retried by the SDK and by the engine, then the
//! upload fails), and node3's uploads lose their connection. `customers` goes first on
//! node1 and node2 (tables are uploaded in name order), so the run really deletes some links
//! before it fails.

use crate::support::cluster::TestCluster;
use crate::support::e2e::{DATA_ROOT, read_json, setup_with, stored_plain, write_flush};
use crate::support::s3::{FaultAction, FaultProxy, Faults, S3Server};
use cbk::repo::manifest::{Catalog, FileEntry, FileSource, NodeManifest, TableEntry};
use cbk::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// The incremental-backup links of `shop` on `host`: path under the host's data folder
/// (`data1/shop/orders-<id>/backups/nb-3-big-Data.db`) -> bytes.
fn backup_links(c: &TestCluster, host: &str) -> BTreeMap<String, Vec<u8>> {
    let root = c.data_dir(host);
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                if rel.contains("/shop/") && rel.contains("/backups/") {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

/// Where the stored file `f` of table `t` was taken from: the link in `backups/`, as a path
/// under the host's data folder (the keys of [`backup_links`]).
fn link_of(data_dirs: &[String], t: &TableEntry, f: &FileEntry) -> String {
    let dd = Path::new(&data_dirs[f.data_dir])
        .strip_prefix(DATA_ROOT)
        .unwrap()
        .to_path_buf();
    dd.join(&t.keyspace)
        .join(t.folder())
        .join("backups")
        .join(&f.path)
        .display()
        .to_string()
}

/// The upload results the failed run recorded for `host`: link -> stored entry.
async fn recorded(
    store: &dyn Store,
    backup: &str,
    host: &str,
    data_dirs: &[String],
) -> BTreeMap<String, FileEntry> {
    let mut out = BTreeMap::new();
    // Links of sstables the base snapshot holds are left out of the incremental (and removed):
    // their stored copy is the base's.
    let base: Catalog = read_json(store, "catalog/nightly-20260401T000000Z.json").await;
    for h in base.hosts.iter().filter(|h| h.name == host) {
        let m: NodeManifest = read_json(store, &h.manifest).await;
        for t in m.tables.iter().filter(|t| t.keyspace == "shop") {
            for f in &t.files {
                out.insert(link_of(data_dirs, t, f), f.clone());
            }
        }
    }
    for table in ["customers", "orders"] {
        let key = cbk::repo::keys::part_key(backup, host, "shop", table);
        if store.head(&key).await.unwrap().is_none() {
            continue;
        }
        let t: TableEntry = read_json(store, &key).await;
        for f in &t.files {
            out.insert(link_of(data_dirs, &t, f), f.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_incremental_deletes_local_links_only_when_stored() {
    let started = Instant::now();
    let env = setup_with("4.1", "--incremental-backups").await;
    let c = &env.cluster;
    let store = env.store().await;
    let (code, log) = env.apply(&env.backup_plan(), "2026-04-01T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    let full: Catalog = read_json(store.as_ref(), "catalog/nightly-20260401T000000Z.json").await;
    let mut host_ids = BTreeMap::new();
    let mut data_dirs = BTreeMap::new();
    let mut full_keys = BTreeSet::new();
    let mut base_links: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &full.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        base_links.insert(
            h.name.clone(),
            m.tables
                .iter()
                .flat_map(|t| t.files.iter().map(|f| link_of(&m.node.data_dirs, t, f)))
                .collect(),
        );
        host_ids.insert(h.name.clone(), h.host_id.clone());
        data_dirs.insert(h.name.clone(), m.node.data_dirs.clone());
        full_keys.extend(
            m.tables
                .iter()
                .flat_map(|t| t.files.iter().map(|f| f.key.clone())),
        );
    }

    // New flushes: new links in backups/ on every node.
    for h in c.hosts() {
        write_flush(c, &h, 60, 30);
        write_flush(c, &h, 60, 30);
    }
    let before: BTreeMap<String, BTreeMap<String, Vec<u8>>> = c
        .hosts()
        .into_iter()
        .map(|h| {
            let links = backup_links(c, &h);
            (h, links)
        })
        .collect();
    for (h, links) in &before {
        for table in ["/orders-", "/customers-"] {
            let n = links.keys().filter(|k| k.contains(table)).count();
            assert!(n >= 8, "{h}: only {n} {table} links");
        }
    }

    // The store fails mid-run.
    let proxy = FaultProxy::start(&env.moto.endpoint(), Faults::NONE);
    let objects = format!("^PUT /{}/prod/nodes/", env.bucket);
    let node3_puts = format!("{objects}{}/", host_ids["node3"]);
    let orders_puts = format!("{objects}[^/]+/sst/shop/orders-");
    proxy.set_rules(&[
        (node3_puts.as_str(), FaultAction::Kill),
        (orders_puts.as_str(), FaultAction::E500),
    ]);
    let inc = env.backup_plan_via("inc.toml", "incremental", &proxy.endpoint());
    let now = "2026-04-01T06:00:00Z";
    let backup = "incremental-20260401T060000Z";
    let t = Instant::now();
    let (code, log) = env.apply(&inc, now);
    let failed_run = t.elapsed();
    assert_ne!(code, 0, "the apply must fail while the store fails: {log}");
    let faults = proxy.counts();
    assert!(faults.ruled > 0, "{faults:?}");
    assert!(
        store
            .head(&format!("catalog/{backup}.json"))
            .await
            .unwrap()
            .is_none(),
        "a failed incremental must not be cataloged"
    );

    // Every deleted link has a complete stored copy; every link not stored is still there.
    let mut deleted = 0;
    let mut kept = 0;
    for (h, links) in &before {
        let now_links = backup_links(c, h);
        let stored = recorded(store.as_ref(), backup, h, &data_dirs[h]).await;
        for (link, bytes) in links {
            match now_links.get(link) {
                Some(b) => {
                    assert_eq!(b, bytes, "{h}: {link} changed");
                    kept += 1;
                }
                None => {
                    let f = stored.get(link).unwrap_or_else(|| {
                        panic!("{h}: {link} was deleted but no stored copy is recorded")
                    });
                    assert_eq!(
                        &stored_plain(store.as_ref(), f).await,
                        bytes,
                        "{h}: {link} was deleted but {} differs",
                        f.key
                    );
                    deleted += 1;
                }
            }
        }
        // Links whose upload failed are all still there.
        for link in links.keys() {
            if h == "node3" || link.contains("/orders-") {
                assert!(
                    now_links.contains_key(link),
                    "{h}: {link} deleted although its upload failed"
                );
            }
        }
        if h != "node3" {
            assert!(
                links
                    .keys()
                    .filter(|l| l.contains("/customers-"))
                    .all(|l| !now_links.contains_key(l)),
                "{h}: stored customers links were kept"
            );
        }
    }
    assert!(deleted > 0 && kept > 0, "deleted {deleted}, kept {kept}");

    // The store recovers: the rerun of the same apply stores the rest, then removes the links.
    proxy.set_rules(&[]);
    let t = Instant::now();
    let (code, log) = env.apply(&inc, now);
    let rerun = t.elapsed();
    assert_eq!(code, 0, "{log}");
    // Completed uploads of each object over both runs (key under the bucket).
    let mut puts: BTreeMap<String, usize> = BTreeMap::new();
    for r in proxy.requests() {
        if let Some(k) = r.completed_object(&env.bucket) {
            *puts.entry(k.to_string()).or_default() += 1;
        }
    }
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    assert_eq!(catalog.base.as_deref(), Some("nightly-20260401T000000Z"));
    assert_eq!(catalog.hosts.len(), 3);
    let (mut checked, mut uploaded) = (0, 0);
    for h in &catalog.hosts {
        let left = backup_links(c, &h.name);
        assert!(left.is_empty(), "{}: links kept: {:?}", h.name, left.keys());
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        let links = &before[&h.name];
        let mut listed = BTreeSet::new();
        for t in m.tables.iter().filter(|t| t.keyspace == "shop") {
            for f in &t.files {
                assert_eq!(f.source, FileSource::Backups, "{}", f.key);
                let link = link_of(&m.node.data_dirs, t, f);
                let bytes = links
                    .get(&link)
                    .unwrap_or_else(|| panic!("{}: {link} is not a link of the node", h.name));
                assert_eq!(&stored_plain(store.as_ref(), f).await, bytes, "{}", f.key);
                // Stored exactly once: by the full backup, or by one of the two runs.
                let n = puts.get(&format!("prod/{}", f.key)).copied().unwrap_or(0);
                let expected = usize::from(!full_keys.contains(&f.key));
                assert_eq!(
                    n, expected,
                    "{} was uploaded {n} times by the incremental",
                    f.key
                );
                uploaded += expected;
                listed.insert(link);
                checked += 1;
            }
        }
        // Links of sstables the base snapshot holds are left out of the incremental.
        let expected: BTreeSet<String> = links
            .keys()
            .filter(|l| !base_links[&h.name].contains(*l))
            .cloned()
            .collect();
        assert!(
            expected.len() < links.len(),
            "{}: no link was covered by the base",
            h.name
        );
        assert_eq!(listed, expected, "{}: manifest vs links", h.name);
    }

    assert!(uploaded >= 3 * 16, "only {uploaded} new objects");
    env.assert_verify_deep(&inc, backup);
    eprintln!(
        "e2e_cluster_incremental: {deleted} links deleted and {kept} kept by the failed run ({failed_run:?}, \
         {} requests, {} failed on purpose), rerun {rerun:?}; {checked} files checked, {uploaded} uploaded once by the incremental; total {:?}",
        faults.requests,
        faults.ruled,
        started.elapsed()
    );
}
