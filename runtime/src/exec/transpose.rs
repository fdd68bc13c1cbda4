//! The transpose that takes sums computed with the output channels along the lanes
//! ([`super::conv_lanes::conv_lanes`]: a block of positions by 32 channels) to the
//! channel-major rows of a convolution's output.
//!
//! Why its own kernel: element by element it was two scalar operations per output, as much as
//! the multiply-adds of a 3x3 convolution with 128 input channels per 16 outputs (15% of its
//! time on one Zen 4 core). On AVX-512F a 16x16 block goes through registers in 64 shuffles.

use super::disjoint::Shared;
use super::kernel::{path, KernelPath};

/// `dst[o * ldd + i] = src[i * lds + o]` for `o < cols` and `i < len`.
///
/// # Safety
/// `dst + o * ldd` must hold `len` writable floats for `o < cols`, accessed by no one else
/// meanwhile.
pub unsafe fn columns_to_rows(
    src: &[f32],
    lds: usize,
    (len, cols): (usize, usize),
    dst: Shared<f32>,
    ldd: usize,
) {
    // SAFETY: the caller's contract; `path` is this CPU's.
    unsafe { columns_to_rows_on(path(), src, lds, (len, cols), dst, ldd) }
}

/// [`columns_to_rows`] with the blocks of kernel path `on` (the tests run every path the CPU
/// has, whatever `FQ_MAX_ISA` picks).
///
/// # Safety
/// As [`columns_to_rows`]; the CPU must have `on` ([`KernelPath::available`]).
unsafe fn columns_to_rows_on(
    on: KernelPath,
    src: &[f32],
    lds: usize,
    (len, cols): (usize, usize),
    dst: Shared<f32>,
    ldd: usize,
) {
    if len == 0 || cols == 0 {
        return;
    }
    assert!(
        cols <= lds && src.len() >= (len - 1) * lds + cols,
        "columns_to_rows: extents"
    );
    // The rows and columns the blocks take: on AVX-512F (16x16) every row and column (the last
    // block of each masked), on AVX2 (8x8) every column and the whole groups of 8 rows, on the
    // other paths none.
    #[cfg(target_arch = "x86_64")]
    let (done_i, done_o) = match on {
        KernelPath::Avx512F => (len, cols),
        KernelPath::Avx2Fma => (len / 8 * 8, cols),
        _ => (0, 0),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (done_i, done_o, _) = (0, 0, on);
    // Blocks of 8 rows (AVX2) or 16 (AVX-512F) by as many columns.
    #[cfg(target_arch = "x86_64")]
    {
        let b = if on == KernelPath::Avx2Fma { 8 } else { 16 };
        for i0 in (0..done_i).step_by(b) {
            for o0 in (0..done_o).step_by(b) {
                let (s, d) = (src.as_ptr().wrapping_add(i0 * lds + o0), o0 * ldd + i0);
                let width = (cols - o0).min(b);
                // SAFETY: the CPU has the block's ISA (`on`: blocks run on AVX2 and AVX-512F
                // only, `done_i` and `done_o` are 0 otherwise); the block's rows of its columns
                // lie in `src` (checked above: `o0 + width <= cols`, and `i0 + 8 <= len` on
                // AVX2, `i0 + height <= len` on AVX-512F), and its destination rows are the
                // caller's.
                unsafe {
                    if on == KernelPath::Avx2Fma {
                        block_avx2(s, lds, dst.offset(d).0, (ldd, width))
                    } else {
                        let height = (len - i0).min(b);
                        block_avx512(s, lds, dst.offset(d).0, (ldd, width, height))
                    }
                };
            }
        }
    }
    // What the blocks left: the last rows of every column, then the last columns.
    let scalar = |i_range: std::ops::Range<usize>, o_range: std::ops::Range<usize>| {
        for o in o_range {
            // SAFETY: the caller's contract for row `o < cols`, columns `< len`.
            let row = unsafe { dst.offset(o * ldd).slice(0, len) };
            for i in i_range.clone() {
                row[i] = src[i * lds + o];
            }
        }
    };
    scalar(done_i..len, 0..done_o);
    scalar(0..len, done_o..cols);
}

/// One block of `height <= 16` rows by `width <= 16` columns: `dst[c * ldd + r] = src[r * lds +
/// c]` for `r < height`, `c < width` (the loads masked to the block's columns and rows, the
/// stores to its rows, the rows of the other columns not stored).
///
/// Why masked: a map's last columns (8 of 56, all 14 of 14) went element by element, two scalar
/// operations per value (the Winograd input's channels-last copy, [`super::winograd`]); so did
/// the last rows of a block (a 56-pixel row of Winograd's output tiles: 8 of 56).
///
/// # Safety
/// AVX-512F must be available; `src + r * lds` must hold `width` floats and `dst + c * ldd`
/// `height` writable ones for `r < height`, `c < width`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(
    src: *const f32,
    lds: usize,
    dst: *mut f32,
    (ldd, width, height): (usize, usize, usize),
) {
    use std::arch::x86_64::*;
    let mask = ((1u32 << width) - 1) as __mmask16;
    let rows = ((1u32 << height) - 1) as __mmask16;
    // SAFETY: the caller's guarantees; the masked loads read the block's columns alone, of its
    // rows alone.
    unsafe {
        let r: [__m512; 16] = std::array::from_fn(|i| {
            if i < height {
                _mm512_maskz_loadu_ps(mask, src.add(i * lds))
            } else {
                _mm512_setzero_ps()
            }
        });
        // Pairs of rows interleaved by element, then by pairs of elements: each 128-bit lane of
        // `u` then holds one column's 4 values of a group of 4 rows.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
            u[4 * i] = _mm512_shuffle_ps::<0x44>(a, c);
            u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
            u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(b, d);
            u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
        }
        // 128-bit lanes across the groups of rows: first lanes 0 and 2 of pairs of groups,
        // then across those.
        let mut v = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            v[i] = _mm512_shuffle_f32x4::<0x88>(u[i], u[4 + i]);
            v[4 + i] = _mm512_shuffle_f32x4::<0xDD>(u[i], u[4 + i]);
            v[8 + i] = _mm512_shuffle_f32x4::<0x88>(u[8 + i], u[12 + i]);
            v[12 + i] = _mm512_shuffle_f32x4::<0xDD>(u[8 + i], u[12 + i]);
        }
        for i in 0..8 {
            let lo = _mm512_shuffle_f32x4::<0x88>(v[i], v[8 + i]);
            let hi = _mm512_shuffle_f32x4::<0xDD>(v[i], v[8 + i]);
            let (c_lo, c_hi) = column_of(i);
            if c_lo < width {
                _mm512_mask_storeu_ps(dst.add(c_lo * ldd), rows, lo);
            }
            if c_hi < width {
                _mm512_mask_storeu_ps(dst.add(c_hi * ldd), rows, hi);
            }
        }
    }
}

/// One block of 8 rows by `width <= 8` columns: `dst[c * ldd + r] = src[r * lds + c]` for
/// `r < 8`, `c < width` (the loads masked to the block's columns, the rows of the other columns
/// not stored): [`block_avx512`]'s shuffles on 256-bit registers.
///
/// Why: on AVX2 every value went element by element, a strided load and a store each: the token
/// models' `[L, C] -> [C, H, W]` copies before each local convolution (TinyViT-5M's 784 tokens
/// of 128 channels: 0.076 ms, against 0.033 for the same copy the other way, whose strided
/// loads stay in L1), Winograd's channels-last input and `conv_lanes`' sums.
///
/// # Safety
/// AVX2 must be available; `src + r * lds` must hold `width` floats and `dst + c * ldd` 8
/// writable ones for `r < 8`, `c < width`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2(src: *const f32, lds: usize, dst: *mut f32, (ldd, width): (usize, usize)) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's guarantees; masked loads read the block's columns alone.
    unsafe {
        let r: [__m256; 8] = if width == 8 {
            std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * lds)))
        } else {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(width as i32), lanes);
            std::array::from_fn(|i| _mm256_maskload_ps(src.add(i * lds), mask))
        };
        // Pairs of rows interleaved by element, then by pairs: each 128-bit lane of `u[e]`
        // (`u[4 + e]`) holds column `e` (lane 0) or `e + 4` (lane 1) of rows 0..4 (4..8).
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        let u: [__m256; 8] = std::array::from_fn(|i| {
            let (g, e) = (i / 4 * 4, i % 4);
            let (a, b) = (t[g + e / 2], t[g + 2 + e / 2]);
            if e % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(a, b)
            } else {
                _mm256_shuffle_ps::<0xEE>(a, b)
            }
        });
        for e in 0..4 {
            let lo = _mm256_permute2f128_ps::<0x20>(u[e], u[4 + e]);
            let hi = _mm256_permute2f128_ps::<0x31>(u[e], u[4 + e]);
            if e < width {
                _mm256_storeu_ps(dst.add(e * ldd), lo);
            }
            if e + 4 < width {
                _mm256_storeu_ps(dst.add((e + 4) * ldd), hi);
            }
        }
    }
}

/// The two columns [`block_avx512`]'s final shuffles of `v[i]` and `v[8 + i]` give: `u[4g + e]`
/// holds, in its 128-bit lane `l`, column `4l + e` of rows `4g..4g + 4`; `v[i]` gathers lanes 0
/// and 2 (`i < 4`) or 1 and 3 of `u[i % 4]` and `u[4 + i % 4]`, and the last shuffle lanes 0
/// and 2, then 1 and 3, of those: columns `i` and `i + 8`.
#[cfg(target_arch = "x86_64")]
fn column_of(i: usize) -> (usize, usize) {
    (i, i + 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element lands where the definition says, on every path the CPU has, for blocks
    /// whole and ragged on both sides, with strides wider than the block, and nothing outside
    /// the rows is written.
    #[test]
    fn columns_become_rows() {
        for (len, cols, lds, ldd) in [
            (16, 16, 16, 16),
            (32, 32, 32, 40),
            (49, 32, 32, 49),
            (7, 5, 9, 11),
            (33, 17, 20, 35),
            (196, 32, 32, 196),
            // Channels-last rows of maps 14 and 56 wide (the Winograd input).
            (32, 14, 196, 32),
            (64, 56, 3136, 64),
        ] {
            let src: Vec<f32> = (0..len * lds).map(|v| v as f32).collect();
            for on in [
                KernelPath::Avx512F,
                KernelPath::Avx2Fma,
                KernelPath::Portable,
            ] {
                if !on.available() {
                    continue;
                }
                let mut dst = vec![-1f32; cols * ldd];
                let to = Shared(dst.as_mut_ptr());
                // SAFETY: `dst` holds `cols` rows of `ldd >= len`; the CPU has `on`.
                unsafe { columns_to_rows_on(on, &src, lds, (len, cols), to, ldd) };
                for o in 0..cols {
                    for i in 0..ldd {
                        let want = if i < len { src[i * lds + o] } else { -1.0 };
                        let got = dst[o * ldd + i];
                        assert_eq!(got, want, "{}, {len}x{cols}: ({o}, {i})", on.name());
                    }
                }
            }
        }
    }
}
