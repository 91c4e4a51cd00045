//! Shared helpers of the cassandra_* and codec_* tests: where the real Cassandra fixtures are.
#![allow(dead_code)]

use std::path::PathBuf;

/// The fixture folder: the repository copy (`tests/fixtures/cassandra`), or the shared one
/// when the repository copy is absent.
pub fn fixtures() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cassandra");
    if repo.join("README.md").is_file() {
        return repo;
    }
    let shared = PathBuf::from("/work/shared/fixtures/cassandra");
    assert!(
        shared.join("README.md").is_file(),
        "no Cassandra fixtures in {} or {}",
        repo.display(),
        shared.display()
    );
    shared
}

/// A doc output sample as text.
pub fn sample(name: &str) -> String {
    let p = fixtures().join("doc-output-samples").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every sstable folder of the fixtures: `(format, folder)`.
pub fn sstable_dirs() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for fmt in ["ka", "la", "mc", "me", "na", "nb", "oa", "da"] {
        let base = fixtures().join(fmt).join("legacy_tables");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&base)
            .unwrap_or_else(|e| panic!("{}: {e}", base.display()))
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for d in dirs {
            out.push((fmt.to_string(), d));
        }
    }
    out
}

/// File names of a folder, sorted.
pub fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `data` compressed by the real `lzop` binary (`lzop ARGS -c`; no args: the default level, as
/// the old `cassandra_backups` pipeline ran it), with `name` as the original file name in the
/// header.
pub fn lzop(name: &str, data: &[u8], args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, data).unwrap();
    let out = std::process::Command::new("lzop")
        .args(args)
        .arg("-c")
        .arg(&input)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("lzop must be installed (bash tests/infra/setup.sh)");
    assert!(
        out.status.success(),
        "lzop failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&out.stdout[..4], b"\x89LZO");
    out.stdout
}
