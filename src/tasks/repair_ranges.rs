//! `repair[HOST]` by token range (`[restore] repair_parallelism` above 1): each host repairs its
//! primary ranges — `(previous ring token, own token]` for each of its tokens, the ranges
//! `nodetool repair -pr` picks — one `nodetool repair -st START -et END` call per range and
//! keyspace, while the engine runs up to that many hosts at once. Every range of the ring has
//! exactly one primary owner, so every range is repaired once across the cluster.

use super::Runtime;
use super::node::{self, nt_err};
use crate::cassandra::nodetool::{NodetoolError, parse_ring};
use crate::exec::{Outcome, TaskError};
use std::collections::BTreeMap;

/// The primary ranges `(start, end]` of the node owning `own` in a ring of `all` tokens.
pub fn primary_ranges(own: &[i128], all: &[i128]) -> Vec<(i128, i128)> {
    let mut ring: Vec<i128> = all.to_vec();
    ring.sort_unstable();
    ring.dedup();
    let mut out: Vec<(i128, i128)> = own
        .iter()
        .filter_map(|t| {
            let i = ring.binary_search(t).ok()?;
            let prev = if i == 0 {
                ring[ring.len() - 1]
            } else {
                ring[i - 1]
            };
            Some((prev, *t))
        })
        .collect();
    out.sort_unstable_by_key(|r| r.1);
    out
}

/// This host's primary ranges, from `nodetool info -T` (its tokens) and `nodetool ring`.
async fn host_ranges(rt: &Runtime, host: &str) -> Result<Vec<(i128, i128)>, TaskError> {
    let bad = |what: &str, t: &str| {
        TaskError::fatal(format!(
            "repair[{host}]: `nodetool {what}` printed the token `{t}`, not a number"
        ))
    };
    let mut own = Vec::new();
    for t in node::tokens(rt, host).await.map_err(nt_err)? {
        own.push(t.parse::<i128>().map_err(|_| bad("info -T", &t))?);
    }
    let ring_out = node::nodetool(rt, host, &["ring".to_string()])
        .await
        .map_err(nt_err)?;
    let ring = parse_ring(&ring_out).map_err(|e: NodetoolError| nt_err(e))?;
    let mut all = Vec::new();
    for t in ring.values().flatten() {
        all.push(t.parse::<i128>().map_err(|_| bad("ring", t))?);
    }
    let ranges = primary_ranges(&own, &all);
    if ranges.len() != own.len() || own.is_empty() {
        return Err(TaskError::fatal(format!(
            "repair[{host}]: `nodetool ring` does not list the {} tokens `nodetool info -T` shows \
             for this node; check that the node has joined the ring",
            own.len()
        )));
    }
    Ok(ranges)
}

/// Repairs the host's primary ranges of the restored tables (`calls`: keyspace -> tables).
pub async fn repair(
    rt: &Runtime,
    host: &str,
    options: &[String],
    calls: &BTreeMap<String, Vec<String>>,
) -> Result<Outcome, TaskError> {
    let ranges = host_ranges(rt, host).await?;
    let mut done = Vec::new();
    for (keyspace, tables) in calls {
        for (start, end) in &ranges {
            let mut args = vec!["repair".to_string()];
            args.extend(options.iter().cloned());
            args.extend([
                "-st".into(),
                start.to_string(),
                "-et".into(),
                end.to_string(),
                "--".into(),
                keyspace.clone(),
            ]);
            args.extend(tables.iter().cloned());
            node::nodetool(rt, host, &args).await.map_err(nt_err)?;
        }
        done.push(format!(
            "{keyspace} ({}): {} primary ranges repaired",
            tables.join(", "),
            ranges.len()
        ));
    }
    Ok(Outcome {
        summary: done.join("; "),
        data: serde_json::json!({
            "ranges": ranges
                .iter()
                .map(|(s, e)| [s.to_string(), e.to_string()])
                .collect::<Vec<_>>(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::primary_ranges;

    #[test]
    fn primary_ranges_cover_the_ring_once() {
        let a = [-100, 50];
        let b = [-50, 100];
        let c = [0];
        let all: Vec<i128> = [&a[..], &b[..], &c[..]].concat();
        let mut every: Vec<(i128, i128)> = [&a[..], &b[..], &c[..]]
            .iter()
            .flat_map(|own| primary_ranges(own, &all))
            .collect();
        every.sort_unstable();
        // The first range wraps: (largest token, smallest token].
        assert_eq!(
            every,
            vec![(-100, -50), (-50, 0), (0, 50), (50, 100), (100, -100)]
        );
        assert_eq!(primary_ranges(&[7], &[7]), vec![(7, 7)]);
        assert_eq!(primary_ranges(&[9], &[1, 2]), vec![]);
    }
}
