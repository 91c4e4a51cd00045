//! The restore's `legacy:<base>/<name>` source: a snapshot written by the old Python
//! `cassandra_backups` / `cassandra_snapshotter` (`<base>/<name>/<host>/<absolute path>.lzo`
//! and `<base>/<name>/manifest.json`). `resolve` turns the listing into per-host object lists
//! (kept in the journal like any resolve result); `fetch` stages them through the agent, which
//! decompresses lzop and verifies lzop's checksums and every Data.db against its Digest. The
//! later restore tasks see ordinary staged `<ks>/<table>-<oldid>/` folders.

use super::{HostToStage, Resolution, RestoreSource, Staging};
use crate::agent::ops::fetch::FetchFile;
use crate::cassandra::layout::TableFilter;
use crate::exec::{Outcome, TaskContext, TaskError};
use crate::graph::run::PlannedTask;
use crate::plan::model::{RestoreConfig, SystemKeyspaces};
use crate::repo::keys;
use crate::repo::legacy::{self, LegacyManifest, LegacyObject, LegacySource};
use crate::store::StoreError;
use crate::tasks::node::{self, nt_err};
use crate::tasks::restore_state::{
    Mapping, RESOLVE, Resolved, ResolvedHost, StagedTable, checkpoint, staged_and_mapped,
    target_host,
};
use crate::tasks::{Runtime, remote_err, store_err};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};

/// The staging folder name of a legacy restore (one path segment).
fn staging_name(base: &str, name: &str) -> String {
    format!("legacy-{}-{name}", base.replace('/', "_"))
}

/// A snapshot of the old tool: `<base>/<name>` under storage.url.
pub struct Legacy {
    spec: String,
}

impl Legacy {
    pub fn new(spec: &str) -> Legacy {
        Legacy {
            spec: spec.to_string(),
        }
    }
}

#[async_trait]
impl RestoreSource for Legacy {
    /// Lists `<base>/<name>/`, requires its `manifest.json`, maps the old `<host>` folders to the
    /// plan's hosts and records each host's selected objects.
    async fn resolve(
        &self,
        rt: &Runtime,
        cfg: &RestoreConfig,
        targets: &[String],
    ) -> Result<Resolution, TaskError> {
        let (base, name) =
            legacy::parse_spec(&self.spec).map_err(|e| TaskError::fatal(e.to_string()))?;
        let prefix = format!("{base}/{name}");
        let store = rt.store().await?;
        let listed = store.list(&format!("{prefix}/")).await.map_err(store_err)?;
        if listed.is_empty() {
            return Err(TaskError::fatal(format!(
                "no legacy backup at `{prefix}/` in {}: nothing is stored there (the source is \
                 `legacy:<--s3-base-path>/<snapshot name>`, relative to storage.url)",
                store.describe()
            )));
        }
        let n_listed = listed.len();
        let listing = legacy::group_by_host(&prefix, listed.into_iter().map(|o| (o.key, o.size)));
        let manifest_key = listing.manifest_key.clone().ok_or_else(|| {
            TaskError::fatal(format!(
                "`{prefix}/manifest.json` is missing ({n_listed} objects under `{prefix}/`): the old \
                 tool writes it only after the first complete snapshot, so this backup is incomplete \
                 and is not restored"
            ))
        })?;
        let manifest: LegacyManifest = match store.get_bytes(&manifest_key).await {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| TaskError::fatal(format!("`{manifest_key}` is unreadable: {e}")))?,
            Err(StoreError::NotFound(_)) => {
                return Err(TaskError::fatal(format!(
                    "`{manifest_key}` disappeared while resolving"
                )));
            }
            Err(e) => return Err(store_err(e)),
        };
        let filter = TableFilter::new(&cfg.include, &cfg.exclude, SystemKeyspaces::None)
            .map_err(|e| TaskError::fatal(e.to_string()))?;
        let mut hosts = BTreeMap::new();
        let mut lines = Vec::new();
        let mut unused = Vec::new();
        for (host, found) in &listing.hosts {
            let Some(target) = target_host(cfg, targets, host, None) else {
                unused.push(host.as_str());
                continue;
            };
            // `incrementals = false`: the snapshot files only, without that day's `backups/`.
            let selected = |o: &&LegacyObject| {
                filter.matches(&o.keyspace, &o.table)
                    && (cfg.incrementals != Some(false) || o.source == LegacySource::Snapshot)
            };
            let objects: Vec<LegacyObject> =
                found.objects.iter().filter(selected).cloned().collect();
            // Duplicates the restore would have taken (selected tables, `backups/` only with
            // incrementals): the others were never candidates.
            let duplicates = found.duplicates.iter().filter(selected).count() as u64;
            if objects.is_empty() {
                return Err(TaskError::fatal(format!(
                    "legacy host folder `{host}` (for {target}) holds no file of the tables the \
                     restore selects"
                )));
            }
            lines.push(host_line(host, &target, &objects, duplicates));
            let legacy_schemas = found
                .schemas
                .iter()
                .filter(|(folder, _)| objects.iter().any(|o| o.folder() == **folder))
                .map(|(f, k)| (f.clone(), k.clone()))
                .collect();
            hosts.insert(
                target,
                ResolvedHost {
                    source_host: host.clone(),
                    host_id: String::new(),
                    manifests: Vec::new(),
                    tokens: Vec::new(),
                    legacy: objects,
                    legacy_schemas,
                },
            );
        }
        let missing: Vec<&str> = targets
            .iter()
            .filter(|t| !hosts.contains_key(*t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(TaskError::fatal(format!(
                "legacy backup `{prefix}` has no host folder for target host(s) {} (its host folders: \
                 {}); map them with restore.host_map = {{ \"<old host>\" = \"<target>\" }}",
                missing.join(", "),
                listing
                    .hosts
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut notes = Vec::new();
        if !manifest.name.is_empty() && manifest.name != name {
            notes.push(format!("manifest.json names snapshot `{}`", manifest.name));
        }
        let absent: Vec<&str> = manifest
            .hosts
            .iter()
            .filter(|h| !listing.hosts.contains_key(*h))
            .map(String::as_str)
            .collect();
        if !absent.is_empty() {
            notes.push(format!(
                "hosts in manifest.json without objects: {}",
                absent.join(", ")
            ));
        }
        if !unused.is_empty() {
            notes.push(format!("host folders not restored: {}", unused.join(", ")));
        }
        if !listing.skipped.is_empty() {
            notes.push(format!(
                "{} objects skipped (first: {})",
                listing.skipped.len(),
                listing.skipped[0]
            ));
        }
        let r = Resolved {
            backup: staging_name(&base, &name),
            incrementals: Vec::new(),
            hosts,
            also: BTreeMap::new(),
            keyspaces: None,
        };
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        Ok(Resolution {
            summary: format!(
                "restoring legacy backup {prefix} (cassandra_backups, manifest keyspaces: {}) onto {} \
                 hosts: {}{notes}",
                manifest
                    .keyspaces
                    .as_ref()
                    .map_or_else(|| "all".to_string(), |k| k.join(",")),
                r.hosts.len(),
                lines.join("; ")
            ),
            resolved: r,
        })
    }

    /// The host's selected objects, each staged where the old tool's path puts it (lzop,
    /// decompressed by the agent). With `create_missing_tables`, each table's snapshot
    /// `schema.cql` is read (and decompressed) here on the controller, for `match_tables` to
    /// create a missing table `WITH ID`. `resolve` gives every target one old host folder, so
    /// `host.prefix` is always empty here.
    async fn stage(
        &self,
        rt: &Runtime,
        cfg: &RestoreConfig,
        filter: &TableFilter,
        host: HostToStage<'_>,
        staging: &mut Staging,
    ) -> Result<(), TaskError> {
        let source = host.source;
        if source.legacy.is_empty() {
            return Ok(());
        }
        for o in source
            .legacy
            .iter()
            .filter(|o| filter.matches(&o.keyspace, &o.table))
        {
            let dest = o.staged_path();
            keys::check_relative(&dest)
                .map_err(|e| TaskError::fatal(format!("legacy object `{}`: {e}", o.key)))?;
            let folder = o.folder();
            staging
                .tables
                .entry(folder.clone())
                .or_insert_with(|| StagedTable {
                    keyspace: o.keyspace.clone(),
                    table: o.table.clone(),
                    backup_id: o.id.clone(),
                    staged: folder,
                    schema_cql: None,
                    source: None,
                    renamed_from: None,
                });
            if let Some(old) = staging.files.get(&dest) {
                return Err(TaskError::fatal(format!(
                    "{dest} names two legacy objects, `{}` and `{}`",
                    old.key, o.key
                )));
            }
            staging.files.insert(
                dest.clone(),
                FetchFile {
                    key: o.key.clone(),
                    dest,
                    size: None,
                    crc32: None,
                    codec: "lzop".into(),
                },
            );
        }
        if cfg.create_missing_tables {
            for (folder, key) in &source.legacy_schemas {
                let Some(t) = staging.tables.get_mut(folder) else {
                    continue;
                };
                let stored = rt.store().await?.get_bytes(key).await.map_err(store_err)?;
                let mut cql = Vec::new();
                crate::codec::decode(crate::codec::Codec::Lzop, &stored[..], &mut cql)
                    .map_err(|e| TaskError::fatal(format!("legacy object `{key}`: {e}")))?;
                t.schema_cql = Some(String::from_utf8(cql).map_err(|_| {
                    TaskError::fatal(format!("legacy object `{key}` is not UTF-8 text"))
                })?);
            }
        }
        Ok(())
    }
}

/// `old host -> target: N objects (B lzo bytes; S snapshot, I backups) in T tables`.
fn host_line(host: &str, target: &str, objects: &[LegacyObject], duplicates: u64) -> String {
    let bytes: u64 = objects.iter().map(|o| o.stored_size).sum();
    let backups = objects
        .iter()
        .filter(|o| o.source == LegacySource::Backups)
        .count();
    let mut tables: Vec<String> = objects.iter().map(LegacyObject::folder).collect();
    tables.dedup();
    let dup = if duplicates > 0 {
        format!(", {duplicates} duplicates skipped")
    } else {
        String::new()
    };
    format!(
        "{host} -> {target}: {} objects ({bytes} lzo bytes; {} snapshot, {backups} backups{dup}) in {} tables",
        objects.len(),
        objects.len() - backups,
        tables.len()
    )
}

/// The restored tables of a host whose source objects hold base sstables but no index
/// sstable (`.<index>/`): `(keyspace, table)`.
fn tables_without_index_sstables(
    source: &ResolvedHost,
    mapped: &[Mapping],
) -> BTreeSet<(String, String)> {
    mapped
        .iter()
        .filter(|m| {
            let folder = format!("{}/{}-{}", m.keyspace, m.table, m.backup_id);
            let mut objects = source.legacy.iter().filter(|o| o.folder() == folder);
            // `file` is `<component>` or `.<index>/<component>`.
            objects.clone().any(|o| !o.file.contains('/')) && !objects.any(|o| o.file.contains('/'))
        })
        .map(|m| (m.keyspace.clone(), m.table.clone()))
        .collect()
}

/// Whether a name Cassandra could have given a keyspace, table or index.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The secondary indexes of the restored tables: from the live schema
/// (`system_schema.indexes`, 3.0+) through cqlsh, or without cqlsh from the `.<index>/`
/// folders Cassandra keeps in each live table folder: `(keyspace, table, index)`.
async fn live_indexes(
    rt: &Runtime,
    host: &str,
    cx: &TaskContext,
) -> Result<Vec<(String, String, String)>, TaskError> {
    let Some(cqlsh) = rt.run.plan.cassandra.cqlsh.as_ref() else {
        return index_folders(rt, host, cx).await;
    };
    let q = "SELECT keyspace_name, table_name, index_name FROM system_schema.indexes";
    let out = node::run_plan_command(rt, host, cqlsh, &["-e".into(), q.into()], None, None).await?;
    if out.code != 0 {
        return Err(TaskError::fatal(format!(
            "cannot list the secondary indexes on {host} (cqlsh exited with {}: {}); rebuild \
             them with `nodetool rebuild_index <ks> <table> <index>`",
            out.code,
            out.stderr_str().trim()
        )));
    }
    Ok(crate::cassandra::cqlsh::rows(&out.stdout_str(), 3)
        .into_iter()
        .filter(|cols| cols.iter().all(|c| is_name(c)))
        .map(|cols| (cols[0].into(), cols[1].into(), cols[2].into()))
        .collect())
}

/// `.<index>/` folders of the restored tables' live folders (Cassandra creates one per index
/// when it opens the table).
async fn index_folders(
    rt: &Runtime,
    host: &str,
    cx: &TaskContext,
) -> Result<Vec<(String, String, String)>, TaskError> {
    let (staged, mapped) = staged_and_mapped(cx, host)?;
    let mut out = Vec::new();
    for m in &mapped {
        let dirs: Vec<String> = staged
            .data_dirs
            .iter()
            .map(|d| {
                format!(
                    "{}/{}/{}-{}",
                    d.trim_end_matches('/'),
                    m.keyspace,
                    m.table,
                    m.live_id
                )
            })
            .collect();
        let mut cmd = crate::remote::Cmd::new("find").args(dirs).args([
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-type",
            "d",
            "-name",
            ".*",
        ]);
        if rt.run.plan.connection.sudo {
            cmd = cmd.sudo();
        }
        // A data folder without this table makes find exit 1; the others are still listed.
        let found = rt
            .transport(host)
            .await?
            .exec(&cmd)
            .await
            .map_err(remote_err)?;
        for line in found.stdout_str().lines() {
            let name = line.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if let Some(idx) = name.strip_prefix('.').filter(|i| is_name(i)) {
                let t = (m.keyspace.clone(), m.table.clone(), idx.to_string());
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    Ok(out)
}

/// `rebuild_index[HOST]` (restart restores of a `legacy:` source, after `wait_up`, one host at
/// a time): the old tool never stored index sstables and `move` displaced the live ones with the
/// base files, so every index of a restored table whose source holds no index sstable is
/// rebuilt from the restored base sstables: `nodetool rebuild_index <ks> <table> <index>`.
/// One task per host (the plan is compiled offline, before the indexes can be known); its
/// outcome names each index rebuilt as `host/ks.table.index`.
pub async fn rebuild_index(
    rt: &Runtime,
    _task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let resolved: Resolved = checkpoint(cx, RESOLVE)?;
    let source = resolved
        .hosts
        .get(host)
        .ok_or_else(|| TaskError::fatal(format!("no source for {host}")))?;
    let mapped: Vec<Mapping> = checkpoint(cx, &format!("match_tables[{host}]"))?;
    let tables = tables_without_index_sstables(source, &mapped);
    if tables.is_empty() {
        return Ok(Outcome {
            summary:
                "no index to rebuild: the source holds the index sstables of every restored table"
                    .into(),
            data: serde_json::Value::Null,
        });
    }
    let mut done = Vec::new();
    for (ks, table, index) in live_indexes(rt, host, cx).await? {
        if !tables.contains(&(ks.clone(), table.clone())) {
            continue;
        }
        let args = vec![
            "rebuild_index".to_string(),
            ks.clone(),
            table.clone(),
            index.clone(),
        ];
        node::nodetool(rt, host, &args).await.map_err(nt_err)?;
        done.push(format!("{host}/{ks}.{table}.{index}"));
    }
    done.sort();
    Ok(Outcome {
        summary: if done.is_empty() {
            "no index to rebuild: the restored tables have no secondary index".into()
        } else {
            format!(
                "rebuilt {} index(es) from the restored sstables: {}",
                done.len(),
                done.join(", ")
            )
        },
        data: serde_json::json!({ "rebuilt": done }),
    })
}
