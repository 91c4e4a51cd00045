//! The loader: TOML text -> a [`Resolved`] plan, or every problem found, each pointing at
//! file:line:column.
//!
//! A short pipeline over the checks of [`super::check`]: syntax (recoverable parse, all syntax
//! errors), literal secrets (redacted before any diagnostic is rendered), shape (each section
//! deserialized on its own so one bad section does not hide another), then each section's
//! checks (references, cycles, templates) with spans found by key path in the parsed document.

use super::check::cluster::{self, HostNames};
use super::check::shape::{self, Parts};
use super::check::{self, Ctx, Doc};
use super::diag::{Diagnostics, Sink};
use super::model::*;
use super::template::{Engine, Vars};
use std::collections::BTreeMap;
use toml::de::DeTable;

/// Top-level keys of a plan file.
pub const TOP_KEYS: &[&str] = &[
    "version",
    "kind",
    "description",
    "cluster",
    "connection",
    "cassandra",
    "storage",
    "encryption",
    "backup",
    "restore",
    "limits",
    "retention",
    "step",
];

/// A custom step after resolution: where it runs and its rendered command per host.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedStep {
    /// Index into `plan.steps`.
    pub index: usize,
    /// Hosts it runs on; `None` = once on the controller.
    pub hosts: Option<Vec<String>>,
    /// Rendered command per host (same order as `hosts`), or one for the controller.
    pub runs: Vec<CommandSpec>,
    /// Rendered `check` command per host (same order), if the step has one.
    pub checks: Vec<Option<CommandSpec>>,
    /// Rendered `creates` path per host (same order), if the step has one.
    pub creates: Vec<Option<String>>,
}

/// A plan with templates rendered and defaults applied: the compiler's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub plan: PlanFile,
    /// Captured clock, RFC 3339 UTC.
    pub now: String,
    /// Rendered backup name (backup plans).
    pub backup_name: Option<String>,
    /// The start of every name the backup name template renders (`nightly-`): snapshot tags
    /// with it are this plan's own.
    pub backup_tag_prefix: Option<String>,
    /// Rendered restore source (restore plans).
    pub restore_source: Option<String>,
    pub hosts: Vec<HostSpec>,
    pub steps: Vec<ResolvedStep>,
    /// Templates as written where `plan` holds their rendering (`backup.name` -> template).
    pub templates: std::collections::BTreeMap<String, String>,
}

/// The built-in steps of one plan, by name, as the compiler lays them out.
#[derive(Debug, Clone, Default)]
pub struct BuiltinNames {
    /// The plan's built-in steps, in order.
    pub steps: Vec<&'static str>,
    /// `(a, b)`: built-in step `b` waits for `a`.
    pub edges: Vec<(&'static str, &'static str)>,
}

/// What the loader knows of built-in steps, to check custom steps' names, `after`/`before` and
/// cycles. The compiler (`crate::graph::compile::BuiltinSteps`, a layer above) provides it, so
/// the loader never names task kinds.
pub trait StepCatalog {
    /// Every built-in step name, whatever the plan (names a custom step may not take).
    fn reserved(&self) -> Vec<&'static str>;
    /// The built-in steps of `plan` (its kind, backup mode and restore method).
    fn builtins(&self, plan: &PlanFile) -> BuiltinNames;
}

/// Loads, checks and resolves a plan. `name` is used in diagnostics; `now` is RFC 3339 UTC;
/// `catalog` names the built-in steps custom steps are checked against.
pub fn load(
    name: &str,
    src: &str,
    now: &str,
    catalog: &dyn StepCatalog,
) -> Result<Resolved, Diagnostics> {
    let mut doc = Doc {
        root: syntax(name, src)?,
    };
    let (mut sink, shown) = check::secrets::check(name, src, &mut doc);
    let parts = shape::shape(&mut sink, &doc);
    let resolved = semantics(&mut sink, &doc, parts, now, catalog);
    match (sink.finish(), resolved) {
        (Ok(()), Some(r)) => Ok(r),
        (Err(d), _) => Err(d),
        (Ok(()), None) => {
            let mut sink = Sink::new(name, &shown);
            sink.error(Some(0..0), "the plan is incomplete", "here", None);
            Err(sink.into_diagnostics())
        }
    }
}

/// Parses the TOML, or reports every syntax error.
fn syntax<'i>(name: &str, src: &'i str) -> Result<toml::Spanned<DeTable<'i>>, Diagnostics> {
    let (root, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        let mut sink = Sink::new(name, src);
        for e in &errors {
            let msg = e.message().trim_end_matches('\n');
            sink.error(
                e.span(),
                format!("TOML syntax error: {msg}"),
                "here",
                Some("see https://toml.io/en/v1.0.0 for the syntax".into()),
            );
        }
        return Err(sink.into_diagnostics());
    }
    Ok(root)
}

/// Every section's checks, in file-format order; the resolved plan if nothing was wrong.
fn semantics(
    sink: &mut Sink,
    doc: &Doc<'_>,
    p: Parts,
    now: &str,
    catalog: &dyn StepCatalog,
) -> Option<Resolved> {
    let ctx = Ctx {
        doc,
        engine: Engine::new(),
    };
    check::top::check(sink, doc, &p);
    let hosts = match &p.cluster {
        Some(c) => cluster::check(sink, doc, c),
        None => Vec::new(),
    };
    let known = HostNames::of(&hosts);
    if let Some(c) = &p.connection {
        check::connection::check(sink, doc, c, hosts.len());
    }
    if let Some(s) = &p.storage {
        check::storage::check(sink, doc, s);
    }
    if let Some(e) = &p.encryption {
        check::encryption::check(sink, doc, e);
    }
    let base_vars = Vars {
        now: Some(now.to_owned()),
        cluster: p.cluster.as_ref().map(|c| c.name.clone()),
        ..Vars::default()
    };
    let (backup_name, backup_tag_prefix) = match &p.backup {
        Some(b) => check::backup::check(sink, &ctx, b, &base_vars),
        None => (None, None),
    };
    let restore_source = match &p.restore {
        Some(r) => check::restore::check(sink, &ctx, r, &base_vars, &known, &hosts),
        None => None,
    };
    if let Some(l) = &p.limits {
        check::limits::check(sink, doc, l);
    }
    if let Some(r) = &p.retention {
        check::retention::check(sink, doc, r);
    }
    let builtins = check::steps::Builtins {
        reserved: catalog.reserved(),
        of_plan: catalog.builtins(&builtins_plan(&p)),
    };
    let step_vars = Vars {
        backup: backup_name.clone().or_else(|| restore_source.clone()),
        ..base_vars
    };
    let resolved_steps =
        check::steps::check(sink, &ctx, &p.steps, &hosts, &known, &builtins, &step_vars);
    if !sink.is_empty() || !p.steps.iter().all(Option::is_some) {
        return None;
    }
    let (plan, templates) = resolved_plan(p, backup_name.as_deref(), restore_source.as_deref())?;
    Some(Resolved {
        plan,
        now: now.to_owned(),
        backup_name,
        backup_tag_prefix,
        restore_source,
        hosts,
        steps: resolved_steps?,
        templates,
    })
}

/// The checked sections as one plan, defaults applied and templates replaced by their
/// rendering (the templates as written are returned by key, `backup.name` -> template).
fn resolved_plan(
    p: Parts,
    backup_name: Option<&str>,
    restore_source: Option<&str>,
) -> Option<(PlanFile, BTreeMap<String, String>)> {
    let steps: Vec<CustomStep> = p.steps.iter().flatten().cloned().collect();
    let mut plan = PlanFile {
        version: p.version?,
        kind: p.kind?,
        description: p.description,
        cluster: p.cluster?,
        connection: p.connection.unwrap_or_default(),
        cassandra: p.cassandra.unwrap_or_default(),
        storage: p.storage,
        encryption: p.encryption,
        backup: p.backup,
        restore: p.restore,
        limits: p.limits.unwrap_or_default(),
        retention: p.retention,
        steps,
    };
    let mut templates = BTreeMap::new();
    if let (Some(b), Some(n)) = (plan.backup.as_mut(), backup_name) {
        if b.name != n {
            templates.insert("backup.name".to_owned(), std::mem::take(&mut b.name));
        }
        b.name = n.to_owned();
    }
    if let (Some(r), Some(s)) = (plan.restore.as_mut(), restore_source) {
        if r.source != s {
            templates.insert("restore.source".to_owned(), std::mem::take(&mut r.source));
        }
        r.source = s.to_owned();
    }
    Some((plan, templates))
}

/// What decides a plan's built-in steps (kind, backup mode, restore method), in a plan of its
/// own: the rest of the sections may be broken or missing at this point.
fn builtins_plan(p: &Parts) -> PlanFile {
    PlanFile {
        version: 1,
        kind: p.kind.unwrap_or(PlanKind::Runbook),
        description: None,
        cluster: ClusterConfig {
            name: String::new(),
            hosts: Vec::new(),
        },
        connection: ConnectionConfig::default(),
        cassandra: CassandraConfig::default(),
        storage: None,
        encryption: None,
        backup: p.backup.clone(),
        restore: p.restore.clone(),
        limits: Limits::default(),
        retention: None,
        steps: Vec::new(),
    }
}
