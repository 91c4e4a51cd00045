//! The restore source of cbk's own repository: `restore.source` is `latest`,
//! `latest-before:<time>` or a backup's name. `resolve` picks the snapshot backup (and the
//! incrementals chained to it) from the repository's inventory and assigns its catalog's hosts to
//! the targets ([`crate::tasks::restore_topology`]); `stage` lists each host's node manifests.

use super::{HostToStage, Resolution, RestoreSource, Staging};
use crate::agent::ops::fetch::FetchFile;
use crate::cassandra::layout::TableFilter;
use crate::exec::TaskError;
use crate::plan::model::{RestoreConfig, SystemKeyspaces};
use crate::repo::inventory::{self, BackupInfo};
use crate::repo::keys;
use crate::repo::manifest::KeyspaceDef;
use crate::repo::manifest::{BackupKind, Catalog, IndexEntry, NodeManifest};
use crate::store::{Store, StoreError};
use crate::tasks::restore_keyspaces;
use crate::tasks::restore_state::{Resolved, ResolvedHost, StagedTable};
use crate::tasks::restore_topology::{self, SourceHost};
use crate::tasks::{Runtime, repo_err, store_err};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Backups of the repository the plan's `[storage]` holds.
pub struct Repository {
    /// `latest`, `latest-before:<time>` or a backup name.
    source: String,
}

impl Repository {
    pub fn new(source: &str) -> Repository {
        Repository {
            source: source.to_string(),
        }
    }
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
            other => repo_err(other),
        })
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

#[async_trait]
impl RestoreSource for Repository {
    /// Picks the backup (and incrementals) and maps source hosts to target hosts.
    async fn resolve(
        &self,
        rt: &Runtime,
        cfg: &RestoreConfig,
        targets: &[String],
    ) -> Result<Resolution, TaskError> {
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
            choose(&backups, cluster, &self.source).map_err(TaskError::fatal)?;
        if cfg.incrementals == Some(false) {
            incrementals.clear();
        }
        let catalog: Catalog = get_json(&store, &keys::catalog_key(&backup)).await?;
        // An encrypted repository needs the identity: refused here, before any node is touched.
        let ids = rt.identities().await?;
        let sources: Vec<SourceHost> = catalog
            .hosts
            .iter()
            .map(|h| SourceHost {
                name: h.name.clone(),
                host_id: h.host_id.clone(),
                dc: h.dc.clone(),
            })
            .collect();
        let target_hosts = crate::tasks::restore_state::plan_targets(rt);
        let assigned = restore_topology::assign_hosts(cfg, &target_hosts, &sources)
            .map_err(|e| TaskError::fatal(format!("backup {backup}: {e}")))?;
        let filter = TableFilter::new(&cfg.include, &cfg.exclude, SystemKeyspaces::None)
            .map_err(|e| TaskError::fatal(e.to_string()))?;
        let mut keyspaces = std::collections::BTreeSet::new();
        let mut hosts = BTreeMap::new();
        let mut also: BTreeMap<String, Vec<ResolvedHost>> = BTreeMap::new();
        let mut recorded: Option<BTreeMap<String, KeyspaceDef>> = None;
        let mut restored_dcs = Vec::new();
        for (target, idx) in &assigned.by_target {
            for (n, i) in idx.iter().enumerate() {
                let h = &catalog.hosts[*i];
                restored_dcs.push(restore_keyspaces::target_dc(cfg, &h.dc).to_string());
                let mut manifests = vec![h.manifest.clone()];
                for inc in &incrementals {
                    let key = keys::node_manifest_key(&h.host_id, inc);
                    if store.head(&key).await.map_err(store_err)?.is_some() {
                        manifests.push(key);
                    }
                }
                let m = read_manifest(&store, &h.manifest, ids.as_ref()).await?;
                if let Some(defs) = restore_keyspaces::recorded(&m, &h.manifest)? {
                    let r = recorded.get_or_insert_default();
                    r.extend(defs.into_iter().map(|d| (d.name.clone(), d)));
                }
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
        let replication = restore_keyspaces::check_replication(
            rt,
            cfg,
            &keyspaces,
            recorded.as_ref(),
            &restored_dcs,
        )
        .await?;
        let r = Resolved {
            backup: backup.clone(),
            incrementals,
            hosts,
            also,
            keyspaces: recorded,
        };
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
                restore_topology::names(&sources, &assigned.other_dcs)
            );
        }
        if !assigned.unused.is_empty() {
            notes += &format!(
                "; not restored (no target maps them): {}",
                restore_topology::names(&sources, &assigned.unused)
            );
        }
        Ok(Resolution {
            summary: format!(
                "restoring backup {backup} (+{} incrementals) onto {} hosts: {}{notes}; {replication}",
                r.incrementals.len(),
                targets.len() - receivers.len(),
                host_lines(&r, cfg.pin_tokens)
            ),
            resolved: r,
        })
    }

    /// The node manifests of the host, the snapshot first: the files of the selected tables,
    /// staged under the names they are loaded into; incremental files the snapshot already
    /// covers are left out.
    async fn stage(
        &self,
        rt: &Runtime,
        cfg: &RestoreConfig,
        filter: &TableFilter,
        host: HostToStage<'_>,
        staging: &mut Staging,
    ) -> Result<(), TaskError> {
        let store = rt.store().await?;
        let ids = rt.identities().await?;
        let (source, prefix) = (host.source, host.prefix);
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
                let (ks, table) = restore_topology::target_names(cfg, &t.keyspace, &t.table);
                let folder = format!("{prefix}{ks}/{table}-{}", t.id);
                let renamed = (ks != t.keyspace || table != t.table)
                    .then(|| format!("{}.{}", t.keyspace, t.table));
                let entry = staging
                    .tables
                    .entry(folder.clone())
                    .or_insert_with(|| StagedTable {
                        keyspace: ks,
                        table,
                        backup_id: t.id.clone(),
                        staged: folder.clone(),
                        schema_cql: None,
                        source: host.several.then(|| source.source_host.clone()),
                        renamed_from: renamed,
                    });
                if t.schema_cql.is_some() {
                    entry.schema_cql = t.schema_cql.clone();
                }
                for f in &t.files {
                    if !is_base && coverage.covers(&table_folder, &f.path) {
                        staging.covered += 1;
                        continue;
                    }
                    let dest = format!("{folder}/{}", f.path);
                    let new = FetchFile {
                        key: f.key.clone(),
                        dest: dest.clone(),
                        size: Some(f.size),
                        crc32: Some(f.crc32),
                        codec: f.codec.clone(),
                    };
                    if let Some(old) = staging.files.get(&dest)
                        && old.key != new.key
                    {
                        return Err(TaskError::fatal(format!(
                            "{dest} names different data in `{}` and `{}`",
                            old.key, new.key
                        )));
                    }
                    staging.files.insert(dest, new);
                }
            }
        }
        Ok(())
    }
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
