//! Benchmark (not a test): compile and render a generated 1,000-host x 300-table backup plan.
//! Targets: under 1 s and under 300 MB peak memory (VmHWM). Run with
//! `cargo bench --bench plan_compile`; results go to BENCHMARKS.md ("Plan compile").

use cbk::graph::compile_source;
use cbk::render;
use std::time::Instant;

const HOSTS: usize = 1_000;
const TABLES: usize = 300;

fn plan_text() -> String {
    let mut s =
        String::from("version = 1\nkind = \"backup\"\n[cluster]\nname = \"bench\"\nhosts = [\n");
    for h in 0..HOSTS {
        s.push_str(&format!(
            "  {{ name = \"cass-{h:04}\", address = \"10.{}.{}.{}\", dc = \"dc{}\", rack = \"r{}\" }},\n",
            h / 65536,
            (h / 256) % 256,
            h % 256,
            h % 3,
            h % 5
        ));
    }
    s.push_str("]\n[storage]\nurl = \"s3://bench-bucket/prod\"\nregion = \"eu-west-1\"\n");
    s.push_str(
        "[backup]\nname = '{{ cluster }}-{{ now | strftime(\"%Y%m%dT%H%MZ\") }}'\ninclude = [\n",
    );
    for t in 0..TABLES {
        s.push_str(&format!("  \"ks{:02}.table_{t:03}\",\n", t / 30));
    }
    s.push_str("]\n");
    s
}

/// Peak resident set size in KiB (Linux `VmHWM`).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time this process has used, in ms: unlike wall time it does not grow
/// when other work shares the machine.
fn cpu_ms() -> f64 {
    // The first field of schedstat is the time spent on a CPU, in nanoseconds.
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

/// Counts bytes written (renders stream to stdout or a file in the CLI; here to nowhere).
#[derive(Default)]
struct Count(usize);

impl std::fmt::Write for Count {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

impl std::io::Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let src = plan_text();
    let now = "2026-11-25T03:00:00Z".parse().expect("valid time");
    let cpu0 = cpu_ms();
    let t0 = Instant::now();
    let run = match compile_source("bench.toml", &src, now) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench plan does not compile: {e}");
            std::process::exit(1);
        }
    };
    let t_compile = t0.elapsed();
    let peak_compile = peak_kib().unwrap_or(0);
    let t1 = Instant::now();
    let mut human = Count::default();
    let _ = render::write_human(&run, render::HumanOptions::default(), &mut human);
    let human = human.0;
    let t_human = t1.elapsed();
    let t2 = Instant::now();
    let mut json = Count::default();
    let _ = render::write_json(&run, &mut json);
    let json = json.0;
    let t_json = t2.elapsed();
    let t3 = Instant::now();
    let md = render::markdown(&run).len();
    let t_md = t3.elapsed();
    let t4 = Instant::now();
    let mut dot = Count::default();
    let _ = render::write_dot(&run, &mut dot);
    let dot = dot.0;
    let t_dot = t4.elapsed();
    let total = t0.elapsed();
    let cpu = cpu_ms() - cpu0;
    let peak = peak_kib().unwrap_or(0);
    println!(
        "plan_compile: {HOSTS} hosts x {TABLES} tables = {} tasks",
        run.tasks.len()
    );
    println!(
        "  compile   {:>8.1} ms  (peak RSS so far {:.1} MB)",
        t_compile.as_secs_f64() * 1e3,
        peak_compile as f64 / 1024.0
    );
    println!(
        "  human     {:>8.1} ms  ({} bytes)",
        t_human.as_secs_f64() * 1e3,
        human
    );
    println!(
        "  json      {:>8.1} ms  ({} bytes)",
        t_json.as_secs_f64() * 1e3,
        json
    );
    println!(
        "  markdown  {:>8.1} ms  ({} bytes)",
        t_md.as_secs_f64() * 1e3,
        md
    );
    println!(
        "  dot       {:>8.1} ms  ({} bytes)",
        t_dot.as_secs_f64() * 1e3,
        dot
    );
    println!(
        "  total     {:>8.1} ms  (target < 1000 ms)",
        total.as_secs_f64() * 1e3
    );
    println!(
        "  cpu       {cpu:>8.1} ms  (on-CPU time of this process; load average {})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or("?")
    );
    println!(
        "  peak RSS  {:>8.1} MB  (VmHWM; target < 300 MB)",
        peak as f64 / 1024.0
    );
    let ok = total.as_secs_f64() < 1.0 && peak < 300 * 1024;
    println!("  result    {}", if ok { "PASS" } else { "FAIL" });
}
