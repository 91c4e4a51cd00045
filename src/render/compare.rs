//! `cbk plan --compare BASE`: what changed against a base plan (a saved plan, or the TOML of the
//! base branch), Terraform style (`~ retention.keep_daily: 14 → 1`, `+ upload[cass-04/ks.t]`,
//! `- …`), for a terminal, a pull-request comment and scripts.

use super::settings::{self, Setting};
use crate::graph::run::{PlannedRun, PlannedTask};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};

/// Version of the comparison JSON (`cbk plan --compare BASE --format json`,
/// schemas/plan-compare.schema.json).
pub const COMPARE_FORMAT_VERSION: u32 = 1;

/// How one setting or task differs from the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// `+` only in the plan.
    Added,
    /// `-` only in the base.
    Removed,
    /// `~` in both, with other values.
    Changed,
}

impl Change {
    /// The symbol of the diff line.
    pub fn symbol(self) -> &'static str {
        match self {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Changed => "~",
        }
    }
}

/// A setting that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SettingChange {
    pub key: String,
    pub change: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

/// One field of a task present in both plans that differs (`params.table`, `after`, `host`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

/// A task that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TaskChange {
    pub address: String,
    pub change: Change,
    /// What differs in a `changed` task (absent for added and removed tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// Which plan a side of the comparison is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Side {
    pub path: String,
    pub sha256: String,
    pub now: String,
}

impl Side {
    fn of(run: &PlannedRun) -> Side {
        Side {
            path: run.source.path.clone(),
            sha256: run.source.sha256.clone(),
            now: run.inputs.now.clone(),
        }
    }
}

/// The whole comparison (also the JSON document of `--compare --format json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Comparison {
    pub format_version: u32,
    /// The base; `None` when there is none (an empty BASE file: a new plan).
    pub base: Option<Side>,
    /// The label the base is called by in the views (its path, or `no base`).
    #[serde(skip)]
    pub base_label: String,
    pub plan: Side,
    pub settings: Vec<SettingChange>,
    pub tasks: Vec<TaskChange>,
}

/// Text of a parameter value as the views show it.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Replaces a run's own backup name and `now` by placeholders, so tasks that differ only by
/// them (every task of a base planned on another day) are not reported: the names differ once,
/// in `backup.name`.
struct Normalizer<'a> {
    subs: Vec<(&'a str, &'static str)>,
}

impl<'a> Normalizer<'a> {
    fn new(run: &'a PlannedRun, other: &PlannedRun) -> Self {
        let mut subs = Vec::new();
        if let Some(b) = run.inputs.backup_name.as_deref()
            && !b.is_empty()
            && other.inputs.backup_name.as_deref() != Some(b)
        {
            subs.push((b, "{backup}"));
        }
        if run.inputs.now != other.inputs.now && !run.inputs.now.is_empty() {
            subs.push((run.inputs.now.as_str(), "{now}"));
        }
        Normalizer { subs }
    }

    fn apply(&self, s: String) -> String {
        self.subs
            .iter()
            .fold(s, |acc, (from, to)| acc.replace(from, to))
    }
}

/// The fields of a task compared between the plans, as `(field, text)`.
fn fields(t: &PlannedTask) -> Vec<(String, String)> {
    let mut f = vec![
        ("host".to_owned(), t.host.clone().unwrap_or_default()),
        (
            "action".to_owned(),
            serde_json::to_value(t.action)
                .map(|v| text(&v))
                .unwrap_or_default(),
        ),
        ("disruptive".to_owned(), t.disruptive.to_string()),
        (
            "step_limit".to_owned(),
            t.step_limit.map(|l| l.to_string()).unwrap_or_default(),
        ),
        ("always".to_owned(), t.always.to_string()),
        (
            "after".to_owned(),
            t.after
                .iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    let params = t.spec.params_json();
    for (k, v) in params.as_object().into_iter().flatten() {
        f.push((format!("params.{k}"), text(v)));
    }
    f
}

fn task_changes(base: &PlannedRun, new: &PlannedRun) -> Vec<TaskChange> {
    let nb = Normalizer::new(base, new);
    let nn = Normalizer::new(new, base);
    let old: HashMap<&str, &PlannedTask> =
        base.tasks.iter().map(|t| (t.address.as_str(), t)).collect();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in &new.tasks {
        seen.insert(t.address.as_str());
        let Some(b) = old.get(t.address.as_str()) else {
            out.push(TaskChange {
                address: t.address.clone(),
                change: Change::Added,
                fields: Vec::new(),
            });
            continue;
        };
        let before: HashMap<String, String> = fields(b).into_iter().collect();
        let mut changed = Vec::new();
        let mut keys = BTreeSet::new();
        for (k, v) in fields(t) {
            let o = before.get(&k).cloned().unwrap_or_default();
            keys.insert(k.clone());
            if nb.apply(o.clone()) != nn.apply(v.clone()) {
                changed.push(FieldChange {
                    field: k,
                    old: o,
                    new: v,
                });
            }
        }
        for (k, o) in fields(b) {
            if !keys.contains(&k) && !o.is_empty() {
                changed.push(FieldChange {
                    field: k,
                    old: o,
                    new: String::new(),
                });
            }
        }
        if !changed.is_empty() {
            out.push(TaskChange {
                address: t.address.clone(),
                change: Change::Changed,
                fields: changed,
            });
        }
    }
    for t in &base.tasks {
        if !seen.contains(t.address.as_str()) {
            out.push(TaskChange {
                address: t.address.clone(),
                change: Change::Removed,
                fields: Vec::new(),
            });
        }
    }
    out
}

fn setting_changes(base: &[Setting], new: &[Setting]) -> Vec<SettingChange> {
    let old: HashMap<&str, &str> = base
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();
    let now: HashMap<&str, &str> = new
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();
    let mut keys: Vec<&str> = old.keys().chain(now.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let (o, n) = (old.get(k), now.get(k));
        // A template only one side recorded (a plan saved before cbk recorded templates, or a
        // value written without one) is told by its rendered value.
        if k.starts_with("templates.") && (o.is_none() || n.is_none()) {
            continue;
        }
        let change = match (o, n) {
            (Some(o), Some(n)) if o == n => continue,
            (Some(_), Some(_)) => Change::Changed,
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (None, None) => continue,
        };
        out.push(SettingChange {
            key: k.to_owned(),
            change,
            old: o.map(|s| (*s).to_owned()),
            new: n.map(|s| (*s).to_owned()),
        });
    }
    out
}

/// Compares `new` with `base` (`None`: no base, everything is added).
pub fn compare(base: Option<&PlannedRun>, new: &PlannedRun) -> Comparison {
    let empty = PlannedRun {
        tasks: Vec::new(),
        ..new.clone()
    };
    let (b, base_settings) = match base {
        Some(b) => (b, settings::all(b)),
        None => (&empty, Vec::new()),
    };
    Comparison {
        format_version: COMPARE_FORMAT_VERSION,
        base: base.map(Side::of),
        base_label: base.map_or_else(|| "no base".to_owned(), |b| b.source.path.clone()),
        plan: Side::of(new),
        settings: setting_changes(&base_settings, &settings::all(new)),
        tasks: task_changes(b, new),
    }
}

impl SettingChange {
    /// `~ key: old → new`, `+ key: new`, `- key: old`.
    pub fn line(&self) -> String {
        let s = self.change.symbol();
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => format!("{s} {}: {o} → {n}", self.key),
            (Some(v), None) | (None, Some(v)) => format!("{s} {}: {v}", self.key),
            (None, None) => format!("{s} {}", self.key),
        }
    }
}

impl TaskChange {
    /// `+ address`, `- address`, `~ address  field: old → new; …`.
    pub fn line(&self) -> String {
        let s = self.change.symbol();
        if self.fields.is_empty() {
            return format!("{s} {}", self.address);
        }
        let f: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                let show = |v: &str| {
                    if v.is_empty() {
                        "(none)".to_owned()
                    } else {
                        v.to_owned()
                    }
                };
                format!("{}: {} → {}", f.field, show(&f.old), show(&f.new))
            })
            .collect();
        format!("{s} {}  {}", self.address, f.join("; "))
    }
}

impl Comparison {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty() && self.tasks.is_empty()
    }

    /// `Compared with BASE: 1 setting changed, …; 3 tasks added, …` (or no changes).
    pub fn summary_line(&self) -> String {
        if self.is_empty() {
            return format!(
                "No changes against {}: the same settings and tasks.",
                self.base_label
            );
        }
        let count = |v: &mut dyn Iterator<Item = Change>, c: Change| v.filter(|x| *x == c).count();
        let s = |c| count(&mut self.settings.iter().map(|x| x.change), c);
        let t = |c| count(&mut self.tasks.iter().map(|x| x.change), c);
        format!(
            "Compared with {}: settings {} changed, {} added, {} removed; tasks {} added, {} removed, {} changed.",
            self.base_label,
            s(Change::Changed),
            s(Change::Added),
            s(Change::Removed),
            t(Change::Added),
            t(Change::Removed),
            t(Change::Changed),
        )
    }
}

fn color_of(c: Change) -> &'static str {
    match c {
        Change::Added => "\x1b[32m",
        Change::Removed => "\x1b[31m",
        Change::Changed => "\x1b[33m",
    }
}

/// Writes the comparison for a terminal (after the plan's own view).
pub fn write_human<W: fmt::Write>(c: &Comparison, color: bool, o: &mut W) -> fmt::Result {
    let (bold, reset) = if color {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("", "")
    };
    match &c.base {
        Some(b) => writeln!(
            o,
            "\nChanges against {} (sha256:{}, now {}):",
            b.path,
            b.sha256.get(..12).unwrap_or(&b.sha256),
            b.now
        )?,
        None => writeln!(
            o,
            "\nChanges against no base (every setting and task is new):"
        )?,
    }
    let section = |o: &mut W, title: &str, lines: Vec<(Change, String)>| -> fmt::Result {
        if lines.is_empty() {
            return Ok(());
        }
        writeln!(o, "  {title}:")?;
        for (ch, l) in lines {
            let (a, z) = if color {
                (color_of(ch), reset)
            } else {
                ("", "")
            };
            writeln!(o, "    {a}{l}{z}")?;
        }
        Ok(())
    };
    section(
        o,
        "Settings",
        c.settings.iter().map(|s| (s.change, s.line())).collect(),
    )?;
    section(
        o,
        "Tasks",
        c.tasks.iter().map(|t| (t.change, t.line())).collect(),
    )?;
    writeln!(o, "\n{bold}{}{reset}", c.summary_line())
}

/// Appends the Markdown section of the comparison to `o` (a ```diff block GitHub colours),
/// within `budget` bytes of `o` in total.
pub fn write_markdown(c: &Comparison, o: &mut String, budget: usize) {
    let esc = super::md_escape;
    let _ = writeln!(o, "#### Changes against `{}`\n", esc(&c.base_label));
    if let Some(b) = &c.base {
        let _ = writeln!(o, "base sha256 `{}` · now `{}`\n", b.sha256, esc(&b.now));
    }
    if c.is_empty() {
        let _ = writeln!(o, "{}\n", c.summary_line());
        return;
    }
    o.push_str("```diff\n");
    let lines: Vec<String> = c
        .settings
        .iter()
        .map(SettingChange::line)
        .chain(c.tasks.iter().map(TaskChange::line))
        // A fence inside a value would close the block.
        .map(|l| l.replace("```", "'''"))
        .collect();
    let left = super::push_lines(o, &lines, String::clone, budget);
    if left > 0 {
        let _ = writeln!(
            o,
            "… and {left} more changes (run cbk plan --compare locally)"
        );
    }
    let _ = writeln!(o, "```\n\n**{}**\n", c.summary_line());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, now: &str) -> PlannedRun {
        crate::graph::compile_source("t.toml", src, now.parse().unwrap()).unwrap()
    }

    fn plan(hosts: &str, bucket: &str, keep: u32) -> String {
        format!(
            r#"version = 1
kind = "backup"
[cluster]
name = "c"
hosts = [{hosts}]
[storage]
url = "s3://{bucket}/p"
region = "eu-west-1"
[backup]
name = '{{{{ cluster }}}}-{{{{ now | strftime("%Y%m%dT%H%M") }}}}'
include = ["shop.*"]
[retention]
keep_daily = {keep}
"#
        )
    }

    const NOW: &str = "2026-11-25T03:00:00Z";

    #[test]
    fn settings_and_tasks_diff_terraform_style() {
        let base = run(&plan(r#""a", "b""#, "one", 14), NOW);
        let new = run(&plan(r#""a", "c""#, "two", 1), NOW);
        let c = compare(Some(&base), &new);
        let lines: Vec<String> = c.settings.iter().map(SettingChange::line).collect();
        assert!(
            lines.contains(&"~ retention.keep_daily: 14 → 1".to_owned()),
            "{lines:?}"
        );
        assert!(lines.contains(&"~ storage.url: s3://one/p → s3://two/p".to_owned()));
        assert!(lines.contains(&"~ cluster.hosts: a, b → a, c".to_owned()));
        let tasks: Vec<String> = c.tasks.iter().map(TaskChange::line).collect();
        assert!(
            tasks.contains(&"+ upload[c/shop.*]".to_owned()),
            "{tasks:?}"
        );
        assert!(tasks.contains(&"- upload[b/shop.*]".to_owned()));
        // Unchanged tasks are not listed, and the same plan has no changes.
        assert!(!tasks.iter().any(|t| t.contains("upload[a/")));
        assert!(compare(Some(&base), &base).is_empty());
    }

    #[test]
    fn a_base_planned_at_another_time_differs_only_in_the_backup_name() {
        let p = plan(r#""a""#, "one", 14);
        let c = compare(Some(&run(&p, NOW)), &run(&p, "2026-11-26T03:00:00Z"));
        assert!(c.tasks.is_empty(), "{:?}", c.tasks);
        let keys: Vec<&str> = c.settings.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["backup.name"]);
    }

    #[test]
    fn no_base_adds_everything_and_markdown_fits_the_budget() {
        let new = run(&plan(r#""a""#, "one", 14), NOW);
        let c = compare(None, &new);
        assert!(c.settings.iter().all(|s| s.change == Change::Added));
        assert_eq!(c.tasks.len(), new.tasks.len());
        let mut md = String::new();
        write_markdown(&c, &mut md, 300);
        assert!(md.contains("more changes"), "{md}");
        assert!(md.len() < 1000);
    }
}
