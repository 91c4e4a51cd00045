//! Issue 15's identity rule over the test cluster (sshd + node emulator + moto): on an encrypted
//! repository `cbk prune`, `cbk forget` and `cbk verify` (quick) need no identity and give the
//! same result as with it, while `verify --deep` and restore still refuse to run without it;
//! node manifests written before (sealed as a whole) still need it; and an encrypted
//! incremental leaves out the `backups/` files its base snapshot covers (it uploads only the
//! new flushes) and restores byte-exact.

use crate::support;

use crate::support::e2e::{Env, age_identity as identity, live_sums, setup, setup_with};
use crate::support::e2e::{read_json, write_flush};
use cbk::repo::manifest::Catalog;
use cbk::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const B1: &str = "nightly-20260601T020000Z";
const B2: &str = "nightly-20260602T020000Z";

/// An encrypted backup plan of `shop.*` (`codec = "none"`, so clear bytes would be the
/// files' bytes) in `mode`, with `extra` appended (a `[retention]` section).
fn encrypted_plan(env: &Env, file: &str, mode: &str, recipient: &str, extra: &str) -> String {
    let prefix = if mode == "snapshot" { "nightly" } else { mode };
    env.plan(
        file,
        &env.cluster,
        &format!(
            "kind = \"backup\"\n[backup]\nname = \"{prefix}-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\n\
             mode = \"{mode}\"\ninclude = [\"shop.*\"]\ncodec = \"none\"\n\
             [encryption]\nrecipients = [\"{recipient}\"]\n{extra}"
        ),
    )
    .display()
    .to_string()
}

/// cbk with the bucket's credentials and, when given, `CBK_IDENTITY_FILE` (never set
/// otherwise: the test runner's environment is not inherited for it).
fn cbk_as(env: &Env, args: &[&str], id: Option<&Path>) -> (i32, String) {
    let mut vars = env.store_env();
    if let Some(id) = id {
        vars.push(("CBK_IDENTITY_FILE".into(), id.display().to_string()));
    }
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    support::run_cbk(args, &v)
}

/// The JSON document a `--json` command printed (its first `{` to the end).
fn json_of(out: &str) -> serde_json::Value {
    let at = out.find('{').unwrap_or_else(|| panic!("no JSON in: {out}"));
    serde_json::from_str(&out[at..]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs `args` without and with the identity: both succeed and print the same JSON.
fn same_without_identity(env: &Env, args: &[&str], id: &Path) -> serde_json::Value {
    let (code, without) = cbk_as(env, args, None);
    assert_eq!(code, 0, "{args:?} without the identity: {without}");
    let (code, with) = cbk_as(env, args, Some(id));
    assert_eq!(code, 0, "{args:?} with the identity: {with}");
    let (a, b) = (json_of(&without), json_of(&with));
    assert_eq!(a, b, "{args:?}: the results differ without the identity");
    a
}

/// No stored object holds schema text or bytes of a live `shop` Data.db; every node manifest is
/// JSON whose schema, snapshot manifest and tokens are sealed. Returns the manifests checked.
async fn assert_no_plaintext(env: &Env, store: &dyn Store) -> usize {
    let markers = crate::crypt::data_markers(env);
    assert!(markers.len() >= 3 * 4, "{}", markers.len());
    let mut manifests = 0;
    for o in store.list("").await.unwrap() {
        let bytes = store.get_bytes(&o.key).await.unwrap();
        crate::crypt::assert_no_plaintext_in(&o.key, &bytes, &markers);
        if o.key.contains("/manifests/") {
            manifests += 1;
            let m: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{} is no JSON manifest: {e}", o.key));
            assert_eq!(m["format"], 2, "{}", o.key);
            assert!(m["node"]["tokens"].as_array().is_none_or(|t| t.is_empty()));
            let sealed = |v: &serde_json::Value| v.as_str().unwrap().starts_with("cbk-sealed:");
            assert!(sealed(&m["node"]["sealed_tokens"]), "{}", o.key);
            let tables = m["tables"].as_array().unwrap();
            assert!(!tables.is_empty(), "{}", o.key);
            for t in tables {
                for f in ["schema_cql", "snapshot_manifest"] {
                    if !t[f].is_null() {
                        assert!(sealed(&t[f]), "{} {f}: {}", o.key, t[f]);
                    }
                }
            }
        }
    }
    manifests
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_forget_and_quick_verify_need_no_identity() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let store = env.store().await;
    let (id, recipient) = identity(env.dir.path(), "id.txt");
    let plan = encrypted_plan(
        &env,
        "backup.toml",
        "snapshot",
        &recipient,
        "[retention]\nkeep_last = 5\ngrace = \"0s\"\n",
    );
    let plan_path = Path::new(&plan);
    let (code, log) = env.apply_with(plan_path, "2026-06-01T02:00:00Z", &[]);
    assert_eq!(code, 0, "{log}");
    // Compactions: the second backup no longer references the first one's sstables.
    for h in c.hosts() {
        write_flush(c, &h, 50, 20);
        c.sh(
            &h,
            "cassandra-emu compact shop orders && cassandra-emu compact shop customers",
        );
    }
    let (code, log) = env.apply_with(plan_path, "2026-06-02T02:00:00Z", &[]);
    assert_eq!(code, 0, "{log}");

    // Quick verify: the same report without the identity.
    for b in [B1, B2] {
        let r = same_without_identity(&env, &["verify", b, "--plan", &plan, "--json"], &id);
        assert_eq!(r["problems"], serde_json::json!([]), "{r}");
        assert!(r["files"].as_u64().unwrap() >= 3 * 8, "{r}");
    }
    assert_eq!(assert_no_plaintext(&env, store.as_ref()).await, 6);
    // A missing object is found without the identity too.
    let objects = store.list("nodes/").await.unwrap();
    let victim = objects
        .iter()
        .find(|o| {
            o.key.contains("/orders-") && o.key.contains("-Data.db/") && !o.key.ends_with(".key")
        })
        .unwrap();
    let body = store.get_bytes(&victim.key).await.unwrap();
    store
        .delete_many(std::slice::from_ref(&victim.key))
        .await
        .unwrap();
    let (code, out) = cbk_as(&env, &["verify", "--all", "--plan", &plan, "--json"], None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&victim.key) && out.contains("object is missing"),
        "{out}"
    );
    store.put_bytes(&victim.key, body).await.unwrap();

    // verify --deep and restore still need the identity.
    let (code, out) = cbk_as(&env, &["verify", B1, "--plan", &plan, "--deep"], None);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("set CBK_IDENTITY_FILE"), "{out}");
    let restore = env.plan(
        "restore.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n",
    );
    let (code, log) = env.apply_with(&restore, "2026-06-02T08:00:00Z", &[]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("set CBK_IDENTITY_FILE"), "{log}");
    for h in c.hosts() {
        assert_eq!(c.sh(&h, "cassandra-emu status").trim(), "running", "{h}");
    }

    // prune and forget (dry runs): the same decisions and object lists without the identity.
    let prune = [
        "prune",
        "--plan",
        &plan,
        "--keep-last",
        "1",
        "--dry-run",
        "--json",
        "-v",
    ];
    let dry = same_without_identity(&env, &prune, &id);
    assert_eq!(dry["deleted_backups"], serde_json::json!([B1]), "{dry}");
    assert!(dry["deleted_objects"].as_u64().unwrap() >= 3 * 4, "{dry}");
    let forget = ["forget", B1, "--plan", &plan, "--dry-run", "--json", "-v"];
    let f = same_without_identity(&env, &forget, &id);
    assert_eq!(f["deleted_keys"], dry["deleted_keys"], "{f}");

    // Manifests sealed as a whole (written before this version) still need the identity: those
    // of the kept backup, whose files prune and forget must keep.
    let b2: Catalog = read_json(store.as_ref(), &format!("catalog/{B2}.json")).await;
    let mut originals = Vec::new();
    let to = cbk::crypt::Recipients::parse(std::slice::from_ref(&recipient)).unwrap();
    for h in &b2.hosts {
        let body = store.get_bytes(&h.manifest).await.unwrap();
        let mut m: serde_json::Value = serde_json::from_slice(&body).unwrap();
        m["format"] = 1.into();
        m.as_object_mut().unwrap().remove("encryption");
        let whole = cbk::crypt::seal::seal(&serde_json::to_vec(&m).unwrap(), &to).unwrap();
        store.put_bytes(&h.manifest, whole.into()).await.unwrap();
        originals.push((h.manifest.clone(), body));
    }
    for args in [
        &prune[..],
        &forget[..],
        &["verify", B2, "--plan", &plan, "--json"][..],
    ] {
        let (code, out) = cbk_as(&env, args, None);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(out.contains("set CBK_IDENTITY_FILE"), "{args:?}: {out}");
    }
    let (code, out) = cbk_as(&env, &prune, Some(&id));
    assert_eq!(code, 0, "{out}");
    assert_eq!(json_of(&out), dry, "an old manifest read with the identity");
    for (k, body) in originals {
        store.put_bytes(&k, body).await.unwrap();
    }

    // The real prune without the identity deletes what the dry run said, and B2 stays whole.
    let (code, out) = cbk_as(&env, &prune[..prune.len() - 3], None);
    assert_eq!(code, 0, "{out}");
    let left: BTreeSet<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    for k in dry["deleted_keys"].as_array().unwrap() {
        assert!(!left.contains(k.as_str().unwrap()), "{k} was not deleted");
    }
    assert!(!left.contains(&format!("catalog/{B1}.json")));
    let (code, out) = cbk_as(&env, &["verify", B2, "--plan", &plan, "--deep"], Some(&id));
    assert_eq!(code, 0, "{out}");
}

/// `orders-<id>/nb-3-big-Data.db` names of the `shop` files in `backups/` of `host`.
fn backup_names(c: &support::cluster::TestCluster, host: &str) -> BTreeSet<String> {
    c.sh(
        host,
        "cd /var/lib/cassandra && find data*/shop -path '*/backups/*' -type f | sed -e 's#^data[0-9]*/shop/##' -e 's#/backups/#/#'",
    )
    .lines()
    .map(String::from)
    .collect()
}

/// `(host id, <table folder>/<path>)` of a stored component key
/// (`nodes/<id>/sst/shop/<folder>/[.<idx>/]<file>/<identity>`).
fn file_of(key: &str) -> (String, String) {
    let rest = key.strip_prefix("nodes/").unwrap();
    let (host_id, rest) = rest.split_once("/sst/shop/").unwrap();
    let (file, _identity) = rest.rsplit_once('/').unwrap();
    (host_id.to_string(), file.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_incremental_uploads_only_what_its_base_does_not_cover() {
    let env = setup_with("4.1", "--incremental-backups").await;
    let c = &env.cluster;
    let store = env.store().await;
    let (id, recipient) = identity(env.dir.path(), "id.txt");
    // backups/ links every flushed sstable; after the compaction the live folders hold only
    // the result, which the base snapshot stores; the inputs stay linked in backups/.
    for h in c.hosts() {
        write_flush(c, &h, 100, 50);
        c.sh(
            &h,
            "cassandra-emu compact shop orders && cassandra-emu compact shop customers",
        );
    }
    let covered: BTreeMap<String, BTreeSet<String>> = c
        .hosts()
        .into_iter()
        .map(|h| (h.clone(), backup_names(c, &h)))
        .collect();
    let full = encrypted_plan(&env, "full.toml", "snapshot", &recipient, "");
    let (code, log) = env.apply_with(Path::new(&full), "2026-04-01T00:00:00Z", &[]);
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        write_flush(c, &h, 60, 30);
    }
    let expected: Vec<(String, Vec<String>)> = c
        .hosts()
        .into_iter()
        .map(|h| (h.clone(), live_sums(c, &h)))
        .collect();
    let mut new_files: BTreeSet<(String, String)> = BTreeSet::new();
    let base: Catalog = read_json(store.as_ref(), "catalog/nightly-20260401T000000Z.json").await;
    for h in &base.hosts {
        let now = backup_names(c, &h.name);
        let fresh: Vec<&String> = now.difference(&covered[&h.name]).collect();
        assert!(
            fresh.iter().filter(|n| n.ends_with("-Data.db")).count() >= 2,
            "{h:?}"
        );
        new_files.extend(fresh.into_iter().map(|n| (h.host_id.clone(), n.clone())));
    }
    let before: BTreeSet<String> = store
        .list("nodes/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();

    let inc = encrypted_plan(&env, "inc.toml", "incremental", &recipient, "");
    let (code, log) = env.apply_with(Path::new(&inc), "2026-04-01T06:00:00Z", &[]);
    assert_eq!(code, 0, "{log}");
    let added: Vec<(String, u64)> = store
        .list("nodes/")
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.key.contains("/sst/") && !before.contains(&o.key))
        .map(|o| (o.key, o.size))
        .collect();
    let data: Vec<&(String, u64)> = added.iter().filter(|(k, _)| !k.ends_with(".key")).collect();
    let stored: BTreeSet<(String, String)> = data.iter().map(|(k, _)| file_of(k)).collect();
    let extra: Vec<_> = stored.difference(&new_files).collect();
    let missing: Vec<_> = new_files.difference(&stored).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "the incremental stored other files than the new flushes\n extra (covered by the base): {extra:#?}\n missing: {missing:#?}"
    );
    assert_eq!(data.len(), new_files.len());
    // Each stored object has its data key, nothing else was added.
    assert_eq!(added.len(), 2 * data.len(), "{added:#?}");
    // The bytes sent are those objects' bytes.
    let sent: u64 = log
        .lines()
        .filter_map(|l| l.split(" uploaded (").nth(1))
        .filter_map(|s| s.split(" bytes sent").next()?.parse::<u64>().ok())
        .sum();
    let data_bytes: u64 = data.iter().map(|(_, s)| s).sum();
    assert_eq!(sent, data_bytes, "{log}");
    assert!(
        log.contains("backups/ files left out"),
        "the covered links are named: {log}"
    );

    // Restore to the incremental: exactly the live files of that time come back.
    for h in c.hosts() {
        write_flush(c, &h, 10, 10);
    }
    let restore = env.plan(
        "restore.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"latest-before:2026-04-01T07:00:00Z\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n",
    );
    let idv = id.display().to_string();
    let (code, log) = env.apply_with(
        &restore,
        "2026-04-01T08:00:00Z",
        &[("CBK_IDENTITY_FILE", &idv)],
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("(+1 incrementals)"), "{log}");
    for (h, want) in &expected {
        assert_eq!(&live_sums(c, h), want, "{h}: restored files differ");
        assert_eq!(c.sh(h, "cassandra-emu status").trim(), "running");
    }
}
