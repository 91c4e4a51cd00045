//! `[storage]`: the URL (through the store's one URL parser), S3-only settings, server-side
//! encryption, storage class, credential variable names, part size, checksum mode and Object
//! Lock.

use super::{Doc, K, valid_env_name};
use crate::plan::diag::{Sink, suggest};
use crate::plan::model::{Sse, StorageConfig};

/// Checks `[storage]`.
pub fn check(sink: &mut Sink, doc: &Doc<'_>, s: &StorageConfig) {
    let is_file = url(sink, doc, s);
    endpoint(sink, doc, s, is_file);
    server_side(sink, doc, s);
    credentials(sink, doc, s);
    transfer(sink, doc, s);
    if let Some(lock) = &s.object_lock {
        object_lock(sink, doc, s, lock, is_file);
    }
}

/// `object_lock` needs S3 (a folder has no retention), a sane number of days, and checksums.
fn object_lock(
    sink: &mut Sink,
    doc: &Doc<'_>,
    s: &StorageConfig,
    lock: &crate::store::object_lock::ObjectLock,
    is_file: bool,
) {
    let at = |k: &'static str| doc.value(&[K("storage"), K("object_lock"), K(k)]);
    if is_file {
        sink.error(
            doc.value(&[K("storage"), K("object_lock")]),
            "`object_lock` needs S3 storage: a local folder cannot hold objects immutable",
            "not possible with file://",
            Some(
                "use an `s3://` bucket created with Object Lock enabled, or remove `object_lock`"
                    .into(),
            ),
        );
    }
    if !(1..=crate::store::object_lock::MAX_DAYS).contains(&lock.days) {
        sink.error(
            at("days"),
            format!("invalid Object Lock retention of {} days", lock.days),
            "1 to 36500",
            Some("S3 retention is 1 day to 100 years, e.g. `days = 30`".into()),
        );
    }
    if s.checksum.as_deref() == Some("when_required") {
        sink.error(
            doc.value(&[K("storage"), K("checksum")]),
            "`checksum = \"when_required\"` sends no checksum, and S3 refuses Object Lock uploads without one",
            "no checksum",
            Some("remove `checksum` (Object Lock then sends CRC32) or set `crc32` / `crc32c`".into()),
        );
    }
}

/// The URL, through the store's one URL parser; returns whether it is a `file://` URL.
fn url(sink: &mut Sink, doc: &Doc<'_>, s: &StorageConfig) -> bool {
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
    is_file
}

/// `endpoint`: S3 only, an http(s) URL.
fn endpoint(sink: &mut Sink, doc: &Doc<'_>, s: &StorageConfig, is_file: bool) {
    let at = |k: &'static str| doc.value(&[K("storage"), K(k)]);
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
}

/// Server-side encryption and the storage class.
fn server_side(sink: &mut Sink, doc: &Doc<'_>, s: &StorageConfig) {
    let at = |k: &'static str| doc.value(&[K("storage"), K(k)]);
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
}

/// Credentials are named by environment variable (never given), and in pairs.
fn credentials(sink: &mut Sink, doc: &Doc<'_>, s: &StorageConfig) {
    let at = |k: &'static str| doc.value(&[K("storage"), K(k)]);
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
}

/// Multipart part size and checksum mode.
fn transfer(sink: &mut Sink, doc: &Doc<'_>, s: &StorageConfig) {
    let at = |k: &'static str| doc.value(&[K("storage"), K(k)]);
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
