//! Digest files: decimal CRC32 (3.0+) or Adler-32 (2.1/2.2) of the whole Data.db.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use super::sstable::DigestAlgorithm;

/// Errors of Digest reading and verification.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("Digest file {path}: {text:?} is not a decimal checksum")]
    Malformed { path: PathBuf, text: String },
    #[error("{data}: {algorithm:?} is {actual} but {digest} says {expected}")]
    Mismatch {
        data: PathBuf,
        digest: PathBuf,
        algorithm: DigestAlgorithm,
        expected: u32,
        actual: u32,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Parses the content of a Digest file: unsigned decimal, no newline (trailing whitespace
/// tolerated). `path` is only used in the error.
pub fn parse_digest(text: &str, path: &Path) -> Result<u32, DigestError> {
    let t = text.trim_end();
    let malformed = || DigestError::Malformed {
        path: path.to_path_buf(),
        text: text.chars().take(40).collect(),
    };
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    t.parse::<u32>().map_err(|_| malformed())
}

/// Reads a Digest file.
pub fn read_digest_file(path: &Path) -> Result<u32, DigestError> {
    let bytes = std::fs::read(path).map_err(|source| DigestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    parse_digest(&text, path)
}

/// An incremental checksum of either algorithm.
#[derive(Clone)]
pub enum Checksum {
    Crc32(crc32fast::Hasher),
    Adler32(adler2::Adler32),
}

impl Checksum {
    pub fn new(algorithm: DigestAlgorithm) -> Checksum {
        match algorithm {
            DigestAlgorithm::Crc32 => Checksum::Crc32(crc32fast::Hasher::new()),
            DigestAlgorithm::Adler32 => Checksum::Adler32(adler2::Adler32::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Checksum::Crc32(h) => h.update(bytes),
            Checksum::Adler32(h) => h.write_slice(bytes),
        }
    }

    pub fn value(&self) -> u32 {
        match self {
            Checksum::Crc32(h) => h.clone().finalize(),
            Checksum::Adler32(h) => h.checksum(),
        }
    }
}

/// Checksum of a whole stream, read in 256 KiB chunks.
pub fn checksum_reader<R: Read>(mut r: R, algorithm: DigestAlgorithm) -> io::Result<(u32, u64)> {
    let mut c = Checksum::new(algorithm);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        c.update(&buf[..n]);
        total += n as u64;
    }
    Ok((c.value(), total))
}

/// Checksum of a file.
pub fn checksum_file(path: &Path, algorithm: DigestAlgorithm) -> Result<u32, DigestError> {
    let f = std::fs::File::open(path).map_err(|source| DigestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    checksum_reader(f, algorithm)
        .map(|(v, _)| v)
        .map_err(|source| DigestError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Verifies `data` (a Data.db) against its Digest file; the algorithm follows the digest's
/// suffix (`.crc32` → CRC32, `.adler32`/`.sha1` → Adler-32). Returns the checksum.
pub fn verify_data_file(data: &Path, digest: &Path) -> Result<u32, DigestError> {
    let algorithm = if digest.extension().and_then(|e| e.to_str()) == Some("crc32") {
        DigestAlgorithm::Crc32
    } else {
        DigestAlgorithm::Adler32
    };
    let expected = read_digest_file(digest)?;
    let actual = checksum_file(data, algorithm)?;
    if actual != expected {
        return Err(DigestError::Mismatch {
            data: data.to_path_buf(),
            digest: digest.to_path_buf(),
            algorithm,
            expected,
            actual,
        });
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_tolerates_trailing_whitespace_only() {
        let p = Path::new("x-Digest.crc32");
        assert_eq!(parse_digest("3400459090", p).unwrap(), 3400459090);
        assert_eq!(parse_digest("34605693\n", p).unwrap(), 34605693);
        for bad in ["", " 1", "-1", "4294967296", "12 ab", "0x10"] {
            assert!(parse_digest(bad, p).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn known_checksums() {
        let mut c = Checksum::new(DigestAlgorithm::Adler32);
        c.update(b"Wikipedia");
        assert_eq!(c.value(), 0x11E60398);
        let mut c = Checksum::new(DigestAlgorithm::Crc32);
        c.update(b"123456789");
        assert_eq!(c.value(), 0xCBF43926);
    }
}
