//! Backup tasks: probe, flush, snapshot, upload (through the agent), node manifest (written
//! last), clear_snapshot and the cluster catalog.

use super::node::{self, nt_err};
use super::{Runtime, store_err};
use crate::cassandra::nodetool::{self, NodetoolError, SnapshotTargets};
use crate::exec::{Check, Outcome, TaskContext, TaskError};
use crate::graph::run::{PlannedTask, TaskKind};
use crate::plan::model::{BackupConfig, BackupMode};
use crate::repo::keys;
use crate::repo::manifest::{
    BackupKind, Catalog, CatalogHost, IndexEntry, NodeManifest, ProbeInfo, TableEntry, Totals,
};
use crate::store::{Store, StoreError};
use std::sync::Arc;

fn backup_config(rt: &Runtime) -> Result<&BackupConfig, TaskError> {
    rt.run
        .plan
        .backup
        .as_ref()
        .ok_or_else(|| TaskError::fatal("the plan has no [backup] section"))
}

/// The backup's name (the rendered template, captured when the plan was made).
pub fn backup_name(rt: &Runtime) -> Result<String, TaskError> {
    rt.run
        .inputs
        .backup_name
        .clone()
        .ok_or_else(|| TaskError::fatal("the plan has no rendered backup name"))
}

fn kind(rt: &Runtime) -> BackupKind {
    match rt.run.plan.backup.as_ref().map(|b| b.mode) {
        Some(BackupMode::Incremental) => BackupKind::Incremental,
        _ => BackupKind::Snapshot,
    }
}

fn json<T: serde::Serialize>(v: &T) -> bytes::Bytes {
    serde_json::to_vec_pretty(v).unwrap_or_default().into()
}

async fn get_json<T: serde::de::DeserializeOwned>(
    store: &Arc<dyn Store>,
    key: &str,
) -> Result<Option<T>, TaskError> {
    match store.get_bytes(key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| TaskError::fatal(format!("`{key}` is unreadable: {e}"))),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(store_err(e)),
    }
}

/// Reads what probe stored for `host`.
pub async fn probe_info(rt: &Runtime, host: &str) -> Result<ProbeInfo, TaskError> {
    let store = rt.store().await?;
    let key = keys::probe_key(&backup_name(rt)?, host);
    get_json(&store, &key)
        .await?
        .ok_or_else(|| TaskError::fatal(format!("probe results of {host} are missing (`{key}`)")))
}

/// `probe[HOST]`: host id, dc/rack, version, tokens and folders; stored for the later tasks.
pub async fn probe(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Outcome, TaskError> {
    let info = nodetool::parse_info(
        &node::nodetool(rt, host, &["info".into()])
            .await
            .map_err(nt_err)?,
    )
    .map_err(nt_err)?;
    let version = nodetool::parse_version(
        &node::nodetool(rt, host, &["version".into()])
            .await
            .map_err(nt_err)?,
    )
    .map_err(nt_err)?;
    let tokens = node::tokens(rt, host).await.unwrap_or_default();
    let disk = node::inspect(rt, host, None).await?;
    let probe = ProbeInfo {
        host: host.to_string(),
        host_id: info.host_id.clone(),
        dc: info.datacenter.clone().unwrap_or_default(),
        rack: info.rack.clone().unwrap_or_default(),
        cassandra_version: version.raw.clone(),
        tokens,
        data_dirs: disk.data_dirs,
        commitlog_dir: Some(disk.commitlog_dir),
    };
    if let Some(name) = rt.run.inputs.backup_name.as_deref()
        && rt.run.plan.storage.is_some()
    {
        let store = rt.store().await?;
        store
            .put_bytes(&keys::probe_key(name, host), json(&probe))
            .await
            .map_err(store_err)?;
    }
    Ok(Outcome {
        summary: format!(
            "Cassandra {} host id {} ({}/{})",
            probe.cassandra_version, probe.host_id, probe.dc, probe.rack
        ),
        data: serde_json::to_value(&probe).unwrap_or_default(),
    })
}

/// Keyspaces named literally by the plan's include patterns (empty = all keyspaces).
fn snapshot_keyspaces(cfg: &BackupConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in &cfg.include {
        let ks = p.split_once('.').map(|(k, _)| k).unwrap_or(p);
        if ks.chars().any(|c| matches!(c, '*' | '?' | '[' | '{')) {
            return Vec::new();
        }
        if !out.iter().any(|k| k == ks) {
            out.push(ks.to_string());
        }
    }
    if !out.is_empty() && cfg.system_keyspaces != crate::plan::model::SystemKeyspaces::None {
        out.push("system_schema".into());
    }
    out
}

/// `flush[HOST]`: `nodetool flush` before an incremental upload (one call per keyspace: flush
/// takes one keyspace and optional tables).
pub async fn flush(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Outcome, TaskError> {
    let keyspaces = snapshot_keyspaces(backup_config(rt)?);
    if keyspaces.is_empty() {
        node::nodetool(rt, host, &["flush".to_string()])
            .await
            .map_err(nt_err)?;
    }
    for ks in &keyspaces {
        node::nodetool(rt, host, &["flush".to_string(), "--".into(), ks.clone()])
            .await
            .map_err(nt_err)?;
    }
    let what = if keyspaces.is_empty() {
        "all keyspaces".to_string()
    } else {
        keyspaces.join(", ")
    };
    Ok(Outcome {
        summary: format!("memtables flushed ({what})"),
        data: serde_json::Value::Null,
    })
}

/// The backup's snapshot tag and whether it is on the node's disk.
async fn snapshot_on_disk(rt: &Runtime, host: &str) -> Result<(String, bool), TaskError> {
    let tag = backup_name(rt)?;
    let disk = node::inspect(rt, host, Some(&tag)).await?;
    Ok((tag, disk.snapshot_present == Some(true)))
}

/// `snapshot[HOST]` is satisfied when the tag is already on disk.
pub async fn snapshot_check(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
) -> Result<Check, TaskError> {
    let (tag, present) = snapshot_on_disk(rt, host).await?;
    Ok(if present {
        Check::Satisfied(format!("snapshot {tag} already exists"))
    } else {
        Check::Needed
    })
}

/// `snapshot[HOST]`: `nodetool snapshot -t NAME [keyspaces]`.
pub async fn snapshot(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Outcome, TaskError> {
    let cfg = backup_config(rt)?;
    let tag = backup_name(rt)?;
    let version = nodetool::parse_version(
        &node::nodetool(rt, host, &["version".into()])
            .await
            .map_err(nt_err)?,
    )
    .map_err(nt_err)?;
    let profile = version
        .profile()
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let mut keyspaces = snapshot_keyspaces(cfg);
    if profile < crate::cassandra::version::VersionProfile::V3_0 {
        // 2.x keeps its schema in `system`, not in a `system_schema` keyspace.
        keyspaces.retain(|k| k != "system_schema");
    }
    let targets = SnapshotTargets::Keyspaces(keyspaces);
    let args = nodetool::snapshot_args(profile, &tag, &targets, cfg.flush == Some(false), None)
        .map_err(nt_err)?;
    match node::nodetool(rt, host, &args).await {
        Ok(_) => Ok(Outcome {
            summary: format!("snapshot {tag} taken"),
            data: serde_json::Value::Null,
        }),
        Err(NodetoolError::SnapshotExists { .. }) => Ok(Outcome {
            summary: format!("snapshot {tag} already existed"),
            data: serde_json::Value::Null,
        }),
        Err(e) => Err(nt_err(e)),
    }
}

/// Include patterns of one upload task (`params.include`), else the plan's.
fn task_include(task: &PlannedTask, cfg: &BackupConfig) -> Vec<String> {
    if let Some(list) = task.params.get("include").and_then(|v| v.as_array()) {
        return list
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
    }
    if let Some(p) = task.params.get("pattern").and_then(|v| v.as_str()) {
        return vec![p.to_string()];
    }
    if let (Some(k), Some(t)) = (
        task.params.get("keyspace").and_then(|v| v.as_str()),
        task.params.get("table").and_then(|v| v.as_str()),
    ) {
        return vec![format!("{k}.{t}")];
    }
    cfg.include.clone()
}

/// The newest node manifest of a host (other than `except`), by name (names sort by time).
async fn latest_manifest(
    store: &Arc<dyn Store>,
    host_id: &str,
    except: &str,
) -> Result<Option<String>, TaskError> {
    let list = store
        .list(&keys::node_manifests_prefix(host_id))
        .await
        .map_err(store_err)?;
    Ok(list
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k != &keys::node_manifest_key(host_id, except))
        .max())
}

/// `upload[HOST/...]` and `upload_incremental[HOST]`: the agent stores the files.
pub async fn upload(
    rt: &Runtime,
    task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let cfg = backup_config(rt)?;
    let name = backup_name(rt)?;
    let probe = probe_info(rt, host).await?;
    let store = rt.store().await?;
    let incremental = task.kind == TaskKind::UploadIncremental;
    let base_manifest = match incremental {
        true => incremental_base(&store, &name, &rt.run.inputs.now)
            .await?
            .map(|b| keys::node_manifest_key(&probe.host_id, &b)),
        false => None,
    };
    let resume = cx
        .checkpoints
        .last(&task.address)
        .and_then(|v| v.get("multipart").cloned())
        .unwrap_or_else(|| serde_json::json!({}));
    let op = serde_json::json!({
        "op": "backup_upload",
        "backup": name,
        "host": host,
        "host_id": probe.host_id,
        "source": if incremental { serde_json::json!("backups") } else { serde_json::json!({"snapshot": name}) },
        "data_dirs": probe.data_dirs,
        "include": task_include(task, cfg),
        "exclude": cfg.exclude,
        "system_keyspaces": cfg.system_keyspaces,
        "codec": cfg.codec.clone().unwrap_or_else(|| "zstd".into()),
        "compress_compressed": cfg.compress_compressed,
        "file_concurrency": rt.run.plan.limits.file_concurrency,
        "previous_manifest": latest_manifest(&store, &probe.host_id, &name).await?,
        "resume": resume,
        "delete_uploaded": incremental,
        "base_manifest": base_manifest,
    });
    let r = node::agent(rt, host, op, Some((cx, &task.address))).await?;
    let n = |k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    Ok(Outcome {
        summary: format!(
            "{} files ({} bytes): {} uploaded ({} bytes sent), {} already stored{}",
            n("files"),
            n("bytes"),
            n("uploaded_files"),
            n("uploaded_bytes"),
            n("skipped_files"),
            match n("covered_files") {
                0 => String::new(),
                c => format!(
                    "; {c} backups/ files left out (sstables flushed before the base snapshot, which holds their data)"
                ),
            }
        ),
        data: r,
    })
}

/// `manifest[HOST]` is satisfied when the node manifest exists.
pub async fn manifest_check(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
) -> Result<Check, TaskError> {
    let store = rt.store().await?;
    let Some(probe) =
        get_json::<ProbeInfo>(&store, &keys::probe_key(&backup_name(rt)?, host)).await?
    else {
        return Ok(Check::Needed);
    };
    let key = keys::node_manifest_key(&probe.host_id, &backup_name(rt)?);
    Ok(match store.head(&key).await.map_err(store_err)? {
        Some(_) => Check::Satisfied(format!("node manifest `{key}` exists")),
        None => Check::Needed,
    })
}

/// The base snapshot backup of an incremental: the newest complete snapshot backup planned
/// before it (`created`, the plans' clocks: names need not sort by time, e.g. `nightly-*`
/// and `hourly-*`).
async fn incremental_base(
    store: &Arc<dyn Store>,
    name: &str,
    created: &str,
) -> Result<Option<String>, TaskError> {
    let at = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let Some(me) = at(created) else {
        return Ok(None);
    };
    let mut best: Option<(jiff::Timestamp, String)> = None;
    for o in store.list(keys::INDEX_PREFIX).await.map_err(store_err)? {
        if let Some(e) = get_json::<IndexEntry>(store, &o.key).await?
            && e.kind == BackupKind::Snapshot
            && e.backup != name
            && let Some(t) = at(&e.created)
            && t < me
            && best.as_ref().is_none_or(|b| *b < (t, e.backup.clone()))
        {
            best = Some((t, e.backup));
        }
    }
    Ok(best.map(|(_, b)| b))
}

/// `manifest[HOST]`: merges the per-table results and writes the node manifest, last.
pub async fn manifest(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Outcome, TaskError> {
    let name = backup_name(rt)?;
    let store = rt.store().await?;
    let probe = probe_info(rt, host).await?;
    let mut tables: Vec<TableEntry> = Vec::new();
    for o in store
        .list(&keys::parts_prefix(&name, host))
        .await
        .map_err(store_err)?
    {
        if let Some(t) = get_json::<TableEntry>(&store, &o.key).await? {
            tables.push(t);
        }
    }
    tables.sort_by(|a, b| (&a.keyspace, &a.table, &a.id).cmp(&(&b.keyspace, &b.table, &b.id)));
    let kind = kind(rt);
    let base = match kind {
        BackupKind::Incremental => incremental_base(&store, &name, &rt.run.inputs.now).await?,
        BackupKind::Snapshot => None,
    };
    let totals = Totals::of(&tables);
    let m = NodeManifest {
        format: crate::repo::REPO_FORMAT_VERSION,
        backup: name.clone(),
        kind,
        base,
        cluster: rt.run.plan.cluster.name.clone(),
        node: probe.clone(),
        snapshot_tag: (kind == BackupKind::Snapshot).then(|| name.clone()),
        created: rt.run.inputs.now.clone(),
        completed: jiff::Timestamp::now().to_string(),
        tables,
        totals: totals.clone(),
    };
    let key = keys::node_manifest_key(&probe.host_id, &name);
    store.put_bytes(&key, json(&m)).await.map_err(store_err)?;
    Ok(Outcome {
        summary: format!(
            "node manifest {key}: {} tables, {} files, {} bytes",
            m.tables.len(),
            totals.files,
            totals.bytes
        ),
        data: serde_json::json!({ "key": key }),
    })
}

/// `clear_snapshot[HOST]` is satisfied when the tag is gone.
pub async fn clear_snapshot_check(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
) -> Result<Check, TaskError> {
    let (tag, present) = snapshot_on_disk(rt, host).await?;
    Ok(if present {
        Check::Needed
    } else {
        Check::Satisfied(format!("snapshot {tag} is not on the node"))
    })
}

/// `clear_snapshot[HOST]`: `nodetool clearsnapshot -t NAME` (never without a tag).
pub async fn clear_snapshot(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
) -> Result<Outcome, TaskError> {
    let tag = backup_name(rt)?;
    let args = nodetool::clearsnapshot_args(&tag, &[]).map_err(nt_err)?;
    node::nodetool(rt, host, &args).await.map_err(nt_err)?;
    Ok(Outcome {
        summary: format!("snapshot {tag} cleared"),
        data: serde_json::Value::Null,
    })
}

/// `catalog` is satisfied when the catalog exists.
pub async fn catalog_check(rt: &Runtime) -> Result<Check, TaskError> {
    let store = rt.store().await?;
    let key = keys::catalog_key(&backup_name(rt)?);
    Ok(match store.head(&key).await.map_err(store_err)? {
        Some(_) => Check::Satisfied(format!("catalog `{key}` exists")),
        None => Check::Needed,
    })
}

/// `catalog`: the cluster manifest and the index entry, after every node manifest.
pub async fn catalog(rt: &Runtime) -> Result<Outcome, TaskError> {
    let name = backup_name(rt)?;
    let store = rt.store().await?;
    let mut hosts = Vec::new();
    let mut totals = Totals::default();
    let mut base = None;
    for h in &rt.run.plan.cluster.hosts {
        let host = h.spec().name;
        let probe = probe_info(rt, &host).await?;
        let key = keys::node_manifest_key(&probe.host_id, &name);
        let m: NodeManifest = get_json(&store, &key).await?.ok_or_else(|| {
            TaskError::fatal(format!("node manifest of {host} is missing (`{key}`)"))
        })?;
        totals.files += m.totals.files;
        totals.bytes += m.totals.bytes;
        totals.stored_bytes += m.totals.stored_bytes;
        base = base.or(m.base.clone());
        hosts.push(CatalogHost {
            name: host,
            host_id: probe.host_id,
            dc: probe.dc,
            rack: probe.rack,
            manifest: key,
            totals: m.totals,
        });
    }
    let c = Catalog {
        format: crate::repo::REPO_FORMAT_VERSION,
        backup: name.clone(),
        kind: kind(rt),
        base,
        cluster: rt.run.plan.cluster.name.clone(),
        created: rt.run.inputs.now.clone(),
        completed: jiff::Timestamp::now().to_string(),
        plan_sha256: rt.run.source.sha256.clone(),
        cbk_version: crate::VERSION.to_string(),
        hosts,
        totals: totals.clone(),
    };
    let marker = serde_json::json!({"format": "cbk-repository", "version": crate::repo::REPO_FORMAT_VERSION});
    store
        .put_if_absent(keys::FORMAT_KEY, json(&marker))
        .await
        .map_err(store_err)?;
    store
        .put_bytes(&keys::catalog_key(&name), json(&c))
        .await
        .map_err(store_err)?;
    store
        .put_bytes(&keys::index_key(&name), json(&IndexEntry::from(&c)))
        .await
        .map_err(store_err)?;
    Ok(Outcome {
        summary: format!(
            "backup {name} complete: {} hosts, {} files, {} bytes",
            c.hosts.len(),
            totals.files,
            totals.bytes
        ),
        data: serde_json::Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_base_is_the_newest_snapshot_planned_before_whatever_the_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            crate::store::fs::FsStore::new(&dir.path().display().to_string()).expect("store"),
        );
        for (name, kind, created) in [
            (
                "nightly-20260401T0000Z",
                BackupKind::Snapshot,
                "2026-04-01T00:00:00Z",
            ),
            (
                "nightly-20260402T0000Z",
                BackupKind::Snapshot,
                "2026-04-02T00:00:00Z",
            ),
            (
                "adhoc-20260401T1200Z",
                BackupKind::Snapshot,
                "2026-04-01T12:00:00Z",
            ),
            (
                "hourly-20260401T0600Z",
                BackupKind::Incremental,
                "2026-04-01T06:00:00Z",
            ),
        ] {
            let e = IndexEntry {
                backup: name.into(),
                kind,
                base: None,
                cluster: "prod".into(),
                created: created.into(),
                completed: created.into(),
                hosts: vec![],
                totals: Totals::default(),
            };
            store
                .put_bytes(&keys::index_key(name), json(&e))
                .await
                .expect("put");
        }
        let base = |at: &'static str| {
            let store = store.clone();
            async move {
                incremental_base(&store, "hourly-x", at)
                    .await
                    .expect("base")
            }
        };
        // `hourly-*` sorts before `nightly-*`: the name order must not matter.
        assert_eq!(
            base("2026-04-01T06:00:00Z").await.as_deref(),
            Some("nightly-20260401T0000Z")
        );
        assert_eq!(
            base("2026-04-01T18:00:00Z").await.as_deref(),
            Some("adhoc-20260401T1200Z")
        );
        assert_eq!(
            base("2026-04-03T00:00:00Z").await.as_deref(),
            Some("nightly-20260402T0000Z")
        );
        assert_eq!(base("2026-03-31T00:00:00Z").await, None);
    }
}
