//! The connections of one apply, at most `cap` open at once (`limits.parallelism`).
//!
//! A host's transport is made when a task first needs it and kept for the host's next task. An
//! ssh connection is a master process on the controller and a session on the node, so keeping
//! every host's open for the whole run makes an apply over hundreds of hosts hold hundreds of
//! them. Before a host whose connection is closed is handed out, the pool closes the least
//! recently used idle connections beyond `cap` (never one with a command or agent session
//! running); the closed transport reconnects by itself if it is used again. Tasks run at most
//! `parallelism` at once, so `cap = parallelism` always leaves room for the running ones.

use super::{RemoteResult, Transport};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Mutex;

struct Entry {
    transport: Arc<dyn Transport>,
    /// Handed out and not closed by the pool since (it may not have connected yet).
    claimed: bool,
    /// When the pool last handed it out.
    touched: Instant,
}

impl Entry {
    fn open(&self) -> bool {
        self.claimed || self.transport.connected()
    }
}

/// The transports of one apply, with a limit on open connections.
pub struct Pool {
    cap: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Pool {
    /// A pool keeping at most `cap` (at least 1) connections open.
    pub fn new(cap: usize) -> Pool {
        Pool {
            cap: cap.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The transport of `host` (made by `make` the first time), after closing idle connections
    /// of other hosts if opening this one would exceed the limit.
    pub async fn get(
        &self,
        host: &str,
        make: impl FnOnce() -> RemoteResult<Arc<dyn Transport>>,
    ) -> RemoteResult<Arc<dyn Transport>> {
        let mut map = self.entries.lock().await;
        let entry = match map.entry(host.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Entry {
                transport: make()?,
                claimed: false,
                touched: Instant::now(),
            }),
        };
        let was_open = entry.open();
        entry.claimed = true;
        entry.touched = Instant::now();
        let transport = entry.transport.clone();
        if was_open {
            return Ok(transport);
        }
        let open = map.values().filter(|e| e.open()).count();
        if open > self.cap {
            let mut idle: Vec<(Instant, &String)> = map
                .iter()
                .filter(|(h, e)| h.as_str() != host && e.open())
                .filter_map(|(h, e)| e.transport.idle_since().map(|t| (t.max(e.touched), h)))
                .collect();
            idle.sort();
            let close: Vec<String> = idle
                .into_iter()
                .take(open - self.cap)
                .map(|(_, h)| h.clone())
                .collect();
            // Closed under the lock, so a concurrent `get` counts them as closed only once
            // they are.
            for h in close {
                if let Some(e) = map.get_mut(&h) {
                    e.claimed = false;
                    let _ = e.transport.close().await;
                }
            }
        }
        Ok(transport)
    }

    /// Closes every connection.
    pub async fn close_all(&self) {
        for e in self.entries.lock().await.values_mut() {
            e.claimed = false;
            let _ = e.transport.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::{AgentSession, Cmd, Output};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A transport whose connection state the test sets.
    struct Fake {
        host: String,
        connected: AtomicBool,
        busy: AtomicBool,
        closes: AtomicUsize,
        since: Instant,
    }

    #[async_trait::async_trait]
    impl Transport for Fake {
        fn host(&self) -> &str {
            &self.host
        }
        async fn exec(&self, _: &Cmd) -> RemoteResult<Output> {
            unreachable!()
        }
        async fn agent(&self, _: &serde_json::Value) -> RemoteResult<Box<dyn AgentSession>> {
            unreachable!()
        }
        async fn close(&self) -> RemoteResult<()> {
            self.connected.store(false, Ordering::SeqCst);
            self.closes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn connected(&self) -> bool {
            self.connected.load(Ordering::SeqCst)
        }
        fn idle_since(&self) -> Option<Instant> {
            (!self.busy.load(Ordering::SeqCst)).then_some(self.since)
        }
    }

    fn fake(host: &str) -> Arc<Fake> {
        Arc::new(Fake {
            host: host.into(),
            connected: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            closes: AtomicUsize::new(0),
            since: Instant::now(),
        })
    }

    #[tokio::test]
    async fn closes_the_least_recently_used_idle_connections_beyond_the_cap() {
        let pool = Pool::new(2);
        let hosts: Vec<Arc<Fake>> = ["a", "b", "c", "d"].iter().map(|h| fake(h)).collect();
        let get = |i: usize| {
            let t = hosts[i].clone();
            let pool = &pool;
            async move {
                let got = pool.get(&t.host.clone(), || Ok(t.clone())).await.unwrap();
                t.connected.store(true, Ordering::SeqCst); // the task uses it
                got
            }
        };
        get(0).await;
        get(1).await;
        assert_eq!(hosts[0].closes.load(Ordering::SeqCst), 0, "within the cap");
        hosts[1].busy.store(true, Ordering::SeqCst);
        get(1).await; // b again: already open, nothing closes
        get(2).await; // c: a is the least recently used idle one
        assert_eq!(hosts[0].closes.load(Ordering::SeqCst), 1);
        assert_eq!(hosts[1].closes.load(Ordering::SeqCst), 0, "b is busy");
        get(3).await; // d: b is busy, so c goes
        assert_eq!(hosts[1].closes.load(Ordering::SeqCst), 0, "b is busy");
        assert_eq!(hosts[2].closes.load(Ordering::SeqCst), 1);
        let open = hosts.iter().filter(|h| h.connected()).count();
        assert_eq!(open, 2, "b and d stay open");
        pool.close_all().await;
        assert!(hosts.iter().all(|h| !h.connected()));
    }
}
