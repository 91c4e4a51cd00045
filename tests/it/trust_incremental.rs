//! Issue 17 over real sshd + the node emulator + moto: incremental backups and compaction
//! inputs (a restore takes only incremental files flushed after the base snapshot, and an
//! incremental upload leaves out what the base covers), legacy restores and secondary indexes.

use crate::cassandra_support;
use crate::support;

use crate::support::e2e::{Env, live_sums, read_json, setup_with, write_flush};
use crate::support::s3::S3Server;
use cbk::repo::manifest::{Catalog, NodeManifest};
use sha2::Digest as _;
use std::collections::BTreeSet;

/// Names of the `shop` files in `backups/` of `host` (`orders-<id>/nb-3-big-Data.db`,
/// `customers-<id>/.customers_name/nb-1-big-Data.db`).
fn backup_names(c: &support::cluster::TestCluster, host: &str) -> BTreeSet<String> {
    c.sh(
        host,
        "cd /var/lib/cassandra && find data*/shop -path '*/backups/*' -type f | sed -e 's#^data[0-9]*/shop/##' -e 's#/backups/#/#'",
    )
    .lines()
    .map(String::from)
    .collect()
}

/// `orders-<id>/nb-3-big-Data.db` of a `live_sums` line (`shop/orders-<id>/… <sha>`).
fn live_name(line: &str) -> String {
    let path = line.split(' ').next().unwrap();
    path.strip_prefix("shop/").unwrap_or(path).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_restore_leaves_out_compaction_inputs() {
    compaction_inputs_case(false).await;
}

/// An incremental that stored the compaction inputs (as cbk did before it compared with the
/// base snapshot: while it runs, the base's node manifests list no file) is still restored
/// without them.
#[tokio::test(flavor = "multi_thread")]
async fn restore_leaves_compaction_inputs_out_of_an_older_incremental() {
    compaction_inputs_case(true).await;
}

async fn compaction_inputs_case(older_incremental: bool) {
    let env = setup_with("4.1", "--incremental-backups").await;
    let c = &env.cluster;
    let store = env.store().await;

    // Two more flushes, then a compaction: the live folders hold only the compaction result,
    // backups/ still links every flushed input (Cassandra never removes them).
    let mut inputs = std::collections::BTreeMap::new();
    for h in c.hosts() {
        write_flush(c, &h, 100, 50);
        c.sh(
            &h,
            "cassandra-emu compact shop orders && cassandra-emu compact shop customers",
        );
        let links = backup_names(c, &h);
        let live: BTreeSet<String> = live_sums(c, &h).iter().map(|l| live_name(l)).collect();
        let gone: BTreeSet<String> = links.difference(&live).cloned().collect();
        assert!(
            gone.iter().filter(|n| n.ends_with("-Data.db")).count() >= 6,
            "{h}: the compaction inputs stay in backups/: links {links:?}, live {live:?}"
        );
        inputs.insert(h.clone(), gone);
    }

    // The base snapshot (T0), new flushes, then the first incremental (T1).
    let (code, log) = env.apply(&env.backup_plan(), "2026-04-01T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        write_flush(c, &h, 60, 30);
    }
    let expected: Vec<(String, Vec<String>)> = c
        .hosts()
        .into_iter()
        .map(|h| (h.clone(), live_sums(c, &h)))
        .collect();
    let inc = env.backup_plan_via("inc.toml", "incremental", &env.moto.endpoint());
    let base: Catalog = read_json(store.as_ref(), "catalog/nightly-20260401T000000Z.json").await;
    let mut hidden = Vec::new();
    if older_incremental {
        for h in &base.hosts {
            hidden.push((
                h.manifest.clone(),
                store.get_bytes(&h.manifest).await.unwrap(),
            ));
        }
        // The base stays complete (its manifests exist, so it is still `latest`), but lists no
        // file: the incremental cannot tell what the base covers, as an older cbk could not.
        for (key, body) in &hidden {
            let mut m: serde_json::Value = serde_json::from_slice(body).unwrap();
            m["tables"] = serde_json::json!([]);
            store
                .put_bytes(key, serde_json::to_vec(&m).unwrap().into())
                .await
                .unwrap();
        }
    }
    let (code, log) = env.apply(&inc, "2026-04-01T06:00:00Z");
    assert_eq!(code, 0, "{log}");
    for (key, body) in hidden {
        store.put_bytes(&key, body).await.unwrap();
    }
    let inc_catalog: Catalog =
        read_json(store.as_ref(), "catalog/incremental-20260401T060000Z.json").await;
    for h in &inc_catalog.hosts {
        let m: NodeManifest = read_json(store.as_ref(), &h.manifest).await;
        assert_eq!(m.base.as_deref(), Some("nightly-20260401T000000Z"));
        let stored: BTreeSet<String> = m
            .tables
            .iter()
            .flat_map(|t| {
                t.files
                    .iter()
                    .map(move |f| format!("{}/{}", t.folder(), f.path))
            })
            .collect();
        let dup: Vec<&String> = stored.intersection(&inputs[&h.name]).collect();
        if older_incremental {
            assert!(
                !dup.is_empty(),
                "{}: the older incremental holds the inputs",
                h.name
            );
            continue;
        }
        assert!(
            dup.is_empty(),
            "{}: the incremental stored compaction inputs the base snapshot covers: {dup:?}",
            h.name
        );
        assert!(
            stored.iter().any(|n| n.ends_with("-Data.db")),
            "{}: the new flushes are in the incremental",
            h.name
        );
    }

    // Restore to a time after the incremental: exactly the live files of T1 come back.
    let plan = env.plan(
        "restore.toml",
        c,
        "kind = \"restore\"\n[restore]\nsource = \"latest-before:2026-04-01T07:00:00Z\"\ninclude = [\"shop.*\"]\nmethod = \"restart\"\nrepair_options = [\"-full\"]\n",
    );
    for h in c.hosts() {
        write_flush(c, &h, 10, 10);
    }
    let (code, log) = env.apply(&plan, "2026-04-01T08:00:00Z");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("(+1 incrementals)"), "{log}");
    for (h, want) in &expected {
        let got = live_sums(c, h);
        let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
        let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{h}: restored files differ from the live files at the incremental\n extra: {extra:#?}\n missing: {missing:#?}"
        );
        assert_eq!(c.sh(h, "cassandra-emu status").trim(), "running");
    }
}

// ---------------------------------------------------------------------------------------------
// Legacy `cassandra_backups` buckets.

const LEGACY: &str = "webapp_prod/20161223";
/// `shop.orders` / `shop.customers` ids of `support::e2e` without dashes.
const ORDERS_HEX: &str = "5a1f6c10000011f18000000000000001";
const CUSTOMERS_HEX: &str = "5a1f6c10000011f18000000000000002";

/// The nb fixture sstable `legacy_nb_<kind>` as (file name, bytes) of generation `generation`.
fn fixture_sstable(kind: &str, generation: u32) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cassandra/nb/legacy_tables")
        .join(format!("legacy_nb_{kind}"));
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (
                name.replacen("nb-1-", &format!("nb-{generation}-"), 1),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Stores a legacy snapshot of every host (the real `lzop`, single-slash keys as boto 2.49
/// writes them): `shop.customers` (base sstables only: the old tool never uploaded index
/// sstables) and `shop.orders`, whose snapshot sstable is also in `backups/` (the old tool's
/// first incremental run of a day uploads it again) next to one real incremental sstable.
/// Returns the expected live `customers` files (name -> sha256) of every host.
async fn legacy_bucket(env: &Env) -> std::collections::BTreeMap<String, String> {
    let s3 = cbk::store::s3::S3Store::new(
        &support::s3::storage_config(&env.moto.endpoint(), &env.bucket, ""),
        Some(env.moto.credentials()),
    )
    .await
    .unwrap();
    let put = |key: String, body: Vec<u8>| {
        let client = s3.client().clone();
        let bucket = env.bucket.clone();
        async move {
            client
                .put_object()
                .bucket(bucket)
                .key(format!("prod/{key}"))
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    };
    let mut expected = std::collections::BTreeMap::new();
    for h in env.cluster.hosts() {
        let dir = |table: &str, id: &str, folder: &str| {
            format!("{LEGACY}/{h}/var/lib/cassandra/data1/shop/{table}-{id}/{folder}")
        };
        for (table, id, folder, kind, generation) in [
            (
                "customers",
                CUSTOMERS_HEX,
                "snapshots/20161223",
                "simple",
                11,
            ),
            ("orders", ORDERS_HEX, "snapshots/20161223", "clust", 11),
            ("orders", ORDERS_HEX, "backups", "clust", 11),
            ("orders", ORDERS_HEX, "backups", "simple", 12),
        ] {
            for (file, bytes) in fixture_sstable(kind, generation) {
                if table == "customers" {
                    expected.insert(file.clone(), hex::encode(sha2::Sha256::digest(&bytes)));
                }
                let lzo = cassandra_support::lzop(&file, &bytes, &[]);
                put(format!("{}/{file}.lzo", dir(table, id, folder)), lzo).await;
            }
        }
    }
    let manifest = serde_json::json!({
        "table": "", "hosts": env.cluster.hosts(), "keyspaces": ["shop"], "name": "20161223",
        "base_path": "webapp_prod"
    });
    put(
        format!("{LEGACY}/manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    expected
}

fn legacy_restore_plan(env: &Env, file: &str, method: &str, extra: &str) -> std::path::PathBuf {
    env.plan(
        file,
        &env.cluster,
        &format!(
            "kind = \"restore\"\n[restore]\nsource = \"legacy:{LEGACY}\"\nmethod = \"{method}\"\nrepair = false\n{extra}\n"
        ),
    )
}

/// The `resolve` line of an apply's output.
fn resolve_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("restoring legacy backup"))
        .unwrap_or_else(|| panic!("no resolve line in:\n{log}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_resolve_counts_duplicates_of_selected_tables_with_incrementals() {
    let env = setup_with("4.1", "").await;
    legacy_bucket(&env).await;
    let cases = [
        // Only customers: orders' duplicates are not this restore's business.
        ("customers.toml", "include = [\"shop.customers\"]", 0),
        // No incrementals: no backups/ object is taken, so none is a skipped duplicate.
        (
            "noinc.toml",
            "include = [\"shop.*\"]\nincrementals = false",
            0,
        ),
        // Both tables with incrementals: orders' 8 backups/ copies of its snapshot sstable.
        ("all.toml", "include = [\"shop.*\"]", 8),
    ];
    for (i, (file, extra, dups)) in cases.into_iter().enumerate() {
        let plan = legacy_restore_plan(&env, file, "import", extra);
        let (code, log) = env.apply(&plan, &format!("2026-03-01T0{i}:00:00Z"));
        assert_eq!(code, 0, "{file}: {log}");
        let line = resolve_line(&log);
        if dups == 0 {
            assert!(!line.contains("duplicates"), "{file}: {line}");
        } else {
            for h in env.cluster.hosts() {
                let want = format!("{h} -> {h}: ");
                let part = line.split(&want).nth(1).unwrap_or_else(|| panic!("{line}"));
                let part = part.split(" tables").next().unwrap();
                assert!(
                    part.contains(&format!("{dups} duplicates skipped")),
                    "{file}: {h}: {line}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_restart_restore_rebuilds_secondary_indexes() {
    let env = setup_with("4.1", "").await;
    let c = &env.cluster;
    let expected = legacy_bucket(&env).await;
    let index_sstables = |h: &str| -> Vec<String> {
        let show: serde_json::Value = serde_json::from_str(&c.sh(h, "cassandra-emu show")).unwrap();
        show["tables"]["shop.customers"]["live"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .filter(|p| p.contains("/.customers_name/"))
            .collect()
    };
    for h in c.hosts() {
        assert!(
            !index_sstables(&h).is_empty(),
            "{h}: the live index has sstables"
        );
    }
    let plan = legacy_restore_plan(
        &env,
        "restart.toml",
        "restart",
        "include = [\"shop.customers\"]",
    );
    // As in docs/migration.md, without cassandra.cqlsh: the indexes are found from the live
    // table folders' `.<index>/` folders.
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("cqlsh = \"cqlsh\"\n", "")).unwrap();
    assert!(!std::fs::read_to_string(&plan).unwrap().contains("cqlsh"));
    let (shown, code, log) = env.plan_and_apply(&plan, "2026-03-02T00:00:00Z");
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        // The restored base sstables, and an index built from them (not the displaced one).
        let live: std::collections::BTreeMap<String, String> = live_sums(c, &h)
            .iter()
            .filter(|l| l.starts_with("shop/customers-") && !l.contains("/.customers_name/"))
            .map(|l| {
                let (p, sha) = l.split_once(' ').unwrap();
                (p.rsplit('/').next().unwrap().to_string(), sha.to_string())
            })
            .collect();
        assert_eq!(live, expected, "{h}: live customers files");
        let idx = index_sstables(&h);
        assert!(
            !idx.is_empty(),
            "{h}: the restored shop.customers has no index sstable: {idx:?}\n{log}"
        );
        // The live index files were displaced with the base files (into the run's folder).
        let displaced = c.sh(
            &h,
            "find /var/lib/cassandra/cbk-staging -path '*/displaced/*/shop/customers-*/.customers_name/*' -type f | wc -l",
        );
        assert_ne!(
            displaced.trim(),
            "0",
            "{h}: the live index files were not displaced"
        );
        // `cbk plan` says what the task will rebuild (the index names are known at apply).
        let planned = shown
            .lines()
            .find(|l| l.contains(&format!("rebuild_index[{h}]")))
            .unwrap_or_else(|| panic!("{h}: no rebuild_index task in:\n{shown}"));
        assert!(
            planned.contains("include=shop.customers")
                && planned.contains("indexes=found at apply"),
            "{planned}"
        );
        // The outcome names each index rebuilt by its full address, host/ks.table.index.
        let line = log
            .lines()
            .find(|l| l.contains(&format!("rebuild_index[{h}]")) && l.contains("customers_name"))
            .unwrap_or_else(|| panic!("{h}: no rebuild_index line in:\n{log}"));
        assert!(
            line.contains(&format!("{h}/shop.customers.customers_name")),
            "{line}"
        );
    }
}
