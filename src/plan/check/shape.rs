//! The shape stage: each top-level section deserialized on its own into the model types, and
//! serde's errors (unknown keys and values, missing keys, wrong types, bad units) turned into
//! diagnostics in plan words, with the span toml gives and a hint.

use super::Doc;
use crate::plan::diag::{Sink, suggest};
use crate::plan::load::TOP_KEYS;
use crate::plan::model::*;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

/// The sections that parsed (each `None` if absent or broken).
#[derive(Default)]
pub struct Parts {
    pub version: Option<u32>,
    pub kind: Option<PlanKind>,
    pub description: Option<String>,
    pub cluster: Option<ClusterConfig>,
    pub connection: Option<ConnectionConfig>,
    pub cassandra: Option<CassandraConfig>,
    pub storage: Option<StorageConfig>,
    pub encryption: Option<EncryptionConfig>,
    pub backup: Option<BackupConfig>,
    pub restore: Option<RestoreConfig>,
    pub limits: Option<Limits>,
    pub retention: Option<Retention>,
    pub steps: Vec<Option<CustomStep>>,
    /// Sections present in the file (parsed or not).
    pub present: BTreeSet<String>,
}

/// Deserializes each top-level section on its own, so one broken section does not hide the
/// problems of another; unknown top-level keys are reported with a suggestion.
pub fn shape(sink: &mut Sink, doc: &Doc<'_>) -> Parts {
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
