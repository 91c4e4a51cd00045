//! Data objects of formats 2 and 3: every stored part is sealed on its own, so an
//! interrupted multipart upload resumes without the data key of the attempt that stored the
//! first parts.
//!
//! A node holds only the recipients, so it cannot unwrap a data key it sealed before a crash.
//! Each upload attempt therefore draws a fresh data key, seals it to the recipients (its
//! *label*, which the multipart checkpoint records: wrapped, never in clear) and seals the
//! parts it stores with it; the parts an earlier attempt stored stay as they are. The
//! `<key>.key` object then lists every attempt's sealed key and, sealed too, which part each
//! one sealed (see [`key_object`]).
//!
//! A part is a *frame* whose magic names its cipher, so one object may hold frames of both
//! (an upload resumed by a newer cbk):
//! - `cbk-enc3` (written now): AES-256-GCM frames, see [`super::gcm`];
//! - `cbk-enc2` (read only): a random 19-byte nonce prefix, then the part's bytes in 64 KiB
//!   segments of XChaCha20-Poly1305 STREAM ([`super::stream`]), the frame's last segment
//!   flagged last.
//!
//! The associated data of every segment is the object key and the part number, so frames
//! cannot be moved to another object or position; the sealed part count catches dropped
//! trailing parts. Objects of format 1 (one STREAM over the whole object, the `<key>.key` an
//! age file of the raw key) stay readable.

use super::stream::damaged;
use super::{CryptError, Identities, Recipients, gcm, seal};
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"cbk-enc2";
const NONCE: usize = super::stream::NONCE;
const HEADER: usize = MAGIC.len() + NONCE;
/// The `format` of a `<key>.key` object of format 2.
const KEY_FORMAT: &str = "cbk-key2";

/// A data key (zeroed when dropped).
pub type DataKey = Zeroizing<[u8; 32]>;

/// The cipher of a frame, named by its magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `cbk-enc2`: XChaCha20-Poly1305 STREAM (read only; also the layout of format 1).
    XChaCha,
    /// `cbk-enc3`: AES-256-GCM with a derived key per frame (written now).
    Gcm,
}

impl Frame {
    /// The frame format cbk writes.
    pub const WRITTEN: Frame = Frame::Gcm;

    /// Stored size of a frame of `plain` bytes.
    pub fn len(self, plain: u64) -> u64 {
        match self {
            Frame::XChaCha => super::stream::segmented_len(HEADER, plain),
            Frame::Gcm => gcm::frame_len(plain),
        }
    }

    /// Stored size of `plain` bytes sealed in parts of `part_size` source bytes.
    pub fn parts_len(self, plain: u64, part_size: u64) -> u64 {
        if plain < part_size.max(1) {
            return self.len(plain);
        }
        let rest = plain % part_size;
        (plain / part_size) * self.len(part_size) + if rest > 0 { self.len(rest) } else { 0 }
    }
}

/// Whether `listed` stored bytes can be a `plain`-byte file sealed whole (format 1) or in
/// parts of `part_size` (formats 2 and 3). An object resumed across formats fits neither and
/// is stored again.
pub fn sealed_size_fits(listed: u64, plain: u64, part_size: u64) -> bool {
    listed == Frame::XChaCha.len(plain)
        || [Frame::XChaCha, Frame::Gcm]
            .iter()
            .any(|f| listed == f.parts_len(plain, part_size))
}

fn aad(object_key: &str, number: u32) -> Vec<u8> {
    let mut a = object_key.as_bytes().to_vec();
    a.extend_from_slice(&number.to_be_bytes());
    a
}

/// Seals part `number` of the object `object_key` with `key` as a format-2 frame (cbk wrote
/// these before format 3; kept to show they stay readable).
#[cfg(test)]
fn seal_xchacha_frame(key: &[u8; 32], object_key: &str, number: u32, plain: &[u8]) -> Vec<u8> {
    use super::stream::{SEGMENT, TAG};
    use chacha20poly1305::aead::stream::EncryptorBE32;
    use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
    let mut nonce = [0u8; NONCE];
    rand::Rng::fill(&mut rand::rng(), &mut nonce[..]);
    let mut out = Vec::with_capacity(Frame::XChaCha.len(plain.len() as u64) as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    let aad = aad(object_key, number);
    let mut enc = EncryptorBE32::from_aead(XChaCha20Poly1305::new(key.into()), (&nonce).into());
    let mut seg = Vec::with_capacity(SEGMENT + TAG);
    let mut chunks = plain.chunks(SEGMENT).peekable();
    loop {
        seg.clear();
        seg.extend_from_slice(chunks.next().unwrap_or_default());
        if chunks.peek().is_none() {
            // Encryption into a Vec only fails when it cannot grow.
            let _ = enc.encrypt_last_in_place(&aad, &mut seg);
            out.extend_from_slice(&seg);
            return out;
        }
        let _ = enc.encrypt_next_in_place(&aad, &mut seg);
        out.extend_from_slice(&seg);
    }
}

/// Seals the parts of one upload attempt: a fresh data key, sealed to the recipients as the
/// attempt's label.
pub struct FrameSealer {
    key: DataKey,
    label: String,
    object_key: String,
}

impl FrameSealer {
    pub fn new(to: &Recipients, object_key: &str) -> Result<FrameSealer, CryptError> {
        let key = super::stream::new_data_key();
        let label = hex::encode(seal::seal(&key[..], to)?);
        Ok(FrameSealer {
            key,
            label,
            object_key: object_key.to_string(),
        })
    }
}

impl crate::store::PartSealer for FrameSealer {
    fn label(&self) -> &str {
        &self.label
    }

    fn seal(&self, number: i32, mut part: bytes::BytesMut) -> Result<bytes::Bytes, String> {
        let n = u32::try_from(number).map_err(|_| format!("part number {number}"))?;
        gcm::seal_in_place(&self.key, &aad(&self.object_key, n), &mut part)?;
        Ok(part.freeze())
    }

    fn sealed_len(&self, plain: u64) -> u64 {
        Frame::WRITTEN.len(plain)
    }
}

/// A `<key>.key` object of format 2.
#[derive(Serialize, Deserialize)]
struct KeyObject {
    format: String,
    /// The sealed data keys (hex of age files), one per upload attempt that stored parts.
    keys: Vec<String>,
    /// [`Index`], sealed (hex of an age file).
    index: String,
}

/// Which key sealed which part, and how many parts there are.
#[derive(Serialize, Deserialize)]
struct Index {
    part_size: u64,
    /// For each part in order, its key's position in `keys`.
    parts: Vec<u32>,
}

/// The `<key>.key` object of an object stored in `sealed` parts.
pub fn key_object(
    sealed: &crate::store::SealedParts,
    to: &Recipients,
) -> Result<Vec<u8>, CryptError> {
    let fail = |e: serde_json::Error| CryptError::Encrypt(e.to_string());
    let index = serde_json::to_vec(&Index {
        part_size: sealed.part_size,
        parts: sealed.parts.clone(),
    })
    .map_err(fail)?;
    serde_json::to_vec(&KeyObject {
        format: KEY_FORMAT.into(),
        keys: sealed.sealers.clone(),
        index: hex::encode(seal::seal(&index, to)?),
    })
    .map_err(fail)
}

/// The keys of one stored object.
pub enum ObjectKeys {
    /// Format 1: one key, one STREAM over the whole object.
    Single(DataKey),
    /// Format 2: one frame per part, each sealed with `keys[parts[i]]`.
    Parts {
        part_size: u64,
        keys: Vec<DataKey>,
        parts: Vec<u32>,
    },
}

impl std::fmt::Debug for ObjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectKeys(<redacted>)")
    }
}

fn as_key(plain: &[u8], what: &str) -> Result<DataKey, CryptError> {
    let k: [u8; 32] = plain.try_into().map_err(|_| CryptError::Damaged {
        what: what.into(),
        reason: "it does not hold a 32-byte data key".into(),
    })?;
    Ok(Zeroizing::new(k))
}

fn open_hex(h: &str, ids: &Identities, what: &str) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    let bytes = hex::decode(h).map_err(|e| CryptError::Damaged {
        what: what.into(),
        reason: e.to_string(),
    })?;
    Ok(Zeroizing::new(seal::open(&bytes, ids, what)?))
}

fn parse(bytes: &[u8], what: &str) -> Result<KeyObject, CryptError> {
    let doc: KeyObject = serde_json::from_slice(bytes).map_err(|e| CryptError::Damaged {
        what: what.into(),
        reason: format!("it is neither an age file nor a key list: {e}"),
    })?;
    if doc.format != KEY_FORMAT {
        return Err(CryptError::Damaged {
            what: what.into(),
            reason: format!("unknown key format `{}`", doc.format),
        });
    }
    Ok(doc)
}

impl ObjectKeys {
    /// Opens a `<key>.key` object (`what` names it in errors).
    pub fn open(bytes: &[u8], ids: &Identities, what: &str) -> Result<ObjectKeys, CryptError> {
        if seal::is_sealed(bytes) {
            let plain = Zeroizing::new(seal::open(bytes, ids, what)?);
            return Ok(ObjectKeys::Single(as_key(&plain, what)?));
        }
        let doc = parse(bytes, what)?;
        let index: Index =
            serde_json::from_slice(&open_hex(&doc.index, ids, what)?).map_err(|e| {
                CryptError::Damaged {
                    what: what.into(),
                    reason: e.to_string(),
                }
            })?;
        let keys = doc
            .keys
            .iter()
            .map(|k| as_key(&open_hex(k, ids, what)?, what))
            .collect::<Result<Vec<_>, _>>()?;
        let bad = index.parts.is_empty()
            || index.part_size == 0
            || index.parts.iter().any(|i| *i as usize >= keys.len());
        if bad {
            return Err(CryptError::Damaged {
                what: what.into(),
                reason: "its part list does not match its keys".into(),
            });
        }
        Ok(ObjectKeys::Parts {
            part_size: index.part_size,
            keys,
            parts: index.parts,
        })
    }

    /// Decrypts the object `object_key` read from `inner`; any damage is an error.
    pub fn reader<R: Read + Send + 'static>(
        self,
        inner: R,
        object_key: &str,
    ) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            ObjectKeys::Single(k) => {
                Box::new(super::stream::OpenReader::new(inner, &k, object_key)?)
            }
            ObjectKeys::Parts {
                part_size,
                keys,
                parts,
            } => Box::new(FramesReader {
                inner: Some(inner),
                frame: None,
                part_size,
                keys,
                parts,
                next: 0,
                object_key: object_key.to_string(),
            }),
        })
    }
}

/// Re-seals a `<key>.key` object (either format) to `to`; the data keys do not change.
pub fn reseal(
    bytes: &[u8],
    ids: &Identities,
    to: &Recipients,
    what: &str,
) -> Result<Vec<u8>, CryptError> {
    if seal::is_sealed(bytes) {
        let plain = Zeroizing::new(seal::open(bytes, ids, what)?);
        return seal::seal(&plain, to);
    }
    let mut doc = parse(bytes, what)?;
    for field in doc.keys.iter_mut().chain(std::iter::once(&mut doc.index)) {
        *field = hex::encode(seal::seal(&open_hex(field, ids, what)?, to)?);
    }
    serde_json::to_vec(&doc).map_err(|e| CryptError::Encrypt(e.to_string()))
}

/// Reads an object of format 2 or 3 frame by frame.
struct FramesReader<R: Read> {
    inner: Option<R>,
    frame: Option<super::stream::OpenReader<io::Take<R>>>,
    part_size: u64,
    keys: Vec<DataKey>,
    parts: Vec<u32>,
    next: usize,
    object_key: String,
}

impl<R: Read> Read for FramesReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = self.frame.as_mut() {
                let n = f.read(out)?;
                if n > 0 || out.is_empty() {
                    return Ok(n);
                }
                let rest = self.frame.take().map(|f| f.into_inner());
                self.inner = rest.map(io::Take::into_inner);
            }
            let Some(mut inner) = self.inner.take() else {
                return Ok(0);
            };
            let Some(&k) = self.parts.get(self.next) else {
                let mut extra = [0u8; 1];
                if inner.read(&mut extra)? > 0 {
                    return Err(damaged(
                        &self.object_key,
                        "it has more parts than its key lists",
                    ));
                }
                return Ok(0);
            };
            self.next += 1;
            let aad = aad(&self.object_key, self.next as u32);
            let key = &self.keys[k as usize];
            let what = self.object_key.as_str();
            let magic = super::stream::read_magic(&mut inner).map_err(|e| damaged(what, &e))?;
            self.frame = Some(match &magic {
                gcm::MAGIC => {
                    let salt =
                        super::stream::header_rest(&mut inner).map_err(|e| damaged(what, &e))?;
                    let opener = gcm::GcmOpener::new(key, &salt).map_err(|e| damaged(what, &e))?;
                    let body = Frame::Gcm.len(self.part_size) - gcm::HEADER as u64;
                    super::stream::OpenReader::with_opener(
                        inner.take(body),
                        Box::new(opener),
                        aad,
                        what,
                    )
                }
                MAGIC => {
                    let body = Frame::XChaCha.len(self.part_size) - MAGIC.len() as u64;
                    super::stream::OpenReader::xchacha_frame(inner.take(body), key, aad, what)?
                }
                _ => return Err(damaged(what, super::stream::NO_HEADER)),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::stream::SEGMENT;
    use super::*;
    use crate::store::{PartSealer, SealedParts};

    fn ids() -> (Identities, Recipients) {
        seal::test_keys()
    }

    /// Seals `data` in parts of `part` bytes, part `i` with the sealer `which(i)`.
    fn store(
        data: &[u8],
        part: usize,
        sealers: &[&FrameSealer],
        which: impl Fn(usize) -> usize,
    ) -> (Vec<u8>, SealedParts) {
        let mut out = Vec::new();
        let mut parts = Vec::new();
        let chunks: Vec<&[u8]> = match data.is_empty() {
            true => vec![&[][..]],
            false => data.chunks(part).collect(),
        };
        for (i, c) in chunks.iter().enumerate() {
            let s = &sealers[which(i)];
            out.extend(s.seal(i as i32 + 1, bytes::BytesMut::from(*c)).unwrap());
            parts.push(which(i) as u32);
        }
        let labels: Vec<String> = sealers.iter().map(|s| s.label().to_string()).collect();
        (out, SealedParts::used(&labels, &parts, part as u64))
    }

    fn open(key_obj: &[u8], stored: &[u8], ids: &Identities, name: &str) -> io::Result<Vec<u8>> {
        let keys = ObjectKeys::open(key_obj, ids, "k").map_err(io::Error::other)?;
        let mut out = Vec::new();
        keys.reader(io::Cursor::new(stored.to_vec()), name)?
            .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn parts_sealed_by_two_attempts_read_back_and_sizes_are_predicted() {
        let (ids, to) = ids();
        let a = FrameSealer::new(&to, "obj").unwrap();
        let b = FrameSealer::new(&to, "obj").unwrap();
        let part = 3 * SEGMENT + 7;
        for len in [
            0,
            1,
            SEGMENT,
            part - 1,
            part,
            part + 1,
            4 * part,
            4 * part + 99,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let (stored, sealed) = store(&data, part, &[&a, &b], |i| i % 2);
            assert_eq!(
                stored.len() as u64,
                Frame::WRITTEN.parts_len(len as u64, part as u64),
                "len {len}"
            );
            let ko = key_object(&sealed, &to).unwrap();
            assert!(!seal::is_sealed(&ko));
            assert_eq!(open(&ko, &stored, &ids, "obj").unwrap(), data, "len {len}");
            // Re-sealed to another recipient: the same keys open it.
            let (ids2, to2) = seal::test_keys();
            let re = reseal(&ko, &ids, &to2, "k").unwrap();
            assert_eq!(open(&re, &stored, &ids2, "obj").unwrap(), data);
            assert!(ObjectKeys::open(&re, &ids, "k").is_err());
        }
    }

    #[test]
    fn refuses_dropped_swapped_tampered_and_moved_parts() {
        let (ids, to) = ids();
        let s = FrameSealer::new(&to, "obj").unwrap();
        let part = SEGMENT + 10;
        let data = vec![9u8; 3 * part + 5];
        let (stored, sealed) = store(&data, part, &[&s], |_| 0);
        let ko = key_object(&sealed, &to).unwrap();
        let flen = Frame::WRITTEN.len(part as u64) as usize;
        // The last part dropped, and a cut inside a part.
        assert!(open(&ko, &stored[..3 * flen], &ids, "obj").is_err());
        assert!(open(&ko, &stored[..stored.len() - 1], &ids, "obj").is_err());
        // Bytes after the last part.
        let mut longer = stored.clone();
        longer.push(0);
        assert!(open(&ko, &longer, &ids, "obj").is_err());
        // Two parts swapped.
        let mut sw = stored.clone();
        sw[..flen].copy_from_slice(&stored[flen..2 * flen]);
        sw[flen..2 * flen].copy_from_slice(&stored[..flen]);
        assert!(open(&ko, &sw, &ids, "obj").is_err());
        // A flipped bit, another object's name, a wrong identity.
        let mut t = stored.clone();
        t[flen + 100] ^= 1;
        assert!(open(&ko, &t, &ids, "obj").is_err());
        assert!(open(&ko, &stored, &ids, "other").is_err());
        let (wrong, _) = seal::test_keys();
        assert!(matches!(
            ObjectKeys::open(&ko, &wrong, "k"),
            Err(CryptError::WrongIdentity { .. })
        ));
        // A part count that claims fewer parts than stored.
        let fewer = SealedParts {
            parts: vec![0; 3],
            ..sealed.clone()
        };
        let ko3 = key_object(&fewer, &to).unwrap();
        assert!(open(&ko3, &stored, &ids, "obj").is_err());
    }

    /// An object cbk wrote in format-2 frames, and one whose upload a newer cbk resumed (its
    /// first parts format 2, the rest format 3), read back; their sizes fit the dedupe check.
    #[test]
    fn format_2_frames_stay_readable_alone_and_beside_format_3() {
        let (ids, to) = ids();
        let old = FrameSealer::new(&to, "obj").unwrap();
        let new = FrameSealer::new(&to, "obj").unwrap();
        let part = 2 * SEGMENT + 3;
        let data: Vec<u8> = (0..3 * part + 11).map(|i| (i * 13 % 251) as u8).collect();
        let chunks: Vec<&[u8]> = data.chunks(part).collect();
        for first_new in [chunks.len(), 2] {
            let mut stored = Vec::new();
            let mut parts = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                let n = i as u32 + 1;
                if i < first_new {
                    stored.extend(seal_xchacha_frame(&old.key, "obj", n, c));
                    parts.push(0);
                } else {
                    stored.extend(new.seal(n as i32, bytes::BytesMut::from(*c)).unwrap());
                    parts.push(1);
                }
            }
            let labels = [old.label().to_string(), new.label().to_string()];
            let sealed = SealedParts::used(&labels, &parts, part as u64);
            let ko = key_object(&sealed, &to).unwrap();
            assert_eq!(open(&ko, &stored, &ids, "obj").unwrap(), data);
            let fits = sealed_size_fits(stored.len() as u64, data.len() as u64, part as u64);
            assert_eq!(fits, first_new == chunks.len(), "first_new {first_new}");
            // A frame of format 2 tampered with is refused like one of format 3.
            let mut t = stored.clone();
            t[HEADER + 5] ^= 1;
            assert!(open(&ko, &t, &ids, "obj").is_err());
        }
        let written = Frame::WRITTEN.parts_len(data.len() as u64, part as u64);
        assert!(sealed_size_fits(written, data.len() as u64, part as u64));
    }

    /// What cbk writes now is format 3: every part starts with `cbk-enc3`.
    #[test]
    fn parts_are_written_as_format_3_frames() {
        let (_, to) = ids();
        let s = FrameSealer::new(&to, "obj").unwrap();
        let frame = s.seal(1, bytes::BytesMut::from(&[5u8; 100][..])).unwrap();
        assert_eq!(&frame[..8], gcm::MAGIC);
        assert_eq!(frame.len() as u64, Frame::Gcm.len(100));
        assert_eq!(Frame::WRITTEN, Frame::Gcm);
    }

    #[test]
    fn format_1_objects_stay_readable() {
        let (ids, to) = ids();
        let key = super::super::stream::new_data_key();
        let mut w = super::super::stream::SealWriter::new(Vec::new(), &key, "old").unwrap();
        io::Write::write_all(&mut w, b"written by cbk before format 2").unwrap();
        let stored = w.finish().unwrap();
        let ko = seal::seal(&key[..], &to).unwrap();
        assert_eq!(
            open(&ko, &stored, &ids, "old").unwrap(),
            b"written by cbk before format 2"
        );
        let re = reseal(&ko, &ids, &to, "k").unwrap();
        assert_eq!(
            open(&re, &stored, &ids, "old").unwrap(),
            b"written by cbk before format 2"
        );
    }

    /// The fs store seals each part with the sealer it is given (the store knows the
    /// `PartSealer` trait only; this module implements it).
    #[tokio::test]
    async fn sealed_put_stream_seals_each_part_and_reads_back() {
        use crate::store::fs::FsStore;
        use crate::store::{NoCheckpoint, PutStreamOptions, Store};
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path().to_str().unwrap()).unwrap();
        let (ids, to) = seal::test_keys();
        let part = s.part_size();
        for len in [0, 5, part, 2 * part + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let sealer = std::sync::Arc::new(FrameSealer::new(&to, "a/b").unwrap());
            let stats = s
                .put_stream(
                    "a/b",
                    &mut data.as_slice(),
                    PutStreamOptions {
                        sealer: Some(sealer),
                        resume: None,
                        checkpoint: &NoCheckpoint,
                        progress: &|_| {},
                    },
                )
                .await
                .unwrap();
            assert_eq!(stats.size, Frame::WRITTEN.parts_len(len, part), "len {len}");
            let sealed = stats.sealed.unwrap();
            assert_eq!(sealed.parts.len() as u64, len.div_ceil(part).max(1));
            let stored = s.get_bytes("a/b").await.unwrap();
            assert_eq!(stored.len() as u64, stats.size);
            let keys = ObjectKeys::open(&key_object(&sealed, &to).unwrap(), &ids, "k").unwrap();
            let mut back = Vec::new();
            keys.reader(std::io::Cursor::new(stored), "a/b")
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "len {len}");
        }
    }
}
