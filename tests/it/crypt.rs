//! Client-side encryption over the test cluster (sshd + node emulator + moto): an encrypted
//! backup stores no plaintext of any SSTable or schema, a restore without the identity, with a
//! wrong identity or of a tampered object is refused before any node is stopped, the restore
//! with the right identity is byte-exact, and a repeat backup uploads nothing.

use crate::support;

use crate::support::e2e::{Env, age_identity as identity, live_sums, setup};
use std::path::Path;

const NOW1: &str = "2026-05-01T02:00:00Z";
const NOW2: &str = "2026-05-02T02:00:00Z";
const BACKUP1: &str = "nightly-20260501T020000Z";

/// Every node is still running (nothing was stopped).
fn assert_running(env: &Env) {
    for h in env.cluster.hosts() {
        assert_eq!(
            env.cluster.sh(&h, "cassandra-emu status").trim(),
            "running",
            "{h} was stopped"
        );
    }
}

/// No `stop[...]` task of the apply at `now` started (from `cbk state --json`).
fn assert_no_stop_started(env: &Env, now: &str) {
    let state = env.state(now).display().to_string();
    let (code, json) = env.cbk(&["state", "--state", &state, "--json"]);
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let tasks = v["tasks"].as_array().unwrap();
    let stops: Vec<&serde_json::Value> = tasks
        .iter()
        .filter(|t| t["address"].as_str().unwrap_or("").starts_with("stop["))
        .collect();
    assert_eq!(stops.len(), 3, "{json}");
    for t in stops {
        assert!(
            t["started"].as_str().unwrap_or("").is_empty(),
            "{} started: {json}",
            t["address"]
        );
    }
}

/// 32-byte windows of every live Data.db of `shop` on every host (the fixtures' bytes).
/// `bytes`, stored under `key`, hold no schema text and no 32-byte run of a live Data.db
/// (`markers`, from [`data_markers`]).
pub(crate) fn assert_no_plaintext_in(key: &str, bytes: &[u8], markers: &[Vec<u8>]) {
    for text in ["CREATE TABLE", "shop.orders", "customers_name ON"] {
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "`{key}` holds `{text}` in clear"
        );
    }
    for m in markers {
        assert!(
            !bytes.windows(32).any(|w| w == m.as_slice()),
            "`{key}` holds bytes of a Data.db in clear"
        );
    }
}

pub(crate) fn data_markers(env: &Env) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for h in env.cluster.hosts() {
        let root = env.cluster.data_dir(&h);
        let list = env.cluster.sh(
            &h,
            "find /var/lib/cassandra -path '*/shop/*' -name '*-Data.db' -not -path '*/snapshots/*'",
        );
        for f in list.lines().filter(|l| !l.is_empty()) {
            let rel = Path::new(f).strip_prefix("/var/lib/cassandra").unwrap();
            let bytes = std::fs::read(root.join(rel)).unwrap();
            for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() * 3 / 4] {
                if bytes.len() >= at + 32 {
                    out.push(bytes[at..at + 32].to_vec());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_backup_hides_data_refuses_bad_keys_before_stop_and_restores_exactly() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let (id_file, recipient) = identity(env.dir.path(), "id.txt");
    let (wrong_file, _) = identity(env.dir.path(), "wrong.txt");
    // `codec = "none"`: without encryption the stored bytes would be the files' bytes.
    let plan = env.plan(
        "backup.toml",
        c,
        &format!(
            "kind = \"backup\"\n[backup]\nname = \"nightly-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\n\
             include = [\"shop.*\"]\ncodec = \"none\"\n[encryption]\nrecipients = [\"{recipient}\"]\n"
        ),
    );
    // The plan never holds the identity; backing up needs none.
    let (code, log) = env.apply_with(&plan, NOW1, &[]);
    assert_eq!(code, 0, "{log}");

    // No stored object holds schema.cql text or bytes of any Data.db.
    let store = env.store().await;
    let markers = data_markers(&env);
    assert!(markers.len() >= 3 * 4, "{}", markers.len());
    let objects = store.list("").await.unwrap();
    assert!(
        objects
            .iter()
            .any(|o| o.key.ends_with("-Data.db/s") || o.key.contains("-Data.db/"))
    );
    let mut data_objects = 0;
    for o in &objects {
        let bytes = store.get_bytes(&o.key).await.unwrap();
        assert_no_plaintext_in(&o.key, &bytes, &markers);
        if o.key.contains("-Data.db/") && !o.key.ends_with(".key") {
            data_objects += 1;
            assert!(bytes.starts_with(b"cbk-enc3"), "{}", o.key);
        }
    }
    assert!(data_objects >= 3 * 4, "{data_objects}");
    let marker = String::from_utf8(
        store
            .get_bytes("cbk-repository.json")
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(marker.contains("\"encryption\""), "{marker}");
    assert!(
        !marker.contains(&recipient),
        "the marker names fingerprints: {marker}"
    );

    // Damage on node1 that a restore repairs.
    let before: Vec<Vec<String>> = c.hosts().iter().map(|h| live_sums(c, h)).collect();
    c.sh("node1", "rm -f $(find /var/lib/cassandra -path '*/shop/orders-*' -name '*-Data.db' -not -path '*/snapshots/*' | head -1)");
    let restore = env.plan(
        "restore.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n",
    );

    // No identity, a wrong identity: refused, nothing stopped.
    let (code, log) = env.apply_with(&restore, "2026-05-01T08:00:00Z", &[]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("set CBK_IDENTITY_FILE"), "{log}");
    assert_running(&env);
    assert_no_stop_started(&env, "2026-05-01T08:00:00Z");
    let wrong = wrong_file.display().to_string();
    let (code, log) = env.apply_with(
        &restore,
        "2026-05-01T08:10:00Z",
        &[("CBK_IDENTITY_FILE", &wrong)],
    );
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains("cannot be decrypted with the given identity"),
        "{log}"
    );
    assert_running(&env);
    assert_no_stop_started(&env, "2026-05-01T08:10:00Z");

    // A tampered data object: refused during fetch, before any stop.
    let right = id_file.display().to_string();
    let victim = objects
        .iter()
        .find(|o| {
            o.key.contains("/orders-") && o.key.contains("-Data.db/") && !o.key.ends_with(".key")
        })
        .unwrap()
        .key
        .clone();
    let original = store.get_bytes(&victim).await.unwrap();
    let mut bad = original.to_vec();
    let n = bad.len() / 2;
    bad[n] ^= 0x40;
    store.put_bytes(&victim, bad.into()).await.unwrap();
    let (code, log) = env.apply_with(
        &restore,
        "2026-05-01T08:20:00Z",
        &[("CBK_IDENTITY_FILE", &right)],
    );
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("tampered"), "{log}");
    assert_running(&env);
    assert_no_stop_started(&env, "2026-05-01T08:20:00Z");

    // The right identity and intact objects: byte-exact.
    store.put_bytes(&victim, original).await.unwrap();
    let (code, log) = env.apply_with(
        &restore,
        "2026-05-01T08:30:00Z",
        &[("CBK_IDENTITY_FILE", &right)],
    );
    assert_eq!(code, 0, "{log}");
    for (i, h) in c.hosts().iter().enumerate() {
        assert_eq!(live_sums(c, h), before[i], "live files of {h} differ");
        assert_eq!(c.sh(h, "cassandra-emu status").trim(), "running");
    }

    // verify --deep opens every object with the identity.
    let mut vars = env.store_env();
    vars.push(("CBK_IDENTITY_FILE".into(), right.clone()));
    let vars_ref: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, log) = support::run_cbk(
        &[
            "verify",
            BACKUP1,
            "--plan",
            &plan.display().to_string(),
            "--deep",
        ],
        &vars_ref,
    );
    assert_eq!(code, 0, "{log}");
    let (code, log) = env.cbk(&[
        "verify",
        BACKUP1,
        "--plan",
        &plan.display().to_string(),
        "--deep",
    ]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("set CBK_IDENTITY_FILE"), "{log}");

    // A repeat backup of unchanged files uploads nothing (the restore only moved files).
    let (code, log) = env.apply_with(&plan, NOW2, &[]);
    assert_eq!(code, 0, "{log}");
    let uploads: Vec<&str> = log.lines().filter(|l| l.contains(" uploaded (")).collect();
    assert_eq!(uploads.len(), 3, "{log}");
    for l in uploads {
        assert!(l.contains(": 0 uploaded (0 bytes sent)"), "{l}");
    }

    // Key rotation: add a second recipient (small objects re-sealed), then remove the first.
    let (id2_file, recipient2) = identity(env.dir.path(), "id2.txt");
    let id2 = id2_file.display().to_string();
    let key = |args: &[&str], id: &str| {
        let mut vars = env.store_env();
        vars.push(("CBK_IDENTITY_FILE".into(), id.to_string()));
        let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        support::run_cbk(args, &v)
    };
    let verify = |p: &Path, backup: &str, id: &str| {
        key(
            &[
                "verify",
                backup,
                "--plan",
                &p.display().to_string(),
                "--deep",
            ],
            id,
        )
    };
    let (code, log) = verify(&plan, BACKUP1, &id2);
    assert_ne!(code, 0, "{log}");
    let p = plan.display().to_string();
    let (code, log) = key(&["key", "add", &recipient2, "--plan", &p], &right);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("re-sealed"), "{log}");
    let (code, log) = verify(&plan, BACKUP1, &id2);
    assert_eq!(code, 0, "the added identity reads the old backup: {log}");
    let with_plan = |file: &str, recipients: &str| {
        env.plan(
            file,
            c,
            &format!(
                "kind = \"backup\"\n[backup]\nname = \"nightly-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\n\
                 include = [\"shop.*\"]\ncodec = \"none\"\n[encryption]\nrecipients = [{recipients}]\n"
            ),
        )
    };
    let both = with_plan("both.toml", &format!("\"{recipient}\", \"{recipient2}\""));
    // The old plan no longer matches the repository's recipients: refused.
    let (code, log) = env.apply_with(&plan, "2026-05-03T02:00:00Z", &[]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("are not the repository's"), "{log}");
    let (code, log) = key(
        &[
            "key",
            "remove",
            &recipient,
            "--plan",
            &both.display().to_string(),
        ],
        &id2,
    );
    assert_eq!(code, 0, "{log}");
    let only2 = with_plan("only2.toml", &format!("\"{recipient2}\""));
    let (code, log) = key(
        &["key", "list", "--plan", &only2.display().to_string()],
        &id2,
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains(&recipient2), "{log}");
    assert!(!log.contains(&recipient), "{log}");
    let (code, log) = env.apply_with(&only2, "2026-05-04T02:00:00Z", &[]);
    assert_eq!(code, 0, "{log}");
    // The removed identity opens neither the new backup nor the re-sealed old one.
    for b in ["nightly-20260504T020000Z", BACKUP1] {
        let (code, log) = verify(&only2, b, &right);
        assert_ne!(code, 0, "{log}");
        // miette wraps the report at 80 columns, inside the message too.
        assert!(
            support::says(&log, "cannot be decrypted with the given identity"),
            "{log}"
        );
        let (code, log) = verify(&only2, b, &id2);
        assert_eq!(code, 0, "{b}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_plan_cannot_write_to_an_encrypted_repository() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let (_, recipient) = identity(env.dir.path(), "id.txt");
    let body = |enc: &str| {
        format!(
            "kind = \"backup\"\n[backup]\nname = \"nightly-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\ninclude = [\"shop.*\"]\n{enc}"
        )
    };
    let enc = env.plan(
        "enc.toml",
        c,
        &body(&format!("[encryption]\nrecipients = [\"{recipient}\"]\n")),
    );
    let plain = env.plan("plain.toml", c, &body(""));
    let (code, log) = env.apply_with(&enc, NOW1, &[]);
    assert_eq!(code, 0, "{log}");
    let (code, log) = env.apply_with(&plain, NOW2, &[]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("the repository is encrypted"), "{log}");
    let store = env.store().await;
    assert!(
        store
            .list("catalog/")
            .await
            .unwrap()
            .iter()
            .all(|o| !o.key.contains("20260502")),
        "the plain backup was stored"
    );
}

/// `cbk validate` of `plans/nightly-backup.toml` with `encryption` appended: (exit code, output,
/// the line `recipients` is on).
fn validate_with(encryption: &str) -> (i32, String, usize) {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/nightly-backup.toml"),
    )
    .unwrap()
    .replace("#:schema ../schemas/plan.schema.json\n", "");
    let p = dir.path().join("enc.toml");
    let text = format!("{base}\n{encryption}");
    std::fs::write(&p, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("recipients = "))
        .map_or(0, |i| i + 1);
    let (code, out) = support::run_cbk(&["validate", &p.display().to_string()], &[]);
    (code, out, line)
}

#[test]
fn encryption_section_is_validated_with_positions_and_hints() {
    let (_, recipient) = identity(tempfile::tempdir().unwrap().path(), "id.txt");
    let (code, out, _) = validate_with(&format!("[encryption]\nrecipients = [\"{recipient}\"]\n"));
    assert_eq!(code, 0, "{out}");
    // An identity where a recipient belongs, a malformed recipient, KMS: each at its position.
    let (code, out, line) = validate_with(
        "[encryption]\nrecipients = [\"AGE-SECRET-KEY-1QQQ\", \"age1nope\"]\nkms_key_id = \"alias/x\"\n",
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("holds an age identity (private key)"), "{out}");
    assert!(out.contains("invalid age recipient `age1nope`"), "{out}");
    assert!(out.contains("never put the identity"), "{out}");
    assert!(out.contains("`kms_key_id` is not yet supported"), "{out}");
    assert!(out.contains(&format!("enc.toml:{line}:15")), "{out}");
    assert!(out.contains(&format!("enc.toml:{line}:38")), "{out}");
    assert!(
        !out.contains("SECRET-KEY-1QQQ"),
        "the identity is echoed: {out}"
    );
    let (code, out, _) = validate_with("[encryption]\nrecipients = []\n");
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("needs at least one recipient"), "{out}");
}
