//! `loader[HOST]`: the `loader` restore method. Each staged table folder
//! (`<staging>/<ks>/<table>-<backupid>`) goes to the cluster through `sstableloader`, which
//! streams every partition to its current replicas: it works across topologies and table ids,
//! nothing stops, and the receivers give the sstables new generations.
//!
//! Loading a table twice duplicates its data on disk, so every table is loaded at most once per
//! staged backup: a marker file next to the staged folder is written on the node by the same
//! shell that ran sstableloader, right after it succeeded (so a controller killed meanwhile does
//! not lose it), a `flock` keeps a second run from loading the table while an orphaned first one
//! still streams, and the journal records which table is being loaded and which are done.
//! `import[HOST]` (`nodetool import`) goes through the same wrapper, marker and records.

use super::restore_state::{restore_config, save, staged_and_mapped};
use super::{Runtime, node};
use crate::cassandra::nodetool::Nodetool;
use crate::exec::{Outcome, TaskContext, TaskError};
use crate::graph::run::PlannedTask;
use crate::graph::spec::LoaderParams;
use crate::plan::model::{CommandSpec, LoaderConfig};
use serde::{Deserialize, Serialize};

/// What `loader[HOST]` has done so far (a journal checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoaderProgress {
    /// `ks.table` loaded completely.
    pub done: Vec<String>,
    /// The table being loaded when the checkpoint was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loading: Option<String>,
}

/// The line the wrapper prints when the marker says the table was loaded before.
const ALREADY: &str = "cbk: already loaded";
/// Exit code of the wrapper when another run holds the table's lock.
const LOCKED: i32 = 75;

/// The node-side wrapper around a load (sstableloader, `nodetool import`): `$1` is the marker,
/// the rest the tool's argv. The marker is written only after exit 0 and no `Skipping` line (a
/// missing table makes sstableloader skip every file and still exit 0).
fn wrapper(loader: &str, tool: &str) -> String {
    format!(
        r#"m=$1; shift
if [ -e "$m" ]; then echo '{ALREADY}'; exit 0; fi
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$m.lock"
  flock -n 9 || {{ echo "another {tool} run still holds $m.lock" >&2; exit {LOCKED}; }}
  if [ -e "$m" ]; then echo '{ALREADY}'; exit 0; fi
fi
out=$({loader}) || {{ rc=$?; printf '%s\n' "$out"; exit $rc; }}
case "
$out" in *"
Skipping "*) printf '%s\n' "$out"; exit 0;; esac
: > "$m"
printf '%s\n' "$out"
"#
    )
}

/// The sstableloader arguments for one staged folder (never a credential).
pub fn loader_args(cfg: Option<&LoaderConfig>, nodes: &[String], folder: &str) -> Vec<String> {
    let mut a = vec!["-d".to_string(), nodes.join(","), "--no-progress".into()];
    if let Some(c) = cfg {
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_string());
                a.push(v);
            }
        };
        opt("-p", c.native_port.map(|p| p.to_string()));
        opt("-sp", c.storage_port.map(|p| p.to_string()));
        opt("-f", c.conf_path.clone());
        opt("-t", c.throttle_mbits.map(|t| t.to_string()));
        opt("-cph", c.connections_per_host.map(|n| n.to_string()));
        opt("-ap", c.auth_provider.clone());
    }
    a.push(folder.to_string());
    a
}

/// The whole command run on the node: `sh -c WRAPPER cbk-loader MARKER LOADER... ARGS...`.
pub fn command(spec: &CommandSpec, marker: &str, args: &[String]) -> CommandSpec {
    command_for("sstableloader", spec, marker, args)
}

/// [`command`] for another tool that loads a staged table (`tool` names it in messages).
fn command_for(tool: &str, spec: &CommandSpec, marker: &str, args: &[String]) -> CommandSpec {
    let (script, mut argv) = match spec {
        CommandSpec::Shell(s) => (wrapper(&format!("{s} \"$@\""), tool), Vec::new()),
        CommandSpec::Argv(v) => (wrapper("\"$@\"", tool), v.clone()),
    };
    let mut all = vec!["sh".into(), "-c".into(), script, "cbk-loader".into()];
    all.push(marker.to_string());
    all.append(&mut argv);
    all.extend(args.iter().cloned());
    CommandSpec::Argv(all)
}

/// What one run of the wrapper said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Streamed this many sstables.
    Streamed(usize),
    /// The marker was there: loaded by an earlier run.
    Already,
}

/// Reads the wrapper's output: skipped files and failures are errors naming the table.
pub fn interpret(
    host: &str,
    table: &str,
    code: i32,
    stdout: &str,
    stderr: &str,
) -> Result<Loaded, String> {
    if code == LOCKED {
        return Err(format!(
            "{table} on {host}: {}; wait until it ends, then apply again",
            stderr.trim()
        ));
    }
    if code != 0 {
        let head: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('\t'))
            .take(3)
            .collect();
        return Err(format!(
            "sstableloader for {table} on {host} exited with {code}: {}",
            head.join(" | ")
        ));
    }
    if stdout.lines().any(|l| l == ALREADY) {
        return Ok(Loaded::Already);
    }
    let skipped: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("Skipping "))
        .collect();
    if !skipped.is_empty() {
        return Err(format!(
            "sstableloader skipped files of {table} on {host}, so the table is not marked loaded: {}",
            skipped.join("; ")
        ));
    }
    Ok(Loaded::Streamed(
        stdout
            .lines()
            .filter(|l| l.starts_with("Streaming relevant part of "))
            .map(|l| l.matches("-Data.db").count())
            .sum(),
    ))
}

fn nodes_param(task: &PlannedTask, p: &LoaderParams) -> Result<Vec<String>, TaskError> {
    if p.nodes.is_empty() {
        return Err(TaskError::fatal(format!(
            "{} has no contact points",
            task.address
        )));
    }
    Ok(p.nodes.clone())
}

/// How a staged table goes into the cluster.
enum Via {
    /// `loader`: sstableloader streams it to the current replicas.
    Sstableloader {
        spec: CommandSpec,
        cfg: Option<LoaderConfig>,
        nodes: Vec<String>,
    },
    /// `import` (4.0+): `nodetool import KS TABLE <staged folder>` on the node itself.
    Import(Nodetool),
}

/// `loader[HOST]`: sstableloader for every staged table of the host, at most once each.
pub async fn load(
    rt: &Runtime,
    task: &PlannedTask,
    p: &LoaderParams,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let cfg = restore_config(rt)?;
    let spec = rt
        .run
        .plan
        .cassandra
        .sstableloader
        .clone()
        .unwrap_or_else(|| CommandSpec::Shell("sstableloader".into()));
    let via = Via::Sstableloader {
        spec,
        cfg: cfg.loader.clone(),
        nodes: nodes_param(task, p)?,
    };
    load_each(rt, task, host, cx, &via).await
}

/// `import[HOST]`, after `hand_over`: `nodetool import` of every staged table of the host, at
/// most once each per staged restore (the same marker, lock and journal records as `loader`:
/// a table imported by an earlier run of the restore is not imported again when the restore
/// is applied again and `fetch` stages its files anew).
pub async fn import(
    rt: &Runtime,
    task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
) -> Result<Outcome, TaskError> {
    let tool = Nodetool::from_config(&rt.run.plan.cassandra).map_err(node::nt_err)?;
    load_each(rt, task, host, cx, &Via::Import(tool)).await
}

/// Loads every staged table of `host` through `via`, at most once each: journal records
/// (`loading`, `done`), and on the node a marker written by the wrapper after a clean load and
/// a `flock` held while loading.
async fn load_each(
    rt: &Runtime,
    task: &PlannedTask,
    host: &str,
    cx: &TaskContext,
    via: &Via,
) -> Result<Outcome, TaskError> {
    let (staged, mappings) = staged_and_mapped(cx, host)?;
    let mut progress: LoaderProgress = cx
        .checkpoints
        .last(&task.address)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let mut lines = Vec::new();
    for m in &mappings {
        let name = m.load_name();
        if progress.done.contains(&name) {
            lines.push(format!("{name}: loaded by an earlier attempt"));
            continue;
        }
        if progress.loading.as_deref() == Some(name.as_str()) {
            cx.progress.message(&format!(
                "{host}: an earlier attempt was interrupted while loading {name}; loading it unless the node marked it done"
            ));
        }
        progress.loading = Some(name.clone());
        save(cx, &task.address, &progress)?;
        let folder = format!("{}/{}", staged.staging_root, m.staged);
        let marker = format!("{folder}.cbk-loaded");
        let line = match via {
            Via::Sstableloader { spec, cfg, nodes } => {
                let args = loader_args(cfg.as_ref(), nodes, &folder);
                let cmd = command(spec, &marker, &args);
                let out = node::run_plan_command(rt, host, &cmd, &[], None, None).await?;
                match interpret(host, &name, out.code, &out.stdout_str(), &out.stderr_str())
                    .map_err(TaskError::fatal)?
                {
                    Loaded::Streamed(n) => {
                        format!("{name}: {n} sstables streamed to {}", nodes.join(","))
                    }
                    Loaded::Already => format!("{name}: already loaded (marker on the node)"),
                }
            }
            Via::Import(tool) => {
                let argv = tool.argv(&["import", &m.keyspace, &m.table, &folder]);
                let cmd = command_for("nodetool import", &CommandSpec::Argv(argv), &marker, &[]);
                let out = node::run_plan_command(rt, host, &cmd, &[], None, None).await?;
                if out.code == LOCKED {
                    return Err(TaskError::fatal(format!(
                        "{name} on {host}: {}; wait until it ends, then apply again",
                        out.stderr_str().trim()
                    )));
                }
                let stdout = crate::cassandra::nodetool::check_output(
                    host,
                    out.code,
                    &out.stdout,
                    &out.stderr,
                )
                .map_err(node::nt_err)?;
                if stdout.lines().any(|l| l == ALREADY) {
                    format!("{name}: already imported (marker on the node)")
                } else {
                    format!("{name}: imported from {folder}")
                }
            }
        };
        progress.done.push(name.clone());
        progress.loading = None;
        save(cx, &task.address, &progress)?;
        lines.push(line);
    }
    Ok(Outcome {
        summary: lines.join("; "),
        data: serde_json::to_value(&progress).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_never_carry_credentials_and_end_with_the_folder() {
        let cfg = LoaderConfig {
            native_port: Some(9142),
            storage_port: Some(7001),
            conf_path: Some("/etc/cassandra/cassandra.yaml".into()),
            throttle_mbits: Some(200),
            connections_per_host: Some(2),
            auth_provider: Some("com.example.FileAuth".into()),
            ..Default::default()
        };
        let a = loader_args(Some(&cfg), &["n1".into(), "n2:9043".into()], "/s/b/ks/t-1");
        assert_eq!(
            a,
            [
                "-d",
                "n1,n2:9043",
                "--no-progress",
                "-p",
                "9142",
                "-sp",
                "7001",
                "-f",
                "/etc/cassandra/cassandra.yaml",
                "-t",
                "200",
                "-cph",
                "2",
                "-ap",
                "com.example.FileAuth",
                "/s/b/ks/t-1"
            ]
        );
        assert!(!a.iter().any(|x| x == "-u" || x == "-pw"));
        assert_eq!(
            loader_args(None, &["n1".into()], "/f"),
            ["-d", "n1", "--no-progress", "/f"]
        );
    }

    #[test]
    fn command_wraps_argv_and_shell_specs() {
        let args = vec!["-d".to_string(), "n1".into(), "/f".into()];
        let CommandSpec::Argv(a) = command(
            &CommandSpec::Argv(vec!["/opt/c/bin/sstableloader".into()]),
            "/f.cbk-loaded",
            &args,
        ) else {
            panic!("argv expected")
        };
        assert_eq!(a[..2], ["sh", "-c"]);
        assert!(a[2].contains("out=$(\"$@\")"));
        assert_eq!(
            a[3..],
            [
                "cbk-loader",
                "/f.cbk-loaded",
                "/opt/c/bin/sstableloader",
                "-d",
                "n1",
                "/f"
            ]
        );
        let CommandSpec::Argv(s) = command(
            &CommandSpec::Shell("sudo -u cassandra sstableloader".into()),
            "/m",
            &args,
        ) else {
            panic!("argv expected")
        };
        assert!(s[2].contains("out=$(sudo -u cassandra sstableloader \"$@\")"));
        assert_eq!(s[3..], ["cbk-loader", "/m", "-d", "n1", "/f"]);
    }

    /// The wrapper run by a real `sh` against a fake loader: marker only after a clean load,
    /// never after skipped files or a failure, and a marked table is not loaded again.
    #[test]
    fn wrapper_marks_only_clean_loads() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("runs");
        let fake = dir.path().join("fake-loader");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho run >> {}\ncase \"$MODE\" in\n skip) echo 'Skipping file nb-1-big-Data.db: table ks.t doesn'\"'\"'t exist';;\n fail) echo 'Cannot connect' >&2; exit 1;;\n *) echo \"Streaming relevant part of $2/nb-1-big-Data.db $2/nb-2-big-Data.db  to [/10.0.0.1:7000]\";;\nesac\n",
                count.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let marker = dir.path().join("t.cbk-loaded");
        let run = |mode: &str| {
            let CommandSpec::Argv(a) = command(
                &CommandSpec::Argv(vec![fake.display().to_string()]),
                &marker.display().to_string(),
                &["-d".into(), "/stage/ks/t".into()],
            ) else {
                panic!()
            };
            let out = std::process::Command::new(&a[0])
                .args(&a[1..])
                .env("MODE", mode)
                .output()
                .unwrap();
            interpret(
                "h1",
                "ks.t",
                out.status.code().unwrap_or(-1),
                &String::from_utf8_lossy(&out.stdout),
                &String::from_utf8_lossy(&out.stderr),
            )
        };
        let e = run("skip").unwrap_err();
        assert!(e.contains("skipped files of ks.t on h1"), "{e}");
        assert!(!marker.exists());
        let e = run("fail").unwrap_err();
        assert_eq!(
            e,
            "sstableloader for ks.t on h1 exited with 1: Cannot connect"
        );
        assert!(!marker.exists());
        assert_eq!(run("ok"), Ok(Loaded::Streamed(2)));
        assert!(marker.exists());
        assert_eq!(run("ok"), Ok(Loaded::Already));
        let runs = std::fs::read_to_string(&count).unwrap();
        assert_eq!(runs.lines().count(), 3, "a marked table was loaded again");
    }

    /// While an earlier (orphaned) loader holds the table's lock, a rerun does not load it.
    #[test]
    fn a_held_lock_stops_a_second_load() {
        if std::process::Command::new("flock")
            .arg("-V")
            .output()
            .is_err()
        {
            eprintln!("flock not installed; the wrapper then runs without a lock");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("t.cbk-loaded");
        let lock = dir.path().join("t.cbk-loaded.lock");
        // `-o`: flock itself holds the lock, so killing it releases the lock.
        let mut holder = std::process::Command::new("flock")
            .arg("-o")
            .arg(&lock)
            .args(["sleep", "5"])
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !lock.exists() && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let CommandSpec::Argv(a) = command(
            &CommandSpec::Argv(vec!["echo".into()]),
            &marker.display().to_string(),
            &["loaded".into()],
        ) else {
            panic!()
        };
        let out = std::process::Command::new(&a[0])
            .args(&a[1..])
            .output()
            .unwrap();
        let _ = holder.kill();
        let _ = holder.wait();
        let e = interpret(
            "h1",
            "ks.t",
            out.status.code().unwrap_or(-1),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        )
        .unwrap_err();
        assert_eq!(
            e,
            format!(
                "ks.t on h1: another sstableloader run still holds {}; wait until it ends, then apply again",
                lock.display()
            )
        );
        assert!(!marker.exists());
    }
}
