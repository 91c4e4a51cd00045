//! `ping` and `sleep`: operations that touch nothing on the node (checking an agent, standing
//! in for a long transfer in tests).

use super::super::protocol::{PROTOCOL_VERSION, PingResult, SleepRequest, SleepResult};
use super::super::serve::Events;
use super::{OpError, OpResult};
use std::time::Duration;

/// The node's hostname (Linux: /proc; elsewhere the environment).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Effective uid, read from /proc (no unsafe libc call needed).
fn euid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// `ping`: who and where the agent is; never echoes credentials, only whether any came.
pub fn ping(has_credentials: bool) -> PingResult {
    PingResult {
        pong: true,
        version: crate::VERSION.to_string(),
        protocol: PROTOCOL_VERSION,
        hostname: hostname(),
        uid: euid(),
        pid: std::process::id(),
        platform: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        has_credentials,
    }
}

/// `sleep`: waits `ms`, logging once and reporting progress every 100 ms.
pub async fn sleep(req: SleepRequest, events: &Events) -> OpResult<SleepResult> {
    let io = |e: std::io::Error| OpError::retryable(format!("controller went away: {e}"));
    events
        .log(format!("sleeping {} ms", req.ms))
        .await
        .map_err(io)?;
    let total = Duration::from_millis(req.ms);
    let start = tokio::time::Instant::now();
    loop {
        let left = total.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        events.progress(0).await.map_err(io)?;
    }
    Ok(SleepResult { slept_ms: req.ms })
}
