//! The `validate`, `plan` and `show` commands: exit codes, saved plans, and that no secret
//! value (from the environment or written literally in a plan) reaches any output.

use std::path::PathBuf;
use std::process::Command;

const NOW: &str = "2026-11-25T03:00:00Z";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cbk() -> Command {
    let mut c = crate::support::cbk_command();
    c.current_dir(root()).env_remove("CBK_NOW");
    c
}

#[test]
fn validate_exit_codes() {
    let out = cbk()
        .args(["validate", "plans/nightly-backup.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (backup plan, 24 tasks)"));
    let out = cbk()
        .args(["validate", "tests/fixtures/invalid/unknown-top-key.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `retention`?"), "{err}");
    assert!(err.contains("unknown-top-key.toml:4:1"), "{err}");
}

#[test]
fn validate_takes_several_files_and_folders_and_speaks_json_and_github() {
    // A folder: every *.toml in it, each reported; all valid -> 0.
    let out = cbk().args(["validate", "plans"]).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{so}");
    assert!(so.contains("plans/nightly-backup.toml: valid"), "{so}");
    assert!(
        so.lines().filter(|l| l.contains(": valid (")).count() >= 2,
        "{so}"
    );
    // Two files, one invalid: both reported, exit 64, JSON with line/column and a schema.
    let out = cbk()
        .args([
            "validate",
            "plans/nightly-backup.toml",
            "tests/fixtures/invalid/unknown-top-key.toml",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], false);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[0]["kind"], "backup");
    let d = &files[1]["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(
        d["help"]
            .as_str()
            .unwrap()
            .contains("did you mean `retention`?")
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/validate-output.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema");
    assert!(validator.is_valid(&v), "output matches its schema");
    // GitHub annotations: one ::error line per problem, with file, line and column.
    let out = cbk()
        .args([
            "validate",
            "tests/fixtures/invalid/unknown-top-key.toml",
            "--format",
            "github",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        so.starts_with("::error file=tests/fixtures/invalid/unknown-top-key.toml,line=4,col=1,"),
        "{so}"
    );
    // A saved plan (JSON) is named as such, not parsed as 300 TOML errors.
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.json");
    let out = cbk()
        .args(["plan", "plans/nightly-backup.toml", "--out"])
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = cbk().arg("validate").arg(&saved).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a saved plan (JSON); use `cbk show"),
        "{err}"
    );
    assert!(err.lines().count() <= 3, "{err}");
}

#[test]
fn plan_detailed_exitcode_and_saved_plan_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("nightly.plan.json");
    let out = cbk()
        .args([
            "plan",
            "plans/nightly-backup.toml",
            "--detailed-exitcode",
            "--now",
            NOW,
        ])
        .arg("--out")
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let shown = cbk().arg("show").arg(&saved).output().unwrap();
    assert_eq!(shown.status.code(), Some(0));
    let plan_text = String::from_utf8_lossy(&out.stdout);
    let show_text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        plan_text.starts_with(show_text.trim_end()),
        "{plan_text}\n---\n{show_text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["inputs"]["now"], NOW);
    assert_eq!(json["source"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(json["cbk_version"], env!("CARGO_PKG_VERSION"));

    let bad = cbk()
        .args([
            "plan",
            "tests/fixtures/invalid/cycle.toml",
            "--detailed-exitcode",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let bad = cbk()
        .args(["plan", "tests/fixtures/invalid/cycle.toml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
}

#[test]
fn show_refuses_other_format_versions() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.json");
    std::fs::write(&p, r#"{"format_version": 99}"#).unwrap();
    let out = cbk().arg("show").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("format version 99"));
}

#[test]
fn targeting_warns_and_bad_patterns_are_usage_errors() {
    let out = cbk()
        .args([
            "plan",
            "plans/runbook.toml",
            "--target",
            "exec[restart/cass-02]",
            "--now",
            NOW,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Warning: targeting is in effect"), "{text}");
    assert!(text.contains("exec[disable-autocompaction/cass-03]"));
    assert!(!text.contains("exec[restart/cass-03]"));
    let out = cbk()
        .args(["plan", "plans/runbook.toml", "--exclude", "nothing[*]"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn no_secret_value_reaches_any_output() {
    const SECRETS: [&str; 3] = [
        "AKIAQ7SECRETKEYID0001",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETVALUE",
        "SESSIONTOKENSECRET-xyz",
    ];
    let dir = tempfile::tempdir().unwrap();
    for plan in std::fs::read_dir(root().join("plans")).unwrap() {
        let plan = plan.unwrap().path();
        for format in ["human", "json", "markdown", "dot"] {
            let saved = dir.path().join(format!("{format}.json"));
            let out = cbk()
                .env("CBK_AWS_ACCESS_KEY_ID", SECRETS[0])
                .env("CBK_AWS_SECRET_ACCESS_KEY", SECRETS[1])
                .env("AWS_SECRET_ACCESS_KEY", SECRETS[1])
                .env("AWS_SESSION_TOKEN", SECRETS[2])
                .arg("plan")
                .arg(&plan)
                .args(["--format", format, "--now", NOW])
                .arg("--out")
                .arg(&saved)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", plan.display());
            let saved_text = std::fs::read_to_string(&saved).unwrap();
            for s in SECRETS {
                for (what, text) in [
                    ("stdout", String::from_utf8_lossy(&out.stdout).into_owned()),
                    ("stderr", String::from_utf8_lossy(&out.stderr).into_owned()),
                    ("saved plan", saved_text.clone()),
                ] {
                    assert!(!text.contains(s), "secret in {what} of {}", plan.display());
                }
            }
        }
    }
    // A secret written literally in a plan is refused, and the diagnostic masks it.
    let out = cbk()
        .args(["plan", "tests/fixtures/invalid/literal-secret.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("literal secrets are not allowed"), "{err}");
    assert!(!err.contains("wJalrXUtnFEMI"), "{err}");
    assert!(err.contains("*****"), "{err}");
    // The secret itself given where a variable name belongs is refused and masked too.
    let out = cbk()
        .args(["plan", "tests/fixtures/invalid/bad-env-name.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not an environment variable name"), "{err}");
    assert!(!err.contains("my secret value"), "{err}");
}

/// A folder that holds no repository marker is "not a cbk repository" (exit 1) for list, verify
/// and prune, not an empty repository; a marker of a newer format is refused by name.
#[test]
fn store_commands_refuse_a_folder_that_is_no_repository() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    for args in [
        vec!["list", "--storage", &url],
        vec!["verify", "--storage", &url],
        vec!["prune", "--storage", &url, "--dry-run", "--keep-last", "1"],
    ] {
        let out = cbk().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "cbk {args:?}: {err}");
        assert!(err.contains("not a cbk repository"), "cbk {args:?}: {err}");
    }
    std::fs::write(
        dir.path().join("cbk-repository.json"),
        r#"{"format": "cbk-repository", "version": 99}"#,
    )
    .unwrap();
    let out = cbk().args(["list", "--storage", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("format version 99"), "{err}");
    std::fs::write(
        dir.path().join("cbk-repository.json"),
        r#"{"format": "cbk-repository", "version": 1}"#,
    )
    .unwrap();
    let out = cbk().args(["list", "--storage", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
