//! Compression codecs for stored objects: zstd (default), lz4, none, and reading lzop (.lzo)
//! files written by the tool cbk replaces.
//!
//! Everything streams with bounded memory: the synchronous [`Encoder`]/[`decoder`] work on
//! `std::io`, and [`encode_async`]/[`decode_async`] run them on a blocking thread joined to the
//! caller by a bounded in-memory pipe, so they can sit between tokio readers and writers.

mod lz4check;
pub mod lzo1x;
pub mod lzop;

use std::fmt;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::task::JoinHandle;

use crate::cassandra::sstable::Component;

/// zstd level when the plan says just `zstd` (crates.md §7: levels 1–3; 3 is zstd's default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Highest level accepted (above 19 zstd needs "ultra" windows and much more memory).
pub const MAX_ZSTD_LEVEL: i32 = 19;
/// Size of the pipe between the codec thread and async callers.
const PIPE_BYTES: usize = 256 * 1024;

/// A compression codec of stored objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Lz4,
    Zstd {
        level: i32,
    },
    /// lzop files of cassandra_backups; read only.
    Lzop,
}

/// Codec errors.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unknown codec {0:?} (expected zstd, zstd:LEVEL, lz4 or none)")]
    Unknown(String),
    #[error("bad zstd level {0:?} (expected 1 to 19)")]
    BadLevel(String),
    #[error("codec {0} can only be read, not written")]
    ReadOnly(Codec),
    #[error(transparent)]
    Lzop(#[from] lzop::LzopError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Default for Codec {
    fn default() -> Self {
        Codec::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl FromStr for Codec {
    type Err = CodecError;
    /// Plan syntax: `none`, `lz4`, `zstd`, `zstd:LEVEL`. (`lzop` is read only.)
    fn from_str(s: &str) -> Result<Codec, CodecError> {
        let t = s.trim();
        match t {
            "none" => return Ok(Codec::None),
            "lz4" => return Ok(Codec::Lz4),
            "zstd" => return Ok(Codec::default()),
            "lzo" | "lzop" => return Err(CodecError::ReadOnly(Codec::Lzop)),
            _ => {}
        }
        if let Some(level) = t.strip_prefix("zstd:") {
            let n: i32 = level
                .parse()
                .map_err(|_| CodecError::BadLevel(level.to_string()))?;
            if !(1..=MAX_ZSTD_LEVEL).contains(&n) {
                return Err(CodecError::BadLevel(level.to_string()));
            }
            return Ok(Codec::Zstd { level: n });
        }
        Err(CodecError::Unknown(t.to_string()))
    }
}

impl fmt::Display for Codec {
    /// The name recorded in manifests (`zstd:3`, `lz4`, `none`, `lzop`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::None => f.write_str("none"),
            Codec::Lz4 => f.write_str("lz4"),
            Codec::Zstd { level } => write!(f, "zstd:{level}"),
            Codec::Lzop => f.write_str("lzop"),
        }
    }
}

impl Codec {
    /// Object name suffix.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::None => "",
            Codec::Lz4 => ".lz4",
            Codec::Zstd { .. } => ".zst",
            Codec::Lzop => ".lzo",
        }
    }

    /// The codec of an object from its name (no known suffix → `None`).
    pub fn from_name(name: &str) -> Codec {
        if name.ends_with(".zst") {
            Codec::default()
        } else if name.ends_with(".lz4") {
            Codec::Lz4
        } else if name.ends_with(".lzo") {
            Codec::Lzop
        } else {
            Codec::None
        }
    }
}

/// The codec to store one file with: a Data.db that Cassandra already compressed
/// (CompressionInfo.db present) is stored as is unless `compress_compressed`.
pub fn codec_for_file(
    requested: Codec,
    component: Option<&Component>,
    has_compression_info: bool,
    compress_compressed: bool,
) -> Codec {
    if component == Some(&Component::Data) && has_compression_info && !compress_compressed {
        Codec::None
    } else {
        requested
    }
}

// ---------------------------------------------------------------------------------------------
// Synchronous streaming

/// A streaming encoder; call [`Encoder::finish`] to write the trailer.
pub enum Encoder<W: Write> {
    None(W),
    Lz4(lz4_flex::frame::FrameEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(codec: Codec, w: W) -> Result<Encoder<W>, CodecError> {
        Ok(match codec {
            Codec::None => Encoder::None(w),
            Codec::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new().content_checksum(true);
                Encoder::Lz4(lz4_flex::frame::FrameEncoder::with_frame_info(info, w))
            }
            Codec::Zstd { level } => {
                let mut e = zstd::stream::write::Encoder::new(w, level)?;
                e.include_checksum(true)?;
                Encoder::Zstd(e)
            }
            Codec::Lzop => return Err(CodecError::ReadOnly(Codec::Lzop)),
        })
    }

    /// Flushes the codec trailer and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Encoder::Lz4(e) => {
                let mut w = e.finish().map_err(io::Error::other)?;
                w.flush()?;
                Ok(w)
            }
            Encoder::Zstd(e) => {
                let mut w = e.finish()?;
                w.flush()?;
                Ok(w)
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Lz4(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Lz4(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// A streaming decoder reading from `r`.
pub fn decoder<'a, R: Read + 'a>(codec: Codec, r: R) -> Result<Box<dyn Read + 'a>, CodecError> {
    Ok(match codec {
        Codec::None => Box::new(r),
        Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(
            lz4check::Lz4FrameCheck::new(r),
        )),
        Codec::Zstd { .. } => {
            let mut d = zstd::stream::read::Decoder::new(r)?;
            d.window_log_max(27)?;
            Box::new(d)
        }
        Codec::Lzop => Box::new(lzop::LzopReader::new(r)?),
    })
}

/// Compresses `input` into `output`; returns the number of input bytes.
pub fn encode<R: Read, W: Write>(codec: Codec, mut input: R, output: W) -> Result<u64, CodecError> {
    let mut e = Encoder::new(codec, output)?;
    let n = io::copy(&mut input, &mut e)?;
    e.finish()?;
    Ok(n)
}

/// Decompresses `input` into `output`; returns the number of output bytes.
pub fn decode<R: Read, W: Write>(codec: Codec, input: R, mut output: W) -> Result<u64, CodecError> {
    let mut d = decoder(codec, input)?;
    let n = io::copy(&mut d, &mut output).map_err(unwrap_lzop)?;
    output.flush()?;
    Ok(n)
}

/// Gives back the typed lzop error that travelled inside an `io::Error`.
fn unwrap_lzop(e: io::Error) -> CodecError {
    if e.get_ref().is_some_and(|i| i.is::<lzop::LzopError>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(l) = inner.downcast::<lzop::LzopError>() {
                return CodecError::Lzop(*l);
            }
            return CodecError::Io(io::Error::other("lzop error"));
        }
        return CodecError::Io(io::Error::other("lzop error"));
    }
    CodecError::Io(e)
}

// ---------------------------------------------------------------------------------------------
// Async adapters

/// Reads an `AsyncRead` from a blocking thread.
struct BlockingIn<R> {
    handle: tokio::runtime::Handle,
    inner: R,
}

impl<R: AsyncRead + Unpin> Read for BlockingIn<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.handle.block_on(self.inner.read(buf))
    }
}

/// Writes to the pipe from a blocking thread.
struct BlockingOut {
    handle: tokio::runtime::Handle,
    inner: DuplexStream,
}

impl Write for BlockingOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.handle.block_on(self.inner.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.handle.block_on(self.inner.flush())
    }
}

/// The output of an async codec: reads the pipe and, at its end, reports the codec thread's
/// error if it failed (so a failed decode never looks like a short, complete file).
pub struct CodecReader {
    pipe: DuplexStream,
    task: Option<JoinHandle<Result<u64, CodecError>>>,
}

impl AsyncRead for CodecReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.pipe).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {}
            other => return other,
        }
        // End of the pipe: the codec thread has finished (or died).
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(res) => {
                self.task = None;
                match res {
                    Ok(Ok(_)) => Poll::Ready(Ok(())),
                    Ok(Err(CodecError::Io(e))) => Poll::Ready(Err(e)),
                    Ok(Err(e)) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
                    Err(join) => Poll::Ready(Err(io::Error::other(format!(
                        "codec thread failed: {join}"
                    )))),
                }
            }
        }
    }
}

use std::future::Future;

fn spawn_codec<R, F>(input: R, work: F) -> CodecReader
where
    R: AsyncRead + Unpin + Send + 'static,
    F: FnOnce(BlockingIn<R>, &mut BlockingOut) -> Result<u64, CodecError> + Send + 'static,
{
    let (theirs, ours) = tokio::io::duplex(PIPE_BYTES);
    let handle = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let input = BlockingIn {
            handle: handle.clone(),
            inner: input,
        };
        let mut out = BlockingOut {
            handle: handle.clone(),
            inner: ours,
        };
        let n = work(input, &mut out)?;
        handle.block_on(out.inner.shutdown())?;
        Ok(n)
    });
    CodecReader {
        pipe: theirs,
        task: Some(task),
    }
}

/// Compresses an async stream; the result is read as an `AsyncRead` (needs a tokio runtime).
pub fn encode_async<R>(codec: Codec, input: R) -> Result<CodecReader, CodecError>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    if codec == Codec::Lzop {
        return Err(CodecError::ReadOnly(codec));
    }
    Ok(spawn_codec(input, move |i, o| encode(codec, i, o)))
}

/// Decompresses an async stream (errors such as a bad checksum surface as read errors).
pub fn decode_async<R>(codec: Codec, input: R) -> CodecReader
where
    R: AsyncRead + Unpin + Send + 'static,
{
    spawn_codec(input, move |i, o| decode(codec, i, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!("zstd".parse::<Codec>().unwrap(), Codec::Zstd { level: 3 });
        assert_eq!("zstd:1".parse::<Codec>().unwrap().to_string(), "zstd:1");
        assert_eq!("lz4".parse::<Codec>().unwrap().extension(), ".lz4");
        assert_eq!("none".parse::<Codec>().unwrap().extension(), "");
        for bad in ["zstd:0", "zstd:20", "zstd:x", "gzip", "lzo", ""] {
            assert!(bad.parse::<Codec>().is_err(), "{bad}");
        }
        assert_eq!(
            "gzip".parse::<Codec>().unwrap_err().to_string(),
            "unknown codec \"gzip\" (expected zstd, zstd:LEVEL, lz4 or none)"
        );
        assert_eq!(Codec::from_name("x/nb-1-big-Data.db.lzo"), Codec::Lzop);
    }

    #[test]
    fn compressed_data_is_stored_as_is() {
        let z = Codec::default();
        assert_eq!(
            codec_for_file(z, Some(&Component::Data), true, false),
            Codec::None
        );
        assert_eq!(codec_for_file(z, Some(&Component::Data), true, true), z);
        assert_eq!(codec_for_file(z, Some(&Component::Data), false, false), z);
        assert_eq!(codec_for_file(z, Some(&Component::Index), true, false), z);
    }
}
