//! The planned run: one serialisable value that every view (human, JSON, Markdown, DOT) renders
//! and that `cbk apply` executes. Saved plans are this value written as JSON.

use crate::plan::model::PlanFile;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the plan JSON format (`format_version`).
pub const FORMAT_VERSION: u32 = 1;

/// The kinds of tasks cbk knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    // backup
    Probe,
    Flush,
    Snapshot,
    Upload,
    UploadIncremental,
    Manifest,
    ClearSnapshot,
    Catalog,
    // restore
    Resolve,
    Fetch,
    MatchTables,
    Stop,
    ClearCommitlog,
    Move,
    Start,
    WaitUp,
    RebuildIndex,
    Import,
    Refresh,
    Loader,
    Repair,
    Cleanup,
    // custom steps
    Exec,
}

impl TaskKind {
    /// The name used in addresses, e.g. `upload` in `upload[cass-01/ks.users]`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Probe => "probe",
            TaskKind::Flush => "flush",
            TaskKind::Snapshot => "snapshot",
            TaskKind::Upload => "upload",
            TaskKind::UploadIncremental => "upload_incremental",
            TaskKind::Manifest => "manifest",
            TaskKind::ClearSnapshot => "clear_snapshot",
            TaskKind::Catalog => "catalog",
            TaskKind::Resolve => "resolve",
            TaskKind::Fetch => "fetch",
            TaskKind::MatchTables => "match_tables",
            TaskKind::Stop => "stop",
            TaskKind::ClearCommitlog => "clear_commitlog",
            TaskKind::Move => "move",
            TaskKind::Start => "start",
            TaskKind::WaitUp => "wait_up",
            TaskKind::RebuildIndex => "rebuild_index",
            TaskKind::Import => "import",
            TaskKind::Refresh => "refresh",
            TaskKind::Loader => "loader",
            TaskKind::Repair => "repair",
            TaskKind::Cleanup => "cleanup",
            TaskKind::Exec => "exec",
        }
    }

    /// Whether tasks of this kind only clean up the nodes' own local files (a snapshot after
    /// its upload, a restore's staging folder): shown as clean-up, not as deletions.
    pub fn local_cleanup(self) -> bool {
        matches!(self, TaskKind::ClearSnapshot | TaskKind::Cleanup)
    }

    /// Whether tasks of this kind disrupt the cluster (stop, restart, delete live data).
    pub fn disruptive(self) -> bool {
        matches!(
            self,
            TaskKind::Stop | TaskKind::ClearCommitlog | TaskKind::Move | TaskKind::Start
        )
    }
}

/// What applying a task will do (shown as a symbol in the human view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `+` will run.
    Run,
    /// `=` already satisfied (found by `--refresh`).
    Satisfied,
    /// `<=` read-only.
    Read,
    /// `-` deletes something.
    Delete,
}

/// One task of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedTask {
    /// Stable address, e.g. `upload[cass-01/ks.users]`.
    pub address: String,
    pub kind: TaskKind,
    /// Name of the step that produced the task (the kind's name, or a custom step's name).
    pub step: String,
    /// Host the task runs on; `None` = the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub action: Action,
    pub disruptive: bool,
    /// At most this many tasks of the same step run at once (e.g. 1 for rolling restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_limit: Option<u32>,
    /// Runs even when an upstream task failed, once every upstream task has finished or been
    /// skipped (like `finally`): e.g. clearing a snapshot after a failed upload.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub always: bool,
    /// Addresses of the tasks that must finish first (all earlier in `tasks`).
    #[serde(default)]
    pub after: Vec<String>,
    /// Task parameters (kind specific, e.g. `{"keyspace": "ks", "table": "users"}`).
    #[serde(default)]
    pub params: crate::graph::params::Params,
    /// Why the action was chosen (from refresh), shown in the human view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where the plan came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SourceInfo {
    pub path: String,
    pub sha256: String,
}

/// Values captured when the plan was made (so a saved plan is reproducible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Inputs {
    /// The captured clock, RFC 3339 UTC.
    pub now: String,
    /// Rendered backup name (backup plans) or resolved source (restore plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
}

/// The state a plan was computed against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StateRef {
    pub lineage: String,
    pub serial: u64,
}

/// Counts shown in the summary line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub to_run: usize,
    pub satisfied: usize,
    pub disruptive: usize,
    pub to_delete: usize,
    pub read_only: usize,
    /// Local clean-up tasks (`clear_snapshot`, restore `cleanup`): they remove the nodes' own
    /// snapshot or staging files, never stored backups or live data (counted in `to_run`).
    #[serde(default)]
    pub cleanup: usize,
}

/// The whole planned run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedRun {
    pub format_version: u32,
    pub cbk_version: String,
    pub source: SourceInfo,
    pub inputs: Inputs,
    pub inputs_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_state: Option<StateRef>,
    /// The resolved plan (templates rendered, defaults applied, no secrets).
    pub plan: PlanFile,
    /// The templates the plan file wrote where `plan` holds their rendering, by setting
    /// (`backup.name`, `restore.source`): what a reviewer checks for a scheduled plan.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub templates: std::collections::BTreeMap<String, String>,
    /// Tasks in a deterministic topological order.
    pub tasks: Vec<PlannedTask>,
    pub summary: Summary,
    /// Warnings (e.g. "targeting is in effect").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
