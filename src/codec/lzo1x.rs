//! A bounds-checked LZO1X block decompressor (the block format inside lzop files).
//!
//! Written here rather than calling `lzokay_native::decompress` because that function indexes
//! and subtracts without checks and panics (overflow / out of bounds) on corrupt input, and cbk
//! must never panic on input. The instruction set follows the LZO1X format as documented in
//! lzokay and the Linux kernel (`lib/lzo/lzo1x_decompress_safe.c`).

/// Why a block cannot be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lzo1xError {
    #[error("compressed block ends early")]
    InputOverrun,
    #[error("block decompresses to more than its declared {0} bytes")]
    OutputOverrun(usize),
    #[error("back reference before the start of the block")]
    LookbehindOverrun,
    #[error("block decompressed to {actual} bytes, {expected} declared")]
    WrongLength { expected: usize, actual: usize },
    #[error("{0} bytes after the end-of-block marker")]
    TrailingData(usize),
}

struct In<'a> {
    src: &'a [u8],
    pos: usize,
}

impl In<'_> {
    fn byte(&mut self) -> Result<usize, Lzo1xError> {
        let b = *self.src.get(self.pos).ok_or(Lzo1xError::InputOverrun)?;
        self.pos += 1;
        Ok(usize::from(b))
    }

    fn le16(&mut self) -> Result<usize, Lzo1xError> {
        Ok(self.byte()? | (self.byte()? << 8))
    }

    /// Length extension: each zero byte adds 255, then the first non-zero byte is added.
    fn extended(&mut self, base: usize, limit: usize) -> Result<usize, Lzo1xError> {
        let mut n = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return Ok(n + b);
            }
            n += 255;
            if n > limit {
                return Err(Lzo1xError::OutputOverrun(limit));
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Lzo1xError> {
        let end = self.pos.checked_add(n).ok_or(Lzo1xError::InputOverrun)?;
        let s = self
            .src
            .get(self.pos..end)
            .ok_or(Lzo1xError::InputOverrun)?;
        self.pos = end;
        Ok(s)
    }
}

fn literals(inp: &mut In<'_>, out: &mut Vec<u8>, n: usize, cap: usize) -> Result<(), Lzo1xError> {
    if out.len() + n > cap {
        return Err(Lzo1xError::OutputOverrun(cap));
    }
    out.extend_from_slice(inp.take(n)?);
    Ok(())
}

fn back_copy(out: &mut Vec<u8>, dist: usize, len: usize, cap: usize) -> Result<(), Lzo1xError> {
    if dist == 0 || dist > out.len() {
        return Err(Lzo1xError::LookbehindOverrun);
    }
    if out.len() + len > cap {
        return Err(Lzo1xError::OutputOverrun(cap));
    }
    let start = out.len() - dist;
    if dist >= len {
        out.extend_from_within(start..start + len);
    } else {
        // Overlapping copy: byte by byte repeats the pattern.
        for i in 0..len {
            let b = out[start + i];
            out.push(b);
        }
    }
    Ok(())
}

/// Decompresses one LZO1X block of exactly `dst_len` bytes.
pub fn decompress(src: &[u8], dst_len: usize) -> Result<Vec<u8>, Lzo1xError> {
    let cap = dst_len;
    let mut out = Vec::with_capacity(dst_len);
    let mut inp = In { src, pos: 0 };
    let mut state: usize = 0;

    let first = *src.first().ok_or(Lzo1xError::InputOverrun)?;
    if first >= 22 {
        inp.pos = 1;
        literals(&mut inp, &mut out, usize::from(first) - 17, cap)?;
        state = 4;
    } else if first >= 18 {
        inp.pos = 1;
        state = usize::from(first) - 17;
        literals(&mut inp, &mut out, state, cap)?;
    }
    loop {
        let inst = inp.byte()?;
        let (dist, len, next_state);
        if inst >= 64 {
            // M2: 3-8 bytes within 2 KiB.
            let h = inp.byte()?;
            dist = (h << 3) + ((inst >> 2) & 7) + 1;
            len = (inst >> 5) + 1;
            next_state = inst & 3;
        } else if inst >= 32 {
            // M3: within 16 KiB.
            let mut l = (inst & 31) + 2;
            if l == 2 {
                l = inp.extended(31 + 2, cap)?;
            }
            let v = inp.le16()?;
            dist = (v >> 2) + 1;
            len = l;
            next_state = v & 3;
        } else if inst >= 16 {
            // M4: 16..48 KiB, or the end-of-stream marker.
            let mut l = (inst & 7) + 2;
            if l == 2 {
                l = inp.extended(7 + 2, cap)?;
            }
            let v = inp.le16()?;
            let d = ((inst & 8) << 11) + (v >> 2);
            if d == 0 {
                break;
            }
            dist = d + 16384;
            len = l;
            next_state = v & 3;
        } else if state == 0 {
            // Long literal run.
            let mut n = inst + 3;
            if n == 3 {
                n = inp.extended(15 + 3, cap)?;
            }
            literals(&mut inp, &mut out, n, cap)?;
            state = 4;
            continue;
        } else if state != 4 {
            // M1 after 1-3 literals: 2 bytes within 1 KiB.
            let h = inp.byte()?;
            dist = (inst >> 2) + (h << 2) + 1;
            len = 2;
            next_state = inst & 3;
        } else {
            // M1 after a literal run: 3 bytes within 2..3 KiB.
            let h = inp.byte()?;
            dist = (inst >> 2) + (h << 2) + 2049;
            len = 3;
            next_state = inst & 3;
        }
        back_copy(&mut out, dist, len, cap)?;
        literals(&mut inp, &mut out, next_state, cap)?;
        state = next_state;
    }
    if inp.pos != src.len() {
        return Err(Lzo1xError::TrailingData(src.len() - inp.pos));
    }
    if out.len() != dst_len {
        return Err(Lzo1xError::WrongLength {
            expected: dst_len,
            actual: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_lzokay_compresses() {
        let mut data = Vec::new();
        for i in 0..20_000u32 {
            data.extend_from_slice(format!("row {} value {}\n", i % 97, i * 7).as_bytes());
        }
        let c = lzokay_native::compress(&data).unwrap();
        assert_eq!(decompress(&c, data.len()).unwrap(), data);
        // Tiny and incompressible inputs.
        for d in [b"a".to_vec(), (0..=255u8).collect::<Vec<_>>()] {
            let c = lzokay_native::compress(&d).unwrap();
            assert_eq!(decompress(&c, d.len()).unwrap(), d);
        }
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let data: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let c = lzokay_native::compress(&data).unwrap();
        assert!(decompress(&c, data.len() - 1).is_err());
        assert!(decompress(&c[..c.len() - 3], data.len()).is_err());
        assert!(decompress(&[], 10).is_err());
        for i in 0..c.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = c.clone();
                bad[i] ^= flip;
                let _ = decompress(&bad, data.len());
            }
        }
        // A back reference at the very start.
        assert_eq!(
            decompress(&[0x12, b'a', 0x40, 0x10], 8),
            Err(Lzo1xError::LookbehindOverrun)
        );
    }
}
