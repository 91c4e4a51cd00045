//! `[limits]`: every concurrency limit at least 1.

use super::{Doc, K};
use crate::plan::diag::Sink;
use crate::plan::model::Limits;

/// Checks `[limits]`.
pub fn check(sink: &mut Sink, doc: &Doc<'_>, l: &Limits) {
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
