//! x86-64 micro-kernels. AVX2+FMA: the tile lives in twelve 256-bit registers, the classic 6x16
//! shape that keeps both FMA pipes busy.

use super::{MR, NR};

/// Rows of a packed panel asked for ahead of their use: 2 KB, one 64-byte row per step.
///
/// Why: as on AVX-512 (`avx512::PREFETCH_ROWS`), weights streamed from L3 at batch 1. On the
/// Xeon of stop 48 with `FQ_MAX_ISA=avx2` (`step_times`, 2 threads, alternated), the f32 path:
/// ResNet18 18.5-18.7 -> 17.2-17.5 ms, ResNet50 50.0-50.1 -> 49.1-49.6, DeiT-Tiny 16.2 -> 15.7,
/// TinyViT-5M 24.6-24.7 -> 23.4-23.8. Not measured on an AVX2-only CPU.
const PREFETCH_ROWS: usize = 32;

/// # Safety
/// AVX2 and FMA must be available; `a` must hold `MR` rows of `k` floats `lda` apart and `b`
/// `k * NR` floats.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_avx2(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    out: &mut [f32; MR * NR],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees the CPU features and the extents (see `# Safety`); every
    // pointer offset below stays inside `a`, `b` and `out`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for i in 0..k {
            let bp = b.add(i * NR);
            // The panel's row `PREFETCH_ROWS` ahead (a hint: never faults, need not be in
            // bounds), as the AVX-512 kernels do (`avx512::PREFETCH_ROWS`).
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add((i + PREFETCH_ROWS) * NR) as *const i8);
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            let ap = a.add(i);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(r * lda));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
        }
        let o = out.as_mut_ptr();
        for (r, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(o.add(r * NR), row[0]);
            _mm256_storeu_ps(o.add(r * NR + 8), row[1]);
        }
    }
}

/// [`tile_avx2`] with `B`'s row `i` at `src + taps[i]` (16 floats) instead of a packed panel:
/// `B` read where it lies, in a convolution's padded input (`exec::conv_direct`), so the f32
/// path on AVX2 needs no im2col either. The sums of the first `rows` rows go straight to `c`
/// (row `r` at `c + r * ldc`, 16 floats), set or, with `add`, added.
///
/// # Safety
/// AVX2 and FMA must be available; `a` must hold `MR` rows of `k` floats `lda` apart, `taps` `k`
/// offsets, `src` `taps[i] + NR` floats for every `i < k`, and `c` `(rows - 1) * ldc + NR`
/// writable floats, `rows <= MR`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_taps_to_avx2(
    k: usize,
    a: *const f32,
    lda: usize,
    (src, taps): (*const f32, *const usize),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller guarantees the CPU features and the extents (see `# Safety`): row
    // `r`'s step `i` at `a + i + r * lda`.
    unsafe {
        taps_tile(
            k,
            |i, r| a.add(i + r * lda),
            (src, taps),
            (c, ldc, rows, add),
        )
    }
}

/// [`tile_taps_to_avx2`] with `a` one `k`-major tile of `MR` rows (row `r`'s step `i` at
/// `a[i * MR + r]`, `exec::conv_direct::Tiles::Interleaved`): a step's six weights are 24
/// consecutive bytes, where rows `k` apart put them in six lines at once, and at `K` = 1024 or
/// 2048 (4 and 8 KB apart) all six in the same set of the L1 cache.
///
/// # Safety
/// AVX2 and FMA must be available; `a` must hold `k * MR` floats, `taps` `k` offsets, `src`
/// `taps[i] + NR` floats for every `i < k`, and `c` `(rows - 1) * ldc + NR` writable floats,
/// `rows <= MR`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_taps_tiled_avx2(
    k: usize,
    a: *const f32,
    (src, taps): (*const f32, *const usize),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    // SAFETY: the caller guarantees the CPU features and the extents (see `# Safety`): row
    // `r`'s step `i` at `a + i * MR + r`.
    unsafe {
        taps_tile(
            k,
            |i, r| a.add(i * MR + r),
            (src, taps),
            (c, ldc, rows, add),
        )
    }
}

/// The 6x16 taps tile of [`tile_taps_to_avx2`] and [`tile_taps_tiled_avx2`], row `r`'s weight
/// of step `i` at `weight(i, r)`, its first `rows` rows stored to `c` (row `r` at `c + r * ldc`),
/// set or, with `add`, added.
///
/// # Safety
/// AVX2 and FMA must be available; `weight(i, r)` must be readable for `i < k`, `r < MR`; the
/// rest as [`tile_taps_to_avx2`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn taps_tile(
    k: usize,
    weight: impl Fn(usize, usize) -> *const f32,
    (src, taps): (*const f32, *const usize),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for i in 0..k {
            let bp = src.add(*taps.add(i));
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*weight(i, r));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate().take(rows) {
            store_row(c.add(r * ldc), *row, add);
        }
    }
}

/// A tile row's 16 sums set at `p` or, with `add`, added there.
///
/// # Safety
/// AVX2 must be available; `p` must point to 16 writable floats.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store_row(p: *mut f32, [v0, v1]: [std::arch::x86_64::__m256; 2], add: bool) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's guarantees.
    unsafe {
        let (mut v0, mut v1) = (v0, v1);
        if add {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p.add(8)));
        }
        _mm256_storeu_ps(p, v0);
        _mm256_storeu_ps(p.add(8), v1);
    }
}
