//! The transpose that takes sums computed with the output channels along the lanes
//! ([`super::conv_lanes::conv_lanes`]: a block of positions by 32 channels) to the
//! channel-major rows of a convolution's output.
//!
//! Why its own kernel: element by element it was two scalar operations per output, as much as
//! the multiply-adds of a 3x3 convolution with 128 input channels per 16 outputs (15% of its
//! time on one Zen 4 core). On AVX-512F a 16x16 block goes through registers in 64 shuffles.

use super::disjoint::Shared;
#[cfg(target_arch = "x86_64")]
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
    if len == 0 || cols == 0 {
        return;
    }
    assert!(
        cols <= lds && src.len() >= (len - 1) * lds + cols,
        "columns_to_rows: extents"
    );
    // The rows and columns the 16x16 blocks take (none off AVX-512F): every row and column (the
    // last block of each masked).
    #[cfg(target_arch = "x86_64")]
    let (done_i, done_o) = if path() == KernelPath::Avx512F {
        (len, cols)
    } else {
        (0, 0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (done_i, done_o) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    {
        for i0 in (0..done_i).step_by(16) {
            for o0 in (0..done_o).step_by(16) {
                // SAFETY: the CPU has AVX-512F (`path`); the block's rows of its columns lie in
                // `src` (checked above: `i0 + height <= len`, `o0 + width <= cols`), and its
                // destination rows are the caller's.
                unsafe {
                    block_avx512(
                        src.as_ptr().add(i0 * lds + o0),
                        lds,
                        dst.offset(o0 * ldd + i0).0,
                        (ldd, (cols - o0).min(16), (len - i0).min(16)),
                    )
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

    /// Every element lands where the definition says, for blocks whole and ragged on both
    /// sides, with strides wider than the block, and nothing outside the rows is written.
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
            let mut dst = vec![-1f32; cols * ldd];
            // SAFETY: `dst` holds `cols` rows of `ldd >= len`.
            unsafe { columns_to_rows(&src, lds, (len, cols), Shared(dst.as_mut_ptr()), ldd) };
            for o in 0..cols {
                for i in 0..ldd {
                    let want = if i < len { src[i * lds + o] } else { -1.0 };
                    assert_eq!(dst[o * ldd + i], want, "{len}x{cols}: ({o}, {i})");
                }
            }
        }
    }
}
