//! S3 Object Lock over the test cluster (sshd + node emulator + moto): every stored object
//! carries a retention date, objects a newer backup reuses get theirs extended, prune and forget
//! never delete a locked object and say when it unlocks, a bucket without Object Lock is refused
//! before any snapshot, and a locked version cannot be deleted. Plan-level checks (file store,
//! bad days, the plan view) need no cluster.

use crate::support;
use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, init_nodes};
use crate::support::s3::{Moto, S3Server, storage_config};
use cbk::store::object_lock::LockMode;
use cbk::store::s3::S3Store;
use std::path::{Path, PathBuf};

const NOW1: &str = "2026-05-01T02:00:00Z";
const NOW2: &str = "2026-05-02T02:00:00Z";
const BACKUP1: &str = "nightly-20260501T020000Z";
const BACKUP2: &str = "nightly-20260502T020000Z";
const LOCK: &str = "object_lock = { mode = \"governance\", days = 2 }\n";

/// An admin client on `bucket` (moto's all-powerful test user).
async fn admin(moto: &Moto, bucket: &str) -> S3Store {
    S3Store::new(
        &storage_config(&moto.endpoint(), bucket, ""),
        Some(moto.credentials()),
    )
    .await
    .unwrap()
}

/// A bucket created with Object Lock enabled.
async fn lock_bucket(moto: &Moto) -> String {
    let name = format!("cbk-lock-{:012x}", rand::random::<u64>() >> 16);
    admin(moto, &name)
        .await
        .client()
        .create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create an Object Lock bucket");
    name
}

/// The backup plan of `env` with `object_lock` and a `[retention]` (keep 1, no grace).
fn lock_plan(env: &Env) -> PathBuf {
    let p = env.backup_plan();
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str(LOCK);
    // 5 MiB parts: the 12 MiB Data.db of the test is a multipart upload.
    text.push_str("part_size = \"5MiB\"\n");
    text.push_str("\n[retention]\nkeep_last = 1\ngrace = \"0s\"\n");
    std::fs::write(&p, text).unwrap();
    p
}

/// Sets the retention of `key` (under `prod/`) to `until` with the admin client (moto, unlike
/// S3, lets the owner shorten it: the test uses that to age locks).
async fn set_retention(s3: &S3Store, key: &str, until: jiff::Timestamp) {
    use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
    s3.client()
        .put_object_retention()
        .bucket(s3.bucket())
        .key(format!("prod/{key}"))
        .bypass_governance_retention(true)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Governance)
                .retain_until_date(aws_smithy_types::DateTime::from_secs(until.as_second()))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("retention of {key}: {e:?}"));
}

fn prune_json(env: &Env, plan: &Path, dry_run: bool) -> serde_json::Value {
    let plan = plan.display().to_string();
    let mut args = vec!["prune", "--plan", &plan, "--json"];
    if dry_run {
        args.push("--dry-run");
    }
    let (code, out) = env.cbk(&args);
    assert_eq!(code, 0, "prune: {out}");
    let start = out.find('{').unwrap_or_else(|| panic!("no JSON: {out}"));
    serde_json::from_str(&out[start..out.rfind('}').unwrap() + 1])
        .unwrap_or_else(|e| panic!("prune JSON: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_object_is_locked_reuse_extends_and_prune_leaves_locked_objects() {
    let cluster = TestCluster::start(1);
    init_nodes(&cluster, "4.1");
    let moto = Moto::start();
    let plain_bucket = support::s3::new_bucket(&moto).await;
    let bucket = lock_bucket(&moto).await;
    let env = Env {
        cluster,
        moto,
        bucket: plain_bucket,
        dir: tempfile::tempdir().unwrap(),
    };

    // A bucket without Object Lock: refused before any snapshot.
    let plan = lock_plan(&env);
    let (code, out) = env.apply(&plan, NOW1);
    assert_ne!(code, 0, "apply to a bucket without Object Lock: {out}");
    assert!(out.contains("has no Object Lock enabled"), "{out}");
    let host = &env.cluster.hosts()[0];
    let snaps = env.cluster.sh(
        host,
        "find /var/lib/cassandra -path '*/snapshots/*' | wc -l",
    );
    assert_eq!(snaps.trim(), "0", "a snapshot was taken: {out}");

    let env = Env { bucket, ..env };
    env.big_data_file(host, 12 << 20);
    let plan = lock_plan(&env);
    let (code, out) = env.apply(&plan, NOW1);
    assert_eq!(code, 0, "backup 1: {out}");
    let store = env.store().await;
    let s3 = admin(&env.moto, &env.bucket).await;
    let objects = store.list("").await.unwrap();
    assert!(objects.len() > 10, "{objects:?}");
    assert!(objects.iter().any(|o| o.key.contains("/sst/")));
    assert!(objects.iter().any(|o| o.key.starts_with("catalog/")));
    assert!(!objects.iter().any(|o| o.key.starts_with(".cbk-probe/")));
    assert!(
        objects.iter().any(|o| o.size > 10 << 20),
        "no multipart object: {objects:?}"
    );
    // Every object, manifest and document: governance, at least 2 days ahead.
    let min = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48);
    for o in &objects {
        let r = store
            .retention(&o.key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{} has no retention", o.key));
        assert_eq!(r.mode, Some(LockMode::Governance), "{}", o.key);
        assert!(r.until >= min, "{} locked only until {}", o.key, r.until);
    }

    // A locked version cannot be deleted (S3 Object Lock, even by the bucket's all-powerful user).
    let sst = &objects
        .iter()
        .find(|o| o.key.contains("/sst/"))
        .unwrap()
        .key;
    let version = s3
        .client()
        .head_object()
        .bucket(&env.bucket)
        .key(format!("prod/{sst}"))
        .send()
        .await
        .unwrap()
        .version_id()
        .expect("a versioned bucket")
        .to_string();
    let refused = s3
        .client()
        .delete_object()
        .bucket(&env.bucket)
        .key(format!("prod/{sst}"))
        .version_id(&version)
        .send()
        .await;
    assert!(refused.is_err(), "locked version {sst} was deleted");

    // Age the locks of backup 1's components; backup 2 reuses them (nothing uploaded) and must
    // lock them again for its own 2 days.
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let ssts: Vec<String> = objects
        .iter()
        .filter(|o| o.key.contains("/sst/"))
        .map(|o| o.key.clone())
        .collect();
    for k in &ssts {
        set_retention(&s3, k, soon).await;
    }
    let (code, out) = env.apply(&plan, NOW2);
    assert_eq!(code, 0, "backup 2: {out}");
    assert!(out.contains("retention of"), "no extension reported: {out}");
    let after = store.list("").await.unwrap();
    assert_eq!(
        after.iter().filter(|o| o.key.contains("/sst/")).count(),
        ssts.len(),
        "backup 2 uploaded new components"
    );
    for k in &ssts {
        let r = store.retention(k).await.unwrap().unwrap();
        assert!(r.until >= min, "reused {k} not extended: {}", r.until);
    }

    // Prune (keep 1): backup 1 goes by policy, but its objects are locked: nothing deleted,
    // reported with the date, in the dry run and in the real run.
    for dry in [true, false] {
        let r = prune_json(&env, &plan, dry);
        assert_eq!(r["deleted_backups"], serde_json::json!([]), "{r}");
        let locked = r["locked_backups"].as_array().expect("locked_backups");
        assert_eq!(locked.len(), 1, "{r}");
        assert_eq!(locked[0]["backup"], BACKUP1, "{r}");
        let until: jiff::Timestamp = locked[0]["until"].as_str().unwrap().parse().unwrap();
        assert!(until >= min, "{r}");
        assert_eq!(r["deleted_objects"], 0, "{r}");
    }
    assert!(
        store
            .head(&format!("catalog/{BACKUP1}.json"))
            .await
            .unwrap()
            .is_some()
    );
    let (code, text) = env.cbk(&["prune", "--plan", &plan.display().to_string(), "--dry-run"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("{BACKUP1}  locked:"))
            && text
                .contains("left under Object Lock (deleted by a prune after the date) 1 backups"),
        "{text}"
    );

    // Once backup 1's own documents unlock, it is deleted; two stray components, one locked
    // and one not, are collected only when unlocked.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1);
    for o in store.list("").await.unwrap() {
        if o.key.contains(BACKUP1) {
            set_retention(&s3, &o.key, past).await;
        }
    }
    let dir = ssts[0]
        .rsplit_once('/')
        .unwrap()
        .0
        .rsplit_once('/')
        .unwrap()
        .0;
    let (free, held) = (
        format!("{dir}/stray-free/s3"),
        format!("{dir}/stray-held/s3"),
    );
    for k in [&free, &held] {
        store.put_bytes(k, "abc".into()).await.unwrap();
    }
    // (The test's store has no object_lock: the strays get their retention here.)
    set_retention(&s3, &free, past).await;
    set_retention(&s3, &held, min).await;
    let r = prune_json(&env, &plan, false);
    assert_eq!(r["deleted_backups"], serde_json::json!([BACKUP1]), "{r}");
    assert_eq!(r["deleted_objects"], 1, "{r}");
    let locked = r["locked_objects"].as_array().expect("locked_objects");
    assert_eq!(locked.len(), 1, "{r}");
    assert_eq!(locked[0]["key"], held.as_str(), "{r}");
    assert!(locked[0]["until"].as_str().is_some(), "{r}");
    assert!(store.head(&free).await.unwrap().is_none(), "{free} kept");
    assert!(store.head(&held).await.unwrap().is_some(), "{held} deleted");
    assert!(
        store
            .head(&format!("catalog/{BACKUP2}.json"))
            .await
            .unwrap()
            .is_some()
    );
    // forget shares the collection: the named backup is locked, so it stays and is reported.
    let (code, out) = env.cbk(&[
        "forget",
        BACKUP2,
        "--plan",
        &plan.display().to_string(),
        "--json",
    ]);
    assert_eq!(code, 0, "forget: {out}");
    let r: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..])
        .unwrap_or_else(|e| panic!("forget JSON: {e}: {out}"));
    assert_eq!(r["deleted_backups"], serde_json::json!([]), "{r}");
    assert_eq!(r["locked_backups"][0]["backup"], BACKUP2, "{r}");
    env.assert_verify_deep(&plan, BACKUP2);
}

/// `cbk validate` of `plans/nightly-backup.toml` with its `[storage]` replaced by `storage`.
fn validate_storage(storage: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/nightly-backup.toml"),
    )
    .unwrap()
    .replace("#:schema ../schemas/plan.schema.json\n", "");
    let start = base.find("[storage]").expect("[storage]");
    let end = base[start + 1..]
        .find("\n[")
        .map_or(base.len(), |i| start + 1 + i);
    let text = format!("{}{storage}{}", &base[..start], &base[end..]);
    let p = dir.path().join("lock.toml");
    std::fs::write(&p, &text).unwrap();
    let (code, out) = support::run_cbk(&["validate", &p.display().to_string()], &[]);
    (code, out, text)
}

/// 1-based line of the first line of `text` starting with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

#[test]
fn object_lock_is_checked_at_plan_time_and_shown_in_the_plan_view() {
    let s3 = format!("[storage]\nurl = \"s3://bkt-lock/p\"\nregion = \"eu-west-1\"\n{LOCK}");
    let (code, out, _) = validate_storage(&s3);
    assert_eq!(code, 0, "{out}");

    let (code, out, text) =
        validate_storage(&format!("[storage]\nurl = \"file:///backups\"\n{LOCK}"));
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("`object_lock` needs S3 storage"), "{out}");
    assert!(
        out.contains("use an `s3://` bucket created with Object Lock"),
        "{out}"
    );
    let line = line_of(&text, "object_lock");
    assert!(out.contains(&format!("lock.toml:{line}:15")), "{out}");

    let (code, out, text) = validate_storage(
        "[storage]\nurl = \"s3://bkt-lock/p\"\nregion = \"eu-west-1\"\nchecksum = \"when_required\"\nobject_lock = { mode = \"compliance\", days = 0 }\n",
    );
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("invalid Object Lock retention of 0 days"),
        "{out}"
    );
    assert!(
        out.contains("S3 refuses Object Lock uploads without one"),
        "{out}"
    );
    assert!(
        out.contains(&format!("lock.toml:{}:", line_of(&text, "object_lock"))),
        "{out}"
    );
    let (code, out, _) = validate_storage(
        "[storage]\nurl = \"s3://bkt-lock/p\"\nobject_lock = { mode = \"legal\", days = 3 }\n",
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("legal"), "{out}");

    // The plan view (text, Markdown, JSON) shows the lock.
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/nightly-backup.toml"),
    )
    .unwrap()
    .replace("#:schema ../schemas/plan.schema.json\n", "")
    .replacen("[storage]\n", &format!("[storage]\n{LOCK}"), 1);
    let p = dir.path().join("view.toml");
    std::fs::write(&p, base).unwrap();
    let p = p.display().to_string();
    for format in ["human", "markdown"] {
        let (code, out) = support::run_cbk(&["plan", &p, "--now", NOW1, "--format", format], &[]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("storage.object_lock.mode") && out.contains("governance"),
            "{out}"
        );
        assert!(out.contains("storage.object_lock.days"), "{out}");
    }
    let (code, out) = support::run_cbk(&["plan", &p, "--now", NOW1, "--format", "json"], &[]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lock = v
        .pointer("/plan/storage/object_lock")
        .unwrap_or_else(|| panic!("no object_lock in the JSON plan: {out}"));
    assert_eq!(lock, &serde_json::json!({"mode": "governance", "days": 2}));
}
