//! The controller over many hosts (issue 16, point 5): `limits.parallelism` bounds the ssh
//! connections the controller keeps open, not only the tasks running at once. Over real sshd
//! (one per host, tests/infra/cluster.sh) with a runbook of host steps; the ssh client
//! processes are counted from /proc while the apply runs. The measured numbers at 10, 50 and
//! 200 hosts are in BENCHMARKS.md (benches/controller_scale.sh).

use crate::support;
use crate::support::cluster::TestCluster;
use std::path::Path;
use std::time::{Duration, Instant};

/// ssh client processes (comm `ssh`) whose command line names `mark` (the cluster's ssh_config:
/// the controller's masters are daemonized, so they are not its children).
fn ssh_clients(mark: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let p = e.path();
            std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == "ssh")
                && std::fs::read(p.join("cmdline"))
                    .is_ok_and(|c| c.windows(mark.len()).any(|w| w == mark.as_bytes()))
        })
        .count()
}

/// A runbook of two host steps (each sleeps 0.2 s and leaves a file per host in `out`).
fn runbook(c: &TestCluster, dir: &Path, out: &Path, parallelism: usize) -> std::path::PathBuf {
    c.runbook_plan(
        &dir.join("many.toml"),
        "connect_timeout = \"30s\"",
        &format!(
            r#"[limits]
parallelism = {parallelism}

[[step]]
name = "a"
run = 'sleep 0.2 && hostname > {out}/a-{{{{ host }}}}'

[[step]]
name = "b"
run = 'sleep 0.2 && hostname > {out}/b-{{{{ host }}}}'
after = ["a"]
"#,
            out = out.display(),
        ),
    )
}

/// 20 hosts, `parallelism = 4`: at most 4 ssh masters (+2 for one being replaced: the closing
/// master and `ssh -O exit`) exist at any time, and every host ran both steps.
#[test]
fn ssh_connections_stay_within_parallelism_over_twenty_hosts() {
    let c = TestCluster::start(20);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let parallelism = 4;
    let plan = runbook(&c, dir.path(), &out, parallelism);
    let mut child = support::cbk_command()
        .args(["apply", "--yes", "--progress", "plain"])
        .arg(&plan)
        .arg("--state")
        .arg(dir.path().join("state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mark = c.ssh_config().display().to_string();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "apply still running after 120 s");
        peak = peak.max(ssh_clients(&mark));
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(done.status.code(), Some(0), "{log}");
    for h in c.hosts() {
        for step in ["a", "b"] {
            let got = std::fs::read_to_string(out.join(format!("{step}-{h}")))
                .unwrap_or_else(|e| panic!("{step}-{h}: {e}\n{log}"));
            assert_eq!(got.trim(), h, "step {step} ran on the wrong host");
        }
    }
    assert!(peak > 0, "no ssh process seen: the sampler missed the run");
    assert!(
        peak <= parallelism + 2,
        "{peak} ssh processes at once for parallelism {parallelism} over 20 hosts\n{log}"
    );
    support::wait_for("the ssh masters to exit after the apply", || {
        ssh_clients(&mark) == 0
    });
}
