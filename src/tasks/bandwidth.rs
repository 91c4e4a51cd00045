//! The controller's share of `limits.cluster_bandwidth` (and `limits.bandwidth`, per node)
//! among the agents moving bytes to or from the store (`fetch`, `backup_upload`) right now.
//!
//! Each transfer joins the pool for as long as its agent runs and gets a [`Lease`]: the rate it
//! starts at (sent in the request) and a channel of new rates, which the transport forwards to
//! the agent as `bandwidth` control lines. Whenever a transfer starts or ends, every running one
//! gets `min(cluster cap / transfers, node cap / transfers on its node)`: when one node's fetch
//! ends, the others take its part of the cluster cap at once (a fixed split would leave it
//! unused). A transfer slower than its share (a slow disk, small files) leaves the difference
//! unused; the cap is a ceiling, never exceeded.

use crate::plan::model::Limits;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The rates of the transfers under way.
#[derive(Debug)]
pub struct Bandwidth {
    node: Option<u64>,
    cluster: Option<u64>,
    active: Mutex<Active>,
}

#[derive(Debug, Default)]
struct Active {
    next_id: u64,
    /// (id, host, rate channel) of each transfer under way.
    transfers: Vec<(u64, String, watch::Sender<Option<u64>>)>,
}

/// One transfer's place in the pool; leaving it (drop) gives its share to the others.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Bandwidth>,
    id: u64,
    /// The current rate (bytes per second, `None`: unlimited) and its changes.
    pub rates: watch::Receiver<Option<u64>>,
}

impl Bandwidth {
    /// The pool for a plan's limits.
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Bandwidth {
            node: limits.bandwidth.as_ref().map(|r| r.bytes_per_second()),
            cluster: limits
                .cluster_bandwidth
                .as_ref()
                .map(|r| r.bytes_per_second()),
            active: Mutex::new(Active::default()),
        })
    }

    /// A transfer on `host` starts: `None` when the plan sets no bandwidth limit.
    pub fn join(self: &Arc<Self>, host: &str) -> Option<Lease> {
        if self.node.is_none() && self.cluster.is_none() {
            return None;
        }
        let mut a = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let id = a.next_id;
        a.next_id += 1;
        let (tx, rates) = watch::channel(None);
        a.transfers.push((id, host.to_string(), tx));
        self.resplit(&a);
        Some(Lease {
            pool: self.clone(),
            id,
            rates,
        })
    }

    /// Gives every transfer under way its share.
    fn resplit(&self, a: &Active) {
        let n = a.transfers.len() as u64;
        for (_, host, tx) in &a.transfers {
            let on_host = a.transfers.iter().filter(|t| &t.1 == host).count() as u64;
            let rate = [
                self.cluster.map(|c| c / n.max(1)),
                self.node.map(|c| c / on_host.max(1)),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|r| r.max(1));
            tx.send_if_modified(|cur| {
                let changed = *cur != rate;
                *cur = rate;
                changed
            });
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut a = self.pool.active.lock().unwrap_or_else(|p| p.into_inner());
        a.transfers.retain(|t| t.0 != self.id);
        self.pool.resplit(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(node: Option<&str>, cluster: Option<&str>) -> Limits {
        Limits {
            bandwidth: node.map(|r| r.parse().unwrap()),
            cluster_bandwidth: cluster.map(|r| r.parse().unwrap()),
            ..Limits::default()
        }
    }

    #[test]
    fn the_cluster_cap_is_resplit_when_transfers_start_and_end() {
        assert!(Bandwidth::new(&limits(None, None)).join("a").is_none());
        let pool = Bandwidth::new(&limits(Some("400B/s"), Some("900B/s")));
        let a = pool.join("a").unwrap();
        assert_eq!(*a.rates.borrow(), Some(400), "the node cap is lower");
        let b = pool.join("b").unwrap();
        let c = pool.join("c").unwrap();
        assert_eq!(*a.rates.borrow(), Some(300));
        assert_eq!(*c.rates.borrow(), Some(300));
        // Two transfers on one node share its cap.
        let c2 = pool.join("c").unwrap();
        assert_eq!(*c2.rates.borrow(), Some(200));
        assert_eq!(*a.rates.borrow(), Some(225));
        drop(c2);
        drop(c);
        assert_eq!(*a.rates.borrow(), Some(400), "450 each, capped per node");
        assert!(a.rates.has_changed().unwrap());
        drop(b);
        assert_eq!(*a.rates.borrow(), Some(400));
    }
}
