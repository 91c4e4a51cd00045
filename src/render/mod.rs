//! Views of a planned run: human (terraform-like), JSON, Markdown (PR comment) and DOT.
//!
//! Every view is a pure function of one [`PlannedRun`], so the views cannot drift apart.

pub mod compare;
pub mod settings;

use crate::graph::run::{Action, PlannedRun, PlannedTask, TaskKind};
use std::fmt::{self, Write as _};

/// GitHub's limit for a comment body.
pub const MARKDOWN_LIMIT: usize = 65_535;

/// The action symbol: `!` for disruptive tasks, else `+`, `=`, `<=`, `-`.
pub fn symbol(t: &PlannedTask) -> &'static str {
    if t.disruptive && t.action != Action::Satisfied {
        return "!";
    }
    match t.action {
        Action::Run => "+",
        Action::Satisfied => "=",
        Action::Read => "<=",
        Action::Delete => "-",
    }
}

fn color_of(sym: &str) -> &'static str {
    match sym {
        "!" => "\x1b[1;31m",
        "+" => "\x1b[32m",
        "=" => "\x1b[2m",
        "<=" => "\x1b[36m",
        "-" => "\x1b[33m",
        _ => "",
    }
}

/// The summary line, e.g. `Plan: 14 to run (3 local clean-ups), 2 already satisfied,
/// 1 disruptive, 0 to delete.`
pub fn summary_line(run: &PlannedRun) -> String {
    let s = &run.summary;
    let cleanup = match s.cleanup {
        0 => String::new(),
        1 => " (1 local clean-up)".to_owned(),
        n => format!(" ({n} local clean-ups)"),
    };
    format!(
        "Plan: {} to run{cleanup}, {} already satisfied, {} disruptive, {} to delete.",
        s.to_run, s.satisfied, s.disruptive, s.to_delete
    )
}

/// What a local clean-up task removes (shown instead of a deletion), or `None`.
fn cleanup_note(t: &PlannedTask) -> Option<&'static str> {
    match t.kind() {
        TaskKind::ClearSnapshot => Some("(local snapshot clean-up)"),
        TaskKind::Cleanup => Some("(local staging clean-up)"),
        _ => None,
    }
}

/// Short `key=value` text of a task's scalar parameters.
fn details(t: &PlannedTask) -> String {
    let mut out = Vec::new();
    let params = t.spec.params_json();
    for (k, v) in params.as_object().into_iter().flatten() {
        // The backup name is in the header; repeating it on every line is noise.
        if k == "backup" {
            continue;
        }
        let text = match v {
            serde_json::Value::String(s) if !s.is_empty() => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(true) => "true".into(),
            // A `loader` target no backup host maps to: it only receives.
            serde_json::Value::Array(a) if a.is_empty() && k == "source_hosts" => "none".into(),
            serde_json::Value::Array(a) if !a.is_empty() => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
            _ => continue,
        };
        if k == "run" {
            out.push(format!("run: {text}"));
        } else {
            out.push(format!("{k}={text}"));
        }
    }
    if let Some(l) = t.step_limit {
        out.push(format!("(at most {l} at a time)"));
    }
    if let Some(n) = cleanup_note(t) {
        out.push(n.to_owned());
    }
    if let Some(r) = &t.reason {
        out.push(format!("# {r}"));
    }
    out.join(" ")
}

/// Tasks grouped by host (`None` = controller), hosts in order of first appearance, tasks in
/// plan order. One pass, so large plans stay linear.
fn group_by_host(run: &PlannedRun) -> Vec<(Option<&str>, Vec<&PlannedTask>)> {
    let mut index: std::collections::HashMap<Option<&str>, usize> = Default::default();
    let mut groups: Vec<(Option<&str>, Vec<&PlannedTask>)> = Vec::new();
    for t in &run.tasks {
        let h = t.host.as_deref();
        let i = *index.entry(h).or_insert_with(|| {
            groups.push((h, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(t);
    }
    groups
}

/// Options of the human view.
#[derive(Debug, Clone, Copy, Default)]
pub struct HumanOptions {
    /// ANSI colours (callers decide: terminal and no `NO_COLOR`).
    pub color: bool,
    /// Group tasks under one heading per host instead of execution order.
    pub by_host: bool,
}

/// Adapts an `io::Write` for the `fmt::Write` renderers (keeps the first I/O error).
pub struct IoFmt<W: std::io::Write> {
    pub inner: W,
    pub error: Option<std::io::Error>,
}

impl<W: std::io::Write> fmt::Write for IoFmt<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.inner.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            fmt::Error
        })
    }
}

/// Whether colour should be used on a stream: a terminal and `NO_COLOR` unset or empty.
pub fn want_color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// For a restore whose source is `latest` or `latest-before:`: which backup that will be, said
/// as what it is (resolved by `resolve` at apply, never at plan time).
fn resolved_at_apply(run: &PlannedRun) -> String {
    let Some(r) = &run.plan.restore else {
        return String::new();
    };
    let cluster = r
        .source_cluster
        .as_deref()
        .unwrap_or(&run.plan.cluster.name);
    if r.source == "latest" {
        format!(" (resolved at apply: the newest complete snapshot backup of cluster {cluster})")
    } else if let Some(t) = r.source.strip_prefix("latest-before:") {
        format!(
            " (resolved at apply: the newest complete snapshot backup of cluster {cluster} created at or before {})",
            t.trim()
        )
    } else {
        String::new()
    }
}

/// Terraform-like text.
pub fn human(run: &PlannedRun, opts: HumanOptions) -> String {
    let mut o = String::new();
    let _ = write_human(run, opts, &mut o);
    o
}

/// Writes the human view to `o` (streams: large plans need not fit in one string).
pub fn write_human<W: fmt::Write>(run: &PlannedRun, opts: HumanOptions, o: &mut W) -> fmt::Result {
    let (bold, reset) = if opts.color {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    for w in &run.warnings {
        writeln!(o, "{bold}Warning:{reset} {w}\n")?;
    }
    writeln!(
        o,
        "cbk will perform the following tasks (plan of {} sha256:{}, now {}):",
        run.source.path,
        run.source.sha256.get(..12).unwrap_or(&run.source.sha256),
        run.inputs.now
    )?;
    if let Some(d) = &run.plan.description {
        writeln!(o, "  {}", d.trim())?;
    }
    if let Some(b) = &run.inputs.backup_name {
        writeln!(o, "  backup: {b}{}", resolved_at_apply(run))?;
    }
    o.write_char('\n')?;
    let shown = settings::reviewed(run);
    if !shown.is_empty() {
        writeln!(o, "  {bold}Settings:{reset}")?;
        let w = shown.iter().map(|s| s.key.len()).max().unwrap_or(0).min(32);
        for s in &shown {
            writeln!(o, "    {:<w$}  {}", s.key, s.value)?;
        }
        o.write_char('\n')?;
    }
    let width = run
        .tasks
        .iter()
        .map(|t| t.address.len())
        .max()
        .unwrap_or(0)
        .min(48);
    let line = |o: &mut W, t: &PlannedTask| -> fmt::Result {
        let sym = symbol(t);
        let (c, r) = if opts.color {
            (color_of(sym), reset)
        } else {
            ("", "")
        };
        let d = details(t);
        if d.is_empty() {
            writeln!(o, "  {c}{sym:>2}{r} {}", t.address)
        } else {
            writeln!(o, "  {c}{sym:>2}{r} {:<width$}  {d}", t.address)
        }
    };
    if opts.by_host {
        for (h, tasks) in group_by_host(run) {
            writeln!(o, "  {bold}# {}{reset}", h.unwrap_or("controller"))?;
            for t in tasks {
                line(o, t)?;
            }
            o.write_char('\n')?;
        }
    } else {
        for t in &run.tasks {
            line(o, t)?;
        }
        o.write_char('\n')?;
    }
    writeln!(o, "{bold}{}{reset}", summary_line(run))
}

/// The plan JSON (`format_version` 1; schemas/plan-output.schema.json).
pub fn json(run: &PlannedRun) -> String {
    let mut buf = Vec::new();
    // Serializing plain data into memory cannot fail.
    let _ = write_json(run, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Writes the plan JSON (pretty, with a final newline) to `w`.
pub fn write_json<W: std::io::Write>(run: &PlannedRun, mut w: W) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut w, run)?;
    w.write_all(b"\n")
}

pub(crate) fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'")
}

/// Appends `lines` while they fit in `budget` bytes; returns how many were left out.
/// Lines past the budget are not formatted at all.
fn push_lines<T>(
    out: &mut String,
    items: &[T],
    line: impl Fn(&T) -> String,
    budget: usize,
) -> usize {
    for (i, item) in items.iter().enumerate() {
        let l = line(item);
        if out.len() + l.len() >= budget {
            return items.len() - i;
        }
        out.push_str(&l);
        out.push('\n');
    }
    0
}

/// Markdown for a pull-request comment: summary, settings and disruptive tasks above a
/// `<details>` fold with every task; always under [`MARKDOWN_LIMIT`] characters (truncated with
/// a note).
pub fn markdown(run: &PlannedRun) -> String {
    markdown_with(run, None)
}

/// [`markdown`] with the changes against a base plan (`cbk plan --compare`) above the settings.
pub fn markdown_with(run: &PlannedRun, compare: Option<&compare::Comparison>) -> String {
    // Room kept for the closing of the fold and truncation notes.
    const RESERVE: usize = 600;
    let budget = MARKDOWN_LIMIT - RESERVE;
    let mut o = String::new();
    let _ = writeln!(o, "### cbk plan: `{}`\n", md_escape(&run.source.path));
    if let Some(d) = &run.plan.description {
        let _ = writeln!(o, "{}\n", md_escape(d.trim()));
    }
    let _ = writeln!(o, "**{}**\n", summary_line(run));
    let _ = writeln!(
        o,
        "source sha256 `{}` · now `{}` · cbk {}{}\n",
        run.source.sha256,
        run.inputs.now,
        run.cbk_version,
        run.inputs
            .backup_name
            .as_ref()
            .map(|b| format!(
                " · backup `{}`{}",
                md_escape(b),
                md_escape(&resolved_at_apply(run))
            ))
            .unwrap_or_default()
    );
    for w in &run.warnings {
        let _ = writeln!(o, "> **Warning:** {}\n", md_escape(w));
    }
    if let Some(c) = compare {
        compare::write_markdown(c, &mut o, budget / 3);
    }
    let shown = settings::reviewed(run);
    if !shown.is_empty() {
        o.push_str("#### Settings\n\n| Setting | Value |\n|---|---|\n");
        let left = push_lines(
            &mut o,
            &shown,
            |s| format!("| `{}` | `{}` |", md_escape(&s.key), md_escape(&s.value)),
            budget / 2,
        );
        if left > 0 {
            let _ = writeln!(o, "\n_… and {left} more settings (see the JSON plan)_");
        }
        o.push('\n');
    }
    let disruptive: Vec<&PlannedTask> = run.tasks.iter().filter(|t| symbol(t) == "!").collect();
    if !disruptive.is_empty() {
        let _ = writeln!(o, "#### Disruptive tasks ({})\n", disruptive.len());
        let left = push_lines(
            &mut o,
            &disruptive,
            |t| {
                format!("- `! {}` {}", t.address, md_escape(&details(t)))
                    .trim_end()
                    .to_owned()
            },
            budget / 2,
        );
        if left > 0 {
            let _ = writeln!(
                o,
                "- … and {left} more disruptive tasks (see the JSON plan)"
            );
        }
        o.push('\n');
    }
    let deletes: Vec<&PlannedTask> = run
        .tasks
        .iter()
        .filter(|t| t.action == Action::Delete && !t.disruptive)
        .collect();
    if !deletes.is_empty() {
        let _ = writeln!(o, "#### Deletions ({})\n", deletes.len());
        let left = push_lines(
            &mut o,
            &deletes,
            |t| format!("- `- {}`", t.address),
            budget * 2 / 3,
        );
        if left > 0 {
            let _ = writeln!(o, "- … and {left} more deletions (see the JSON plan)");
        }
        o.push('\n');
    }
    let cleanups: Vec<&str> = run
        .tasks
        .iter()
        .filter(|t| t.kind().local_cleanup() && t.action != Action::Satisfied)
        .map(|t| t.kind().as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !cleanups.is_empty() {
        let _ = writeln!(
            o,
            "Local clean-up ({} tasks: `{}`): the nodes' own snapshot or staging files are removed after use; no backup or live data is deleted.\n",
            run.summary.cleanup,
            cleanups.join("`, `")
        );
    }
    let _ = writeln!(
        o,
        "<details><summary>All {} tasks</summary>\n\n| | Task | Runs after |\n|---|---|---|",
        run.tasks.len()
    );
    let left = push_lines(
        &mut o,
        &run.tasks,
        |t| {
            let after = if t.after.len() > 3 {
                format!("{} tasks", t.after.len())
            } else {
                t.after
                    .iter()
                    .map(|a| format!("`{}`", md_escape(a)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "| `{}` | `{}` | {} |",
                symbol(t),
                md_escape(&t.address),
                after
            )
        },
        budget,
    );
    if left > 0 {
        let _ = writeln!(
            o,
            "\n_Truncated: {left} more tasks not shown (comment limit {MARKDOWN_LIMIT} characters); run `cbk show` on the saved plan for all of them._"
        );
    }
    o.push_str("\n</details>\n");
    o
}

/// A DOT quoted string, escaped as it is written (large plans write millions of ids; no
/// temporary strings).
/// The parts are concatenated.
struct DotId<'a, const N: usize>([&'a str; N]);

impl<const N: usize> fmt::Display for DotId<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        f.write_char('"')?;
        for part in self.0 {
            let mut rest = part;
            while let Some(i) = memchr::memchr3(b'"', b'\\', b'\n', rest.as_bytes()) {
                f.write_str(&rest[..i])?;
                f.write_str(match rest.as_bytes()[i] {
                    b'"' => "\\\"",
                    b'\\' => "\\\\",
                    _ => "\\n",
                })?;
                rest = &rest[i + 1..];
            }
            f.write_str(rest)?;
        }
        f.write_char('"')
    }
}

fn dot_id(s: &str) -> DotId<'_, 1> {
    DotId([s])
}

/// Graphviz DOT: one cluster per host, controller tasks outside, disruptive tasks in red.
pub fn dot(run: &PlannedRun) -> String {
    let mut o = String::new();
    let _ = write_dot(run, &mut o);
    o
}

/// Writes the DOT view to `o`.
pub fn write_dot<W: fmt::Write>(run: &PlannedRun, o: &mut W) -> fmt::Result {
    writeln!(o, "digraph cbk {{")?;
    writeln!(o, "  rankdir=LR;")?;
    writeln!(
        o,
        "  label={};",
        dot_id(&format!(
            "{} ({}){}",
            run.source.path,
            summary_line(run),
            // A `latest` source is said as what it is, never as a backup's name.
            match (run.inputs.backup_name.as_deref(), resolved_at_apply(run)) {
                (Some(b), note) if !note.is_empty() => format!("\nsource {b}{note}"),
                _ => String::new(),
            }
        ))
    )?;
    writeln!(
        o,
        "  node [shape=box, fontname=\"monospace\", fontsize=10];"
    )?;
    let node = |o: &mut W, t: &PlannedTask, indent: &str| -> fmt::Result {
        write!(
            o,
            "{indent}{} [label={}",
            dot_id(&t.address),
            DotId([symbol(t), " ", &t.address])
        )?;
        if t.disruptive {
            o.write_str(", color=red, penwidth=2, fontcolor=red")?;
        }
        o.write_str(match t.action {
            Action::Read => ", style=dashed",
            Action::Satisfied => ", style=dotted, fontcolor=gray",
            Action::Delete => ", style=filled, fillcolor=lightyellow",
            Action::Run => "",
        })?;
        if t.host.is_none() {
            o.write_str(", shape=ellipse")?;
        }
        writeln!(o, "];")
    };
    let groups = group_by_host(run);
    for (_, tasks) in groups.iter().filter(|(h, _)| h.is_none()) {
        for t in tasks {
            node(o, t, "  ")?;
        }
    }
    for (h, tasks) in &groups {
        let Some(h) = h else { continue };
        writeln!(o, "  subgraph {} {{", DotId(["cluster_", h]))?;
        writeln!(o, "    label={};", dot_id(h))?;
        for t in tasks {
            node(o, t, "    ")?;
        }
        writeln!(o, "  }}")?;
    }
    for t in &run.tasks {
        for a in &t.after {
            writeln!(o, "  {} -> {};", dot_id(a), dot_id(&t.address))?;
        }
    }
    writeln!(o, "}}")
}
