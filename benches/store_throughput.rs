//! Store throughput benchmark: cbk's S3 store against `rclone copy`, in one run, on the same
//! files and the same server (Garage when built, else moto), plus cbk's peak memory while
//! streaming a 5 GiB object. Run: `cargo bench --bench store_throughput` (see BENCHMARKS.md).
//! Environment: BENCH_TOTAL_MIB (default 1024), BENCH_FILES (4), BENCH_BIG_GIB (5).

#[path = "../tests/it/support/s3.rs"]
mod s3support;

use cbk::store::s3::S3Store;
use cbk::store::{NoCheckpoint, PutStreamOptions, Store};
use s3support::{Garage, GenReader, Moto, S3Server, file_crc32, new_bucket, storage_config};
use std::process::Command;
use std::time::Instant;

const MIB: u64 = 1024 * 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rclone(server: &dyn S3Server, args: &[&str]) -> f64 {
    let c = server.credentials();
    let start = Instant::now();
    let status = Command::new("rclone")
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
        .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
        .env("RCLONE_CONFIG_BENCH_ENDPOINT", server.endpoint())
        .env("RCLONE_CONFIG_BENCH_REGION", "us-east-1")
        .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", &c.access_key_id)
        .env(
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY",
            &c.secret_access_key,
        )
        .args(args)
        .args([
            "--s3-chunk-size",
            "16M",
            "--s3-upload-cutoff",
            "16M",
            "--s3-upload-concurrency",
            "4",
            "--transfers",
            "2",
            "--s3-no-head",
            "--checkers",
            "2",
        ])
        .status()
        .expect("run rclone");
    assert!(status.success(), "rclone {args:?} failed");
    start.elapsed().as_secs_f64()
}

/// The child mode: stream a generated object of `gib` GiB and print VmHWM.
/// Credentials come through the environment (never argv).
async fn memory_child(endpoint: &str, bucket: &str, gib: u64) {
    let ak = std::env::var("BENCH_CHILD_AK").unwrap();
    let sk = std::env::var("BENCH_CHILD_SK").unwrap();
    let cfg = storage_config(endpoint, bucket, "mem");
    let store = S3Store::new(
        &cfg,
        Some(cbk::store::Credentials {
            access_key_id: ak,
            secret_access_key: sk,
            session_token: None,
        }),
    )
    .await
    .unwrap();
    let before = vm_hwm_kib();
    let start = Instant::now();
    let stats = store
        .put_stream(
            "big.bin",
            &mut GenReader::new(gib * 1024 * MIB, 5),
            PutStreamOptions {
                sealer: None,
                resume: None,
                checkpoint: &NoCheckpoint,
                progress: &|_| {},
            },
        )
        .await
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "MEM size={} parts={} secs={secs:.1} hwm_before_kib={before} hwm_kib={}",
        stats.size,
        stats.parts_sent,
        vm_hwm_kib()
    );
    store.delete_many(&["big.bin".to_string()]).await.unwrap();
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MIB as f64 / secs
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--memory-child") {
        let gib = args[4].parse().unwrap();
        return memory_child(&args[2], &args[3], gib).await;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    let total = env_u64("BENCH_TOTAL_MIB", 1024) * MIB;
    let nfiles = env_u64("BENCH_FILES", 4);
    let big_gib = env_u64("BENCH_BIG_GIB", 5);
    let garage = Garage::start_or_skip("store_throughput (falling back to moto)");
    let moto;
    let server: &dyn S3Server = match &garage {
        Some(g) => g,
        None => {
            moto = Moto::start();
            &moto
        }
    };
    let bucket = new_bucket(server).await;
    println!("server: {} at {}", server.name(), server.endpoint());

    // Source files on disk (random bytes, so compression cannot help anyone).
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let per_file = total / nfiles;
    for i in 0..nfiles {
        std::fs::write(
            src.join(format!("f{i}.bin")),
            GenReader::bytes(per_file, 1000 + i),
        )
        .unwrap();
    }
    let bytes = per_file * nfiles;
    let cfg = storage_config(&server.endpoint(), &bucket, "cbk");
    let store = S3Store::new(&cfg, Some(server.credentials()))
        .await
        .unwrap();
    let names: Vec<String> = (0..nfiles).map(|i| format!("f{i}.bin")).collect();

    // cbk upload: 2 files at a time, 16 MiB parts × 4 in flight each (same as rclone below).
    let start = Instant::now();
    let uploads = names.iter().map(|n| {
        let store = &store;
        let path = src.join(n);
        async move {
            let mut f = tokio::fs::File::open(&path).await.unwrap();
            store
                .put_stream(
                    n,
                    &mut f,
                    PutStreamOptions {
                        sealer: None,
                        resume: None,
                        checkpoint: &NoCheckpoint,
                        progress: &|_| {},
                    },
                )
                .await
                .unwrap();
        }
    });
    use futures::StreamExt;
    futures::stream::iter(uploads)
        .buffer_unordered(2)
        .collect::<Vec<_>>()
        .await;
    let cbk_up = start.elapsed().as_secs_f64();

    let dst = work.path().join("cbk-down");
    let start = Instant::now();
    futures::stream::iter(names.iter().map(|n| {
        let store = &store;
        let path = dst.join(n);
        async move {
            store.get_to_file(n, &path).await.unwrap();
        }
    }))
    .buffer_unordered(2)
    .collect::<Vec<_>>()
    .await;
    let cbk_down = start.elapsed().as_secs_f64();
    for n in &names {
        assert_eq!(file_crc32(&dst.join(n)), file_crc32(&src.join(n)), "{n}");
    }
    std::fs::remove_dir_all(&dst).unwrap();

    let remote = format!("bench:{bucket}/rclone");
    let rclone_up = rclone(server, &["copy", src.to_str().unwrap(), &remote]);
    let rdst = work.path().join("rclone-down");
    let rclone_down = rclone(server, &["copy", &remote, rdst.to_str().unwrap()]);
    for n in &names {
        assert_eq!(file_crc32(&rdst.join(n)), file_crc32(&src.join(n)), "{n}");
    }
    std::fs::remove_dir_all(&rdst).unwrap();
    std::fs::remove_dir_all(&src).unwrap();

    println!(
        "files: {nfiles} × {} MiB = {} MiB",
        per_file / MIB,
        bytes / MIB
    );
    println!(
        "upload:   cbk {:.0} MiB/s ({cbk_up:.1} s), rclone {:.0} MiB/s ({rclone_up:.1} s), cbk/rclone = {:.2}",
        mbps(bytes, cbk_up),
        mbps(bytes, rclone_up),
        rclone_up / cbk_up
    );
    println!(
        "download: cbk {:.0} MiB/s ({cbk_down:.1} s), rclone {:.0} MiB/s ({rclone_down:.1} s), cbk/rclone = {:.2}",
        mbps(bytes, cbk_down),
        mbps(bytes, rclone_down),
        rclone_down / cbk_down
    );

    // Peak memory of a 5 GiB streamed put, measured in a fresh process.
    if big_gib > 0 {
        let c = server.credentials();
        let out = Command::new(&args[0])
            .args([
                "--memory-child",
                &server.endpoint(),
                &bucket,
                &big_gib.to_string(),
            ])
            .env("BENCH_CHILD_AK", &c.access_key_id)
            .env("BENCH_CHILD_SK", &c.secret_access_key)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(hwm) = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("hwm_kib="))
            .and_then(|v| v.parse::<u64>().ok())
        {
            println!(
                "peak memory (VmHWM) streaming {big_gib} GiB: {:.0} MB (target < 150 MB)",
                hwm as f64 * 1024.0 / 1e6
            );
        }
    }
}
