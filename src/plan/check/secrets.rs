//! Literal secrets in a plan (`password = "..."`, an age identity): found anywhere in the
//! document, redacted from the text diagnostics show before any diagnostic is rendered,
//! reported once each, and removed so they are not also reported as unknown keys.

use super::{Doc, valid_env_name};
use crate::plan::diag::Sink;
use std::collections::BTreeSet;
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// Finds, reports and strips the literal secrets of `doc`. Returns the sink for the rest of the
/// checks and the source text with every secret masked (the only text diagnostics show).
pub fn check(name: &str, src: &str, doc: &mut Doc<'_>) -> (Sink, String) {
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
    strip_secrets(doc, &secrets);
    (sink, shown)
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
pub fn is_age_identity(s: &str) -> bool {
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
