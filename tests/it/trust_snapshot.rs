//! Snapshot backups an operator can trust when something already went wrong (issue 17, items 7
//! and 8 and two smaller ones), over real sshd hosts, the node emulator and moto:
//!
//! - a leftover or partial snapshot with the planned tag is not accepted as the backup's
//!   snapshot: it is cleared and taken again, and the apply says so;
//! - `system_schema` is stored once per node, not once per `upload[host/pattern]` task;
//! - a saved plan whose backup name already exists as a complete backup is refused before any
//!   snapshot;
//! - a later backup clears cbk's own stale snapshots (of complete backups, this plan's tag
//!   prefix) and its plan says so; other snapshots stay.

use crate::support;

use crate::support::cluster::TestCluster;
use crate::support::e2e::{Env, assert_manifest_matches_live, read_json, setup, write_flush};
use cbk::repo::manifest::{Catalog, NodeManifest};
use cbk::store::Store;
use std::collections::BTreeSet;
use std::path::Path;

/// A backup plan of `shop.*` and `metrics.*` (two upload patterns per host), `nightly-<time>`.
fn two_pattern_plan(env: &Env) -> std::path::PathBuf {
    env.plan(
        "backup2.toml",
        &env.cluster,
        "kind = \"backup\"\n[backup]\nname = \"nightly-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\ninclude = [\"shop.*\", \"metrics.*\"]\n",
    )
}

/// Keyspace `metrics` with two flushed tables on every host.
fn add_metrics(c: &TestCluster) {
    for h in c.hosts() {
        c.sh(
            &h,
            "cassandra-emu cql \"CREATE KEYSPACE metrics WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}\" \
             && cassandra-emu cql \"CREATE TABLE metrics.samples (id uuid PRIMARY KEY, v double)\" \
             && cassandra-emu cql \"CREATE TABLE metrics.rollups (id uuid PRIMARY KEY, v double)\" \
             && cassandra-emu write metrics samples --rows 50 && cassandra-emu write metrics rollups --rows 20 \
             && nodetool flush metrics",
        );
    }
}

/// Applies a saved plan with the state folder `state`.
fn apply_saved(env: &Env, saved: &Path, state: &Path) -> (i32, String) {
    env.cbk(&[
        "apply",
        &saved.display().to_string(),
        "--state",
        &state.display().to_string(),
        "--progress",
        "plain",
    ])
}

/// `keyspace.table` of every table of a node manifest.
fn table_names(m: &NodeManifest) -> BTreeSet<String> {
    m.tables
        .iter()
        .map(|t| format!("{}.{}", t.keyspace, t.table))
        .collect()
}

/// Snapshot tags on `host` (any table, any data folder).
fn tags_on(c: &TestCluster, host: &str) -> BTreeSet<String> {
    c.sh(
        host,
        "find /var/lib/cassandra -mindepth 5 -maxdepth 5 -path '*/snapshots/*' -type d -printf '%f\\n' | sort -u",
    )
    .lines()
    .map(String::from)
    .collect()
}

/// The summed "N files" of the `upload[host/...]` lines of an apply's summary.
fn uploaded_files(log: &str, host: &str) -> (usize, u64) {
    let head = format!("upload[{host}/");
    let mut tasks = 0;
    let mut files = 0;
    for l in log.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix(&head)
            && let Some((_, summary)) = rest.split_once("]: ")
            && let Some(n) = summary.split(" files").next()
            && let Ok(n) = n.trim().parse::<u64>()
        {
            tasks += 1;
            files += n;
        }
    }
    (tasks, files)
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_snapshot_is_taken_again_and_schema_is_stored_once() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    add_metrics(c);
    let store = env.store().await;
    let now = "2026-05-01T00:00:00Z";
    let backup = "nightly-20260501T000000Z";
    let saved = env.save_plan(&two_pattern_plan(&env), now);
    // A crashed earlier attempt left the planned tag on node2, for keyspace shop only.
    c.sh("node2", &format!("nodetool snapshot -t {backup} shop"));
    // On node3 the node died in the middle of `nodetool snapshot` (the emulator's knob: after
    // the links of the third table, before its manifest.json), then came back.
    let out = c.exec_on(
        "node3",
        &format!(
            "CASSEMU_CRASH_SNAPSHOT_AFTER_LINKS=3 nodetool snapshot -t {backup} shop metrics system_schema"
        ),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    c.sh("node3", "cassandra-emu start");
    let torn = c.sh(
        "node3",
        &format!(
            "find /var/lib/cassandra -path '*/snapshots/{backup}/*' -name manifest.json | wc -l"
        ),
    );
    assert_eq!(
        torn.trim(),
        "2",
        "two tables finished their snapshot on node3"
    );
    let (code, log) = apply_saved(&env, &saved, &env.state(now));
    let mut failures: Vec<String> = Vec::new();
    if code != 0 {
        failures.push(format!("the apply failed ({code})"));
    }
    let catalog: Catalog = read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    let mut manifests = Vec::new();
    for h in &catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        manifests.push((h.name.clone(), m));
    }
    let node1 = table_names(&manifests[0].1);
    for t in [
        "shop.orders",
        "shop.customers",
        "metrics.samples",
        "metrics.rollups",
        "system_schema.tables",
    ] {
        assert!(node1.contains(t), "node1 lacks {t}: {node1:?}");
    }
    // system_schema once per node: the upload tasks of a host together stored exactly the
    // files of its manifest.
    for (h, m) in &manifests {
        let (tasks, files) = uploaded_files(&log, h);
        assert_eq!(tasks, 2, "{h}: two upload tasks expected in\n{log}");
        if files != m.totals.files {
            failures.push(format!(
                "{h}: the upload tasks stored {files} files, the manifest holds {} (system_schema uploaded by every pattern task)",
                m.totals.files
            ));
        }
        let schema_parts = m
            .tables
            .iter()
            .filter(|t| t.keyspace == "system_schema")
            .count();
        if schema_parts == 0 {
            failures.push(format!("{h}: no system_schema table stored"));
        }
    }
    // The leftover snapshot on node2 was not taken as the backup's snapshot.
    for (h, m) in &manifests {
        let names = table_names(m);
        if names != node1 {
            failures.push(format!(
                "{h}: {} of {} tables stored ({:?})",
                names.len(),
                node1.len(),
                names
            ));
        }
        assert_manifest_matches_live(store.as_ref(), c, h, m).await;
    }
    for (h, why) in [("node2", "no snapshot"), ("node3", "no manifest.json")] {
        let said = log.lines().any(|l| {
            l.contains(&format!("snapshot[{h}]")) && l.contains("taken again") && l.contains(why)
        });
        if !said {
            failures.push(format!(
                "the apply does not say {h}'s partial snapshot ({why}) was taken again"
            ));
        }
    }
    for h in c.hosts() {
        assert!(tags_on(c, &h).is_empty(), "{h}: snapshots left");
    }
    assert!(failures.is_empty(), "{}\n{log}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_complete_backup_name_is_refused_before_any_snapshot() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let store = env.store().await;
    let now = "2026-05-02T00:00:00Z";
    let backup = "nightly-20260502T000000Z";
    let saved = env.save_plan(&env.backup_plan(), now);
    let (code, log) = apply_saved(&env, &saved, &env.state(now));
    assert_eq!(code, 0, "{log}");
    let catalog_key = format!("catalog/{backup}.json");
    let first: Catalog = read_json(store.as_ref(), &catalog_key).await;
    let objects = |store: std::sync::Arc<dyn Store>| async move {
        store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect::<BTreeSet<_>>()
    };
    let before = objects(store.clone()).await;
    // New data on the nodes, then the same saved plan from another controller (other state).
    for h in c.hosts() {
        write_flush(c, &h, 40, 20);
    }
    let other_state = env.dir.path().join("other-controller");
    let (code, log) = apply_saved(&env, &saved, &other_state);
    let after = objects(store.clone()).await;
    let new: Vec<&String> = after.difference(&before).collect();
    let second: Catalog = read_json(store.as_ref(), &catalog_key).await;
    assert_eq!(second, first, "the catalog changed");
    let mut failures = Vec::new();
    if code == 0 {
        failures.push("the second apply of an existing complete backup exited 0".to_string());
    }
    if !log.contains(&format!("backup {backup} already exists and is complete")) {
        failures.push("no `already exists and is complete` refusal".into());
    }
    if log.contains("applied snapshot[")
        || log
            .lines()
            .any(|l| l.trim().starts_with("snapshot[") && l.contains("taken"))
    {
        failures.push("snapshots were taken".into());
    }
    if !new.is_empty() {
        failures.push(format!(
            "{} objects stored in no backup, e.g. {:?}",
            new.len(),
            &new[..new.len().min(2)]
        ));
    }
    for h in c.hosts() {
        assert!(tags_on(c, &h).is_empty(), "{h}: snapshots left");
    }
    assert!(failures.is_empty(), "{}\n{log}", failures.join("\n"));

    // The resume of the run that wrote a backup is not refused: kill -9 after `catalog` (a
    // controller step after it signals, then waits), then the same apply again.
    let marker = env.dir.path().join("catalog-written");
    let plan = env.plan(
        "resume.toml",
        c,
        &format!(
            "kind = \"backup\"\n[backup]\nname = \"nightly-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\ninclude = [\"shop.*\"]\n\n\
             [[step]]\nname = \"pause\"\non = \"controller\"\nrun = \"test -e {m} || (touch {m} && sleep 30)\"\nafter = [\"catalog\"]\n",
            m = marker.display()
        ),
    );
    let now = "2026-05-02T01:00:00Z";
    let saved = env.save_plan(&plan, now);
    let state = env.state(now);
    let killed = support::crash::attempt_env(
        &env.store_env(),
        &saved,
        &state,
        std::time::Duration::from_secs(120),
        || marker.exists(),
    );
    assert!(
        matches!(killed, support::crash::Attempt::Killed),
        "the apply was not killed after catalog"
    );
    assert!(
        store
            .head("catalog/nightly-20260502T010000Z.json")
            .await
            .unwrap()
            .is_some()
    );
    let (code, log) = apply_saved(&env, &saved, &state);
    assert_eq!(code, 0, "the resume was refused: {log}");
    assert!(log.contains("resum"), "{log}");
    for h in c.hosts() {
        assert!(
            tags_on(c, &h).is_empty(),
            "{h}: snapshots left after the resume"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_snapshots_of_complete_backups_are_cleared_by_the_next_backup() {
    let env = setup("4.1").await;
    let c = &env.cluster;
    let plan = env.backup_plan();
    // The end state of a kill -9 between `catalog` and `clear_snapshot`: the backup is complete
    // and its snapshot is still on every node (the plan made without its clear_snapshot tasks).
    let first_now = "2026-05-03T00:00:00Z";
    let stale = "nightly-20260503T000000Z";
    let saved = plan.with_extension("first.json");
    let (code, shown) = env.cbk(&[
        "plan",
        &plan.display().to_string(),
        "--now",
        first_now,
        "--exclude",
        "clear_snapshot*",
        "--out",
        &saved.display().to_string(),
    ]);
    assert_eq!(code, 0, "{shown}");
    let (code, log) = apply_saved(&env, &saved, &env.state(first_now));
    assert_eq!(code, 0, "{log}");
    // Other snapshots: an operator's own, and one of this plan's prefix whose backup never
    // completed (no catalog): neither is cbk's to clear.
    let unfinished = "nightly-20260502T120000Z";
    for h in c.hosts() {
        c.sh(&h, "nodetool snapshot -t operator-keep shop");
        c.sh(&h, &format!("nodetool snapshot -t {unfinished} shop"));
        let tags = tags_on(c, &h);
        assert!(tags.contains(stale), "{h}: {tags:?}");
    }

    let now = "2026-05-04T00:00:00Z";
    let (shown, code, log) = env.plan_and_apply(&plan, now);
    assert_eq!(code, 0, "{log}");
    let mut failures = Vec::new();
    if !shown.contains("nightly-*") {
        failures.push(format!(
            "the plan does not say it clears stale snapshots:\n{shown}"
        ));
    }
    for h in c.hosts() {
        let tags = tags_on(c, &h);
        if tags.contains(stale) {
            failures.push(format!("{h}: the stale snapshot {stale} is still there"));
        }
        assert!(
            tags.contains("operator-keep") && tags.contains(unfinished),
            "{h}: a snapshot that is not a stale one of a complete backup was cleared: {tags:?}"
        );
        assert!(!tags.contains("nightly-20260504T000000Z"), "{h}: {tags:?}");
    }
    if !log.contains(&format!("stale snapshot {stale}")) {
        failures.push("the apply does not say which stale snapshot it cleared".into());
    }
    assert!(failures.is_empty(), "{}\n{log}", failures.join("\n"));
}
