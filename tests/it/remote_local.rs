//! The local transport: same command lines as over SSH, timeouts that kill whole process
//! groups, and the agent protocol (hello check, events, exit codes) against the real binary.

use cbk::remote::local::LocalTransport;
use cbk::remote::{Cmd, RemoteError, Sudo, Transport};
use std::time::{Duration, Instant};

use crate::support::CBK;

fn local() -> LocalTransport {
    LocalTransport::new("here", Sudo::default()).with_agent_path(CBK)
}

#[tokio::test]
async fn commands_round_trip() {
    let t = local();
    let hostile = "a b; echo pwned $(id) `id` 'q'\nnext";
    let out = t
        .exec(&Cmd::new("printf").args(["%s", hostile]))
        .await
        .expect("printf");
    assert_eq!((out.code, out.stdout_str()), (0, hostile.to_string()));

    let out = t
        .exec(&Cmd::shell("tr a-z A-Z; echo oops >&2; exit 4").stdin(b"node".to_vec()))
        .await
        .expect("snippet");
    assert_eq!(out.code, 4);
    assert_eq!(out.stdout_str(), "NODE");
    assert_eq!(out.stderr_str(), "oops\n");
    let e = out
        .clone()
        .check("here", &Cmd::shell("x"))
        .expect_err("exit 4");
    assert_eq!(e.to_string(), "on here: `x` exited with 4: oops");

    // Without stdin the command reads EOF instead of hanging on the terminal.
    let out = t.exec(&Cmd::new("cat")).await.expect("cat");
    assert_eq!((out.code, out.stdout.len()), (0, 0));

    let e = t
        .exec(&Cmd::new("cbk-no-such-command"))
        .await
        .expect_err("not found");
    assert!(
        e.to_string()
            .starts_with("on here: command not found: `cbk-no-such-command`"),
        "{e}"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let late = dir.path().join("late");
    let t = local();
    let start = Instant::now();
    // The snippet starts a child of its own; both must die.
    let e = t
        .exec(
            &Cmd::shell(format!(
                "(sleep 2; touch {late}) & sleep 30",
                late = cbk::remote::quote(&late.display().to_string())
            ))
            .timeout(Duration::from_millis(300)),
        )
        .await
        .expect_err("timed out");
    assert!(matches!(e, RemoteError::Timeout { .. }), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!late.exists(), "a child of the timed-out command survived");
}

#[tokio::test]
async fn agent_ping_and_errors() {
    let t = local();
    let mut s = t
        .agent(&serde_json::json!({"protocol": 1, "op": {"op": "ping"}}))
        .await
        .expect("agent");
    let ev = s.next_event().await.expect("event").expect("result");
    assert_eq!(ev["event"], "result");
    assert_eq!(ev["data"]["pong"], true);
    assert!(s.next_event().await.expect("eof").is_none());
    assert_eq!(s.finish().await.expect("exit"), 0);

    let mut s = t
        .agent(&serde_json::json!({"protocol": 1, "op": {"op": "sleep", "ms": "x"}}))
        .await
        .expect("agent");
    let ev = s.next_event().await.expect("event").expect("error");
    assert_eq!(ev["event"], "error");
    assert!(
        ev["message"]
            .as_str()
            .expect("message")
            .starts_with("bad parameters"),
        "{ev}"
    );
    assert_eq!(s.finish().await.expect("exit"), 3);
}

/// Writes an executable script standing in for a foreign agent binary.
fn fake_agent(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-cbk");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn start_err(r: cbk::remote::RemoteResult<Box<dyn cbk::remote::AgentSession>>) -> String {
    match r {
        Ok(_) => panic!("agent started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn agent_handshake_failures_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let req = serde_json::json!({"protocol": 1, "op": {"op": "ping"}});

    let other = fake_agent(
        dir.path(),
        r#"echo '{"event":"hello","version":"9.9.9","protocol":99,"pid":1}'; cat > "$0.got""#,
    );
    let t = LocalTransport::new("here", Sudo::default()).with_agent_path(&other);
    let msg = start_err(t.agent(&req).await);
    assert_eq!(
        msg,
        format!(
            "on here: agent error: the agent (cbk 9.9.9) speaks protocol 99, this cbk ({}) speaks 1; \
             install the same cbk version on the node or point connection.agent_path at it",
            cbk::VERSION
        )
    );

    // The request (with its credentials) never reached the mismatched agent.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = std::fs::read(dir.path().join("fake-cbk.got")).unwrap_or_default();
    assert!(
        got.is_empty(),
        "request sent: {}",
        String::from_utf8_lossy(&got)
    );

    let crashing = fake_agent(dir.path(), "echo 'segfault or so' >&2; exit 42");
    let t = LocalTransport::new("here", Sudo::default()).with_agent_path(&crashing);
    let msg = start_err(t.agent(&req).await);
    assert_eq!(
        msg,
        "on here: agent error: agent ended before saying hello (exit code 42): segfault or so"
    );

    let chatty = fake_agent(dir.path(), "echo 'Welcome to node1!'");
    let t = LocalTransport::new("here", Sudo::default()).with_agent_path(&chatty);
    let msg = start_err(t.agent(&req).await);
    assert!(
        msg.starts_with("on here: agent error: unreadable event"),
        "{msg}"
    );
}
