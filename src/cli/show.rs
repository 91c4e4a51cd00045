//! `cbk show`: render a saved plan (the JSON written by `cbk plan --out`).

use super::PlanFormat;
use crate::graph::run::{FORMAT_VERSION, PlannedRun};
use std::path::{Path, PathBuf};

/// Arguments of `cbk show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The saved plan (JSON).
    #[arg(value_name = "PLANFILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: PlanFormat,
    /// Human view: group tasks by host instead of execution order.
    #[arg(long)]
    pub by_host: bool,
}

/// Why a saved plan cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot read saved plan `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a saved cbk plan: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{path}` has plan format version {found}; this cbk reads version {FORMAT_VERSION}")]
    Version { path: String, found: u64 },
}

/// Reads a saved plan, checking its `format_version` first.
pub fn read_saved_plan(path: &Path) -> Result<PlannedRun, SavedPlanError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SavedPlanError::Read {
        path: p.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| SavedPlanError::Parse {
            path: p.clone(),
            source,
        })?;
    let found = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if found != u64::from(FORMAT_VERSION) {
        return Err(SavedPlanError::Version { path: p, found });
    }
    let mut run: PlannedRun = serde_json::from_value(value)
        .map_err(|source| SavedPlanError::Parse { path: p, source })?;
    crate::graph::upgrade_saved(&mut run);
    Ok(run)
}

/// Runs `cbk show`.
pub async fn run(args: Args) -> miette::Result<u8> {
    let run = read_saved_plan(&args.file).map_err(|e| miette::miette!("{e}"))?;
    super::plan::print_run(&run, args.format, args.by_host, None)?;
    Ok(crate::error::exit::OK)
}
