//! `cbk validate`: check a plan file and report every problem with file:line:column.

use crate::error::exit;
use crate::plan::{PlanError, compile_source};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Arguments of `cbk validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Capture this time as `now` (RFC 3339) instead of the clock.
    #[arg(long, env = "CBK_NOW", value_name = "TIME")]
    pub now: Option<String>,
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

/// Runs `cbk validate`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let now = parse_now(args.now.as_deref())?;
    let src = read_plan(&args.file)?;
    let name = args.file.display().to_string();
    match compile_source(&name, &src, now) {
        Ok(run) => {
            println!(
                "{name}: valid ({} plan, {} tasks)",
                serde_json::to_value(run.plan.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                run.tasks.len()
            );
            Ok(exit::OK)
        }
        Err(e) => {
            print_diagnostics(&e);
            Ok(exit::USAGE)
        }
    }
}
