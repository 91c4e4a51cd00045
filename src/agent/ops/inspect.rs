//! `inspect`: what the node looks like from its own disk — folders from cassandra.yaml, the
//! table folders that exist (with their ids), and whether a snapshot tag is present. Read-only.

use super::{OpError, OpResult};
use crate::cassandra::config::SystemKeyspaces;
use crate::cassandra::layout::{self, SnapshotCoverage, TableFilter};
use crate::cassandra::sstable::SstableName;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InspectRequest {
    /// Path of cassandra.yaml.
    pub config: String,
    /// Data folders from the plan, overriding cassandra.yaml.
    #[serde(default)]
    pub data_dirs: Vec<String>,
    /// Report whether this snapshot tag exists.
    #[serde(default)]
    pub snapshot_tag: Option<String>,
    /// With `snapshot_tag`: the tables the snapshot must cover (`snapshot_coverage` and the
    /// `snapshot_tags` found under these tables come back in the result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_cover: Option<SnapshotCover>,
}

/// Which tables a backup's snapshot must cover: the plan's selection within the keyspaces
/// `nodetool snapshot` was asked for (empty: all keyspaces).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotCover {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub system_keyspaces: SystemKeyspaces,
    #[serde(default)]
    pub keyspaces: Vec<String>,
}

/// A table folder found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFolder {
    pub keyspace: String,
    pub table: String,
    pub id: String,
    /// Live sstables (Data.db files) over all data folders.
    pub sstables: u64,
}

/// The result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectResult {
    pub data_dirs: Vec<String>,
    pub commitlog_dir: String,
    pub incremental_backups: bool,
    pub tables: Vec<TableFolder>,
    /// Plain `<ks>/<table>/` folders (Cassandra would use them instead of the id folders).
    pub legacy_folders: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_present: Option<bool>,
    /// How far the snapshot covers the tables of `snapshot_cover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_coverage: Option<SnapshotCoverage>,
    /// Every snapshot tag present under the tables of `snapshot_cover`, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_tags: Option<Vec<String>>,
}

/// Runs `inspect`.
pub async fn run(req: InspectRequest) -> OpResult<InspectResult> {
    tokio::task::spawn_blocking(move || inspect(&req))
        .await
        .map_err(|e| OpError::fatal(e.to_string()))?
}

fn inspect(req: &InspectRequest) -> OpResult<InspectResult> {
    let text = std::fs::read_to_string(&req.config)
        .map_err(|e| OpError::fatal(format!("cannot read {}: {e}", req.config)))?;
    let install = crate::cassandra::yaml::InstallType::default();
    let yaml = crate::cassandra::yaml::CassandraYaml::parse(&text, &req.config, &install)
        .map_err(|e| OpError::fatal(e.to_string()))?;
    let data_dirs: Vec<String> = if req.data_dirs.is_empty() {
        yaml.data_file_directories
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    } else {
        req.data_dirs.clone()
    };
    let mut result = InspectResult {
        commitlog_dir: yaml.commitlog_directory.display().to_string(),
        incremental_backups: yaml.incremental_backups,
        ..Default::default()
    };
    let mut found = false;
    for dir in &data_dirs {
        scan_data_dir(
            Path::new(dir),
            req.snapshot_tag.as_deref(),
            &mut result,
            &mut found,
        )?;
    }
    result
        .tables
        .sort_by(|a, b| (&a.keyspace, &a.table, &a.id).cmp(&(&b.keyspace, &b.table, &b.id)));
    result.legacy_folders.sort();
    result.legacy_folders.dedup();
    if let (Some(tag), Some(cover)) = (&req.snapshot_tag, &req.snapshot_cover) {
        let filter = TableFilter::new(&cover.include, &cover.exclude, cover.system_keyspaces)
            .map_err(|e| OpError::fatal(e.to_string()))?
            .within_keyspaces(&cover.keyspaces);
        let dirs: Vec<PathBuf> = data_dirs.iter().map(PathBuf::from).collect();
        result.snapshot_coverage = Some(
            layout::snapshot_coverage(&dirs, tag, &filter)
                .map_err(|e| OpError::fatal(e.to_string()))?,
        );
        result.snapshot_tags =
            Some(layout::snapshot_tags(&dirs, &filter).map_err(|e| OpError::fatal(e.to_string()))?);
    }
    result.data_dirs = data_dirs;
    if req.snapshot_tag.is_some() {
        result.snapshot_present = Some(found);
    }
    Ok(result)
}

fn read_dirs(p: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

fn scan_data_dir(
    dir: &Path,
    tag: Option<&str>,
    result: &mut InspectResult,
    found: &mut bool,
) -> OpResult<()> {
    for (ks, ks_path) in read_dirs(dir) {
        for (folder, path) in read_dirs(&ks_path) {
            let Some(td) = crate::cassandra::layout::parse_table_dir(&folder) else {
                continue;
            };
            let Some(id) = td.id else {
                result.legacy_folders.push(path.display().to_string());
                continue;
            };
            let (table, id) = (td.table, id.as_hex().to_string());
            let sstables = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.ends_with("-Data.db") && SstableName::parse(&n).is_ok()
                })
                .count() as u64;
            if let Some(t) = tag
                && path.join("snapshots").join(t).is_dir()
            {
                *found = true;
            }
            match result
                .tables
                .iter_mut()
                .find(|x| x.keyspace == ks && x.table == table && x.id == id)
            {
                Some(x) => x.sstables += sstables,
                None => result.tables.push(TableFolder {
                    keyspace: ks.clone(),
                    table,
                    id,
                    sstables,
                }),
            }
        }
    }
    Ok(())
}
