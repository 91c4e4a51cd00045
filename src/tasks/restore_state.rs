//! What the restore tasks hand each other through the journal (`resolve` -> `fetch` ->
//! `match_tables` -> the loading tasks), whatever the source of the backup: the types of those
//! checkpoints and the helpers that read and write them. The restore flow
//! ([`super::restore`]), the sources ([`super::restore_source`]), `loader` and the delta
//! comparison all use these and nothing of each other's internals.

use super::Runtime;
use crate::exec::{TaskContext, TaskError};
use crate::plan::model::RestoreConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Address of the resolve task.
pub(super) const RESOLVE: &str = "resolve";

pub(super) fn restore_config(rt: &Runtime) -> Result<&RestoreConfig, TaskError> {
    rt.run
        .plan
        .restore
        .as_ref()
        .ok_or_else(|| TaskError::fatal("the plan has no [restore] section"))
}

/// The names of the plan's hosts: the hosts a restore may write to.
pub(super) fn plan_host_names(rt: &Runtime) -> Vec<String> {
    rt.run
        .plan
        .cluster
        .hosts
        .iter()
        .map(|h| h.spec().name)
        .collect()
}

/// The plan's hosts with their data centers (when the plan gives `dc`).
pub(super) fn plan_targets(rt: &Runtime) -> Vec<super::restore_topology::TargetHost> {
    rt.run
        .plan
        .cluster
        .hosts
        .iter()
        .map(|h| {
            let s = h.spec();
            super::restore_topology::TargetHost {
                name: s.name,
                dc: s.dc,
            }
        })
        .collect()
}

/// The plan host that backed-up host `name` (with `host_id`, when known) restores to: its entry
/// in the host map (by name, then by id) or, without a host map, the plan host of the same name.
pub(super) fn target_host(
    cfg: &RestoreConfig,
    targets: &[String],
    name: &str,
    host_id: Option<&str>,
) -> Option<String> {
    cfg.host_map
        .get(name)
        .or_else(|| host_id.and_then(|id| cfg.host_map.get(id)))
        .cloned()
        .or_else(|| {
            (cfg.host_map.is_empty() && targets.iter().any(|t| t == name)).then(|| name.to_string())
        })
}

/// What `resolve` decided, for every target host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolved {
    pub backup: String,
    pub incrementals: Vec<String>,
    /// Target -> its (first) source.
    pub hosts: BTreeMap<String, ResolvedHost>,
    /// `loader` into another node count: target -> its further sources, in catalog order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub also: BTreeMap<String, Vec<ResolvedHost>>,
    /// The keyspace definitions the restored node manifests record, by backed-up name (absent:
    /// a backup made before cbk recorded them, or a `legacy:` source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspaces: Option<BTreeMap<String, crate::repo::manifest::KeyspaceDef>>,
}

impl Resolved {
    /// Every source `target` restores (none: a `loader` target that only receives).
    pub fn sources(&self, target: &str) -> Vec<&ResolvedHost> {
        self.hosts
            .get(target)
            .into_iter()
            .chain(self.also.get(target).into_iter().flatten())
            .collect()
    }
}

/// The source of one target host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolvedHost {
    pub source_host: String,
    pub host_id: String,
    /// Node manifest keys: the snapshot first, then incrementals in order.
    pub manifests: Vec<String>,
    pub tokens: Vec<String>,
    /// Objects of a `legacy:` source (then `manifests` is empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy: Vec<crate::repo::legacy::LegacyObject>,
    /// `legacy:` source: `<ks>/<table>-<id>` -> key of the snapshot's `schema.cql`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub legacy_schemas: BTreeMap<String, String>,
}

pub(super) fn checkpoint<T: serde::de::DeserializeOwned>(
    cx: &TaskContext,
    address: &str,
) -> Result<T, TaskError> {
    let v = cx.checkpoints.last(address).ok_or_else(|| {
        TaskError::fatal(format!(
            "results of `{address}` are missing from the journal"
        ))
    })?;
    serde_json::from_value(v)
        .map_err(|e| TaskError::fatal(format!("results of `{address}` are unreadable: {e}")))
}

pub(super) fn save<T: Serialize>(
    cx: &TaskContext,
    address: &str,
    v: &T,
) -> Result<serde_json::Value, TaskError> {
    let value = serde_json::to_value(v).map_err(|e| TaskError::fatal(e.to_string()))?;
    cx.checkpoints
        .save(address, &value)
        .map_err(|e| TaskError::fatal(format!("cannot write the journal: {e}")))?;
    Ok(value)
}

/// A table staged on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedTable {
    pub keyspace: String,
    pub table: String,
    /// Table id in the backup.
    pub backup_id: String,
    /// Folder relative to the staging root.
    pub staged: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_cql: Option<String>,
    /// The backed-up host, when the target restores several (`loader`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `ks.table` in the backup, when restored under another name (`target_keyspace`,
    /// `target_table`); `keyspace`/`table` are then the target's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}

/// What `fetch[HOST]` leaves for the later tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    pub staging_root: String,
    pub tables: Vec<StagedTable>,
    pub data_dirs: Vec<String>,
    pub commitlog_dir: String,
    /// Folder of this restore run inside the staging root: its move plan and what it displaced.
    /// (Absent in journals of older versions: the staging root itself.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<String>,
    /// Live files identical to the backup that stay in place (delta restore), absolute paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_live: Vec<String>,
}

impl Staged {
    /// The folder of this run's move plan and displaced files.
    pub fn run_dir(&self) -> &str {
        self.run_dir.as_deref().unwrap_or(&self.staging_root)
    }
}

/// One backed-up table and the live folder it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub keyspace: String,
    pub table: String,
    pub backup_id: String,
    pub live_id: String,
    pub staged: String,
    /// The backed-up host, when the target restores several (`loader`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Mapping {
    /// `ks.table`, and `ks.table from SOURCE` when the target restores several sources: the
    /// name of one load in outcomes and journal records.
    pub fn load_name(&self) -> String {
        match &self.source {
            Some(s) => format!("{}.{} from {s}", self.keyspace, self.table),
            None => format!("{}.{}", self.keyspace, self.table),
        }
    }
}

/// What `fetch[HOST]` staged and how `match_tables[HOST]` mapped it, from the journal.
pub(super) fn staged_and_mapped(
    cx: &TaskContext,
    host: &str,
) -> Result<(Staged, Vec<Mapping>), TaskError> {
    Ok((
        checkpoint(cx, &format!("fetch[{host}]"))?,
        checkpoint(cx, &format!("match_tables[{host}]"))?,
    ))
}
