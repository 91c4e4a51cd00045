//! Typed task contracts: [`TaskSpec`] is a task's kind together with its parameters, one
//! variant per [`TaskKind`], each with its own parameter struct. The compiler builds them, the
//! saved plan stores them (`"kind": ..., "params": {...}`, keys sorted as before), and each
//! task implementation reads only its own struct.
//!
//! Field order in each struct is alphabetical and absent optional values are skipped exactly as
//! the plan JSON has always written them, so saved plans and every view are unchanged. The
//! large variants are boxed: a plan of 300,000 tasks keeps each `TaskSpec` at 56 bytes.

use super::run::TaskKind;
use crate::plan::model::{ClearSnapshot, CommandSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Parameters of a kind that takes none (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoParams {}

/// `snapshot[HOST]`: the tag, and the pattern of this plan's stale tags to clear first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_stale: Option<String>,
    pub tag: String,
}

/// `upload[HOST/...]`: one table by exact name, or a glob pattern with the plan's excludes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UploadParams {
    Table {
        keyspace: String,
        table: String,
    },
    Pattern {
        exclude: Vec<String>,
        pattern: String,
    },
}

/// `clear_snapshot[HOST]`: the tag and when to clear it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearSnapshotParams {
    pub policy: ClearSnapshot,
    pub tag: String,
}

/// `catalog`: the backup it completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogParams {
    pub backup: String,
}

/// `resolve`: the source as rendered (`latest`, a backup name, `legacy:...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveParams {
    pub source: Option<String>,
    /// `loader` without a host map: how backup hosts without a target of their name are
    /// assigned (known at `resolve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_sources: Option<String>,
}

/// `fetch[HOST]` and `match_tables[HOST]`: what is restored on the host, and from which host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionParams {
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub source: Option<String>,
    /// The backed-up host restored here (one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host: Option<String>,
    /// `loader`: the backed-up hosts streamed from here when the host map names several, or
    /// none (empty: the host only receives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hosts: Option<Vec<String>>,
}

/// `rebuild_index[HOST]`: the selection whose indexes are rebuilt, and what that means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildIndexParams {
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub indexes: String,
}

/// `move`, `import`, `refresh`: the backed-up host whose data lands here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHostParams {
    /// The backed-up host restored here (one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host: Option<String>,
    /// `loader`: the backed-up hosts streamed from here when the host map names several, or
    /// none (empty: the host only receives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hosts: Option<Vec<String>>,
}

/// `loader[HOST]`: sstableloader contact points and the backed-up host it streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderParams {
    pub nodes: Vec<String>,
    /// The backed-up host restored here (one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host: Option<String>,
    /// `loader`: the backed-up hosts streamed from here when the host map names several, or
    /// none (empty: the host only receives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hosts: Option<Vec<String>>,
}

/// `repair[HOST]`: extra `nodetool repair` options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairParams {
    pub options: Vec<String>,
}

/// `exec[STEP/HOST]`: a custom step's rendered command, and its check, creates and sudo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    #[serde(default)]
    pub run: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<bool>,
}

/// Declares [`TaskSpec`] and its one mapping to and from [`TaskKind`] from one list, so a
/// kind without parameters, or parameters without a kind, cannot compile.
macro_rules! task_specs {
    ($($variant:ident($params:ty)),* $(,)?) => {
        /// A task's kind and its typed parameters (saved as `"kind"` and `"params"`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "params", rename_all = "snake_case")]
        pub enum TaskSpec {
            $($variant($params),)*
        }

        impl TaskSpec {
            /// The kind of task.
            pub fn kind(&self) -> TaskKind {
                match self {
                    $(TaskSpec::$variant(_) => TaskKind::$variant,)*
                }
            }

            /// The parameters as one JSON object (what the views show).
            pub fn params_json(&self) -> Value {
                let v = match self {
                    $(TaskSpec::$variant(p) => serde_json::to_value(p),)*
                };
                v.unwrap_or_default()
            }

            /// The spec of `kind` with `params` as a saved plan holds them (`null`: none).
            pub fn from_parts(kind: TaskKind, params: Value) -> Result<TaskSpec, serde_json::Error> {
                let params = match params {
                    Value::Null => Value::Object(Default::default()),
                    p => p,
                };
                Ok(match kind {
                    $(TaskKind::$variant => TaskSpec::$variant(serde_json::from_value(params)?),)*
                })
            }

            /// Writes the parameters alone (the saved plan's `params` field).
            pub(crate) fn serialize_params<S: serde::Serializer>(
                &self,
                s: S,
            ) -> Result<S::Ok, S::Error> {
                match self {
                    $(TaskSpec::$variant(p) => p.serialize(s),)*
                }
            }
        }
    };
}

task_specs!(
    Probe(NoParams),
    Flush(NoParams),
    Snapshot(SnapshotParams),
    Upload(UploadParams),
    UploadIncremental(NoParams),
    Manifest(NoParams),
    ClearSnapshot(ClearSnapshotParams),
    Catalog(CatalogParams),
    Resolve(ResolveParams),
    Fetch(Box<SelectionParams>),
    MatchTables(Box<SelectionParams>),
    Stop(NoParams),
    ClearCommitlog(NoParams),
    Move(SourceHostParams),
    Start(NoParams),
    WaitUp(NoParams),
    RebuildIndex(Box<RebuildIndexParams>),
    Import(SourceHostParams),
    Refresh(SourceHostParams),
    Loader(Box<LoaderParams>),
    Repair(RepairParams),
    Cleanup(NoParams),
    Exec(Box<ExecParams>),
);

/// The parameters of a spec, serialised on their own (for [`super::run::PlannedTask`]'s
/// `params` field).
pub(crate) struct ParamsOf<'a>(pub &'a TaskSpec);

impl Serialize for ParamsOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_params(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_json_as_the_sorted_params() {
        let cases = [
            (TaskKind::Probe, json!({})),
            (
                TaskKind::Snapshot,
                json!({"clear_stale": "n-*", "tag": "n-1"}),
            ),
            (TaskKind::Snapshot, json!({"tag": "n-1"})),
            (TaskKind::Upload, json!({"keyspace": "ks", "table": "t"})),
            (
                TaskKind::Upload,
                json!({"exclude": ["a.b"], "pattern": "ks.*"}),
            ),
            (
                TaskKind::ClearSnapshot,
                json!({"policy": "always", "tag": "n"}),
            ),
            (TaskKind::Resolve, json!({"source": null})),
            (
                TaskKind::Fetch,
                json!({"exclude": [], "include": ["ks.*"], "source": "latest", "source_host": "h"}),
            ),
            (TaskKind::Exec, json!({"run": "true"})),
            (
                TaskKind::Exec,
                json!({"check": ["test", "-f", "x"], "creates": "/x", "run": null, "sudo": false}),
            ),
        ];
        for (kind, params) in cases {
            let spec = TaskSpec::from_parts(kind, params.clone()).expect("parses");
            assert_eq!(spec.kind(), kind);
            let text = serde_json::to_string(&ParamsOf(&spec)).unwrap();
            assert_eq!(text, params.to_string(), "{kind:?}");
            assert_eq!(spec.params_json(), params);
            let tagged = serde_json::to_value(&spec).unwrap();
            assert_eq!(tagged, json!({"kind": kind, "params": params}));
        }
        assert_eq!(
            TaskSpec::from_parts(TaskKind::Stop, Value::Null).unwrap(),
            TaskSpec::Stop(NoParams {})
        );
        assert!(TaskSpec::from_parts(TaskKind::Catalog, json!({})).is_err());
    }

    #[test]
    fn specs_stay_small() {
        assert!(
            std::mem::size_of::<TaskSpec>() <= 56,
            "{}",
            std::mem::size_of::<TaskSpec>()
        );
    }
}
