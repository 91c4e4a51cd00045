//! Crash test: `cbk apply` runs as a child process on a saved plan whose tasks have countable
//! effects and is SIGKILLed at 25+ seeded random moments (also in the middle of long tasks
//! that checkpoint). After each kill the apply is run again until it finishes; then every
//! effect must have happened exactly once, every journal must replay, and the state must say ok.
//!
//! A kill takes the whole apply down at once (cbk and the commands it started), as a crash of
//! the controller would: the process is stopped, its descendants are listed and everything is
//! killed with SIGKILL.

use crate::exec_support::{planned_run, task};
use crate::support::crash::crash;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const SHORT: usize = 10;
const LONG: usize = 3;
const ITEMS: usize = 8;

/// The plan: a DAG of short tasks and long checkpointing tasks. Every effect is a line in
/// `counter`, appended only when a `grep` does not find it (so the `check` decides).
fn plan(work: &Path) -> cbk::graph::run::PlannedRun {
    let counter = work.join("counter");
    let starts = work.join("starts");
    let c = counter.display();
    let mut tasks = Vec::new();
    for i in 0..SHORT {
        let name = format!("s{i}");
        let after: Vec<String> = match i {
            0 | 1 => vec![],
            _ => vec![format!("exec[s{}]", i / 2 - 1 + (i % 2))],
        };
        let after_ref: Vec<&str> = after.iter().map(String::as_str).collect();
        let mut t = task(&format!("exec[{name}]"), None, "short", &after_ref);
        t.spec = cbk::graph::spec::TaskSpec::from_parts(
            cbk::graph::run::TaskKind::Exec,
            serde_json::json!({
                "run": format!("sleep 0.0{}; echo {name} >> '{c}'", i % 10),
                "check": format!("grep -qx {name} '{c}'"),
            }),
        )
        .expect("exec params");
        tasks.push(t);
    }
    for l in 0..LONG {
        let name = format!("l{l}");
        let mut t = task(&format!("exec[{name}]"), None, "long", &["exec[s0]"]);
        let script = format!(
            r#"n=$(printf %s "$CBK_CHECKPOINT" | sed -n 's/.*"next":\([0-9]*\).*/\1/p'); n=${{n:-1}}
echo "{name}:$n" >> '{s}'
while [ "$n" -le {ITEMS} ]; do
  sleep 0.06
  grep -qx "{name}:$n" '{c}' || echo "{name}:$n" >> '{c}'
  n=$((n+1))
  echo "::cbk-checkpoint {{\"next\":$n}}"
done
echo {name} >> '{c}'"#,
            s = starts.display()
        );
        t.spec = cbk::graph::spec::TaskSpec::from_parts(
            cbk::graph::run::TaskKind::Exec,
            serde_json::json!({
                "run": script,
                "check": format!("grep -qx {name} '{c}'"),
            }),
        )
        .expect("exec params");
        tasks.push(t);
    }
    let mut last = task("exec[final]", None, "final", &[]);
    last.after = tasks.iter().map(|t| t.address.clone()).collect();
    last.spec = cbk::graph::spec::TaskSpec::from_parts(
        cbk::graph::run::TaskKind::Exec,
        serde_json::json!({
            "run": format!("echo final >> '{c}'"),
            "check": format!("grep -qx final '{c}'"),
        }),
    )
    .expect("exec params");
    tasks.push(last);
    let mut run = planned_run(tasks, "/nonexistent/crash-plan.toml");
    run.plan.limits.parallelism = 4;
    run
}

fn expected_lines() -> Vec<String> {
    let mut v: Vec<String> = (0..SHORT).map(|i| format!("s{i}")).collect();
    for l in 0..LONG {
        v.push(format!("l{l}"));
        v.extend((1..=ITEMS).map(|i| format!("l{l}:{i}")));
    }
    v.push("final".into());
    v.sort();
    v
}

fn apply_cmd(plan: &Path, state: &Path) -> Child {
    crate::support::cbk_command()
        .arg("apply")
        .arg(plan)
        .arg("--state")
        .arg(state)
        .args(["--progress", "none"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cbk")
}

struct Round {
    kills: usize,
    resumed_from_checkpoint: bool,
}

fn one_round(seed: u64, rng: &mut rand::rngs::StdRng) -> Round {
    let work = tempfile::tempdir().expect("tempdir");
    let plan_path = work.path().join("plan.json");
    std::fs::write(
        &plan_path,
        serde_json::to_vec_pretty(&plan(work.path())).expect("json"),
    )
    .expect("write plan");
    let state: PathBuf = work.path().join("state");
    let mut kills = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(
            attempts < 80,
            "seed {seed}: no convergence after {attempts} attempts"
        );
        let mut child = apply_cmd(&plan_path, &state);
        let delay = Duration::from_millis(rng.random_range(5..250));
        let deadline = Instant::now() + delay;
        let mut exited = None;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        match exited {
            None if attempts < 60 => {
                crash(&mut child);
                kills += 1;
            }
            _ => {
                let out = child.wait_with_output().expect("wait");
                let code = out.status.code();
                assert_eq!(
                    code,
                    Some(0),
                    "seed {seed}: apply failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
        }
    }
    // Every effect exactly once.
    let text = std::fs::read_to_string(work.path().join("counter")).expect("counter");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(
        lines,
        expected_lines(),
        "seed {seed}: effects not exactly once"
    );
    // Every journal replays; the run ended ok and moved the state once.
    let mut runs: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .expect("runs")
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 1, "seed {seed}: one run, resumed: {runs:?}");
    let records = cbk::exec::journal::replay(&runs[0]).expect("journal replays");
    let prior = cbk::exec::journal::Prior::from_records(&records);
    assert_eq!(prior.finished, Some(cbk::exec::RunStatus::Ok));
    assert_eq!(prior.done.len(), SHORT + LONG + 1);
    let st = cbk::exec::state::current_ref(&state)
        .expect("state")
        .expect("some");
    assert_eq!(st.serial, 1, "seed {seed}");
    // Rerunning now changes nothing.
    let again = apply_cmd(&plan_path, &state)
        .wait_with_output()
        .expect("rerun");
    assert_eq!(again.status.code(), Some(0));
    let after = std::fs::read_to_string(work.path().join("counter")).expect("counter");
    assert_eq!(after, text);
    let starts = std::fs::read_to_string(work.path().join("starts")).unwrap_or_default();
    Round {
        kills,
        resumed_from_checkpoint: starts
            .lines()
            .any(|l| l.rsplit(':').next().is_some_and(|n| n != "1")),
    }
}

#[test]
fn apply_converges_after_sigkill_at_random_moments() {
    let seed: u64 = std::env::var("CBK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    let mut rounds = 0;
    let mut resumed = false;
    while kills < 25 {
        let r = one_round(seed, &mut rng);
        kills += r.kills;
        resumed |= r.resumed_from_checkpoint;
        rounds += 1;
        assert!(rounds <= 20, "too few kills per round");
    }
    eprintln!("crash test: seed {seed}, {kills} kills over {rounds} rounds");
    assert!(
        resumed,
        "no long task resumed from a checkpoint in {kills} kills"
    );
}
