//! The store commands for operators, at the CLI over real backups of an emulated node (`local`
//! transport) in the `fs` store and in moto's S3: `cbk ls`, `cbk verify --all`, why `cbk prune`
//! keeps or deletes each backup (and the keys it would delete), `--keep-last 0`, `cbk forget`
//! with garbage collection, `--metrics-file` on list/verify/prune (store-level gauges, and a
//! file that cannot be written is an error), and the JSON of list/ls/verify/prune/forget/state
//! checked against the schemas in `schemas/`.

use crate::support;
use crate::support::{flat, says};

use crate::support::emu::{EmuNode, cbk, plan_and_apply};
use cbk::repo::manifest::Catalog;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Backups at these times (two on the last day): b1..b5.
const NOWS: [&str; 5] = [
    "2026-12-04T01:00:00Z",
    "2026-12-05T01:00:00Z",
    "2026-12-06T01:00:00Z",
    "2026-12-07T01:00:00Z",
    "2026-12-07T13:00:00Z",
];

fn name_at(now: &str) -> String {
    let t: jiff::Timestamp = now.parse().unwrap();
    format!("b-{}", t.strftime("%Y%m%dT%H%M%SZ"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Validates `doc` against `schemas/<name>`, with every error in the message.
fn assert_schema(name: &str, doc: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schemas").join(name)).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{doc:#}");
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Prometheus text -> (name{labels} -> value), checked line by line.
fn metrics(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not the text format ({e}): {text}"));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(series.ends_with('}'), "labels on every series: {line}");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(out.insert(series.to_string(), v).is_none(), "dup {line}");
    }
    out
}

struct Env {
    _tmp: tempfile::TempDir,
    node: EmuNode,
    dir: PathBuf,
    store: PathBuf,
    plan: PathBuf,
    states: Vec<PathBuf>,
}

const BACKUP_BODY: &str = "kind = \"backup\"\n[backup]\nname = \"b-{{ now | strftime('%Y%m%dT%H%M%SZ') }}\"\nmode = \"MODE\"\ninclude = [\"shop.*\"]\n[retention]\nkeep_daily = 2\ngrace = \"0s\"\n";

/// One node (started with `extra` emulator flags) and its backup plan (mode `snapshot`) with
/// the `fs` store; nothing backed up yet.
fn node(extra: &[&str]) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let node = EmuNode::start(&dir, "4.1", 1, extra);
    node.create_shop();
    node.fill_shop(1, 100, 50);
    let store = dir.join("store");
    let plan = dir.join("backup.toml");
    let text = node.local_plan("n1", &store, &BACKUP_BODY.replace("MODE", "snapshot"));
    std::fs::write(&plan, text).unwrap();
    Env {
        _tmp: tmp,
        node,
        dir,
        store,
        plan,
        states: Vec::new(),
    }
}

/// One node, five backups with new flushes between them, and a compaction before b3 (so b1
/// and b2 hold components no later backup references).
fn backed_up() -> Env {
    let mut env = node(&[]);
    for (i, now) in NOWS.iter().enumerate() {
        env.node.write_flush("shop", "orders", 40);
        if i == 2 {
            env.node.emu(&["compact", "shop", "orders"]);
        }
        let (code, log, state) = plan_and_apply(&env.node.conf, &env.plan, now, &env.dir);
        assert_eq!(code, 0, "backup at {now}: {log}");
        env.states.push(state);
    }
    env
}

impl Env {
    fn cbk(&self, args: &[&str]) -> (i32, String, String) {
        cbk(&self.node.conf, args)
    }

    fn plan_s(&self) -> String {
        self.plan.display().to_string()
    }
}

#[test]
fn ops_cli_ls_verify_all_prune_reasons_forget_and_metrics_over_fs() {
    let env = backed_up();
    let plan = env.plan_s();
    let names: Vec<String> = NOWS.iter().map(|n| name_at(n)).collect();
    let (b1, b2, b3, b4, b5) = (&names[0], &names[1], &names[2], &names[3], &names[4]);
    let metrics_path = env.dir.join("cbk.prom");
    let m = metrics_path.display().to_string();

    // list: JSON matches its schema; store-level gauges written.
    let (code, out, err) = env.cbk(&[
        "list",
        "--plan",
        &plan,
        "--format",
        "json",
        "--metrics-file",
        &m,
    ]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_schema("list-output.schema.json", &v);
    assert_eq!(v["backups"].as_array().unwrap().len(), 5);
    let got = metrics(&metrics_path);
    let newest: jiff::Timestamp = NOWS[4].parse().unwrap();
    assert_eq!(
        got["cbk_newest_complete_backup_timestamp_seconds{cluster=\"demo\"}"],
        newest.as_second() as f64
    );
    let age = got["cbk_newest_complete_backup_age_seconds{cluster=\"demo\"}"];
    let expected = (jiff::Timestamp::now().as_second() - newest.as_second()) as f64;
    assert!(
        (age - expected).abs() < 120.0,
        "age {age}, expected ~{expected}"
    );
    assert_eq!(got["cbk_complete_backups{cluster=\"demo\"}"], 5.0);

    // ls: hosts, tables and files, human sizes, exact bytes with --bytes, JSON per schema.
    let catalog: Catalog = serde_json::from_slice(
        &std::fs::read(env.store.join(format!("catalog/{b5}.json"))).unwrap(),
    )
    .unwrap();
    let (code, out, err) = env.cbk(&["ls", b5, "--plan", &plan]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("shop.orders") && out.contains("shop.customers"),
        "{out}"
    );
    assert!(
        out.contains("KiB") || out.contains(" B "),
        "human sizes: {out}"
    );
    assert!(out.contains("n1 (host id "), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("-Data.db")).count(),
        out.lines()
            .filter(|l| l.contains("-Data.db") && l.contains("-> nodes/"))
            .count()
    );
    let (code, exact, _) = env.cbk(&["ls", b5, "--plan", &plan, "--bytes"]);
    assert_eq!(code, 0);
    assert!(
        exact.contains(&format!(
            "{} files, {}\n",
            catalog.totals.files, catalog.totals.bytes
        )),
        "exact total bytes: {exact}"
    );
    let (code, out, _) = env.cbk(&["ls", "latest", "--plan", &plan, "--format", "json"]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_schema("ls-output.schema.json", &v);
    assert_eq!(v["backup"], b5.as_str());
    let listed: u64 = v["hosts"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["files"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(listed, catalog.totals.files);
    let (code, _, err) = env.cbk(&["ls", "nope", "--plan", &plan]);
    assert_eq!(code, 1);
    assert!(flat(&err).contains("no backup named `nope`"), "{err}");

    // verify --all: every backup, JSON per schema, metrics; single verify per schema too.
    let (code, out, err) = env.cbk(&[
        "verify",
        "--all",
        "--plan",
        &plan,
        "--format",
        "json",
        "--metrics-file",
        &m,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_schema("verify-output.schema.json", &v);
    let verified: Vec<&str> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["backup"].as_str().unwrap())
        .collect();
    assert_eq!(
        verified,
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let got = metrics(&metrics_path);
    assert_eq!(got["cbk_verify_backups{cluster=\"demo\"}"], 5.0);
    assert_eq!(got["cbk_verify_problems{cluster=\"demo\"}"], 0.0);
    assert_eq!(got["cbk_verify_last_run_success{cluster=\"demo\"}"], 1.0);
    assert!(got.contains_key("cbk_newest_complete_backup_age_seconds{cluster=\"demo\"}"));
    let (code, out, _) = env.cbk(&["verify", b3, "--plan", &plan, "--json"]);
    assert_eq!(code, 0);
    assert_schema("verify-output.schema.json", &json(&out));
    let (code, out, _) = env.cbk(&["verify", "--all", "--plan", &plan]);
    assert_eq!(code, 0);
    assert!(out.contains("verified 5 backups: 0 with problems"), "{out}");

    // A metrics file that cannot be written is an error on verify, list and prune.
    let bad = env.dir.join("no-such-dir/cbk.prom").display().to_string();
    for args in [
        vec!["verify", "--plan", &plan, "--metrics-file", &bad],
        vec!["list", "--plan", &plan, "--metrics-file", &bad],
        vec![
            "prune",
            "--plan",
            &plan,
            "--dry-run",
            "--metrics-file",
            &bad,
        ],
    ] {
        let (code, _, err) = env.cbk(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains("cannot write metrics to"), "{args:?}: {err}");
    }

    // --keep-last 0 is refused (usage), nothing deleted.
    let before = files(&env.store);
    let (code, _, err) = env.cbk(&["prune", "--plan", &plan, "--keep-last", "0"]);
    assert_eq!(code, 64, "{err}");
    assert!(
        flat(&err).contains("--keep-last 0 is refused") && err.contains("cbk forget"),
        "{err}"
    );

    // prune --dry-run --verbose: why each backup is kept or deleted, and every key it would
    // delete; nothing is deleted.
    let (code, out, err) = env.cbk(&["prune", "--plan", &plan, "--dry-run", "--verbose"]);
    assert_eq!(code, 0, "{err}");
    let line = |b: &str| {
        out.lines()
            .find(|l| l.starts_with(b))
            .unwrap_or_else(|| panic!("no line for {b}: {out}"))
            .to_string()
    };
    assert!(
        line(b5).contains("keep:") && line(b5).contains("daily 2026-12-07, newest"),
        "{out}"
    );
    assert!(
        line(b3).contains("keep:") && line(b3).contains("daily 2026-12-06"),
        "{out}"
    );
    for b in [b1, b2, b4] {
        assert!(line(b).contains("delete: not in any policy"), "{out}");
    }
    assert!(out.contains(&format!("  catalog/{b1}.json")), "{out}");
    assert_eq!(files(&env.store), before, "a dry run deletes nothing");
    let (code, out, _) = env.cbk(&[
        "prune",
        "--plan",
        &plan,
        "--dry-run",
        "--verbose",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_schema("prune-output.schema.json", &v);
    let decisions: BTreeMap<String, (String, Vec<String>)> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let reasons = d["reasons"].as_array().unwrap().iter();
            (
                d["backup"].as_str().unwrap().to_string(),
                (
                    d["action"].as_str().unwrap().to_string(),
                    reasons.map(|r| r.as_str().unwrap().to_string()).collect(),
                ),
            )
        })
        .collect();
    let keep = |r: &[&str]| {
        (
            "keep".to_string(),
            r.iter().map(|s| s.to_string()).collect(),
        )
    };
    let delete = ("delete".to_string(), vec!["not in any policy".to_string()]);
    assert_eq!(decisions[b5], keep(&["daily 2026-12-07", "newest"]));
    assert_eq!(decisions[b3], keep(&["daily 2026-12-06"]));
    assert_eq!(decisions[b4], delete);
    assert_eq!(decisions[b1], delete);
    let would: BTreeSet<String> = v["deleted_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(
        would.iter().all(|k| before.contains(k)),
        "keys are store keys: {would:?}"
    );
    let gc_would: usize = would.iter().filter(|k| k.contains("/sst/")).count();
    assert_eq!(gc_would as u64, v["deleted_objects"].as_u64().unwrap());
    assert!(gc_would > 0, "b1/b2 hold compacted-away components: {out}");
    let (_, quiet, _) = env.cbk(&["prune", "--plan", &plan, "--dry-run", "--json"]);
    assert!(
        json(&quiet).get("deleted_keys").is_none(),
        "keys only with --verbose"
    );

    // forget: unknown names and another cluster are refused, nothing deleted.
    let (code, _, err) = env.cbk(&["forget", b1, "nope", "--plan", &plan]);
    assert_eq!(code, 1);
    assert!(
        flat(&err).contains("no backup named `nope`") && flat(&err).contains("nothing was deleted"),
        "{err}"
    );
    let (code, _, err) = env.cbk(&["forget", b1, "--plan", &plan, "--cluster", "other"]);
    assert_eq!(code, 1);
    assert!(flat(&err).contains("of cluster other"), "{err}");
    let (code, _, err) = env.cbk(&["forget", "--plan", &plan]);
    assert_eq!(code, 64, "a name is required: {err}");
    let (code, out, _) = env.cbk(&[
        "forget",
        b1,
        b2,
        "--plan",
        &plan,
        "--dry-run",
        "--verbose",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_schema("forget-output.schema.json", &v);
    assert_eq!(v["deleted_backups"], serde_json::json!([b1, b2]));
    assert_eq!(files(&env.store), before, "a dry run deletes nothing");
    let doomed: BTreeSet<String> = v["deleted_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();

    // forget for real: exactly those keys go, and every other backup still verifies.
    let (code, out, err) = env.cbk(&["forget", b1, b2, "--plan", &plan]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{b1}  delete: named")), "{out}");
    let after = files(&env.store);
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(gone, doomed, "forget deleted what its dry run listed");
    assert!(
        gone.iter().any(|k| k.contains("/sst/")),
        "unreferenced components collected"
    );
    let (code, out, _) = env.cbk(&["verify", "--all", "--deep", "--plan", &plan]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified 3 backups: 0 with problems"), "{out}");

    // prune for real with metrics: b4 goes, b3 and b5 stay.
    let (code, out, err) = env.cbk(&["prune", "--plan", &plan, "--metrics-file", &m]);
    assert_eq!(code, 0, "{out}{err}");
    let got = metrics(&metrics_path);
    assert_eq!(got["cbk_prune_deleted_backups{cluster=\"demo\"}"], 1.0);
    assert_eq!(got["cbk_prune_kept_backups{cluster=\"demo\"}"], 2.0);
    assert_eq!(got["cbk_prune_dry_run{cluster=\"demo\"}"], 0.0);
    assert_eq!(got["cbk_complete_backups{cluster=\"demo\"}"], 2.0);
    let (_, out, _) = env.cbk(&["list", "--plan", &plan, "--json"]);
    let left: Vec<String> = json(&out)["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![b3.clone(), b5.clone()]);

    // state: JSON per schema.
    let state = env.states[4].display().to_string();
    let (code, out, err) = env.cbk(&["state", "--state", &state, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_schema("state-output.schema.json", &json(&out));
}

/// The same store copied into moto's S3: ls, verify --all, prune's reasons and forget with its
/// garbage collection work over S3 (`--storage` with `--region`/`--endpoint`/`--path-style`).
#[tokio::test(flavor = "multi_thread")]
async fn ops_cli_ls_verify_all_prune_and_forget_over_s3() {
    use cbk::store::Store;
    let env = backed_up();
    let moto = support::s3::Moto::start();
    let creds = support::s3::S3Server::credentials(&moto);
    let (s3, cfg) = support::s3::open_store(&moto, "repo", |_| {}).await;
    for key in files(&env.store) {
        let bytes = std::fs::read(env.store.join(&key)).unwrap();
        s3.put_bytes(&key, bytes.into()).await.unwrap();
    }
    let url = cfg.url.clone();
    let endpoint = support::s3::S3Server::endpoint(&moto);
    let plan = env.plan_s();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::CBK)
            .args(args)
            .args(["--plan", &plan, "--storage", &url, "--region", "us-east-1"])
            .args(["--endpoint", &endpoint, "--path-style"])
            .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let keys = || async {
        s3.list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect::<BTreeSet<String>>()
    };
    let names: Vec<String> = NOWS.iter().map(|n| name_at(n)).collect();
    let (code, out, err) = run(&["ls", &names[4], "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_schema("ls-output.schema.json", &json(&out));
    let (code, out, err) = run(&["verify", "--all", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["backups"].as_array().unwrap().len(), 5);
    let (code, out, err) = run(&["prune", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("{}  delete: not in any policy", names[3])),
        "{out}"
    );
    let before = keys().await;
    let (code, out, err) = run(&[
        "forget",
        &names[0],
        &names[1],
        "--dry-run",
        "--verbose",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let doomed: BTreeSet<String> = json(&out)["deleted_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys().await, before, "a dry run deletes nothing");
    let (code, _, err) = run(&["forget", &names[0], "nope"]);
    assert_eq!(code, 1);
    assert!(flat(&err).contains("no backup named `nope`"), "{err}");
    let (code, out, err) = run(&["forget", &names[0], &names[1]]);
    assert_eq!(code, 0, "{out}{err}");
    let after = keys().await;
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(gone, doomed);
    assert!(gone.iter().any(|k| k.contains("/sst/")), "{gone:?}");
    let (code, out, err) = run(&["verify", "--all", "--deep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified 3 backups: 0 with problems"), "{out}");
}

/// An incremental lives with its base: prune keeps it for its base (`incremental of BASE`), and
/// forget refuses to delete a base whose incrementals would remain (nothing deleted), but takes
/// both; `--keep-last 1` keeps exactly the newest snapshot and its incremental.
#[test]
fn ops_cli_forget_refuses_to_orphan_incrementals_and_prune_keeps_them_with_their_base() {
    let env = node(&["--incremental-backups"]);
    let plan = env.plan_s();
    let inc_plan = env.dir.join("inc.toml");
    std::fs::write(
        &inc_plan,
        std::fs::read_to_string(&env.plan)
            .unwrap()
            .replace("mode = \"snapshot\"", "mode = \"incremental\""),
    )
    .unwrap();
    let steps = [
        (&env.plan, "2026-12-06T01:00:00Z"),
        (&env.plan, "2026-12-07T01:00:00Z"),
        (&inc_plan, "2026-12-07T06:00:00Z"),
    ];
    for (p, now) in steps {
        env.node.write_flush("shop", "orders", 40);
        let (code, log, _) = plan_and_apply(&env.node.conf, p, now, &env.dir);
        assert_eq!(code, 0, "backup at {now}: {log}");
    }
    let (old, base, inc) = (
        name_at(steps[0].1),
        name_at(steps[1].1),
        name_at(steps[2].1),
    );
    let before = files(&env.store);
    let (code, _, err) = env.cbk(&["forget", &base, "--plan", &plan]);
    assert_eq!(code, 1, "{err}");
    let e = flat(&err);
    assert!(
        says(
            &err,
            &format!("would break its incremental backups `{inc}`")
        ) && e.contains("nothing was deleted"),
        "{err}"
    );
    assert_eq!(files(&env.store), before);
    let (code, out, err) = env.cbk(&["prune", "--plan", &plan, "--keep-last", "1", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("{inc}  keep:   incremental of {base}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{base}  keep:   last 1, daily 2026-12-07, newest")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{old}  keep:   daily 2026-12-06")),
        "{out}"
    );
    let (code, out, err) = env.cbk(&["forget", &base, &inc, "--plan", &plan, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&out)["deleted_backups"],
        serde_json::json!([base, inc])
    );
    let (code, out, _) = env.cbk(&["list", "--plan", &plan, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["backups"].as_array().unwrap().len(), 1);
    let (code, out, _) = env.cbk(&["verify", "--all", "--deep", "--plan", &plan]);
    assert_eq!(code, 0, "{out}");

    // verify --all counts an incomplete backup (a node manifest gone) as a problem: exit 1.
    let c: Catalog = serde_json::from_slice(
        &std::fs::read(env.store.join(format!("catalog/{old}.json"))).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(env.store.join(&c.hosts[0].manifest)).unwrap();
    let (code, out, _) = env.cbk(&["verify", "--all", "--plan", &plan, "--json"]);
    assert_eq!(code, 1, "{out}");
    let v = json(&out);
    assert_schema("verify-output.schema.json", &v);
    assert_eq!(v["problems"], 1);
    let msg = v["backups"][0]["problems"][0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("backup is incomplete: missing node manifest of n1"),
        "{msg}"
    );
}

/// `keep_last = 0` in the plan is refused like `--keep-last 0` (exit 64), before the store is
/// opened.
#[test]
fn ops_cli_keep_last_zero_in_the_plan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("zero.toml");
    let text = std::fs::read_to_string(root().join("plans/nightly-backup.toml"))
        .unwrap()
        .replace("keep_daily = 14\nkeep_weekly = 8\n", "keep_last = 0\n");
    assert!(text.contains("keep_last = 0"));
    std::fs::write(&plan, text).unwrap();
    let (code, _, err) = cbk(
        dir.path(),
        &["prune", "--plan", &plan.display().to_string()],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        flat(&err).contains("keep_last = 0 (in [retention]) is refused"),
        "{err}"
    );
}
