//! `[connection]`: a usable connect timeout, and the `local` transport only for one node.

use super::{Doc, K};
use crate::plan::diag::Sink;
use crate::plan::model::{ConnectionConfig, TransportKind};

/// Checks `[connection]` for a cluster of `host_count` hosts.
pub fn check(sink: &mut Sink, doc: &Doc<'_>, c: &ConnectionConfig, host_count: usize) {
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
    if c.transport == TransportKind::Local && host_count > 1 {
        sink.error(
            doc.value(&[K("connection"), K("transport")]),
            "transport `local` runs on one node only, but the cluster lists several hosts",
            "local transport",
            Some("use `transport = \"ssh\"`, or list only the local node".into()),
        );
    }
}
