//! AVX2+FMA kernels with the output channels along the lanes (`exec::conv_lanes`): the AVX-512F
//! pair kernels' 12 pixels by 32 channels (`avx512::cols_to`) as four 6x16 tiles, each in
//! twelve 256-bit registers: a panel's row is two registers, a pixel's value one broadcast.
//!
//! Why: `exec::conv_direct` puts pixels along the lanes, and on AVX2 a 7x7 map's 49 pixels took
//! 64 columns of work (a 14x14 map's 196, 208), and each step read its 16 pixels from another
//! channel plane, unaligned (two lines). Here the weights stream from their panels, aligned
//! and in order, and a block wastes at most its last 6-pixel tile.
//!
//! Each sum runs over `k` in order, one fused multiply-add per term, as `conv_direct`'s and the
//! AVX-512F kernels do: the same floats.

use std::arch::x86_64::*;

use super::{MR, NR};

/// Row `i` of panel `h` (0 or 1) of a pair as two registers.
pub trait Panel8: Copy {
    /// # Safety
    /// AVX2 must be available and row `i` within what the kernel's caller vouched for.
    unsafe fn load(self, h: usize, i: usize) -> (__m256, __m256);

    /// The address [`PREFETCH_ROWS`] rows of floats' bytes past row `i` of panel `h` (for
    /// prefetches: need not be in bounds).
    fn ahead(self, h: usize, i: usize) -> *const i8;
}

/// Rows of a panel asked for ahead of their use, by a panel's first tile: 2 KB of floats.
///
/// Why: as `avx512::PREFETCH_ROWS`: ResNet50's f32 weights (100 MB) come from memory on every
/// image, and two streams a core left the hardware prefetcher behind.
const PREFETCH_ROWS: usize = 32;

/// Two panels of floats, rows `NR` apart.
#[derive(Clone, Copy)]
pub struct FloatPanels(pub *const f32, pub *const f32);

impl Panel8 for FloatPanels {
    #[inline(always)]
    unsafe fn load(self, h: usize, i: usize) -> (__m256, __m256) {
        let p = if h == 0 { self.0 } else { self.1 };
        // SAFETY: the caller's guarantees: `NR` floats at row `i`.
        unsafe {
            let p = p.add(i * NR);
            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        }
    }

    #[inline(always)]
    fn ahead(self, h: usize, i: usize) -> *const i8 {
        let p = if h == 0 { self.0 } else { self.1 };
        p.wrapping_add((i + PREFETCH_ROWS) * NR) as *const i8
    }
}

/// Two panels of `i8` whole numbers (a packed layer's codes), widened to floats as loaded.
#[derive(Clone, Copy)]
pub struct BytePanels(pub *const i8, pub *const i8);

impl Panel8 for BytePanels {
    #[inline(always)]
    unsafe fn load(self, h: usize, i: usize) -> (__m256, __m256) {
        let p = if h == 0 { self.0 } else { self.1 };
        // SAFETY: the caller's guarantees: `NR` bytes at row `i`.
        unsafe {
            let p = p.add(i * NR);
            let lo = _mm_loadl_epi64(p as *const __m128i);
            let hi = _mm_loadl_epi64(p.add(8) as *const __m128i);
            (
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
            )
        }
    }

    #[inline(always)]
    fn ahead(self, h: usize, i: usize) -> *const i8 {
        let p = if h == 0 { self.0 } else { self.1 };
        // The bytes of `PREFETCH_ROWS` rows of floats past row `i`, as `avx512::Wholes` asks.
        p.wrapping_add(i * NR + PREFETCH_ROWS * NR * std::mem::size_of::<f32>())
    }
}

/// The sums of `rows` rows of `A` (element `(r, i)` at `at(r, i)`: up to `2 MR` pixels) against
/// the two panels of `b`, set or (with `add`) added at `c + r * ldc` (`2 NR` floats a row):
/// panel by panel, each in tiles of `MR` rows, so a panel's rows and the block's pixels are
/// read from L1 by the tiles after the first.
///
/// # Safety
/// AVX2 and FMA must be available; `at(r, i)` must be readable for `i < k` and `r <` the
/// block's rows (`MR` for `rows <= MR`, else `2 MR`), `b`'s panels must hold `k` rows, and `c`
/// `(rows - 1) * ldc + 2 NR` writable floats, `rows <= 2 MR`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn cols_to_avx2<B: Panel8>(
    k: usize,
    at: impl Fn(usize, usize) -> *const f32,
    b: B,
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees; tile `t` reads rows `t * MR..(t + 1) * MR`, which lie in
    // the block whenever `rows > t * MR`.
    unsafe {
        for h in 0..2 {
            for r0 in (0..rows).step_by(MR) {
                let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                for i in 0..k {
                    if r0 == 0 {
                        // A hint: never faults, need not be in bounds.
                        _mm_prefetch::<_MM_HINT_T0>(b.ahead(h, i));
                    }
                    let (w0, w1) = b.load(h, i);
                    for (r, row) in acc.iter_mut().enumerate() {
                        let av = _mm256_broadcast_ss(&*at(r0 + r, i));
                        row[0] = _mm256_fmadd_ps(av, w0, row[0]);
                        row[1] = _mm256_fmadd_ps(av, w1, row[1]);
                    }
                }
                for (r, row) in acc.iter().enumerate().take(rows - r0) {
                    super::x86::store_row(c.add((r0 + r) * ldc + h * NR), *row, add);
                }
            }
        }
    }
}

/// [`cols_to_avx2`] over a channel-major input: element `(r, i)` at `a[r + i * ka]`.
///
/// # Safety
/// As [`cols_to_avx2`], `a` holding those elements.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn cols_planes_avx2<B: Panel8>(
    k: usize,
    (a, ka): (*const f32, usize),
    b: B,
    c: (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to_avx2(k, |r, i| a.add(r + i * ka), b, c) }
}

/// [`cols_to_avx2`] over an input in blocks of `NR` channels (`exec::blocked`): element
/// `(r, i)` at `a[(i / NR) * plane + r * NR + i % NR]`.
///
/// # Safety
/// As [`cols_to_avx2`], `a` holding those elements.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn cols_blocked_avx2<B: Panel8>(
    k: usize,
    (a, plane): (*const f32, usize),
    b: B,
    c: (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to_avx2(k, |r, i| a.add((i / NR) * plane + r * NR + i % NR), b, c) }
}

/// [`cols_to_avx2`] over a convolution's input in padded blocks of channels
/// (`exec::tap_blocks`): element `(r, i)` at `src[pixels[r] + offsets[i]]`.
///
/// # Safety
/// As [`cols_to_avx2`], `offsets` holding `k` offsets and `src` those elements for the rows the
/// block reads.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn cols_pixels_avx2<B: Panel8>(
    k: usize,
    (src, pixels, offsets): (*const f32, &[usize; 2 * MR], *const usize),
    b: B,
    c: (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller's guarantees.
    unsafe { cols_to_avx2(k, |r, i| src.add(pixels[r] + *offsets.add(i)), b, c) }
}
