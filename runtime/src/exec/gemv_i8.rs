//! The GEMV over rows of i8 codes (a ResNet head on the integer path: `gemm::gemv` with
//! `Rows::I8`) on AVX-512F (two rows per register) and AVX2 (one), the same floats as
//! `gemm::gemv_chunk`.
//!
//! Why: the generic loop converts each row's block of codes into a buffer of floats, then takes
//! its eight-lane dot product with the input (`gemm::dot4`), eight multiply-adds per three
//! vector operations and a store and load on top. ResNet50's 2048 x 1000 head took 0.55 ms of
//! its 25 ms integer path on one thread (3.7 GMAC/s). The dot product's order is fixed (eight
//! partial sums per `KC` block, summed lane by lane, then the block's tail), so that every path
//! gives the same logits; a 512-bit register holds two rows' eight partial sums side by side
//! (lanes 0–7 and 8–15), each lane doing exactly what its lane of `dot4` does, and the codes
//! are converted in the register they are multiplied in.

use std::arch::x86_64::*;

use super::gemm::{finish_sums, Epilogue, KC};

/// Rows per pass: two per register.
const ROWS: usize = 8;

/// `out[i] = epilogue(W[row0 + i] . x)` for rows of `k = x.len()` codes `cols` apart in `data`
/// (`o0`: `out[0]`'s output index, for the epilogue's scale and bias), bit for bit what
/// `gemm::gemv_chunk` gives for `Rows::I8`.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gemv_i8_avx512(
    data: &[i8],
    cols: usize,
    row0: usize,
    x: &[f32],
    out: &mut [f32],
    epi: &Epilogue,
    o0: usize,
) {
    // Eight rows at a time: four registers, four independent chains of additions (two, with
    // four rows, left the adds waiting on each other's latency: ResNet50's 2048 x 1000 head
    // took 0.08-0.10 ms on Zen 5, against 0.056 for onnxruntime's integer one).
    gemv_rows((data, cols, row0), x, (out, epi, o0), |rows, k0, n| {
        let mut acc = [_mm512_setzero_ps(); ROWS / 2];
        for j in (0..n).step_by(8) {
            // SAFETY: `k0 + j + 8 <= k0 + n <= k`, inside `x` and every row.
            let (xs, w) = unsafe {
                let half = _mm256_loadu_ps(x.as_ptr().add(k0 + j));
                // Both halves of the register (`VSHUFF32X4`: AVX-512F, where
                // `VINSERTF32X8` would need AVX-512DQ).
                let wide = _mm512_castps256_ps512(half);
                let xs = _mm512_shuffle_f32x4::<0b01_00_01_00>(wide, wide);
                let codes =
                    |r: usize| _mm_loadl_epi64(rows[r].as_ptr().add(k0 + j).cast::<__m128i>());
                let w: [__m128i; ROWS / 2] =
                    std::array::from_fn(|p| _mm_unpacklo_epi64(codes(2 * p), codes(2 * p + 1)));
                (xs, w)
            };
            for (a, w) in acc.iter_mut().zip(w) {
                let w = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(w));
                // `acc[i] += x[i] * y[i]`: a multiply, then an add (no FMA), as `dot4`.
                *a = _mm512_add_ps(*a, _mm512_mul_ps(w, xs));
            }
        }
        let mut lanes = [0f32; ROWS * 8];
        for (p, a) in acc.iter().enumerate() {
            // SAFETY: 16 floats of room for each register (rows 2p and 2p + 1).
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr().add(16 * p), *a) };
        }
        lanes
    });
}

/// [`gemv_i8_avx512`] on AVX2: one row per register (its eight partial sums), eight rows at a
/// time, the same floats.
///
/// Why: without it the AVX2 path took the generic loop, and ResNet50's 2048 x 1000 head was
/// 0.35 ms of its integer path on the Zen 3 of stop 67 against onnxruntime's 0.11 (`step_times`
/// against its per-node profile).
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gemv_i8_avx2(
    data: &[i8],
    cols: usize,
    row0: usize,
    x: &[f32],
    out: &mut [f32],
    epi: &Epilogue,
    o0: usize,
) {
    gemv_rows((data, cols, row0), x, (out, epi, o0), |rows, k0, n| {
        let mut acc = [_mm256_setzero_ps(); ROWS];
        for j in (0..n).step_by(8) {
            // SAFETY: `k0 + j + 8 <= k0 + n <= k`, inside `x` and every row.
            let xs = unsafe { _mm256_loadu_ps(x.as_ptr().add(k0 + j)) };
            for (a, r) in acc.iter_mut().zip(rows) {
                // SAFETY: as above, eight codes of row `r`.
                let q = unsafe { _mm_loadl_epi64(r.as_ptr().add(k0 + j).cast::<__m128i>()) };
                let w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                // `acc[i] += x[i] * y[i]`: a multiply, then an add (no FMA), as `dot4`.
                *a = _mm256_add_ps(*a, _mm256_mul_ps(w, xs));
            }
        }
        let mut lanes = [0f32; ROWS * 8];
        for (r, a) in acc.iter().enumerate() {
            // SAFETY: 8 floats of room for each register.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * r), *a) };
        }
        lanes
    });
}

/// The rows' loop of both kernels: `ROWS` rows at a time (rows past the chunk repeat its last
/// one, computed and not stored), each `KC` block's eight partial sums per row from
/// `block(rows, k0, n)` (row `r`'s at `8 r`, over the block's first `n` codes, a multiple of
/// 8), then its tail ([`add_block`]), then the epilogue.
#[inline(always)]
fn gemv_rows(
    (data, cols, row0): (&[i8], usize, usize),
    x: &[f32],
    (out, epi, o0): (&mut [f32], &Epilogue, usize),
    block: impl Fn(&[&[i8]; ROWS], usize, usize) -> [f32; ROWS * 8],
) {
    let k = x.len();
    debug_assert!(k <= cols, "gemv_i8: rows of {cols} codes, an input of {k}");
    for (g, outs) in out.chunks_mut(ROWS).enumerate() {
        let first = row0 + g * ROWS;
        let row = |i: usize| &data[(first + i.min(outs.len() - 1)) * cols..][..k];
        let rows: [&[i8]; ROWS] = std::array::from_fn(row);
        let mut sums = [0f32; ROWS];
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let n = kc / 8 * 8;
            let lanes = block(&rows, k0, n);
            add_block(&mut sums, &lanes, &rows, x, (k0, n, kc));
        }
        finish_sums(outs, &sums, epi, o0 + g * ROWS);
    }
}

/// Adds a `KC` block's dot products to `sums`: each row's eight partial sums (`lanes[8 r..]`)
/// in order, then its block's tail past `n` (codes `k0 + n..k0 + kc`): `dot4`'s reduction.
fn add_block(
    sums: &mut [f32; ROWS],
    lanes: &[f32; ROWS * 8],
    rows: &[&[i8]; ROWS],
    x: &[f32],
    (k0, n, kc): (usize, usize, usize),
) {
    for (r, s) in sums.iter_mut().enumerate() {
        let tail: f32 = rows[r][k0 + n..k0 + kc]
            .iter()
            .zip(&x[k0 + n..k0 + kc])
            .map(|(&q, y)| f32::from(q) * y)
            .sum();
        *s += lanes[r * 8..r * 8 + 8].iter().sum::<f32>() + tail;
    }
}
