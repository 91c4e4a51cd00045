//! Frames of data format 3: AES-256-GCM from aws-lc-rs (the library the S3 client's TLS
//! already links; AES-NI/VAES assembly, about ten times cheaper per byte than RustCrypto's
//! XChaCha20-Poly1305 on x86, which made sealing the bound of an encrypted backup on a busy
//! node). The construction is the segmented streaming AEAD of Tink's AES-GCM-HKDF: every frame
//! draws a random 32-byte salt and derives its own key from the data key with HKDF-SHA256, so
//! the 96-bit nonces can be a plain counter (7 zero bytes, the segment index as big-endian u32,
//! and a last-segment flag) and never repeat under one key, however often an attempt re-seals
//! a part. The last flag stops truncation at a segment boundary, the index stops reordering,
//! and the associated data (object key and part number, as in format 2) stops moving frames.
//!
//! Layout: `cbk-enc3` (8 bytes), the salt (32 bytes), then segments of at most
//! [`SEGMENT`] plaintext bytes + a 16-byte tag, the last one flagged (and possibly empty).

use super::stream::{SEGMENT, SegmentOpener, TAG};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use bytes::BytesMut;

/// The magic that starts every frame of format 3.
pub const MAGIC: &[u8; 8] = b"cbk-enc3";
/// Salt bytes after the magic.
pub const SALT: usize = 32;
/// Magic and salt.
pub const HEADER: usize = MAGIC.len() + SALT;
/// HKDF `info` of a frame key (binds the derived key to this format).
const INFO: &[u8] = b"cbk-enc3 frame key";

/// Stored size of a frame of `plain` bytes.
pub fn frame_len(plain: u64) -> u64 {
    super::stream::segmented_len(HEADER, plain)
}

/// The key of one frame: HKDF-SHA256 of the data key with the frame's salt.
fn frame_key(data_key: &[u8; 32], salt: &[u8; SALT]) -> Result<LessSafeKey, String> {
    let okm = Salt::new(HKDF_SHA256, salt).extract(data_key);
    // `expand` fails only for an output longer than 255 hash lengths, never for 32 bytes.
    let okm = okm
        .expand(&[INFO], &AES_256_GCM)
        .map_err(|_| "HKDF expansion failed".to_string())?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce(index: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Seals the plaintext in `buf` in place as one frame of format 3 whose segments carry `aad`:
/// the segments move back to make room for the header and the tags (one `memmove`), and no
/// second buffer is allocated when `buf` has the capacity of [`frame_len`].
pub fn seal_in_place(data_key: &[u8; 32], aad: &[u8], buf: &mut BytesMut) -> Result<(), String> {
    let mut salt = [0u8; SALT];
    rand::Rng::fill(&mut rand::rng(), &mut salt[..]);
    let key = frame_key(data_key, &salt)?;
    let plain = buf.len();
    let count = plain.div_ceil(SEGMENT).max(1);
    let total = usize::try_from(frame_len(plain as u64)).map_err(|_| "a part too large")?;
    buf.resize(total, 0);
    // Last segment first: each one moves to a higher offset, over sources already moved.
    for index in (0..count).rev() {
        let from = index * SEGMENT;
        let len = SEGMENT.min(plain - from);
        buf.copy_within(from..from + len, HEADER + index * (SEGMENT + TAG));
    }
    buf[..MAGIC.len()].copy_from_slice(MAGIC);
    buf[MAGIC.len()..HEADER].copy_from_slice(&salt);
    for index in 0..count {
        let at = HEADER + index * (SEGMENT + TAG);
        let len = SEGMENT.min(plain - index * SEGMENT);
        let last = index + 1 == count;
        let n = u32::try_from(index).map_err(|_| "a part of over 2^32 segments")?;
        let tag = key
            .seal_in_place_separate_tag(nonce(n, last), Aad::from(aad), &mut buf[at..at + len])
            .map_err(|_| "AES-GCM sealing failed".to_string())?;
        buf[at + len..at + len + TAG].copy_from_slice(tag.as_ref());
    }
    Ok(())
}

/// Opens the segments of one format-3 frame, in order.
pub struct GcmOpener {
    key: LessSafeKey,
    next: Option<u32>,
}

impl GcmOpener {
    /// The opener of a frame whose salt (read after its magic) is `salt`.
    pub fn new(data_key: &[u8; 32], salt: &[u8; SALT]) -> Result<GcmOpener, String> {
        Ok(GcmOpener {
            key: frame_key(data_key, salt)?,
            next: Some(0),
        })
    }
}

impl SegmentOpener for GcmOpener {
    fn open(&mut self, aad: &[u8], last: bool, segment: &mut Vec<u8>) -> bool {
        let Some(index) = self.next else {
            return false;
        };
        self.next = if last { None } else { index.checked_add(1) };
        let opened = self
            .key
            .open_in_place(nonce(index, last), Aad::from(aad), segment)
            .map(|plain| plain.len());
        match opened {
            Ok(plain) => {
                segment.truncate(plain);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn seal_frame(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut buf = BytesMut::from(plain);
        seal_in_place(key, aad, &mut buf)?;
        Ok(buf.to_vec())
    }

    fn open(frame: &[u8], key: &[u8; 32], aad: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut r = frame;
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        assert_eq!(&magic, MAGIC);
        let salt: [u8; SALT] =
            super::super::stream::header_rest(&mut r).map_err(std::io::Error::other)?;
        let opener = GcmOpener::new(key, &salt).map_err(std::io::Error::other)?;
        let mut out = Vec::new();
        super::super::stream::OpenReader::with_opener(r, Box::new(opener), aad.to_vec(), "f")
            .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn frames_round_trip_and_refuse_every_kind_of_damage() {
        let key = super::super::stream::new_data_key();
        for len in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 9] {
            let data: Vec<u8> = (0..len).map(|i| (i * 17 % 253) as u8).collect();
            let f = seal_frame(&key, b"obj/1", &data).unwrap();
            assert_eq!(f.len() as u64, frame_len(len as u64), "len {len}");
            assert_eq!(open(&f, &key, b"obj/1").unwrap(), data, "len {len}");
            // Another frame of the same bytes differs (fresh salt, so a fresh key).
            assert_ne!(seal_frame(&key, b"obj/1", &data).unwrap(), f);
        }
        let data = vec![3u8; 3 * SEGMENT + 9];
        let f = seal_frame(&key, b"obj/1", &data).unwrap();
        let seg = SEGMENT + TAG;
        // The last segment dropped at a segment boundary, a byte cut, a byte added.
        assert!(open(&f[..HEADER + 3 * seg], &key, b"obj/1").is_err());
        assert!(open(&f[..f.len() - 1], &key, b"obj/1").is_err());
        let mut longer = f.clone();
        longer.push(0);
        assert!(open(&longer, &key, b"obj/1").is_err());
        // Two segments swapped, a flipped bit in the salt or a segment.
        let mut sw = f.clone();
        sw[HEADER..HEADER + seg].copy_from_slice(&f[HEADER + seg..HEADER + 2 * seg]);
        sw[HEADER + seg..HEADER + 2 * seg].copy_from_slice(&f[HEADER..HEADER + seg]);
        assert!(open(&sw, &key, b"obj/1").is_err());
        for at in [MAGIC.len(), HEADER + 7, f.len() - 1] {
            let mut t = f.clone();
            t[at] ^= 1;
            assert!(open(&t, &key, b"obj/1").is_err(), "flip at {at}");
        }
        // Another object or part, another key.
        assert!(open(&f, &key, b"obj/2").is_err());
        assert!(open(&f, &super::super::stream::new_data_key(), b"obj/1").is_err());
    }
}
