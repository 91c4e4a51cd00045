//! `cbk plan`: compile a plan file and show what applying it will do (no network, no
//! credentials), optionally saving the planned run for `cbk apply`.

use super::PlanFormat;
use super::validate::{parse_now, print_diagnostics, read_plan};
use crate::error::exit;
use crate::graph::run::PlannedRun;
use crate::graph::select::select;
use crate::plan::compile_source;
use crate::render;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Arguments of `cbk plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: PlanFormat,
    /// Save the planned run (JSON) for `cbk apply PLANFILE`.
    #[arg(long, value_name = "PLANFILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when nothing is to be done, 2 when tasks are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Only these tasks and what they depend on (glob over addresses; repeatable).
    #[arg(long, value_name = "ADDR")]
    pub target: Vec<String>,
    /// Leave out these tasks and everything depending on them (glob; repeatable).
    #[arg(long, value_name = "ADDR")]
    pub exclude: Vec<String>,
    /// Capture this time as `now` (RFC 3339) instead of the clock.
    #[arg(long, env = "CBK_NOW", value_name = "TIME")]
    pub now: Option<String>,
    /// Human view: group tasks by host instead of execution order.
    #[arg(long)]
    pub by_host: bool,
}

/// Renders a planned run in a format (shared with `cbk show`).
pub(crate) fn render_run(run: &PlannedRun, format: PlanFormat, by_host: bool) -> String {
    match format {
        PlanFormat::Human => render::human(
            run,
            render::HumanOptions {
                color: render::want_color(std::io::stdout().is_terminal()),
                by_host,
            },
        ),
        PlanFormat::Json => render::json(run),
        PlanFormat::Markdown => render::markdown(run),
        PlanFormat::Dot => render::dot(run),
    }
}

/// Writes a file atomically (temporary file in the same folder, then rename).
pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `cbk plan`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let fail = if args.detailed_exitcode {
        exit::FAILED
    } else {
        exit::USAGE
    };
    let now = parse_now(args.now.as_deref())?;
    let src = read_plan(&args.file)?;
    let name = args.file.display().to_string();
    let run = match compile_source(&name, &src, now) {
        Ok(r) => r,
        Err(e) => {
            print_diagnostics(&e);
            return Ok(fail);
        }
    };
    let run = match select(run, &args.target, &args.exclude) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: {e}\n\nhint: addresses look like `snapshot[cass-01]` or `upload[cass-01/ks.users]`; `*` matches any text"
            );
            return Ok(fail);
        }
    };
    if let Some(out) = &args.out {
        write_atomic(out, &render::json(&run))
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", out.display()))?;
    }
    print!("{}", render_run(&run, args.format, args.by_host));
    if let Some(out) = &args.out
        && args.format == PlanFormat::Human
    {
        println!(
            "\nSaved the plan to `{}`. To apply exactly this plan, run: cbk apply {}",
            out.display(),
            out.display()
        );
    }
    if args.detailed_exitcode && run.summary.to_run > 0 {
        return Ok(exit::CHANGES);
    }
    Ok(exit::OK)
}
