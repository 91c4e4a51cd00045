//! Emulated Cassandra nodes on this machine (no SSH): the emulator under tests/emulator with
//! its own CASSANDRA_CONF, for end-to-end tests with the `local` transport.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The emulator's bin folder.
pub fn emu_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emulator/bin")
}

/// One emulated node in a folder.
pub struct EmuNode {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub data_root: PathBuf,
}

impl EmuNode {
    /// `cassandra-emu init` + `start`.
    pub fn start(dir: &Path, version: &str, data_dirs: u32, extra: &[&str]) -> EmuNode {
        let node = EmuNode {
            dir: dir.to_path_buf(),
            conf: dir.join("conf"),
            data_root: dir.join("node"),
        };
        let root = node.data_root.display().to_string();
        let dd = data_dirs.to_string();
        let mut args = vec![
            "init",
            "--force",
            "--version",
            version,
            "--data-root",
            &root,
            "--data-dirs",
            &dd,
        ];
        args.extend_from_slice(extra);
        node.emu(&args);
        node.emu(&["start"]);
        node
    }

    /// Runs `cassandra-emu ARGS`, panicking with its output on failure.
    pub fn emu(&self, args: &[&str]) -> String {
        self.tool("cassandra-emu", args, true)
    }

    /// Runs `nodetool ARGS`.
    pub fn nodetool(&self, args: &[&str]) -> String {
        self.tool("nodetool", args, true)
    }

    /// Runs an emulator tool; with `check`, a failure panics.
    pub fn tool(&self, tool: &str, args: &[&str], check: bool) -> String {
        let out = Command::new(emu_bin().join(tool))
            .args(args)
            .env("CASSANDRA_CONF", &self.conf)
            .output()
            .expect("run emulator");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if check && !out.status.success() {
            panic!("{tool} {args:?} failed ({}): {text}", out.status);
        }
        text
    }

    /// A CQL statement.
    pub fn cql(&self, stmt: &str) {
        self.emu(&["cql", stmt]);
    }

    /// `rows` pending writes to a table, then flush.
    pub fn write_flush(&self, ks: &str, table: &str, rows: u32) {
        self.emu(&["write", ks, table, "--rows", &rows.to_string()]);
        self.nodetool(&["flush", ks]);
    }

    /// Keyspace `shop` (RF 1) with the tables `orders` and `customers`.
    pub fn create_shop(&self) {
        self.cql("CREATE KEYSPACE shop WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
        self.cql("CREATE TABLE shop.orders (id uuid PRIMARY KEY, total decimal)");
        self.cql("CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text)");
    }

    /// `rounds` times: `orders` rows into shop.orders and `customers` rows into shop.customers,
    /// each flushed.
    pub fn fill_shop(&self, rounds: u32, orders: u32, customers: u32) {
        for _ in 0..rounds {
            self.write_flush("shop", "orders", orders);
            self.write_flush("shop", "customers", customers);
        }
    }

    /// When the node last started (ms), from the emulator's own state.
    pub fn started_ms(&self) -> u64 {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.conf.join("emulator/state.json")).unwrap())
                .unwrap();
        s["started_ms"].as_u64().expect("started_ms")
    }

    /// Whether `cassandra-emu status` says the node runs.
    pub fn running(&self) -> bool {
        self.tool("cassandra-emu", &["status"], false)
            .contains("running")
    }

    /// A plan for this node alone as `host` (cluster `demo`, `local` transport) with the `fs`
    /// store in `store`, after `body`.
    pub fn local_plan(&self, host: &str, store: &Path, body: &str) -> String {
        format!(
            "version = 1\n{body}\n[cluster]\nname = \"demo\"\nhosts = [\"{host}\"]\n\n[connection]\ntransport = \"local\"\n\n{}\n[storage]\nurl = \"file://{}\"\n",
            self.cassandra_section(),
            store.display()
        )
    }

    /// The plan's `[cassandra]` section for this node.
    pub fn cassandra_section(&self) -> String {
        let bin = emu_bin();
        let b = bin.display();
        format!(
            "[cassandra]\nconfig = \"{}/cassandra.yaml\"\nnodetool = [\"{b}/nodetool\"]\ncqlsh = [\"{b}/cqlsh\"]\nsstableloader = [\"{b}/sstableloader\"]\n\
             stop = [\"{b}/cassandra-emu\", \"stop\"]\nstart = [\"{b}/cassandra-emu\", \"start\"]\nstaging = \"{}\"\n",
            self.conf.display(),
            self.dir.join("staging").display()
        )
    }

    /// Live sstable files of a keyspace (table folder and `.<index>/` subfolders):
    /// `(folder/[.index/]file, sha256)`, sorted.
    pub fn live_sums(&self, keyspace: &str) -> Vec<(String, String)> {
        use sha2::Digest;
        let mut out = Vec::new();
        for dd in std::fs::read_dir(&self.data_root).unwrap().flatten() {
            let Ok(tables) = std::fs::read_dir(dd.path().join(keyspace)) else {
                continue;
            };
            for t in tables.flatten() {
                let folder = t.file_name().to_string_lossy().into_owned();
                let mut dirs = vec![(folder.clone(), t.path())];
                for sub in std::fs::read_dir(t.path()).unwrap().flatten() {
                    let n = sub.file_name().to_string_lossy().into_owned();
                    if n.starts_with('.') && sub.file_type().unwrap().is_dir() {
                        dirs.push((format!("{folder}/{n}"), sub.path()));
                    }
                }
                for (prefix, d) in dirs {
                    for f in std::fs::read_dir(d).unwrap().flatten() {
                        let name = f.file_name().to_string_lossy().into_owned();
                        if f.file_type().unwrap().is_file()
                            && cbk::cassandra::sstable::SstableName::parse(&name).is_ok()
                        {
                            let bytes = std::fs::read(f.path()).unwrap();
                            out.push((
                                format!("{prefix}/{name}"),
                                hex::encode(sha2::Sha256::digest(&bytes)),
                            ));
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// Runs cbk with `CASSANDRA_CONF` set; returns (exit code, stdout, stderr).
pub fn cbk(conf: &Path, args: &[&str]) -> (i32, String, String) {
    let out = super::cbk_command()
        .args(args)
        .env("CASSANDRA_CONF", conf)
        .output()
        .expect("run cbk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Task address -> status, from `cbk state --json`.
pub fn task_status(conf: &Path, state: &Path) -> Vec<(String, String)> {
    let (code, o, e) = cbk(
        conf,
        &["state", "--state", &state.display().to_string(), "--json"],
    );
    assert_eq!(code, 0, "{o}{e}");
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["address"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `cbk plan PLAN --now NOW --out ...` then `cbk apply` of the saved plan with its own state
/// folder under `dir`; returns (apply's exit code, its output, the state folder).
pub fn plan_and_apply(conf: &Path, plan: &Path, now: &str, dir: &Path) -> (i32, String, PathBuf) {
    let out = plan.with_extension(format!("{now}.json"));
    let (code, o, e) = cbk(
        conf,
        &[
            "plan",
            &plan.display().to_string(),
            "--now",
            now,
            "--out",
            &out.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "plan failed: {o}{e}");
    let state = dir.join(format!("state-{now}"));
    let (code, o, e) = cbk(
        conf,
        &[
            "apply",
            &out.display().to_string(),
            "--state",
            &state.display().to_string(),
            "--progress",
            "plain",
        ],
    );
    (code, format!("{o}{e}"), state)
}
