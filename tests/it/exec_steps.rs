//! Custom `[[step]]`s on hosts, over real sshd: a step's `sudo` and `check` do on a host what they
//! do on the controller (one exec runner for both).

use crate::support;

use crate::support::cluster::TestCluster;
use std::os::unix::fs::PermissionsExt;

/// A runbook on the cluster's hosts: `who` runs with the step's own `sudo = true` (the
/// connection's is off), `skip` has a `check` that passes on every host, so it never runs, and
/// `ctl` is a controller step with a passing `check`.
#[test]
fn host_steps_honour_their_sudo_and_check() {
    let c = TestCluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let plan = c.runbook_plan(
        &dir.path().join("steps.toml"),
        "connect_timeout = \"10s\"\nsudo = false\nsudo_user = \"cassandra\"",
        &format!(
            r#"
[[step]]
name = "who"
run = 'id -un > {out}/who-{{{{ host }}}}'
sudo = true

[[step]]
name = "skip"
run = 'echo ran > {out}/skip-{{{{ host }}}}'
check = 'test -d {out}'

[[step]]
name = "ctl"
on = "controller"
run = 'echo ran > {out}/ctl'
check = 'true'
"#,
            out = out.display(),
        ),
    );
    let (code, log) = support::run_cbk(
        &[
            "apply",
            "--yes",
            "--progress",
            "plain",
            &plan.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{log}");
    for h in c.hosts() {
        let who = std::fs::read_to_string(out.join(format!("who-{h}")))
            .unwrap_or_else(|e| panic!("who-{h}: {e}\n{log}"));
        assert_eq!(who.trim(), "cassandra", "step sudo on {h}\n{log}");
        assert!(
            !out.join(format!("skip-{h}")).exists(),
            "exec[skip/{h}] ran although its check passed\n{log}"
        );
    }
    assert!(!out.join("ctl").exists(), "controller check ignored\n{log}");
}
