//! lzop read support against the real `lzop` binary: every fixture file, several levels and
//! checksum kinds, multi-block inputs, and corrupt or truncated files (clear errors, no panic).

use crate::cassandra_support;

use std::path::{Path, PathBuf};

use cbk::codec::lzop::{LzopError, LzopReader};
use cbk::codec::{Codec, CodecError, decode, decode_async};

/// Runs `lzop <args> -c` on `data`, returns the .lzo bytes.
fn lzop(data: &[u8], args: &[&str]) -> Vec<u8> {
    cassandra_support::lzop("in.bin", data, args)
}

fn unlzop(lzo: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    decode(Codec::Lzop, lzo, &mut out)?;
    Ok(out)
}

fn all_fixture_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for (_, dir) in cassandra_support::sstable_dirs() {
        for f in cassandra_support::file_names(&dir) {
            v.push(dir.join(f));
        }
    }
    v
}

/// Compressible text mixed with incompressible bytes (so some blocks are stored raw).
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / 100_000) % 3 == 2 {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(format!("key{:05} value {} ", x % 5000, x % 17).as_bytes());
        }
    }
    out.truncate(len);
    out
}

#[test]
fn every_fixture_file_decodes_byte_equal() {
    let files = all_fixture_files();
    assert_eq!(files.len(), 95, "sstable fixture files");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for args in [&[][..], &["-9"][..], &["-1", "--crc32"][..]] {
            let lzo = lzop(&data, args);
            let back = unlzop(&lzo).unwrap_or_else(|e| panic!("{} {args:?}: {e}", f.display()));
            assert_eq!(back, data, "{} {args:?}", f.display());
        }
    }
}

#[test]
fn header_fields_are_read() {
    let lzo = lzop(b"hello", &[]);
    let r = LzopReader::new(&lzo[..]).unwrap();
    let h = r.header();
    assert_eq!(h.name, "in.bin");
    assert!(h.version >= 0x1030, "{:#x}", h.version);
    assert_eq!(h.method, 1);
    assert!(h.mtime > 1_600_000_000);
}

#[test]
fn multi_block_inputs() {
    // lzop blocks are 256 KiB: 1.3 MiB gives 6 blocks, some stored raw (random parts).
    for (len, args) in [
        (1_300_000usize, &[][..]),
        (600_000, &["--crc32"][..]),
        (262_144, &["-9"][..]),
        (0, &[][..]),
    ] {
        let data = mixed(len, len as u64 + 7);
        let lzo = lzop(&data, args);
        assert_eq!(unlzop(&lzo).unwrap(), data, "len {len} {args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_decode_streams() {
    use tokio::io::AsyncReadExt;
    let data = mixed(900_000, 3);
    let lzo = lzop(&data, &[]);
    let mut r = decode_async(Codec::Lzop, std::io::Cursor::new(lzo.clone()));
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, data);

    // A corrupt block fails the stream instead of ending it early.
    let mut bad = lzo;
    let n = bad.len();
    bad[n / 2] ^= 0x55;
    let mut r = decode_async(Codec::Lzop, std::io::Cursor::new(bad));
    let mut out = Vec::new();
    let e = r.read_to_end(&mut out).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert!(out.len() < data.len());
}

fn assert_lzop_err(lzo: &[u8], check: impl Fn(&LzopError) -> bool, what: &str) {
    match unlzop(lzo) {
        Err(CodecError::Lzop(e)) => assert!(check(&e), "{what}: unexpected error {e}"),
        Err(e) => panic!("{what}: not an lzop error: {e}"),
        Ok(_) => panic!("{what}: corrupt input decoded"),
    }
}

#[test]
fn corrupt_inputs_give_clear_errors() {
    let data = mixed(700_000, 11);
    let lzo = lzop(&data, &[]);

    assert_lzop_err(
        b"\x89LZX\0\r\n\x1a\n....",
        |e| matches!(e, LzopError::BadMagic),
        "magic",
    );
    assert_lzop_err(
        &lzo[..20],
        |e| matches!(e, LzopError::Truncated(_)),
        "short header",
    );
    assert_lzop_err(
        &lzo[..lzo.len() - 4],
        |e| matches!(e, LzopError::Truncated(_)),
        "no end marker",
    );
    assert_lzop_err(
        &lzo[..lzo.len() / 2],
        |e| matches!(e, LzopError::Truncated(_)),
        "half",
    );

    // Header byte flipped (the mode field) -> header checksum.
    let mut h = lzo.clone();
    h[22] ^= 0x01;
    assert_lzop_err(
        &h,
        |e| matches!(e, LzopError::HeaderChecksum { .. }),
        "header",
    );

    // Data byte flipped in the middle -> a block checksum (or LZO) error naming the block.
    let mut d = lzo.clone();
    let n = d.len();
    d[n / 3] ^= 0x10;
    assert_lzop_err(
        &d,
        |e| {
            e.to_string().starts_with("lzop block ")
                || matches!(e, LzopError::Truncated(_) | LzopError::TrailingData(_))
        },
        "data",
    );

    // Trailing garbage after the end marker.
    let mut t = lzo.clone();
    t.extend_from_slice(b"junk");
    assert_lzop_err(&t, |e| matches!(e, LzopError::TrailingData(4)), "trailing");

    // Every single-byte corruption of a small file: an error, or (when the flip turns a back
    // reference into an equivalent one in repetitive data) the original bytes — never wrong
    // data and never a panic.
    let original = mixed(3000, 5);
    let small = lzop(&original, &[]);
    let mut errors = 0;
    for i in 9..small.len() {
        let mut c = small.clone();
        c[i] ^= 0xa5;
        match unlzop(&c) {
            Err(_) => errors += 1,
            Ok(out) => assert_eq!(out, original, "flip at {i} gave wrong data"),
        }
    }
    assert!(errors > small.len() * 9 / 10, "{errors} errors");
}

#[test]
fn message_names_the_problem() {
    let lzo = lzop(&mixed(300_000, 2), &[]);
    let mut d = lzo.clone();
    let n = d.len();
    d[n - 100] ^= 0x01;
    let e = unlzop(&d).unwrap_err().to_string();
    assert!(e.starts_with("lzop block 2:"), "{e}");
    let _ = Path::new("");
}
