//! `[cluster]`: the cluster's name and its hosts (valid, unique names), and the host names other
//! sections refer to (`host_map`, a step's `on`).

use super::{Doc, I, K, valid_host_name, valid_step_name};
use crate::plan::diag::{Sink, suggest};
use crate::plan::model::{ClusterConfig, HostEntry, HostSpec};
use std::collections::HashMap;

/// Checks the cluster's name and hosts; returns every host as a full spec.
pub fn check(sink: &mut Sink, doc: &Doc<'_>, c: &ClusterConfig) -> Vec<HostSpec> {
    let mut hosts: Vec<HostSpec> = Vec::new();
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
    hosts
}

/// The names of the plan's hosts, for the sections that name hosts.
pub struct HostNames<'a>(Vec<&'a str>);

impl<'a> HostNames<'a> {
    pub fn of(hosts: &'a [HostSpec]) -> Self {
        HostNames(hosts.iter().map(|h| h.name.as_str()).collect())
    }

    /// Every host name, in plan order.
    pub fn all(&self) -> Vec<String> {
        self.0.iter().map(|h| h.to_string()).collect()
    }

    /// Whether `h` is one of the hosts.
    pub fn contains(&self, h: &str) -> bool {
        self.0.contains(&h)
    }

    /// The hint for a name that is not a host.
    pub fn unknown_help(&self, h: &str) -> String {
        match suggest(h, self.0.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? hosts are listed in `[cluster] hosts`"),
            None => format!("known hosts: {}", self.0.join(", ")),
        }
    }
}
