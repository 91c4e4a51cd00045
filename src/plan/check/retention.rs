//! `[retention]`: a policy that keeps something.

use super::{Doc, K};
use crate::plan::diag::Sink;
use crate::plan::model::Retention;

/// Checks `[retention]`.
pub fn check(sink: &mut Sink, doc: &Doc<'_>, r: &Retention) {
    if r.keep_last.is_none()
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
}
