//! Crash helpers for the kill -9 tests: run `cbk apply` as a child, kill it and everything it
//! started at a seeded moment, and take inventories of the fs store and of node folders.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The seed from `CBK_CRASH_SEED`, or `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("CBK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Starts `cbk apply PLAN --state STATE --progress none` with `CASSANDRA_CONF`.
pub fn spawn_apply(conf: &Path, plan: &Path, state: &Path) -> Child {
    spawn_apply_env(plan, state, &conf_env(conf))
}

/// The environment of an apply on local emulated nodes.
fn conf_env(conf: &Path) -> Vec<(String, String)> {
    vec![("CASSANDRA_CONF".into(), conf.display().to_string())]
}

/// Starts `cbk apply PLAN --state STATE --progress none` with extra environment variables.
pub fn spawn_apply_env(plan: &Path, state: &Path, env: &[(String, String)]) -> Child {
    spawn_apply_progress(plan, state, env, "none")
}

/// [`spawn_apply_env`] with `--progress PROGRESS` (`plain` prints retries as they happen).
pub fn spawn_apply_progress(
    plan: &Path,
    state: &Path,
    env: &[(String, String)],
    progress: &str,
) -> Child {
    super::cbk_command()
        .arg("apply")
        .arg(plan)
        .arg("--state")
        .arg(state)
        .args(["--progress", progress])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cbk")
}

/// Direct children of every process, from /proc.
fn children() -> BTreeMap<u32, Vec<u32>> {
    let mut map: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The command name may contain spaces: fields after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}

fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Kills cbk and every process it started (agent, nodetool, ...) with SIGKILL, as a crash of
/// the controller machine would; descendants are stopped first so none acts after cbk died.
/// Processes that left the tree (a daemonised emulator node) are not touched.
pub fn crash(child: &mut Child) {
    let pid = child.id();
    signal("STOP", &[pid]);
    let tree = children();
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Some(c) = tree.get(&all[i]) {
            all.extend(c);
        }
        i += 1;
    }
    signal("STOP", &all[1..]);
    signal("KILL", &all);
    let _ = child.wait();
}

/// How one attempt ended.
pub enum Attempt {
    Killed,
    Finished { code: i32, output: String },
}

/// Runs one apply and kills it when `kill_when` says so (polled every few ms) or after `max`.
/// Returns `Finished` when the apply exits on its own first.
pub fn attempt(
    conf: &Path,
    plan: &Path,
    state: &Path,
    max: Duration,
    kill_when: impl FnMut() -> bool,
) -> Attempt {
    attempt_env(&conf_env(conf), plan, state, max, kill_when)
}

/// [`attempt`] with extra environment variables (store credentials) instead of a local node's
/// `CASSANDRA_CONF`.
pub fn attempt_env(
    env: &[(String, String)],
    plan: &Path,
    state: &Path,
    max: Duration,
    mut kill_when: impl FnMut() -> bool,
) -> Attempt {
    let mut child = spawn_apply_env(plan, state, env);
    let deadline = Instant::now() + max;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            let out = child.wait_with_output().expect("wait");
            return Attempt::Finished {
                code: out.status.code().unwrap_or(-1),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            };
        }
        if Instant::now() >= deadline || kill_when() {
            crash(&mut child);
            return Attempt::Killed;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// Addresses of tasks the current attempt has `started` but not finished, from the journals
/// under `state` (records after the last `run_started`).
pub fn running_tasks(state: &Path) -> Vec<String> {
    let mut started: Vec<String> = Vec::new();
    for j in journals(state) {
        let text = std::fs::read_to_string(&j).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let task = v.get("address").and_then(|t| t.as_str()).map(String::from);
            match (v.get("event").and_then(|e| e.as_str()), task) {
                (Some("run_started"), _) => started.clear(),
                (Some("started"), Some(t)) => started.push(t),
                (Some("done" | "failed" | "skipped"), Some(t)) => started.retain(|s| *s != t),
                _ => {}
            }
        }
    }
    started
}

/// Journal files of a state folder, oldest first.
pub fn journals(state: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Every journal of `state` replays; returns the status of the last one.
pub fn assert_journals_replay(state: &Path) -> Option<cbk::exec::RunStatus> {
    let mut last = None;
    for j in journals(state) {
        let records = cbk::exec::journal::replay(&j)
            .unwrap_or_else(|e| panic!("journal {} does not replay: {e}", j.display()));
        last = cbk::exec::journal::Prior::from_records(&records).finished;
    }
    last
}

/// Identity of a stored file: (inode, mtime ns, size). A rewrite through temp + rename gives
/// a new inode, so an unchanged identity proves the object was not uploaded again.
pub type Ident = (u64, i128, u64);

/// Regular files under `root` (relative path -> identity), leaving out `.cbk-tmp-` files.
pub fn inventory(root: &Path) -> BTreeMap<String, Ident> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() && !e.file_name().to_string_lossy().starts_with(".cbk-tmp-") {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let mtime = i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec());
                out.insert(rel, (md.ino(), mtime, md.len()));
            }
        }
    }
    out
}

/// Files under `root` whose name starts with `.cbk-tmp-` (left by a killed writer).
pub fn temp_leftovers(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".cbk-tmp-") {
                n += 1;
            }
        }
    }
    n
}

/// sha256 of every regular file under `root` whose name parses as an sstable component,
/// as a multiset of digests.
pub fn sstable_digests(root: &Path) -> BTreeMap<String, usize> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && cbk::cassandra::sstable::SstableName::parse(&e.file_name().to_string_lossy())
                    .is_ok()
            {
                let bytes = std::fs::read(&p).unwrap();
                *out.entry(hex::encode(sha2::Sha256::digest(&bytes)))
                    .or_insert(0) += 1;
            }
        }
    }
    out
}

/// Saves `cbk plan TOML --now NOW` as `OUT`, panicking with the output on failure.
pub fn save_plan(conf: &Path, toml: &Path, now: &str, out: &Path) {
    let (code, o, e) = super::emu::cbk(
        conf,
        &[
            "plan",
            &toml.display().to_string(),
            "--now",
            now,
            "--out",
            &out.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "plan failed: {o}{e}");
}

/// Waits up to `max` for the child to exit; kills it (and its agents) and returns `None` when
/// it is still running then.
pub fn wait_max(child: &mut Child, max: Duration) -> Option<(i32, String)> {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let mut out = String::new();
            use std::io::Read;
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            let _ = child.stderr.take().unwrap().read_to_string(&mut out);
            return Some((child.wait().unwrap().code().unwrap_or(-1), out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crash(child);
    let mut out = String::new();
    use std::io::Read;
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.stderr.take().unwrap().read_to_string(&mut out);
    eprintln!("killed after {max:?}; its output:\n{out}");
    None
}
