//! The SSH transport and the agent over real sshd servers (the test cluster): round trips,
//! validation before any remote call, host down, master killed, sudo, agent auto-install, and
//! secrets never visible in any process's argv or environment.

use crate::support::cluster::TestCluster;
use cbk::plan::model::{ConnectionConfig, HostSpec};
use cbk::remote::ssh::{SshSettings, SshTransport};
use cbk::remote::{Cmd, RemoteError, Transport, validate};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::CBK;

fn transport(c: &TestCluster, host: &str) -> SshTransport {
    transport_with(c, host, c.connection())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_transport_kinds() {
    let c = TestCluster::start(1);
    let ssh = cbk::remote::for_host(&c.connection(), &c.host_spec("node1")).expect("ssh");
    let out = ssh.exec(&Cmd::new("hostname")).await.expect("hostname");
    assert_eq!(out.stdout_str().trim(), "node1");
    ssh.close().await.expect("close");
    let local = cbk::remote::for_host(
        &ConnectionConfig {
            transport: cbk::plan::model::TransportKind::Local,
            ..Default::default()
        },
        &c.host_spec("node1"),
    )
    .expect("local");
    let out = local.exec(&Cmd::new("hostname")).await.expect("hostname");
    assert_ne!(
        out.stdout_str().trim(),
        "node1",
        "local ran on the fake host"
    );
    assert_eq!(local.host(), "node1");
}

fn transport_with(c: &TestCluster, host: &str, conn: ConnectionConfig) -> SshTransport {
    let mut s = SshSettings::from_plan(&conn, &c.host_spec(host)).expect("valid settings");
    s.local_agent_binary = Some(PathBuf::from(CBK));
    SshTransport::new(host, s).expect("transport")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_round_trip_on_every_host() {
    let c = TestCluster::start(3);
    for host in c.hosts() {
        let t = transport(&c, &host);
        let start = Instant::now();
        let out = t.exec(&Cmd::new("hostname")).await.expect("hostname");
        let connect = start.elapsed();
        let start = Instant::now();
        for _ in 0..10 {
            t.exec(&Cmd::new("true")).await.expect("true");
        }
        eprintln!(
            "{host}: connect + first command {connect:?}, then {:?} per command",
            start.elapsed() / 10
        );
        assert_eq!(out.code, 0);
        assert_eq!(out.stdout_str().trim(), host);

        // Arguments arrive byte for byte, nothing in them is executed.
        let hostile = "a b; touch /var/lib/cassandra/pwned $(touch /var/lib/cassandra/pwned2) `id` 'q' \"d\"\nnext";
        let out = t
            .exec(&Cmd::new("printf").args(["%s", hostile]))
            .await
            .expect("printf");
        assert_eq!(out.stdout_str(), hostile);
        assert!(!c.data_dir(&host).join("pwned").exists());
        assert!(!c.data_dir(&host).join("pwned2").exists());

        // stdin in, stdout and stderr out, exit codes kept.
        let out = t
            .exec(
                &Cmd::shell("cat > /var/lib/cassandra/in.txt; echo err >&2; exit 3")
                    .stdin(b"hello node".to_vec()),
            )
            .await
            .expect("shell");
        assert_eq!(out.code, 3);
        assert_eq!(out.stderr_str(), "err\n");
        assert_eq!(
            std::fs::read(c.data_dir(&host).join("in.txt")).expect("written on the node"),
            b"hello node"
        );
        let e = t
            .exec(&Cmd::new("no-such-command-cbk"))
            .await
            .expect_err("127 is an error");
        assert!(matches!(e, RemoteError::NotFound { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&format!(
                "on {host}: command not found: `no-such-command-cbk`"
            )),
            "{e}"
        );
        t.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_stay_below_max_sessions() {
    let c = TestCluster::start(1);
    let t = std::sync::Arc::new(transport(&c, "node1"));
    // sshd allows 10 sessions per connection; 24 at once must all succeed (queued at 8).
    let start = Instant::now();
    let runs = (0..24).map(|i| {
        let t = t.clone();
        async move { t.exec(&Cmd::shell(format!("sleep 0.3; echo {i}"))).await }
    });
    let outs = futures::future::join_all(runs).await;
    for (i, o) in outs.into_iter().enumerate() {
        assert_eq!(
            o.expect("no session refused").stdout_str().trim(),
            i.to_string()
        );
    }
    // 24 commands of 0.3 s in batches of 8 -> at least 0.9 s.
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    t.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_rejected_before_any_remote_call() {
    let c = TestCluster::start(1);
    let marker = c.base().join("proxy-ran");
    let hostile_address = format!("-oProxyCommand=touch {}", marker.display());
    let before = sshd_sessions(&c);
    for (what, spec, conn) in [
        (
            "host name",
            HostSpec {
                name: "node1".into(),
                address: Some(hostile_address.clone()),
                ..Default::default()
            },
            c.connection(),
        ),
        (
            "user name",
            HostSpec {
                name: "node1".into(),
                user: Some("root; touch /tmp/x".into()),
                ..Default::default()
            },
            c.connection(),
        ),
        (
            "user name",
            c.host_spec("node1"),
            ConnectionConfig {
                sudo_user: Some("$(id)".into()),
                ..c.connection()
            },
        ),
        (
            "path",
            c.host_spec("node1"),
            ConnectionConfig {
                agent_path: Some("/opt/cbk\n/bin/cbk".into()),
                ..c.connection()
            },
        ),
    ] {
        let e = SshTransport::from_plan(&conn, &spec).expect_err("hostile settings refused");
        assert!(
            matches!(&e, RemoteError::Invalid { what: w, .. } if *w == what),
            "{e:?}"
        );
    }
    for name in ["a b; rm -rf /", "$(id)", "`id`", "x\ny", "it's"] {
        assert!(validate::keyspace(name).is_err());
        assert!(validate::table(name).is_err());
        assert!(validate::snapshot_tag(name).is_err());
    }
    assert!(!marker.exists(), "a ProxyCommand ran");
    // No connection reached the node: no ssh session process was started there.
    assert_eq!(sshd_sessions(&c), before);
}

/// Number of sshd session processes of the cluster's node1 (children of its listener).
fn sshd_sessions(c: &TestCluster) -> usize {
    let pid = std::fs::read_to_string(c.base().join("hosts/node1/sshd.pid")).expect("pid");
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", pid.trim()))
        .unwrap_or_default();
    children.split_whitespace().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_down_fails_clearly_within_the_connect_timeout() {
    let c = TestCluster::start(1);
    let conn = ConnectionConfig {
        connect_timeout: Some("2s".parse().unwrap()),
        ..c.connection()
    };
    // Nothing listens there: refused at once.
    let spec = HostSpec {
        name: "node9".into(),
        address: Some(c.unused_address()),
        ..Default::default()
    };
    let t = SshTransport::from_plan(&conn, &spec).expect("settings");
    let start = Instant::now();
    let e = t.exec(&Cmd::new("true")).await.expect_err("down");
    let refused = start.elapsed();
    let msg = e.to_string();
    assert!(matches!(e, RemoteError::Connect { .. }), "{e:?}");
    assert!(msg.starts_with("cannot connect to node9: "), "{msg}");
    assert!(msg.contains("Connection refused"), "{msg}");
    assert!(refused < Duration::from_secs(2), "{refused:?}");

    // Something accepts TCP but never speaks SSH (a hung host): the timeout applies.
    let silent = std::net::TcpListener::bind(format!("{}:0", c.unused_address())).expect("bind");
    let spec = HostSpec {
        name: "hung".into(),
        address: Some(c.unused_address()),
        port: Some(silent.local_addr().expect("addr").port()),
        ..Default::default()
    };
    let t = SshTransport::from_plan(&conn, &spec).expect("settings");
    let start = Instant::now();
    let e = t.exec(&Cmd::new("true")).await.expect_err("hung");
    let hung = start.elapsed();
    assert!(matches!(e, RemoteError::Connect { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cannot connect to hung: "), "{e}");
    assert!(
        hung >= Duration::from_millis(1900) && hung < Duration::from_secs(6),
        "{hung:?}"
    );
    eprintln!("host down: refused after {refused:?}, silent host after {hung:?}: {e}");
}

/// The pid of the ssh master behind `t`.
async fn master_pid(t: &SshTransport) -> u32 {
    let sock = t.control_socket().await.expect("connected");
    let out = std::process::Command::new("ssh")
        .arg("-S")
        .arg(&sock)
        .args(["-O", "check", "x"])
        .output()
        .expect("ssh -O check");
    let text = String::from_utf8_lossy(&out.stderr);
    let pid = text
        .split("pid=")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok());
    pid.unwrap_or_else(|| panic!("no master pid in {text:?}"))
}

fn kill9(pid: u32) {
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_master_is_rebuilt_by_the_next_command() {
    let c = TestCluster::start(1);
    let t = std::sync::Arc::new(transport(&c, "node1"));
    t.exec(&Cmd::new("true")).await.expect("first");
    let first_master = master_pid(&t).await;

    // A command running while the master dies fails as a lost connection...
    let running = {
        let t = t.clone();
        tokio::spawn(async move { t.exec(&Cmd::new("sleep").arg("5")).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill9(first_master);
    let e = running.await.expect("join").expect_err("cut off");
    assert!(matches!(e, RemoteError::Disconnected { .. }), "{e:?}");

    // ... and the next command reconnects.
    let out = t.exec(&Cmd::new("hostname")).await.expect("reconnected");
    assert_eq!(out.stdout_str().trim(), "node1");
    let second_master = master_pid(&t).await;
    assert_ne!(first_master, second_master);

    // An idempotent command cut off mid-run is run again on a new master.
    let running = {
        let t = t.clone();
        tokio::spawn(async move {
            t.exec(&Cmd::shell("sleep 1; echo finished").idempotent())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    kill9(second_master);
    let out = running.await.expect("join").expect("retried");
    assert_eq!(out.stdout_str(), "finished\n");
    let third_master = master_pid(&t).await;
    assert_ne!(third_master, second_master);

    // A master that died while idle is replaced transparently.
    kill9(third_master);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = t
        .exec(&Cmd::new("hostname"))
        .await
        .expect("after idle death");
    assert_eq!(out.stdout_str().trim(), "node1");
    assert_ne!(master_pid(&t).await, third_master);
    t.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_runs_as_the_sudo_user() {
    let c = TestCluster::start(1);
    let t = transport_with(
        &c,
        "node1",
        ConnectionConfig {
            sudo: true,
            sudo_user: Some("cassandra".into()),
            ..c.connection()
        },
    );
    let elevated = t
        .exec(&Cmd::new("id").arg("-un").sudo())
        .await
        .expect("sudo id");
    assert_eq!(
        elevated.stdout_str().trim(),
        "cassandra",
        "{}",
        elevated.stderr_str()
    );
    let plain = t.exec(&Cmd::new("id").arg("-un")).await.expect("id");
    assert_eq!(plain.stdout_str().trim(), "root");
    let snippet = t
        .exec(&Cmd::shell("id -un; whoami").sudo())
        .await
        .expect("sudo snippet");
    assert_eq!(snippet.stdout_str(), "cassandra\ncassandra\n");
    t.close().await.expect("close");

    // The agent runs as the sudo user too.
    let cassandra_uid = c
        .sh("node1", "id -u cassandra")
        .trim()
        .parse::<u64>()
        .expect("uid");
    let t = transport_with(
        &c,
        "node1",
        ConnectionConfig {
            sudo_user: Some("cassandra".into()),
            agent_path: Some(CBK.to_string()),
            ..c.connection()
        },
    );
    let (events, code) = drain(
        t.agent(&serde_json::json!({"protocol": 1, "op": {"op": "ping"}}))
            .await
            .expect("agent under sudo"),
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(events[0]["data"]["uid"], cassandra_uid);
    t.close().await.expect("close");

    // Auto-install goes to the sudo user's own cache; a user without a home gets a clear error.
    let home = c.sh("node1", "getent passwd cassandra | cut -d: -f6");
    let home = home.trim();
    if !std::path::Path::new(home).exists() {
        let t = transport_with(
            &c,
            "node1",
            ConnectionConfig {
                sudo_user: Some("cassandra".into()),
                ..c.connection()
            },
        );
        let msg = match t
            .agent(&serde_json::json!({"protocol": 1, "op": {"op": "ping"}}))
            .await
        {
            Ok(_) => panic!("installed into a missing home"),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.starts_with(&format!(
                "on node1: agent error: installing cbk into {home}/.cache/cbk/{}-",
                cbk::VERSION
            )),
            "{msg}"
        );
        assert!(msg.contains("Permission denied"), "{msg}");
        t.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_remote_command() {
    let c = TestCluster::start(1);
    let t = transport(&c, "node1");
    let start = Instant::now();
    // A unique duration marks this test's remote sleep (the process table is shared).
    let secs = format!(
        "3{}.{:06}",
        rand::random::<u8>() % 10,
        rand::random::<u32>() % 1_000_000
    );
    let e = t
        .exec(
            &Cmd::shell(format!("sleep {secs}; touch /var/lib/cassandra/late"))
                .timeout(Duration::from_millis(500)),
        )
        .await
        .expect_err("timed out");
    assert!(matches!(e, RemoteError::Timeout { .. }), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // `[s]` keeps the pattern from matching the shell running pgrep.
    let left = c.sh("node1", &format!("pgrep -fc '[s]leep {secs}' || true"));
    assert_eq!(left.trim(), "0", "the remote sleep survived");
    assert!(!c.data_dir("node1").join("late").exists());
    t.close().await.expect("close");
}

/// Reads every event of an agent session (after hello) and its exit code.
async fn drain(mut s: Box<dyn cbk::remote::AgentSession>) -> (Vec<serde_json::Value>, i32) {
    let mut events = Vec::new();
    while let Some(ev) = s.next_event().await.expect("event") {
        events.push(ev);
    }
    (events, s.finish().await.expect("finish"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_round_trip_installs_the_binary_once_per_host() {
    let c = TestCluster::start(2);
    let installed = |host: &str| -> Vec<PathBuf> {
        let root = c.cache_dir(host).join("cbk");
        std::fs::read_dir(&root)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("cbk"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(installed("node1").is_empty() && installed("node2").is_empty());
    assert_eq!(
        c.sh("node1", "command -v cbk || echo missing").trim(),
        "missing"
    );

    let t = transport(&c, "node1");
    let start = Instant::now();
    let s = t
        .agent(&serde_json::json!({"protocol": 1, "op": {"op": "ping"}}))
        .await
        .expect("agent starts");
    let (events, code) = drain(s).await;
    let first = start.elapsed();
    assert_eq!(code, 0);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "result");
    assert_eq!(events[0]["data"]["pong"], true);
    assert_eq!(events[0]["data"]["hostname"], "node1");
    assert_eq!(events[0]["data"]["version"], cbk::VERSION);

    // Installed on node1 only, byte-identical to the controller's binary.
    let on_node1 = installed("node1");
    assert_eq!(on_node1.len(), 1, "{on_node1:?}");
    assert_eq!(
        std::fs::read(&on_node1[0]).expect("installed binary"),
        std::fs::read(CBK).expect("cbk")
    );
    let dir_name = on_node1[0]
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .expect("dir");
    assert!(
        dir_name.starts_with(&format!("{}-", cbk::VERSION)),
        "{dir_name}"
    );
    assert!(installed("node2").is_empty(), "node2 got a binary too");
    let mtime = std::fs::metadata(&on_node1[0])
        .and_then(|m| m.modified())
        .expect("mtime");

    // A second controller finds it there and does not upload again.
    let t2 = transport(&c, "node1");
    let start = Instant::now();
    let (events, code) = drain(
        t2.agent(&serde_json::json!({"protocol": 1, "op": {"op": "ping"}}))
            .await
            .expect("agent"),
    )
    .await;
    let again = start.elapsed();
    assert_eq!(
        (code, events[0]["data"]["pong"].clone()),
        (0, serde_json::json!(true))
    );
    assert_eq!(
        std::fs::metadata(&on_node1[0])
            .and_then(|m| m.modified())
            .expect("mtime"),
        mtime
    );
    eprintln!("agent ping over ssh: first (with install) {first:?}, installed {again:?}");

    // An operation error arrives as an `error` event and exit code 3.
    let (events, code) = drain(
        t2.agent(&serde_json::json!({"protocol": 1, "op": {"op": "explode"}}))
            .await
            .expect("agent"),
    )
    .await;
    assert_eq!(code, 3);
    assert_eq!(events[0]["event"], "error");
    let message = events[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("unknown operation `explode` (this agent knows: ")
            && message.contains("ping")
            && message.contains("backup_upload"),
        "{message}"
    );
    t.close().await.expect("close");
    t2.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_path_is_used_as_given() {
    let c = TestCluster::start(1);
    let t = transport_with(
        &c,
        "node1",
        ConnectionConfig {
            agent_path: Some(CBK.to_string()),
            ..c.connection()
        },
    );
    let (events, code) = drain(
        t.agent(&serde_json::json!({"protocol": 1, "op": {"op": "ping"}}))
            .await
            .expect("agent"),
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(events[0]["data"]["hostname"], "node1");
    assert!(
        !c.cache_dir("node1").join("cbk").exists(),
        "installed although agent_path was set"
    );

    let missing = transport_with(
        &c,
        "node1",
        ConnectionConfig {
            agent_path: Some("/opt/nowhere/cbk".into()),
            ..c.connection()
        },
    );
    let e = match missing
        .agent(&serde_json::json!({"protocol": 1, "op": {"op": "ping"}}))
        .await
    {
        Ok(_) => panic!("a missing agent started"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.starts_with("on node1: "), "{msg}");
    assert!(msg.contains("/opt/nowhere/cbk"), "{msg}");
    t.close().await.expect("close");
    missing.close().await.expect("close");
}

/// Every process (pid, what) whose argv or environment contains `needle`.
fn processes_containing(needle: &str) -> Vec<(String, &'static str)> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for what in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(what))
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                hits.push((name.clone(), what));
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_any_process_argv_or_environment() {
    let c = TestCluster::start(1);
    let t = transport(&c, "node1");
    let secret = format!("cbk-test-secret-{}", rand::random::<u64>());
    let access = format!("AKIA{}", rand::random::<u32>());

    // The scan finds a planted canary, so it can fail.
    let canary = format!("cbk-canary-{}", rand::random::<u64>());
    let mut planted = std::process::Command::new("sleep")
        .arg("30")
        .env("CANARY", &canary)
        .spawn()
        .expect("canary");
    assert_eq!(processes_containing(&canary).len(), 1);
    planted.kill().expect("kill canary");
    let _ = planted.wait();

    let mut s = t
        .agent(&serde_json::json!({
            "protocol": 1,
            "credentials": {"access_key_id": access, "secret_access_key": secret},
            "op": {"op": "sleep", "ms": 1500}
        }))
        .await
        .expect("agent");
    // Once the agent reports progress, it has read the request and is working.
    let mut seen = Vec::new();
    loop {
        let ev = s.next_event().await.expect("event").expect("more events");
        let kind = ev["event"].as_str().unwrap_or_default().to_string();
        seen.push(ev);
        if kind == "progress" {
            break;
        }
    }
    let agents = c.sh("node1", "pgrep -f 'cbk agent' | wc -l");
    assert!(
        agents.trim().parse::<u32>().expect("count") >= 1,
        "agent not running"
    );
    assert_eq!(processes_containing(&secret), Vec::new());
    assert_eq!(processes_containing(&access), Vec::new());
    let (rest, code) = drain(s).await;
    assert_eq!(code, 0);
    assert_eq!(rest.last().expect("result")["data"]["slept_ms"], 1500);
    let all = serde_json::to_string(&(seen, rest)).expect("json");
    assert!(
        !all.contains(&secret) && !all.contains(&access),
        "secret echoed: {all}"
    );
    t.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_are_checked_strictly_unless_the_plan_accepts_new_ones() {
    let c = TestCluster::start(2);
    let kh = c.base().join("fresh_known_hosts");
    std::fs::write(&kh, b"").expect("empty known_hosts");
    let with = |policy| ConnectionConfig {
        known_hosts_file: Some(kh.display().to_string()),
        known_hosts: policy,
        ..c.connection()
    };
    use cbk::plan::model::KnownHosts;

    // Unknown key, strict (the default): refused.
    let t = transport_with(&c, "node1", with(KnownHosts::Strict));
    let e = t.exec(&Cmd::new("true")).await.expect_err("unknown key");
    assert!(matches!(e, RemoteError::Connect { .. }), "{e:?}");
    assert!(
        e.to_string().contains("Host key verification failed"),
        "{e}"
    );

    // accept-new: connects and records the key.
    let t = transport_with(&c, "node1", with(KnownHosts::AcceptNew));
    t.exec(&Cmd::new("true")).await.expect("accept-new");
    t.close().await.expect("close");
    let recorded = std::fs::read_to_string(&kh).expect("known_hosts");
    let node1_key = std::fs::read_to_string(c.base().join("hosts/node1/ssh/host_ed25519.pub"))
        .expect("host key");
    let node1_key: Vec<&str> = node1_key.split_whitespace().take(2).collect();
    assert!(recorded.contains(&node1_key.join(" ")), "{recorded}");

    // A changed key is refused even with accept-new: node2's address with node1's key.
    std::fs::write(
        &kh,
        format!("{} {}\n", c.address("node2"), node1_key.join(" ")),
    )
    .expect("write");
    let t = transport_with(&c, "node2", with(KnownHosts::AcceptNew));
    let e = t.exec(&Cmd::new("true")).await.expect_err("changed key");
    assert!(
        e.to_string().contains("Host key verification failed"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jump_hosts_are_used() {
    let c = TestCluster::start(2);
    let accepted = |host: &str| {
        std::fs::read_to_string(c.base().join(format!("hosts/{host}/sshd.log")))
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    };
    let before = accepted("node1");
    let t = transport_with(
        &c,
        "node2",
        ConnectionConfig {
            jump_hosts: vec!["node1".into()],
            ..c.connection()
        },
    );
    let out = t.exec(&Cmd::new("hostname")).await.expect("through node1");
    assert_eq!(out.stdout_str().trim(), "node2");
    assert_eq!(accepted("node1"), before + 1, "no login on the jump host");
    t.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_tools_on_the_session_path_are_found() {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().expect("tempdir");
    let tool = bin.path().join("nodetool");
    std::fs::write(&tool, "#!/bin/sh\necho \"nodetool on $(hostname): $*\"\n").expect("write");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let c = TestCluster::start_with_bin(2, bin.path());
    for host in c.hosts() {
        let t = transport(&c, &host);
        let out = t
            .exec(&Cmd::new("nodetool").args(["listsnapshots"]))
            .await
            .expect("nodetool");
        assert_eq!(
            out.stdout_str(),
            format!("nodetool on {host}: listsnapshots\n")
        );
        t.close().await.expect("close");
    }
    assert_eq!(c.sh_all("hostname"), vec!["node1\n", "node2\n"]);
}
