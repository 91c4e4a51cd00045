//! Progress bars in a real terminal: a demo apply (three hosts uploading bytes, log lines in
//! between) runs inside tmux; `capture-pane` must show one bar per host with bytes, rate and
//! ETA, the overall bar, and the log lines whole (not torn by the bars).
//!
//! With `CBK_SCREENSHOT_DIR=docs/screenshots` the capture is saved there (the documented check).

use crate::exec_support::{planned_run, task};
use async_trait::async_trait;
use cbk::exec::progress::Bars;
use cbk::exec::walker::WalkOptions;
use cbk::exec::{
    ApplyOptions, Check, Outcome, StateLocation, TaskContext, TaskError, TaskRunner, apply,
};
use cbk::graph::run::PlannedTask;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const HOSTS: [&str; 3] = ["cass-01", "cass-02", "cass-03"];

/// Moves fake bytes for host tasks, in chunks.
struct DemoRunner;

#[async_trait]
impl TaskRunner for DemoRunner {
    async fn check(&self, _t: &PlannedTask, _cx: &TaskContext) -> Result<Check, TaskError> {
        Ok(Check::Needed)
    }
    async fn apply(&self, t: &PlannedTask, cx: &TaskContext) -> Result<Outcome, TaskError> {
        let host = t.host.as_deref();
        let chunks = 80u64;
        let chunk = 256 * 1024u64;
        cx.progress.add_total(host, chunks * chunk);
        for _ in 0..chunks {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cx.progress.advance(host, chunk);
        }
        cx.progress
            .message(&format!("log: {} uploaded 20 MiB", t.address));
        Ok(Outcome::default())
    }
}

/// The demo itself; runs only inside tmux (when the variable is set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_child() {
    let Ok(state) = std::env::var("CBK_PROGRESS_DEMO_STATE") else {
        return;
    };
    let mut tasks = Vec::new();
    for h in HOSTS {
        for tbl in ["users", "orders"] {
            tasks.push(task(
                &format!("upload[{h}/ks.{tbl}]"),
                Some(h),
                "upload",
                &[],
            ));
        }
    }
    let all: Vec<String> = tasks.iter().map(|t| t.address.clone()).collect();
    let mut cat = task("catalog", None, "catalog", &[]);
    cat.after = all;
    tasks.push(cat);
    let run = planned_run(tasks, "/nonexistent/demo.toml");
    let bars = Arc::new(Bars::new(
        run.tasks.len(),
        indicatif::ProgressDrawTarget::stderr(),
    ));
    let opts = ApplyOptions {
        state: StateLocation::Local(state.into()),
        walk: WalkOptions {
            per_host: 1,
            ..WalkOptions::default()
        },
        progress: bars,
        cancel: CancellationToken::new(),
        saved_plan: true,
        plan_label: "demo".into(),
        lock_timeout: None,
    };
    let report = apply(&run, Arc::new(DemoRunner), opts)
        .await
        .expect("apply");
    eprintln!("DEMO DONE {}", report.status.as_str());
}

/// Stops the private tmux server when the test ends (also on failure).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }
    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "demo"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn bars_visible(screen: &str) -> bool {
    HOSTS.iter().all(|h| {
        screen
            .lines()
            .any(|l| l.starts_with(h) && l.contains("MiB/s") && l.contains("eta"))
    }) && screen
        .lines()
        .any(|l| l.starts_with("overall") && l.contains("tasks"))
}

#[test]
fn bars_render_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("tmux is required (tests/infra/setup.sh installs it)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let tmux = Tmux {
        socket: format!("cbk-progress-{}", std::process::id()),
    };
    let script = format!(
        "NO_COLOR=1 CBK_PROGRESS_DEMO_STATE='{}' '{}' exec_progress::demo_child --exact --nocapture --test-threads 1 >/dev/null; sleep 60",
        dir.path().join("state").display(),
        exe.display()
    );
    let ok = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            "120",
            "-y",
            "20",
            &script,
        ])
        .env_remove("TMUX")
        .status()
        .expect("tmux new-session");
    assert!(ok.success());

    // While uploads run: one bar per host with bytes, rate and ETA, the overall bar, and log
    // lines above the bars.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut during = String::new();
    while Instant::now() < deadline {
        during = tmux.capture();
        // Halfway: some uploads logged, others still moving bytes.
        if bars_visible(&during) && ["3/7", "4/7", "5/7"].iter().any(|n| during.contains(n)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(bars_visible(&during), "bars not visible:\n{during}");

    // At the end: every log line is whole, the bars stay, the demo finished ok.
    let mut end = String::new();
    while Instant::now() < deadline {
        end = tmux.capture();
        if end.contains("DEMO DONE") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(end.contains("DEMO DONE ok"), "demo did not finish:\n{end}");
    for h in HOSTS {
        for tbl in ["users", "orders"] {
            let line = format!("log: upload[{h}/ks.{tbl}] uploaded 20 MiB");
            assert!(
                end.lines().any(|l| l.trim_end() == line),
                "log line torn or missing: {line}\n{end}"
            );
        }
        assert!(
            end.lines()
                .any(|l| l.starts_with(h) && l.contains("40.00 MiB/40.00 MiB")),
            "final bar of {h} missing:\n{end}"
        );
    }
    assert!(
        end.lines()
            .any(|l| l.starts_with("overall") && l.contains("7/7 tasks")),
        "{end}"
    );
    if let Ok(out) = std::env::var("CBK_SCREENSHOT_DIR") {
        let out = std::path::Path::new(&out);
        std::fs::create_dir_all(out).expect("mkdir");
        std::fs::write(out.join("apply-progress-running.txt"), &during).expect("write");
        std::fs::write(out.join("apply-progress-done.txt"), &end).expect("write");
    }
}
