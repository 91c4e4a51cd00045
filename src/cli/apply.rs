//! `cbk apply`: run a saved plan exactly as reviewed (refusing a stale one), or plan a TOML
//! file, show it, confirm and run it; resumably, with progress and an end summary.

use super::ProgressMode;
use crate::error::exit;
use crate::exec::events::{self, Event};
use crate::exec::progress::{self, Mode};
use crate::exec::walker::WalkOptions;
use crate::exec::{
    self, ApplyOptions, ExecError, RunReport, RunStatus, StateLocation, TaskError, TaskRunner,
    TaskStatus,
};
use crate::graph::run::PlannedRun;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Arguments of `cbk apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A saved plan (JSON written by `cbk plan --out`) or a plan file (TOML).
    #[arg(value_name = "PLANFILE|FILE.toml")]
    pub plan: PathBuf,
    /// Do not ask for confirmation (needed for a TOML plan without a terminal).
    #[arg(long, short = 'y', alias = "auto-approve")]
    pub yes: bool,
    /// Tasks running at once (default: the plan's `limits.parallelism`).
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
    /// Stop scheduling new tasks after the first failure (running ones finish).
    #[arg(long)]
    pub fail_fast: bool,
    /// How progress is shown.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// State folder, or a store URL (`s3://...`, `file://...`) for shared state
    /// (default: `.cbk/` beside the plan's source TOML).
    #[arg(long, value_name = "DIR|URL")]
    pub state: Option<String>,
    /// Only these tasks and what they need (TOML plans; globs over addresses).
    #[arg(long, value_name = "ADDR")]
    pub target: Vec<String>,
    /// Leave out these tasks and what needs them (TOML plans; globs over addresses).
    #[arg(long, value_name = "ADDR")]
    pub exclude: Vec<String>,
    /// Write Prometheus textfile-collector metrics to PATH after the apply (replaced atomically).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Capture this time as `now` (RFC 3339) for a TOML plan instead of the clock (or of the
    /// unfinished run it would resume).
    #[arg(long, env = "CBK_NOW", value_name = "TIME")]
    pub now: Option<String>,
    /// Wait up to this long for another apply's lock (e.g. `10m`) instead of failing at once.
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<crate::units::Duration>,
    /// Start a new run of a TOML plan even if its state holds an unfinished run of the same
    /// source (which is otherwise resumed, with its `now` and backup name).
    #[arg(long)]
    pub fresh: bool,
}

/// Errors of `cbk apply` before the engine runs.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a saved plan: {message}")]
    BadPlan { path: String, message: String },
    #[error("cannot plan `{path}`:\n{message}")]
    Compile { path: String, message: String },
    #[error("--target/--exclude only apply to a TOML plan; a saved plan runs exactly as reviewed")]
    TargetOnSavedPlan,
}

/// Compiles a TOML plan (diagnostics are printed as `cbk plan` prints them; `color`: with
/// terminal colours).
fn load_planned_run(
    path: &Path,
    now: jiff::Timestamp,
    target: &[String],
    exclude: &[String],
    color: bool,
) -> Result<PlannedRun, ApplyError> {
    let run = crate::graph::compile_file(path, now).map_err(|e| {
        let message = match &e {
            crate::graph::PlanError::Invalid(d) => d.render(100, color),
            other => other.to_string(),
        };
        ApplyError::Compile {
            path: path.display().to_string(),
            message,
        }
    })?;
    crate::graph::select::select(run, target, exclude).map_err(|e| ApplyError::Compile {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The task implementations used by `cbk apply` (replaced by the task registry in `tasks`).
fn task_runner(run: &PlannedRun, parallelism: usize) -> Result<Arc<dyn TaskRunner>, TaskError> {
    let runner = crate::tasks::Runner::new(Arc::new(run.clone()), parallelism)?;
    Ok(Arc::new(runner))
}

/// Runs `cbk apply`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let out = Out {
        json: args.progress == ProgressMode::Json,
    };
    if out.json {
        events::hold();
    }
    match run_inner(args, out).await {
        Ok(code) => Ok(code),
        Err(e) if out.json => Ok(out.error(&e.to_string(), exit::FAILED)),
        Err(e) => Err(miette::miette!("{e}")),
    }
}

/// Where `cbk apply` reports outside the progress sink: text, or events with `--progress json`
/// (then everything it prints is a JSON line).
#[derive(Debug, Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// Ends the apply with an error and returns `code` (JSON: the last event, with the code).
    fn error(self, text: &str, code: u8) -> u8 {
        if self.json {
            events::release();
            events::emit(&Event::Error {
                text,
                address: None,
                target: None,
                fields: None,
                exit_code: Some(code),
            });
        } else {
            eprintln!("error: {text}");
        }
        code
    }

    /// A note on stderr (JSON: a `message` event).
    fn note(self, text: &str) {
        if self.json {
            events::emit(&Event::Message { text });
        } else {
            eprintln!("{text}");
        }
    }
}

fn is_toml(path: &Path, text: &str) -> bool {
    path.extension().is_some_and(|e| e == "toml") || !text.trim_start().starts_with('{')
}

async fn run_inner(args: Args, out: Out) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    let color = !out.json && crate::exec::progress::color_enabled();
    let path_s = args.plan.display().to_string();
    let text = std::fs::read_to_string(&args.plan).map_err(|source| ApplyError::Read {
        path: path_s.clone(),
        source,
    })?;
    let saved = !is_toml(&args.plan, &text);
    let mut run: PlannedRun = if saved {
        if !args.target.is_empty() || !args.exclude.is_empty() {
            return Ok(out.error(&ApplyError::TargetOnSavedPlan.to_string(), exit::USAGE));
        }
        let mut run: PlannedRun = serde_json::from_str(&text).map_err(|e| ApplyError::BadPlan {
            path: path_s.clone(),
            message: e.to_string(),
        })?;
        crate::graph::upgrade_saved(&mut run);
        run
    } else {
        if !args.yes && !std::io::stdin().is_terminal() {
            return Ok(out.error(
                &format!(
                    "refusing to apply `{path_s}` without confirmation: no terminal to ask on; pass --yes to apply anyway"
                ),
                exit::REFUSED,
            ));
        }
        if !args.yes && out.json {
            return Ok(out.error(
                &format!(
                    "refusing to apply `{path_s}` without confirmation: --progress json does not ask; pass --yes to apply anyway"
                ),
                exit::REFUSED,
            ));
        }
        let now = super::validate::parse_now(args.now.as_deref()).map_err(|e| e.to_string())?;
        load_planned_run(&args.plan, now, &args.target, &args.exclude, color)?
    };

    let state = match &args.state {
        Some(s) if crate::store::url::is_store_url(s) => {
            let mut config = run.plan.storage.clone().unwrap_or_default();
            // State, journal and lock objects change all the time: never Object Lock them.
            config.object_lock = None;
            if config.url != *s {
                config = crate::plan::model::StorageConfig {
                    url: s.clone(),
                    ..Default::default()
                };
            }
            let creds = crate::store::credentials_from_env(&config)?;
            StateLocation::Remote(crate::store::open(&config, creds).await?)
        }
        Some(dir) => StateLocation::Local(PathBuf::from(dir)),
        None => StateLocation::Local(exec::state::default_dir(Path::new(&run.source.path))),
    };

    if !saved && !args.fresh && args.now.is_none() {
        // "Run the same command again to resume": an unfinished run of this very source is
        // resumed with the `now` (and so the backup name) it was planned with.
        if let Some(open) = exec::open_run(&state).await?
            && open.source_sha256.as_deref() == Some(run.source.sha256.as_str())
            && let Some(then) = open.now.as_deref()
            && then != run.inputs.now
        {
            let then: jiff::Timestamp = then.parse().map_err(|e| {
                format!(
                    "the unfinished run {} has an unreadable `now` `{then}`: {e}",
                    open.name
                )
            })?;
            run = load_planned_run(&args.plan, then, &args.target, &args.exclude, color)?;
            out.note(&format!(
                "resuming run {} of `{path_s}` (planned at {}); pass --fresh to start a new run instead",
                open.name, run.inputs.now
            ));
        }
    }

    if !saved {
        // A plan compiled now is computed against the current state, created first so that
        // a resumed attempt computes the same plan (and digest) as the first one.
        if let StateLocation::Local(dir) = &state {
            exec::state::LocalState::open(dir)?.load_or_init()?;
            run.prior_state = exec::state::current_ref(dir)?;
        }
        if !out.json {
            show_plan(&run);
        }
        if !args.yes && !confirm()? {
            eprintln!("Apply cancelled.");
            return Ok(exit::REFUSED);
        }
    }

    let mode = match args.progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => Mode::Bars,
        ProgressMode::Auto | ProgressMode::Plain => Mode::Plain,
        ProgressMode::Bars => Mode::Bars,
        ProgressMode::Json => Mode::Json,
        ProgressMode::None => Mode::None,
    };
    let progress = progress::make(mode, run.tasks.len());
    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone(), progress.clone(), out);
    let parallelism = args
        .parallelism
        .unwrap_or(run.plan.limits.parallelism as usize);
    let runner = task_runner(&run, parallelism)?;
    let opts = ApplyOptions {
        state,
        walk: WalkOptions {
            parallelism,
            per_host: run.plan.limits.per_host as usize,
            fail_fast: args.fail_fast,
            ..WalkOptions::default()
        },
        progress,
        cancel: cancel.clone(),
        saved_plan: saved,
        plan_label: path_s,
        lock_timeout: args.lock_timeout.as_ref().map(crate::units::Duration::get),
    };
    let started = std::time::Instant::now();
    match exec::apply(&run, runner, opts).await {
        Ok(report) => {
            let elapsed = started.elapsed();
            if !out.json {
                print_summary(&report, elapsed);
            }
            let mut code = match report.status {
                RunStatus::Ok => exit::OK,
                RunStatus::Interrupted if cancel.is_cancelled() => exit::INTERRUPTED,
                _ => exit::FAILED,
            };
            // A run that cannot be seen by monitoring is not a success: the metrics file
            // failing to write is an error (the run itself is done and recorded).
            if let Some(path) = &args.metrics_file
                && let Err(e) = exec::metrics::write_metrics_file(path, &run, &report, elapsed)
            {
                let text = format!("cannot write metrics to `{}`: {e}", path.display());
                if out.json {
                    events::emit(&Event::Error {
                        text: &text,
                        address: None,
                        target: None,
                        fields: None,
                        exit_code: None,
                    });
                } else {
                    eprintln!("error: {text}");
                }
                code = code.max(exit::FAILED);
            }
            if out.json {
                emit_run_finished(&report, elapsed, code);
            }
            Ok(code)
        }
        Err(ExecError::AlreadyApplied { run }) => {
            let run = events::run_id(&run);
            let text =
                format!("Nothing to do: this plan was already applied (run {run} finished ok).");
            if out.json {
                events::release();
                events::emit(&Event::AlreadyApplied {
                    run,
                    text: &text,
                    exit_code: exit::OK,
                });
            } else {
                println!("{text}");
            }
            Ok(exit::OK)
        }
        Err(e) if e.is_refusal() => Ok(out.error(&e.to_string(), exit::REFUSED)),
        Err(e) => Err(Box::new(e)),
    }
}

/// First SIGINT/SIGTERM: stop starting tasks and let running ones reach a safe point.
/// Second: exit at once (the journal is consistent after every record).
fn spawn_signal_handler(cancel: CancellationToken, progress: Arc<dyn exec::Progress>, out: Out) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            seen += 1;
            if seen == 1 {
                progress.warning(
                    "Interrupted: no new tasks start; waiting for running tasks to reach a safe point (Ctrl-C again to abort now).",
                    None,
                );
                cancel.cancel();
            } else {
                const ABORTED: &str = "Aborted. The next apply resumes from the journal.";
                if out.json {
                    out.error(ABORTED, exit::INTERRUPTED);
                } else {
                    eprintln!("{ABORTED}");
                }
                std::process::exit(exit::INTERRUPTED as i32);
            }
        }
    });
}

/// Shows what a TOML plan will do (the full renderer replaces this).
/// The confirmation screen: the same human view `cbk plan` prints (settings, tasks, summary).
fn show_plan(run: &PlannedRun) {
    if let Err(e) = super::plan::print_run(run, super::PlanFormat::Human, false, None) {
        eprintln!("warning: {e}");
    }
}

fn confirm() -> std::io::Result<bool> {
    print!("Apply this plan? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// The end summary as the `run_finished` event: status, counts per task status, every task's
/// result, duration and exit code.
fn emit_run_finished(r: &RunReport, elapsed: std::time::Duration, exit_code: u8) {
    events::emit(&Event::RunFinished {
        run: events::run_id(&r.run),
        status: r.status,
        resumed: r.resumed,
        counts: events::TASK_STATUSES
            .iter()
            .map(|s| (*s, r.count(s)))
            .collect(),
        tasks: &r.tasks,
        duration_ms: elapsed.as_millis() as u64,
        exit_code,
    });
}

/// Prints the end summary: what succeeded, was already satisfied, failed (with the cause) and
/// was skipped.
fn print_summary(r: &RunReport, elapsed: std::time::Duration) {
    let mut out = std::io::stdout().lock();
    let head = match r.status {
        RunStatus::Ok => "Apply complete",
        RunStatus::Failed => "Apply finished with failures",
        RunStatus::Interrupted | RunStatus::Superseded => {
            "Apply interrupted (run the same apply again to resume)"
        }
    };
    let _ = writeln!(
        out,
        "\n{head}: {} applied, {} already satisfied, {} done earlier, {} failed, {} skipped, {} not started. (run {}{}, {:.1}s)",
        r.count("applied"),
        r.count("satisfied"),
        r.count("already_done"),
        r.count("failed"),
        r.count("skipped"),
        r.count("not_started") + r.count("interrupted"),
        r.run.trim_end_matches(".jsonl"),
        if r.resumed { ", resumed" } else { "" },
        elapsed.as_secs_f64()
    );
    let section = |out: &mut std::io::StdoutLock,
                   title: &str,
                   pick: &dyn Fn(&TaskStatus) -> Option<String>| {
        let lines: Vec<String> = r
            .tasks
            .iter()
            .filter_map(|t| pick(&t.status).map(|d| format!("  {}{d}", t.address)))
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{title} ({}):", lines.len());
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    };
    let detail = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!(": {s}")
        }
    };
    section(&mut out, "Succeeded", &|s| match s {
        TaskStatus::Applied { summary } => Some(detail(summary)),
        _ => None,
    });
    section(&mut out, "Already satisfied", &|s| match s {
        TaskStatus::Satisfied { summary } => Some(detail(summary)),
        _ => None,
    });
    section(&mut out, "Done by an earlier attempt", &|s| match s {
        TaskStatus::AlreadyDone { summary } => Some(detail(summary)),
        _ => None,
    });
    section(&mut out, "Failed", &|s| match s {
        TaskStatus::Failed { error } => Some(detail(error)),
        _ => None,
    });
    section(&mut out, "Skipped", &|s| match s {
        TaskStatus::Skipped { reason } => Some(detail(reason)),
        _ => None,
    });
    section(&mut out, "Not started", &|s| match s {
        TaskStatus::NotStarted => Some(String::new()),
        TaskStatus::Interrupted => Some(": interrupted at a safe point".into()),
        _ => None,
    });
}
