//! `cbk validate`: check plan files and report every problem with file:line:column, for people
//! (miette), scripts (JSON) or CI (GitHub Actions annotations).

use crate::error::exit;
use crate::graph::{PlanError, compile_source};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Output of `cbk validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateFormat {
    /// Diagnostics with the source line and a caret (stderr), one line per valid file.
    Human,
    /// One JSON document on stdout (schemas/validate-output.schema.json).
    Json,
    /// GitHub Actions annotations (`::error file=…,line=…,col=…::…`) on stdout.
    Github,
}

/// Arguments of `cbk validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plan files (TOML), or folders: every `*.toml` directly in them.
    #[arg(value_name = "FILE|DIR", required = true)]
    pub files: Vec<PathBuf>,
    /// Capture this time as `now` (RFC 3339) instead of the clock.
    #[arg(long, env = "CBK_NOW", value_name = "TIME")]
    pub now: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
    pub format: ValidateFormat,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

/// Parses `--now`, or the current time.
pub(crate) fn parse_now(now: Option<&str>) -> miette::Result<jiff::Timestamp> {
    match now {
        Some(t) => t
            .parse()
            .map_err(|e| miette::miette!("`--now {t}` is not an RFC 3339 time: {e}")),
        None => Ok(jiff::Timestamp::now()),
    }
}

/// Reads a plan file (the error becomes a report).
pub(crate) fn read_plan(path: &std::path::Path) -> miette::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| miette::miette!("cannot read plan file `{}`: {e}", path.display()))
}

/// Prints diagnostics to stderr (colour only on a terminal without `NO_COLOR`).
pub(crate) fn print_diagnostics(err: &PlanError) {
    match err {
        PlanError::Invalid(d) => {
            let color = crate::render::want_color(std::io::stderr().is_terminal());
            eprint!("{}", d.render(100, color));
        }
        other => eprintln!("error: {other}"),
    }
}

/// Whether `src` is a saved plan (the JSON `cbk plan --out` writes) rather than a TOML plan.
pub(crate) fn is_saved_plan(src: &str) -> bool {
    src.trim_start().starts_with('{')
        && serde_json::from_str::<serde_json::Value>(src)
            .is_ok_and(|v| v.get("format_version").is_some() && v.get("tasks").is_some())
}

/// One problem, positioned.
#[derive(Debug, Serialize)]
struct Problem {
    line: Option<usize>,
    column: Option<usize>,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<String>,
}

/// The verdict on one file.
#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<usize>,
    diagnostics: Vec<Problem>,
    /// Human rendering of the diagnostics (not in JSON).
    #[serde(skip)]
    rendered: Option<String>,
}

/// The files named on the command line, folders expanded to their `*.toml` (sorted).
fn expand(paths: &[PathBuf]) -> miette::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| miette::miette!("cannot read folder `{}`: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                .collect();
            if found.is_empty() {
                return Err(miette::miette!(
                    "no *.toml plan in folder `{}`",
                    p.display()
                ));
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn check_file(path: &Path, now: jiff::Timestamp) -> FileReport {
    let name = path.display().to_string();
    let failed = |message: String| FileReport {
        file: name.clone(),
        valid: false,
        kind: None,
        tasks: None,
        rendered: Some(format!("error: {message}\n")),
        diagnostics: vec![Problem {
            line: None,
            column: None,
            message,
            label: None,
            help: None,
        }],
    };
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot read plan file `{name}`: {e}")),
    };
    if is_saved_plan(&src) {
        return failed(format!(
            "`{name}` is a saved plan (JSON); use `cbk show {name}` to review it (validate checks TOML plans)"
        ));
    }
    match compile_source(&name, &src, now) {
        Ok(run) => FileReport {
            file: name,
            valid: true,
            kind: serde_json::to_value(run.plan.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
            tasks: Some(run.tasks.len()),
            diagnostics: Vec::new(),
            rendered: None,
        },
        Err(PlanError::Invalid(d)) => {
            let color = crate::render::want_color(std::io::stderr().is_terminal());
            FileReport {
                file: name,
                valid: false,
                kind: None,
                tasks: None,
                rendered: Some(d.render(100, color)),
                diagnostics: d
                    .items
                    .iter()
                    .map(|p| {
                        let pos = p.line_col();
                        Problem {
                            line: pos.map(|x| x.0),
                            column: pos.map(|x| x.1),
                            message: p.message.clone(),
                            label: Some(p.label_text.clone()),
                            help: p.help.clone(),
                        }
                    })
                    .collect(),
            }
        }
        Err(other) => failed(other.to_string()),
    }
}

/// `%`, CR, LF (and in properties `:` and `,`) escaped as GitHub's workflow commands want.
fn gh_escape(s: &str, property: bool) -> String {
    let mut out = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

/// Runs `cbk validate`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let now = parse_now(args.now.as_deref())?;
    let format = if args.json {
        ValidateFormat::Json
    } else {
        args.format
    };
    let reports: Vec<FileReport> = expand(&args.files)?
        .iter()
        .map(|f| check_file(f, now))
        .collect();
    let valid = reports.iter().all(|r| r.valid);
    match format {
        ValidateFormat::Human => {
            for r in &reports {
                match (&r.rendered, r.valid) {
                    (_, true) => println!(
                        "{}: valid ({} plan, {} tasks)",
                        r.file,
                        r.kind.as_deref().unwrap_or_default(),
                        r.tasks.unwrap_or(0)
                    ),
                    (Some(text), false) => eprint!("{text}"),
                    (None, false) => {}
                }
            }
        }
        ValidateFormat::Json => {
            let doc = serde_json::json!({ "format_version": 1, "valid": valid, "files": reports });
            println!("{doc:#}");
        }
        ValidateFormat::Github => {
            for r in &reports {
                for p in &r.diagnostics {
                    let mut props = format!("file={}", gh_escape(&r.file, true));
                    if let (Some(l), Some(c)) = (p.line, p.column) {
                        props.push_str(&format!(",line={l},col={c}"));
                    }
                    let mut msg = p.message.clone();
                    if let Some(h) = &p.help {
                        msg.push_str(&format!(" (help: {h})"));
                    }
                    println!(
                        "::error {props},title={}::{}",
                        gh_escape("cbk validate", true),
                        gh_escape(&msg, false)
                    );
                }
            }
        }
    }
    Ok(if valid { exit::OK } else { exit::USAGE })
}
