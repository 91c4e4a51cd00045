//! The agent's main loop: read the request, answer `hello`, dispatch the operation, report.
//!
//! `hello` goes out before the request is even read, so a controller talking to a mismatched
//! binary learns it from the first line whatever the request looks like. The request's `op` is
//! parsed into the [`Operations`]' typed op (an unknown `op.op` name is reported with the names
//! this agent knows); the operation gets the request and an [`Events`] sink for progress,
//! checkpoints and log lines, and returns its result value.
//! Exit codes: 0 on success, [`EXIT_OP_ERROR`] when the operation (or the request) failed —
//! never 127 or 255, which shells and ssh reserve.
//!
//! An agent never outlives its controller: when an event cannot be written (the controller
//! was killed, the ssh connection dropped), [`serve`] stops at once with
//! [`EXIT_CONTROLLER_GONE`], and `cbk agent` exits without finishing the operation, as if it
//! had been killed too. Otherwise it would keep uploading or moving files while the
//! controller's rerun starts a new agent doing the same. A silent operation is watched with a
//! heartbeat (an empty progress event after [`HEARTBEAT`] without events).

use super::protocol::{AgentEvent, AgentRequest, PROTOCOL_VERSION};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Exit code when the operation failed (an `error` event was sent).
pub const EXIT_OP_ERROR: u8 = 3;

/// Exit code when the controller went away (nobody reads it; the agent just stops).
pub const EXIT_CONTROLLER_GONE: u8 = 4;

/// Longest silence before the agent checks that its controller still listens.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// Largest request accepted on stdin.
const MAX_REQUEST: u64 = 64 * 1024 * 1024;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub message: String,
    /// Worth retrying (network trouble) rather than a permanent failure.
    pub retryable: bool,
}

impl OpError {
    /// A permanent failure.
    pub fn fatal(message: impl Into<String>) -> Self {
        OpError {
            message: message.into(),
            retryable: false,
        }
    }
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        OpError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// Where an operation sends its events (JSON lines on stdout, flushed line by line).
#[derive(Clone)]
pub struct Events {
    out: Arc<Mutex<Box<dyn AsyncWrite + Send + Unpin>>>,
    /// Cancelled when a write failed: the controller went away.
    gone: CancellationToken,
    last_sent: Arc<std::sync::Mutex<tokio::time::Instant>>,
}

impl Events {
    fn new(out: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Events {
            out: Arc::new(Mutex::new(out)),
            gone: CancellationToken::new(),
            last_sent: Arc::new(std::sync::Mutex::new(tokio::time::Instant::now())),
        }
    }

    /// Sends one event. Fails only when the controller went away.
    pub async fn send(&self, event: &AgentEvent) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut out = self.out.lock().await;
        let sent = match out.write_all(&line).await {
            Ok(()) => out.flush().await,
            Err(e) => Err(e),
        };
        match &sent {
            Ok(()) => {
                *self.last_sent.lock().unwrap_or_else(|p| p.into_inner()) =
                    tokio::time::Instant::now()
            }
            Err(_) => self.gone.cancel(),
        }
        sent
    }

    /// Returns once the controller went away, sending a heartbeat after each `period` of
    /// silence to find out.
    async fn until_gone(&self, period: Duration) {
        loop {
            tokio::select! {
                _ = self.gone.cancelled() => return,
                _ = tokio::time::sleep(period) => {
                    let idle = self.last_sent.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                    if idle >= period {
                        let _ = self.progress(0).await;
                    }
                }
            }
        }
    }

    /// A log line for the operator.
    pub async fn log(&self, message: impl Into<String>) -> std::io::Result<()> {
        self.send(&AgentEvent::Log {
            message: message.into(),
        })
        .await
    }

    /// Bytes moved since the last progress event.
    pub async fn progress(&self, bytes: u64) -> std::io::Result<()> {
        self.send(&AgentEvent::Progress { bytes }).await
    }
}

/// The operations an agent serves: a typed op parsed from the request's `op` object, and how
/// to run one.
pub trait Operations: Send + Sync {
    /// The typed operation (an enum tagged by `op`).
    type Op: serde::de::DeserializeOwned + Send + 'static;
    /// Every operation's name (`op.op`), for the error naming an unknown one.
    fn names(&self) -> &'static [&'static str];
    /// Runs one request; the result is the `result` event's data.
    fn run(
        &self,
        request: AgentRequest<Self::Op>,
        events: Events,
    ) -> BoxFuture<'static, Result<serde_json::Value, OpError>>;
}

/// Runs one request read from `input`, writing events to `output`; returns the exit code.
pub async fn serve<O, R, W>(ops: &O, mut input: R, output: W) -> u8
where
    O: Operations,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let events = Events::new(Box::new(output));
    let hello = AgentEvent::Hello {
        version: crate::VERSION.to_string(),
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
    };
    if events.send(&hello).await.is_err() {
        return EXIT_OP_ERROR;
    }
    let outcome = tokio::select! {
        outcome = run_request(ops, &mut input, events.clone()) => outcome,
        _ = events.until_gone(HEARTBEAT) => return EXIT_CONTROLLER_GONE,
    };
    if events.gone.is_cancelled() {
        // The operation ended because its events could not be written.
        return EXIT_CONTROLLER_GONE;
    }
    let (event, code) = match outcome {
        Ok(data) => (AgentEvent::Result { data }, 0),
        Err(e) => (
            AgentEvent::Error {
                message: e.message,
                retryable: e.retryable,
            },
            EXIT_OP_ERROR,
        ),
    };
    if events.send(&event).await.is_err() {
        return EXIT_CONTROLLER_GONE;
    }
    code
}

async fn run_request<O: Operations, R: AsyncRead + Unpin>(
    ops: &O,
    input: &mut R,
    events: Events,
) -> Result<serde_json::Value, OpError> {
    let mut raw = Vec::new();
    input
        .take(MAX_REQUEST)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| OpError::fatal(format!("cannot read the request: {e}")))?;
    // The envelope first, so that a wrong protocol or an unknown operation is named as such.
    let request: AgentRequest<serde_json::Value> = serde_json::from_slice(&raw)
        .map_err(|e| OpError::fatal(format!("malformed request: {e}")))?;
    drop(raw);
    if request.protocol != PROTOCOL_VERSION {
        return Err(OpError::fatal(format!(
            "request uses protocol {}, this agent (cbk {}) speaks {PROTOCOL_VERSION}",
            request.protocol,
            crate::VERSION
        )));
    }
    let name = request
        .op
        .get("op")
        .and_then(|v| v.as_str())
        .ok_or_else(|| OpError::fatal("the request's `op` has no `op` name"))?
        .to_string();
    if !ops.names().contains(&name.as_str()) {
        return Err(OpError::fatal(format!(
            "unknown operation `{name}` (this agent knows: {})",
            ops.names().join(", ")
        )));
    }
    let AgentRequest {
        protocol,
        store,
        credentials,
        identity,
        op,
    } = request;
    let op: O::Op =
        serde_json::from_value(op).map_err(|e| OpError::fatal(format!("bad parameters: {e}")))?;
    let request = AgentRequest {
        protocol,
        store,
        credentials,
        identity,
        op,
    };
    // A panicking operation becomes an error event instead of a silent death.
    let task = tokio::spawn(ops.run(request, events));
    match task.await {
        Ok(r) => r,
        Err(e) => Err(OpError::fatal(format!("operation `{name}` crashed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ops::Agent;

    /// Test operations: `echo` returns its value, `boom` panics, `hang` never ends or speaks.
    #[derive(serde::Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum TestOp {
        Echo { value: serde_json::Value },
        Boom,
        Hang,
    }

    struct TestOps;

    impl Operations for TestOps {
        type Op = TestOp;
        fn names(&self) -> &'static [&'static str] {
            &["boom", "echo", "hang"]
        }
        fn run(
            &self,
            request: AgentRequest<TestOp>,
            _: Events,
        ) -> BoxFuture<'static, Result<serde_json::Value, OpError>> {
            match request.op {
                TestOp::Echo { value } => Box::pin(async move { Ok(value) }),
                TestOp::Boom => Box::pin(async { panic!("kaboom") }),
                TestOp::Hang => Box::pin(futures::future::pending()),
            }
        }
    }

    async fn run<O: Operations>(ops: &O, input: &str) -> (u8, Vec<serde_json::Value>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let code = serve(ops, input.as_bytes(), server).await;
        let mut out = String::new();
        let mut client = client;
        client.read_to_string(&mut out).await.expect("read events");
        let events = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        (code, events)
    }

    #[tokio::test]
    async fn ping_says_hello_then_result() {
        let (code, ev) = run(&Agent, r#"{"protocol":1,"op":{"op":"ping"}}"#).await;
        assert_eq!(code, 0);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0]["event"], "hello");
        assert_eq!(ev[0]["protocol"], PROTOCOL_VERSION);
        assert_eq!(ev[0]["version"], crate::VERSION);
        assert_eq!(ev[1]["event"], "result");
        assert_eq!(ev[1]["data"]["pong"], true);
        assert_eq!(ev[1]["data"]["has_credentials"], false);
    }

    #[tokio::test]
    async fn credentials_are_never_echoed() {
        let (code, ev) = run(
            &Agent,
            r#"{"protocol":1,"credentials":{"access_key_id":"AKIDSECRET1","secret_access_key":"SHH-SECRET-2"},"op":{"op":"ping"}}"#,
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(ev[1]["data"]["has_credentials"], true);
        let all = serde_json::to_string(&ev).expect("json");
        assert!(!all.contains("SECRET"), "{all}");
    }

    /// Serves `op` and drops the controller's end right after `hello`: returns how serve ended
    /// and how long it took.
    async fn controller_leaves<O: Operations + 'static>(
        ops: O,
        op: &'static str,
    ) -> (u8, Duration) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let started = tokio::time::Instant::now();
        let serving = tokio::spawn(async move { serve(&ops, op.as_bytes(), server).await });
        let mut hello = [0u8; 256];
        let n = client.read(&mut hello).await.expect("hello");
        assert!(String::from_utf8_lossy(&hello[..n]).contains("\"hello\""));
        drop(client);
        let code = tokio::time::timeout(HEARTBEAT * 3, serving)
            .await
            .expect("serve must stop once the controller is gone")
            .expect("join");
        (code, started.elapsed())
    }

    #[tokio::test]
    async fn an_operation_stops_when_the_controller_goes_away() {
        // `sleep` reports progress every 100 ms: the first failed write stops it.
        let (code, took) =
            controller_leaves(Agent, r#"{"protocol":1,"op":{"op":"sleep","ms":60000}}"#).await;
        assert_eq!(code, EXIT_CONTROLLER_GONE);
        assert!(took < Duration::from_secs(1), "{took:?}");
        // A silent operation is found out by the heartbeat.
        let (code, took) = controller_leaves(TestOps, r#"{"protocol":1,"op":{"op":"hang"}}"#).await;
        assert_eq!(code, EXIT_CONTROLLER_GONE);
        assert!(took >= HEARTBEAT && took < HEARTBEAT * 2, "{took:?}");
    }

    #[tokio::test]
    async fn sleep_reports_progress_and_result() {
        let (code, ev) = run(&Agent, r#"{"protocol":1,"op":{"op":"sleep","ms":250}}"#).await;
        assert_eq!(code, 0);
        assert_eq!(ev[1]["event"], "log");
        assert_eq!(ev[1]["message"], "sleeping 250 ms");
        let progress = ev.iter().filter(|e| e["event"] == "progress").count();
        assert_eq!(progress, 3, "{ev:?}");
        assert_eq!(ev.last().expect("last")["data"]["slept_ms"], 250);
    }

    #[tokio::test]
    async fn errors_exit_3_with_an_error_event() {
        let cases = [
            ("not json", "malformed request"),
            (
                r#"{"protocol":99,"op":{"op":"ping"}}"#,
                "request uses protocol 99",
            ),
            (r#"{"protocol":1,"op":{}}"#, "has no `op` name"),
            (
                r#"{"protocol":1,"op":{"op":"nope"}}"#,
                "unknown operation `nope` (this agent knows: backup_upload, cleanup, clear_commitlog, \
                 compare_live, fetch, hand_over, inspect, move, ping, sleep)",
            ),
            (r#"{"protocol":1,"op":{"op":"sleep"}}"#, "bad parameters"),
        ];
        for (input, want) in cases {
            let (code, ev) = run(&Agent, input).await;
            assert_eq!(code, EXIT_OP_ERROR, "{input}");
            assert_eq!(ev[0]["event"], "hello");
            let last = ev.last().expect("an error event");
            assert_eq!(last["event"], "error");
            let msg = last["message"].as_str().expect("message");
            assert!(msg.contains(want), "{input}: {msg}");
            assert_eq!(last["retryable"], false);
        }
    }

    #[tokio::test]
    async fn typed_ops_are_dispatched_and_panics_reported() {
        let r = TestOps;
        let (code, ev) = run(&r, r#"{"protocol":1,"op":{"op":"echo","value":[1,2]}}"#).await;
        assert_eq!(code, 0);
        assert_eq!(ev[1]["data"], serde_json::json!([1, 2]));
        let (code, ev) = run(&r, r#"{"protocol":1,"op":{"op":"boom"}}"#).await;
        assert_eq!(code, EXIT_OP_ERROR);
        assert!(
            ev[1]["message"]
                .as_str()
                .expect("msg")
                .starts_with("operation `boom` crashed"),
            "{ev:?}"
        );
    }
}
