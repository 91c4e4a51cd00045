//! Backup and restore end to end on one emulated node with the `local` transport and the `fs`
//! store: byte equality of every stored object, repeat backups that upload nothing, new flushes
//! and compaction, incremental backups that delete local links only once stored, and a restore
//! with the Node Restart Method after the node was damaged.

use crate::support::emu::{EmuNode, cbk, plan_and_apply};
use cbk::repo::manifest::{Catalog, IndexEntry, NodeManifest};
use std::path::{Path, PathBuf};

struct Env {
    _tmp: tempfile::TempDir,
    node: EmuNode,
    store: PathBuf,
    dir: PathBuf,
}

fn setup(version: &str, extra: &[&str]) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let node = EmuNode::start(&dir, version, 2, extra);
    node.create_shop();
    node.fill_shop(2, 300, 100);
    let store = dir.join("store");
    Env {
        _tmp: tmp,
        node,
        store,
        dir,
    }
}

impl Env {
    fn plan(&self, name: &str, body: &str) -> PathBuf {
        let text = self.node.local_plan("n1", &self.store, body);
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn backup_plan(&self, file: &str, mode: &str) -> PathBuf {
        self.plan(
            file,
            &format!(
                "kind = \"backup\"\n[backup]\nname = \"b-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\nmode = \"{mode}\"\ninclude = [\"shop.*\"]\n"
            ),
        )
    }

    /// Plans and applies `plan` with a given clock; returns the apply's stdout+stderr.
    fn apply(&self, plan: &Path, now: &str) -> (i32, String) {
        let (code, log, _) = plan_and_apply(&self.node.conf, plan, now, &self.dir);
        (code, log)
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> T {
        serde_json::from_slice(&std::fs::read(self.store.join(key)).unwrap()).unwrap()
    }

    fn manifest_of(&self, backup: &str) -> NodeManifest {
        let c: Catalog = self.read(&format!("catalog/{backup}.json"));
        self.read(&c.hosts[0].manifest)
    }
}

fn decompress(codec: &str, bytes: &[u8]) -> Vec<u8> {
    let c = cbk::agent::ops::pipeline::stored_codec(codec).unwrap();
    let mut out = Vec::new();
    cbk::codec::decode(c, bytes, &mut out).unwrap();
    out
}

/// Every stored object, decompressed, equals the live file it was taken from.
fn assert_objects_equal_live(env: &Env, m: &NodeManifest) -> usize {
    let mut n = 0;
    for t in &m.tables {
        for f in &t.files {
            let live = Path::new(&m.node.data_dirs[f.data_dir])
                .join(&t.keyspace)
                .join(t.folder())
                .join(&f.path);
            let original =
                std::fs::read(&live).unwrap_or_else(|e| panic!("{}: {e}", live.display()));
            let stored = std::fs::read(env.store.join(&f.key)).unwrap();
            assert_eq!(stored.len() as u64, f.stored_size, "{}", f.key);
            assert_eq!(
                decompress(&f.codec, &stored),
                original,
                "{} differs from {}",
                f.key,
                live.display()
            );
            assert_eq!(crc32fast::hash(&original), f.crc32);
            n += 1;
        }
    }
    n
}

fn uploaded_files(log: &str) -> u64 {
    // "N files (B bytes): U uploaded (S bytes sent), K already stored"
    let at = log.find(" uploaded (").expect("upload summary in output");
    log[..at].rsplit(' ').next().unwrap().parse().unwrap()
}

fn snapshot_dirs(root: &Path) -> usize {
    walk(root)
        .iter()
        .filter(|p| p.ends_with("snapshots"))
        .count()
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                if std::fs::read_dir(&p)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(false)
                {
                    out.push(p.clone());
                }
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn full_backup_repeat_new_flush_compaction_and_restore() {
    let env = setup("4.1", &[]);
    let plan = env.backup_plan("backup.toml", "snapshot");

    // 1. Full backup: every object equals its source; snapshots are cleared.
    let (code, log) = env.apply(&plan, "2026-01-01T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    let m1 = env.manifest_of("b-20260101T000000Z");
    let n = assert_objects_equal_live(&env, &m1);
    assert!(
        n >= 2 * 2 * 8,
        "expected every component of 4 sstables, got {n}"
    );
    assert_eq!(m1.tables.iter().filter(|t| t.keyspace == "shop").count(), 2);
    assert!(
        m1.tables.iter().any(|t| t.keyspace == "system_schema"),
        "schema keyspace not backed up"
    );
    assert_eq!(
        snapshot_dirs(&env.node.data_root),
        0,
        "snapshot left behind"
    );
    let index: IndexEntry = env.read("index/b-20260101T000000Z.json");
    // The repository documents validate against their committed schemas.
    let c: Catalog = env.read("catalog/b-20260101T000000Z.json");
    for (schema, key) in [
        ("node-manifest.schema.json", c.hosts[0].manifest.clone()),
        (
            "catalog.schema.json",
            "catalog/b-20260101T000000Z.json".to_string(),
        ),
        (
            "index-entry.schema.json",
            "index/b-20260101T000000Z.json".to_string(),
        ),
    ] {
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("schemas")
                    .join(schema),
            )
            .unwrap(),
        )
        .unwrap();
        let doc: serde_json::Value = env.read(&key);
        let v = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{key} does not match {schema}: {errors:?}"
        );
    }
    assert_eq!(index.totals.files as usize, n);

    // 2. Repeat backup, nothing new: nothing uploaded.
    let (code, log) = env.apply(&plan, "2026-01-02T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert_eq!(uploaded_files(&log), 0, "{log}");
    let m2 = env.manifest_of("b-20260102T000000Z");
    assert_eq!(m2.totals.files, m1.totals.files);

    // 3. A new flush: only the new sstable's components are uploaded.
    env.node.write_flush("shop", "orders", 50);
    let (code, log) = env.apply(&plan, "2026-01-03T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    let m3 = env.manifest_of("b-20260103T000000Z");
    let new_files = m3.totals.files - m2.totals.files;
    assert!(new_files >= 8, "{new_files}");
    assert_eq!(uploaded_files(&log), new_files, "{log}");
    assert_objects_equal_live(&env, &m3);

    // 4. Compaction: the backup after it is still complete and verifies deeply.
    env.node.emu(&["compact", "shop", "orders"]);
    let (code, log) = env.apply(&plan, "2026-01-04T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    let m4 = env.manifest_of("b-20260104T000000Z");
    assert_objects_equal_live(&env, &m4);
    let (code, o, e) = cbk(
        &env.node.conf,
        &[
            "verify",
            "--storage",
            &format!("file://{}", env.store.display()),
            "--deep",
        ],
    );
    assert_eq!(code, 0, "{o}{e}");
    assert!(o.contains("b-20260104T000000Z"), "{o}");

    // 5. Damage the node, then restore the latest backup with the Node Restart Method.
    let before = env.node.live_sums("shop");
    let victim = walk(&env.node.data_root)
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains("/shop/customers-")
                && p.to_string_lossy().ends_with("-Data.db")
        })
        .unwrap();
    std::fs::remove_file(&victim).unwrap();
    env.node.write_flush("shop", "orders", 10);
    assert_ne!(env.node.live_sums("shop"), before);
    let restore = env.plan(
        "restore.toml",
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\n",
    );
    let (code, log) = env.apply(&restore, "2026-01-05T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert_eq!(env.node.live_sums("shop"), before, "restored files differ");
    assert!(env.node.emu(&["status"]).contains("running"));

    // 6. Restoring again converges: same files, nothing overwritten, node up.
    let (code, log) = env.apply(&restore, "2026-01-06T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert_eq!(env.node.live_sums("shop"), before);

    // 7. Retention: keep the newest backup; the others and every object only they used go.
    let objects = |store: &Path| {
        walk(&store.join("nodes"))
            .into_iter()
            .filter(|p| p.is_file())
            .count()
    };
    let before_prune = objects(&env.store);
    let retention = env.plan(
        "retention.toml",
        "kind = \"backup\"\n[backup]\nname = \"b-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\ninclude = [\"shop.*\"]\n\n[retention]\nkeep_last = 1\ngrace = \"0s\"\n",
    );
    let plan_arg = retention.display().to_string();
    let (code, o, e) = cbk(&env.node.conf, &["prune", "--plan", &plan_arg, "--dry-run"]);
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(
        objects(&env.store),
        before_prune,
        "a dry run deleted something"
    );
    let (code, o, e) = cbk(&env.node.conf, &["prune", "--plan", &plan_arg]);
    assert_eq!(code, 0, "{o}{e}");
    assert!(o.contains("deleted 3 backups"), "{o}");
    assert!(objects(&env.store) < before_prune, "{o}");
    let storage = format!("file://{}", env.store.display());
    let (code, o, e) = cbk(&env.node.conf, &["list", "--storage", &storage, "--json"]);
    assert_eq!(code, 0, "{e}");
    let listed: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1, "{o}");
    let (code, o, e) = cbk(&env.node.conf, &["verify", "--storage", &storage, "--deep"]);
    assert_eq!(code, 0, "the kept backup must stay intact: {o}{e}");
}

#[test]
fn incremental_backup_deletes_local_links_only_when_stored() {
    let env = setup("4.1", &["--incremental-backups"]);
    let full = env.backup_plan("full.toml", "snapshot");
    let (code, log) = env.apply(&full, "2026-02-01T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    env.node.write_flush("shop", "orders", 40);
    env.node.write_flush("shop", "customers", 40);
    let backups = |table: &str| -> Vec<PathBuf> {
        walk(&env.node.data_root)
            .into_iter()
            .filter(|p| {
                let s = p.to_string_lossy();
                s.contains(&format!("/shop/{table}-")) && s.contains("/backups/") && p.is_file()
            })
            .collect()
    };
    assert!(!backups("orders").is_empty() && !backups("customers").is_empty());

    // The store refuses every object of `customers`: a file where its folder would be.
    let m: NodeManifest = env.manifest_of("b-20260201T000000Z");
    let customers = m.tables.iter().find(|t| t.table == "customers").unwrap();
    let blocked = env.store.join(format!(
        "nodes/{}/sst/shop/{}",
        m.node.host_id,
        customers.folder()
    ));
    std::fs::remove_dir_all(&blocked).unwrap();
    std::fs::write(&blocked, b"not a folder").unwrap();
    let inc = env.backup_plan("inc.toml", "incremental");
    let (code, log) = env.apply(&inc, "2026-02-01T06:00:00Z");
    assert_ne!(code, 0, "{log}");
    assert!(
        !backups("customers").is_empty(),
        "customers links deleted although not stored"
    );

    // Unblock: the rerun stores everything and then removes the local links.
    std::fs::remove_file(&blocked).unwrap();
    let (code, log) = env.apply(&inc, "2026-02-01T07:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(
        backups("orders").is_empty(),
        "orders links kept after upload"
    );
    assert!(
        backups("customers").is_empty(),
        "customers links kept after upload"
    );
    let c: Catalog = env.read("catalog/b-20260201T070000Z.json");
    assert_eq!(c.base.as_deref(), Some("b-20260201T000000Z"));
    let im: NodeManifest = env.read(&c.hosts[0].manifest);
    assert!(im.tables.iter().all(|t| {
        t.files
            .iter()
            .all(|f| f.source == cbk::repo::manifest::FileSource::Backups)
    }));
    assert!(im.totals.files >= 16, "{:?}", im.totals);
}
