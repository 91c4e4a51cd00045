//! Detects truncated LZ4 frames: lz4_flex's `FrameDecoder` treats an end of input at a block
//! boundary as a normal end (to allow concatenated frames), so a cut-off object would decode
//! "successfully". This reader follows the frame structure of the bytes the decoder consumes
//! and fails at end of input unless the last frame ended with its end mark (and checksum).

use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a frame magic (or a clean end of input).
    FrameStart,
    /// Reading a fixed-size field of `need` bytes into `buf`.
    Field { need: usize, what: Field },
    /// Skipping `left` bytes of block data (+ block checksum).
    Skip { left: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Magic,
    Descriptor,
    DescriptorRest,
    BlockSize,
    ContentChecksum,
}

/// Wraps the compressed input of an LZ4 frame decoder.
pub struct Lz4FrameCheck<R> {
    inner: R,
    state: State,
    buf: Vec<u8>,
    flags: u8,
    frames: u64,
}

impl<R: Read> Lz4FrameCheck<R> {
    pub fn new(inner: R) -> Self {
        Lz4FrameCheck {
            inner,
            state: State::FrameStart,
            buf: Vec::new(),
            flags: 0,
            frames: 0,
        }
    }

    fn bad(msg: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("lz4 stream: {msg}"))
    }

    fn field(&mut self, need: usize, what: Field) {
        self.buf.clear();
        self.state = State::Field { need, what };
    }

    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.state {
                State::FrameStart => self.field(4, Field::Magic),
                State::Skip { left } => {
                    let n = (left.min(bytes.len() as u64)) as usize;
                    bytes = &bytes[n..];
                    let left = left - n as u64;
                    if left == 0 {
                        self.field(4, Field::BlockSize);
                    } else {
                        self.state = State::Skip { left };
                    }
                }
                State::Field { need, what } => {
                    let n = (need - self.buf.len()).min(bytes.len());
                    self.buf.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.buf.len() == need {
                        self.field_done(what)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn field_done(&mut self, what: Field) -> io::Result<()> {
        match what {
            Field::Magic => {
                if self.buf[..] != 0x184D2204u32.to_le_bytes() {
                    return Err(Self::bad("bad frame magic"));
                }
                self.field(2, Field::Descriptor);
            }
            Field::Descriptor => {
                self.flags = self.buf[0];
                if self.flags >> 6 != 1 {
                    return Err(Self::bad("unsupported frame version"));
                }
                let mut rest = 1; // header checksum
                if self.flags & 0x08 != 0 {
                    rest += 8;
                }
                if self.flags & 0x01 != 0 {
                    rest += 4;
                }
                self.field(rest, Field::DescriptorRest);
            }
            Field::DescriptorRest => self.field(4, Field::BlockSize),
            Field::BlockSize => {
                let size = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if size == 0 {
                    if self.flags & 0x04 != 0 {
                        self.field(4, Field::ContentChecksum);
                    } else {
                        self.frames += 1;
                        self.state = State::FrameStart;
                    }
                } else {
                    let mut left = u64::from(size & 0x7fff_ffff);
                    if self.flags & 0x10 != 0 {
                        left += 4;
                    }
                    self.state = State::Skip { left };
                }
            }
            Field::ContentChecksum => {
                self.frames += 1;
                self.state = State::FrameStart;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Lz4FrameCheck<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 && !out.is_empty() {
            if self.state != State::FrameStart || self.frames == 0 {
                // Not UnexpectedEof: the decoder would take that for a clean end.
                return Err(Self::bad("truncated (no end mark)"));
            }
            return Ok(0);
        }
        self.feed(&out[..n])?;
        Ok(n)
    }
}
