//! What a store holds and which backup `latest` is, over real sshd (one per host, own
//! namespaces), emulated Cassandra nodes and a real S3 server (moto), with two clusters backing
//! up to one store prefix: cluster `alpha` (node1) and cluster `beta` (node2, node3).
//!
//! Checked: `latest` is the newest complete snapshot backup by creation time of the plan's
//! cluster for restore, verify and list (never the greatest name, never another cluster's);
//! list, verify, prune and restore see only the plan's cluster (a CLUSTER column in `cbk list`);
//! the index is a cache (a backup whose index entry is gone is still complete, kept by prune and
//! indexed again by `cbk list --rebuild-index`; a backup missing a node manifest is neither
//! complete nor `latest`); and quick `cbk verify` refuses a manifest path outside the table
//! folder, as restore does.
//!
//! Failures are collected and reported together, so one run shows every defect.

use crate::support::e2e::{Env, read_json, setup};
use cbk::repo::manifest::NodeManifest;
use std::path::{Path, PathBuf};

const T1: &str = "2026-04-01T01:00:00Z";
const T2: &str = "2026-04-01T02:00:00Z";
const T3: &str = "2026-04-01T03:00:00Z";
const T4: &str = "2026-04-01T04:00:00Z";
const T5: &str = "2026-04-01T04:30:00Z";

/// A plan for cluster `cluster` made of `hosts`, storing to the shared prefix.
fn plan_for(env: &Env, file: &str, cluster: &str, hosts: &[&str], body: &str) -> PathBuf {
    let p = env.plan(file, &env.cluster, body);
    let text = std::fs::read_to_string(&p).unwrap();
    let all: Vec<String> = env
        .cluster
        .hosts()
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect();
    let mine: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let old = format!("[cluster]\nname = \"prod\"\nhosts = [{}]", all.join(", "));
    assert!(text.contains(&old), "{text}");
    let text = text.replace(
        &old,
        &format!(
            "[cluster]\nname = \"{cluster}\"\nhosts = [{}]",
            mine.join(", ")
        ),
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn backup_body(prefix: &str, extra: &str) -> String {
    format!(
        "kind = \"backup\"\n[backup]\nname = \"{prefix}-{{{{ now | strftime('%Y%m%dT%H%M%SZ') }}}}\"\nmode = \"snapshot\"\ninclude = [\"shop.*\"]\n{extra}"
    )
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clusters_one_prefix_latest_index_cache_and_paths() {
    let env = setup("4.1").await;
    let store = env.store().await;
    let mut fails: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            eprintln!("FAILED: {what}");
            fails.push(what);
        }
    };

    // alpha: `zz-*` first, then the newer `aa-*` (names do not sort across plans).
    let alpha_zz = plan_for(
        &env,
        "alpha-zz.toml",
        "alpha",
        &["node1"],
        &backup_body("zz", ""),
    );
    let alpha_aa = plan_for(
        &env,
        "alpha-aa.toml",
        "alpha",
        &["node1"],
        &backup_body("aa", ""),
    );
    let beta = plan_for(
        &env,
        "beta.toml",
        "beta",
        &["node2", "node3"],
        &backup_body("nightly", "[retention]\nkeep_last = 1\ngrace = \"0s\"\n"),
    );
    // beta also backs up `shop.orders` alone (another include set), newest of all.
    let beta_orders = plan_for(
        &env,
        "beta-orders.toml",
        "beta",
        &["node2", "node3"],
        &backup_body("orders", "").replace("[\"shop.*\"]", "[\"shop.orders\"]"),
    );
    for (plan, now) in [
        (&alpha_zz, T1),
        (&alpha_aa, T2),
        (&beta, T3),
        (&beta, T4),
        (&beta_orders, T5),
    ] {
        let (code, log) = env.apply(plan, now);
        assert_eq!(code, 0, "backup at {now}: {log}");
    }
    let zz = "zz-20260401T010000Z";
    let aa = "aa-20260401T020000Z";
    let b3 = "nightly-20260401T030000Z";
    let b4 = "nightly-20260401T040000Z";
    let o5 = "orders-20260401T043000Z";
    let alpha_id = host_id(&store, aa).await;

    // list: alpha's plan sees alpha's backups only, with a CLUSTER column.
    let (code, out) = env.cbk(&["list", "--plan", &p(&alpha_aa)]);
    check(code == 0, format!("list alpha: rc {code}: {out}"));
    let header = out.lines().next().unwrap_or("");
    check(
        header.contains("CLUSTER"),
        format!("list has no CLUSTER column: {header}"),
    );
    check(
        out.contains(zz) && out.contains(aa) && !out.contains("nightly-"),
        format!("list with alpha's plan shows other clusters' backups or misses its own:\n{out}"),
    );
    check(
        out.lines()
            .any(|l| l.starts_with(aa) && l.contains("  complete ") && l.ends_with("  alpha")),
        format!("no `{aa} … complete  alpha` line:\n{out}"),
    );

    // verify without a name: alpha's newest, not beta's newer one.
    let (code, out) = env.cbk(&["verify", "--plan", &p(&alpha_aa)]);
    check(
        code == 0 && out.contains(&format!("backup {aa}:")),
        format!("verify --plan alpha (latest) did not verify {aa}: rc {code}: {out}"),
    );

    // restore `latest` on alpha: the newest by creation time, not the greatest name.
    let restore = plan_for(
        &env,
        "alpha-restore.toml",
        "alpha",
        &["node1"],
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.orders\"]\nmethod = \"import\"\n",
    );
    let (shown, code, log) = env.plan_and_apply(&restore, "2026-04-01T05:00:00Z");
    check(
        shown.contains("resolved at apply"),
        format!("cbk plan does not say `latest` is resolved at apply:\n{shown}"),
    );
    check(
        code == 0 && log.contains(&format!("restoring backup {aa}")),
        format!("restore latest on alpha did not pick {aa}: rc {code}: {log}"),
    );

    // The index is a cache: beta's newest loses its index entry.
    store
        .delete_many(&[format!("index/{b4}.json")])
        .await
        .unwrap();
    let (code, out) = env.cbk(&["list", "--plan", &p(&beta)]);
    check(
        code == 0
            && out
                .lines()
                .any(|l| l.starts_with(b4) && l.contains("complete") && !l.contains("INCOMPLETE")),
        format!("{b4} without its index entry is not listed complete: {out}"),
    );
    // prune with beta's plan (keep_last = 1, grace 0s): drops b3 only; alpha is untouched, b4
    // (complete, not indexed) is kept, and so is the `shop.orders` backup (another include set:
    // not counted, not deleted).
    let (code, out) = env.cbk(&["prune", "--plan", &p(&beta)]);
    check(code == 0, format!("prune beta: rc {code}: {out}"));
    for (name, present) in [(zz, true), (aa, true), (b4, true), (b3, false), (o5, true)] {
        let there = store
            .head(&format!("catalog/{name}.json"))
            .await
            .unwrap()
            .is_some();
        check(
            there == present,
            format!("after prune with beta's plan, catalog of {name} present = {there}: {out}"),
        );
    }
    for (plan, name) in [(&alpha_aa, zz), (&alpha_aa, aa), (&beta, b4), (&beta, o5)] {
        let (code, out) = env.cbk(&["verify", name, "--plan", &p(plan)]);
        check(
            code == 0,
            format!("verify {name} after prune: rc {code}: {out}"),
        );
    }
    let (code, out) = env.cbk(&["list", "--plan", &p(&beta), "--rebuild-index"]);
    let indexed = store
        .head(&format!("index/{b4}.json"))
        .await
        .unwrap()
        .is_some();
    check(
        code == 0 && indexed,
        format!("list --rebuild-index did not index {b4} again: rc {code}: {out}"),
    );

    // A missing node manifest: aa is not complete and no longer `latest`.
    store
        .delete_many(&[format!("nodes/{alpha_id}/manifests/{aa}.json")])
        .await
        .unwrap();
    let (code, out) = env.cbk(&["list", "--plan", &p(&alpha_aa)]);
    check(
        code == 0
            && out
                .lines()
                .any(|l| l.starts_with(aa) && l.contains("INCOMPLETE")),
        format!("{aa} without its node manifest is not INCOMPLETE: {out}"),
    );
    let (code, out) = env.cbk(&["verify", "--plan", &p(&alpha_aa)]);
    check(
        code == 0 && out.contains(&format!("backup {zz}:")),
        format!("latest with a node manifest gone is not {zz}: rc {code}: {out}"),
    );

    // A manifest path outside the table folder: quick verify refuses it, as restore does.
    let cat: cbk::repo::manifest::Catalog =
        read_json(store.as_ref(), &format!("catalog/{b4}.json")).await;
    let key = cat.hosts[0].manifest.clone();
    let mut m: NodeManifest = read_json(store.as_ref(), &key).await;
    let mut evil = m.tables[0].files[0].clone();
    evil.path = "../../etc/passwd".into();
    m.tables[0].files.push(evil);
    store
        .put_bytes(&key, serde_json::to_vec(&m).unwrap().into())
        .await
        .unwrap();
    let (code, out) = env.cbk(&["verify", b4, "--plan", &p(&beta)]);
    check(
        code == 1 && out.contains("../../etc/passwd") && out.contains("unsafe path"),
        format!("quick verify accepted ../../etc/passwd: rc {code}: {out}"),
    );

    assert!(
        fails.is_empty(),
        "{} failures:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

/// Host id of the (only) host of an alpha backup.
async fn host_id(store: &std::sync::Arc<dyn cbk::store::Store>, backup: &str) -> String {
    let cat: cbk::repo::manifest::Catalog =
        read_json(store.as_ref(), &format!("catalog/{backup}.json")).await;
    cat.hosts[0].host_id.clone()
}
