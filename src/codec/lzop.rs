//! Reading lzop (`.lzo`) files, as written by `lzop` for cassandra_backups/cassandra_snapshotter.
//!
//! Container (lzop 1.x): magic `\x89LZO\0\r\n\x1a\n`; header (version, library version,
//! version needed, method, level, flags, [filter], mode, mtime low/high, name, header checksum
//! — Adler-32, or CRC32 with flag `F_H_CRC32`; optional extra field); then blocks of
//! `u32 uncompressed len` (0 = end), `u32 compressed len`, checksums selected by the flags
//! (uncompressed Adler-32/CRC32, and compressed ones only when the block is compressed), and the
//! data — stored raw when both lengths are equal. All integers are big-endian.

use std::io::{self, Read};

use super::lzo1x;

/// lzop file magic.
pub const MAGIC: [u8; 9] = [0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a];

const F_ADLER32_D: u32 = 0x0001;
const F_ADLER32_C: u32 = 0x0002;
const F_H_EXTRA_FIELD: u32 = 0x0040;
const F_CRC32_D: u32 = 0x0100;
const F_CRC32_C: u32 = 0x0200;
const F_MULTIPART: u32 = 0x0400;
const F_H_FILTER: u32 = 0x0800;
const F_H_CRC32: u32 = 0x1000;
/// lzop's own limit on a block.
const MAX_BLOCK: usize = 64 * 1024 * 1024;

/// A bad or unsupported lzop file.
#[derive(Debug, thiserror::Error)]
pub enum LzopError {
    #[error("not an lzop file (bad magic)")]
    BadMagic,
    #[error("lzop file ends early (in the {0})")]
    Truncated(&'static str),
    #[error("lzop header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    HeaderChecksum { stored: u32, computed: u32 },
    #[error("unsupported lzop file: {0}")]
    Unsupported(String),
    #[error(
        "lzop block {block}: {what} checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    BlockChecksum {
        block: u64,
        what: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("lzop block {block}: {reason}")]
    BadBlock { block: u64, reason: String },
    #[error("lzop block {block}: {source}")]
    Lzo {
        block: u64,
        source: lzo1x::Lzo1xError,
    },
    #[error("{0} bytes of trailing data after the lzop end marker")]
    TrailingData(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<LzopError> for io::Error {
    fn from(e: LzopError) -> io::Error {
        match e {
            LzopError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// The fields of an lzop header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LzopHeader {
    pub version: u16,
    pub lib_version: u16,
    pub version_needed: Option<u16>,
    /// 1 = LZO1X-1, 2 = LZO1X-1(15), 3 = LZO1X-999.
    pub method: u8,
    pub level: Option<u8>,
    pub flags: u32,
    pub mode: u32,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Original file name (may be empty).
    pub name: String,
}

enum Sum {
    Adler(adler2::Adler32),
    Crc(crc32fast::Hasher),
}

impl Sum {
    fn update(&mut self, b: &[u8]) {
        match self {
            Sum::Adler(a) => a.write_slice(b),
            Sum::Crc(c) => c.update(b),
        }
    }
    fn value(&self) -> u32 {
        match self {
            Sum::Adler(a) => a.checksum(),
            Sum::Crc(c) => c.clone().finalize(),
        }
    }
}

fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<(), LzopError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            LzopError::Truncated(what)
        } else {
            LzopError::Io(e)
        }
    })
}

/// Reads header fields while checksumming them.
struct HeaderReader<'a, R> {
    r: &'a mut R,
    sum: Vec<u8>,
}

impl<R: Read> HeaderReader<'_, R> {
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, LzopError> {
        let mut b = vec![0u8; n];
        read_exact_or(self.r, &mut b, "header")?;
        self.sum.extend_from_slice(&b);
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, LzopError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LzopError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, LzopError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn read_u32<R: Read>(r: &mut R, what: &'static str) -> Result<u32, LzopError> {
    let mut b = [0u8; 4];
    read_exact_or(r, &mut b, what)?;
    Ok(u32::from_be_bytes(b))
}

fn checksum_of(flags: u32, bytes: &[u8]) -> u32 {
    let mut s = if flags & F_H_CRC32 != 0 {
        Sum::Crc(crc32fast::Hasher::new())
    } else {
        Sum::Adler(adler2::Adler32::new())
    };
    s.update(bytes);
    s.value()
}

/// Parses the magic and header.
pub fn read_header<R: Read>(r: &mut R) -> Result<LzopHeader, LzopError> {
    let mut magic = [0u8; 9];
    read_exact_or(r, &mut magic, "magic")?;
    if magic != MAGIC {
        return Err(LzopError::BadMagic);
    }
    let mut h = HeaderReader { r, sum: Vec::new() };
    let version = h.u16()?;
    if version < 0x0900 {
        return Err(LzopError::Unsupported(format!(
            "lzop format version {version:#06x}"
        )));
    }
    let lib_version = h.u16()?;
    let version_needed = if version >= 0x0940 {
        Some(h.u16()?)
    } else {
        None
    };
    if version_needed.is_some_and(|v| v > 0x1040) {
        return Err(LzopError::Unsupported(format!(
            "needs lzop {:#06x} to extract",
            version_needed.unwrap_or(0)
        )));
    }
    let method = h.u8()?;
    if !(1..=3).contains(&method) {
        return Err(LzopError::Unsupported(format!(
            "compression method {method} (only LZO1X)"
        )));
    }
    let level = if version >= 0x0940 {
        Some(h.u8()?)
    } else {
        None
    };
    let flags = h.u32()?;
    if flags & F_H_FILTER != 0 {
        return Err(LzopError::Unsupported(
            "filtered lzop files (lzop -F)".into(),
        ));
    }
    if flags & F_MULTIPART != 0 {
        return Err(LzopError::Unsupported("multipart lzop files".into()));
    }
    let mode = h.u32()?;
    let mtime_low = h.u32()?;
    let mtime_high = if version >= 0x0940 { h.u32()? } else { 0 };
    let name_len = usize::from(h.u8()?);
    let name = String::from_utf8_lossy(&h.bytes(name_len)?).into_owned();
    let computed = checksum_of(flags, &h.sum);
    let stored = read_u32(h.r, "header")?;
    if stored != computed {
        return Err(LzopError::HeaderChecksum { stored, computed });
    }
    if flags & F_H_EXTRA_FIELD != 0 {
        let mut e = HeaderReader { r, sum: Vec::new() };
        let len = e.u32()? as usize;
        if len > 1 << 20 {
            return Err(LzopError::Unsupported(format!(
                "extra field of {len} bytes"
            )));
        }
        e.bytes(len)?;
        let computed = checksum_of(flags, &e.sum);
        let stored = read_u32(e.r, "header extra field")?;
        if stored != computed {
            return Err(LzopError::HeaderChecksum { stored, computed });
        }
    }
    Ok(LzopHeader {
        version,
        lib_version,
        version_needed,
        method,
        level,
        flags,
        mode,
        mtime: (u64::from(mtime_high) << 32) | u64::from(mtime_low),
        name,
    })
}

/// A streaming lzop decoder: one block (≤ 64 MiB, 256 KiB by default) in memory at a time.
pub struct LzopReader<R> {
    inner: R,
    header: LzopHeader,
    block: Vec<u8>,
    pos: usize,
    blocks: u64,
    done: bool,
}

impl<R: Read> LzopReader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<LzopReader<R>, LzopError> {
        let header = read_header(&mut inner)?;
        Ok(LzopReader {
            inner,
            header,
            block: Vec::new(),
            pos: 0,
            blocks: 0,
            done: false,
        })
    }

    pub fn header(&self) -> &LzopHeader {
        &self.header
    }

    fn verify(
        &self,
        what: &'static str,
        stored: Option<(u32, bool)>,
        data: &[u8],
    ) -> Result<(), LzopError> {
        if let Some((stored, crc)) = stored {
            let computed = if crc {
                crc32fast::hash(data)
            } else {
                adler2::adler32_slice(data)
            };
            if computed != stored {
                return Err(LzopError::BlockChecksum {
                    block: self.blocks,
                    what,
                    stored,
                    computed,
                });
            }
        }
        Ok(())
    }

    /// Loads the next block; false at the end marker.
    fn next_block(&mut self) -> Result<bool, LzopError> {
        let flags = self.header.flags;
        let dst_len = read_u32(&mut self.inner, "block header")? as usize;
        if dst_len == 0 {
            let mut rest = Vec::new();
            let n = (&mut self.inner).take(1 << 20).read_to_end(&mut rest)?;
            if n > 0 {
                return Err(LzopError::TrailingData(n as u64));
            }
            return Ok(false);
        }
        self.blocks += 1;
        let bad = |reason: String| LzopError::BadBlock {
            block: self.blocks,
            reason,
        };
        if dst_len > MAX_BLOCK {
            return Err(bad(format!(
                "declared size {dst_len} exceeds lzop's 64 MiB limit"
            )));
        }
        let src_len = read_u32(&mut self.inner, "block header")? as usize;
        if src_len == 0 || src_len > dst_len {
            return Err(bad(format!(
                "compressed size {src_len} for {dst_len} bytes"
            )));
        }
        let mut opt = |flag: u32, crc: bool| -> Result<Option<(u32, bool)>, LzopError> {
            if flags & flag != 0 {
                Ok(Some((read_u32(&mut self.inner, "block checksums")?, crc)))
            } else {
                Ok(None)
            }
        };
        let d_adler = opt(F_ADLER32_D, false)?;
        let d_crc = opt(F_CRC32_D, true)?;
        let compressed = src_len < dst_len;
        let (c_adler, c_crc) = if compressed {
            (opt(F_ADLER32_C, false)?, opt(F_CRC32_C, true)?)
        } else {
            (None, None)
        };
        let mut data = vec![0u8; src_len];
        read_exact_or(&mut self.inner, &mut data, "block data")?;
        let plain = if compressed {
            self.verify("compressed Adler-32", c_adler, &data)?;
            self.verify("compressed CRC32", c_crc, &data)?;
            lzo1x::decompress(&data, dst_len).map_err(|source| LzopError::Lzo {
                block: self.blocks,
                source,
            })?
        } else {
            data
        };
        self.verify("Adler-32", d_adler, &plain)?;
        self.verify("CRC32", d_crc, &plain)?;
        self.block = plain;
        self.pos = 0;
        Ok(true)
    }
}

impl<R: Read> Read for LzopReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.block.len() {
            if self.done {
                return Ok(0);
            }
            if !self.next_block()? {
                self.done = true;
                self.block.clear();
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
