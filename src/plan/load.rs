//! The loader: TOML text -> a [`Resolved`] plan, or every problem found, each pointing at
//! file:line:column.
//!
//! Stages: syntax (recoverable parse, all syntax errors), literal secrets (redacted before any
//! diagnostic is rendered), shape (each section deserialized on its own so one bad section does
//! not hide another), then semantics (references, cycles, templates) with spans found by key
//! path in the parsed document.

use super::diag::{Diagnostics, Sink, suggest};
use super::model::*;
use super::template::{Engine, NameProblem, Vars, check_name_formats, valid_backup_name};
use petgraph::graph::DiGraph;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

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

/// A segment of a key path into the document.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    K(&'a str),
    I(usize),
}
use Seg::{I, K};

/// The parsed document, for span lookups by key path.
struct Doc<'i> {
    root: Spanned<DeTable<'i>>,
}

impl<'i> Doc<'i> {
    /// Key span and value span of the deepest existing element on `path`.
    fn find(&self, path: &[Seg]) -> (Option<Range<usize>>, Range<usize>) {
        let mut key: Option<Range<usize>> = None;
        let mut span = self.root.span();
        let mut table: Option<&DeTable<'i>> = Some(self.root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'i>>]> = None;
        for seg in path {
            let next = match (seg, table, array) {
                (K(k), Some(t), _) => t
                    .iter()
                    .find(|(kk, _)| kk.get_ref().as_ref() == *k)
                    .map(|(kk, v)| (Some(kk.span()), v)),
                (I(i), _, Some(a)) => a.get(*i).map(|v| (None, v)),
                _ => None,
            };
            let Some((k, v)) = next else { break };
            if k.is_some() {
                key = k;
            }
            span = v.span();
            table = v.get_ref().as_table();
            array = v.get_ref().as_array().map(|a| &a[..]);
        }
        (key, span)
    }

    fn value(&self, path: &[Seg]) -> Option<Range<usize>> {
        Some(self.find(path).1)
    }

    fn key(&self, path: &[Seg]) -> Option<Range<usize>> {
        let (k, v) = self.find(path);
        Some(k.unwrap_or(v))
    }
}

/// Key names that hold secrets when they carry a literal value.
fn secret_like(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_env") || k.ends_with("_file") {
        return false;
    }
    [
        "secret",
        "password",
        "passwd",
        "token",
        "access_key",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// Finds literal secrets anywhere in the document: (key span, value span, dotted path, key).
fn find_secrets(
    t: &DeTable<'_>,
    prefix: &str,
    out: &mut Vec<(Range<usize>, Range<usize>, String)>,
    masked: &mut Vec<Range<usize>>,
) {
    for (k, v) in t.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        match v.get_ref() {
            DeValue::Table(inner) => find_secrets(inner, &path, out, masked),
            DeValue::Array(a) => {
                for item in a.iter() {
                    match item.get_ref() {
                        DeValue::Table(inner) => find_secrets(inner, &path, out, masked),
                        DeValue::String(s) if is_age_identity(s) => masked.push(item.span()),
                        _ => {}
                    }
                }
            }
            // An age identity (private key) is masked wherever it is (`[encryption]` reports it).
            DeValue::String(s) if is_age_identity(s) => masked.push(v.span()),
            DeValue::String(s) if !s.is_empty() && secret_like(k.get_ref()) => {
                out.push((k.span(), v.span(), path));
            }
            // A `*_env` value that cannot be a variable name may be the secret itself: masked
            // like one (the `*_env` check reports it without the value).
            DeValue::String(s) if k.get_ref().ends_with("_env") && !valid_env_name(s) => {
                masked.push(v.span());
            }
            _ => {}
        }
    }
}

/// Whether a string is an age identity (private key).
fn is_age_identity(s: &str) -> bool {
    s.trim_start().starts_with("AGE-SECRET-KEY-")
}

/// Replaces the bytes of `ranges` with `*` (same length, so every span stays valid).
fn redact(src: &str, ranges: &[Range<usize>]) -> String {
    let mut bytes = src.as_bytes().to_vec();
    for r in ranges {
        for b in bytes.iter_mut().take(r.end).skip(r.start) {
            *b = b'*';
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Backticked words after `expected` in a serde message.
fn expected_words(msg: &str) -> Vec<String> {
    let Some(i) = msg.find("expected") else {
        return Vec::new();
    };
    msg[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// First backticked word of a message.
fn first_quoted(msg: &str) -> Option<&str> {
    msg.split('`').nth(1)
}

/// Reports a serde/toml deserialization error with a friendlier message and a hint.
fn report_de(sink: &mut Sink, e: &toml::de::Error, fallback: Option<Range<usize>>) {
    let msg = e.message().trim_end_matches('\n');
    let span = e.span().or(fallback);
    let expected = expected_words(msg);
    let list = |ws: &[String]| {
        ws.iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let word = first_quoted(rest).unwrap_or_default();
        if expected.iter().any(|w| w == "auth_provider")
            && ["user", "username", "password_file", "password_env"].contains(&word)
        {
            sink.error(
                span,
                format!("sstableloader cannot take `{word}` safely"),
                "credentials are not supported for the loader",
                Some(
                    "sstableloader reads credentials only from its command line (-u/-pw), which \
                     every local user can see, and cbk never puts a secret there; use \
                     `auth_provider` (a class that finds the credentials itself) or the `import` \
                     method"
                        .into(),
                ),
            );
            return;
        }
        let mut help = match suggest(word, expected.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => String::new(),
        };
        if !expected.is_empty() {
            if !help.is_empty() {
                help.push(' ');
            }
            help.push_str(&format!("expected one of {}", list(&expected)));
        }
        let help = (!help.is_empty()).then_some(help);
        sink.error(span, format!("unknown key `{word}`"), "unknown key", help);
    } else if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let word = first_quoted(rest).unwrap_or_default();
        let help = match suggest(word, expected.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`? expected one of {}", list(&expected)),
            None => format!("expected one of {}", list(&expected)),
        };
        sink.error(
            span,
            format!("unknown value `{word}`"),
            "unknown value",
            Some(help),
        );
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        let word = first_quoted(rest).unwrap_or_default();
        sink.error(
            span,
            format!("missing key `{word}`"),
            format!("this table needs `{word}`"),
            Some(format!("add `{word} = ...` (see docs/plan-format.md)")),
        );
    } else if let Some((label, help)) =
        crate::units::UnitError::what_of(msg).and_then(crate::units::UnitError::hint)
    {
        // A size, rate or duration that does not parse (raised in its `Deserialize`).
        sink.error(span, msg.to_owned(), label, Some(help.into()));
    } else if let Some((found, wanted)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        report_type(sink, span, found, wanted, msg);
    } else {
        sink.error(span, msg.to_owned(), "here", None);
    }
}

/// serde's "invalid type: string \"7\", expected u32" in plan words, with the fix as a hint
/// (an operator's `--hosts=a,b,c` habit, or a number in quotes).
fn report_type(sink: &mut Sink, span: Option<Range<usize>>, found: &str, wanted: &str, msg: &str) {
    let key = span
        .clone()
        .and_then(|r| sink.source().get(..r.start))
        .and_then(|before| before.lines().last())
        .and_then(|line| line.split('=').next())
        .map(|k| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace));
    let text = found
        .strip_prefix("string \"")
        .and_then(|s| s.strip_suffix('"'));
    let (what, hint) = match wanted {
        "a sequence" => (
            "a list",
            text.map(|t| {
                let items: Vec<String> =
                    t.split(',').map(|x| format!("\"{}\"", x.trim())).collect();
                format!("write a TOML list: [{}]", items.join(", "))
            }),
        ),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => (
            "a whole number",
            text.filter(|t| t.trim().parse::<i64>().is_ok())
                .map(|t| format!("remove the quotes: {}", t.trim())),
        ),
        "a boolean" => (
            "true or false",
            text.filter(|t| matches!(*t, "true" | "false"))
                .map(|t| format!("remove the quotes: {t}")),
        ),
        _ => {
            sink.error(span, msg.to_owned(), "here", None);
            return;
        }
    };
    let found_word = found.split_whitespace().next().unwrap_or(found);
    let head = match &key {
        Some(k) => format!("`{k}` must be {what}, not a {found_word}"),
        None => format!("expected {what}, not a {found_word}"),
    };
    sink.error(span, head, format!("a {found_word}"), hint);
}

fn section<T: DeserializeOwned>(sink: &mut Sink, v: &Spanned<DeValue<'_>>) -> Option<T> {
    let span = v.span();
    match T::deserialize(ValueDeserializer::from(v.clone())) {
        Ok(t) => Some(t),
        Err(e) => {
            report_de(sink, &e, Some(span));
            None
        }
    }
}

/// The sections that parsed (each `None` if absent or broken).
#[derive(Default)]
struct Parts {
    version: Option<u32>,
    kind: Option<PlanKind>,
    description: Option<String>,
    cluster: Option<ClusterConfig>,
    connection: Option<ConnectionConfig>,
    cassandra: Option<CassandraConfig>,
    storage: Option<StorageConfig>,
    encryption: Option<EncryptionConfig>,
    backup: Option<BackupConfig>,
    restore: Option<RestoreConfig>,
    limits: Option<Limits>,
    retention: Option<Retention>,
    steps: Vec<Option<CustomStep>>,
    /// Sections present in the file (parsed or not).
    present: BTreeSet<String>,
}

/// Loads, checks and resolves a plan. `name` is used in diagnostics; `now` is RFC 3339 UTC.
pub fn load(
    name: &str,
    src: &str,
    now: &str,
    catalog: &dyn StepCatalog,
) -> Result<Resolved, Diagnostics> {
    // Syntax.
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
    let mut doc = Doc { root };
    // Literal secrets, redacted before any diagnostic can show the line.
    let mut secrets = Vec::new();
    let mut masked = Vec::new();
    find_secrets(doc.root.get_ref(), "", &mut secrets, &mut masked);
    masked.extend(secrets.iter().map(|s| s.1.clone()));
    let shown = redact(src, &masked);
    let mut sink = Sink::new(name, &shown);
    for (kspan, _, path) in &secrets {
        let key = path.rsplit('.').next().unwrap_or(path);
        let help = if key == "password" || key.ends_with("_password") {
            format!("name a file with `{key}_file`, or an environment variable with `{key}_env`")
        } else {
            format!(
                "name an environment variable with `{key}_env` (e.g. `{key}_env = \"{}\"`); \
                 its value is read when the plan is applied and is never stored",
                key.to_ascii_uppercase()
            )
        };
        sink.error(
            Some(kspan.clone()),
            format!("literal secrets are not allowed; name an environment variable with {key}_env"),
            format!("`{path}` holds a secret"),
            Some(help),
        );
    }
    strip_secrets(&mut doc, &secrets);
    let parts = shape(&mut sink, &doc);
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

/// Removes keys holding literal secrets so they are reported once (not also as unknown keys).
fn strip_secrets(doc: &mut Doc<'_>, secrets: &[(Range<usize>, Range<usize>, String)]) {
    fn strip(t: &mut DeTable<'_>, spans: &BTreeSet<(usize, usize)>) {
        let doomed: Vec<_> = t
            .keys()
            .filter(|k| spans.contains(&(k.span().start, k.span().end)))
            .cloned()
            .collect();
        for k in doomed {
            t.remove(&k);
        }
        for (_, v) in t.iter_mut() {
            match v.get_mut() {
                DeValue::Table(inner) => strip(inner, spans),
                DeValue::Array(a) => {
                    for item in a.iter_mut() {
                        if let DeValue::Table(inner) = item.get_mut() {
                            strip(inner, spans);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if secrets.is_empty() {
        return;
    }
    let spans: BTreeSet<(usize, usize)> = secrets.iter().map(|s| (s.0.start, s.0.end)).collect();
    strip(doc.root.get_mut(), &spans);
}

fn shape(sink: &mut Sink, doc: &Doc<'_>) -> Parts {
    let mut p = Parts::default();
    for (k, v) in doc.root.get_ref().iter() {
        let key: &str = k.get_ref();
        p.present.insert(key.to_owned());
        match key {
            "version" => p.version = section(sink, v),
            "kind" => p.kind = section(sink, v),
            "description" => p.description = section(sink, v),
            "cluster" => p.cluster = section(sink, v),
            "connection" => p.connection = section(sink, v),
            "cassandra" => p.cassandra = section(sink, v),
            "storage" => p.storage = section(sink, v),
            "encryption" => p.encryption = section(sink, v),
            "backup" => p.backup = section(sink, v),
            "restore" => p.restore = section(sink, v),
            "limits" => p.limits = section(sink, v),
            "retention" => p.retention = section(sink, v),
            "step" => match v.get_ref().as_array() {
                Some(a) => p.steps = a.iter().map(|s| section(sink, s)).collect(),
                None => {
                    sink.error(
                        Some(v.span()),
                        "`step` must be an array of tables",
                        "not an array of tables",
                        Some("write each step as a `[[step]]` table".into()),
                    );
                }
            },
            other => {
                let help = match suggest(other, TOP_KEYS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "expected one of {}",
                        TOP_KEYS
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                sink.error(
                    Some(k.span()),
                    format!("unknown key `{other}`"),
                    "unknown key",
                    Some(help),
                );
            }
        }
    }
    p
}

fn valid_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

fn valid_step_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Offset of template text inside a TOML string value (1:1 only for simple one-line strings).
fn template_span(src: &str, value: Range<usize>, inner: Option<Range<usize>>) -> Range<usize> {
    let raw = src.get(value.clone()).unwrap_or_default();
    let simple = (raw.starts_with('\'') && !raw.starts_with("'''"))
        || (raw.starts_with('"') && !raw.starts_with("\"\"\"") && !raw.contains('\\'));
    match inner {
        Some(r) if simple && value.start + 1 + r.end < value.end => {
            value.start + 1 + r.start..value.start + 1 + r.end
        }
        _ => value,
    }
}

struct Ctx<'a, 'i> {
    doc: &'a Doc<'i>,
    engine: Engine,
}

impl Ctx<'_, '_> {
    fn render(&self, sink: &mut Sink, path: &[Seg], text: &str, vars: &Vars) -> Option<String> {
        match self.engine.render(text, vars) {
            Ok(s) => Some(s),
            Err(e) => {
                let value = self.doc.value(path).unwrap_or(0..0);
                let span = template_span(sink.source(), value, e.range.clone());
                let help = if e.message.contains("undefined") {
                    Some(
                        "templates may use `now`, `cluster`, and for host steps `host`, `dc`, `rack` \
                         (set `dc`/`rack` in the host table); backup steps also see `backup`"
                            .to_owned(),
                    )
                } else {
                    Some("templates use minijinja syntax, e.g. `{{ now | strftime('%Y%m%d') }}`; write them in 'single quotes'".to_owned())
                };
                sink.error(Some(span), e.message, "template error", help);
                None
            }
        }
    }
}

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
    // Missing top-level keys point at the first key of the file (after leading comments).
    let first = doc
        .root
        .get_ref()
        .keys()
        .map(|k| k.span().start)
        .min()
        .unwrap_or(0);
    let top = Some(first..first);
    match p.version {
        Some(1) => {}
        Some(v) => sink.error(
            doc.value(&[K("version")]),
            format!("unsupported plan format version `{v}`"),
            "only version 1 exists",
            Some("set `version = 1`".into()),
        ),
        None if !p.present.contains("version") => sink.error(
            top.clone(),
            "missing key `version`",
            "the plan starts here",
            Some("add `version = 1` at the top of the file".into()),
        ),
        None => {}
    }
    if p.kind.is_none() && !p.present.contains("kind") {
        sink.error(
            top.clone(),
            "missing key `kind`",
            "the plan starts here",
            Some("add `kind = \"backup\"`, `\"restore\"` or `\"runbook\"`".into()),
        );
    }
    if p.cluster.is_none() && !p.present.contains("cluster") {
        sink.error(
            top.clone(),
            "missing section `[cluster]`",
            "the plan starts here",
            Some("add `[cluster]` with `name` and `hosts`".into()),
        );
    }
    // Sections required or refused by the kind.
    if let Some(kind) = p.kind {
        let kspan = doc.value(&[K("kind")]);
        let (need, refuse): (&[&str], &[&str]) = match kind {
            PlanKind::Backup => (&["storage", "backup"], &["restore"]),
            PlanKind::Restore => (&["storage", "restore"], &["backup"]),
            PlanKind::Runbook => (&[], &[]),
        };
        let kname = serde_json::to_value(kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        for s in need {
            if !p.present.contains(*s) {
                sink.error(
                    kspan.clone(),
                    format!("a {kname} plan needs a `[{s}]` section"),
                    format!("`[{s}]` is missing"),
                    Some(format!("add a `[{s}]` table (see docs/plan-format.md)")),
                );
            }
        }
        for s in refuse {
            if p.present.contains(*s) {
                sink.error(
                    doc.key(&[K(s)]),
                    format!("a {kname} plan cannot have a `[{s}]` section"),
                    "not used by this kind",
                    Some("remove it, or change `kind`".into()),
                );
            }
        }
        if kind == PlanKind::Runbook && p.steps.is_empty() && !p.present.contains("step") {
            sink.error(
                kspan,
                "a runbook plan needs at least one `[[step]]`",
                "no steps",
                Some("add `[[step]]` tables with `name` and `run`".into()),
            );
        }
    }
    // Hosts.
    let mut hosts: Vec<HostSpec> = Vec::new();
    if let Some(c) = &p.cluster {
        if c.name.is_empty() || !valid_step_name(&c.name) {
            sink.error(
                doc.value(&[K("cluster"), K("name")]),
                format!("invalid cluster name `{}`", c.name),
                "invalid name",
                Some("use letters, digits, `-` and `_`".into()),
            );
        }
        if c.hosts.is_empty() {
            sink.error(
                doc.value(&[K("cluster"), K("hosts")]),
                "the cluster has no hosts",
                "empty",
                Some("list the nodes, e.g. `hosts = [\"cass-01\", \"cass-02\"]`".into()),
            );
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, h) in c.hosts.iter().enumerate() {
            let spec = h.spec();
            let path = match h {
                HostEntry::Name(_) => vec![K("cluster"), K("hosts"), I(i)],
                HostEntry::Detailed(_) => vec![K("cluster"), K("hosts"), I(i), K("name")],
            };
            if !valid_host_name(&spec.name) {
                sink.error(
                    doc.value(&path),
                    format!("invalid host name `{}`", spec.name),
                    "invalid host name",
                    Some("host names may use letters, digits, `.`, `-` and `_`; put the address in `address`".into()),
                );
            } else if let Some(first) = seen.insert(spec.name.clone(), i) {
                sink.error(
                    doc.value(&path),
                    format!("host `{}` is listed twice", spec.name),
                    format!("already listed as host #{}", first + 1),
                    Some("each host may appear once".into()),
                );
            }
            hosts.push(spec);
        }
    }
    let host_names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let host_ok = |h: &str| host_names.contains(&h);
    let unknown_host_help = |h: &str| -> String {
        match suggest(h, host_names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? hosts are listed in `[cluster] hosts`"),
            None => format!("known hosts: {}", host_names.join(", ")),
        }
    };
    // Connection.
    if let Some(c) = &p.connection {
        if let Some(t) = &c.connect_timeout
            && t.is_zero()
        {
            sink.error(
                doc.value(&[K("connection"), K("connect_timeout")]),
                format!("invalid duration `{t}`: a connect timeout must be more than 0"),
                "zero",
                Some("write durations like `10s`, `2m` or `1h`".into()),
            );
        }
        if c.transport == TransportKind::Local && hosts.len() > 1 {
            sink.error(
                doc.value(&[K("connection"), K("transport")]),
                "transport `local` runs on one node only, but the cluster lists several hosts",
                "local transport",
                Some("use `transport = \"ssh\"`, or list only the local node".into()),
            );
        }
    }
    // Storage.
    if let Some(s) = &p.storage {
        check_storage(sink, doc, s);
    }
    if let Some(e) = &p.encryption {
        check_encryption(sink, doc, e);
    }
    // Backup.
    let mut backup_name = None;
    let cluster_name = p.cluster.as_ref().map(|c| c.name.clone());
    let base_vars = Vars {
        now: Some(now.to_owned()),
        cluster: cluster_name.clone(),
        ..Vars::default()
    };
    let mut backup_tag_prefix = None;
    if let Some(b) = &p.backup {
        backup_name = check_backup(sink, &ctx, b, &base_vars);
        if backup_name.is_some() {
            backup_tag_prefix = tag_prefix(&ctx, b, &base_vars);
        }
    }
    // Restore.
    let mut restore_source = None;
    if let Some(r) = &p.restore {
        restore_source = check_restore(sink, &ctx, r, &base_vars, &host_ok, &unknown_host_help);
    }
    // Limits and retention.
    if let Some(l) = &p.limits {
        for (k, v) in [
            ("parallelism", l.parallelism),
            ("per_host", l.per_host),
            ("rolling", l.rolling),
            ("file_concurrency", l.file_concurrency),
        ] {
            if v == 0 {
                sink.error(
                    doc.value(&[K("limits"), K(k)]),
                    format!("`{k}` must be at least 1"),
                    "zero",
                    Some("a limit of 0 would never run anything".into()),
                );
            }
        }
    }
    if let Some(r) = &p.retention
        && r.keep_last.is_none()
        && r.keep_daily.is_none()
        && r.keep_weekly.is_none()
        && r.keep_monthly.is_none()
    {
        sink.error(
            doc.key(&[K("retention")]),
            "the retention policy keeps nothing",
            "no keep_* rule",
            Some(
                "set at least one of `keep_last`, `keep_daily`, `keep_weekly`, `keep_monthly`"
                    .into(),
            ),
        );
    }
    // Steps.
    let plan_for_builtins = PlanFile {
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
    };
    let steps_ok = p.steps.iter().all(Option::is_some);
    let steps: Vec<CustomStep> = p.steps.iter().flatten().cloned().collect();
    let resolved_steps = check_steps(
        sink,
        &ctx,
        &p.steps,
        &hosts,
        catalog.reserved(),
        catalog.builtins(&plan_for_builtins),
        &Vars {
            backup: backup_name.clone().or_else(|| restore_source.clone()),
            ..base_vars.clone()
        },
        &unknown_host_help,
    );
    if !sink.is_empty() || !steps_ok {
        return None;
    }
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
    let mut templates = std::collections::BTreeMap::new();
    if let (Some(b), Some(n)) = (plan.backup.as_mut(), &backup_name) {
        if b.name != *n {
            templates.insert("backup.name".to_owned(), std::mem::take(&mut b.name));
        }
        b.name = n.clone();
    }
    if let (Some(r), Some(s)) = (plan.restore.as_mut(), &restore_source) {
        if r.source != *s {
            templates.insert("restore.source".to_owned(), std::mem::take(&mut r.source));
        }
        r.source = s.clone();
    }
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

fn check_encryption(sink: &mut Sink, doc: &Doc<'_>, e: &EncryptionConfig) {
    if e.recipients.is_empty() {
        sink.error(
            doc.value(&[K("encryption"), K("recipients")]),
            "`[encryption]` needs at least one recipient",
            "empty list",
            Some("add an age public key, e.g. `recipients = [\"age1...\"]` (`age-keygen -y KEYFILE` prints it)".into()),
        );
    }
    for (i, r) in e.recipients.iter().enumerate() {
        if is_age_identity(r) {
            sink.error(
                doc.value(&[K("encryption"), K("recipients"), I(i)]),
                "`recipients` holds an age identity (private key), not a recipient",
                "a private key",
                Some("write its public key (`age-keygen -y KEYFILE` prints it); the identity goes in the file CBK_IDENTITY_FILE names, never in a plan".into()),
            );
            continue;
        }
        if let Err(why) = crate::crypt::Recipients::parse_one(r) {
            sink.error(
                doc.value(&[K("encryption"), K("recipients"), I(i)]),
                format!("invalid age recipient `{r}`: {why}"),
                "not an age X25519 public key",
                Some("write the public key `age1...` (bech32, from `age-keygen`); never put the identity `AGE-SECRET-KEY-1...` in a plan".into()),
            );
        }
    }
    if e.kms_key_id.is_some() {
        sink.error(
            doc.value(&[K("encryption"), K("kms_key_id")]),
            "`kms_key_id` is not yet supported",
            "KMS wrapping of data keys",
            Some("remove it and use age `recipients`; keep SSE-KMS in `[storage]` for server-side encryption".into()),
        );
    }
    if let Some(v) = &e.identity_env
        && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        sink.error(
            doc.value(&[K("encryption"), K("identity_env")]),
            "`identity_env` is not an environment variable name",
            "bad name",
            Some(
                "name the variable that holds the identity, e.g. `identity_env = \"CBK_IDENTITY\"`"
                    .into(),
            ),
        );
    }
}

fn check_storage(sink: &mut Sink, doc: &Doc<'_>, s: &StorageConfig) {
    let at = |k: &'static str| doc.value(&[K("storage"), K(k)]);
    use crate::store::url::{StoreUrl, UrlError};
    let parsed = StoreUrl::parse(&s.url);
    let is_file = matches!(parsed, Ok(StoreUrl::File { .. }));
    if let Err(e) = parsed {
        let (message, label, hint) = match &e {
            UrlError::Bucket { bucket, reason } => (
                format!("invalid S3 bucket name `{bucket}`"),
                "bad bucket",
                reason.to_string(),
            ),
            UrlError::Prefix { reason, .. } => (
                format!("invalid prefix in `{}`: {reason}", s.url),
                "bad prefix",
                "a prefix is `/`-separated names without `.` or `..` segments".to_string(),
            ),
            UrlError::FileNotAbsolute(_) => (
                format!("`{}` is not an absolute file URL", s.url),
                "relative path",
                "write `file:///absolute/path` (three slashes)".to_string(),
            ),
            UrlError::UnknownScheme(_) => (
                format!("unsupported storage URL `{}`", s.url),
                "unknown scheme",
                format!("use {}", crate::store::url::EXPECTED),
            ),
        };
        sink.error(at("url"), message, label, Some(hint));
    }
    if let Some(e) = &s.endpoint {
        if is_file {
            sink.error(
                at("endpoint"),
                "`endpoint` only applies to S3 storage",
                "not used with file://",
                Some("remove it, or use an `s3://` URL".into()),
            );
        } else if !(e.starts_with("http://") || e.starts_with("https://")) {
            sink.error(
                at("endpoint"),
                format!("invalid endpoint `{e}`"),
                "not an http(s) URL",
                Some(
                    "write e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`"
                        .into(),
                ),
            );
        }
    }
    match (s.sse, &s.sse_kms_key_id) {
        (Some(Sse::AwsKms), None) => sink.error(
            at("sse"),
            "`sse = \"aws:kms\"` needs `sse_kms_key_id`",
            "no KMS key",
            Some("add `sse_kms_key_id = \"arn:aws:kms:...\"` or an alias".into()),
        ),
        (Some(Sse::Aes256) | None, Some(_)) => sink.error(
            at("sse_kms_key_id"),
            "`sse_kms_key_id` is only used with `sse = \"aws:kms\"`",
            "unused key id",
            Some("set `sse = \"aws:kms\"` or remove the key id".into()),
        ),
        _ => {}
    }
    const CLASSES: &[&str] = &[
        "STANDARD",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
        "GLACIER",
        "DEEP_ARCHIVE",
        "REDUCED_REDUNDANCY",
        "EXPRESS_ONEZONE",
    ];
    if let Some(c) = &s.storage_class
        && !CLASSES.contains(&c.as_str())
    {
        let help = match suggest(&c.to_ascii_uppercase(), CLASSES.iter().copied()) {
            Some(x) => format!("did you mean `{x}`?"),
            None => format!("expected one of {}", CLASSES.join(", ")),
        };
        sink.error(
            at("storage_class"),
            format!("unknown storage class `{c}`"),
            "unknown class",
            Some(help),
        );
    }
    for (k, v) in [
        ("access_key_id_env", &s.access_key_id_env),
        ("secret_access_key_env", &s.secret_access_key_env),
        ("session_token_env", &s.session_token_env),
    ] {
        if let Some(v) = v
            && !valid_env_name(v)
        {
            sink.error(
                at(k),
                format!("the value of `{k}` is not an environment variable name (not shown: it may be the secret itself)"),
                "not a variable name",
                Some("name the variable that holds the value, e.g. `AWS_SECRET_ACCESS_KEY`; never the value itself".into()),
            );
        }
    }
    if s.access_key_id_env.is_some() != s.secret_access_key_env.is_some() {
        let k = if s.access_key_id_env.is_some() {
            "access_key_id_env"
        } else {
            "secret_access_key_env"
        };
        sink.error(
            at(k),
            "`access_key_id_env` and `secret_access_key_env` go together",
            "only one of the pair",
            Some("name both variables, or use `profile`".into()),
        );
    }
    if let Some(ps) = &s.part_size {
        match ps.bytes() {
            n if (5 << 20..=5 << 30).contains(&n) => {}
            _ => sink.error(
                at("part_size"),
                format!("invalid part size `{ps}`"),
                "between 5MiB and 5GiB",
                Some("S3 parts are 5 MiB to 5 GiB, e.g. `16MiB`".into()),
            ),
        }
    }
    if let Some(c) = &s.checksum
        && !crate::store::s3::CHECKSUM_MODES.contains(&c.as_str())
    {
        sink.error(
            at("checksum"),
            format!("unknown checksum mode `{c}`"),
            "unknown mode",
            Some(format!(
                "expected one of {}",
                crate::store::s3::CHECKSUM_MODES
                    .map(|m| format!("`{m}`"))
                    .join(", ")
            )),
        );
    }
}

fn check_globs(
    sink: &mut Sink,
    doc: &Doc<'_>,
    sec: &'static str,
    key: &'static str,
    list: &[String],
) {
    for (i, g) in list.iter().enumerate() {
        let path = [K(sec), K(key), I(i)];
        if !g.contains('.') {
            sink.error(
                doc.value(&path),
                format!("`{g}` is not a `keyspace.table` pattern"),
                "no `.`",
                Some(format!(
                    "patterns name tables, e.g. `{g}.*` for a whole keyspace"
                )),
            );
        } else if let Err(e) = globset::Glob::new(g) {
            sink.error(
                doc.value(&path),
                format!("invalid glob `{g}`: {}", e.kind()),
                "invalid glob",
                Some("globs use `*`, `?`, `[abc]` and `{a,b}`".into()),
            );
        }
    }
}

fn check_backup(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    b: &BackupConfig,
    vars: &Vars,
) -> Option<String> {
    let doc = ctx.doc;
    check_globs(sink, doc, "backup", "include", &b.include);
    check_globs(sink, doc, "backup", "exclude", &b.exclude);
    if let Some(c) = &b.codec {
        let ok = match c.split_once(':') {
            Some(("zstd", lvl)) => lvl.parse::<i32>().is_ok_and(|l| (1..=22).contains(&l)),
            None => ["zstd", "lz4", "none"].contains(&c.as_str()),
            _ => false,
        };
        if !ok {
            sink.error(
                doc.value(&[K("backup"), K("codec")]),
                format!("unknown codec `{c}`"),
                "unknown codec",
                Some("expected `zstd`, `zstd:LEVEL` (1-22), `lz4` or `none`".into()),
            );
        }
    }
    let path = [K("backup"), K("name")];
    let name = ctx.render(sink, &path, &b.name, vars)?;
    let span = doc.value(&path);
    let formats = ctx.engine.last_formats();
    match check_name_formats(&formats) {
        Ok(()) => {}
        Err(NameProblem::NoYear) => {
            sink.error(
                span,
                "the backup name template has no year, so names would repeat",
                "no year in this name",
                Some(
                    "backup names must be unique over time: the tool cbk replaces used `%U` (week of year) \
                     alone, so week 12 of one year overwrote week 12 of the year before; include `%Y`, \
                     e.g. `{{ now | strftime('%Y%m%dT%H%MZ') }}`"
                        .into(),
                ),
            );
            return None;
        }
        Err(NameProblem::Unsorted { first, later }) => {
            sink.error(
                span,
                format!("the backup name template does not sort by time: `{first}` comes before `{later}`"),
                "not sortable",
                Some(
                    "names are compared as strings to find the latest backup, so the most significant field \
                     must come first: year, month, day, hour, minute (e.g. `%Y%m%dT%H%M`)"
                        .into(),
                ),
            );
            return None;
        }
        Err(NameProblem::MonthName(c)) => {
            sink.error(
                span,
                format!("month names (`%{c}`) do not sort by time"),
                "not sortable",
                Some("use the month number `%m` instead".into()),
            );
            return None;
        }
    }
    if !valid_backup_name(&name) {
        sink.error(
            span,
            format!("the backup name renders as `{name}`, which is not a valid snapshot tag"),
            "invalid rendered name",
            Some("backup names become nodetool snapshot tags: 1-48 characters from `A-Z a-z 0-9 _ -` (no `.`, `/` or `:`)".into()),
        );
        return None;
    }
    Some(name)
}

/// The part of the backup name template that does not depend on the time (`nightly-` of
/// `nightly-{{ now | strftime('%Y%m%dT%H%MZ') }}`): the common start of the name rendered at
/// two instants that differ in every field's first character. Empty when the name starts with
/// the time.
fn tag_prefix(ctx: &Ctx<'_, '_>, b: &BackupConfig, vars: &Vars) -> Option<String> {
    let at = |now: &str| {
        ctx.engine
            .render(
                &b.name,
                &Vars {
                    now: Some(now.to_owned()),
                    ..vars.clone()
                },
            )
            .ok()
    };
    let (a, z) = (at("1999-12-31T23:59:59Z")?, at("2088-01-01T00:00:00Z")?);
    let common: String = a
        .chars()
        .zip(z.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    (!common.is_empty()).then_some(common)
}

fn check_restore(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    r: &RestoreConfig,
    vars: &Vars,
    host_ok: &dyn Fn(&str) -> bool,
    unknown_host_help: &dyn Fn(&str) -> String,
) -> Option<String> {
    let doc = ctx.doc;
    check_globs(sink, doc, "restore", "include", &r.include);
    check_globs(sink, doc, "restore", "exclude", &r.exclude);
    let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
    for (src, dst) in &r.host_map {
        let path = [K("restore"), K("host_map"), K(src.as_str())];
        if !host_ok(dst) {
            sink.error(
                doc.value(&path),
                format!("unknown target host `{dst}` in `host_map`"),
                "not a host of this cluster",
                Some(unknown_host_help(dst)),
            );
        } else if let Some(prev) = targets.insert(dst.as_str(), src.as_str()) {
            sink.error(
                doc.value(&path),
                format!("hosts `{prev}` and `{src}` both map to `{dst}`"),
                "mapped twice",
                Some("each target host receives one source host's data".into()),
            );
        }
    }
    for (k, v) in &r.table_ids {
        let path = [K("restore"), K("table_ids"), K(k.as_str())];
        if !k.contains('.') {
            sink.error(
                doc.key(&path),
                format!("`{k}` is not `keyspace.table`"),
                "not a table name",
                None,
            );
        }
        let id = v.replace('-', "");
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            sink.error(
                doc.value(&path),
                format!("`{v}` is not a table id"),
                "not 32 hex digits",
                Some(
                    "table ids are the 32 hex digits after the `-` in the table folder name".into(),
                ),
            );
        }
    }
    if let Some(o) = &r.owner
        && (o.is_empty() || o.contains(char::is_whitespace))
    {
        sink.error(
            doc.value(&[K("restore"), K("owner")]),
            format!("invalid owner `{o}`"),
            "invalid owner",
            Some("write `user` or `user:group`".into()),
        );
    }
    check_loader(sink, doc, r);
    check_delta(sink, doc, r);
    let path = [K("restore"), K("source")];
    let span = doc.value(&path);
    let src = ctx.render(sink, &path, &r.source, vars)?;
    if src == "latest" {
        return Some(src);
    }
    if let Some(t) = src.strip_prefix("latest-before:") {
        if t.parse::<jiff::Timestamp>().is_err() {
            sink.error(
                span,
                format!("`{t}` is not an RFC 3339 time"),
                "bad time",
                Some("write e.g. `latest-before:2026-03-01T00:00:00Z`".into()),
            );
            return None;
        }
        return Some(src);
    }
    if let Some(spec) = src.strip_prefix("legacy:") {
        if let Err(e) = crate::repo::legacy::parse_spec(spec) {
            sink.error(
                span,
                format!("invalid legacy source: {e}"),
                "invalid legacy source",
                Some("write `legacy:<base>/<name>`: the old tool's --s3-base-path (relative to storage.url) and the snapshot name, e.g. `legacy:webapp_prod/20161223`".into()),
            );
            return None;
        }
        return Some(src);
    }
    if !valid_backup_name(&src) {
        sink.error(
            span,
            format!("`{src}` is not a backup name"),
            "invalid source",
            Some("use `latest`, `latest-before:TIME` (RFC 3339), a backup name as listed by `cbk list`, or `legacy:<base>/<name>` for a cassandra_backups snapshot".into()),
        );
        return None;
    }
    Some(src)
}

/// `delta = true`: only for `restart`, the one method that replaces the live files (the others
/// add the backup beside them, so there is nothing to keep in place).
fn check_delta(sink: &mut Sink, doc: &Doc<'_>, r: &RestoreConfig) {
    if r.delta && r.method != RestoreMethod::Restart {
        let method = serde_json::to_value(r.method)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        sink.error(
            doc.value(&[K("restore"), K("delta")]),
            format!("`delta = true` does not apply to method `{method}`"),
            "delta needs method = \"restart\"",
            Some(format!(
                "`{method}` adds the backed-up sstables beside the live ones instead of replacing \
                 them, so no live file can be kept in place: remove `delta`, or use \
                 `method = \"restart\"`"
            )),
        );
    }
}

/// `[restore.loader]`: only with `method = "loader"`, and well-formed contact points.
fn check_loader(sink: &mut Sink, doc: &Doc<'_>, r: &RestoreConfig) {
    let Some(l) = &r.loader else { return };
    if r.method != RestoreMethod::Loader {
        sink.error(
            doc.key(&[K("restore"), K("loader")]),
            "`[restore.loader]` is set but the method is not `loader`".to_string(),
            "unused settings",
            Some("set `method = \"loader\"`, or remove `[restore.loader]`: one restore uses one method".into()),
        );
    }
    for (i, n) in l.nodes.iter().enumerate() {
        let (host, port) = match n.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (n.as_str(), None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
            sink.error(
                doc.value(&[K("restore"), K("loader"), K("nodes"), I(i)]),
                format!("`{n}` is not a contact point"),
                "not `host` or `host:port`",
                Some(
                    "write a host name or address, optionally with `:PORT` (native transport)"
                        .into(),
                ),
            );
        }
    }
    if let Some(a) = &l.auth_provider
        && (a.is_empty()
            || !a
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._$".contains(&b)))
    {
        sink.error(
            doc.value(&[K("restore"), K("loader"), K("auth_provider")]),
            format!("`{a}` is not a Java class name"),
            "not a class name",
            Some(
                "e.g. `com.example.FileAuthProvider` (a class with a no-argument constructor)"
                    .into(),
            ),
        );
    }
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

#[allow(clippy::too_many_arguments)]
fn check_steps(
    sink: &mut Sink,
    ctx: &Ctx<'_, '_>,
    steps: &[Option<CustomStep>],
    hosts: &[HostSpec],
    reserved: Vec<&'static str>,
    bi: BuiltinNames,
    vars: &Vars,
    unknown_host_help: &dyn Fn(&str) -> String,
) -> Option<Vec<ResolvedStep>> {
    let doc = ctx.doc;
    let host_names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = true;
    for (i, st) in steps.iter().enumerate() {
        let Some(st) = st else { continue };
        let sp = |k: &'static str| [K("step"), I(i), K(k)];
        if !valid_step_name(&st.name) {
            sink.error(
                doc.value(&sp("name")),
                format!("invalid step name `{}`", st.name),
                "invalid name",
                Some("step names use letters, digits, `-` and `_`".into()),
            );
            ok = false;
        } else if reserved.contains(&st.name.as_str()) {
            sink.error(
                doc.value(&sp("name")),
                format!("step name `{}` is the name of a built-in step", st.name),
                "reserved name",
                Some(format!("pick another name, e.g. `my-{}`", st.name)),
            );
            ok = false;
        } else if let Some(first) = names.insert(st.name.as_str(), i) {
            sink.error(
                doc.value(&sp("name")),
                format!("step `{}` is defined twice", st.name),
                format!("first defined in step #{}", first + 1),
                Some("step names must be unique".into()),
            );
            ok = false;
        }
        // Scope.
        let scope: Option<Option<Vec<String>>> = match &st.on {
            None => Some(Some(host_names.iter().map(|h| h.to_string()).collect())),
            Some(StepScope::Keyword(k)) if k == "hosts" => {
                Some(Some(host_names.iter().map(|h| h.to_string()).collect()))
            }
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
                    if !host_names.contains(&h.as_str()) {
                        sink.error(
                            doc.value(&[K("step"), I(i), K("on"), I(j)]),
                            format!("unknown host `{h}` in `on`"),
                            "not a host of this cluster",
                            Some(unknown_host_help(h)),
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
        // Commands, rendered per host.
        let mut runs = Vec::new();
        let mut checks = Vec::new();
        let mut creates = Vec::new();
        if let Some(scope) = &scope {
            let targets: Vec<Option<&HostSpec>> = match scope {
                None => vec![None],
                Some(list) => list
                    .iter()
                    .filter_map(|n| hosts.iter().find(|h| &h.name == n))
                    .map(Some)
                    .collect(),
            };
            let mut failed = false;
            for t in targets {
                let v = Vars {
                    host: t.map(|h| h.name.clone()),
                    dc: t.and_then(|h| h.dc.clone()),
                    rack: t.and_then(|h| h.rack.clone()),
                    ..vars.clone()
                };
                let rendered = render_command(sink, ctx, i, "run", &st.run, &v);
                let check = match &st.check {
                    Some(c) => match render_command(sink, ctx, i, "check", c, &v) {
                        Some(c) => Some(c),
                        None => {
                            failed = true;
                            break;
                        }
                    },
                    None => None,
                };
                let created = match &st.creates {
                    Some(c) => match ctx.render(sink, &sp("creates"), c, &v) {
                        Some(c) => Some(c),
                        None => {
                            failed = true;
                            break;
                        }
                    },
                    None => None,
                };
                checks.push(check);
                creates.push(created);
                match rendered {
                    Some(CommandSpec::Shell(s)) if s.trim().is_empty() => {
                        sink.error(
                            doc.value(&sp("run")),
                            "the command is empty",
                            "empty command",
                            Some("write the command to run".into()),
                        );
                        failed = true;
                        break;
                    }
                    Some(CommandSpec::Argv(a)) if a.is_empty() => {
                        sink.error(
                            doc.value(&sp("run")),
                            "the command is empty",
                            "empty command",
                            Some("write the command to run".into()),
                        );
                        failed = true;
                        break;
                    }
                    Some(c) => runs.push(c),
                    None => {
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                out.push(ResolvedStep {
                    index: i,
                    hosts: scope.clone(),
                    runs,
                    checks,
                    creates,
                });
            } else {
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    // References.
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
    if refs_ok && ok {
        check_cycles(sink, doc, steps, &bi);
    }
    (ok && refs_ok && steps.iter().all(Option::is_some)).then_some(out)
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
