//! The loader must never panic: arbitrary bytes and mutated valid plans go through loading,
//! compiling and every renderer. `fuzz_campaign` (ignored) runs the same for a fixed time; see
//! docs/fuzzing.md.

use cbk::graph::compile_source;
use cbk::render;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;

/// TOML and template fragments the mutator splices in.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "=",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "\\u0000",
    "\u{0}",
    "\u{feff}",
    "é",
    "1e400",
    "-0",
    "0x7fffffffffffffff",
    "99999999999999999999",
    "true",
    "nan",
    "inf",
    "1979-05-27T07:32:00Z",
    "{{",
    "}}",
    "{%",
    "%}",
    "{{ now }}",
    "{{ now | strftime('%U') }}",
    "{{ host }}",
    "{{ dc }}",
    "%",
    "%Y",
    "%Q",
    "%-",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "\n[[step]]\nname = \"x\"\nrun = \"true\"\n",
    "after = [\"x\"]\n",
    "before = [\"probe\"]\n",
    "on = \"controller\"\n",
    "on = []\n",
    "barrier = true\n",
    "rolling = true\n",
    "\n[restore]\nsource = \"latest\"\n",
    "\n[restore.host_map]\na = \"b\"\n",
    "kind = \"runbook\"\n",
    "kind = \"restore\"\n",
    "method = \"loader\"\n",
    "mode = \"incremental\"\n",
    "secret_access_key = \"x\"\n",
    "password = \"p\"\n",
    "hosts = []\n",
    "hosts = [{}]\n",
    "include = [\"*\"]\n",
    "include = [\"a.{b\"]\n",
    "url = \"file://\"\n",
    "url = \"s3://\"\n",
];

fn plans() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plans");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

/// The largest char boundary of `s` at or below `i`.
fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Applies 1-8 random edits to `src` (on char boundaries).
fn mutate(src: &str, rng: &mut StdRng) -> String {
    let mut s = src.to_owned();
    for _ in 0..rng.random_range(1..=8) {
        let bounds: Vec<usize> = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect();
        let a = bounds[rng.random_range(0..bounds.len())];
        let b = bounds[rng.random_range(0..bounds.len())];
        let (lo, hi) = (a.min(b), a.max(b));
        match rng.random_range(0..6) {
            0 => s.replace_range(lo..floor(&s, hi.min(lo + 16)), ""),
            1 => s.insert_str(lo, TOKENS[rng.random_range(0..TOKENS.len())]),
            2 => {
                let piece = s[lo..floor(&s, hi.min(lo + 64))].to_owned();
                s.insert_str(hi, &piece);
            }
            3 => {
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 1 {
                    let i = rng.random_range(0..lines.len());
                    let j = rng.random_range(0..lines.len());
                    lines.swap(i, j);
                }
                s = lines.join("\n");
            }
            4 => {
                let c = char::from_u32(rng.random_range(0..0x11000)).unwrap_or('\u{fffd}');
                s.insert(lo, c);
            }
            _ => s.replace_range(
                lo..floor(&s, hi.min(lo + 4)),
                TOKENS[rng.random_range(0..TOKENS.len())],
            ),
        }
    }
    s
}

/// Loads, compiles and renders; panics only if cbk panics.
fn exercise(src: &str) {
    let now = "2026-11-25T03:00:00Z".parse().unwrap();
    match compile_source("fuzz.toml", src, now) {
        Ok(run) => {
            let _ = render::human(&run, render::HumanOptions::default());
            let _ = render::json(&run);
            let md = render::markdown(&run);
            assert!(md.len() < render::MARKDOWN_LIMIT);
            let _ = render::dot(&run);
        }
        Err(cbk::graph::PlanError::Invalid(d)) => {
            assert!(!d.items.is_empty());
            let _ = d.render(80, false);
        }
        Err(_) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        exercise(&text);
    }

    #[test]
    fn mutated_plans_never_panic(seed in any::<u64>()) {
        let plans = plans();
        let mut rng = StdRng::seed_from_u64(seed);
        let base = &plans[rng.random_range(0..plans.len())];
        exercise(&mutate(base, &mut rng));
    }
}

/// A time-bound campaign: `CBK_FUZZ_SECONDS` (default 600) of mutated plans and random bytes.
/// A crashing input is written to `target/fuzz-crash-SEED.toml`.
#[test]
#[ignore = "long-running fuzz campaign; see docs/fuzzing.md"]
fn fuzz_campaign() {
    let secs: u64 = std::env::var("CBK_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let start_seed: u64 = std::env::var("CBK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("fuzz campaign: {secs}s from seed {start_seed}");
    let plans = plans();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut n: u64 = 0;
    while std::time::Instant::now() < deadline {
        let seed = start_seed.wrapping_add(n);
        let mut rng = StdRng::seed_from_u64(seed);
        let input = if rng.random_range(0..10) == 0 {
            let len = rng.random_range(0..1024);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let base = &plans[rng.random_range(0..plans.len())];
            let mut s = mutate(base, &mut rng);
            for _ in 0..rng.random_range(0..3) {
                s = mutate(&s, &mut rng);
            }
            s
        };
        if std::panic::catch_unwind(|| exercise(&input)).is_err() {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("target/fuzz-crash-{seed}.toml"));
            std::fs::write(&path, &input).unwrap();
            panic!("crash with seed {seed}; input saved to {}", path.display());
        }
        n += 1;
    }
    eprintln!("fuzz campaign: {n} inputs, no crash");
}
