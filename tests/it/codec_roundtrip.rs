//! Round trips of none/lz4/zstd (sync and async), corrupt-input errors, and the formats being
//! the standard ones (the `zstd` CLI reads what cbk writes).

use std::io::Cursor;
use std::process::Command;

use cbk::codec::{Codec, Encoder, decode, decode_async, encode, encode_async};
use proptest::prelude::*;
use tokio::io::AsyncReadExt;

const WRITABLE: [Codec; 4] = [
    Codec::None,
    Codec::Lz4,
    Codec::Zstd { level: 1 },
    Codec::Zstd { level: 3 },
];

fn roundtrip(codec: Codec, data: &[u8]) -> Vec<u8> {
    let mut z = Vec::new();
    let n = encode(codec, data, &mut z).unwrap();
    assert_eq!(n, data.len() as u64);
    let mut back = Vec::new();
    let m = decode(codec, &z[..], &mut back).unwrap();
    assert_eq!(m, data.len() as u64);
    back
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn sync_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..200_000), rep in 0usize..4) {
        // Repeat to get compressible inputs too.
        let data: Vec<u8> = data.iter().copied().cycle().take(data.len() * (rep + 1)).collect();
        for c in WRITABLE {
            prop_assert_eq!(roundtrip(c, &data), data.clone());
        }
    }
}

#[test]
fn compresses_compressible_data() {
    let data: Vec<u8> = (0..2_000_000u32)
        .flat_map(|i| format!("{} ", i % 1000).into_bytes())
        .take(2_000_000)
        .collect();
    for c in [Codec::Lz4, Codec::Zstd { level: 3 }] {
        let mut z = Vec::new();
        encode(c, &data[..], &mut z).unwrap();
        assert!(
            z.len() < data.len() / 4,
            "{c}: {} -> {}",
            data.len(),
            z.len()
        );
    }
}

#[test]
fn encoder_as_writer() {
    let mut e = Encoder::new(Codec::Zstd { level: 2 }, Vec::new()).unwrap();
    for i in 0..1000 {
        std::io::Write::write_all(&mut e, format!("line {i}\n").as_bytes()).unwrap();
    }
    let z = e.finish().unwrap();
    let mut out = Vec::new();
    decode(Codec::Zstd { level: 2 }, &z[..], &mut out).unwrap();
    assert!(out.starts_with(b"line 0\nline 1\n") && out.ends_with(b"line 999\n"));
}

#[test]
fn zstd_cli_reads_cbk_output() {
    if Command::new("zstd").arg("--version").output().is_err() {
        panic!("zstd CLI missing: run bash tests/infra/setup.sh");
    }
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let p = dir.path().join("x.zst");
    let mut z = Vec::new();
    encode(Codec::Zstd { level: 3 }, &data[..], &mut z).unwrap();
    std::fs::write(&p, &z).unwrap();
    let out = Command::new("zstd")
        .args(["-d", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
}

#[test]
fn corrupt_streams_are_errors() {
    let data: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i % 300).to_le_bytes())
        .collect();
    for c in [Codec::Lz4, Codec::Zstd { level: 3 }] {
        let mut z = Vec::new();
        encode(c, &data[..], &mut z).unwrap();
        // Truncated anywhere, including exactly at a block boundary (before the end mark).
        for cut in [1, 4, 5, 8, 9, z.len() / 2, z.len() - 1] {
            let mut out = Vec::new();
            assert!(
                decode(c, &z[..z.len() - cut], &mut out).is_err(),
                "{c} cut {cut}"
            );
        }
        // Flipped byte in the payload (content checksums are on).
        let mut bad = z.clone();
        let n = bad.len();
        bad[n / 2] ^= 0x40;
        let mut out = Vec::new();
        let r = decode(c, &bad[..], &mut out);
        assert!(
            r.is_err() || out == data,
            "{c}: corrupt input gave wrong data"
        );
        // Not that format at all.
        assert!(
            decode(c, &b"definitely not compressed"[..], &mut Vec::new()).is_err(),
            "{c}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_roundtrip_large() {
    // 24 MiB through a 256 KiB pipe: bounded memory, correct bytes.
    let data: Vec<u8> = (0..6_000_000u32)
        .flat_map(|i| (i / 3).to_le_bytes())
        .collect();
    for c in WRITABLE {
        let enc = encode_async(c, Cursor::new(data.clone())).unwrap();
        let mut dec = decode_async(c, enc);
        let mut back = Vec::with_capacity(data.len());
        dec.read_to_end(&mut back).await.unwrap();
        assert!(back == data, "{c}");
    }
    assert!(encode_async(Codec::Lzop, Cursor::new(Vec::new())).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_decode_error_is_not_eof() {
    let mut r = decode_async(
        Codec::Zstd { level: 3 },
        Cursor::new(b"garbage garbage".to_vec()),
    );
    let mut out = Vec::new();
    assert!(r.read_to_end(&mut out).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_reader_stops_the_codec_thread() {
    // A huge input; read a little, drop: the blocking thread must end (broken pipe), not hang.
    let data = vec![7u8; 64 << 20];
    let mut r = encode_async(Codec::None, Cursor::new(data)).unwrap();
    let mut buf = [0u8; 1024];
    r.read_exact(&mut buf).await.unwrap();
    drop(r);
    // If the thread hung, the runtime shutdown at the end of the test would block forever;
    // give it a moment to observe the closed pipe.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}
