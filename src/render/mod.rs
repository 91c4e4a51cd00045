//! Views of a planned run: human (terraform-like), JSON, Markdown (PR comment) and DOT.
//!
//! Every view is a pure function of one [`PlannedRun`], so the views cannot drift apart.

use crate::graph::run::{Action, PlannedRun, PlannedTask};
use std::fmt::Write as _;

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

/// The summary line, e.g. `Plan: 14 to run, 2 already satisfied, 1 disruptive, 0 to delete.`
pub fn summary_line(run: &PlannedRun) -> String {
    let s = &run.summary;
    format!(
        "Plan: {} to run, {} already satisfied, {} disruptive, {} to delete.",
        s.to_run, s.satisfied, s.disruptive, s.to_delete
    )
}

/// Short `key=value` text of a task's scalar parameters.
fn details(t: &PlannedTask) -> String {
    let mut out = Vec::new();
    if let Some(obj) = t.params.as_object() {
        for (k, v) in obj {
            // The backup name is in the header; repeating it on every line is noise.
            if k == "backup" {
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) if !s.is_empty() => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(true) => "true".into(),
                serde_json::Value::Array(a) if !a.is_empty() => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => continue,
            };
            if k == "command" {
                out.push(format!("run: {text}"));
            } else {
                out.push(format!("{k}={text}"));
            }
        }
    }
    if let Some(l) = t.step_limit {
        out.push(format!("(at most {l} at a time)"));
    }
    if let Some(r) = &t.reason {
        out.push(format!("# {r}"));
    }
    out.join(" ")
}

/// Options of the human view.
#[derive(Debug, Clone, Copy, Default)]
pub struct HumanOptions {
    /// ANSI colours (callers decide: terminal and no `NO_COLOR`).
    pub color: bool,
    /// Group tasks under one heading per host instead of execution order.
    pub by_host: bool,
}

/// Whether colour should be used on a stream: a terminal and `NO_COLOR` unset or empty.
pub fn want_color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Terraform-like text.
pub fn human(run: &PlannedRun, opts: HumanOptions) -> String {
    let mut o = String::new();
    let (bold, reset) = if opts.color {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    for w in &run.warnings {
        let _ = writeln!(o, "{bold}Warning:{reset} {w}\n");
    }
    let _ = writeln!(
        o,
        "cbk will perform the following tasks (plan of {} sha256:{}, now {}):",
        run.source.path,
        run.source.sha256.get(..12).unwrap_or(&run.source.sha256),
        run.inputs.now
    );
    if let Some(d) = &run.plan.description {
        let _ = writeln!(o, "  {}", d.trim());
    }
    if let Some(b) = &run.inputs.backup_name {
        let _ = writeln!(o, "  backup: {b}");
    }
    o.push('\n');
    let width = run
        .tasks
        .iter()
        .map(|t| t.address.len())
        .max()
        .unwrap_or(0)
        .min(48);
    let line = |o: &mut String, t: &PlannedTask| {
        let sym = symbol(t);
        let (c, r) = if opts.color {
            (color_of(sym), reset)
        } else {
            ("", "")
        };
        let d = details(t);
        let text = format!("  {c}{sym:>2}{r} {:<width$}  {d}", t.address);
        let _ = writeln!(o, "{}", text.trim_end());
    };
    if opts.by_host {
        let mut hosts: Vec<Option<&str>> = Vec::new();
        for t in &run.tasks {
            if !hosts.contains(&t.host.as_deref()) {
                hosts.push(t.host.as_deref());
            }
        }
        for h in hosts {
            let _ = writeln!(o, "  {bold}# {}{reset}", h.unwrap_or("controller"));
            for t in run.tasks.iter().filter(|t| t.host.as_deref() == h) {
                line(&mut o, t);
            }
            o.push('\n');
        }
    } else {
        for t in &run.tasks {
            line(&mut o, t);
        }
        o.push('\n');
    }
    let _ = writeln!(o, "{bold}{}{reset}", summary_line(run));
    o
}

/// The plan JSON (`format_version` 1; schemas/plan-output.schema.json).
pub fn json(run: &PlannedRun) -> String {
    let mut s =
        serde_json::to_string_pretty(run).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'")
}

/// Appends `lines` while they fit in `budget` bytes; returns how many were left out.
fn push_lines(out: &mut String, lines: impl Iterator<Item = String>, budget: usize) -> usize {
    let mut left = 0;
    for l in lines {
        if left == 0 && out.len() + l.len() + 1 <= budget {
            out.push_str(&l);
            out.push('\n');
        } else {
            left += 1;
        }
    }
    left
}

/// Markdown for a pull-request comment: summary and disruptive tasks above a `<details>` fold
/// with every task; always under [`MARKDOWN_LIMIT`] characters (truncated with a note).
pub fn markdown(run: &PlannedRun) -> String {
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
            .map(|b| format!(" · backup `{}`", md_escape(b)))
            .unwrap_or_default()
    );
    for w in &run.warnings {
        let _ = writeln!(o, "> **Warning:** {}\n", md_escape(w));
    }
    let disruptive: Vec<&PlannedTask> = run.tasks.iter().filter(|t| symbol(t) == "!").collect();
    if !disruptive.is_empty() {
        let _ = writeln!(o, "#### Disruptive tasks ({})\n", disruptive.len());
        let left = push_lines(
            &mut o,
            disruptive
                .iter()
                .map(|t| format!("- `! {}` {}", t.address, md_escape(&details(t)))),
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
            deletes.iter().map(|t| format!("- `- {}`", t.address)),
            budget * 2 / 3,
        );
        if left > 0 {
            let _ = writeln!(o, "- … and {left} more deletions (see the JSON plan)");
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "<details><summary>All {} tasks</summary>\n\n| | Task | Runs after |\n|---|---|---|",
        run.tasks.len()
    );
    let left = push_lines(
        &mut o,
        run.tasks.iter().map(|t| {
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
        }),
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

fn dot_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Graphviz DOT: one cluster per host, controller tasks outside, disruptive tasks in red.
pub fn dot(run: &PlannedRun) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "digraph cbk {{");
    let _ = writeln!(o, "  rankdir=LR;");
    let _ = writeln!(
        o,
        "  label={};",
        dot_id(&format!("{} ({})", run.source.path, summary_line(run)))
    );
    let _ = writeln!(
        o,
        "  node [shape=box, fontname=\"monospace\", fontsize=10];"
    );
    let node = |o: &mut String, t: &PlannedTask, indent: &str| {
        let mut attrs = vec![format!(
            "label={}",
            dot_id(&format!("{} {}", symbol(t), t.address))
        )];
        if t.disruptive {
            attrs.push("color=red, penwidth=2, fontcolor=red".into());
        }
        match t.action {
            Action::Read => attrs.push("style=dashed".into()),
            Action::Satisfied => attrs.push("style=dotted, fontcolor=gray".into()),
            Action::Delete => attrs.push("style=filled, fillcolor=lightyellow".into()),
            Action::Run => {}
        }
        if t.host.is_none() {
            attrs.push("shape=ellipse".into());
        }
        let _ = writeln!(o, "{indent}{} [{}];", dot_id(&t.address), attrs.join(", "));
    };
    let mut hosts: Vec<&str> = Vec::new();
    for t in &run.tasks {
        match t.host.as_deref() {
            Some(h) if !hosts.contains(&h) => hosts.push(h),
            Some(_) => {}
            None => node(&mut o, t, "  "),
        }
    }
    for h in hosts {
        let _ = writeln!(o, "  subgraph {} {{", dot_id(&format!("cluster_{h}")));
        let _ = writeln!(o, "    label={};", dot_id(h));
        for t in run.tasks.iter().filter(|t| t.host.as_deref() == Some(h)) {
            node(&mut o, t, "    ");
        }
        let _ = writeln!(o, "  }}");
    }
    for t in &run.tasks {
        for a in &t.after {
            let _ = writeln!(o, "  {} -> {};", dot_id(a), dot_id(&t.address));
        }
    }
    let _ = writeln!(o, "}}");
    o
}
