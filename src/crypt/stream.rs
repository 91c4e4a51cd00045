//! The segmented AEAD of data objects, and objects of format 1: the (compressed) bytes of one
//! stored file encrypted with a random data key in 64 KiB segments (RustCrypto
//! `chacha20poly1305`, XChaCha20-Poly1305 in the `aead::stream` STREAM construction). Each
//! segment's nonce carries its index and a last-segment flag, and every segment is bound to the
//! object's key as associated data, so segments cannot be dropped, reordered, truncated or
//! moved to another object undetected. The data key itself is sealed to the recipients in a
//! small `<key>.key` object ([`key_object`]), so changing the recipients re-wraps small objects
//! only.
//!
//! Layout of format 1: `cbk-enc1` (8 bytes), a random 19-byte nonce prefix, then the segments
//! (each at most [`SEGMENT`] plaintext bytes + a 16-byte tag; the last one may be shorter, even
//! empty). cbk now writes format 2 ([`super::parts`]: one such stream per stored part, so an
//! interrupted upload resumes); [`SealWriter`] is kept to show format-1 objects stay readable.

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use std::io::{self, Read, Write};
use zeroize::Zeroizing;

/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
pub(super) const TAG: usize = 16;
const MAGIC: &[u8; 8] = b"cbk-enc1";
pub(super) const NONCE: usize = 19;

/// A fresh random data key.
pub fn new_data_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::Rng::fill(&mut rand::rng(), &mut k[..]);
    k
}

/// Key of the small object holding the sealed data key of the data object `key`.
pub fn key_object(key: &str) -> String {
    format!("{key}.key")
}

/// Whether `key` names a data-key object (listed next to its data object).
pub fn is_key_object(key: &str) -> bool {
    key.ends_with(".key")
}

/// Encrypts everything written to it into `inner`; call [`SealWriter::finish`] at the end.
pub struct SealWriter<W: Write> {
    inner: W,
    enc: Option<EncryptorBE32<XChaCha20Poly1305>>,
    buf: Vec<u8>,
    aad: Vec<u8>,
}

impl<W: Write> SealWriter<W> {
    /// Starts an encrypted object named `object_key` with `data_key`.
    pub fn new(mut inner: W, data_key: &[u8; 32], object_key: &str) -> io::Result<Self> {
        let mut nonce = [0u8; NONCE];
        rand::Rng::fill(&mut rand::rng(), &mut nonce[..]);
        inner.write_all(MAGIC)?;
        inner.write_all(&nonce)?;
        let aead = XChaCha20Poly1305::new(data_key.into());
        Ok(SealWriter {
            inner,
            enc: Some(EncryptorBE32::from_aead(aead, (&nonce).into())),
            buf: Vec::with_capacity(SEGMENT + TAG),
            aad: object_key.as_bytes().to_vec(),
        })
    }

    fn segment(&mut self) -> io::Result<()> {
        let enc = self.enc.as_mut().ok_or_else(finished)?;
        enc.encrypt_next_in_place(&self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the last segment and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let enc = self.enc.take().ok_or_else(finished)?;
        enc.encrypt_last_in_place(&self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        Ok(self.inner)
    }
}

fn finished() -> io::Error {
    io::Error::other("encrypted stream already finished")
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full segment is written only once more data follows: the last one is written by
        // `finish`, flagged as last.
        if self.buf.len() == SEGMENT {
            self.segment()?;
        }
        let n = (SEGMENT - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens the segments of one stream in order: `last` flags the final one, which ends the
/// stream. Implemented for XChaCha20-Poly1305 STREAM (formats 1 and 2) and for AES-256-GCM
/// frames (format 3, [`super::gcm`]).
pub trait SegmentOpener: Send {
    /// Decrypts `segment` (ciphertext and tag) in place, leaving the plaintext; false when it
    /// fails authentication or the stream already ended.
    fn open(&mut self, aad: &[u8], last: bool, segment: &mut Vec<u8>) -> bool;
}

/// XChaCha20-Poly1305 STREAM (formats 1 and 2).
struct XChaChaOpener(Option<DecryptorBE32<XChaCha20Poly1305>>);

impl SegmentOpener for XChaChaOpener {
    fn open(&mut self, aad: &[u8], last: bool, segment: &mut Vec<u8>) -> bool {
        match (last, self.0.as_mut()) {
            (_, None) => false,
            (false, Some(dec)) => dec.decrypt_next_in_place(aad, segment).is_ok(),
            (true, Some(_)) => self
                .0
                .take()
                .is_some_and(|dec| dec.decrypt_last_in_place(aad, segment).is_ok()),
        }
    }
}

/// Decrypts an object written by [`SealWriter`], or one frame of a stored part; any damage is
/// an error, never wrong bytes.
pub struct OpenReader<R: Read> {
    inner: R,
    dec: Option<Box<dyn SegmentOpener>>,
    aad: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    pending: Option<Vec<u8>>,
    what: String,
}

/// Why an object cannot be opened (kept apart from I/O errors of the store).
pub fn damaged(what: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("`{what}` is damaged, truncated or was tampered with: {why}"),
    )
}

impl<R: Read> OpenReader<R> {
    /// Reads the header of the (format 1) object `object_key`.
    pub fn new(mut inner: R, data_key: &[u8; 32], object_key: &str) -> io::Result<Self> {
        let nonce = header(&mut inner, MAGIC).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{object_key}` is not an encrypted cbk object, but the repository is encrypted (it mixes encrypted and plain objects)"
                ),
            )
        })?;
        Ok(Self::start(
            inner,
            data_key,
            &nonce,
            object_key.as_bytes().to_vec(),
            object_key,
        ))
    }

    /// Reads the nonce prefix of a format-2 frame ([`super::parts`]) whose magic was read
    /// already, then its segments, which carry `aad`.
    pub fn xchacha_frame(
        mut inner: R,
        data_key: &[u8; 32],
        aad: Vec<u8>,
        object_key: &str,
    ) -> io::Result<Self> {
        let nonce = header_rest::<NONCE>(&mut inner).map_err(|e| damaged(object_key, &e))?;
        Ok(Self::start(inner, data_key, &nonce, aad, object_key))
    }

    fn start(inner: R, data_key: &[u8; 32], nonce: &[u8; NONCE], aad: Vec<u8>, what: &str) -> Self {
        let aead = XChaCha20Poly1305::new(data_key.into());
        let opener = XChaChaOpener(Some(DecryptorBE32::from_aead(aead, nonce.into())));
        Self::with_opener(inner, Box::new(opener), aad, what)
    }

    /// Reads the segments of one frame whose header was read already, opened by `opener`.
    pub fn with_opener(inner: R, opener: Box<dyn SegmentOpener>, aad: Vec<u8>, what: &str) -> Self {
        OpenReader {
            inner,
            dec: Some(opener),
            aad,
            plain: Vec::new(),
            pos: 0,
            pending: None,
            what: what.to_string(),
        }
    }

    /// The reader it reads from.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn chunk(&mut self) -> io::Result<Vec<u8>> {
        let mut c = vec![0u8; SEGMENT + TAG];
        let n = read_full(&mut self.inner, &mut c)?;
        c.truncate(n);
        Ok(c)
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.dec.is_none() {
            return Ok(());
        }
        let mut c = match self.pending.take() {
            Some(c) => c,
            None => self.chunk()?,
        };
        let last = if c.len() < SEGMENT + TAG {
            true
        } else {
            let next = self.chunk()?;
            let last = next.is_empty();
            if !last {
                self.pending = Some(next);
            }
            last
        };
        if c.len() < TAG {
            return Err(damaged(&self.what, "it ends inside a segment"));
        }
        let dec = self.dec.as_mut().ok_or_else(finished)?;
        let ok = dec.open(&self.aad, last, &mut c);
        if last {
            self.dec = None;
        }
        if !ok {
            return Err(damaged(&self.what, "a segment fails authentication"));
        }
        self.plain = c;
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.dec.is_none() {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = (self.plain.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Stored size of `plain` bytes in segments, after a frame header of `header` bytes.
pub(super) fn segmented_len(header: usize, plain: u64) -> u64 {
    let segments = plain.div_ceil(SEGMENT as u64).max(1);
    header as u64 + plain + segments * TAG as u64
}

/// Why a frame that should start here does not.
pub(super) const NO_HEADER: &str = "a part does not start with an encryption header";

/// Reads the 8-byte magic that starts a frame; the error says what is wrong.
pub(super) fn read_magic(inner: &mut impl Read) -> Result<[u8; 8], String> {
    let mut head = [0u8; 8];
    match read_full(inner, &mut head).map_err(|e| e.to_string())? {
        0 => Err("it ends before its last part".into()),
        8 => Ok(head),
        _ => Err(NO_HEADER.into()),
    }
}

/// Reads `magic` and the nonce prefix after it; the error says what is wrong.
fn header(inner: &mut impl Read, magic: &[u8; 8]) -> Result<[u8; NONCE], String> {
    if &read_magic(inner)? != magic {
        return Err(NO_HEADER.into());
    }
    header_rest(inner)
}

/// Reads the `N` header bytes that follow a frame's magic.
pub(super) fn header_rest<const N: usize>(inner: &mut impl Read) -> Result<[u8; N], String> {
    let mut rest = [0u8; N];
    let n = read_full(inner, &mut rest).map_err(|e| e.to_string())?;
    if n < N {
        return Err(NO_HEADER.into());
    }
    Ok(rest)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(data: &[u8], key: &[u8; 32], name: &str) -> Vec<u8> {
        let mut w = SealWriter::new(Vec::new(), key, name).unwrap();
        for c in data.chunks(7000) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(data: &[u8], key: &[u8; 32], name: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        OpenReader::new(data, key, name)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_every_size_around_segment_boundaries() {
        let key = new_data_key();
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 5,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let s = seal(&data, &key, "k");
            assert_eq!(
                s.len() as u64,
                super::super::parts::Frame::XChaCha.len(len as u64),
                "len {len}"
            );
            assert_eq!(open(&s, &key, "k").unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn refuses_truncation_tampering_other_names_and_keys() {
        let key = new_data_key();
        let data = vec![7u8; 2 * SEGMENT + 100];
        let s = seal(&data, &key, "a");
        // Dropping the last segment (a cut at a segment boundary) or a few bytes.
        let cut = 8 + NONCE + 2 * (SEGMENT + TAG);
        assert!(open(&s[..cut], &key, "a").is_err());
        assert!(open(&s[..s.len() - 1], &key, "a").is_err());
        let mut t = s.clone();
        t[100] ^= 1;
        assert!(open(&t, &key, "a").is_err());
        // Swapping two segments.
        let mut sw = s.clone();
        let (a, b) = (8 + NONCE, 8 + NONCE + SEGMENT + TAG);
        let first = s[a..b].to_vec();
        sw.copy_within(b..b + SEGMENT + TAG, a);
        sw[b..b + SEGMENT + TAG].copy_from_slice(&first);
        assert!(open(&sw, &key, "a").is_err());
        assert!(open(&s, &key, "b").is_err());
        assert!(open(&s, &new_data_key(), "a").is_err());
        assert!(open(b"plain bytes, not encrypted at all", &key, "a").is_err());
    }
}
