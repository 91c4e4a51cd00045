//! Restore tasks: resolve the source backup, fetch it into staging on every node (verified),
//! match backed-up table folders to live table ids, then the Node Restart Method (stop, clear
//! the commit log, move, start, wait until up, repair) or a no-downtime load (import, refresh).
//!
//! Tasks pass what they learn to later tasks through journal checkpoints, so a resumed restore
//! uses the same backup and the same table mapping even if new backups landed meanwhile.

use super::node::{self, nt_err};
use super::{Runtime, store_err};
use crate::cassandra::layout::TableFilter;
use crate::exec::{Check, Outcome, TaskContext, TaskError};
use crate::graph::run::{PlannedTask, TaskKind};
use crate::plan::model::{CommandSpec, RestoreConfig, RestoreMethod, SystemKeyspaces};
use crate::repo::keys;
use crate::repo::manifest::{BackupKind, Catalog, IndexEntry, NodeManifest};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Address of the resolve task.
pub(super) const RESOLVE: &str = "resolve";

pub(super) fn restore_config(rt: &Runtime) -> Result<&RestoreConfig, TaskError> {
    rt.run
        .plan
        .restore
        .as_ref()
        .ok_or_else(|| TaskError::fatal("the plan has no [restore] section"))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    store: &Arc<dyn Store>,
    key: &str,
) -> Result<T, TaskError> {
    match store.get_bytes(key).await {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| TaskError::fatal(format!("`{key}` is unreadable: {e}"))),
        Err(StoreError::NotFound(_)) => Err(TaskError::fatal(format!(
            "`{key}` is missing from the store"
        ))),
        Err(e) => Err(store_err(e)),
    }
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
    pub hosts: BTreeMap<String, ResolvedHost>,
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

/// Which backup a source spec names, among the index entries.
fn choose(entries: &[IndexEntry], source: &str) -> Result<(String, Vec<String>), String> {
    let snapshots = entries.iter().filter(|e| e.kind == BackupKind::Snapshot);
    let (base, until): (Option<&IndexEntry>, Option<String>) = if source == "latest" {
        (snapshots.max_by(|a, b| a.backup.cmp(&b.backup)), None)
    } else if let Some(t) = source.strip_prefix("latest-before:") {
        let t = t
            .trim()
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("bad time in `{source}`: {e}"))?;
        let before = |e: &&IndexEntry| {
            e.created
                .parse::<jiff::Timestamp>()
                .map(|c| c <= t)
                .unwrap_or(false)
        };
        (
            snapshots
                .filter(before)
                .max_by(|a, b| a.created.cmp(&b.created)),
            Some(t.to_string()),
        )
    } else {
        match entries.iter().find(|e| e.backup == source) {
            Some(e) if e.kind == BackupKind::Snapshot => (Some(e), Some(e.created.clone())),
            Some(e) => {
                let base = e
                    .base
                    .as_deref()
                    .ok_or_else(|| format!("incremental `{source}` has no base"))?;
                (
                    entries.iter().find(|b| b.backup == base),
                    Some(e.created.clone()),
                )
            }
            None => return Err(format!("no complete backup named `{source}` in the store")),
        }
    };
    let base = base.ok_or_else(|| format!("no complete snapshot backup matches `{source}`"))?;
    let limit = until.and_then(|u| u.parse::<jiff::Timestamp>().ok());
    let mut incs: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| {
            e.kind == BackupKind::Incremental && e.base.as_deref() == Some(base.backup.as_str())
        })
        .filter(|e| match (&limit, e.created.parse::<jiff::Timestamp>()) {
            (Some(l), Ok(c)) => c <= *l,
            (Some(_), Err(_)) => false,
            (None, _) => true,
        })
        .collect();
    incs.sort_by(|a, b| a.backup.cmp(&b.backup));
    Ok((
        base.backup.clone(),
        incs.into_iter().map(|e| e.backup.clone()).collect(),
    ))
}

/// `resolve`: picks the backup (and incrementals) and maps source hosts to target hosts.
pub async fn resolve(rt: &Runtime, cx: &TaskContext) -> Result<Outcome, TaskError> {
    let cfg = restore_config(rt)?;
    if let Some(spec) = super::restore_legacy::spec(&cfg.source) {
        return super::restore_legacy::resolve(rt, cx, cfg, spec).await;
    }
    let store = rt.store().await?;
    let mut entries = Vec::new();
    for o in store.list(keys::INDEX_PREFIX).await.map_err(store_err)? {
        entries.push(get_json::<IndexEntry>(&store, &o.key).await?);
    }
    let (backup, mut incrementals) = choose(&entries, &cfg.source).map_err(TaskError::fatal)?;
    if cfg.incrementals == Some(false) {
        incrementals.clear();
    }
    let catalog: Catalog = get_json(&store, &keys::catalog_key(&backup)).await?;
    let targets = plan_host_names(rt);
    let mut hosts = BTreeMap::new();
    for h in &catalog.hosts {
        let Some(target) = target_host(cfg, &targets, &h.name, Some(&h.host_id)) else {
            continue;
        };
        let mut manifests = vec![h.manifest.clone()];
        for inc in &incrementals {
            let key = keys::node_manifest_key(&h.host_id, inc);
            if store.head(&key).await.map_err(store_err)?.is_some() {
                manifests.push(key);
            }
        }
        let m: NodeManifest = get_json(&store, &h.manifest).await?;
        hosts.insert(
            target,
            ResolvedHost {
                source_host: h.name.clone(),
                host_id: h.host_id.clone(),
                manifests,
                tokens: m.node.tokens,
                legacy: Vec::new(),
                legacy_schemas: BTreeMap::new(),
            },
        );
    }
    let missing: Vec<&String> = targets.iter().filter(|t| !hosts.contains_key(*t)).collect();
    if !missing.is_empty() {
        return Err(TaskError::fatal(format!(
            "backup {backup} has no node for target host(s) {}; map source hosts with restore.host_map",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let r = Resolved {
        backup: backup.clone(),
        incrementals,
        hosts,
    };
    let data = save(cx, RESOLVE, &r)?;
    Ok(Outcome {
        summary: format!(
            "restoring backup {backup} (+{} incrementals) onto {} hosts: {}",
            r.incrementals.len(),
            r.hosts.len(),
            host_lines(&r, cfg.pin_tokens)
        ),
        data,
    })
}

/// `source -> target` per host, with the source tokens: their count, or with `pin_tokens`
/// the `initial_token` value each target would need to own the same ranges.
fn host_lines(r: &Resolved, pin_tokens: bool) -> String {
    r.hosts
        .iter()
        .map(|(target, h)| {
            let tokens = if pin_tokens {
                format!("initial_token: {}", h.tokens.join(","))
            } else {
                format!("{} tokens", h.tokens.len())
            };
            format!("{} ({}) -> {target} [{tokens}]", h.source_host, h.host_id)
        })
        .collect::<Vec<_>>()
        .join("; ")
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
}

/// What `fetch[HOST]` leaves for the later tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    pub staging_root: String,
    pub tables: Vec<StagedTable>,
    pub data_dirs: Vec<String>,
    pub commitlog_dir: String,
}

fn staging_root(rt: &Runtime, backup: &str) -> String {
    let base = rt
        .run
        .plan
        .cassandra
        .staging
        .clone()
        .unwrap_or_else(|| "/var/lib/cassandra/cbk-staging".into());
    format!("{}/{backup}", base.trim_end_matches('/'))
}

/// `fetch[HOST]`: stages and verifies every file of the selected tables on the node.
pub async fn fetch(
    rt: &Runtime,
    task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let cfg = restore_config(rt)?;
    let resolved: Resolved = checkpoint(cx, RESOLVE)?;
    let source = resolved
        .hosts
        .get(host)
        .ok_or_else(|| TaskError::fatal(format!("no source for {host}")))?;
    let store = rt.store().await?;
    let filter = TableFilter::new(&cfg.include, &cfg.exclude, SystemKeyspaces::None)
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let mut files: BTreeMap<String, crate::agent::ops::fetch::FetchFile> = BTreeMap::new();
    let mut tables: BTreeMap<String, StagedTable> = BTreeMap::new();
    for key in &source.manifests {
        let m: NodeManifest = get_json(&store, key).await?;
        for t in m
            .tables
            .iter()
            .filter(|t| filter.matches(&t.keyspace, &t.table))
        {
            let folder = format!("{}/{}", t.keyspace, t.folder());
            keys::check_relative(&folder)
                .map_err(|e| TaskError::fatal(format!("manifest `{key}`: {e}")))?;
            let entry = tables.entry(folder.clone()).or_insert_with(|| StagedTable {
                keyspace: t.keyspace.clone(),
                table: t.table.clone(),
                backup_id: t.id.clone(),
                staged: folder.clone(),
                schema_cql: None,
            });
            if t.schema_cql.is_some() {
                entry.schema_cql = t.schema_cql.clone();
            }
            for f in &t.files {
                keys::check_relative(&f.path)
                    .map_err(|e| TaskError::fatal(format!("manifest `{key}`: {e}")))?;
                let dest = format!("{folder}/{}", f.path);
                let new = crate::agent::ops::fetch::FetchFile {
                    key: f.key.clone(),
                    dest: dest.clone(),
                    size: Some(f.size),
                    crc32: Some(f.crc32),
                    codec: f.codec.clone(),
                };
                if let Some(old) = files.get(&dest)
                    && old.key != new.key
                {
                    return Err(TaskError::fatal(format!(
                        "{dest} names different data in `{}` and `{}`",
                        old.key, new.key
                    )));
                }
                files.insert(dest, new);
            }
        }
    }
    super::restore_legacy::stage(&store, source, cfg, &mut files, &mut tables).await?;
    if tables.is_empty() {
        return Err(TaskError::fatal(format!(
            "the backup holds no table of {host} that the restore selects"
        )));
    }
    let root = staging_root(rt, &resolved.backup);
    let op = serde_json::json!({
        "op": "fetch",
        "staging_root": root,
        "files": files.values().collect::<Vec<_>>(),
        "file_concurrency": rt.run.plan.limits.file_concurrency,
    });
    let r = node::agent(rt, host, op, Some((cx, &task.address))).await?;
    let disk = node::inspect(rt, host, None).await?;
    let staged = Staged {
        staging_root: root,
        tables: tables.into_values().collect(),
        data_dirs: disk.data_dirs,
        commitlog_dir: disk.commitlog_dir,
    };
    save(cx, &task.address, &staged)?;
    let n = |k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    Ok(Outcome {
        summary: format!(
            "{} files ({} bytes) staged and verified, {} were already staged",
            n("files"),
            n("bytes"),
            n("already_staged")
        ),
        data: r,
    })
}

/// Live table ids, from `system_schema.tables` through cqlsh.
async fn live_ids_cqlsh(
    rt: &Runtime,
    host: &str,
    cqlsh: &CommandSpec,
) -> Result<Vec<(String, String, String)>, TaskError> {
    let q = "SELECT keyspace_name, table_name, id FROM system_schema.tables".to_string();
    let mut out =
        node::run_plan_command(rt, host, cqlsh, &["-e".into(), q.clone()], None, None).await?;
    if out.code != 0 && out.stderr_str().contains("system_schema does not exist") {
        // Cassandra 2.x keeps table ids in system.schema_columnfamilies.
        let q2 = "SELECT keyspace_name, columnfamily_name, cf_id FROM system.schema_columnfamilies"
            .to_string();
        out = node::run_plan_command(rt, host, cqlsh, &["-e".into(), q2], None, None).await?;
    }
    if out.code != 0 {
        return Err(TaskError::fatal(format!(
            "cqlsh on {host} exited with {}: {}",
            out.code,
            out.stderr_str().trim()
        )));
    }
    Ok(out
        .stdout_str()
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            (cols.len() == 3
                && cols[2].len() == 36
                && cols[2].chars().filter(|c| *c == '-').count() == 4)
                .then(|| {
                    (
                        cols[0].to_string(),
                        cols[1].to_string(),
                        cols[2].replace('-', ""),
                    )
                })
        })
        .collect())
}

/// One backed-up table and the live folder it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub keyspace: String,
    pub table: String,
    pub backup_id: String,
    pub live_id: String,
    pub staged: String,
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

/// `match_tables[HOST]`: backed-up `TABLE-OLDID` -> live `TABLE-ID`, resolved before anything
/// stops. Ambiguity is an error unless the plan pins the id.
/// `restart` puts files on the node as they are, so the node must own the same token ranges
/// as the node they were backed up from (checked before any node is stopped). Sources without
/// recorded tokens (legacy buckets) cannot be checked.
async fn check_tokens(rt: &Runtime, host: &str, cx: &TaskContext) -> Result<(), TaskError> {
    let resolved: Resolved = checkpoint(cx, RESOLVE)?;
    let Some(src) = resolved.hosts.get(host).filter(|s| !s.tokens.is_empty()) else {
        return Ok(());
    };
    let mut live = node::tokens(rt, host).await.map_err(nt_err)?;
    let mut want = src.tokens.clone();
    live.sort();
    want.sort();
    if live == want {
        return Ok(());
    }
    let only_src = want.iter().filter(|t| !live.contains(t)).count();
    Err(TaskError::fatal(format!(
        "{host} owns other tokens than {} it restores from ({} of its {} source tokens \
         are not {host}'s): the restart method would leave the data on a node \
         that does not own it; use method = \"loader\" (streams to the owners) \
         or \"import\" followed by repair, give the new cluster the source \
         tokens before its first start (pin_tokens = true shows the \
         initial_token values), or set restore.allow_token_mismatch = true",
        src.source_host,
        only_src,
        want.len()
    )))
}

pub async fn match_tables(
    rt: &Runtime,
    task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let cfg = restore_config(rt)?;
    let staged: Staged = checkpoint(cx, &format!("fetch[{host}]"))?;
    if cfg.method == RestoreMethod::Restart && !cfg.allow_token_mismatch {
        check_tokens(rt, host, cx).await?;
    }
    let mut live: Vec<(String, String, String)> = match &rt.run.plan.cassandra.cqlsh {
        Some(c) => live_ids_cqlsh(rt, host, c).await?,
        None => node::inspect(rt, host, None)
            .await?
            .tables
            .into_iter()
            .map(|t| (t.keyspace, t.table, t.id))
            .collect(),
    };
    let mut mappings = Vec::new();
    let mut lines = Vec::new();
    for t in &staged.tables {
        let name = format!("{}.{}", t.keyspace, t.table);
        let mut candidates: Vec<&String> = live
            .iter()
            .filter(|(k, n, _)| *k == t.keyspace && *n == t.table)
            .map(|(_, _, id)| id)
            .collect();
        candidates.sort();
        candidates.dedup();
        let live_id = if let Some(id) = cfg.table_ids.get(&name) {
            id.replace('-', "")
        } else if candidates.len() == 1 {
            candidates[0].clone()
        } else if candidates.is_empty() {
            if !cfg.create_missing_tables {
                return Err(TaskError::fatal(format!(
                    "{name} does not exist on {host}; create it, or set restore.create_missing_tables = true \
                     to create it from the backed-up schema (WITH ID)"
                )));
            }
            create_table(rt, host, t).await?;
            live.push((t.keyspace.clone(), t.table.clone(), t.backup_id.clone()));
            t.backup_id.clone()
        } else {
            return Err(TaskError::fatal(format!(
                "{name} has several table folders on {host} ({}) and the live id cannot be read; \
                 set cassandra.cqlsh, or pin it with restore.table_ids.\"{name}\"",
                candidates
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        lines.push(format!(
            "{name}: {}-{} -> {}-{live_id}",
            t.table, t.backup_id, t.table
        ));
        mappings.push(Mapping {
            keyspace: t.keyspace.clone(),
            table: t.table.clone(),
            backup_id: t.backup_id.clone(),
            live_id,
            staged: t.staged.clone(),
        });
    }
    save(cx, &task.address, &mappings)?;
    Ok(Outcome {
        summary: lines.join("; "),
        data: serde_json::to_value(&mappings).unwrap_or_default(),
    })
}

async fn create_table(rt: &Runtime, host: &str, t: &StagedTable) -> Result<(), TaskError> {
    let cql = t.schema_cql.as_ref().ok_or_else(|| {
        TaskError::fatal(format!(
            "{}.{} is missing and the backup has no schema.cql for it",
            t.keyspace, t.table
        ))
    })?;
    let cqlsh = rt.run.plan.cassandra.cqlsh.as_ref().ok_or_else(|| {
        TaskError::fatal("creating missing tables needs cassandra.cqlsh in the plan")
    })?;
    node::run_checked(rt, host, "cqlsh", cqlsh, &["-e".into(), cql.clone()], None).await?;
    Ok(())
}

fn default_cmd(spec: &Option<CommandSpec>, default: &str) -> CommandSpec {
    spec.clone()
        .unwrap_or_else(|| CommandSpec::Shell(default.to_string()))
}

async fn wait_for(rt: &Runtime, host: &str, up: bool, limit: Duration) -> Result<(), TaskError> {
    let start = std::time::Instant::now();
    loop {
        if node::is_up(rt, host).await? == up {
            return Ok(());
        }
        if start.elapsed() > limit {
            let state = if up { "up" } else { "down" };
            return Err(TaskError::fatal(format!(
                "{host} is not {state} after {}s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `stop[HOST]` is satisfied when Cassandra is already down.
pub async fn stop_check(rt: &Runtime, host: &str) -> Result<Check, TaskError> {
    Ok(if node::is_up(rt, host).await? {
        Check::Needed
    } else {
        Check::Satisfied(format!("Cassandra is down on {host}"))
    })
}

/// `stop[HOST]`: the plan's stop command, then wait until nodetool no longer answers.
pub async fn stop(rt: &Runtime, host: &str) -> Result<Outcome, TaskError> {
    let cmd = default_cmd(&rt.run.plan.cassandra.stop, "systemctl stop cassandra");
    node::run_checked(rt, host, "stop command", &cmd, &[], None).await?;
    wait_for(rt, host, false, Duration::from_secs(300)).await?;
    Ok(Outcome {
        summary: format!("Cassandra stopped on {host}"),
        data: serde_json::Value::Null,
    })
}

/// `start[HOST]` / `wait_up[HOST]` are satisfied when Cassandra answers.
pub async fn up_check(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Check, TaskError> {
    Ok(if node::is_up(rt, host).await? {
        Check::Satisfied(format!("Cassandra is up on {host}"))
    } else {
        Check::Needed
    })
}

/// `start[HOST]`: the plan's start command.
pub async fn start(rt: &Runtime, host: &str) -> Result<Outcome, TaskError> {
    let cmd = default_cmd(&rt.run.plan.cassandra.start, "systemctl start cassandra");
    node::run_checked(rt, host, "start command", &cmd, &[], None).await?;
    Ok(Outcome {
        summary: format!("start command ran on {host}"),
        data: serde_json::Value::Null,
    })
}

/// `wait_up[HOST]`: nodetool answers and the node reports itself Up/Normal.
pub async fn wait_up(rt: &Runtime, host: &str) -> Result<Outcome, TaskError> {
    wait_for(rt, host, true, Duration::from_secs(600)).await?;
    let info = crate::cassandra::nodetool::parse_info(
        &node::nodetool(rt, host, &["info".into()])
            .await
            .map_err(nt_err)?,
    )
    .map_err(nt_err)?;
    Ok(Outcome {
        summary: format!("Cassandra is up on {host} (host id {})", info.host_id),
        data: serde_json::Value::Null,
    })
}

/// `clear_commitlog[HOST]`: commit log segments are moved aside (kept in staging).
pub async fn clear_commitlog(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let staged: Staged = checkpoint(cx, &format!("fetch[{host}]"))?;
    let op = serde_json::json!({
        "op": "clear_commitlog",
        "commitlog_dir": staged.commitlog_dir,
        "displaced_dir": format!("{}/displaced-commitlog", staged.staging_root),
    });
    let r = node::agent(rt, host, op, None).await?;
    let n = r
        .get("segments_moved")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    Ok(Outcome {
        summary: format!("{n} commit log segments moved aside"),
        data: r,
    })
}

fn move_op(
    rt: &Runtime,
    staged: &Staged,
    mappings: &[Mapping],
    displace: bool,
) -> Result<serde_json::Value, TaskError> {
    let cfg = restore_config(rt)?;
    let tables: Vec<serde_json::Value> = mappings
        .iter()
        .map(|m| serde_json::json!({"keyspace": m.keyspace, "table": m.table, "staged": m.staged, "live_id": m.live_id}))
        .collect();
    Ok(serde_json::json!({
        "op": "move",
        "staging_root": staged.staging_root,
        "data_dirs": staged.data_dirs,
        "tables": tables,
        "owner": cfg.owner.clone().or_else(|| rt.run.plan.cassandra.owner.clone()),
        "displace_live": displace,
    }))
}

/// `move[HOST]`: staged files into the live table folders (Node Restart Method).
pub async fn relocate(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let (staged, mappings) = staged_and_mapped(cx, host)?;
    let r = node::agent(rt, host, move_op(rt, &staged, &mappings, true)?, None).await?;
    let n = |k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    Ok(Outcome {
        summary: format!(
            "{} files moved into place, {} live files displaced to {}",
            n("restored_files"),
            n("displaced_files"),
            r.get("displaced_to").and_then(|v| v.as_str()).unwrap_or("")
        ),
        data: r,
    })
}

/// `import[HOST]` (4.0+) and `refresh[HOST]` (3.x): load staged sstables without downtime.
pub async fn load_live(
    rt: &Runtime,
    task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let (staged, mappings) = staged_and_mapped(cx, host)?;
    let mut done = Vec::new();
    if task.kind == TaskKind::Refresh {
        node::agent(rt, host, move_op(rt, &staged, &mappings, false)?, None).await?;
    } else {
        // import: each table at most once per staged restore (marker + flock, as `loader`).
        let cfg = restore_config(rt)?;
        let op = serde_json::json!({
            "op": "hand_over",
            "staging_root": staged.staging_root,
            "folders": mappings.iter().map(|m| m.staged.clone()).collect::<Vec<_>>(),
            "data_dirs": staged.data_dirs,
            "owner": cfg.owner.clone().or_else(|| rt.run.plan.cassandra.owner.clone()),
        });
        node::agent(rt, host, op, None).await?;
        return super::loader::import(rt, task, host, cx).await;
    }
    for m in &mappings {
        let args = vec!["refresh".into(), m.keyspace.clone(), m.table.clone()];
        node::nodetool(rt, host, &args).await.map_err(nt_err)?;
        done.push(format!("{}.{}", m.keyspace, m.table));
    }
    Ok(Outcome {
        summary: format!("{} loaded: {}", task.kind.as_str(), done.join(", ")),
        data: serde_json::Value::Null,
    })
}

/// `repair[HOST]`: `nodetool repair` of the restored keyspaces, one host at a time.
pub async fn repair(rt: &Runtime, _task: &PlannedTask, host: &str) -> Result<Outcome, TaskError> {
    let cfg = restore_config(rt)?;
    let mut args = vec!["repair".to_string()];
    args.extend(cfg.repair_options.iter().cloned());
    let mut keyspaces: Vec<String> = cfg
        .include
        .iter()
        .map(|p| p.split_once('.').map(|(k, _)| k).unwrap_or(p).to_string())
        .collect();
    keyspaces.retain(|k| !k.contains(['*', '?', '[', '{']));
    keyspaces.sort();
    keyspaces.dedup();
    if !keyspaces.is_empty() {
        args.push("--".into());
        args.extend(keyspaces);
    }
    let out = node::nodetool(rt, host, &args).await.map_err(nt_err)?;
    let last = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("repair finished")
        .trim()
        .to_string();
    Ok(Outcome {
        summary: last,
        data: serde_json::Value::Null,
    })
}

/// `cleanup[HOST]`: removes staged copies; displaced live files are kept and reported.
pub async fn cleanup(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let staged: Staged = checkpoint(cx, &format!("fetch[{host}]"))?;
    let op = serde_json::json!({"op": "cleanup", "staging_root": staged.staging_root, "keep_displaced": true});
    let r = node::agent(rt, host, op, None).await?;
    let kept: Vec<String> = r
        .get("kept")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let summary = if kept.is_empty() {
        "staging removed".to_string()
    } else {
        format!(
            "staging removed; displaced files kept in {}",
            kept.join(", ")
        )
    };
    Ok(Outcome { summary, data: r })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: BackupKind, base: Option<&str>, created: &str) -> IndexEntry {
        IndexEntry {
            backup: name.into(),
            kind,
            base: base.map(Into::into),
            cluster: "c".into(),
            created: created.into(),
            completed: created.into(),
            hosts: vec![],
            totals: Default::default(),
        }
    }

    #[test]
    fn choose_latest_and_latest_before() {
        let e = vec![
            entry(
                "20260101T000000Z",
                BackupKind::Snapshot,
                None,
                "2026-01-01T00:00:00Z",
            ),
            entry(
                "20260101T060000Z",
                BackupKind::Incremental,
                Some("20260101T000000Z"),
                "2026-01-01T06:00:00Z",
            ),
            entry(
                "20260102T000000Z",
                BackupKind::Snapshot,
                None,
                "2026-01-02T00:00:00Z",
            ),
            entry(
                "20260102T060000Z",
                BackupKind::Incremental,
                Some("20260102T000000Z"),
                "2026-01-02T06:00:00Z",
            ),
            entry(
                "20260102T120000Z",
                BackupKind::Incremental,
                Some("20260102T000000Z"),
                "2026-01-02T12:00:00Z",
            ),
        ];
        let (b, i) = choose(&e, "latest").unwrap();
        assert_eq!(b, "20260102T000000Z");
        assert_eq!(i, vec!["20260102T060000Z", "20260102T120000Z"]);
        let (b, i) = choose(&e, "latest-before:2026-01-02T07:00:00Z").unwrap();
        assert_eq!(b, "20260102T000000Z");
        assert_eq!(i, vec!["20260102T060000Z"]);
        let (b, i) = choose(&e, "latest-before:2026-01-01T12:00:00Z").unwrap();
        assert_eq!(b, "20260101T000000Z");
        assert_eq!(i, vec!["20260101T060000Z"]);
        assert!(choose(&e, "latest-before:2025-01-01T00:00:00Z").is_err());
        let (b, i) = choose(&e, "20260101T060000Z").unwrap();
        assert_eq!(
            (b.as_str(), i),
            ("20260101T000000Z", vec!["20260101T060000Z".to_string()])
        );
        assert!(choose(&e, "nope").is_err());
    }
}
