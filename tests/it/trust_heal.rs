//! Issue 17, over the real test cluster (sshd + the node emulator + moto):
//! - corrupt stored objects (a flipped byte, a truncated object, a deleted one) are healed: the
//!   next backup stores an object whose size disagrees with its record again, `cbk verify
//!   --deep --repair` moves what fails its check under `quarantine/`, the backup after that
//!   stores it again, and old and new backups deep-verify;
//! - an `import` restore applied again (a new plan of the same restore after a run that did not
//!   finish) imports each table once;
//! - a staging folder without room for the backup is refused before anything is fetched, and a
//!   disk that fills up during `fetch` is named ("no space left on device at PATH").

use crate::support::e2e::{Env, assert_manifest_matches_live, read_json, setup};
use cbk::repo::manifest::{Catalog, FileEntry, NodeManifest};
use std::path::{Path, PathBuf};

/// node1's manifest of `backup`.
async fn node1_manifest(env: &Env, backup: &str) -> NodeManifest {
    let store = env.store().await;
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    let h = catalog
        .hosts
        .iter()
        .find(|h| h.name == "node1")
        .expect("node1 in the catalog");
    read_json(store.as_ref(), &h.manifest).await
}

fn entry<'a>(m: &'a NodeManifest, key: &str) -> &'a FileEntry {
    m.tables
        .iter()
        .flat_map(|t| &t.files)
        .find(|f| f.key == key)
        .unwrap_or_else(|| panic!("{key} is not in the manifest"))
}

fn verify(env: &Env, plan: &Path, backup: &str, extra: &[&str]) -> (i32, String) {
    let plan = plan.display().to_string();
    let mut args = vec!["verify", backup, "--plan", &plan];
    args.extend_from_slice(extra);
    env.cbk(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_objects_are_stored_again_and_repair_quarantines_them() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let plan = env.backup_plan();
    let (code, log) = env.apply(&plan, "2026-05-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let b1 = "nightly-20260501T020000Z";
    let m1 = node1_manifest(&env, b1).await;
    let data: Vec<&FileEntry> = m1
        .tables
        .iter()
        .filter(|t| t.keyspace == "shop")
        .flat_map(|t| &t.files)
        .filter(|f| f.path.ends_with("-Data.db") && !f.path.starts_with('.'))
        .collect();
    assert!(data.len() >= 3, "{data:?}");
    let (flipped, truncated, deleted) = (data[0].clone(), data[1].clone(), data[2].clone());

    // Damage the store: one byte flipped (same size), one object truncated to 0 bytes, one gone.
    let store = env.store().await;
    let mut bytes = store.get_bytes(&flipped.key).await.unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    let flipped_bytes = bytes.clone();
    store
        .put_bytes(&flipped.key, bytes.into())
        .await
        .expect("flip");
    store
        .put_bytes(&truncated.key, bytes::Bytes::new())
        .await
        .expect("truncate");
    store
        .delete_many(std::slice::from_ref(&deleted.key))
        .await
        .expect("delete");

    // The next backup (the files are still on the node) stores the truncated and the deleted
    // object again and records their real size.
    let (code, log) = env.apply(&plan, "2026-05-02T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let b2 = "nightly-20260502T020000Z";
    let m2 = node1_manifest(&env, b2).await;
    for f in [&truncated, &deleted] {
        let now = store.head(&f.key).await.unwrap();
        assert_eq!(
            now.map(|m| m.size),
            Some(f.stored_size),
            "{} was not stored again: {log}",
            f.key
        );
        assert_eq!(entry(&m2, &f.key).stored_size, f.stored_size, "{}", f.key);
    }
    assert!(
        log.contains(&truncated.key) && log.contains("storing it again"),
        "the backup does not say it stored the truncated object again: {log}"
    );
    // The flipped byte has the right size: only a deep verify finds it.
    let (code, out) = verify(&env, &plan, b2, &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify(&env, &plan, b2, &["--deep"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&flipped.key), "{out}");

    // Repair: the damaged object is moved aside (kept, under quarantine/), not deleted.
    let (code, out) = verify(&env, &plan, b2, &["--deep", "--repair"]);
    assert_eq!(
        code, 1,
        "the backup is still damaged until the next backup: {out}"
    );
    assert!(
        out.contains(&format!("QUARANTINED {}", flipped.key)),
        "{out}"
    );
    assert!(store.head(&flipped.key).await.unwrap().is_none(), "{out}");
    let quarantined = store.list("quarantine/").await.unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(
        quarantined[0].key.ends_with(&format!("/{}", flipped.key)),
        "{quarantined:?}"
    );
    assert_eq!(
        store.get_bytes(&quarantined[0].key).await.unwrap().to_vec(),
        flipped_bytes,
        "the quarantined object is not the damaged one"
    );

    // The backup after the repair stores it again; every backup deep-verifies.
    let (code, log) = env.apply(&plan, "2026-05-03T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let b3 = "nightly-20260503T020000Z";
    assert_eq!(
        store.head(&flipped.key).await.unwrap().map(|m| m.size),
        Some(flipped.stored_size)
    );
    for b in [b1, b2, b3] {
        env.assert_verify_deep(&plan, b);
    }
    let m3 = node1_manifest(&env, b3).await;
    assert!(assert_manifest_matches_live(store.as_ref(), c, "node1", &m3).await >= 8);
    // prune and the backups never touch quarantine/.
    assert_eq!(store.list("quarantine/").await.unwrap().len(), 1);
}

/// Live base-table Data.db files of `shop` on a host (staging, snapshots, backups and index
/// sstables left out).
fn live_data_count(env: &Env, host: &str) -> usize {
    env.cluster
        .sh(
            host,
            "find /var/lib/cassandra -path '*/shop/*' -name '*-Data.db' -not -path '*/snapshots/*' \
             -not -path '*/backups/*' -not -path '*/cbk-staging/*' -not -path '*/shop/*/.*' | wc -l",
        )
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn import_applied_again_imports_each_table_once() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let (code, log) = env.apply(&env.backup_plan(), "2026-05-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let before: Vec<usize> = c.hosts().iter().map(|h| live_data_count(&env, h)).collect();
    assert!(before.iter().all(|n| *n >= 4), "{before:?}");
    let restore = env.plan(
        "restore.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"nightly-20260501T020000Z\"\ninclude = [\"shop.*\"]\nmethod = \"import\"\n",
    );

    // Run 1 stops before cleanup (as when a later task fails): every table imported once.
    let saved = env.dir.path().join("restore-1.json");
    let (code, out) = env.cbk(&[
        "plan",
        &restore.display().to_string(),
        "--now",
        "2026-05-02T00:00:00Z",
        "--exclude",
        "cleanup*",
        "--out",
        &saved.display().to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, log) = env.cbk(&[
        "apply",
        &saved.display().to_string(),
        "--state",
        &env.dir.path().join("state-1").display().to_string(),
        "--progress",
        "plain",
    ]);
    assert_eq!(code, 0, "{log}");
    let once: Vec<usize> = before.iter().map(|n| 2 * n).collect();
    let after: Vec<usize> = c.hosts().iter().map(|h| live_data_count(&env, h)).collect();
    assert_eq!(after, once, "run 1: {log}");

    // The restore applied again (a new plan, so a new journal): fetch stages the backup again,
    // but no table is imported a second time.
    let (code, log) = env.apply(&restore, "2026-05-02T01:00:00Z");
    assert_eq!(code, 0, "{log}");
    let after: Vec<usize> = c.hosts().iter().map(|h| live_data_count(&env, h)).collect();
    assert_eq!(after, once, "applied again: {log}");
    assert!(
        log.contains("already imported (marker on the node)"),
        "{log}"
    );
    for h in c.hosts() {
        assert_eq!(
            c.sh(&h, "find /var/lib/cassandra/cbk-staging -type f | wc -l")
                .trim(),
            "0",
            "staging of {h} after cleanup"
        );
    }

    // A new restore after a finished one imports the backup again (docs/restore.md says so).
    let (code, log) = env.apply(&restore, "2026-05-02T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let after: Vec<usize> = c.hosts().iter().map(|h| live_data_count(&env, h)).collect();
    let twice: Vec<usize> = before.iter().map(|n| 3 * n).collect();
    assert_eq!(after, twice, "a second restore: {log}");
}

/// A restore plan staging under `staging` (import, so nothing stops).
fn restore_plan_staging(env: &Env, staging: &str) -> PathBuf {
    let p = env.plan(
        "restore-staging.toml",
        &env.cluster,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"import\"\n",
    );
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "[cassandra]\n",
        &format!("[cassandra]\nstaging = \"{staging}\"\n"),
    );
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn full_staging_disk_is_refused_before_fetch_and_named_when_it_fills() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let (code, log) = env.apply(&env.backup_plan(), "2026-05-01T02:00:00Z");
    assert_eq!(code, 0, "{log}");
    let small = "/var/lib/cassandra/small";
    let restore = restore_plan_staging(&env, small);

    // node1's staging folder is a 64 KiB tmpfs: refused before anything is fetched, with both
    // figures.
    c.sh(
        "node1",
        &format!("mkdir -p {small} && mount -t tmpfs -o size=64k tmpfs {small}"),
    );
    let (code, log) = env.apply(&restore, "2026-05-02T00:00:00Z");
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains(&format!("not enough free space at {small}")),
        "{log}"
    );
    assert!(
        log.contains("needed") && log.contains("free"),
        "both figures: {log}"
    );
    assert_eq!(
        c.sh("node1", &format!("find {small} -type f | wc -l"))
            .trim(),
        "0",
        "something was staged"
    );
    let before = live_data_count(&env, "node1");

    // A disk that fills up while fetch writes (another process takes the space right after the
    // check): the error names ENOSPC and the path.
    c.sh(
        "node1",
        &format!(
            "umount {small} && mount -t tmpfs -o size=48m tmpfs {small} && \
             {{ setsid nohup sh -c 'while [ -z \"$(ls -A {small})\" ]; do sleep 0.01; done; \
             dd if=/dev/zero of={small}/filler bs=1M status=none; true' </dev/null >/dev/null 2>&1 & }}"
        ),
    );
    let (code, log) = env.apply(&restore, "2026-05-02T01:00:00Z");
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains(&format!("no space left on device at {small}/")),
        "{log}"
    );
    assert!(!log.contains("cannot decode"), "{log}");
    assert_eq!(live_data_count(&env, "node1"), before, "nothing imported");
    c.sh("node1", &format!("umount {small}"));
}
