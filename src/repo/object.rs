//! Reading a stored data object back: its codec (as the manifest names it), the data key
//! sealed next to an encrypted object, and decoding it as a stream in bounded memory. The agent
//! restores files with it, and `verify --deep` checks objects with it.

use crate::codec::{Codec, CodecError};
use crate::crypt::parts::ObjectKeys;
use crate::store::Store;
use crate::store::channel;
use std::io::Read;
use std::sync::Arc;

/// Reads and opens the keys of the encrypted object `key` (its `<key>.key`).
pub async fn data_key(
    store: &Arc<dyn Store>,
    key: &str,
    ids: &crate::crypt::Identities,
) -> Result<ObjectKeys, (String, bool)> {
    let kk = crate::crypt::stream::key_object(key);
    let sealed = match store.get_bytes(&kk).await {
        Ok(b) => b,
        Err(crate::store::StoreError::NotFound(_)) => {
            return Err((
                format!(
                    "`{kk}`, the data key of `{key}`, is missing: the object cannot be decrypted"
                ),
                false,
            ));
        }
        Err(e) => return Err((e.to_string(), true)),
    };
    ObjectKeys::open(&sealed, ids, &kk).map_err(|e| (e.to_string(), false))
}

/// Streams `key` from the store through `codec`'s decoder on a blocking thread and hands the
/// decoded bytes to `consume` (a `Read`). Memory stays at a few chunks whatever the size.
/// Errors carry whether the store side failed (worth a retry) or the content (not).
pub async fn decode_object<T, F>(
    store: &Arc<dyn Store>,
    key: &str,
    codec: Codec,
    data_key: Option<ObjectKeys>,
    progress: &(dyn Fn(u64) + Send + Sync),
    consume: F,
) -> Result<T, (String, bool)>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> Result<T, String> + Send + 'static,
{
    let mut stream = store
        .get_stream(key)
        .await
        .map_err(|e| (e.to_string(), true))?;
    let (tx, reader) = channel::to_sync();
    let name = key.to_string();
    let work = tokio::task::spawn_blocking(move || {
        let source: Box<dyn Read> = match data_key {
            Some(k) => k.reader(reader, &name).map_err(|e| e.to_string())?,
            None => Box::new(reader),
        };
        let mut dec =
            crate::codec::decoder(codec, source).map_err(|e| format!("cannot decode: {e}"))?;
        consume(&mut dec)
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut feed_err = false;
    loop {
        use tokio::io::AsyncReadExt;
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                progress(n as u64);
                if tx
                    .send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Err(e) => {
                feed_err = true;
                let _ = tx.send(Err(e)).await;
                break;
            }
        }
    }
    drop(tx);
    work.await
        .map_err(|e| (e.to_string(), false))?
        .map_err(|e| (e, feed_err))
}

/// Size and CRC32 of everything `r` yields.
pub fn crc32_of_reader(r: &mut dyn Read, limit: Option<u64>) -> Result<(u64, u32), String> {
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; channel::CHUNK];
    let mut size = 0u64;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| format!("cannot decode: {e}"))?;
        if n == 0 {
            return Ok((size, crc.finalize()));
        }
        size += n as u64;
        if limit.is_some_and(|l| size > l) {
            return Err(format!(
                "object is larger than the {} bytes the manifest records",
                limit.unwrap_or(0)
            ));
        }
        crc.update(&buf[..n]);
    }
}

/// Parses a codec name recorded in a manifest (`zstd:3`, `lz4`, `none`, and the read-only
/// `lzop` of the tool cbk replaces).
pub fn stored_codec(name: &str) -> Result<Codec, CodecError> {
    match name {
        "lzop" | "lzo" => Ok(Codec::Lzop),
        other => other.parse(),
    }
}
