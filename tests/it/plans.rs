//! Plan files end to end: every file in plans/ and examples/ compiles, and its human, JSON,
//! Markdown and DOT views are snapshot-tested; every broken plan in tests/fixtures/invalid/
//! yields its expected diagnostic at the expected line:column; the committed JSON Schemas are
//! current; targeting and the CLI's exit codes behave.

use cbk::cli::completions::json_schemas;
use cbk::graph::run::PlannedRun;
use cbk::graph::{PlanError, compile_source};
use cbk::render;
use std::path::{Path, PathBuf};

const NOW: &str = "2026-11-25T03:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn compile(path: &Path) -> Result<PlannedRun, PlanError> {
    // Example plans carry placeholders that examples/*/run replaces with real paths.
    let src = std::fs::read_to_string(path)
        .unwrap()
        .replace("@DEMO@", "/srv/cbk-demo")
        .replace("@EMU@", "/opt/cbk-emu");
    let mut run = compile_source(&rel(path), &src, NOW.parse().unwrap())?;
    run.cbk_version = "[version]".into();
    Ok(run)
}

#[test]
fn every_plan_renders_in_every_format() {
    insta::glob!(root(), "{plans/*.toml,examples/**/*.toml}", |path| {
        let run = match compile(path) {
            Ok(r) => r,
            Err(PlanError::Invalid(d)) => panic!("{}", d.render(100, false)),
            Err(e) => panic!("{e}"),
        };
        let opts = render::HumanOptions::default();
        insta::assert_snapshot!("human", render::human(&run, opts));
        insta::assert_snapshot!("json", render::json(&run));
        let md = render::markdown(&run);
        assert!(md.chars().count() < render::MARKDOWN_LIMIT);
        insta::assert_snapshot!("markdown", md);
        let dot = render::dot(&run);
        check_dot(&dot);
        insta::assert_snapshot!("dot", dot);
        // The saved plan reads back to the same value.
        let back: PlannedRun = serde_json::from_str(&render::json(&run)).unwrap();
        assert_eq!(back, run);
        // Every dependency is earlier in the list (topological order).
        let mut seen = std::collections::HashSet::new();
        for t in &run.tasks {
            for a in &t.after {
                assert!(seen.contains(a), "{} runs after later task {a}", t.address);
            }
            assert!(seen.insert(t.address.clone()), "duplicate {}", t.address);
        }
    });
}

/// Graphviz must accept the DOT (skipped only when `dot` is not installed).
fn check_dot(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("graphviz `dot` not found; DOT syntax not checked");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot -Tsvg rejected the graph: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

#[test]
fn invalid_plans_report_the_expected_diagnostic() {
    let mut count = 0;
    insta::glob!(root(), "tests/fixtures/invalid/*.toml", |path| {
        count += 1;
        let src = std::fs::read_to_string(path).unwrap();
        // First line: `# expect: LINE:COL message fragment`.
        let expect = src
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks a `# expect:` line", path.display()));
        let (pos, fragment) = expect.split_once(' ').unwrap();
        let (line, col) = pos.split_once(':').unwrap();
        let want: (usize, usize) = (line.parse().unwrap(), col.parse().unwrap());
        let name = format!("invalid/{}", path.file_name().unwrap().to_string_lossy());
        let err = match compile_source(&name, &src, NOW.parse().unwrap()) {
            Ok(_) => panic!("{} compiled but should not", path.display()),
            Err(PlanError::Invalid(d)) => d,
            Err(e) => panic!("{}: unexpected error {e}", path.display()),
        };
        let hit = err
            .items
            .iter()
            .find(|d| d.message.contains(fragment))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no diagnostic contains `{fragment}`:\n{}",
                    path.display(),
                    err.render(100, false)
                )
            });
        assert_eq!(
            hit.line_col(),
            Some(want),
            "{}: `{}` at the wrong place",
            path.display(),
            hit.message
        );
        insta::assert_snapshot!("diagnostic", err.render(100, false));
    });
    assert!(count >= 30, "only {count} broken plans in the corpus");
}

#[test]
fn all_independent_errors_are_reported_at_once() {
    let src = r#"version = 1
kind = "backup"
[cluster]
name = "c"
hosts = ["a"]
[storage]
url = "s3://bucket-x/p"
regoin = "eu-west-1"
[backup]
name = 'x-{{ now | strftime("%U") }}'
[limits]
parallelism = "ten"
[[step]]
name = "s"
run = "true"
after = ["nothing"]
"#;
    let Err(PlanError::Invalid(d)) = compile_source("p.toml", src, NOW.parse().unwrap()) else {
        panic!("should fail");
    };
    let got: Vec<(String, Option<(usize, usize)>)> = d
        .items
        .iter()
        .map(|i| (i.message.clone(), i.line_col()))
        .collect();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(got[0].1, Some((8, 1)));
    assert!(got[0].0.contains("regoin"));
    assert_eq!(got[1].1, Some((10, 8)));
    assert_eq!(got[2].1, Some((12, 15)));
    assert_eq!(got[3].1, Some((16, 10)));
    assert!(got[3].0.contains("nothing"));
}

#[test]
fn committed_schemas_are_current() {
    for (name, text) in json_schemas() {
        let path = root().join("schemas").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is stale: run `cargo run -- schema schemas` and commit the result",
            path.display()
        );
    }
}

#[test]
fn plans_and_saved_plans_validate_against_the_schemas() {
    let schemas: std::collections::HashMap<_, _> = json_schemas().into_iter().collect();
    let plan_schema: serde_json::Value =
        serde_json::from_str(&schemas["plan.schema.json"]).unwrap();
    let out_schema: serde_json::Value =
        serde_json::from_str(&schemas["plan-output.schema.json"]).unwrap();
    let plan_v = jsonschema::validator_for(&plan_schema).unwrap();
    let out_v = jsonschema::validator_for(&out_schema).unwrap();
    for entry in std::fs::read_dir(root().join("plans")).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let as_json: serde_json::Value = toml::from_str(&src).unwrap();
        let errors: Vec<String> = plan_v
            .iter_errors(&as_json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let run = compile(&path).unwrap();
        let out = serde_json::to_value(&run).unwrap();
        let errors: Vec<String> = out_v.iter_errors(&out).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

#[test]
fn targeting_keeps_dependencies_and_excluding_drops_dependents() {
    use cbk::graph::select::{SelectError, TARGETING_WARNING, select};
    let run = compile(&root().join("plans/nightly-backup.toml")).unwrap();
    let t = select(run.clone(), &["manifest[cass-02]".into()], &[]).unwrap();
    let addrs: Vec<&str> = t.tasks.iter().map(|t| t.address.as_str()).collect();
    assert!(addrs.contains(&"probe[cass-02]"));
    assert!(addrs.contains(&"upload[cass-02/accounts.users]"));
    assert!(addrs.contains(&"exec[notify-start]"));
    assert!(!addrs.iter().any(|a| a.contains("cass-01")));
    assert!(!addrs.contains(&"catalog"));
    assert_eq!(t.warnings, vec![TARGETING_WARNING.to_string()]);
    assert_eq!(t.summary.to_run, t.tasks.len());

    let e = select(run.clone(), &[], &["upload[cass-01/*]".into()]).unwrap();
    let addrs: Vec<&str> = e.tasks.iter().map(|t| t.address.as_str()).collect();
    assert!(!addrs.iter().any(|a| a.starts_with("upload[cass-01/")));
    assert!(!addrs.contains(&"manifest[cass-01]"));
    assert!(
        !addrs.contains(&"catalog"),
        "catalog depends on every manifest"
    );
    assert!(!addrs.contains(&"exec[notify-done]"));
    assert!(addrs.contains(&"manifest[cass-02]"));
    assert!(addrs.contains(&"snapshot[cass-01]"));
    for t in &e.tasks {
        for a in &t.after {
            assert!(addrs.contains(&a.as_str()), "dangling {a}");
        }
    }
    assert_eq!(
        select(run, &["nope[*]".into()], &[]).unwrap_err(),
        SelectError::NoMatch("nope[*]".into())
    );
}

#[test]
fn restart_method_is_the_node_restart_dag() {
    let run = compile(&root().join("plans/restore-keyspace.toml")).unwrap();
    let task = |a: &str| run.tasks.iter().find(|t| t.address == a).unwrap();
    // Barrier: no node stops before every node fetched and matched (here via the drain step).
    let drain = task("exec[drain/cass-02]");
    for h in ["cass-01", "cass-02", "cass-03"] {
        assert!(drain.after.contains(&format!("match_tables[{h}]")));
    }
    let stop = &task("stop[cass-02]").after;
    assert_eq!(stop.len(), 4, "{stop:?}");
    assert_eq!(stop.last().unwrap(), "exec[drain/cass-02]");
    assert_eq!(
        task("clear_commitlog[cass-02]").after,
        vec!["stop[cass-02]"]
    );
    assert_eq!(
        task("move[cass-02]").after,
        vec!["clear_commitlog[cass-02]"]
    );
    assert_eq!(task("start[cass-02]").after.len(), 3);
    assert_eq!(
        task("repair[cass-02]").after.last().unwrap(),
        "repair[cass-01]"
    );
    assert_eq!(task("repair[cass-02]").step_limit, Some(1));
    assert!(task("stop[cass-01]").disruptive);
    assert!(!task("fetch[cass-01]").disruptive);
    assert_eq!(task("cleanup[cass-03]").after, vec!["repair[cass-03]"]);

    assert!(
        !run.tasks
            .iter()
            .any(|t| t.address.starts_with("rebuild_index["))
    );

    // A legacy source: the indexes are rebuilt after wait_up, one host at a time, before repair.
    let src = std::fs::read_to_string(root().join("plans/restore-keyspace.toml"))
        .unwrap()
        .replace(
            "source = 'latest-before:2026-11-25T04:00:00Z'",
            "source = 'legacy:webapp_prod/20161223'",
        );
    let legacy = compile_source("legacy.toml", &src, NOW.parse().unwrap()).unwrap();
    let task = |a: &str| legacy.tasks.iter().find(|t| t.address == a).unwrap();
    assert_eq!(
        task("rebuild_index[cass-01]").after,
        vec!["wait_up[cass-01]"]
    );
    assert_eq!(
        task("rebuild_index[cass-02]").after,
        vec!["wait_up[cass-02]", "rebuild_index[cass-01]"]
    );
    assert_eq!(task("rebuild_index[cass-02]").step_limit, Some(1));
    assert!(!task("rebuild_index[cass-02]").disruptive);
    // What it will rebuild, as `cbk plan` shows it: the index names are known at apply.
    let p = task("rebuild_index[cass-02]").spec.params_json();
    assert_eq!(p["include"], serde_json::json!(["shop.*"]));
    assert!(
        p["indexes"]
            .as_str()
            .unwrap()
            .starts_with("found at apply: each index of the included tables"),
        "{p:?}"
    );
    for h in ["cass-01", "cass-02", "cass-03"] {
        assert!(
            task("repair[cass-01]")
                .after
                .contains(&format!("rebuild_index[{h}]"))
        );
    }

    let run = compile(&root().join("plans/restore-new-cluster.toml")).unwrap();
    let import = run
        .tasks
        .iter()
        .find(|t| t.address == "import[stg-02]")
        .unwrap();
    assert_eq!(import.spec.params_json()["source_host"], "cass-02");
    assert!(!run.tasks.iter().any(|t| t.kind().disruptive()));
}

#[test]
fn compiling_is_deterministic() {
    let a = compile(&root().join("plans/nightly-backup.toml")).unwrap();
    let b = compile(&root().join("plans/nightly-backup.toml")).unwrap();
    assert_eq!(render::json(&a), render::json(&b));
    let later = compile_source(
        "x",
        &std::fs::read_to_string(root().join("plans/nightly-backup.toml")).unwrap(),
        "2027-01-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(
        later.inputs.backup_name.as_deref(),
        Some("prod-eu-20270101T0000Z")
    );
    assert_ne!(later.inputs_sha256, a.inputs_sha256);
}

#[test]
fn markdown_is_truncated_under_the_comment_limit() {
    let hosts: Vec<String> = (0..400).map(|i| format!("\"node-{i:04}\"")).collect();
    let src = format!(
        "version = 1\nkind = \"restore\"\n[cluster]\nname = \"big\"\nhosts = [{}]\n[storage]\nurl = \"file:///b\"\n[restore]\nsource = \"latest\"\n",
        hosts.join(",")
    );
    let run = compile_source("big.toml", &src, NOW.parse().unwrap()).unwrap();
    let md = render::markdown(&run);
    assert!(md.chars().count() < render::MARKDOWN_LIMIT, "{}", md.len());
    assert!(md.contains("more disruptive tasks"));
    assert!(md.contains("_Truncated:"));
    assert!(md.trim_end().ends_with("</details>"));
}
