//! Helpers shared by the integration tests (the modules of tests/it use them as `crate::support`).
#![allow(dead_code)]

pub mod cluster;
pub mod crash;
pub mod e2e;
pub mod emu;
pub mod restored;
pub mod s3;

/// The cbk binary under test (also the agent binary the tests install on hosts).
pub const CBK: &str = env!("CARGO_BIN_EXE_cbk");

/// The one way the tests start cbk: the binary under test with colours off and stdin closed;
/// callers add arguments, environment and output handling.
pub fn cbk_command() -> std::process::Command {
    let mut c = std::process::Command::new(CBK);
    c.env("NO_COLOR", "1").stdin(std::process::Stdio::null());
    c
}

/// Runs the cbk binary with `args` and the environment `envs` (colours off); returns (exit
/// code, stdout + stderr).
pub fn run_cbk(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = cbk_command()
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The stored bytes of manifest entry `f`, decoded; their size and CRC32 must match the entry.
pub fn decode_stored(stored: &[u8], f: &cbk::repo::manifest::FileEntry) -> Vec<u8> {
    assert_eq!(stored.len() as u64, f.stored_size, "{}", f.key);
    let codec = cbk::agent::ops::pipeline::stored_codec(&f.codec).unwrap();
    let mut plain = Vec::new();
    cbk::codec::decode(codec, stored, &mut plain)
        .unwrap_or_else(|e| panic!("object {} does not decode: {e}", f.key));
    assert_eq!(crc32fast::hash(&plain), f.crc32, "{} is corrupt", f.key);
    plain
}

/// Waits (at most 30 s) until `f` holds; panics naming `what` otherwise.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends the child one SIGINT (a Ctrl-C).
pub fn sigint(child: &std::process::Child) {
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Ctrl-C again and again until the apply exits: two signals sent close together can arrive as
/// one (the kernel and tokio coalesce them), so a "second Ctrl-C" is repeated, 250 ms apart.
pub fn sigint_until_exit(child: &mut std::process::Child) {
    for _ in 0..40 {
        if child.try_wait().expect("try_wait").is_some() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// An error report on one line (miette wraps long messages and draws a margin).
pub fn flat(err: &str) -> String {
    err.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `err` contains `needle`, ignoring whitespace and miette's margin (it wraps inside names).
pub fn says(err: &str, needle: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '│')
            .collect()
    };
    squash(err).contains(&squash(needle))
}
