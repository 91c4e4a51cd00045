//! Delta restore (`[restore] delta = true`, restart method): before `fetch[HOST]` downloads
//! anything, the node's agent compares the live sstables of the selected tables with the backup
//! (`compare_live`), the identical ones are left out of the fetch and kept in place by the move.
//! The same comparison measures the live bytes the move displaces, which the free-space check
//! before fetch adds to the bytes to stage.

use super::Runtime;
use super::node;
use super::restore_state::{Mapping, StagedTable};
use crate::agent::ops::delta::{BackupFile, CompareRequest, CompareResult, CompareTable};
use crate::agent::ops::fetch::FetchFile;
use crate::agent::ops::inspect::InspectResult;
use crate::exec::TaskError;
use crate::plan::model::{RestoreConfig, RestoreMethod};
use std::collections::BTreeMap;

/// The live folder (`table-id`) a staged table is compared with: the id pinned in
/// `restore.table_ids`, else the backed-up id if that folder is live, else the only live folder
/// of that name. None (no comparison, everything is fetched) when that is ambiguous.
fn live_folder(cfg: &RestoreConfig, disk: &InspectResult, t: &StagedTable) -> Option<String> {
    let name = format!("{}.{}", t.keyspace, t.table);
    if let Some(id) = cfg.table_ids.get(&name) {
        return Some(format!("{}-{}", t.table, id.replace('-', "")));
    }
    let mut ids: Vec<&str> = disk
        .tables
        .iter()
        .filter(|l| l.keyspace == t.keyspace && l.table == t.table)
        .map(|l| l.id.as_str())
        .collect();
    ids.sort();
    ids.dedup();
    let id = if ids.contains(&t.backup_id.as_str()) {
        t.backup_id.as_str()
    } else if let [only] = ids[..] {
        only
    } else {
        return None;
    };
    Some(format!("{}-{id}", t.table))
}

/// Runs `compare_live` on `host` for a `restart` restore (other methods displace nothing and
/// keep nothing: None). With `delta`, the files kept in place are removed from `files`.
pub(super) async fn compare(
    rt: &Runtime,
    host: &str,
    cfg: &RestoreConfig,
    disk: &InspectResult,
    staging_root: &str,
    tables: &BTreeMap<String, StagedTable>,
    files: &mut BTreeMap<String, FetchFile>,
) -> Result<Option<CompareResult>, TaskError> {
    if cfg.method != RestoreMethod::Restart {
        return Ok(None);
    }
    let mut compare = Vec::new();
    for (folder, t) in tables {
        let Some(live) = live_folder(cfg, disk, t) else {
            continue;
        };
        let prefix = format!("{folder}/");
        let backed_up = files
            .iter()
            .filter_map(|(dest, f)| {
                let path = dest.strip_prefix(&prefix)?;
                Some(BackupFile {
                    path: path.to_string(),
                    dest: dest.clone(),
                    size: f.size?,
                    crc32: f.crc32?,
                })
            })
            .collect();
        compare.push(CompareTable {
            keyspace: t.keyspace.clone(),
            folder: live,
            files: backed_up,
        });
    }
    let op = CompareRequest {
        data_dirs: disk.data_dirs.clone(),
        staging_root: staging_root.to_owned(),
        tables: compare,
        delta: cfg.delta,
    };
    let r = node::agent(rt, host, op, None).await?;
    for k in &r.kept {
        files.remove(&k.dest);
    }
    Ok(Some(r))
}

/// `, M kept in place (B bytes)` for the fetch summary of a delta restore.
pub(super) fn kept_text(cfg: &RestoreConfig, r: Option<&CompareResult>) -> String {
    match r {
        Some(r) if cfg.delta => format!(
            ", {} kept in place ({} bytes identical to the backup)",
            r.kept.len(),
            r.kept_bytes
        ),
        _ => String::new(),
    }
}

/// Before anything stops: every kept file lies in the live folder `match_tables` mapped its
/// table to (a pinned or different live id than the one compared means a new plan).
pub(super) fn check_mapping(
    host: &str,
    kept_live: &[String],
    mappings: &[Mapping],
) -> Result<(), TaskError> {
    let inside = |p: &str| {
        mappings.iter().any(|m| {
            let folder = format!("/{}/{}-{}/", m.keyspace, m.table, m.live_id);
            p.contains(&folder)
        })
    };
    match kept_live.iter().find(|p| !inside(p)) {
        None => Ok(()),
        Some(p) => Err(TaskError::fatal(format!(
            "{p} on {host} was kept in place by the delta comparison, but its table now maps to \
             another live folder; make a new plan (`cbk plan`) and apply it, or set \
             restore.delta = false"
        ))),
    }
}
