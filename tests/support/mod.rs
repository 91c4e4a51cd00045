//! Helpers shared by the integration tests (each test file includes this with `mod support;`).
#![allow(dead_code)]

pub mod cluster;
pub mod crash;
pub mod e2e;
pub mod emu;
pub mod s3;

/// Runs the cbk binary with `args` and the environment `envs` (colours off); returns (exit
/// code, stdout + stderr).
pub fn run_cbk(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cbk"))
        .args(args)
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
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
