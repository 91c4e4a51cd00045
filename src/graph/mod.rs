//! Compiling a plan into a planned run: [`compile_source`] and [`compile_file`] load a plan
//! file ([`crate::plan::load`]) and compile it into a task graph ([`compile`], pure: no I/O);
//! [`select`] keeps parts of it.

pub mod compile;
pub mod run;
pub mod select;
pub mod spec;

use crate::plan::diag::Diagnostics;
use crate::plan::load::Resolved;
use crate::plan::{format_now, load};
use compile::{CompileError, compile};
use jiff::Timestamp;
use run::{Action, FORMAT_VERSION, Inputs, PlannedRun, SourceInfo, Summary};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Why a plan could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read plan file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The plan is invalid (every problem, with spans).
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
    /// The compiler found a problem the loader did not (a bug if it happens).
    #[error(transparent)]
    Compile(#[from] CompileError),
}

/// Loads and checks plan text into a resolved plan (templates rendered), the compiler's input.
/// `name` is the path shown in diagnostics; `now` is RFC 3339 UTC.
pub fn resolve(name: &str, src: &str, now: &str) -> Result<Resolved, Diagnostics> {
    load::load(name, src, now, &compile::BuiltinSteps)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiles plan text. `name` is the path shown in diagnostics and recorded in the plan.
pub fn compile_source(name: &str, src: &str, now: Timestamp) -> Result<PlannedRun, PlanError> {
    let now_s = format_now(now);
    let resolved = resolve(name, src, &now_s)?;
    let tasks = compile(&resolved)?;
    let inputs = Inputs {
        now: now_s,
        backup_name: resolved
            .backup_name
            .clone()
            .or_else(|| resolved.restore_source.clone()),
    };
    let inputs_sha256 = sha256_hex(&serde_json::to_vec(&inputs).unwrap_or_default());
    let mut run = PlannedRun {
        format_version: FORMAT_VERSION,
        cbk_version: crate::VERSION.to_owned(),
        source: SourceInfo {
            path: name.to_owned(),
            sha256: sha256_hex(src.as_bytes()),
        },
        inputs,
        inputs_sha256,
        prior_state: None,
        plan: resolved.plan,
        templates: resolved.templates,
        tasks,
        summary: Summary::default(),
        warnings: Vec::new(),
    };
    run.summary = summarize(&run);
    Ok(run)
}

/// Reads and compiles a plan file with the captured clock `now`.
pub fn compile_file(path: &Path, now: Timestamp) -> Result<PlannedRun, PlanError> {
    let src = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_owned(),
        source,
    })?;
    compile_source(&path.display().to_string(), &src, now)
}

/// Counts for the summary line (recomputed after targeting).
pub fn summarize(run: &PlannedRun) -> Summary {
    let mut s = Summary::default();
    for t in &run.tasks {
        match t.action {
            Action::Satisfied => s.satisfied += 1,
            Action::Delete => {
                s.to_delete += 1;
                s.to_run += 1;
            }
            Action::Read => {
                s.read_only += 1;
                s.to_run += 1;
            }
            Action::Run => s.to_run += 1,
        }
        if t.kind().local_cleanup() && t.action != Action::Satisfied {
            s.cleanup += 1;
        }
        if t.disruptive && t.action != Action::Satisfied {
            s.disruptive += 1;
        }
    }
    s
}

/// Brings a saved plan written by an earlier cbk to this one's reading of the same format
/// version: local clean-up tasks (`clear_snapshot`, `cleanup`) were marked `delete`; they are
/// tasks that run (nothing stored is deleted), and the summary is counted again. Execution does
/// not depend on either, so the plan still runs exactly as reviewed.
pub fn upgrade_saved(run: &mut PlannedRun) {
    for t in &mut run.tasks {
        if t.kind().local_cleanup() && t.action == Action::Delete {
            t.action = Action::Run;
        }
    }
    run.summary = summarize(run);
}
