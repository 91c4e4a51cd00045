//! The compiler: a resolved plan becomes a graph of tasks with stable addresses, then a
//! deterministic topological list of [`PlannedTask`]s. Pure: no I/O, no clock, no randomness.

use super::run::{Action, PlannedTask, TaskKind};
use super::spec::{
    CatalogParams, ClearSnapshotParams, ExecParams, LoaderParams, NoParams, RebuildIndexParams,
    RepairParams, ResolveParams, SelectionParams, SnapshotParams, SourceHostParams, TaskSpec,
    UploadParams,
};
use crate::plan::load::{BuiltinNames, Resolved, ResolvedStep, StepCatalog};
use crate::plan::model::{BackupMode, ClearSnapshot, HostSpec, PlanFile, PlanKind, RestoreMethod};
use petgraph::graph::{DiGraph, NodeIndex};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// The compiler's lookup maps are keyed by step and host names and only ever looked up (never
/// iterated), so a fast non-cryptographic hasher is safe and saves a SipHash per task.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Every task kind except `exec` (the names custom steps may not take).
pub const ALL_KINDS: &[TaskKind] = &[
    TaskKind::Probe,
    TaskKind::Flush,
    TaskKind::Snapshot,
    TaskKind::Upload,
    TaskKind::UploadIncremental,
    TaskKind::Manifest,
    TaskKind::ClearSnapshot,
    TaskKind::Catalog,
    TaskKind::Resolve,
    TaskKind::Fetch,
    TaskKind::MatchTables,
    TaskKind::Stop,
    TaskKind::ClearCommitlog,
    TaskKind::Move,
    TaskKind::Start,
    TaskKind::WaitUp,
    TaskKind::RebuildIndex,
    TaskKind::Import,
    TaskKind::Refresh,
    TaskKind::Loader,
    TaskKind::Repair,
    TaskKind::Cleanup,
];

/// Whether a built-in step runs once per host or once on the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    PerHost,
    Controller,
}

/// How a built-in dependency connects hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `to[h]` waits for `from[h]`.
    PerHost,
    /// `to[h]` waits for `from` on every host (a barrier).
    Barrier,
}

/// The built-in steps of a plan, in order, and their dependencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Builtins {
    pub steps: Vec<(TaskKind, Scope)>,
    pub edges: Vec<(TaskKind, TaskKind, Link)>,
    /// Steps whose tasks are chained host after host (repair).
    pub chained: Vec<TaskKind>,
}

impl Builtins {
    /// Whether the plan has a built-in step with this name (`snapshot`, `stop`, ...).
    pub fn find(&self, name: &str) -> Option<(TaskKind, Scope)> {
        self.steps.iter().copied().find(|(k, _)| k.as_str() == name)
    }
}

/// The loader's view of the built-in steps (names only), so it can check custom steps against
/// them without knowing task kinds.
pub struct BuiltinSteps;

impl StepCatalog for BuiltinSteps {
    fn reserved(&self) -> Vec<&'static str> {
        ALL_KINDS.iter().map(|k| k.as_str()).collect()
    }
    fn builtins(&self, plan: &PlanFile) -> BuiltinNames {
        let bi = builtins(plan);
        BuiltinNames {
            steps: bi.steps.iter().map(|(k, _)| k.as_str()).collect(),
            edges: bi
                .edges
                .iter()
                .map(|(a, b, _)| (a.as_str(), b.as_str()))
                .collect(),
        }
    }
}

/// Whether a restore runs `nodetool repair` (default: yes for the restart method only).
pub fn restore_repairs(plan: &PlanFile) -> bool {
    plan.restore
        .as_ref()
        .is_some_and(|r| r.repair.unwrap_or(r.method == RestoreMethod::Restart))
}

/// Hosts repairing at once after a restore (`[restore] repair_parallelism`, default 1).
pub fn repair_parallelism(plan: &PlanFile) -> u32 {
    plan.restore
        .as_ref()
        .and_then(|r| r.repair_parallelism)
        .unwrap_or(1)
        .max(1)
}

/// What a parallel `repair[HOST]` repairs, as `cbk plan` shows it (`ranges=`).
pub const REPAIRED_RANGES: &str =
    "primary (found at apply: (previous ring token, own token] per token, one -st/-et call each)";

/// What `rebuild_index[HOST]` rebuilds, as `cbk plan` shows it (`indexes=`).
pub const REBUILT_INDEXES: &str =
    "found at apply: each index of the included tables whose source holds no index sstable";

/// How `resolve` assigns the backup hosts that have no target of their name (`loader` without a
/// host map), as `cbk plan` shows it: the hosts are known only once the backup is chosen.
pub const SPREAD_RULE: &str = "each backup host without a target of its name goes to the target with the fewest sources (plan order on ties), at resolve";

/// Whether a restore's source is a legacy `cassandra_backups` bucket (`legacy:<base>/<name>`).
pub fn restores_legacy(plan: &PlanFile) -> bool {
    plan.restore
        .as_ref()
        .is_some_and(|r| crate::repo::legacy::source_spec(r.source.trim_start()).is_some())
}

/// The built-in steps for a plan's kind, mode and method.
pub fn builtins(plan: &PlanFile) -> Builtins {
    use Link::{Barrier, PerHost as H};
    use TaskKind as K;
    let mut chain: Vec<(K, Scope, Link)> = Vec::new();
    let mut extra: Vec<(K, K, Link)> = Vec::new();
    let mut chained = Vec::new();
    let per = Scope::PerHost;
    match plan.kind {
        PlanKind::Runbook => {}
        PlanKind::Backup => {
            let mode = plan.backup.as_ref().map(|b| b.mode).unwrap_or_default();
            chain.push((K::Probe, per, H));
            match mode {
                BackupMode::Snapshot => {
                    chain.extend([
                        (K::Snapshot, per, H),
                        (K::Upload, per, H),
                        (K::Manifest, per, H),
                        (K::ClearSnapshot, per, H),
                    ]);
                }
                BackupMode::Incremental => chain.extend([
                    (K::Flush, per, H),
                    (K::UploadIncremental, per, H),
                    (K::Manifest, per, H),
                ]),
            }
            extra.push((K::Manifest, K::Catalog, Barrier));
        }
        PlanKind::Restore => {
            let method = plan.restore.as_ref().map(|r| r.method).unwrap_or_default();
            chain.extend([(K::Resolve, Scope::Controller, H), (K::Fetch, per, H)]);
            match method {
                RestoreMethod::Restart => {
                    chain.extend([
                        (K::MatchTables, per, H),
                        (K::Stop, per, Barrier),
                        (K::ClearCommitlog, per, H),
                        (K::Move, per, H),
                        (K::Start, per, Barrier),
                        (K::WaitUp, per, H),
                    ]);
                    // The old cassandra_backups never stored index sstables, and the move
                    // displaces the live ones: the indexes are rebuilt, one host at a time.
                    if restores_legacy(plan) {
                        chain.push((K::RebuildIndex, per, H));
                        chained.push(K::RebuildIndex);
                    }
                }
                RestoreMethod::Import => {
                    chain.extend([(K::MatchTables, per, H), (K::Import, per, H)])
                }
                RestoreMethod::Refresh => {
                    chain.extend([(K::MatchTables, per, H), (K::Refresh, per, H)])
                }
                // Every table must exist everywhere before anything streams (sstableloader
                // skips a missing table and still exits 0).
                RestoreMethod::Loader => {
                    chain.extend([(K::MatchTables, per, H), (K::Loader, per, Barrier)])
                }
            }
            if restore_repairs(plan) {
                chain.push((K::Repair, per, Barrier));
                // One host after the other, unless the plan repairs token ranges in parallel.
                if repair_parallelism(plan) <= 1 {
                    chained.push(K::Repair);
                }
            }
            chain.push((K::Cleanup, per, H));
        }
    }
    let mut steps: Vec<(K, Scope)> = chain.iter().map(|(k, s, _)| (*k, *s)).collect();
    let mut edges: Vec<(K, K, Link)> = chain.windows(2).map(|w| (w[0].0, w[1].0, w[1].2)).collect();
    if plan.kind == PlanKind::Backup {
        steps.push((K::Catalog, Scope::Controller));
    }
    edges.extend(extra);
    Builtins {
        steps,
        edges,
        chained,
    }
}

/// Whether a glob-free `ks.table` name.
fn exact_table(pattern: &str) -> Option<(&str, &str)> {
    if pattern.contains(['*', '?', '[', ']', '{', '}']) {
        return None;
    }
    pattern.split_once('.')
}

/// The tasks of one step: all of them, and by host (`None` = the controller).
#[derive(Default)]
struct StepTasks {
    all: Vec<NodeIndex>,
    controller: Vec<NodeIndex>,
    by_host: FastMap<String, Vec<NodeIndex>>,
}

/// Prerequisites of a task on `host` (or the controller) from the step `from`: the same host's
/// tasks of `from`, or all of them for a barrier or when `from` does not run on this host.
fn prereqs<'s>(
    steps: &'s FastMap<String, StepTasks>,
    from: &str,
    host: Option<&str>,
    barrier: bool,
) -> &'s [NodeIndex] {
    let Some(st) = steps.get(from) else {
        return &[];
    };
    match host.and_then(|h| st.by_host.get(h)) {
        Some(own) if !barrier && !own.is_empty() => own,
        _ => &st.all,
    }
}

struct Builder<'a> {
    /// Dependency structure; node `i` is `tasks[i]` (nodes are never removed).
    g: DiGraph<(), ()>,
    tasks: Vec<PlannedTask>,
    /// step name -> its tasks.
    steps: FastMap<String, StepTasks>,
    /// Ordering key per node index: (step rank, host rank).
    rank: Vec<(usize, usize)>,
    host_rank: FastMap<&'a str, usize>,
}

impl<'a> Builder<'a> {
    fn add(&mut self, task: PlannedTask, step_rank: usize) -> NodeIndex {
        let host_rank = task
            .host
            .as_deref()
            .and_then(|h| self.host_rank.get(h).copied())
            .unwrap_or(0);
        let n = self.g.add_node(());
        if !self.steps.contains_key(&task.step) {
            self.steps.insert(task.step.clone(), StepTasks::default());
        }
        if let Some(st) = self.steps.get_mut(&task.step) {
            st.all.push(n);
            match &task.host {
                None => st.controller.push(n),
                Some(h) => match st.by_host.get_mut(h) {
                    Some(v) => v.push(n),
                    None => {
                        st.by_host.insert(h.clone(), vec![n]);
                    }
                },
            }
        }
        self.tasks.push(task);
        self.rank.push((step_rank, host_rank));
        n
    }

    /// All tasks of `step` (a copy: callers add edges while walking it).
    fn all(&self, step: &str) -> Vec<NodeIndex> {
        self.steps
            .get(step)
            .map(|s| s.all.clone())
            .unwrap_or_default()
    }

    /// Adds `from -> to`. A repeated edge is harmless: `order` counts and lists it once per
    /// pair (checking for an existing edge here would walk a long adjacency list per call).
    fn edge(&mut self, from: NodeIndex, to: NodeIndex) {
        if from != to {
            self.g.add_edge(from, to, ());
        }
    }

    /// Makes `t` wait for its prerequisites from the step `from`.
    fn connect(&mut self, from: &str, t: NodeIndex, barrier: bool) {
        let Builder {
            g, tasks, steps, ..
        } = self;
        let host = tasks[t.index()].host.as_deref();
        for &p in prereqs(steps, from, host, barrier) {
            if p != t {
                g.add_edge(p, t, ());
            }
        }
    }
}

fn task(spec: TaskSpec, step: &str, address: String, host: Option<&str>) -> PlannedTask {
    let kind = spec.kind();
    let action = match kind {
        TaskKind::Probe | TaskKind::Resolve | TaskKind::MatchTables => Action::Read,
        _ => Action::Run,
    };
    // A snapshot is cleared even after a failed upload unless the plan keeps it on failure.
    let always = matches!(
        &spec,
        TaskSpec::ClearSnapshot(p) if p.policy == ClearSnapshot::Always
    );
    PlannedTask {
        address,
        spec,
        step: step.to_owned(),
        host: host.map(str::to_owned),
        action,
        disruptive: kind.disruptive(),
        step_limit: None,
        always,
        after: Vec::new(),
        reason: None,
    }
}

/// Errors the compiler can still find (the loader reports these with spans first).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("dependency cycle through `{0}`")]
    Cycle(String),
}

/// Compiles a resolved plan into tasks in deterministic topological order.
pub fn compile(r: &Resolved) -> Result<Vec<PlannedTask>, CompileError> {
    let plan = &r.plan;
    let host_names: Vec<&str> = r.hosts.iter().map(|h| h.name.as_str()).collect();
    let per_host = builtins(plan).steps.len()
        + plan.backup.as_ref().map_or(1, |b| b.include.len().max(1))
        + r.steps.len();
    let estimate = host_names.len() * per_host + r.steps.len() + 2;
    let mut b = Builder {
        g: DiGraph::with_capacity(estimate, estimate * 2),
        tasks: Vec::with_capacity(estimate),
        steps: FastMap::default(),
        rank: Vec::new(),
        host_rank: host_names
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i))
            .collect(),
    };
    let bi = builtins(plan);
    let backup = r.backup_name.clone().unwrap_or_default();
    // Source host for each target host (restore with a host map).
    let mut source_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mapped = plan
        .restore
        .as_ref()
        .is_some_and(|r| !r.host_map.is_empty());
    if let Some(rs) = &plan.restore {
        for (src, dst) in &rs.host_map {
            source_of
                .entry(dst.as_str())
                .or_default()
                .push(src.as_str());
        }
    }
    let limits = &plan.limits;
    for (rank, (kind, scope)) in bi.steps.iter().enumerate() {
        let name = kind.as_str();
        if *scope == Scope::Controller {
            let spec = builtin_spec(*kind, r, &backup, "", &[]);
            b.add(task(spec, name, name.to_owned(), None), rank);
            continue;
        }
        for h in &host_names {
            // Several (or none) only for `loader` (the loader refuses it for the others).
            let src: Vec<&str> = match source_of.get(h) {
                Some(v) => v.clone(),
                None if mapped => Vec::new(),
                None => vec![*h],
            };
            let src = src.as_slice();
            let tasks: Vec<(String, TaskSpec)> = match kind {
                // One upload task per include pattern.
                TaskKind::Upload if plan.backup.as_ref().is_some_and(|b| !b.include.is_empty()) => {
                    let bc = plan.backup.as_ref();
                    let include = bc.map(|b| b.include.as_slice()).unwrap_or(&[]);
                    let exclude = || bc.map(|b| b.exclude.clone()).unwrap_or_default();
                    let mut tasks = Vec::with_capacity(include.len());
                    for inc in include {
                        let p = match exact_table(inc) {
                            Some((ks, t)) => UploadParams::Table {
                                keyspace: ks.to_owned(),
                                table: t.to_owned(),
                            },
                            None => UploadParams::Pattern {
                                exclude: exclude(),
                                pattern: inc.clone(),
                            },
                        };
                        tasks.push((format!("upload[{h}/{inc}]"), TaskSpec::Upload(p)));
                    }
                    tasks
                }
                _ => vec![(
                    format!("{name}[{h}]"),
                    builtin_spec(*kind, r, &backup, h, src),
                )],
            };
            for (addr, spec) in tasks {
                let mut t = task(spec, name, addr, Some(h));
                if matches!(kind, TaskKind::Start) {
                    t.step_limit = Some(limits.rolling.max(1));
                }
                if bi.chained.contains(kind) {
                    t.step_limit = Some(1);
                } else if matches!(kind, TaskKind::Repair) {
                    t.step_limit = Some(repair_parallelism(plan));
                }
                b.add(t, rank);
            }
        }
    }
    // Built-in edges.
    for (from, to, link) in &bi.edges {
        for t in b.all(to.as_str()) {
            b.connect(from.as_str(), t, *link == Link::Barrier);
        }
    }
    for kind in &bi.chained {
        let all = b.all(kind.as_str());
        for w in all.windows(2) {
            b.edge(w[0], w[1]);
        }
    }
    // Custom steps.
    let base_rank = bi.steps.len();
    for (i, st) in r.steps.iter().enumerate() {
        let spec = &plan.steps[st.index];
        let name = spec.name.as_str();
        let hosts: Vec<Option<&str>> = match &st.hosts {
            None => vec![None],
            Some(hs) => hs.iter().map(|h| Some(h.as_str())).collect(),
        };
        for (j, h) in hosts.iter().enumerate() {
            let addr = match h {
                Some(h) => format!("exec[{name}/{h}]"),
                None => format!("exec[{name}]"),
            };
            let mut t = task(exec_spec(st, j, spec.sudo), name, addr, *h);
            t.disruptive = spec.disruptive;
            if spec.rolling {
                t.step_limit = Some(1);
            }
            b.add(t, base_rank + i);
        }
    }
    for st in &r.steps {
        let spec = &plan.steps[st.index];
        let mine = b.all(&spec.name);
        for t in &mine {
            for a in &spec.after {
                b.connect(a, *t, spec.barrier);
            }
        }
        for before in &spec.before {
            for t in b.all(before) {
                b.connect(&spec.name, t, false);
            }
        }
    }
    order(b)
}

/// sstableloader contact points: the plan's, else the node itself (its address, else its name).
pub fn loader_nodes(
    cfg: Option<&crate::plan::model::LoaderConfig>,
    host: Option<&HostSpec>,
    name: &str,
) -> Vec<String> {
    match cfg {
        Some(c) if !c.nodes.is_empty() => c.nodes.clone(),
        _ => vec![
            host.and_then(|h| h.address.clone())
                .unwrap_or_else(|| name.to_string()),
        ],
    }
}

/// An `exec` task: `run`, and `sudo`, `check`, `creates` when set.
fn exec_spec(st: &ResolvedStep, j: usize, sudo: Option<bool>) -> TaskSpec {
    TaskSpec::Exec(Box::new(ExecParams {
        check: st.checks.get(j).cloned().flatten(),
        creates: st.creates.get(j).cloned().flatten(),
        run: st.runs.get(j).cloned(),
        sudo,
    }))
}

/// The spec of a built-in step's task on host `h` (`""`: the controller), restoring `src`'s
/// data. `upload` here is the one task of a plan without include patterns (with them, the
/// caller makes one task per pattern).
fn builtin_spec(kind: TaskKind, r: &Resolved, backup: &str, h: &str, src: &[&str]) -> TaskSpec {
    let plan = &r.plan;
    // One source: `source_host` (as before `loader` restored other node counts); several or
    // none (`loader`): `source_hosts`.
    let (one, many) = match src {
        [s] => (Some((*s).to_owned()), None),
        v => (
            None,
            Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()),
        ),
    };
    let rs = plan.restore.as_ref();
    let include = || rs.map(|x| x.include.clone()).unwrap_or_default();
    let exclude = || rs.map(|x| x.exclude.clone()).unwrap_or_default();
    let selection = || {
        Box::new(SelectionParams {
            exclude: exclude(),
            include: include(),
            source: r.restore_source.clone(),
            source_host: one.clone(),
            source_hosts: many.clone(),
        })
    };
    let source_host = || SourceHostParams {
        source_host: one.clone(),
        source_hosts: many.clone(),
    };
    let none = NoParams {};
    match kind {
        TaskKind::Probe => TaskSpec::Probe(none),
        TaskKind::Flush => TaskSpec::Flush(none),
        TaskKind::Snapshot => {
            // Snapshots of this plan's complete backups that a killed run left behind are
            // cleared, unless the plan keeps its snapshots.
            let keeps = plan
                .backup
                .as_ref()
                .is_some_and(|b| b.clear_snapshot == ClearSnapshot::Never);
            TaskSpec::Snapshot(SnapshotParams {
                clear_stale: match r.backup_tag_prefix.as_deref() {
                    Some(p) if !keeps => Some(format!("{p}*")),
                    _ => None,
                },
                tag: backup.to_owned(),
            })
        }
        TaskKind::Upload => TaskSpec::Upload(UploadParams::Pattern {
            exclude: plan
                .backup
                .as_ref()
                .map(|b| b.exclude.clone())
                .unwrap_or_default(),
            pattern: "*.*".into(),
        }),
        TaskKind::UploadIncremental => TaskSpec::UploadIncremental(none),
        TaskKind::Manifest => TaskSpec::Manifest(none),
        TaskKind::ClearSnapshot => TaskSpec::ClearSnapshot(ClearSnapshotParams {
            policy: plan
                .backup
                .as_ref()
                .map(|b| b.clear_snapshot)
                .unwrap_or_default(),
            tag: backup.to_owned(),
        }),
        TaskKind::Catalog => TaskSpec::Catalog(CatalogParams {
            backup: backup.to_owned(),
        }),
        TaskKind::Resolve => TaskSpec::Resolve(ResolveParams {
            source: r.restore_source.clone(),
            unmatched_sources: rs
                .filter(|x| x.method == RestoreMethod::Loader && x.host_map.is_empty())
                .map(|_| SPREAD_RULE.to_owned()),
        }),
        TaskKind::Fetch => TaskSpec::Fetch(selection()),
        TaskKind::MatchTables => TaskSpec::MatchTables(selection()),
        TaskKind::Stop => TaskSpec::Stop(none),
        TaskKind::ClearCommitlog => TaskSpec::ClearCommitlog(none),
        TaskKind::Move => TaskSpec::Move(source_host()),
        TaskKind::Start => TaskSpec::Start(none),
        TaskKind::WaitUp => TaskSpec::WaitUp(none),
        // The index names live in the target's schema and the tables without index sstables
        // are known once `resolve` listed the source: both at apply, so the task says what it
        // will rebuild (its outcome names each `host/ks.table.index`).
        TaskKind::RebuildIndex => TaskSpec::RebuildIndex(Box::new(RebuildIndexParams {
            exclude: exclude(),
            include: include(),
            indexes: REBUILT_INDEXES.to_owned(),
        })),
        TaskKind::Import => TaskSpec::Import(source_host()),
        TaskKind::Refresh => TaskSpec::Refresh(source_host()),
        TaskKind::Loader => {
            let spec = r.hosts.iter().find(|x| x.name == h);
            TaskSpec::Loader(Box::new(LoaderParams {
                nodes: loader_nodes(rs.and_then(|x| x.loader.as_ref()), spec, h),
                source_host: one,
                source_hosts: many,
            }))
        }
        TaskKind::Repair => TaskSpec::Repair(RepairParams {
            options: rs.map(|x| x.repair_options.clone()).unwrap_or_default(),
            ranges: (repair_parallelism(plan) > 1).then(|| REPAIRED_RANGES.to_string()),
        }),
        TaskKind::Cleanup => TaskSpec::Cleanup(none),
        TaskKind::Exec => TaskSpec::Exec(Box::default()),
    }
}

/// Kahn's algorithm with a stable tie-break: step rank, host rank, address. Tasks are put in
/// order in place (large plans have hundreds of thousands of tasks; no second copy is made).
fn order(b: Builder<'_>) -> Result<Vec<PlannedTask>, CompileError> {
    let Builder {
        g, mut tasks, rank, ..
    } = b;
    let n = tasks.len();
    // One priority per task: step rank, then host rank, then address (a total order computed
    // once, so the heap holds plain integers and addresses are compared only within a group).
    let rank_of = |i: usize| rank.get(i).copied().unwrap_or_default();
    let mut by_prio: Vec<u32> = (0..n as u32).collect();
    by_prio.sort_unstable_by(|&x, &y| {
        let (x, y) = (x as usize, y as usize);
        rank_of(x)
            .cmp(&rank_of(y))
            .then_with(|| tasks[x].address.cmp(&tasks[y].address))
            .then(x.cmp(&y))
    });
    let mut prio = vec![0u32; n];
    for (p, i) in by_prio.iter().enumerate() {
        prio[*i as usize] = p as u32;
    }
    let mut indeg: Vec<usize> = g
        .node_indices()
        .map(|v| g.neighbors_directed(v, petgraph::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<u32>> = (0..n)
        .filter(|i| indeg[*i] == 0)
        .map(|i| Reverse(prio[i]))
        .collect();
    let mut pos = vec![usize::MAX; n];
    let mut placed = 0;
    while let Some(Reverse(p)) = ready.pop() {
        let i = by_prio[p as usize] as usize;
        pos[i] = placed;
        placed += 1;
        for m in g.neighbors_directed(NodeIndex::new(i), petgraph::Outgoing) {
            let m = m.index();
            indeg[m] -= 1;
            if indeg[m] == 0 {
                ready.push(Reverse(prio[m]));
            }
        }
    }
    if placed != n {
        let stuck = (0..n)
            .find(|i| pos[*i] == usize::MAX)
            .map(|i| tasks[i].address.clone())
            .unwrap_or_default();
        return Err(CompileError::Cycle(stuck));
    }
    // Dependencies' addresses, earliest first.
    let afters: Vec<Vec<String>> = g
        .node_indices()
        .map(|v| {
            let mut deps: Vec<usize> = g
                .neighbors_directed(v, petgraph::Incoming)
                .map(|d| d.index())
                .collect();
            deps.sort_by_key(|d| pos[*d]);
            deps.dedup();
            deps.into_iter().map(|d| tasks[d].address.clone()).collect()
        })
        .collect();
    drop(g);
    for (t, after) in tasks.iter_mut().zip(afters) {
        t.after = after;
    }
    // Apply the permutation in place: the task at `i` belongs at `pos[i]`.
    for i in 0..n {
        while pos[i] != i {
            let j = pos[i];
            tasks.swap(i, j);
            pos.swap(i, j);
        }
    }
    Ok(tasks)
}
