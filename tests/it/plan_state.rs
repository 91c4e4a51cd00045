//! A saved plan records the state it was computed against; once another apply moved that
//! state, applying the old saved plan is refused (exit 75) with the reason.

use crate::support;

fn cbk(args: &[&str]) -> (i32, String) {
    support::run_cbk(args, &[])
}

#[test]
fn a_plan_made_before_the_state_moved_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let state = dir.join("state");
    let write = |name: &str, marker: &str| {
        let p = dir.join(name);
        let text = format!(
            "version = 1\nkind = \"runbook\"\n[cluster]\nname = \"c\"\nhosts = [\"h1\"]\n\n[[step]]\nname = \"touch\"\non = \"controller\"\nrun = \"touch {}\"\n",
            dir.join(marker).display()
        );
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (a, b) = (write("a.toml", "a.done"), write("b.toml", "b.done"));
    let s = state.display().to_string();
    let (pa, pb) = (
        dir.join("a.json").display().to_string(),
        dir.join("b.json").display().to_string(),
    );
    // Give the state a first serial, then plan both against it.
    let (code, log) = cbk(&["apply", &a, "--yes", "--state", &s, "--progress", "none"]);
    assert_eq!(code, 0, "{log}");
    for (src, out) in [(&a, &pa), (&b, &pb)] {
        let (code, log) = cbk(&["plan", src, "--state", &s, "--out", out]);
        assert_eq!(code, 0, "{log}");
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&pa).unwrap()).unwrap();
    assert_eq!(saved["prior_state"]["serial"], 1, "{saved}");
    let (code, log) = cbk(&["apply", &pb, "--state", &s, "--progress", "none"]);
    assert_eq!(code, 0, "{log}");
    assert!(dir.join("b.done").exists());
    // The state moved (serial 2): the plan made at serial 1 is stale.
    let (code, log) = cbk(&["apply", &pa, "--state", &s, "--progress", "none"]);
    assert_eq!(code, 75, "{log}");
    assert!(log.contains("stale") || log.contains("serial"), "{log}");
}
