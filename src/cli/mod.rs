//! The command line: clap definitions here, one module per subcommand with its `run`.
//!
//! This is the application layer: it turns typed library errors into miette reports and exit
//! codes (see [`crate::error::exit`]).

pub mod agent;
pub mod apply;
pub mod completions;
pub mod forget;
pub mod key;
pub mod list;
pub mod ls;
pub mod plan;
pub mod prune;
pub mod refresh;
pub mod show;
pub mod state;
pub mod validate;
pub mod verify;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The exit codes of every command ([`crate::error::exit`]), shown by `cbk --help` and the man page.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success (plan --detailed-exitcode: nothing to do)
  1    an error, or some tasks failed
  2    plan --detailed-exitcode: tasks are pending
  64   bad usage (unknown option, missing argument) or an invalid plan file
  75   refused: state locked, stale saved plan, or no confirmation
  130  interrupted (Ctrl-C or SIGTERM); the next apply resumes";

/// Declarative, resumable backup and restore for Apache Cassandra clusters.
#[derive(Debug, Parser)]
#[command(
    name = "cbk",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log level filter (also RUST_LOG), e.g. `info` or `cbk=debug`.
    #[arg(long, global = true, env = "CBK_LOG", default_value = "warn")]
    pub log: String,
}

/// Output formats of a planned run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Terraform-like text for a terminal.
    Human,
    /// Machine-readable JSON (`format_version` 1, schemas/plan-output.schema.json).
    Json,
    /// Markdown for a pull-request comment (fits 65,535 characters).
    Markdown,
    /// Graphviz DOT.
    Dot,
}

/// Output of the report commands (`list`, `ls`, `verify`, `prune`, `forget`, `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table or lines for people.
    Human,
    /// One JSON document (schemas/).
    Json,
}

/// `--format human|json`, with `--json` as its alias: one output flag on every report command.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

impl OutputArgs {
    /// Whether JSON was asked for (`--format json` or `--json`).
    pub fn is_json(&self) -> bool {
        self.json || self.format == OutputFormat::Json
    }
}

/// `--metrics-file PATH` of the store commands (`list`, `verify`, `prune`).
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Write Prometheus textfile-collector metrics to PATH (replaced atomically), including
    /// the age of the newest complete backup per cluster; failing to write is an error.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

impl MetricsArgs {
    /// Writes the metrics `render` makes (only when asked); a file that cannot be written is
    /// reported and turns `code` into a failure: unseen by monitoring is not a success.
    pub fn write(&self, code: u8, render: impl FnOnce() -> String) -> u8 {
        let Some(path) = &self.metrics_file else {
            return code;
        };
        match crate::exec::metrics::write_textfile(path, &render()) {
            Ok(()) => code,
            Err(e) => {
                eprintln!("error: cannot write metrics to `{}`: {e}", path.display());
                code.max(crate::error::exit::FAILED)
            }
        }
    }

    /// Whether a metrics file was asked for.
    pub fn wanted(&self) -> bool {
        self.metrics_file.is_some()
    }
}

/// How progress is shown while applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// indicatif bars (one per host plus an overall bar).
    Bars,
    /// Periodic plain lines.
    Plain,
    /// JSON lines (for log shippers).
    Json,
    /// Nothing but the end summary.
    None,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plan file and report every problem with file:line:column.
    Validate(validate::Args),
    /// Compile a plan file and show what applying it will do (no network, no credentials).
    Plan(plan::Args),
    /// Show a saved plan.
    Show(show::Args),
    /// Execute a saved plan (or plan a TOML file, confirm and execute), resumably.
    Apply(apply::Args),
    /// Show the last run task by task.
    State(state::Args),
    /// Remove a lock left by a crashed apply.
    Unlock(state::UnlockArgs),
    /// List the backups in a store.
    List(list::Args),
    /// List the hosts, tables and files of one backup.
    Ls(ls::Args),
    /// Check that a backup is complete (and with --deep, that every byte is intact).
    Verify(verify::Args),
    /// Apply the retention policy and garbage-collect unreferenced objects.
    Prune(prune::Args),
    /// Delete the named backups, then garbage-collect objects no backup references.
    Forget(forget::Args),
    /// The recipients of an encrypted repository (list, add, remove).
    Key(key::Args),
    /// Generate shell completions.
    Completions(completions::Args),
    /// Print the man page (roff).
    Man,
    /// Write the JSON Schemas (plan file, plan output, repository documents).
    #[command(hide = true)]
    Schema(completions::SchemaArgs),
    /// Run as the node agent (the controller starts this over SSH).
    #[command(hide = true)]
    Agent(agent::Args),
}

impl Cli {
    /// Whether everything this command prints is JSON-lines events (`apply --progress json`).
    pub fn json_events(&self) -> bool {
        matches!(&self.command, Command::Apply(a) if a.progress == ProgressMode::Json)
    }
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> miette::Result<u8> {
    match cli.command {
        Command::Validate(a) => validate::run(a).await,
        Command::Plan(a) => plan::run(a).await,
        Command::Show(a) => show::run(a).await,
        Command::Apply(a) => apply::run(a).await,
        Command::State(a) => state::run(a).await,
        Command::Unlock(a) => state::unlock(a).await,
        Command::List(a) => list::run(a).await,
        Command::Ls(a) => ls::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Prune(a) => prune::run(a).await,
        Command::Forget(a) => forget::run(a).await,
        Command::Key(a) => key::run(a).await,
        Command::Completions(a) => completions::run(a),
        Command::Man => completions::man(),
        Command::Schema(a) => completions::schema(a),
        Command::Agent(a) => agent::run(a).await,
    }
}

/// Where a command finds the store: a plan file's `[storage]`, or a URL.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Plan file whose `[storage]` section to use.
    #[arg(long, short = 'p', value_name = "PLAN.toml")]
    pub plan: Option<PathBuf>,
    /// Storage URL (`s3://bucket/prefix` or `file:///path`) instead of a plan.
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// S3 region (overrides the plan's `region`).
    #[arg(long, env = "CBK_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// S3-compatible endpoint URL (overrides the plan's `endpoint`).
    #[arg(long, env = "CBK_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Path-style S3 addressing (for S3-compatible servers).
    #[arg(long, env = "CBK_PATH_STYLE")]
    pub path_style: bool,
    /// AWS profile for credentials and region (overrides the plan's `profile`).
    #[arg(long, env = "CBK_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
}

impl StoreArgs {
    fn plan_file(&self) -> miette::Result<Option<crate::plan::model::PlanFile>> {
        let Some(path) = &self.plan else {
            return Ok(None);
        };
        let run =
            crate::graph::compile_file(path, jiff::Timestamp::now()).map_err(|e| match e {
                crate::graph::PlanError::Invalid(d) => {
                    miette::miette!("{}", d.render(100, crate::exec::progress::color_enabled()))
                }
                other => miette::miette!("{other}"),
            })?;
        Ok(Some(run.plan))
    }

    /// Opens the repository named by `--storage` or by the plan's `[storage]`, after checking
    /// its marker (a store without one is refused as "not a cbk repository").
    pub async fn open(&self) -> miette::Result<std::sync::Arc<dyn crate::store::Store>> {
        let store = self.open_store().await?;
        crate::repo::inventory::check_marker(store.as_ref())
            .await
            .map_err(|e| miette::miette!("{e}"))?;
        Ok(store)
    }

    /// Opens the store without looking for a repository in it.
    async fn open_store(&self) -> miette::Result<std::sync::Arc<dyn crate::store::Store>> {
        let config = match (&self.storage, self.plan_file()?) {
            (Some(url), _) => crate::plan::model::StorageConfig {
                url: url.clone(),
                ..Default::default()
            },
            (None, Some(plan)) => plan
                .storage
                .ok_or_else(|| miette::miette!("the plan has no [storage] section"))?,
            (None, None) => {
                return Err(miette::miette!(
                    help = "pass --plan PLAN.toml or --storage URL",
                    "no store given"
                ));
            }
        };
        let mut config = config;
        if let Some(r) = &self.region {
            config.region = Some(r.clone());
        }
        if let Some(e) = &self.endpoint {
            config.endpoint = Some(e.clone());
        }
        if self.path_style {
            config.path_style = true;
        }
        if let Some(p) = &self.profile {
            config.profile = Some(p.clone());
        }
        let creds =
            crate::store::credentials_from_env(&config).map_err(|e| miette::miette!("{e}"))?;
        crate::store::open(&config, creds)
            .await
            .map_err(|e| miette::miette!("{e}"))
    }

    /// The cluster whose backups to show, verify or prune: `--cluster`, else the plan's
    /// `[cluster] name`, else every cluster (`None`).
    pub fn cluster(&self, explicit: Option<&str>) -> miette::Result<Option<String>> {
        if let Some(c) = explicit {
            return Ok(Some(c.to_string()));
        }
        Ok(self.plan_file()?.map(|p| p.cluster.name))
    }

    /// The plan's `[backup]` section, if a backup plan was given.
    pub fn backup_config(&self) -> miette::Result<Option<crate::plan::model::BackupConfig>> {
        Ok(self.plan_file()?.and_then(|p| p.backup))
    }

    /// The identity for reading the store: `None` for a plain repository; for an encrypted one,
    /// from the plan's `identity_env` or `CBK_IDENTITY_FILE` (an error says which to set).
    pub async fn identity(
        &self,
        store: &dyn crate::store::Store,
    ) -> miette::Result<Option<crate::crypt::Identities>> {
        let env = self
            .plan_file()?
            .and_then(|p| p.encryption)
            .and_then(|e| e.identity_env);
        crate::repo::encrypted::identity_for(store, env.as_deref())
            .await
            .map_err(|e| miette::miette!("{e}"))
    }

    /// How to read the store without requiring an identity: plain, encrypted with the identity
    /// when one is given, or encrypted without it (prune, forget and quick verify read only
    /// what stays in clear).
    pub async fn access(
        &self,
        store: &dyn crate::store::Store,
    ) -> miette::Result<crate::repo::encrypted::Access> {
        let env = self
            .plan_file()?
            .and_then(|p| p.encryption)
            .and_then(|e| e.identity_env);
        crate::repo::encrypted::access_for(store, env.as_deref())
            .await
            .map_err(|e| miette::miette!("{e}"))
    }

    /// The plan's `[encryption]` recipients (empty without a plan or section).
    pub fn recipients(&self) -> miette::Result<Vec<String>> {
        Ok(self
            .plan_file()?
            .and_then(|p| p.encryption)
            .map(|e| e.recipients)
            .unwrap_or_default())
    }

    /// The plan's retention policy, if a plan was given.
    pub fn retention(&self) -> miette::Result<Option<crate::plan::model::Retention>> {
        Ok(self.plan_file()?.and_then(|p| p.retention))
    }
}

#[allow(dead_code)]
fn not_yet(what: &str) -> miette::Result<u8> {
    Err(miette::miette!("`cbk {what}` is not implemented yet"))
}
