//! The agent's bandwidth limit: one shared pacer for every store transfer of an operation
//! (downloads of `fetch`, uploads of `backup_upload`), whose rate the controller may change
//! while the operation runs (`limits.cluster_bandwidth` is re-split among the agents
//! transferring whenever one starts or ends; see [`crate::tasks::bandwidth`]).
//!
//! Pacing, not a token bucket with a burst: each chunk books `bytes / rate` seconds of a shared
//! virtual clock that never runs behind real time, and its sender waits until its booking ends.
//! So the bytes in any window stay within one chunk of `rate × window`, and an idle spell earns
//! no credit. (The `governor` crate fixes its quota at construction, so a changing rate would
//! need a new limiter and its own bookkeeping per change; this is the few lines needed.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes per second shared by every transfer of one agent; 0 = unlimited.
#[derive(Debug, Default)]
pub struct Throttle {
    rate: AtomicU64,
    /// End of the last booking (the virtual clock).
    next: Mutex<Option<Instant>>,
}

impl Throttle {
    /// A throttle at `rate` bytes per second (`None`: unlimited).
    pub fn new(rate: Option<u64>) -> Self {
        let t = Throttle::default();
        t.set_rate(rate);
        t
    }

    /// Changes the rate; transfers under way take it from their next chunk.
    pub fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
    }

    /// The current rate (`None`: unlimited).
    pub fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    /// Books `bytes` and returns when the sender may go on (`None`: at once).
    fn book(&self, bytes: u64) -> Option<Instant> {
        let rate = self.rate()?;
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let start = next.map_or(now, |n| n.max(now));
        let end = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
        *next = Some(end);
        Some(end)
    }

    /// Waits (async) until `bytes` more may have been moved.
    pub async fn take(&self, bytes: u64) {
        if let Some(end) = self.book(bytes) {
            tokio::time::sleep_until(end.into()).await;
        }
    }

    /// Waits (on a blocking thread) until `bytes` more may have been moved.
    pub fn take_blocking(&self, bytes: u64) {
        if let Some(end) = self.book(bytes) {
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
        }
    }
}

/// A writer paced by a [`Throttle`] (the upload side: compressed, sealed bytes to the store).
pub struct Throttled<W> {
    inner: W,
    throttle: std::sync::Arc<Throttle>,
}

impl<W> Throttled<W> {
    pub fn new(inner: W, throttle: std::sync::Arc<Throttle>) -> Self {
        Throttled { inner, throttle }
    }
}

impl<W: std::io::Write> std::io::Write for Throttled<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.throttle.take_blocking(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_to_the_rate_and_follows_changes() {
        let t = Throttle::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..10 {
            t.take(50_000).await; // 0.5 MB at 1 MB/s
        }
        let took = start.elapsed().as_secs_f64();
        assert!((0.45..0.7).contains(&took), "{took}");
        t.set_rate(Some(2_000_000));
        let start = Instant::now();
        for _ in 0..10 {
            t.take(50_000).await; // 0.5 MB at 2 MB/s
        }
        let took = start.elapsed().as_secs_f64();
        assert!((0.2..0.4).contains(&took), "{took}");
        t.set_rate(None);
        let start = Instant::now();
        t.take(1 << 30).await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
