//! The CLI documents itself: every visible subcommand has about text and every argument has help;
//! `--help` works for each; shell completions and the man page mention every subcommand; and
//! the committed docs/cbk.1 is what `cbk man` prints (regenerate with `CBK_UPDATE_MAN=1`).

use crate::support::cbk_command;
use clap::CommandFactory;
use std::path::PathBuf;

fn cli() -> clap::Command {
    let mut cmd = cbk::cli::Cli::command();
    cmd.build();
    cmd
}

/// Names of the visible subcommands (hidden `agent` and `schema` are internal).
fn visible_subcommands() -> Vec<String> {
    cli()
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_owned())
        .collect()
}

/// Every missing about/help in the tree below `cmd`, as `path: what`.
fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path}: argument `{id}` has no help"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(format!("{sub_path}: no about text"));
        }
        missing_help(sub, &sub_path, out);
    }
}

#[test]
fn every_subcommand_and_argument_is_documented() {
    let cmd = cli();
    assert!(cmd.get_about().is_some(), "cbk has no about text");
    let mut missing = Vec::new();
    missing_help(&cmd, "cbk", &mut missing);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    // The commands the README documents are all there.
    let subs = visible_subcommands();
    for name in [
        "validate",
        "plan",
        "show",
        "apply",
        "state",
        "unlock",
        "list",
        "verify",
        "prune",
        "forget",
        "ls",
        "completions",
        "man",
    ] {
        assert!(subs.iter().any(|s| s == name), "missing subcommand {name}");
    }
}

#[test]
fn help_of_every_subcommand_prints() {
    let top = cbk_command().arg("--help").output().unwrap();
    assert!(top.status.success());
    let text = String::from_utf8(top.stdout).unwrap();
    for sub in visible_subcommands() {
        assert!(text.contains(&sub), "`cbk --help` does not list {sub}");
        let out = cbk_command()
            .args([sub.as_str(), "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "`cbk {sub} --help` failed");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains(&format!("Usage: cbk {sub}")),
            "`cbk {sub} --help`:\n{help}"
        );
    }
}

#[test]
fn completions_mention_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = cbk_command().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "completions {shell} failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.len() > 1000, "{shell} completions are too short");
        for sub in visible_subcommands() {
            assert!(text.contains(&sub), "{shell} completions miss {sub}");
        }
        assert!(
            text.contains("detailed-exitcode"),
            "{shell} completions miss plan's options"
        );
    }
}

fn man_page() -> String {
    let out = cbk_command().arg("man").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn man_page_lists_every_subcommand_and_is_committed() {
    let man = man_page();
    assert!(
        man.starts_with(".ie") || man.contains(".TH cbk 1"),
        "not roff"
    );
    for sub in visible_subcommands() {
        assert!(man.contains(&sub), "man page misses {sub}");
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/cbk.1");
    if std::env::var_os("CBK_UPDATE_MAN").is_some() {
        std::fs::write(&path, &man).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == man,
        "docs/cbk.1 is out of date: run `CBK_UPDATE_MAN=1 cargo test --test it cli_help::`"
    );
}

/// Usage errors exit 64 (EX_USAGE), not clap's 2, which `plan --detailed-exitcode` uses for
/// "changes pending"; `--help` and `--version` still exit 0.
#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    for args in [
        vec!["--no-such-flag"],
        vec!["no-such-command"],
        vec!["plan"],
        vec!["plan", "x.toml", "--format", "yaml"],
    ] {
        let out = cbk_command().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "cbk {args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error:") && err.contains("--help"),
            "cbk {args:?} says what is wrong and where help is: {err}"
        );
    }
    for args in [vec!["--help"], vec!["--version"], vec!["plan", "--help"]] {
        let out = cbk_command().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "cbk {args:?}: {out:?}");
        assert!(!out.stdout.is_empty());
    }
}

/// One output flag: `--format human|json` on every command that prints a report, `--json` kept
/// as its alias (`plan`/`show` add markdown and dot, `validate` adds github).
#[test]
fn every_report_command_takes_format_and_the_json_alias() {
    for cmd in [
        "list", "ls", "verify", "prune", "forget", "state", "validate", "plan", "show",
    ] {
        let sub = cli()
            .find_subcommand(cmd)
            .unwrap_or_else(|| panic!("no `{cmd}`"))
            .clone();
        let format = sub
            .get_arguments()
            .find(|a| a.get_id() == "format")
            .unwrap_or_else(|| panic!("`cbk {cmd}` has no --format"));
        let values: Vec<String> = format
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        assert!(
            values.iter().any(|v| v == "human") && values.iter().any(|v| v == "json"),
            "`cbk {cmd} --format` takes {values:?}"
        );
        if !matches!(cmd, "plan" | "show") {
            assert!(
                sub.get_arguments().any(|a| a.get_id() == "json"),
                "`cbk {cmd}` keeps --json"
            );
        }
    }
}
