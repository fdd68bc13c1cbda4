//! Bit packing of signed integer weight codes, 2–8 bits each.
//!
//! A row (one output channel) of `cols` codes of width `b` is stored in chunks of 8 codes; a chunk
//! is exactly `b` bytes, read as a little-endian integer with code `j` in bits `[j*b, j*b + b)`.
//! Codes are offset binary (`q + 2^(b-1)`), so the symmetric grid `[-(2^(b-1)-1), 2^(b-1)-1]`
//! maps to `1..=2^b-1`. The last chunk is padded with the code of zero. Chunks of 8 make every
//! width byte-aligned per chunk, so the runtime unpacks eight values with one load and shifts, and
//! can start unpacking at any multiple of 8 columns (cache blocking along K) without re-packing.

/// The narrowest and widest code the format stores.
pub const MIN_BITS: u8 = 2;
pub const MAX_BITS: u8 = 8;

/// Codes per chunk.
pub const CHUNK: usize = 8;

/// Bytes of one packed row of `cols` codes at `bits` bits.
pub fn row_bytes(cols: usize, bits: u8) -> usize {
    cols.div_ceil(CHUNK) * bits as usize
}

/// The largest magnitude of a code at `bits` bits (the quantizer's `qmax`).
pub fn max_code(bits: u8) -> i32 {
    (1i32 << (bits - 1)) - 1
}

/// Why a row cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("bit-width {0} is outside the packed format's 2..=8")]
    Width(u8),
    #[error("code {code} at column {col} does not fit {bits} bits (|code| <= {max})")]
    Range {
        code: i32,
        col: usize,
        bits: u8,
        max: i32,
    },
}

/// Appends the packed form of `codes` at `bits` bits to `out`.
pub fn pack_row(codes: &[i8], bits: u8, out: &mut Vec<u8>) -> Result<(), PackError> {
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(PackError::Width(bits));
    }
    let max = max_code(bits);
    let offset = 1i32 << (bits - 1);
    let b = bits as usize;
    for (c, chunk) in codes.chunks(CHUNK).enumerate() {
        let mut v = 0u64;
        for j in 0..CHUNK {
            let q = chunk.get(j).map_or(0, |&q| q as i32);
            if q.abs() > max {
                return Err(PackError::Range {
                    code: q,
                    col: c * CHUNK + j,
                    bits,
                    max,
                });
            }
            v |= ((q + offset) as u64) << (j * b);
        }
        out.extend_from_slice(&v.to_le_bytes()[..b]);
    }
    Ok(())
}

/// Unpacks codes `[start, start + out.len())` of a packed row as f32 integers. `start` must be a
/// multiple of [`CHUNK`]; `row` must hold the chunks those codes are in (`false` otherwise, and
/// `out` is left unspecified). Widths outside 2..=8 also return `false`.
pub fn unpack_row(row: &[u8], bits: u8, start: usize, out: &mut [f32]) -> bool {
    unpack_any(row, bits, start, out)
}

/// [`unpack_row`] into i8 codes, for the integer path (every 2–8-bit code fits an i8).
pub fn unpack_row_i8(row: &[u8], bits: u8, start: usize, out: &mut [i8]) -> bool {
    unpack_any(row, bits, start, out)
}

/// What a code can be unpacked into.
trait Code: Copy {
    fn from_code(q: i32) -> Self;
}

impl Code for f32 {
    #[inline(always)]
    fn from_code(q: i32) -> Self {
        q as f32
    }
}

impl Code for i8 {
    /// Codes are at most 8 bits wide, so `q` is in `-128..=127`.
    #[inline(always)]
    fn from_code(q: i32) -> Self {
        q as i8
    }
}

fn unpack_any<T: Code>(row: &[u8], bits: u8, start: usize, out: &mut [T]) -> bool {
    match bits {
        2 => unpack::<2, T>(row, start, out),
        3 => unpack::<3, T>(row, start, out),
        4 => unpack::<4, T>(row, start, out),
        5 => unpack::<5, T>(row, start, out),
        6 => unpack::<6, T>(row, start, out),
        7 => unpack::<7, T>(row, start, out),
        8 => unpack::<8, T>(row, start, out),
        _ => false,
    }
}

/// One monomorphised loop per width: the shifts and masks become constants, which lets the
/// compiler vectorise the eight extractions of a chunk.
#[inline]
fn unpack<const B: usize, T: Code>(row: &[u8], start: usize, out: &mut [T]) -> bool {
    if !start.is_multiple_of(CHUNK) {
        return false;
    }
    let first = start / CHUNK * B;
    let needed = out.len().div_ceil(CHUNK) * B;
    let Some(src) = row.get(first..first + needed) else {
        return false;
    };
    let mask = (1u64 << B) - 1;
    let offset = 1i32 << (B - 1);
    if 8 % B == 0 {
        // 2, 4 and 8 bits: whole codes per byte, so a loop over bytes with constant shifts,
        // which the compiler widens to vectors. With the u64 per chunk of the other widths,
        // unpacking was 23% of the f32 path's samples on U4 ResNet18 at batch 1 (perf; layer4
        // uses each unpacked weight for only 49 pixels), 17.5% with this loop; the rest is
        // reading the codes from memory (an AVX2 build of the same loop changed nothing).
        let per = 8 / B;
        let (head, tail) = out.split_at_mut(out.len() / per * per);
        for (d, &byte) in head.chunks_exact_mut(per).zip(src) {
            for (j, d) in d.iter_mut().enumerate() {
                *d = T::from_code(((u32::from(byte) >> (j * B)) & mask as u32) as i32 - offset);
            }
        }
        if let Some(&byte) = src.get(head.len() / per) {
            for (j, d) in tail.iter_mut().enumerate() {
                *d = T::from_code(((u32::from(byte) >> (j * B)) & mask as u32) as i32 - offset);
            }
        }
        return true;
    }
    let mut chunks = out.chunks_exact_mut(CHUNK);
    let mut bytes = src.chunks_exact(B);
    for (dst, s) in (&mut chunks).zip(&mut bytes) {
        let v = load_le::<B>(s);
        for (j, d) in dst.iter_mut().enumerate() {
            *d = T::from_code(((v >> (j * B)) & mask) as i32 - offset);
        }
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // `needed` covers a final partial chunk, so exactly one group of B bytes is left.
        let v = load_le::<B>(&src[src.len() - B..]);
        for (j, d) in tail.iter_mut().enumerate() {
            *d = T::from_code(((v >> (j * B)) & mask) as i32 - offset);
        }
    }
    true
}

#[inline(always)]
fn load_le<const B: usize>(s: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf[..B].copy_from_slice(&s[..B]);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_bit_layout_is_offset_binary_little_endian() {
        // q = -7, 0, 7, 1 at 4 bits -> 1, 8, 15, 9; padding codes are 8 (zero).
        let mut out = Vec::new();
        pack_row(&[-7, 0, 7, 1], 4, &mut out).unwrap();
        assert_eq!(out, vec![0x81, 0x9f, 0x88, 0x88]);
    }

    #[test]
    fn rejects_out_of_range() {
        let mut out = Vec::new();
        assert_eq!(pack_row(&[0], 9, &mut out), Err(PackError::Width(9)));
        assert!(matches!(
            pack_row(&[0, 2], 2, &mut out),
            Err(PackError::Range { col: 1, .. })
        ));
        let mut v = [0.0f32; 8];
        assert!(!unpack_row(&[0u8; 3], 4, 0, &mut v), "row too short");
        assert!(!unpack_row(&[0u8; 8], 4, 3, &mut v), "unaligned start");
    }

    #[test]
    fn i8_and_f32_unpacking_agree_at_every_width() {
        for bits in MIN_BITS..=MAX_BITS {
            let max = max_code(bits);
            let codes: Vec<i8> = (0..37)
                .map(|i| ((i * 7) % (2 * max + 1) - max) as i8)
                .collect();
            let mut packed = Vec::new();
            pack_row(&codes, bits, &mut packed).unwrap();
            // Every length, so the last byte's partial codes (2 and 4 bits) and the last
            // chunk's (the other widths) are read too.
            for len in 1..=29 {
                let (mut f, mut q) = (vec![0f32; len], vec![0i8; len]);
                assert!(unpack_row(&packed, bits, 8, &mut f));
                assert!(unpack_row_i8(&packed, bits, 8, &mut q));
                assert_eq!(&q[..], &codes[8..8 + len], "{bits} bits, {len} codes");
                assert!(f.iter().zip(&q).all(|(&a, &b)| a == f32::from(b)));
            }
        }
    }
}
