//! Targeting: `--target ADDR` keeps the selected tasks and their dependencies, `--exclude ADDR`
//! drops tasks and everything that depends on them. Patterns are globs over addresses in which
//! `[` and `]` are literal (addresses use them), so `upload[cass-01/*]` works as expected.

use super::run::PlannedRun;
use globset::{GlobBuilder, GlobMatcher};
use std::collections::{HashMap, HashSet};

/// The warning added to a targeted plan.
pub const TARGETING_WARNING: &str = "targeting is in effect: this plan covers only part of the configuration; \
     do not use --target/--exclude for routine runs";

/// Targeting errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    #[error("invalid address pattern `{pattern}`: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("no task matches `{0}`")]
    NoMatch(String),
}

fn matcher(pattern: &str) -> Result<GlobMatcher, SelectError> {
    let mut escaped = String::with_capacity(pattern.len() + 8);
    for c in pattern.chars() {
        match c {
            '[' => escaped.push_str("[[]"),
            ']' => escaped.push_str("[]]"),
            c => escaped.push(c),
        }
    }
    GlobBuilder::new(&escaped)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| SelectError::Pattern {
            pattern: pattern.to_owned(),
            reason: e.kind().to_string(),
        })
}

fn matching(run: &PlannedRun, pattern: &str) -> Result<Vec<usize>, SelectError> {
    let m = matcher(pattern)?;
    let hits: Vec<usize> = run
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.address == pattern || m.is_match(&t.address))
        .map(|(i, _)| i)
        .collect();
    if hits.is_empty() {
        return Err(SelectError::NoMatch(pattern.to_owned()));
    }
    Ok(hits)
}

/// Applies `--target`/`--exclude` patterns; returns the run unchanged when both are empty.
pub fn select(
    mut run: PlannedRun,
    targets: &[String],
    excludes: &[String],
) -> Result<PlannedRun, SelectError> {
    if targets.is_empty() && excludes.is_empty() {
        return Ok(run);
    }
    let index: HashMap<&str, usize> = run
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.address.as_str(), i))
        .collect();
    let n = run.tasks.len();
    let mut keep: Vec<bool> = vec![targets.is_empty(); n];
    // Targets: the selected tasks and, transitively, what they depend on. Tasks are in
    // topological order, so one backward sweep closes over dependencies.
    for p in targets {
        for i in matching(&run, p)? {
            keep[i] = true;
        }
    }
    if !targets.is_empty() {
        for i in (0..n).rev() {
            if keep[i] {
                for a in &run.tasks[i].after {
                    if let Some(&j) = index.get(a.as_str()) {
                        keep[j] = true;
                    }
                }
            }
        }
    }
    // Excludes: the tasks and, transitively, their dependents (one forward sweep).
    let mut dropped: HashSet<usize> = HashSet::new();
    for p in excludes {
        dropped.extend(matching(&run, p)?);
    }
    for i in 0..n {
        if !dropped.contains(&i)
            && run.tasks[i]
                .after
                .iter()
                .any(|a| index.get(a.as_str()).is_some_and(|j| dropped.contains(j)))
        {
            dropped.insert(i);
        }
    }
    for i in &dropped {
        keep[*i] = false;
    }
    drop(index);
    let kept: HashSet<String> = run
        .tasks
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(t, _)| t.address.clone())
        .collect();
    run.tasks.retain(|t| kept.contains(&t.address));
    for t in &mut run.tasks {
        t.after.retain(|a| kept.contains(a));
    }
    run.warnings.push(TARGETING_WARNING.to_owned());
    run.summary = super::summarize(&run);
    Ok(run)
}
