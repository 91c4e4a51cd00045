//! Backup tasks: probe, flush, snapshot, upload (through the agent), node manifest (written
//! last), clear_snapshot and the cluster catalog.

use super::node::{self, nt_err};
use super::{Runtime, store_err};
use crate::agent::ops::backup::UploadSource;
use crate::agent::ops::inspect::{InspectResult, SnapshotCover};
use crate::agent::protocol::{InspectRequest, UploadRequest};
use crate::cassandra::layout::SnapshotCoverage;
use crate::cassandra::nodetool::{self, NodetoolError, SnapshotTargets};
use crate::exec::{Check, Outcome, TaskContext, TaskError};
use crate::graph::run::PlannedTask;
use crate::graph::spec::{CatalogParams, ClearSnapshotParams, SnapshotParams, UploadParams};
use crate::plan::model::{BackupConfig, BackupMode, SystemKeyspaces};
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

/// A backup name is taken once: a run that finds the catalog of its backup already stored is
/// not the run that wrote it (that run's `probe` tasks are done and a resume skips them), so it
/// stops before any snapshot instead of storing data that no backup would reference.
async fn refuse_complete_backup(rt: &Runtime) -> Result<(), TaskError> {
    let (Some(name), Some(_), Some(_)) = (
        rt.run.inputs.backup_name.as_deref(),
        rt.run.plan.storage.as_ref(),
        rt.run.plan.backup.as_ref(),
    ) else {
        return Ok(());
    };
    let store = rt.store().await?;
    let key = keys::catalog_key(name);
    if store.head(&key).await.map_err(store_err)?.is_none() {
        return Ok(());
    }
    let created = get_json::<Catalog>(&store, &key)
        .await
        .ok()
        .flatten()
        .map(|c| format!(", created {}", c.created))
        .unwrap_or_default();
    Err(TaskError::fatal(format!(
        "backup {name} already exists and is complete (`{key}`{created}); nothing was \
         snapshotted or stored: make a new plan for a new backup"
    )))
}

/// A plan with `[encryption]` writes only to an encrypted repository of the same recipients,
/// a plan without it only to a plain one: a repository never mixes encrypted and plain objects.
async fn check_encryption(rt: &Runtime) -> Result<(), TaskError> {
    if rt.run.plan.storage.is_none() || rt.run.plan.backup.is_none() {
        return Ok(());
    }
    let store = rt.store().await?;
    if store
        .head(keys::FORMAT_KEY)
        .await
        .map_err(store_err)?
        .is_none()
    {
        return Ok(());
    }
    let stored = crate::repo::encrypted::marker_encryption(store.as_ref())
        .await
        .map_err(super::repo_err)?;
    let planned = rt
        .recipients()?
        .map(|r| crate::crypt::MarkerEncryption::of(&r));
    match (stored, planned) {
        (None, None) => Ok(()),
        (Some(s), Some(p)) if s == p => Ok(()),
        (None, Some(_)) => Err(TaskError::fatal(
            "the plan has [encryption] but the repository holds plain backups (its marker \
             records no encryption): use a new storage prefix for encrypted backups, so no \
             repository mixes encrypted and plain objects",
        )),
        (Some(_), None) => Err(TaskError::fatal(
            "the repository is encrypted (see its marker) but the plan has no [encryption]: \
             add the repository's recipients to the plan",
        )),
        (Some(s), Some(p)) => Err(TaskError::fatal(format!(
            "the plan's [encryption] recipients ({}) are not the repository's ({}): list the \
             same recipients (`cbk key list` shows them)",
            p.recipients.join(", "),
            s.recipients.join(", ")
        ))),
    }
}

/// A plan with `object_lock` writes only to a bucket with Object Lock enabled: otherwise every
/// upload would be refused (or, on a server that ignores the headers, nothing would be locked).
async fn check_object_lock(rt: &Runtime) -> Result<(), TaskError> {
    let Some(storage) = rt.run.plan.storage.as_ref() else {
        return Ok(());
    };
    if storage.object_lock.is_none() || rt.run.plan.backup.is_none() {
        return Ok(());
    }
    let store = rt.store().await?;
    if store.object_lock_enabled().await.map_err(store_err)? {
        return Ok(());
    }
    Err(TaskError::fatal(format!(
        "[storage] object_lock is set but {} has no Object Lock enabled (GetObjectLockConfiguration);          nothing was snapshotted or stored: use a bucket created with Object Lock          (`aws s3api create-bucket --object-lock-enabled-for-bucket`), or remove object_lock",
        store.describe()
    )))
}

/// `probe[HOST]`: host id, dc/rack, version, tokens and folders; stored for the later tasks.
pub async fn probe(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Outcome, TaskError> {
    refuse_complete_backup(rt).await?;
    check_encryption(rt).await?;
    check_object_lock(rt).await?;
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
        sealed_tokens: None,
        data_dirs: disk.data_dirs,
        commitlog_dir: Some(disk.commitlog_dir),
    };
    let mut probe = probe;
    if let Some(to) = rt.recipients()? {
        crate::repo::encrypted::seal_probe(&mut probe, &to)
            .map_err(|e| TaskError::fatal(e.to_string()))?;
    }
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

/// The backup's snapshot tag and whether it is on the node's disk (for any table).
async fn snapshot_on_disk(rt: &Runtime, host: &str, tag: &str) -> Result<bool, TaskError> {
    let disk = node::inspect(rt, host, Some(tag)).await?;
    Ok(disk.snapshot_present == Some(true))
}

/// The tables the backup's snapshot must cover on a node: the plan's selection within the
/// keyspaces `nodetool snapshot` is asked for.
fn snapshot_cover(cfg: &BackupConfig) -> SnapshotCover {
    SnapshotCover {
        include: cfg.include.clone(),
        exclude: cfg.exclude.clone(),
        system_keyspaces: cfg.system_keyspaces,
        keyspaces: snapshot_keyspaces(cfg),
    }
}

/// The node's view of the backup's snapshot: where the tag is, how far it covers the selected
/// tables (checked against each table's own manifest.json), and the other tags there.
async fn snapshot_state(
    rt: &Runtime,
    host: &str,
    tag: &str,
) -> Result<(String, InspectResult, SnapshotCoverage), TaskError> {
    let cfg = backup_config(rt)?;
    let tag = tag.to_owned();
    let op = InspectRequest {
        config: node::config_path(rt),
        data_dirs: rt.host_spec(host).data_dirs,
        snapshot_tag: Some(tag.clone()),
        snapshot_cover: Some(snapshot_cover(cfg)),
    };
    let disk = node::agent(rt, host, op, None).await?;
    let cov = disk.snapshot_coverage.clone().ok_or_else(|| {
        TaskError::fatal(format!(
            "the agent on {host} did not check the snapshot's coverage (an older cbk?)"
        ))
    })?;
    Ok((tag, disk, cov))
}

/// `snapshot[HOST]` is satisfied only by a snapshot with the tag that covers every selected
/// table; a leftover or partial one is cleared and taken again by [`snapshot`].
pub async fn snapshot_check(
    rt: &Runtime,
    p: &SnapshotParams,
    host: &str,
) -> Result<Check, TaskError> {
    let (tag, _, cov) = snapshot_state(rt, host, &p.tag).await?;
    Ok(if cov.present() && cov.complete() {
        Check::Satisfied(format!(
            "snapshot {tag} already exists and covers all {} selected tables",
            cov.tables
        ))
    } else {
        Check::Needed
    })
}

/// At most this many gaps are named in a summary.
const GAPS_SHOWN: usize = 4;

fn gaps_text(cov: &SnapshotCoverage) -> String {
    let mut s = cov
        .gaps
        .iter()
        .take(GAPS_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if cov.gaps.len() > GAPS_SHOWN {
        s.push_str(&format!("; {} more", cov.gaps.len() - GAPS_SHOWN));
    }
    s
}

/// `nodetool clearsnapshot -t TAG` (never without a tag).
async fn clear_tag(rt: &Runtime, host: &str, tag: &str) -> Result<(), TaskError> {
    let args = nodetool::clearsnapshot_args(tag, &[]).map_err(nt_err)?;
    node::nodetool(rt, host, &args).await.map_err(nt_err)?;
    Ok(())
}

/// Whether `other` could be a name of the same template as `tag`: same length, digits where
/// `tag` has digits (`prod-eu-weekly-20260101T0300Z` is not a `prod-eu-%Y%m%dT%H%MZ` name).
fn same_shape(other: &str, tag: &str) -> bool {
    other.len() == tag.len()
        && other
            .bytes()
            .zip(tag.bytes())
            .all(|(a, b)| a.is_ascii_digit() == b.is_ascii_digit())
}

/// Clears this plan's stale snapshots on a node: tags with the plan's prefix (`clear_stale`,
/// `nightly-*`) whose backup is complete in the store, left by a run killed between `catalog`
/// and `clear_snapshot`. A tag whose backup is not complete is kept (a run that may still be
/// resumed, or another controller's run in progress) and named.
async fn clear_stale(
    rt: &Runtime,
    p: &SnapshotParams,
    host: &str,
    tag: &str,
    tags: &[String],
) -> Result<Vec<String>, TaskError> {
    let Some(prefix) = p
        .clear_stale
        .as_deref()
        .map(|p| p.trim_end_matches('*'))
        .filter(|p| !p.is_empty())
    else {
        return Ok(Vec::new());
    };
    let store = rt.store().await?;
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    for t in tags
        .iter()
        .filter(|t| t.starts_with(prefix) && *t != tag && same_shape(t, tag))
    {
        if store
            .head(&keys::catalog_key(t))
            .await
            .map_err(store_err)?
            .is_some()
        {
            clear_tag(rt, host, t).await?;
            notes.push(format!(
                "cleared stale snapshot {t} (backup {t} is complete)"
            ));
        } else {
            kept.push(t.clone());
        }
    }
    if !kept.is_empty() {
        notes.push(format!(
            "kept snapshot(s) {} (no complete backup of that name)",
            kept.join(", ")
        ));
    }
    Ok(notes)
}

/// `snapshot[HOST]`: clears this plan's stale snapshots, clears a leftover or partial snapshot
/// with the planned tag, then `nodetool snapshot -t NAME [keyspaces]`.
pub async fn snapshot(rt: &Runtime, p: &SnapshotParams, host: &str) -> Result<Outcome, TaskError> {
    let cfg = backup_config(rt)?;
    let (tag, disk, cov) = snapshot_state(rt, host, &p.tag).await?;
    let notes = clear_stale(
        rt,
        p,
        host,
        &tag,
        disk.snapshot_tags.as_deref().unwrap_or_default(),
    )
    .await?;
    let done = |mut notes: Vec<String>, head: String| {
        notes.insert(0, head);
        Ok(Outcome {
            summary: notes.join("; "),
            data: serde_json::Value::Null,
        })
    };
    let mut retaken = None;
    if disk.snapshot_present == Some(true) {
        if cov.present() && cov.complete() {
            return done(
                notes,
                format!(
                    "snapshot {tag} already existed and covers all {} selected tables",
                    cov.tables
                ),
            );
        }
        clear_tag(rt, host, &tag).await?;
        retaken = Some(if cov.present() {
            format!(
                "partial snapshot {tag} found (covered {} of {} selected tables: {}): cleared and taken again",
                cov.covered,
                cov.tables,
                gaps_text(&cov)
            )
        } else {
            format!("snapshot {tag} of other tables found: cleared and taken again")
        });
    }
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
    node::nodetool(rt, host, &args).await.map_err(|e| match e {
        NodetoolError::SnapshotExists { .. } => TaskError::fatal(format!(
            "snapshot {tag} appeared on {host} while it was being taken again (another run with the same backup name?)"
        )),
        e => nt_err(e),
    })?;
    done(
        notes,
        retaken.unwrap_or_else(|| format!("snapshot {tag} taken")),
    )
}

/// Include and exclude patterns of one upload task (`upload_incremental`: the plan's). An
/// exact table keeps the plan's excludes, as it always did.
fn task_selection(p: Option<&UploadParams>, cfg: &BackupConfig) -> (Vec<String>, Vec<String>) {
    match p {
        Some(UploadParams::Pattern { exclude, pattern }) => {
            (vec![pattern.clone()], exclude.clone())
        }
        Some(UploadParams::Table { keyspace, table }) => {
            (vec![format!("{keyspace}.{table}")], cfg.exclude.clone())
        }
        None => (cfg.include.clone(), cfg.exclude.clone()),
    }
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
    params: Option<&UploadParams>,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let cfg = backup_config(rt)?;
    let name = backup_name(rt)?;
    let probe = probe_info(rt, host).await?;
    let store = rt.store().await?;
    let incremental = params.is_none();
    let recipients = rt.recipients()?;
    // The node reads the file lists of the previous and the base manifest (in clear also in an
    // encrypted repository, format 2; a format-1 manifest, sealed as a whole, tells it nothing,
    // and restore still leaves covered files out).
    let base_manifest = match incremental {
        true => incremental_base(&store, &rt.run.plan.cluster.name, &rt.run.inputs.now)
            .await?
            .map(|b| keys::node_manifest_key(&probe.host_id, &b)),
        false => None,
    };
    let resume = match cx
        .checkpoints
        .last(&task.address)
        .and_then(|v| v.get("multipart").cloned())
    {
        Some(v) => serde_json::from_value(v).map_err(|e| {
            TaskError::fatal(format!(
                "the journal's multipart checkpoints of {} are unreadable: {e}",
                task.address
            ))
        })?,
        None => Default::default(),
    };
    // System keyspaces are stored once per node: by the host's first upload task of the run,
    // not again by every `upload[host/pattern]` task.
    let first = rt
        .run
        .tasks
        .iter()
        .find(|t| t.kind() == task.kind() && t.host.as_deref() == Some(host))
        .map(|t| t.address.as_str());
    let system_keyspaces = if first.is_none_or(|a| a == task.address) {
        cfg.system_keyspaces
    } else {
        SystemKeyspaces::None
    };
    let (include, exclude) = task_selection(params, cfg);
    let op = UploadRequest {
        backup: name.clone(),
        host: host.to_owned(),
        host_id: probe.host_id.clone(),
        source: match incremental {
            true => UploadSource::Backups,
            false => UploadSource::Snapshot(name.clone()),
        },
        data_dirs: probe.data_dirs.clone(),
        include,
        exclude,
        system_keyspaces,
        codec: cfg.codec.clone().unwrap_or_else(|| "zstd".into()),
        compress_compressed: cfg.compress_compressed,
        file_concurrency: rt.run.plan.limits.file_concurrency as usize,
        previous_manifest: latest_manifest(&store, &probe.host_id, &name).await?,
        resume,
        delete_uploaded: incremental,
        base_manifest,
        recipients: recipients.map(|r| r.to_strings()).unwrap_or_default(),
    };
    let r = node::agent(rt, host, op, Some((cx, &task.address))).await?;
    Ok(Outcome {
        summary: format!(
            "{} files ({} bytes): {} uploaded ({} bytes sent), {} already stored{}",
            r.files,
            r.bytes,
            r.uploaded_files,
            r.uploaded_bytes,
            r.skipped_files,
            match r.covered_files {
                0 => String::new(),
                c => format!(
                    "; {c} backups/ files left out (sstables flushed before the base snapshot, which holds their data)"
                ),
            }
        ),
        data: node::data(&r),
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

/// The base snapshot backup of an incremental: `latest` ([`crate::repo::inventory::latest`]) of
/// the plan's cluster as of the incremental's planned time (`created`, the plans' clocks: names
/// need not sort by time, e.g. `nightly-*` and `hourly-*`).
async fn incremental_base(
    store: &Arc<dyn Store>,
    cluster: &str,
    created: &str,
) -> Result<Option<String>, TaskError> {
    let Ok(me) = created.parse::<jiff::Timestamp>() else {
        return Ok(None);
    };
    let backups = crate::repo::inventory::backups(store.as_ref(), Some(cluster))
        .await
        .map_err(|e| match e {
            crate::repo::inventory::RepoError::Store(e) => store_err(e),
            other => TaskError::fatal(other.to_string()),
        })?;
    Ok(crate::repo::inventory::latest(&backups, Some(me)).map(|b| b.entry.backup.clone()))
}

/// The per-table results of a host, sorted.
async fn host_tables(
    store: &Arc<dyn Store>,
    name: &str,
    host: &str,
) -> Result<Vec<TableEntry>, TaskError> {
    let mut tables: Vec<TableEntry> = Vec::new();
    for o in store
        .list(&keys::parts_prefix(name, host))
        .await
        .map_err(store_err)?
    {
        if let Some(t) = get_json::<TableEntry>(store, &o.key).await? {
            tables.push(t);
        }
    }
    tables.sort_by(|a, b| (&a.keyspace, &a.table, &a.id).cmp(&(&b.keyspace, &b.table, &b.id)));
    Ok(tables)
}

/// `manifest[HOST]`: merges the per-table results and writes the node manifest, last.
pub async fn manifest(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Outcome, TaskError> {
    let name = backup_name(rt)?;
    let store = rt.store().await?;
    let probe = probe_info(rt, host).await?;
    let tables = host_tables(&store, &name, host).await?;
    let kind = kind(rt);
    let base = match kind {
        BackupKind::Incremental => {
            incremental_base(&store, &rt.run.plan.cluster.name, &rt.run.inputs.now).await?
        }
        BackupKind::Snapshot => None,
    };
    let totals = Totals::of(&tables);
    let names: std::collections::BTreeSet<&str> =
        tables.iter().map(|t| t.keyspace.as_str()).collect();
    let (keyspaces, defs_note) = match super::restore_keyspaces::read(rt, host).await? {
        Ok(all) => (
            Some(super::restore_keyspaces::record(&all, &names)),
            String::new(),
        ),
        Err(why) => (None, format!("; keyspace definitions not recorded ({why})")),
    };
    let m = NodeManifest {
        format: crate::repo::REPO_FORMAT_VERSION,
        // Set with format 2 when the manifest is sealed (`encrypted::seal_manifest`).
        encryption: None,
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
        keyspaces,
        sealed_keyspaces: None,
    };
    let key = keys::node_manifest_key(&probe.host_id, &name);
    let body = match rt.recipients()? {
        Some(to) => crate::repo::encrypted::seal_manifest(&m, &to)
            .map_err(|e| TaskError::fatal(e.to_string()))?
            .into(),
        None => json(&m),
    };
    let extended = extend_retention(rt, &store, &m.tables).await?;
    store.put_bytes(&key, body).await.map_err(store_err)?;
    let locked = match extended {
        0 => String::new(),
        n => format!("; retention of {n} objects extended"),
    };
    Ok(Outcome {
        summary: format!(
            "node manifest {key}: {} tables, {} files, {} bytes{locked}{defs_note}",
            m.tables.len(),
            totals.files,
            totals.bytes
        ),
        data: serde_json::json!({ "key": key, "retention_extended": extended }),
    })
}

/// With `object_lock`, every object the node manifest references (also those stored by an
/// earlier backup and reused) is locked at least as long as the manifest about to be written:
/// to the date a write an hour from now gets. Done before the manifest, the commit point, so a
/// failure is retried. Returns the number of objects extended.
async fn extend_retention(
    rt: &Runtime,
    store: &Arc<dyn Store>,
    tables: &[TableEntry],
) -> Result<usize, TaskError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let Some(lock) = rt.run.plan.storage.as_ref().and_then(|s| s.object_lock) else {
        return Ok(0);
    };
    let until = lock.retain_until(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1));
    let encrypted = rt.run.plan.encryption.is_some();
    let mut objects: Vec<String> = Vec::new();
    for f in tables.iter().flat_map(|t| &t.files) {
        objects.push(f.key.clone());
        if encrypted {
            objects.push(crate::crypt::stream::key_object(&f.key));
        }
    }
    let n = objects.len();
    stream::iter(objects)
        .map(|k| {
            let store = store.clone();
            async move { store.extend_retention(&k, until).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .map_err(store_err)?;
    Ok(n)
}

/// `clear_snapshot[HOST]` is satisfied when the tag is gone.
pub async fn clear_snapshot_check(
    rt: &Runtime,
    p: &ClearSnapshotParams,
    host: &str,
) -> Result<Check, TaskError> {
    Ok(if snapshot_on_disk(rt, host, &p.tag).await? {
        Check::Needed
    } else {
        Check::Satisfied(format!("snapshot {} is not on the node", p.tag))
    })
}

/// `clear_snapshot[HOST]`: `nodetool clearsnapshot -t NAME` (never without a tag).
pub async fn clear_snapshot(
    rt: &Runtime,
    p: &ClearSnapshotParams,
    host: &str,
) -> Result<Outcome, TaskError> {
    let tag = &p.tag;
    clear_tag(rt, host, tag).await?;
    Ok(Outcome {
        summary: format!("snapshot {tag} cleared"),
        data: serde_json::Value::Null,
    })
}

/// `catalog` is satisfied when the catalog exists.
pub async fn catalog_check(rt: &Runtime, p: &CatalogParams) -> Result<Check, TaskError> {
    let store = rt.store().await?;
    let key = keys::catalog_key(&p.backup);
    Ok(match store.head(&key).await.map_err(store_err)? {
        Some(_) => Check::Satisfied(format!("catalog `{key}` exists")),
        None => Check::Needed,
    })
}

/// `catalog`: the cluster manifest and the index entry, after every node manifest.
pub async fn catalog(rt: &Runtime, p: &CatalogParams) -> Result<Outcome, TaskError> {
    let name = p.backup.clone();
    let store = rt.store().await?;
    let recipients = rt.recipients()?;
    let encrypted = recipients.is_some();
    let mut hosts = Vec::new();
    let mut totals = Totals::default();
    let mut base = None;
    for h in &rt.run.plan.cluster.hosts {
        let host = h.spec().name;
        let probe = probe_info(rt, &host).await?;
        let key = keys::node_manifest_key(&probe.host_id, &name);
        let (node_totals, node_base) = match encrypted {
            // The controller cannot read a sealed manifest: the same sums from the results.
            true => {
                if store.head(&key).await.map_err(store_err)?.is_none() {
                    return Err(TaskError::fatal(format!(
                        "node manifest of {host} is missing (`{key}`)"
                    )));
                }
                let tables = host_tables(&store, &name, &host).await?;
                let base = match kind(rt) {
                    BackupKind::Incremental => {
                        incremental_base(&store, &rt.run.plan.cluster.name, &rt.run.inputs.now)
                            .await?
                    }
                    BackupKind::Snapshot => None,
                };
                (Totals::of(&tables), base)
            }
            false => {
                let m: NodeManifest = get_json(&store, &key).await?.ok_or_else(|| {
                    TaskError::fatal(format!("node manifest of {host} is missing (`{key}`)"))
                })?;
                (m.totals, m.base)
            }
        };
        totals.files += node_totals.files;
        totals.bytes += node_totals.bytes;
        totals.stored_bytes += node_totals.stored_bytes;
        base = base.or(node_base);
        hosts.push(CatalogHost {
            name: host,
            host_id: probe.host_id,
            dc: probe.dc,
            rack: probe.rack,
            manifest: key,
            totals: node_totals,
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
        selection: Some(backup_config(rt)?.selection()),
        hosts,
        totals: totals.clone(),
    };
    let mut marker = serde_json::json!({"format": "cbk-repository", "version": crate::repo::REPO_FORMAT_VERSION});
    if let Some(r) = &recipients {
        marker["encryption"] =
            serde_json::to_value(crate::crypt::MarkerEncryption::of(r)).unwrap_or_default();
    }
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

    #[test]
    fn stale_tags_have_the_shape_of_this_plans_names() {
        let tag = "prod-eu-20261125T0300Z";
        assert!(same_shape("prod-eu-20261124T0300Z", tag));
        assert!(!same_shape("prod-eu-weekly-20261124T0300Z", tag));
        assert!(!same_shape("prod-eu-2026112XT0300Z", tag));
        assert!(!same_shape("prod-eu-20261124T0300", tag));
    }

    /// A complete backup as the repository holds it: node manifest, catalog, index entry.
    async fn put_catalog(
        store: &Arc<dyn Store>,
        name: &str,
        kind: BackupKind,
        cluster: &str,
        created: &str,
    ) {
        let manifest = keys::node_manifest_key(&format!("{cluster}-h1"), name);
        store
            .put_bytes(&manifest, bytes::Bytes::from_static(b"{}"))
            .await
            .expect("put");
        let c = Catalog {
            format: 1,
            backup: name.into(),
            kind,
            base: None,
            cluster: cluster.into(),
            created: created.into(),
            completed: created.into(),
            plan_sha256: String::new(),
            cbk_version: String::new(),
            selection: None,
            hosts: vec![CatalogHost {
                name: "n1".into(),
                host_id: format!("{cluster}-h1"),
                dc: String::new(),
                rack: String::new(),
                manifest,
                totals: Totals::default(),
            }],
            totals: Totals::default(),
        };
        store
            .put_bytes(&keys::catalog_key(name), json(&c))
            .await
            .expect("put");
        store
            .put_bytes(&keys::index_key(name), json(&IndexEntry::from(&c)))
            .await
            .expect("put");
    }

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
            put_catalog(&store, name, kind, "prod", created).await;
        }
        // Another cluster's newer snapshot on the same prefix is never a base.
        put_catalog(
            &store,
            "other-20260401T0500Z",
            BackupKind::Snapshot,
            "other",
            "2026-04-01T05:00:00Z",
        )
        .await;
        let base = |at: &'static str| {
            let store = store.clone();
            async move { incremental_base(&store, "prod", at).await.expect("base") }
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
