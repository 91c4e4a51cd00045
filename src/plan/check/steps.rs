//! `[[step]]`: custom steps. Each has a valid, unique name that is not a built-in step's, a scope
//! (`on`), and commands rendered per host; `after`/`before` name known steps, and no dependency
//! cycle runs through built-in and custom steps.

use super::cluster::HostNames;
use super::{Ctx, Doc, I, K, valid_step_name};
use crate::plan::diag::{Sink, suggest};
use crate::plan::load::{BuiltinNames, ResolvedStep};
use crate::plan::model::{CommandSpec, CustomStep, HostSpec, StepScope};
use crate::plan::template::Vars;
use petgraph::graph::DiGraph;
use std::collections::{BTreeSet, HashMap};

/// The built-in steps a plan's custom steps are checked against.
pub struct Builtins {
    /// Every built-in step name (names a custom step may not take).
    pub reserved: Vec<&'static str>,
    /// This plan's built-in steps and their dependencies.
    pub of_plan: BuiltinNames,
}

/// Checks the custom steps; returns them resolved (scope and commands rendered per host) when
/// every one is valid. `steps` holds `None` for a step that did not parse.
pub fn check(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    steps: &[Option<CustomStep>],
    hosts: &[HostSpec],
    known: &HostNames<'_>,
    bi: &Builtins,
    vars: &Vars,
) -> Option<Vec<ResolvedStep>> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = true;
    for (i, st) in steps.iter().enumerate() {
        let Some(st) = st else { continue };
        ok &= check_name(sink, ctx.doc, i, st, &bi.reserved, &mut names);
        match scope(sink, ctx.doc, i, st, known)
            .and_then(|s| resolve(sink, ctx, i, st, s, hosts, vars))
        {
            Some(r) => out.push(r),
            None => ok = false,
        }
    }
    let refs_ok = check_refs(sink, ctx.doc, steps, bi);
    if refs_ok && ok {
        check_cycles(sink, ctx.doc, steps, &bi.of_plan);
    }
    (ok && refs_ok && steps.iter().all(Option::is_some)).then_some(out)
}

/// A step's name: valid, not a built-in step's, not taken by an earlier step.
fn check_name<'s>(
    sink: &mut Sink,
    doc: &Doc<'_>,
    i: usize,
    st: &'s CustomStep,
    reserved: &[&str],
    names: &mut HashMap<&'s str, usize>,
) -> bool {
    let sp = |k: &'static str| [K("step"), I(i), K(k)];
    if !valid_step_name(&st.name) {
        sink.error(
            doc.value(&sp("name")),
            format!("invalid step name `{}`", st.name),
            "invalid name",
            Some("step names use letters, digits, `-` and `_`".into()),
        );
        return false;
    } else if reserved.contains(&st.name.as_str()) {
        sink.error(
            doc.value(&sp("name")),
            format!("step name `{}` is the name of a built-in step", st.name),
            "reserved name",
            Some(format!("pick another name, e.g. `my-{}`", st.name)),
        );
        return false;
    } else if let Some(first) = names.insert(st.name.as_str(), i) {
        sink.error(
            doc.value(&sp("name")),
            format!("step `{}` is defined twice", st.name),
            format!("first defined in step #{}", first + 1),
            Some("step names must be unique".into()),
        );
        return false;
    }
    true
}

/// Where a step runs: `Some(None)` on the controller, `Some(Some(hosts))` on hosts, `None` when
/// `on` is wrong.
fn scope(
    sink: &mut Sink,
    doc: &Doc<'_>,
    i: usize,
    st: &CustomStep,
    hosts: &HostNames<'_>,
) -> Option<Option<Vec<String>>> {
    let sp = |k: &'static str| [K("step"), I(i), K(k)];
    let scope: Option<Option<Vec<String>>> = match &st.on {
        None => Some(Some(hosts.all())),
        Some(StepScope::Keyword(k)) if k == "hosts" => Some(Some(hosts.all())),
        Some(StepScope::Keyword(k)) if k == "controller" => Some(None),
        Some(StepScope::Keyword(k)) => {
            let help = match suggest(k, ["hosts", "controller"]) {
                Some(s) => format!("did you mean `{s}`? or give a list of host names"),
                None => "write `\"hosts\"`, `\"controller\"` or a list of host names".into(),
            };
            sink.error(
                doc.value(&sp("on")),
                format!("unknown scope `{k}`"),
                "unknown scope",
                Some(help),
            );
            None
        }
        Some(StepScope::Hosts(list)) => {
            let mut good = true;
            for (j, h) in list.iter().enumerate() {
                if !hosts.contains(h) {
                    sink.error(
                        doc.value(&[K("step"), I(i), K("on"), I(j)]),
                        format!("unknown host `{h}` in `on`"),
                        "not a host of this cluster",
                        Some(hosts.unknown_help(h)),
                    );
                    good = false;
                }
            }
            if list.is_empty() {
                sink.error(
                    doc.value(&sp("on")),
                    "`on` lists no hosts",
                    "empty",
                    Some("list host names, or write `\"hosts\"`".into()),
                );
                good = false;
            }
            good.then(|| Some(list.clone()))
        }
    };
    if st.rolling && matches!(scope, Some(None)) {
        sink.error(
            doc.value(&sp("rolling")),
            "`rolling` has no effect on a controller step",
            "controller step",
            Some("remove `rolling`, or run the step on hosts".into()),
        );
    }
    scope
}

/// Renders a step's commands for each host of its scope (once for the controller).
fn resolve(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    i: usize,
    st: &CustomStep,
    scope: Option<Vec<String>>,
    hosts: &[HostSpec],
    vars: &Vars,
) -> Option<ResolvedStep> {
    let targets: Vec<Option<&HostSpec>> = match &scope {
        None => vec![None],
        Some(list) => list
            .iter()
            .filter_map(|n| hosts.iter().find(|h| &h.name == n))
            .map(Some)
            .collect(),
    };
    let (mut runs, mut checks, mut creates) = (Vec::new(), Vec::new(), Vec::new());
    for t in targets {
        let v = Vars {
            host: t.map(|h| h.name.clone()),
            dc: t.and_then(|h| h.dc.clone()),
            rack: t.and_then(|h| h.rack.clone()),
            ..vars.clone()
        };
        let (run, check, created) = render_step(sink, ctx, i, st, &v)?;
        runs.push(run);
        checks.push(check);
        creates.push(created);
    }
    Some(ResolvedStep {
        index: i,
        hosts: scope,
        runs,
        checks,
        creates,
    })
}

/// A step's `run`, `check` and `creates` rendered with `v`; `run` must not be empty.
fn render_step(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    i: usize,
    st: &CustomStep,
    v: &Vars,
) -> Option<(CommandSpec, Option<CommandSpec>, Option<String>)> {
    let sp = |k: &'static str| [K("step"), I(i), K(k)];
    let rendered = render_command(sink, ctx, i, "run", &st.run, v);
    let check = match &st.check {
        Some(c) => Some(render_command(sink, ctx, i, "check", c, v)?),
        None => None,
    };
    let created = match &st.creates {
        Some(c) => Some(ctx.render(sink, &sp("creates"), c, v)?),
        None => None,
    };
    let run = rendered?;
    let empty = match &run {
        CommandSpec::Shell(s) => s.trim().is_empty(),
        CommandSpec::Argv(a) => a.is_empty(),
    };
    if empty {
        sink.error(
            ctx.doc.value(&sp("run")),
            "the command is empty",
            "empty command",
            Some("write the command to run".into()),
        );
        return None;
    }
    Some((run, check, created))
}

/// Renders a command (each argv element is its own template).
fn render_command(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    step: usize,
    key: &'static str,
    spec: &CommandSpec,
    vars: &Vars,
) -> Option<CommandSpec> {
    match spec {
        CommandSpec::Shell(s) => ctx
            .render(sink, &[K("step"), I(step), K(key)], s, vars)
            .map(CommandSpec::Shell),
        CommandSpec::Argv(a) => {
            let mut parts = Vec::with_capacity(a.len());
            for (j, s) in a.iter().enumerate() {
                parts.push(ctx.render(sink, &[K("step"), I(step), K(key), I(j)], s, vars)?);
            }
            Some(CommandSpec::Argv(parts))
        }
    }
}

/// `after`/`before` name steps of this plan (built-in or custom), never the step itself.
fn check_refs(sink: &mut Sink, doc: &Doc<'_>, steps: &[Option<CustomStep>], bi: &Builtins) -> bool {
    let reserved = &bi.reserved;
    let bi = &bi.of_plan;
    let custom: Vec<&str> = steps.iter().flatten().map(|s| s.name.as_str()).collect();
    let known: Vec<&str> = bi
        .steps
        .iter()
        .copied()
        .chain(custom.iter().copied())
        .collect();
    let mut refs_ok = true;
    for (i, st) in steps.iter().enumerate() {
        let Some(st) = st else { continue };
        for (field, list) in [("after", &st.after), ("before", &st.before)] {
            for (j, r) in list.iter().enumerate() {
                if r == &st.name {
                    sink.error(
                        doc.value(&[K("step"), I(i), K(field), I(j)]),
                        format!("step `{}` depends on itself", st.name),
                        "self reference",
                        Some(format!("remove `{r}` from `{field}`")),
                    );
                    refs_ok = false;
                } else if !known.contains(&r.as_str()) {
                    let mut help = match suggest(r, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? "),
                        None => String::new(),
                    };
                    help.push_str(&format!("steps of this plan: {}", known.join(", ")));
                    let msg = if reserved.contains(&r.as_str()) {
                        format!("built-in step `{r}` is not part of this plan")
                    } else {
                        format!("unknown step `{r}` in `{field}`")
                    };
                    sink.error(
                        doc.value(&[K("step"), I(i), K(field), I(j)]),
                        msg,
                        "unknown step",
                        Some(help),
                    );
                    refs_ok = false;
                }
            }
        }
    }
    refs_ok
}

/// Finds dependency cycles among built-in and custom steps and reports each with its path.
fn check_cycles(sink: &mut Sink, doc: &Doc<'_>, steps: &[Option<CustomStep>], bi: &BuiltinNames) {
    let mut g: DiGraph<String, Option<(usize, &'static str, usize)>> = DiGraph::new();
    let mut idx = HashMap::new();
    let mut node = |g: &mut DiGraph<_, _>, n: &str| {
        *idx.entry(n.to_owned())
            .or_insert_with(|| g.add_node(n.to_owned()))
    };
    for k in &bi.steps {
        node(&mut g, k);
    }
    for (a, b) in &bi.edges {
        let (x, y) = (node(&mut g, a), node(&mut g, b));
        g.add_edge(x, y, None);
    }
    for (i, st) in steps.iter().enumerate() {
        let Some(st) = st else { continue };
        let me = node(&mut g, &st.name);
        for (j, a) in st.after.iter().enumerate() {
            let x = node(&mut g, a);
            g.add_edge(x, me, Some((i, "after", j)));
        }
        for (j, b) in st.before.iter().enumerate() {
            let y = node(&mut g, b);
            g.add_edge(me, y, Some((i, "before", j)));
        }
    }
    for scc in petgraph::algo::tarjan_scc(&g) {
        if scc.len() < 2 {
            continue;
        }
        // Walk a cycle inside the component, starting from its smallest name.
        let members: BTreeSet<_> = scc.iter().copied().collect();
        let Some(start) = scc.iter().copied().min_by_key(|n| g[*n].clone()) else {
            continue;
        };
        let mut path = vec![start];
        let mut seen = BTreeSet::from([start]);
        let mut cur = start;
        let mut blame = None;
        loop {
            let mut nexts: Vec<_> = g
                .edges_directed(cur, petgraph::Outgoing)
                .filter(|e| members.contains(&petgraph::visit::EdgeRef::target(e)))
                .map(|e| (petgraph::visit::EdgeRef::target(&e), *e.weight()))
                .collect();
            nexts.sort_by_key(|(n, _)| (*n != start, g[*n].clone()));
            let Some((next, w)) = nexts
                .into_iter()
                .find(|(n, _)| *n == start || !seen.contains(n))
            else {
                break;
            };
            if w.is_some() {
                blame = w;
            }
            path.push(next);
            if next == start {
                break;
            }
            seen.insert(next);
            cur = next;
        }
        let text = path
            .iter()
            .map(|n| g[*n].as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        let span = match blame {
            Some((i, f, j)) => doc.value(&[K("step"), I(i), K(f), I(j)]),
            None => doc.key(&[K("step")]),
        };
        let first = blame
            .and_then(|(i, _, _)| steps.get(i).and_then(|s| s.as_ref()))
            .map(|s| s.name.clone())
            .unwrap_or_else(|| g[start].clone());
        sink.error(
            span,
            format!("step `{first}` has a circular dependency: `{text}`"),
            "this dependency closes the cycle",
            Some("remove one of the `after`/`before` entries on the cycle".into()),
        );
    }
}
