//! The loader's checks, one file per plan section, and what they share: span lookup by key path
//! in the parsed document ([`Doc`]), template rendering with spans ([`Ctx`]) and name rules.
//! Each check reports every problem it finds to the [`Sink`] and never stops at the first one.

pub mod backup;
pub mod cluster;
pub mod connection;
pub mod encryption;
pub mod limits;
pub mod restore;
pub mod retention;
pub mod secrets;
pub mod shape;
pub mod steps;
pub mod storage;
pub mod top;

use super::diag::Sink;
use super::template::{Engine, Vars};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A segment of a key path into the document.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    K(&'a str),
    I(usize),
}
pub use Seg::{I, K};

/// The parsed document, for span lookups by key path.
pub struct Doc<'i> {
    pub root: Spanned<DeTable<'i>>,
}

impl<'i> Doc<'i> {
    /// Key span and value span of the deepest existing element on `path`.
    pub fn find(&self, path: &[Seg]) -> (Option<Range<usize>>, Range<usize>) {
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

    pub fn value(&self, path: &[Seg]) -> Option<Range<usize>> {
        Some(self.find(path).1)
    }

    pub fn key(&self, path: &[Seg]) -> Option<Range<usize>> {
        let (k, v) = self.find(path);
        Some(k.unwrap_or(v))
    }
}

pub struct Ctx<'a, 'i> {
    pub doc: &'a Doc<'i>,
    pub engine: Engine,
}

impl Ctx<'_, '_> {
    pub fn render(&self, sink: &mut Sink, path: &[Seg], text: &str, vars: &Vars) -> Option<String> {
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

pub fn valid_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

pub fn valid_step_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn valid_env_name(s: &str) -> bool {
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

pub fn check_globs(
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
