//! Reviewing a plan in a pull request (issue 14, item 10): the Settings block of the views,
//! `cbk plan --compare BASE`, `latest` said as resolved at apply, local clean-up that is no
//! deletion, the apply confirmation showing the plan view, and the GitHub Actions example run
//! for real against a git repository.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

const NOW: &str = "2026-11-25T03:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cbk under test (`REVIEW_CLI_CBK` names another binary, e.g. an older build, to show a
/// test failing before a change).
fn bin() -> PathBuf {
    std::env::var_os("REVIEW_CLI_CBK")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cbk")), PathBuf::from)
}

fn cbk() -> Command {
    let mut c = Command::new(bin());
    c.current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("CBK_NOW");
    c
}

fn stdout(c: &mut Command) -> (Option<i32>, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn nightly() -> String {
    std::fs::read_to_string(root().join("plans/nightly-backup.toml")).unwrap()
}

/// The nightly plan with daily retention 1, another bucket and cass-03 replaced by cass-04.
fn changed_nightly() -> String {
    let src = nightly();
    let out = src
        .replace("keep_daily = 14", "keep_daily = 1")
        .replace("acme-cassandra-backups", "other-bucket")
        .replace(
            r#"{ name = "cass-03", address = "10.20.1.13""#,
            r#"{ name = "cass-04", address = "10.20.1.14""#,
        );
    assert_ne!(src, out);
    out
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn markdown(path: &Path) -> String {
    let (code, out, err) = stdout(
        cbk()
            .args(["plan", "--now", NOW, "--format", "markdown"])
            .arg(path),
    );
    assert_eq!(code, Some(0), "{err}");
    out
}

#[test]
fn markdown_shows_the_settings_a_reviewer_checks() {
    let dir = tempfile::tempdir().unwrap();
    let restore = write(
        dir.path(),
        "restore.toml",
        r#"version = 1
kind = "restore"
[cluster]
name = "prod"
hosts = ["n1", "n2"]
[storage]
url = "s3://bucket-a/prod"
region = "eu-west-1"
sse = "AES256"
[restore]
source = "latest"
method = "import"
include = ["shop.*"]
[restore.host_map]
old1 = "n1"
old2 = "n2"
"#,
    );
    let md = markdown(&restore);
    // `grep -c 'shop\.\*'` on the comment.
    assert!(
        md.lines().filter(|l| l.contains("shop.*")).count() > 0,
        "{md}"
    );
    for row in [
        "| `storage.url` | `s3://bucket-a/prod` |",
        "| `storage.sse` | `AES256` |",
        "| `restore.method` | `import` |",
        "| `restore.include` | `shop.*` |",
        "| `restore.host_map.old1` | `n1` |",
        "| `restore.source` | `latest (resolved at apply)` |",
        "| `limits.parallelism` | `10` |",
    ] {
        assert!(md.contains(row), "no `{row}` in:\n{md}");
    }

    // A pull request changing the retention or the bucket changes the comment's settings.
    let base = write(dir.path(), "nightly.toml", &nightly());
    let fewer = write(
        dir.path(),
        "nightly.toml.new",
        &nightly().replace("keep_daily = 14", "keep_daily = 1"),
    );
    let bucket = write(
        dir.path(),
        "nightly.toml.bucket",
        &nightly().replace("acme-cassandra-backups", "other-bucket"),
    );
    let (a, b, c) = (markdown(&base), markdown(&fewer), markdown(&bucket));
    assert!(a.contains("| `retention.keep_daily` | `14` |"), "{a}");
    assert!(b.contains("| `retention.keep_daily` | `1` |"), "{b}");
    assert!(a.contains("| `storage.url` | `s3://acme-cassandra-backups/prod-eu` |"));
    assert!(
        c.contains("| `storage.url` | `s3://other-bucket/prod-eu` |"),
        "{c}"
    );
    assert!(a.contains("| `backup.codec` | `zstd:3` |"));
    assert!(a.contains("| `storage.sse` | `aws:kms` |"));
    assert!(a.contains(
        "| `templates.backup.name` | `{{ cluster }}-{{ now \\| strftime(\"%Y%m%dT%H%MZ\") }}` |"
    ));
    // The human view has the same block.
    let (_, human, _) = stdout(cbk().args(["plan", "--now", NOW]).arg(&fewer));
    assert!(
        human
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["retention.keep_daily", "1"]),
        "{human}"
    );
}

#[test]
fn compare_shows_a_terraform_style_diff_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "base.toml", &nightly());
    let new = write(dir.path(), "new.toml", &changed_nightly());
    let run = |format: &str, extra: &[&str]| {
        stdout(
            cbk()
                .args(["plan", "--now", NOW, "--format", format])
                .arg(&new)
                .arg("--compare")
                .arg(&base)
                .args(extra),
        )
    };
    let expected = [
        "~ retention.keep_daily: 14 → 1",
        "~ storage.url: s3://acme-cassandra-backups/prod-eu → s3://other-bucket/prod-eu",
        "+ upload[cass-04/shop.*]",
        "- upload[cass-03/shop.*]",
        "- clear_snapshot[cass-03]",
    ];
    let (code, human, err) = run("human", &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, md, _) = run("markdown", &[]);
    assert_eq!(code, Some(0));
    for line in expected {
        assert!(
            human.lines().any(|l| l.trim() == line),
            "no `{line}` in:\n{human}"
        );
        assert!(md.lines().any(|l| l == line), "no `{line}` in:\n{md}");
    }
    // Unchanged tasks are not in the diff.
    assert!(
        !human
            .lines()
            .any(|l| l.trim() == "+ upload[cass-01/shop.*]")
    );
    assert!(md.contains("```diff\n"));
    assert!(md.contains(&format!("#### Changes against `{}`", base.display())));
    assert_eq!(md.matches("### cbk plan:").count(), 1, "{md}");
    assert!(
        human.contains("tasks 7 added, 7 removed, 1 changed."),
        "{human}"
    );

    let (code, json, _) = run("json", &[]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/plan-compare.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "the comparison breaks its schema: {errors:?}"
    );
    let keep = v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "retention.keep_daily")
        .unwrap();
    assert_eq!(keep["change"], "changed");
    assert_eq!(
        (keep["old"].as_str(), keep["new"].as_str()),
        (Some("14"), Some("1"))
    );
    assert!(
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["address"] == "upload[cass-04/shop.*]" && t["change"] == "added")
    );

    // --detailed-exitcode keeps its meaning (2: tasks pending), with or without --compare.
    assert_eq!(run("human", &["--detailed-exitcode"]).0, Some(2));
    // The same plan: no changes.
    let (code, same, _) = stdout(
        cbk()
            .args(["plan", "--now", NOW])
            .arg(&base)
            .arg("--compare")
            .arg(&base),
    );
    assert_eq!(code, Some(0));
    assert!(same.contains("No changes against"), "{same}");
    // DOT has no diff form: a usage error.
    assert_eq!(run("dot", &[]).0, Some(64));
}

#[test]
fn compare_takes_a_saved_plan_no_base_or_refuses_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    // A saved plan written by cbk before this change (clear_snapshot was then `delete`),
    // planned a day earlier: only the backup name differs.
    let saved = root().join("tests/fixtures/saved/nightly-backup.v1.plan.json");
    let (code, out, err) = stdout(
        cbk()
            .args([
                "plan",
                "plans/nightly-backup.toml",
                "--now",
                "2026-11-26T03:00:00Z",
            ])
            .arg("--compare")
            .arg(&saved),
    );
    assert_eq!(code, Some(0), "{err}");
    let changes: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Changes against"))
        .map(str::trim)
        .filter(|l| l.starts_with(['~', '+', '-']))
        .collect();
    assert_eq!(
        changes,
        ["~ backup.name: prod-eu-20261125T0300Z → prod-eu-20261126T0300Z"],
        "{out}"
    );

    let empty = write(dir.path(), "empty.toml", "");
    let (code, out, _) = stdout(
        cbk()
            .args([
                "plan",
                "plans/restore-keyspace.toml",
                "--format",
                "markdown",
            ])
            .arg("--compare")
            .arg(&empty),
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("#### Changes against `no base`"), "{out}");
    assert!(out.lines().any(|l| l == "+ resolve"), "{out}");

    let (code, _, err) = stdout(
        cbk()
            .args(["plan", "plans/nightly-backup.toml", "--compare"])
            .arg(root().join("tests/fixtures/invalid/unknown-top-key.toml")),
    );
    assert_eq!(code, Some(64));
    assert!(err.contains("the base plan"), "{err}");
    assert!(err.contains("did you mean `retention`?"), "{err}");
    let (code, _, err) = stdout(
        cbk()
            .args(["plan", "plans/nightly-backup.toml", "--compare"])
            .arg(dir.path().join("missing.toml")),
    );
    assert_eq!(code, Some(64));
    assert!(err.contains("cannot read the base plan"), "{err}");
}

#[test]
fn clear_snapshot_is_local_clean_up_not_a_deletion() {
    let (code, human, _) = stdout(cbk().args(["plan", "plans/nightly-backup.toml", "--now", NOW]));
    assert_eq!(code, Some(0));
    assert!(
        human.contains(
            "Plan: 24 to run (3 local clean-ups), 0 already satisfied, 0 disruptive, 0 to delete."
        ),
        "{human}"
    );
    let line = human
        .lines()
        .find(|l| l.contains("clear_snapshot[cass-01]"))
        .unwrap();
    assert!(line.trim_start().starts_with("+ "), "{line}");
    assert!(line.ends_with("(local snapshot clean-up)"), "{line}");
    let md = markdown(&root().join("plans/nightly-backup.toml"));
    assert!(!md.contains("#### Deletions"), "{md}");
    assert!(
        md.contains("Local clean-up (3 tasks: `clear_snapshot`)"),
        "{md}"
    );
    let (_, json, _) = stdout(cbk().args([
        "plan",
        "plans/nightly-backup.toml",
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["summary"]["to_delete"], 0);
    assert_eq!(v["summary"]["cleanup"], 3);
    let actions: Vec<&str> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "clear_snapshot")
        .map(|t| t["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["run", "run", "run"]);
    // A saved plan of an earlier cbk (clear_snapshot `delete`) loads and reads the same way.
    let (code, shown, err) = stdout(
        cbk()
            .arg("show")
            .arg("tests/fixtures/saved/nightly-backup.v1.plan.json"),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(shown.contains("(3 local clean-ups)"), "{shown}");
    assert!(shown.contains("0 to delete."), "{shown}");
    // A restore's staging clean-up is said so as well.
    let (_, restore, _) = stdout(cbk().args(["plan", "plans/restore-keyspace.toml"]));
    assert!(restore.contains("(local staging clean-up)"), "{restore}");
}

#[test]
fn latest_is_resolved_at_apply_in_every_view() {
    for format in ["human", "markdown", "dot"] {
        let (code, out, _) =
            stdout(cbk().args(["plan", "plans/restore-new-cluster.toml", "--format", format]));
        assert_eq!(code, Some(0), "{format}");
        assert!(out.contains("resolved at apply"), "{format}:\n{out}");
    }
}

#[test]
fn apply_confirmation_shows_the_plan_view() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write(
        dir.path(),
        "hello.toml",
        r#"version = 1
kind = "runbook"
description = "say hello"
[cluster]
name = "c"
hosts = ["localhost"]
[connection]
transport = "local"
[[step]]
name = "hello"
on = "controller"
run = "true"
"#,
    );
    let (code, planned, err) = stdout(cbk().args(["plan", "--now", NOW]).arg(&plan));
    assert_eq!(code, Some(0), "{err}");
    let (code, applied, err) = stdout(
        cbk()
            .args(["apply", "--yes", "--progress", "none", "--now", NOW])
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg(&plan)
            .timeout(std::time::Duration::from_secs(60)),
    );
    assert_eq!(code, Some(0), "{applied}\n{err}");
    assert!(
        applied.contains(planned.trim_end()),
        "the confirmation screen is not the plan view:\n{applied}\n---\n{planned}"
    );
    assert!(applied.contains("Settings:"), "{applied}");
}

/// The `run:` script of a step of the example workflow.
fn workflow_step(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples/github-actions/cbk-plan-review.yml"))
        .unwrap();
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let steps = v["jobs"]["plan"]["steps"].as_sequence().unwrap();
    steps
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
        .and_then(|s| s["run"].as_str())
        .unwrap_or_else(|| panic!("no step `{name}` with a script"))
        .to_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn github_workflow_posts_diagnostics_and_one_diff_per_plan() {
    let script = workflow_step("Validate and plan the changed plans");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    std::fs::create_dir(repo.join("plans")).unwrap();
    write(repo, "plans/nightly.toml", &nightly());
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "base"]);
    let base = git(repo, &["rev-parse", "HEAD"]);
    write(repo, "plans/nightly.toml", &changed_nightly());
    std::fs::copy(
        root().join("plans/runbook.toml"),
        repo.join("plans/runbook.toml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/fixtures/invalid/unknown-top-key.toml"),
        repo.join("plans/broken.toml"),
    )
    .unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "change"]);
    let head = git(repo, &["rev-parse", "HEAD"]);

    let bin_dir = bin().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(repo)
        .env("PATH", path)
        .env("BASE", &base)
        .env("GITHUB_SHA", &head)
        .env("NO_COLOR", "1")
        .env_remove("CBK_NOW")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Annotations for the invalid plan, on the step's output.
    assert!(
        stdout.contains("::error file=plans/broken.toml"),
        "{stdout}"
    );
    let comment = std::fs::read_to_string(repo.join("out/comment.md")).unwrap();
    assert_eq!(
        std::fs::read_to_string(repo.join("out/status"))
            .unwrap()
            .trim(),
        "1"
    );
    // The invalid plan's diagnostics are in the comment.
    assert!(comment.contains("did you mean `retention`?"), "{comment}");
    // One heading per plan and one for the comment.
    assert_eq!(comment.matches("## cbk plans for").count(), 1, "{comment}");
    for f in [
        "plans/nightly.toml",
        "plans/runbook.toml",
        "plans/broken.toml",
    ] {
        assert_eq!(
            comment.matches(&format!("### cbk plan: `{f}`")).count(),
            1,
            "{f}:\n{comment}"
        );
    }
    let headings: Vec<&str> = comment.lines().filter(|l| l.starts_with('#')).collect();
    let mut unique = headings.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        headings.iter().filter(|h| !h.starts_with("####")).count(),
        unique.iter().filter(|h| !h.starts_with("####")).count(),
        "{headings:?}"
    );
    // The diff against the base branch, and the settings.
    assert!(
        comment
            .lines()
            .any(|l| l == "~ retention.keep_daily: 14 → 1"),
        "{comment}"
    );
    assert!(comment.lines().any(|l| l == "+ upload[cass-04/shop.*]"));
    assert!(
        comment.contains("#### Changes against `no base`"),
        "{comment}"
    );
    assert!(comment.contains("| `storage.url` | `s3://other-bucket/prod-eu` |"));
    assert!(repo.join("out/nightly.plan.json").is_file());
    assert!(!repo.join("out/broken.plan.json").exists());
}

#[test]
fn no_secret_value_reaches_the_settings_or_the_comparison() {
    const SECRETS: [&str; 2] = [
        "AKIAQ7SECRETKEYID0001",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETVALUE",
    ];
    let dir = tempfile::tempdir().unwrap();
    // No base: every setting is listed as added.
    let empty = write(dir.path(), "empty.toml", "\n");
    for plan in std::fs::read_dir(root().join("plans")).unwrap() {
        let plan = plan.unwrap().path();
        for format in ["human", "json", "markdown"] {
            let (code, out, err) = stdout(
                cbk()
                    .env("CBK_AWS_ACCESS_KEY_ID", SECRETS[0])
                    .env("CBK_AWS_SECRET_ACCESS_KEY", SECRETS[1])
                    .env("AWS_SECRET_ACCESS_KEY", SECRETS[1])
                    .arg("plan")
                    .arg(&plan)
                    .args(["--format", format, "--compare"])
                    .arg(&empty),
            );
            assert_eq!(code, Some(0), "{}: {err}", plan.display());
            assert!(out.contains("cluster.name"), "{out}");
            for s in SECRETS {
                assert!(!out.contains(s) && !err.contains(s), "{}", plan.display());
            }
        }
    }
}

#[test]
fn a_large_comparison_stays_under_the_comment_limit() {
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = (0..400).map(|i| format!("\"node-{i:04}\"")).collect();
    let map: Vec<String> = (0..400)
        .map(|i| format!("\"old-{i:04}\" = \"node-{i:04}\""))
        .collect();
    let plan = write(
        dir.path(),
        "big.toml",
        &format!(
            "version = 1\nkind = \"restore\"\n[cluster]\nname = \"big\"\nhosts = [{}]\n[storage]\nurl = \"file:///b\"\n[restore]\nsource = \"latest\"\n[restore.host_map]\n{}\n",
            hosts.join(","),
            map.join("\n")
        ),
    );
    let empty = write(dir.path(), "empty.toml", "");
    let (code, md, err) = stdout(
        cbk()
            .args(["plan", "--format", "markdown"])
            .arg(&plan)
            .arg("--compare")
            .arg(&empty),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(md.chars().count() < 65_535, "{}", md.len());
    assert!(md.contains("more changes (run cbk plan --compare locally)"));
    assert!(md.contains("… and 388 more (see the JSON plan)"), "{md}");
    assert!(md.trim_end().ends_with("</details>"));
    // The diff block is closed before the settings.
    let diff = md.split("```diff\n").nth(1).unwrap();
    assert!(
        diff.split("```\n")
            .nth(1)
            .unwrap()
            .contains("#### Settings")
    );
}
