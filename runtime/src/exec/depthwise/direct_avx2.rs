//! [`super::x86::direct3_avx512`] on AVX2: a 3x3 channel at stride 1 or 2 built straight from
//! its input, no padded copy, in blocks of `R` output rows by `C` chunks of eight pixels (one
//! 256-bit register each). The loads at the map's edges are masked (`vmaskmovps` reads nothing
//! in a masked lane) and rows above or below it skipped, which adds the same nothing as the
//! padding's zeros; each load of an input row serves every output row of the block that reads
//! it; at stride 2 a chunk's three column taps come from two pairs of loads, their even and odd
//! lanes picked by a shuffle and a permute. Each output's taps are summed in (ky, kx) order, a
//! multiply then an add, as [`super::row_portable`] sums them: the same floats.
//!
//! Why: on AVX2 the channel was first copied into the padded buffer by column phase and then
//! summed 16 pixels at a time ([`super::x86::row_avx2`]). TinyViT-5M's steps with their GELU at
//! 2 threads on Zen 3 (3 + 3 processes, alternated), with blocks of two registers by four rows
//! first: 256 channels 56x56 0.75 and 0.74 ms -> 0.67 and 0.64 (the GELU about 0.3 of it), 128
//! channels 56x56 at stride 2 0.32 -> 0.12, 128 to 320 channels on 28x28 to 7x7 0.032-0.071 ->
//! 0.018-0.045, the stride-2 ones on 28x28 and 14x14 0.11-0.13 -> 0.035-0.047, the step sum
//! 23.1 -> 22.4 ms; then one register by eight rows ([`block`]): the 56x56 ones 0.62-0.63 and
//! 0.58, the step sum 22.2-22.3.

use super::x86::{load_offsets, RowsIn};
use super::Phases;
use std::arch::x86_64::*;

/// Output pixels per accumulator: one 256-bit register.
const LANES: usize = 8;

/// The block of [`direct3_avx2`] for a map: one chunk of eight pixels across and `R` rows down
/// (8 at stride 1 where the map is that tall, else 4); `None` for strides other than 1 and 2,
/// or maps shorter than the block. Two chunks across by four rows (three at stride 2) ran
/// TinyViT-5M's 256-channel 56x56 steps (with their GELU) in 0.65 and 0.64 ms at 2 threads, one
/// by eight in 0.63 and 0.58, one by six in 0.63 and 0.58 (Zen 3, 3 + 3 processes).
pub fn block(stride: usize, wo: usize, ho: usize) -> Option<(usize, usize)> {
    let rows = match stride {
        1 if ho >= 8 => 8,
        1 | 2 => 4,
        _ => return None,
    };
    (wo > 0 && ho >= rows).then_some((1, rows))
}

/// One channel's output `[ho][wo]` from its input `[h][w]` and nine weights `k`.
///
/// # Safety
/// AVX2; `geo` a 3x3 geometry at stride 1 or 2 with padding at most 1, `block` what [`block`]
/// gave for it; `x` holds `h * w` floats, `out` `ho * wo`.
#[target_feature(enable = "avx2")]
pub unsafe fn direct3_avx2(
    x: &[f32],
    geo: &Phases,
    block: (usize, usize),
    k: &[f32],
    out: &mut [f32],
) {
    assert!(
        x.len() >= geo.h * geo.w && out.len() >= geo.ho * geo.wo && k.len() >= 9,
        "depthwise: extents"
    );
    // SAFETY: every call's guarantees forwarded from the caller; the extents asserted.
    unsafe {
        match (geo.stride, block) {
            (1, (1, 8)) => rows_of::<1, 1, 8>(x, geo, k, out),
            (1, (1, 4)) => rows_of::<1, 1, 4>(x, geo, k, out),
            (2, (1, 4)) => rows_of::<2, 1, 4>(x, geo, k, out),
            other => unreachable!("depthwise: no AVX2 block for {other:?}"),
        }
    }
}

/// The lanes `l` with `lo <= l < hi`, as a `vmaskmovps` mask.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes_in(lo: i32, hi: i32) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_andnot_si256(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(lo), lane),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane),
    )
}

/// [`direct3_avx2`] at stride `S` with blocks of `R` rows by `C` chunks.
///
/// # Safety
/// As for [`direct3_avx2`]; `R <= geo.ho`.
#[target_feature(enable = "avx2")]
unsafe fn rows_of<const S: usize, const C: usize, const R: usize>(
    x: &[f32],
    geo: &Phases,
    k: &[f32],
    out: &mut [f32],
) {
    let (ho, wo) = (geo.ho, geo.wo);
    let per_row = wo.div_ceil(LANES);
    let wk: [__m256; 9] = std::array::from_fn(|t| _mm256_set1_ps(k[t]));
    // Column groups outside, rows inside: the masks depend on the group only.
    let mut c0 = 0;
    while c0 < per_row {
        let first = c0.min(per_row - C) * LANES;
        // The lanes of each load that read inside the row: input column `start + lane` in
        // `0..w`.
        let masks: [[__m256i; 4]; C] = std::array::from_fn(|c| {
            let chunk = (S * (first + c * LANES)) as isize - geo.padding as isize;
            load_offsets(S, LANES).map(|off| {
                let start = chunk + off as isize;
                lanes_in(
                    (-start).max(0) as i32,
                    (geo.w as isize - start).min(8) as i32,
                )
            })
        });
        // The lanes of each chunk's output inside the row.
        let stores: [__m256i; C] =
            std::array::from_fn(|c| lanes_in(0, (wo - (first + c * LANES)).min(LANES) as i32));
        let mut oy = 0;
        while oy < ho {
            let y0 = oy.min(ho - R);
            let mut acc = [[_mm256_setzero_ps(); C]; R];
            let rows = RowsIn {
                x,
                geo,
                y0: S * y0,
                first: S * first,
            };
            // Every input row of the block with its number a constant, so that which output
            // rows and taps it feeds is known when the code is built.
            macro_rules! each_row {
                ($($r:literal)*) => {$(
                    if $r < S * (R - 1) + 3 {
                        // SAFETY: forwarded from the caller.
                        unsafe { row_into::<S, C, R, $r>(&rows, &masks, &wk, &mut acc) };
                    }
                )*};
            }
            const { assert!(S * (R - 1) + 3 <= 10, "each_row! lists rows 0 to 9") };
            each_row!(0 1 2 3 4 5 6 7 8 9);
            for (j, acc) in acc.iter().enumerate() {
                for (c, a) in acc.iter().enumerate() {
                    let x0 = first + c * LANES;
                    let at = out.as_mut_ptr().wrapping_add((y0 + j) * wo + x0);
                    // SAFETY: at most `wo - x0` floats of output row `y0 + j < ho`.
                    unsafe {
                        if wo - x0 >= LANES {
                            _mm256_storeu_ps(at, *a)
                        } else {
                            _mm256_maskstore_ps(at, stores[c], *a)
                        }
                    };
                }
            }
            oy += R;
        }
        c0 += C;
    }
}

/// Input row `y0 + RI - padding` of a block into the sums of the output rows `j` it feeds
/// (`ky = RI - S * j` in `0..3`), each load made once; nothing for a row outside the map.
///
/// # Safety
/// AVX2; the masks are [`rows_of`]'s for the block; padding at most 1.
#[inline]
#[target_feature(enable = "avx2")]
// The chunk and tap numbers index the masks, the loads and the sums alike.
#[allow(clippy::needless_range_loop)]
unsafe fn row_into<const S: usize, const C: usize, const R: usize, const RI: usize>(
    rows: &RowsIn,
    masks: &[[__m256i; 4]; C],
    wk: &[__m256; 9],
    acc: &mut [[__m256; C]; R],
) {
    let (w, p) = (rows.geo.w, rows.geo.padding);
    let Some(iy) = (rows.y0 + RI).checked_sub(p).filter(|&iy| iy < rows.geo.h) else {
        return;
    };
    let row = rows
        .x
        .as_ptr()
        .wrapping_add(iy * w + rows.first)
        .wrapping_sub(p);
    // A chunk between the first and the last reads inside the row whole: with padding at most
    // 1 its columns lie between the previous chunk's and the next one's.
    let edge = |c: usize| c == 0 || c == C - 1;
    if S == 1 {
        for kx in 0..3 {
            for c in 0..C {
                let at = row.wrapping_add(c * LANES + kx);
                // SAFETY: the mask keeps every lane read inside row `iy`.
                let v = unsafe { load_in(edge(c), masks[c][kx], at) };
                add_tap::<S, C, R, RI>(acc, wk, c, kx, v);
            }
        }
        return;
    }
    let offsets = load_offsets(S, LANES);
    for c in 0..C {
        let at = row.wrapping_add(c * S * LANES);
        let mut v = [_mm256_setzero_ps(); 4];
        for (i, v) in v.iter_mut().enumerate() {
            // SAFETY: the masks keep every lane read inside row `iy`.
            *v = unsafe { load_in(edge(c), masks[c][i], at.wrapping_add(offsets[i])) };
        }
        let [lo, hi, lo2, hi2] = v;
        let taps = [even_lanes(lo, hi), odd_lanes(lo, hi), even_lanes(lo2, hi2)];
        for (kx, v) in taps.into_iter().enumerate() {
            add_tap::<S, C, R, RI>(acc, wk, c, kx, v);
        }
    }
}

/// Lanes 0, 2, .., 14 of the sixteen floats `lo`, `hi`: a shuffle within each 128-bit half,
/// then the halves' 64-bit pairs put in order.
#[inline]
#[target_feature(enable = "avx2")]
fn even_lanes(lo: __m256, hi: __m256) -> __m256 {
    let t = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(t)))
}

/// Lanes 1, 3, .., 15 of the sixteen floats `lo`, `hi` (as [`even_lanes`]).
#[inline]
#[target_feature(enable = "avx2")]
fn odd_lanes(lo: __m256, hi: __m256) -> __m256 {
    let t = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(t)))
}

/// Column tap `kx` of input row `RI`, chunk `c`, into the sums of the output rows it feeds.
#[inline]
#[target_feature(enable = "avx2")]
fn add_tap<const S: usize, const C: usize, const R: usize, const RI: usize>(
    acc: &mut [[__m256; C]; R],
    wk: &[__m256; 9],
    c: usize,
    kx: usize,
    v: __m256,
) {
    for (j, acc) in acc.iter_mut().enumerate() {
        if RI >= S * j && RI - S * j < 3 {
            let t = (RI - S * j) * 3 + kx;
            acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(wk[t], v));
        }
    }
}

/// Eight floats at `at`: the lanes of `mask` only where `masked`, else all.
///
/// # Safety
/// AVX2; the lanes read must be readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_in(masked: bool, mask: __m256i, at: *const f32) -> __m256 {
    // SAFETY: forwarded from the caller.
    unsafe {
        if masked {
            _mm256_maskload_ps(at, mask)
        } else {
            _mm256_loadu_ps(at)
        }
    }
}
