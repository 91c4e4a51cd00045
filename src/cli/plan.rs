//! `cbk plan`: compile a plan file and show what applying it will do (no network, no
//! credentials unless `--refresh`), optionally saving the planned run for `cbk apply`.

use super::PlanFormat;
use super::validate::{parse_now, print_diagnostics, read_plan};
use crate::error::exit;
use crate::graph::compile_source;
use crate::graph::run::PlannedRun;
use crate::graph::select::select;
use crate::render;
use crate::render::compare::Comparison;
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
    /// Also read the store and the nodes, changing nothing: a restore plan runs its `resolve`
    /// (which backup, which host restores which, the replication check) and is refused here,
    /// exit 1, when it cannot work. Needs the plan's credentials (and the identity when the
    /// repository is encrypted); its findings go to stderr.
    #[arg(long)]
    pub refresh: bool,
    /// State folder the plan is computed against (default `.cbk/` beside the plan file); a saved
    /// plan records its lineage and serial, and `cbk apply` refuses it once the state moved.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Also show what changed against BASE, Terraform style (`~ retention.keep_daily: 14 → 1`,
    /// `+ upload[…]`): a saved plan (JSON), or a plan file (TOML, e.g. the base branch's
    /// version, planned with the same `now` and targets); an empty file stands for no base.
    /// With `--format json`, prints the comparison instead of the plan. Exit codes unchanged.
    #[arg(long, value_name = "BASE")]
    pub compare: Option<PathBuf>,
}

/// Streams a planned run to stdout in a format (shared with `cbk show`).
pub(crate) fn print_run(
    run: &PlannedRun,
    format: PlanFormat,
    by_host: bool,
    compare: Option<&Comparison>,
) -> miette::Result<()> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let color = render::want_color(stdout.is_terminal());
    let mut out = render::IoFmt {
        inner: std::io::BufWriter::new(stdout.lock()),
        error: None,
    };
    let res = match format {
        PlanFormat::Human => {
            render::write_human(run, render::HumanOptions { color, by_host }, &mut out).and_then(
                |()| match compare {
                    Some(c) => render::compare::write_human(c, color, &mut out),
                    None => Ok(()),
                },
            )
        }
        PlanFormat::Json => match compare {
            Some(c) => serde_json::to_writer_pretty(&mut out.inner, c)
                .map_err(std::io::Error::from)
                .and_then(|()| out.inner.write_all(b"\n")),
            None => render::write_json(run, &mut out.inner),
        }
        .map_err(|e| {
            out.error = Some(e);
            std::fmt::Error
        }),
        PlanFormat::Markdown => {
            std::fmt::Write::write_str(&mut out, &render::markdown_with(run, compare))
        }
        PlanFormat::Dot => render::write_dot(run, &mut out),
    };
    let flushed = out.inner.flush();
    match (res, out.error, flushed) {
        (Ok(()), None, Ok(())) => Ok(()),
        (_, Some(e), _) | (_, None, Err(e)) => {
            // A closed pipe (`cbk plan | head`) is not an error worth a report.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(miette::miette!("cannot write the plan: {e}"))
            }
        }
        (Err(_), None, Ok(())) => Err(miette::miette!("cannot render the plan")),
    }
}

/// Writes the saved plan atomically (temporary file in the same folder, then rename).
pub(crate) fn save_plan(path: &Path, run: &PlannedRun) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        render::write_json(run, &mut w)?;
        std::io::Write::flush(&mut w)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Reads the base of `--compare`: a saved plan as saved, a TOML plan compiled with the same
/// `now` and targets as the plan, nothing for an empty file. Problems are printed; `Err(())`.
fn load_base(
    path: &Path,
    now: jiff::Timestamp,
    target: &[String],
    exclude: &[String],
) -> Result<Option<PlannedRun>, ()> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read the base plan `{name}`: {e}");
    })?;
    if src.trim().is_empty() {
        return Ok(None);
    }
    if super::validate::is_saved_plan(&src) {
        return super::show::read_saved_plan(path)
            .map(Some)
            .map_err(|e| eprintln!("error: the base plan: {e}"));
    }
    let base = compile_source(&name, &src, now).map_err(|e| {
        eprintln!("error: the base plan `{name}` is not a valid plan:");
        print_diagnostics(&e);
        eprintln!(
            "hint: an empty BASE file stands for no base (e.g. a plan the base branch does not have)"
        );
    })?;
    match select(base.clone(), target, exclude) {
        Ok(b) => Ok(Some(b)),
        Err(e) => {
            eprintln!("warning: the base plan `{name}` is compared whole: {e}");
            Ok(Some(base))
        }
    }
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
    if super::validate::is_saved_plan(&src) {
        eprintln!(
            "error: `{name}` is a saved plan (JSON); use `cbk show {name}` to review it or `cbk apply {name}` to run it"
        );
        return Ok(fail);
    }
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
    let mut run = run;
    let compared = match &args.compare {
        None => None,
        Some(_) if args.format == PlanFormat::Dot => {
            eprintln!("error: --compare has no DOT form; use --format human, markdown or json");
            return Ok(fail);
        }
        Some(base) => match load_base(base, now, &args.target, &args.exclude) {
            Ok(b) => Some(render::compare::compare(b.as_ref(), &run)),
            Err(()) => return Ok(fail),
        },
    };
    if args.refresh {
        match super::refresh::refresh(&run).await {
            Ok(lines) => {
                for l in lines {
                    eprintln!("refresh: {l}");
                }
            }
            Err(e) => {
                eprintln!(
                    "error: refresh: {e}\n\nhint: nothing was changed; fix the plan (or the target cluster) and plan again"
                );
                return Ok(exit::FAILED);
            }
        }
    }
    let state_dir = args
        .state
        .clone()
        .unwrap_or_else(|| crate::exec::state::default_dir(&args.file));
    run.prior_state = crate::exec::state::current_ref(&state_dir)
        .map_err(|e| miette::miette!("cannot read the state in `{}`: {e}", state_dir.display()))?;
    if let Some(out) = &args.out {
        save_plan(out, &run)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", out.display()))?;
    }
    print_run(&run, args.format, args.by_host, compared.as_ref())?;
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
