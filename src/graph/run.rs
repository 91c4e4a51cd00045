//! The planned run: one serialisable value that every view (human, JSON, Markdown, DOT) renders
//! and that `cbk apply` executes. Saved plans are this value written as JSON.

use super::spec::{ParamsOf, TaskSpec};
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
///
/// Saved as `kind` and `params` among the other fields (the order plans have always had);
/// [`TaskSpec`] holds both, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTask {
    /// Stable address, e.g. `upload[cass-01/ks.users]`.
    pub address: String,
    /// The kind and its parameters.
    pub spec: TaskSpec,
    /// Name of the step that produced the task (the kind's name, or a custom step's name).
    pub step: String,
    /// Host the task runs on; `None` = the controller.
    pub host: Option<String>,
    pub action: Action,
    pub disruptive: bool,
    /// At most this many tasks of the same step run at once (e.g. 1 for rolling restarts).
    pub step_limit: Option<u32>,
    /// Runs even when an upstream task failed, once every upstream task has finished or been
    /// skipped (like `finally`): e.g. clearing a snapshot after a failed upload.
    pub always: bool,
    /// Addresses of the tasks that must finish first (all earlier in `tasks`).
    pub after: Vec<String>,
    /// Why the action was chosen (from refresh), shown in the human view.
    pub reason: Option<String>,
}

impl PlannedTask {
    /// The kind of task.
    pub fn kind(&self) -> TaskKind {
        self.spec.kind()
    }
}

// A task as the plan JSON writes it: the schema, and what a saved plan is read into before
// its `params` are typed by `kind`.
/// One task of the plan.
#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "PlannedTask")]
struct TaskJson {
    /// Stable address, e.g. `upload[cass-01/ks.users]`.
    address: String,
    kind: TaskKind,
    /// Name of the step that produced the task (the kind's name, or a custom step's name).
    step: String,
    /// Host the task runs on; `None` = the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    action: Action,
    disruptive: bool,
    /// At most this many tasks of the same step run at once (e.g. 1 for rolling restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step_limit: Option<u32>,
    /// Runs even when an upstream task failed, once every upstream task has finished or been
    /// skipped (like `finally`): e.g. clearing a snapshot after a failed upload.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    always: bool,
    /// Addresses of the tasks that must finish first (all earlier in `tasks`).
    #[serde(default)]
    after: Vec<String>,
    /// Task parameters (kind specific, e.g. `{"keyspace": "ks", "table": "users"}`).
    #[serde(default = "no_params")]
    #[schemars(with = "ParamsSchema")]
    params: serde_json::Value,
    /// Why the action was chosen (from refresh), shown in the human view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn no_params() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// The schema of `params`: an object whose keys depend on the kind.
struct ParamsSchema;

impl JsonSchema for ParamsSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Params".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Kind-specific task parameters.",
            "type": "object",
            "additionalProperties": true
        })
    }
}

impl JsonSchema for PlannedTask {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        TaskJson::schema_name()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        TaskJson::json_schema(g)
    }
}

impl Serialize for PlannedTask {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut t = s.serialize_struct("PlannedTask", 11)?;
        t.serialize_field("address", &self.address)?;
        t.serialize_field("kind", &self.kind())?;
        t.serialize_field("step", &self.step)?;
        if let Some(h) = &self.host {
            t.serialize_field("host", h)?;
        }
        t.serialize_field("action", &self.action)?;
        t.serialize_field("disruptive", &self.disruptive)?;
        if let Some(l) = &self.step_limit {
            t.serialize_field("step_limit", l)?;
        }
        if self.always {
            t.serialize_field("always", &true)?;
        }
        t.serialize_field("after", &self.after)?;
        t.serialize_field("params", &ParamsOf(&self.spec))?;
        if let Some(r) = &self.reason {
            t.serialize_field("reason", r)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for PlannedTask {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PlannedTask, D::Error> {
        let t = TaskJson::deserialize(d)?;
        let spec = TaskSpec::from_parts(t.kind, t.params).map_err(|e| {
            serde::de::Error::custom(format!(
                "task `{}`: params of a `{}` task: {e}",
                t.address,
                t.kind.as_str()
            ))
        })?;
        Ok(PlannedTask {
            address: t.address,
            spec,
            step: t.step,
            host: t.host,
            action: t.action,
            disruptive: t.disruptive,
            step_limit: t.step_limit,
            always: t.always,
            after: t.after,
            reason: t.reason,
        })
    }
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
