//! Restore tasks: resolve the source backup, fetch it into staging on every node (verified),
//! match backed-up table folders to live table ids, then the Node Restart Method (stop, clear
//! the commit log, move, start, wait until up, repair) or a no-downtime load (import, refresh).
//!
//! Tasks pass what they learn to later tasks through journal checkpoints
//! ([`super::restore_state`]), so a resumed restore uses the same backup and the same table
//! mapping even if new backups landed meanwhile. Where the backup comes from (cbk's repository
//! or a legacy bucket) is behind [`RestoreSource`]: `resolve` and `fetch` drive it and know no
//! source by name.

use super::Runtime;
use super::node::{self, nt_err};
use super::restore_source::{self, HostToStage, RestoreSource, Staging};
use super::restore_state::{
    Mapping, RESOLVE, Resolved, ResolvedHost, Staged, StagedTable, checkpoint, plan_host_names,
    restore_config, save, staged_and_mapped,
};
use crate::agent::ops::relocate::MoveTable;
use crate::agent::protocol::{
    CleanupRequest, ClearCommitlogRequest, FetchRequest, HandOverRequest, MoveRequest,
};
use crate::cassandra::layout::TableFilter;
use crate::exec::{Check, Outcome, TaskContext, TaskError};
use crate::graph::run::{PlannedTask, TaskKind};
use crate::graph::spec::{RepairParams, SelectionParams};
use crate::plan::model::{CommandSpec, RestoreConfig, RestoreMethod, SystemKeyspaces};
use std::collections::BTreeMap;
use std::time::Duration;

/// `resolve`: the source `restore.source` names picks the backup and maps its hosts to the
/// plan's hosts; the result is the `resolve` checkpoint every later task reads.
pub async fn resolve(rt: &Runtime, cx: &TaskContext) -> Result<Outcome, TaskError> {
    let cfg = restore_config(rt)?;
    resolve_from(rt, cx, cfg, restore_source::open(&cfg.source).as_ref()).await
}

async fn resolve_from(
    rt: &Runtime,
    cx: &TaskContext,
    cfg: &RestoreConfig,
    source: &dyn RestoreSource,
) -> Result<Outcome, TaskError> {
    let targets = plan_host_names(rt);
    let resolution = source.resolve(rt, cfg, &targets).await?;
    let data = save(cx, RESOLVE, &resolution.resolved)?;
    Ok(Outcome {
        summary: resolution.summary,
        data,
    })
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
    let filter = TableFilter::new(&p.include, &p.exclude, SystemKeyspaces::None)
        .map_err(|e| TaskError::fatal(e.to_string()))?;
    let ids = rt.identities().await?;
    let source = restore_source::open(&cfg.source);
    let Staging {
        mut files,
        tables,
        covered,
    } = stage_sources(rt, cfg, &filter, source.as_ref(), &sources).await?;
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

/// Every source of one target, staged through `source`: the files and tables `fetch` hands to
/// the node's agent.
async fn stage_sources(
    rt: &Runtime,
    cfg: &RestoreConfig,
    filter: &TableFilter,
    source: &dyn RestoreSource,
    sources: &[&ResolvedHost],
) -> Result<Staging, TaskError> {
    let several = sources.len() > 1;
    let mut staging = Staging::default();
    for host in sources {
        let prefix = super::restore_topology::staging_prefix(&host.source_host, several)
            .map_err(TaskError::fatal)?;
        let host = HostToStage {
            source: host,
            prefix: &prefix,
            several,
        };
        source.stage(rt, cfg, filter, host, &mut staging).await?;
    }
    Ok(staging)
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
    Ok(crate::cassandra::cqlsh::rows(&out.stdout_str(), 3)
        .into_iter()
        .filter(|cols| cols[2].len() == 36 && cols[2].chars().filter(|c| *c == '-').count() == 4)
        .map(|cols| {
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2].replace('-', ""),
            )
        })
        .collect())
}

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

/// `match_tables[HOST]`: backed-up `TABLE-OLDID` -> live `TABLE-ID`, resolved before anything
/// stops. Ambiguity is an error unless the plan pins the id.
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
    let resolved: Resolved = checkpoint(cx, RESOLVE)?;
    let mut live_keyspaces = None;
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
            let source_ks = t
                .renamed_from
                .as_deref()
                .and_then(|f| f.split_once('.'))
                .map_or(t.keyspace.as_str(), |(k, _)| k);
            if let Some(stmt) = super::restore_keyspaces::ensure(
                rt,
                host,
                cfg,
                resolved.keyspaces.as_ref(),
                (&t.keyspace, source_ks),
                &mut live_keyspaces,
            )
            .await?
            {
                lines.push(format!("created: {}", stmt.trim_end_matches(';')));
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
    //! A third source implements [`RestoreSource`] and nothing else: this in-memory one drives
    //! `resolve` (the journal checkpoint every later task reads) and `fetch`'s staging.
    use super::*;
    use crate::agent::ops::fetch::FetchFile;
    use crate::exec::{Checkpoints, MemoryCheckpoints, NoProgress};
    use crate::tasks::restore_source::Resolution;
    use async_trait::async_trait;
    use std::sync::Arc;

    /// One backed-up table: keyspace, table, id and its files.
    type MemTable = (&'static str, &'static str, &'static str, Vec<&'static str>);

    /// Backed-up host -> its tables.
    struct MemSource {
        hosts: BTreeMap<String, Vec<MemTable>>,
    }

    #[async_trait]
    impl RestoreSource for MemSource {
        async fn resolve(
            &self,
            _rt: &Runtime,
            _cfg: &RestoreConfig,
            targets: &[String],
        ) -> Result<Resolution, TaskError> {
            let mut hosts = BTreeMap::new();
            for t in targets {
                if !self.hosts.contains_key(t) {
                    return Err(TaskError::fatal(format!("no backed-up host {t}")));
                }
                hosts.insert(
                    t.clone(),
                    ResolvedHost {
                        source_host: t.clone(),
                        host_id: format!("id-{t}"),
                        manifests: Vec::new(),
                        tokens: vec!["0".into()],
                        legacy: Vec::new(),
                        legacy_schemas: BTreeMap::new(),
                    },
                );
            }
            Ok(Resolution {
                summary: format!("memory: {} hosts", hosts.len()),
                resolved: Resolved {
                    backup: "mem-1".into(),
                    incrementals: Vec::new(),
                    hosts,
                    also: BTreeMap::new(),
                    keyspaces: None,
                },
            })
        }

        async fn stage(
            &self,
            _rt: &Runtime,
            _cfg: &RestoreConfig,
            filter: &TableFilter,
            host: HostToStage<'_>,
            staging: &mut Staging,
        ) -> Result<(), TaskError> {
            for (ks, table, id, files) in &self.hosts[&host.source.source_host] {
                if !filter.matches(ks, table) {
                    continue;
                }
                let folder = format!("{}{ks}/{table}-{id}", host.prefix);
                staging.tables.insert(
                    folder.clone(),
                    StagedTable {
                        keyspace: ks.to_string(),
                        table: table.to_string(),
                        backup_id: id.to_string(),
                        staged: folder.clone(),
                        schema_cql: None,
                        source: host.several.then(|| host.source.source_host.clone()),
                        renamed_from: None,
                    },
                );
                for f in files {
                    let dest = format!("{folder}/{f}");
                    staging.files.insert(
                        dest.clone(),
                        FetchFile {
                            key: format!("mem/{}/{dest}", host.source.source_host),
                            dest,
                            size: None,
                            crc32: None,
                            codec: "none".into(),
                        },
                    );
                }
            }
            Ok(())
        }
    }

    /// A context whose checkpoints stay in `journal`.
    fn context(journal: &Arc<MemoryCheckpoints>) -> TaskContext {
        TaskContext {
            progress: Arc::new(NoProgress),
            checkpoints: journal.clone(),
            cancel: Default::default(),
        }
    }

    fn runtime(hosts: &str) -> Runtime {
        let src = format!(
            "version = 1\nkind = \"restore\"\n[cluster]\nname = \"c\"\nhosts = [{hosts}]\n\
             [storage]\nurl = \"file:///tmp/cbk-mem\"\n\
             [restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"loader\"\n"
        );
        let run =
            crate::graph::compile_source("t.toml", &src, "2026-12-01T00:00:00Z".parse().unwrap())
                .expect("plan compiles");
        Runtime::new(Arc::new(run), 1).expect("runtime")
    }

    fn mem() -> MemSource {
        let mut hosts = BTreeMap::new();
        for h in ["a", "b"] {
            hosts.insert(
                h.to_string(),
                vec![
                    (
                        "shop",
                        "orders",
                        "0001",
                        vec!["nb-1-big-Data.db", "nb-1-big-TOC.txt"],
                    ),
                    ("other", "skipped", "0002", vec!["nb-1-big-Data.db"]),
                ],
            );
        }
        MemSource { hosts }
    }

    #[tokio::test]
    async fn a_third_source_drives_resolve_and_staging_through_the_trait_alone() {
        let rt = runtime("\"a\", \"b\"");
        let journal = Arc::new(MemoryCheckpoints::default());
        let cx = context(&journal);
        let cfg = restore_config(&rt).unwrap();
        let source = mem();
        let out = resolve_from(&rt, &cx, cfg, &source).await.expect("resolve");
        assert_eq!(out.summary, "memory: 2 hosts");
        // What later tasks read is the journal checkpoint, in the common form.
        let resolved: Resolved = checkpoint(&cx, RESOLVE).expect("checkpoint");
        assert_eq!(journal.last(RESOLVE), Some(out.data));
        assert_eq!(resolved.backup, "mem-1");
        assert_eq!(resolved.sources("b")[0].host_id, "id-b");

        let filter = TableFilter::new(&cfg.include, &cfg.exclude, SystemKeyspaces::None).unwrap();
        let staged = stage_sources(&rt, cfg, &filter, &source, &resolved.sources("a"))
            .await
            .expect("stage");
        assert_eq!(
            staged.files.keys().collect::<Vec<_>>(),
            [
                "shop/orders-0001/nb-1-big-Data.db",
                "shop/orders-0001/nb-1-big-TOC.txt"
            ]
        );
        assert_eq!(staged.tables["shop/orders-0001"].source, None);

        // A target restoring two backed-up hosts (`loader`): each under its own folder.
        let both = [&resolved.hosts["a"], &resolved.hosts["b"]];
        let staged = stage_sources(&rt, cfg, &filter, &source, &both)
            .await
            .expect("stage");
        assert_eq!(
            staged.tables.keys().collect::<Vec<_>>(),
            ["src-a/shop/orders-0001", "src-b/shop/orders-0001"]
        );
        assert_eq!(
            staged.tables["src-b/shop/orders-0001"].source.as_deref(),
            Some("b")
        );
    }

    #[tokio::test]
    async fn a_source_refusal_saves_no_checkpoint() {
        let rt = runtime("\"a\", \"c\"");
        let journal = Arc::new(MemoryCheckpoints::default());
        let cx = context(&journal);
        let cfg = restore_config(&rt).unwrap();
        let err = resolve_from(&rt, &cx, cfg, &mem()).await.unwrap_err();
        assert_eq!(err.message, "no backed-up host c");
        assert_eq!(journal.last(RESOLVE), None);
    }

    #[test]
    fn the_flow_names_no_source() {
        // Both sources are reachable only through `open`; the flow names neither.
        let text = include_str!("restore.rs");
        let code = &text[..text.find("#[cfg(test)]").unwrap()];
        assert!(
            !code.contains("legacy::"),
            "restore.rs names the legacy source"
        );
        assert!(
            !code.contains("repository::"),
            "restore.rs names the repository source"
        );
    }
}
