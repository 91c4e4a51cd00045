//! `cbk plan --refresh`: reads the real world before the plan is shown, without changing it.
//! `cbk plan` alone reads no store and needs no credentials; with `--refresh` a restore plan
//! runs its `resolve` task (which backup, which backed-up host each target restores, the
//! replication check against the backup's recorded keyspace definitions and the target's live
//! schema), so a restore that cannot work is refused at plan time, with its numbers.

use crate::exec::{MemoryCheckpoints, NoProgress, TaskContext, TaskRunner};
use crate::graph::run::PlannedRun;
use crate::graph::spec::TaskSpec;
use std::sync::Arc;

/// What a refresh found: one line per read-only task it ran (`resolve: …`), or the refusal.
pub async fn refresh(run: &PlannedRun) -> Result<Vec<String>, String> {
    let reads: Vec<_> = run
        .tasks
        .iter()
        .filter(|t| matches!(t.spec, TaskSpec::Resolve(_)))
        .collect();
    if reads.is_empty() {
        return Ok(vec![
            "nothing to refresh: this plan reads nothing before it runs".into(),
        ]);
    }
    let parallelism = run.plan.limits.parallelism as usize;
    let runner = crate::tasks::Runner::new(Arc::new(run.clone()), parallelism.max(1))
        .map_err(|e| e.message)?;
    let cx = TaskContext {
        progress: Arc::new(NoProgress),
        // A refresh writes no journal.
        checkpoints: Arc::new(MemoryCheckpoints::default()),
        cancel: Default::default(),
    };
    let mut lines = Vec::new();
    for task in reads {
        match runner.apply(task, &cx).await {
            Ok(out) => lines.push(format!("{}: {}", task.address, out.summary)),
            Err(e) => return Err(format!("{}: {}", task.address, e.message)),
        }
    }
    Ok(lines)
}
