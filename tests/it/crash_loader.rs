//! Kill -9 of a `loader` restore (local transport, fs store, emulated 4.1 node): cbk and the
//! sstableloader it runs are killed while the second of two tables loads, after the first one
//! was loaded and marked. A *new* plan of the same restore (so the journal of the killed run is
//! not used) then finishes it: the first table is recognised as loaded by its marker on the
//! node, the second is loaded, and every backed-up sstable is live exactly twice (the original
//! and one loaded copy) — nothing loaded twice, nothing missing.

use crate::support::crash::{self, Attempt};
use crate::support::emu::{EmuNode, emu_bin};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn plan(node: &EmuNode, store: &Path, dir: &Path, name: &str, body: &str) -> PathBuf {
    let b = emu_bin().display().to_string();
    // A slow sstableloader (2 s before it starts), so a kill lands while it runs.
    let text = node.local_plan("n1", store, body).replace(
        &format!("sstableloader = [\"{b}/sstableloader\"]"),
        &format!("sstableloader = \"sleep 2; {b}/sstableloader\""),
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(node: &EmuNode, saved: &Path, state: &Path, kill_when: impl FnMut() -> bool) -> Attempt {
    crash::attempt(
        &node.conf,
        saved,
        state,
        Duration::from_secs(240),
        kill_when,
    )
}

fn markers(staging: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![staging.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".cbk-loaded") {
                out.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn data_files(node: &EmuNode) -> Vec<String> {
    node.live_sums("shop")
        .into_iter()
        .filter(|(n, _)| n.ends_with("-Data.db") && !n.contains("/."))
        .map(|(_, h)| h)
        .collect()
}

#[test]
fn loader_killed_mid_table_then_replanned_loads_every_table_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let node = EmuNode::start(&dir, "4.1", 2, &[]);
    node.create_shop();
    node.fill_shop(2, 300, 100);
    let store = dir.join("store");
    let backup = plan(
        &node,
        &store,
        &dir,
        "backup.toml",
        "kind = \"backup\"\n[backup]\nname = \"b-{{ now | strftime('%Y%m%d') }}\"\ninclude = [\"shop.*\"]\n",
    );
    let saved = dir.join("backup.json");
    crash::save_plan(&node.conf, &backup, "2026-04-01T00:00:00Z", &saved);
    match run(&node, &saved, &dir.join("state-backup"), || false) {
        Attempt::Finished { code, output } => assert_eq!(code, 0, "backup: {output}"),
        Attempt::Killed => unreachable!("never killed"),
    }
    let mut backed_up = data_files(&node);
    assert!(backed_up.len() >= 4, "{backed_up:?}");

    let restore = plan(
        &node,
        &store,
        &dir,
        "restore.toml",
        "kind = \"restore\"\n[restore]\nsource = \"latest\"\ninclude = [\"shop.*\"]\nmethod = \"loader\"\n\
         [restore.loader]\nnodes = [\"127.0.0.1\"]\n",
    );
    let staging = dir.join("staging");
    let state = dir.join("state-restore");

    // Attempt 1: killed 300 ms after the first table's marker appeared (the second table's
    // sstableloader is in its 2 s start-up).
    let saved1 = dir.join("restore-1.json");
    crash::save_plan(&node.conf, &restore, "2026-04-02T00:00:00Z", &saved1);
    let mut marked_at: Option<Instant> = None;
    let r = run(&node, &saved1, &state, || {
        if marked_at.is_none() && !markers(&staging).is_empty() {
            marked_at = Some(Instant::now());
        }
        marked_at.is_some_and(|t| t.elapsed() >= Duration::from_millis(300))
    });
    assert!(
        matches!(r, Attempt::Killed),
        "the restore ended before the kill"
    );
    let first = markers(&staging);
    assert_eq!(first.len(), 1, "{first:?}");

    // Attempt 2: a new plan (another `now`), so the killed run's journal is superseded.
    let saved2 = dir.join("restore-2.json");
    crash::save_plan(&node.conf, &restore, "2026-04-02T01:00:00Z", &saved2);
    let output = match run(&node, &saved2, &state, || false) {
        Attempt::Finished { code, output } => {
            assert_eq!(code, 0, "{output}");
            output
        }
        Attempt::Killed => unreachable!("never killed"),
    };
    assert!(
        output.contains("already loaded (marker on the node)"),
        "{output}"
    );
    assert!(crash::assert_journals_replay(&state).is_some());

    // Every backed-up sstable is live twice: the original and one loaded copy.
    let mut after = data_files(&node);
    let mut want = backed_up.clone();
    want.append(&mut backed_up);
    want.sort();
    after.sort();
    assert_eq!(after, want);
}
