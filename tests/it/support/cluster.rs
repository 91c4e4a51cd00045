//! A test cluster of fake hosts (real sshd per host, own namespaces) for integration tests.
//!
//! `TestCluster::start(n)` runs `tests/infra/cluster.sh up` in a fresh temp folder and `Drop`
//! runs `down` (also when the test panics), so no sshd outlives its test. See
//! docs/test-cluster.md.
#![allow(dead_code)]

use cbk::plan::model::{ConnectionConfig, HostSpec, KnownHosts};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The harness script.
pub const CLUSTER_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/infra/cluster.sh");

/// A running test cluster; torn down on drop.
pub struct TestCluster {
    base: tempfile::TempDir,
    hosts: Vec<(String, String)>,
    up: bool,
}

impl TestCluster {
    /// Starts `n` hosts (`node1`..`nodeN`); panics with the harness output if that fails.
    pub fn start(n: usize) -> TestCluster {
        match TestCluster::try_start(n) {
            Ok(c) => c,
            Err(e) => panic!("cannot start the test cluster: {e}"),
        }
    }

    /// Starts `n` hosts, or says why not.
    pub fn try_start(n: usize) -> Result<TestCluster, String> {
        TestCluster::try_start_with(n, &[])
    }

    /// Starts `n` hosts whose sessions find the programs in `bin` first on `PATH` (instead of
    /// the node emulator's `tests/emulator/bin`).
    pub fn start_with_bin(n: usize, bin: &Path) -> TestCluster {
        let bin = bin.display().to_string();
        TestCluster::try_start_with(n, &["--emulator-bin", &bin])
            .unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"))
    }

    /// Starts `n` hosts with extra `cluster.sh up` options.
    pub fn try_start_with(n: usize, extra: &[&str]) -> Result<TestCluster, String> {
        let base = tempfile::Builder::new()
            .prefix("cbk-cluster-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut cluster = TestCluster {
            base,
            hosts: Vec::new(),
            up: true,
        };
        let out = Command::new("bash")
            .arg(CLUSTER_SH)
            .args(["up", "--base"])
            .arg(cluster.base.path())
            .args(["--hosts", &n.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {CLUSTER_SH}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{CLUSTER_SH} up failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let list = std::fs::read_to_string(cluster.base.path().join("hosts.txt"))
            .map_err(|e| format!("hosts.txt: {e}"))?;
        cluster.hosts = list
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect();
        Ok(cluster)
    }

    /// Host names, `node1`..`nodeN`.
    pub fn hosts(&self) -> Vec<String> {
        self.hosts.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The loopback address of `host`.
    pub fn address(&self, host: &str) -> String {
        self.hosts
            .iter()
            .find(|(n, _)| n == host)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no host {host} in the cluster"))
    }

    /// An address in this cluster's block where nothing listens (a host that is down).
    pub fn unused_address(&self) -> String {
        let first = self.address("node1");
        let prefix = first.rsplit_once('.').map(|(p, _)| p).unwrap_or("127.0.0");
        format!("{prefix}.250")
    }

    /// The cluster folder.
    pub fn base(&self) -> &Path {
        self.base.path()
    }

    /// ssh config with `Host node1..N` entries (key, known_hosts, strict checking).
    pub fn ssh_config(&self) -> PathBuf {
        self.base().join("ssh_config")
    }

    /// known_hosts holding every host's key.
    pub fn known_hosts(&self) -> PathBuf {
        self.base().join("known_hosts")
    }

    /// The client's private key.
    pub fn identity(&self) -> PathBuf {
        self.base().join("keys/id_ed25519")
    }

    fn host_dir(&self, host: &str) -> PathBuf {
        self.base().join("hosts").join(host)
    }

    /// What `host` sees at /var/lib/cassandra.
    pub fn data_dir(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("data")
    }

    /// What `host` sees at /etc/cassandra.
    pub fn conf_dir(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("conf")
    }

    /// What `host` sees at /root/.cache (where the agent installs itself).
    pub fn cache_dir(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("cache")
    }

    /// `[connection]` settings that reach the cluster through its ssh_config (strict host keys).
    pub fn connection(&self) -> ConnectionConfig {
        ConnectionConfig {
            ssh_config: Some(self.ssh_config().display().to_string()),
            known_hosts_file: Some(self.known_hosts().display().to_string()),
            known_hosts: KnownHosts::Strict,
            connect_timeout: Some("5s".parse().unwrap()),
            ..Default::default()
        }
    }

    /// A plan host entry for `host` (the name resolves through the ssh_config).
    pub fn host_spec(&self, host: &str) -> HostSpec {
        HostSpec {
            name: host.to_string(),
            ..Default::default()
        }
    }

    /// Writes a runbook plan over every host of the cluster to `path`: its `[connection]`
    /// reaches them through the ssh_config, with the lines `connection` added; `rest` follows
    /// (`[limits]`, the `[[step]]`s).
    pub fn runbook_plan(&self, path: &Path, connection: &str, rest: &str) -> PathBuf {
        let hosts: Vec<String> = self.hosts().iter().map(|h| format!("\"{h}\"")).collect();
        std::fs::write(
            path,
            format!(
                "version = 1\nkind = \"runbook\"\n\n[cluster]\nname = \"runbook\"\nhosts = [{hosts}]\n\n\
                 [connection]\nssh_config = \"{ssh_config}\"\nknown_hosts_file = \"{known_hosts}\"\n{connection}\n{rest}",
                hosts = hosts.join(", "),
                ssh_config = self.ssh_config().display(),
                known_hosts = self.known_hosts().display(),
            ),
        )
        .unwrap();
        path.to_path_buf()
    }

    /// Runs `cmd` on `host` with plain `ssh -F ssh_config` (for assertions).
    pub fn exec_on(&self, host: &str, cmd: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(host)
            .arg(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }

    /// Runs `cmd` on every host (in order), asserts success and returns each stdout.
    pub fn sh_all(&self, cmd: &str) -> Vec<String> {
        self.hosts().iter().map(|h| self.sh(h, cmd)).collect()
    }

    /// Runs `cmd` on `host`, asserts success and returns stdout.
    pub fn sh(&self, host: &str, cmd: &str) -> String {
        let out = self.exec_on(host, cmd);
        assert!(
            out.status.success(),
            "`{cmd}` on {host} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops every host (also done on drop).
    pub fn down(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        let _ = Command::new("bash")
            .arg(CLUSTER_SH)
            .args(["down", "--base"])
            .arg(self.base.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.down();
    }
}
