//! Restore tasks: resolve the source backup, fetch it into staging on every node (verified),
//! match backed-up table folders to live table ids, then the Node Restart Method (stop, clear
//! the commit log, move, start, wait until up, repair) or a no-downtime load (import, refresh).
//!
//! Tasks pass what they learn to later tasks through journal checkpoints, so a resumed restore
//! uses the same backup and the same table mapping even if new backups landed meanwhile.

use super::node::{self, nt_err};
use super::restore_topology::SourceHost;
use super::{Runtime, store_err};
use crate::agent::ops::relocate::MoveTable;
use crate::agent::protocol::{
    CleanupRequest, ClearCommitlogRequest, FetchRequest, HandOverRequest, MoveRequest,
};
use crate::cassandra::layout::TableFilter;
use crate::exec::{Check, Outcome, TaskContext, TaskError};
use crate::graph::run::{PlannedTask, TaskKind};
use crate::graph::spec::{RepairParams, SelectionParams};
use crate::plan::model::{CommandSpec, RestoreConfig, RestoreMethod, SystemKeyspaces};
use crate::repo::inventory::{self, BackupInfo};
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

/// Reads a node manifest, opening it with the identity when the repository is encrypted.
async fn read_manifest(
    store: &Arc<dyn Store>,
    key: &str,
    ids: Option<&crate::crypt::Identities>,
) -> Result<NodeManifest, TaskError> {
    let access = crate::repo::encrypted::Access::of(ids);
    crate::repo::encrypted::read_manifest(store.as_ref(), key, &access)
        .await
        .map_err(|e| match e {
            inventory::RepoError::Store(StoreError::NotFound(_)) => {
                TaskError::fatal(format!("`{key}` is missing from the store"))
            }
            other => super::repo_err(other),
        })
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
    /// Target -> its (first) source.
    pub hosts: BTreeMap<String, ResolvedHost>,
    /// `loader` into another node count: target -> its further sources, in catalog order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub also: BTreeMap<String, Vec<ResolvedHost>>,
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

/// Which backup a source spec names: `latest` and `latest-before:` are
/// [`inventory::latest`] among the complete backups of `cluster`; a name is any complete backup
/// of that name. Incrementals: the complete ones chained to the chosen snapshot, up to the source
/// time, in creation order.
fn choose(
    backups: &[BackupInfo],
    cluster: &str,
    source: &str,
) -> Result<(String, Vec<String>), String> {
    let mine: Vec<BackupInfo> = backups
        .iter()
        .filter(|b| b.entry.cluster == cluster)
        .cloned()
        .collect();
    let complete = |name: &str| {
        backups
            .iter()
            .find(|b| b.complete && b.entry.backup == name)
    };
    let (base, until): (Option<&IndexEntry>, Option<String>) = if source == "latest" {
        (inventory::latest(&mine, None).map(|b| &b.entry), None)
    } else if let Some(t) = source.strip_prefix("latest-before:") {
        let t = t
            .trim()
            .parse::<jiff::Timestamp>()
            .map_err(|e| format!("bad time in `{source}`: {e}"))?;
        (
            inventory::latest(&mine, Some(t)).map(|b| &b.entry),
            Some(t.to_string()),
        )
    } else {
        match complete(source).map(|b| &b.entry) {
            Some(e) if e.kind == BackupKind::Snapshot => (Some(e), Some(e.created.clone())),
            Some(e) => {
                let base = e
                    .base
                    .as_deref()
                    .ok_or_else(|| format!("incremental `{source}` has no base"))?;
                (complete(base).map(|b| &b.entry), Some(e.created.clone()))
            }
            None => {
                let why = match backups.iter().find(|b| b.entry.backup == source) {
                    Some(b) => format!(
                        "backup `{source}` is not complete (missing {})",
                        b.missing.join(", ")
                    ),
                    None => format!("no complete backup named `{source}` in the store"),
                };
                return Err(why);
            }
        }
    };
    let base = base.ok_or_else(|| {
        format!("no complete snapshot backup of cluster `{cluster}` matches `{source}`")
    })?;
    let at = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let limit = until.as_deref().and_then(at);
    let mut incs: Vec<&IndexEntry> = backups
        .iter()
        .filter(|b| b.complete)
        .map(|b| &b.entry)
        .filter(|e| {
            e.kind == BackupKind::Incremental && e.base.as_deref() == Some(base.backup.as_str())
        })
        .filter(|e| match (&limit, at(&e.created)) {
            (Some(l), Some(c)) => c <= *l,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    incs.sort_by(|a, b| (at(&a.created), &a.backup).cmp(&(at(&b.created), &b.backup)));
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
    let backups = inventory::backups(store.as_ref(), None)
        .await
        .map_err(|e| match e {
            inventory::RepoError::Store(e) => store_err(e),
            other => TaskError::fatal(other.to_string()),
        })?;
    let cluster = cfg
        .source_cluster
        .as_deref()
        .unwrap_or(&rt.run.plan.cluster.name);
    let (backup, mut incrementals) =
        choose(&backups, cluster, &cfg.source).map_err(TaskError::fatal)?;
    if cfg.incrementals == Some(false) {
        incrementals.clear();
    }
    let catalog: Catalog = get_json(&store, &keys::catalog_key(&backup)).await?;
    // An encrypted repository needs the identity: refused here, before any node is touched.
    let ids = rt.identities().await?;
    let targets = plan_host_names(rt);
    let sources: Vec<SourceHost> = catalog
        .hosts
        .iter()
        .map(|h| SourceHost {
            name: h.name.clone(),
            host_id: h.host_id.clone(),
            dc: h.dc.clone(),
        })
        .collect();
    let assigned = super::restore_topology::assign(cfg, &targets, &sources)
        .map_err(|e| TaskError::fatal(format!("backup {backup}: {e}")))?;
    let filter = TableFilter::new(&cfg.include, &cfg.exclude, SystemKeyspaces::None)
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let mut keyspaces = std::collections::BTreeSet::new();
    let mut hosts = BTreeMap::new();
    let mut also: BTreeMap<String, Vec<ResolvedHost>> = BTreeMap::new();
    for (target, idx) in &assigned.by_target {
        for (n, i) in idx.iter().enumerate() {
            let h = &catalog.hosts[*i];
            let mut manifests = vec![h.manifest.clone()];
            for inc in &incrementals {
                let key = keys::node_manifest_key(&h.host_id, inc);
                if store.head(&key).await.map_err(store_err)?.is_some() {
                    manifests.push(key);
                }
            }
            let m = read_manifest(&store, &h.manifest, ids.as_ref()).await?;
            keyspaces.extend(
                m.tables
                    .iter()
                    .filter(|t| filter.matches(&t.keyspace, &t.table))
                    .map(|t| t.keyspace.clone()),
            );
            let source = ResolvedHost {
                source_host: h.name.clone(),
                host_id: h.host_id.clone(),
                manifests,
                tokens: m.node.tokens,
                legacy: Vec::new(),
                legacy_schemas: BTreeMap::new(),
            };
            if n == 0 {
                hosts.insert(target.clone(), source);
            } else {
                also.entry(target.clone()).or_default().push(source);
            }
        }
    }
    // Before anything is staged or changed on a node.
    let restored = hosts.len() + also.values().map(Vec::len).sum::<usize>();
    let replication =
        super::restore_topology::check_live_replication(rt, &keyspaces, restored).await?;
    let r = Resolved {
        backup: backup.clone(),
        incrementals,
        hosts,
        also,
    };
    let data = save(cx, RESOLVE, &r)?;
    let receivers: Vec<&str> = targets
        .iter()
        .filter(|t| r.sources(t).is_empty())
        .map(String::as_str)
        .collect();
    let mut notes = String::new();
    if !receivers.is_empty() {
        notes += &format!(
            "; streaming into, no source of their own: {}",
            receivers.join(", ")
        );
    }
    if !assigned.other_dcs.is_empty() {
        notes += &format!(
            "; not restored (data center not in restore.datacenters): {}",
            super::restore_topology::names(&sources, &assigned.other_dcs)
        );
    }
    if !assigned.unused.is_empty() {
        notes += &format!(
            "; not restored (no target maps them): {}",
            super::restore_topology::names(&sources, &assigned.unused)
        );
    }
    Ok(Outcome {
        summary: format!(
            "restoring backup {backup} (+{} incrementals) onto {} hosts: {}{notes}; {replication}",
            r.incrementals.len(),
            targets.len() - receivers.len(),
            host_lines(&r, cfg.pin_tokens)
        ),
        data,
    })
}

/// `source -> target` per host, with the source tokens: their count, or with `pin_tokens`
/// the `initial_token` value each target would need to own the same ranges.
fn host_lines(r: &Resolved, pin_tokens: bool) -> String {
    r.hosts
        .keys()
        .flat_map(|t| r.sources(t).into_iter().map(move |h| (t, h)))
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

/// The folder of this restore run inside the staging root: `run-<plan time>-<plan digest>`.
/// A resumed run (the same saved plan) finds it again; any other restore, also of the same
/// backup, gets its own, so its move plan and displaced files never meet an earlier one's.
fn run_dir(rt: &Runtime, staging_root: &str) -> String {
    let now: String = rt
        .run
        .inputs
        .now
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let digest = crate::exec::plan_digest(&rt.run);
    format!(
        "{staging_root}/{}{now}-{}",
        crate::agent::ops::relocate::RUN_PREFIX,
        &digest[..12.min(digest.len())]
    )
}

/// `fetch[HOST]`: stages and verifies every file of the selected tables on the node.
pub async fn fetch(
    rt: &Runtime,
    task: &PlannedTask,
    p: &SelectionParams,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let cfg = restore_config(rt)?;
    let resolved: Resolved = checkpoint(cx, RESOLVE)?;
    let sources = resolved.sources(host);
    let root = staging_root(rt, &resolved.backup);
    if sources.is_empty() {
        // `loader` into more nodes than the backup has: this target only receives.
        let staged = Staged {
            run_dir: Some(run_dir(rt, &root)),
            staging_root: root,
            tables: Vec::new(),
            data_dirs: Vec::new(),
            commitlog_dir: String::new(),
            kept_live: Vec::new(),
        };
        let data = save(cx, &task.address, &staged)?;
        return Ok(Outcome {
            summary: format!(
                "nothing to stage: no backup host is assigned to {host} (it receives what the \
                 other targets stream)"
            ),
            data,
        });
    }
    let several = sources.len() > 1;
    let store = rt.store().await?;
    let filter = TableFilter::new(&p.include, &p.exclude, SystemKeyspaces::None)
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let mut files: BTreeMap<String, crate::agent::ops::fetch::FetchFile> = BTreeMap::new();
    let mut tables: BTreeMap<String, StagedTable> = BTreeMap::new();
    let mut covered = 0u64;
    let ids = rt.identities().await?;
    for source in &sources {
        let prefix = super::restore_topology::staging_prefix(&source.source_host, several)
            .map_err(TaskError::fatal)?;
        // The snapshot comes first; incremental files it already covers are left out.
        let mut base: Option<crate::repo::coverage::BaseCoverage> = None;
        for key in &source.manifests {
            let m = read_manifest(&store, key, ids.as_ref()).await?;
            let coverage = base.get_or_insert_with(|| crate::repo::coverage::BaseCoverage::of(&m));
            let is_base = m.kind == BackupKind::Snapshot;
            for t in m
                .tables
                .iter()
                .filter(|t| filter.matches(&t.keyspace, &t.table))
            {
                keys::check_table(t)
                    .map_err(|e| TaskError::fatal(format!("manifest `{key}`: {e}")))?;
                let table_folder = format!("{}/{}", t.keyspace, t.folder());
                // Staged under the names it is loaded into (sstableloader and older `nodetool
                // import` take the keyspace and table from the folder).
                let (ks, table) = super::restore_topology::target_names(cfg, &t.keyspace, &t.table);
                let folder = format!("{prefix}{ks}/{table}-{}", t.id);
                let renamed = (ks != t.keyspace || table != t.table)
                    .then(|| format!("{}.{}", t.keyspace, t.table));
                let entry = tables.entry(folder.clone()).or_insert_with(|| StagedTable {
                    keyspace: ks,
                    table,
                    backup_id: t.id.clone(),
                    staged: folder.clone(),
                    schema_cql: None,
                    source: several.then(|| source.source_host.clone()),
                    renamed_from: renamed,
                });
                if t.schema_cql.is_some() {
                    entry.schema_cql = t.schema_cql.clone();
                }
                for f in &t.files {
                    if !is_base && coverage.covers(&table_folder, &f.path) {
                        covered += 1;
                        continue;
                    }
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
    }
    if tables.is_empty() {
        return Err(TaskError::fatal(format!(
            "the backup holds no table of {host} that the restore selects"
        )));
    }
    let disk = node::inspect(rt, host, None).await?;
    let live =
        super::restore_delta::compare(rt, host, cfg, &disk, &root, &tables, &mut files).await?;
    let op = FetchRequest {
        staging_root: root.clone(),
        files: files.into_values().collect(),
        file_concurrency: rt.run.plan.limits.file_concurrency as usize,
        displaced_bytes: live.as_ref().map_or(0, |l| l.displaced_bytes_copied),
        encrypted: ids.is_some(),
    };
    let r = node::agent(rt, host, op, Some((cx, &task.address))).await?;
    let staged = Staged {
        run_dir: Some(run_dir(rt, &root)),
        staging_root: root,
        tables: tables.into_values().collect(),
        data_dirs: disk.data_dirs,
        commitlog_dir: disk.commitlog_dir,
        kept_live: live
            .as_ref()
            .map(|l| l.kept.iter().map(|k| k.live.clone()).collect())
            .unwrap_or_default(),
    };
    save(cx, &task.address, &staged)?;
    Ok(Outcome {
        summary: format!(
            "{} files ({} bytes) staged and verified, {} were already staged{}{}",
            r.files,
            r.bytes,
            r.already_staged,
            super::restore_delta::kept_text(cfg, live.as_ref()),
            if covered > 0 {
                format!(
                    "; {covered} incremental files left out (sstables flushed before the snapshot, which holds their data)"
                )
            } else {
                String::new()
            }
        ),
        data: node::data(&r),
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
            match (&t.renamed_from, &rt.run.plan.cassandra.cqlsh) {
                // Created under a new name without the backed-up id: Cassandra chose one.
                (Some(_), Some(c)) => {
                    live = live_ids_cqlsh(rt, host, c).await?;
                    live.iter()
                        .find(|(k, n, _)| *k == t.keyspace && *n == t.table)
                        .map(|(_, _, id)| id.clone())
                        .ok_or_else(|| {
                            TaskError::fatal(format!(
                                "{name} is still missing on {host} after creating it"
                            ))
                        })?
                }
                _ => {
                    live.push((t.keyspace.clone(), t.table.clone(), t.backup_id.clone()));
                    t.backup_id.clone()
                }
            }
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
        let m = Mapping {
            keyspace: t.keyspace.clone(),
            table: t.table.clone(),
            backup_id: t.backup_id.clone(),
            live_id,
            staged: t.staged.clone(),
            source: t.source.clone(),
        };
        let from = t
            .renamed_from
            .as_deref()
            .and_then(|f| f.split_once('.'))
            .map_or(t.table.as_str(), |(_, table)| table);
        lines.push(format!(
            "{}{}: {from}-{} -> {}-{}",
            m.load_name(),
            t.renamed_from
                .as_deref()
                .map(|f| format!(" (backed up as {f})"))
                .unwrap_or_default(),
            t.backup_id,
            t.table,
            m.live_id
        ));
        mappings.push(m);
    }
    if cfg.method == RestoreMethod::Restart {
        super::restore_delta::check_mapping(host, &staged.kept_live, &mappings)?;
        // Every refusal the move can hit, checked while nothing is stopped yet.
        let mut op = move_op(rt, &staged, &mappings, true)?;
        op.check_only = true;
        let r = node::agent(rt, host, op, None)
            .await
            .map_err(|e| TaskError {
                message: format!(
                    "the move into the live folders would fail (checked before stopping \
                     anything): {}",
                    e.message
                ),
                retryable: e.retryable,
            })?;
        lines.push(format!(
            "move checked: {} files to move in, {} live files to displace{}",
            r.restored_files,
            r.displaced_files,
            kept_moved(r.kept_live)
        ));
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
    let cql = match t.renamed_from.as_deref().and_then(|f| f.split_once('.')) {
        Some(from) => super::restore_topology::retarget_schema(cql, from, (&t.keyspace, &t.table)),
        None => cql.clone(),
    };
    node::run_checked(rt, host, "cqlsh", cqlsh, &["-e".into(), cql], None).await?;
    Ok(())
}

/// A command as an operator would type it.
fn command_text(cmd: &CommandSpec) -> String {
    match cmd {
        CommandSpec::Shell(s) => s.clone(),
        CommandSpec::Argv(v) => v.join(" "),
    }
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
    let op = ClearCommitlogRequest {
        commitlog_dir: staged.commitlog_dir.clone(),
        displaced_dir: displaced_commitlog(&staged),
    };
    let r = node::agent(rt, host, op, None).await?;
    Ok(Outcome {
        summary: format!("{} commit log segments moved aside", r.segments_moved),
        data: node::data(&r),
    })
}

/// `, N live files kept in place` (delta restore).
fn kept_moved(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} live files kept in place")
    }
}

fn displaced_commitlog(staged: &Staged) -> String {
    format!("{}/displaced-commitlog", staged.run_dir())
}

fn move_op(
    rt: &Runtime,
    staged: &Staged,
    mappings: &[Mapping],
    displace: bool,
) -> Result<MoveRequest, TaskError> {
    let cfg = restore_config(rt)?;
    let tables = mappings
        .iter()
        .map(|m| MoveTable {
            keyspace: m.keyspace.clone(),
            table: m.table.clone(),
            staged: m.staged.clone(),
            live_id: m.live_id.clone(),
        })
        .collect();
    Ok(MoveRequest {
        staging_root: staged.staging_root.clone(),
        data_dirs: staged.data_dirs.clone(),
        tables,
        owner: cfg
            .owner
            .clone()
            .or_else(|| rt.run.plan.cassandra.owner.clone()),
        displace_live: displace,
        run_dir: Some(staged.run_dir().to_owned()),
        check_only: false,
        commitlog_dir: displace.then(|| staged.commitlog_dir.clone()),
        displaced_commitlog: displace.then(|| displaced_commitlog(staged)),
        keep_live: staged.kept_live.clone(),
    })
}

/// `move[HOST]`: staged files into the live table folders (Node Restart Method).
pub async fn relocate(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let (staged, mappings) = staged_and_mapped(cx, host)?;
    let start = command_text(&default_cmd(
        &rt.run.plan.cassandra.start,
        "systemctl start cassandra",
    ));
    let r = node::agent(rt, host, move_op(rt, &staged, &mappings, true)?, None)
        .await
        .map_err(|e| TaskError {
            message: format!(
                "{}; Cassandra is stopped on {host}: do not start it before the move is \
                 finished (apply the same plan again)",
                e.message
            ),
            retryable: e.retryable,
        })?;
    if let Some(failed) = &r.failed {
        return Err(TaskError::fatal(format!(
            "{failed}; the move was rolled back ({} files put back): the live table folders and \
             the commit log of {host} are as before this restore. Cassandra is stopped on \
             {host}: start it again with `{start}` (cassandra.start), or fix the cause and \
             apply a new plan",
            r.rolled_back
        )));
    }
    Ok(Outcome {
        summary: format!(
            "{} files moved into place, {} live files displaced to {}{}",
            r.restored_files,
            r.displaced_files,
            r.displaced_to,
            kept_moved(r.kept_live)
        ),
        data: node::data(&r),
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
    if task.kind() == TaskKind::Refresh {
        let r = node::agent(rt, host, move_op(rt, &staged, &mappings, false)?, None).await?;
        if let Some(failed) = &r.failed {
            return Err(TaskError::fatal(format!(
                "{failed}; the move was rolled back: the live table folders of {host} are as \
                 before this restore"
            )));
        }
    } else {
        // import: each table at most once per staged restore (marker + flock, as `loader`).
        let cfg = restore_config(rt)?;
        let op = HandOverRequest {
            staging_root: staged.staging_root.clone(),
            folders: mappings.iter().map(|m| m.staged.clone()).collect(),
            data_dirs: staged.data_dirs.clone(),
            owner: cfg
                .owner
                .clone()
                .or_else(|| rt.run.plan.cassandra.owner.clone()),
        };
        node::agent(rt, host, op, None).await?;
        return super::loader::import(rt, task, host, cx).await;
    }
    for m in &mappings {
        let args = vec!["refresh".into(), m.keyspace.clone(), m.table.clone()];
        node::nodetool(rt, host, &args).await.map_err(nt_err)?;
        done.push(format!("{}.{}", m.keyspace, m.table));
    }
    Ok(Outcome {
        summary: format!("{} loaded: {}", task.kind().as_str(), done.join(", ")),
        data: serde_json::Value::Null,
    })
}

/// `repair[HOST]`: `nodetool repair` of the restored tables, one host at a time: one call per
/// keyspace (`nodetool repair [options] -- KEYSPACE TABLE...`: nodetool takes one keyspace,
/// then tables of that keyspace). With `repair_parallelism` above 1: by primary token range,
/// several hosts at once ([`super::repair_ranges`]).
pub async fn repair(
    rt: &Runtime,
    p: &RepairParams,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let mappings: Vec<Mapping> = checkpoint(cx, &format!("match_tables[{host}]"))?;
    // The saved plan says how (`ranges=` when `repair_parallelism` is above 1).
    if p.ranges.is_some() {
        let calls = repair_calls(&mappings);
        return super::repair_ranges::repair(rt, host, &p.options, &calls).await;
    }
    let mut done = Vec::new();
    for (keyspace, tables) in repair_calls(&mappings) {
        let mut args = vec!["repair".to_string()];
        args.extend(p.options.iter().cloned());
        args.push("--".into());
        args.push(keyspace.clone());
        args.extend(tables.iter().cloned());
        let out = node::nodetool(rt, host, &args).await.map_err(nt_err)?;
        let last = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("repair finished")
            .trim()
            .to_string();
        done.push(format!("{keyspace} ({}): {last}", tables.join(", ")));
    }
    Ok(Outcome {
        summary: done.join("; "),
        data: serde_json::Value::Null,
    })
}

/// The restored tables by keyspace: one `nodetool repair` call each.
fn repair_calls(mappings: &[Mapping]) -> BTreeMap<String, Vec<String>> {
    let mut calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in mappings {
        calls
            .entry(m.keyspace.clone())
            .or_default()
            .push(m.table.clone());
    }
    for tables in calls.values_mut() {
        tables.sort();
        tables.dedup();
    }
    calls
}

/// `cleanup[HOST]`: removes staged copies; displaced live files are kept and reported.
pub async fn cleanup(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let staged: Staged = checkpoint(cx, &format!("fetch[{host}]"))?;
    let op = CleanupRequest {
        staging_root: staged.staging_root.clone(),
        run_dir: staged.run_dir.clone(),
        keep_displaced: true,
    };
    let r = node::agent(rt, host, op, None).await?;
    let summary = if r.kept.is_empty() {
        "staging removed".to_string()
    } else {
        format!(
            "staging removed; displaced files kept in {}",
            r.kept.join(", ")
        )
    };
    Ok(Outcome {
        summary,
        data: node::data(&r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: BackupKind, base: Option<&str>, created: &str) -> BackupInfo {
        BackupInfo::assumed_complete(IndexEntry {
            backup: name.into(),
            kind,
            base: base.map(Into::into),
            cluster: "c".into(),
            created: created.into(),
            completed: created.into(),
            hosts: vec![],
            totals: Default::default(),
        })
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
        let (b, i) = choose(&e, "c", "latest").unwrap();
        assert_eq!(b, "20260102T000000Z");
        assert_eq!(i, vec!["20260102T060000Z", "20260102T120000Z"]);
        let (b, i) = choose(&e, "c", "latest-before:2026-01-02T07:00:00Z").unwrap();
        assert_eq!(b, "20260102T000000Z");
        assert_eq!(i, vec!["20260102T060000Z"]);
        let (b, i) = choose(&e, "c", "latest-before:2026-01-01T12:00:00Z").unwrap();
        assert_eq!(b, "20260101T000000Z");
        assert_eq!(i, vec!["20260101T060000Z"]);
        assert!(choose(&e, "c", "latest-before:2025-01-01T00:00:00Z").is_err());
        let (b, i) = choose(&e, "c", "20260101T060000Z").unwrap();
        assert_eq!(
            (b.as_str(), i),
            ("20260101T000000Z", vec!["20260101T060000Z".to_string()])
        );
        assert!(choose(&e, "c", "nope").is_err());
        // Other clusters are never `latest`; a name is found whatever its cluster.
        assert!(choose(&e, "other", "latest").is_err());
        assert_eq!(
            choose(&e, "other", "20260101T000000Z").unwrap().0,
            "20260101T000000Z"
        );
    }

    #[test]
    fn latest_is_the_newest_by_creation_time_not_the_greatest_name() {
        let mut e = vec![
            entry(
                "t2-063058Z",
                BackupKind::Snapshot,
                None,
                "2026-01-01T06:30:58Z",
            ),
            entry(
                "aaa-063312Z",
                BackupKind::Snapshot,
                None,
                "2026-01-01T06:33:12Z",
            ),
        ];
        assert_eq!(choose(&e, "c", "latest").unwrap().0, "aaa-063312Z");
        // An incomplete backup (a node manifest gone) is never picked.
        e[1].complete = false;
        assert_eq!(choose(&e, "c", "latest").unwrap().0, "t2-063058Z");
        assert!(choose(&e, "c", "aaa-063312Z").is_err());
    }
}
