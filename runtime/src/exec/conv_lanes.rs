//! Convolutions on the f32 path with the output channels along the kernel's lanes:
//! `out[o][p] = epilogue(sum_k W[o][k] * x_p[k])` computed as the token GEMM computes a Linear
//! layer, the output pixels as the rows of `A` read where they lie, and the weights as the panels
//! of `Wᵀ` ([`super::token_gemm::weight_panels`], kept by the executor). A 1x1 convolution reads
//! its channel-major input in place ([`tile_pair_cols_to`]: pixel `r` of channel `i` at
//! `x[r + i * n]`; a strided one from a copy of the pixels it reads); any other reads
//! [`super::conv_direct`]'s phases of its padded input ([`tile_pair_tap_cols_to`], [`over_taps`])
//! on AVX-512F, and on AVX2 its padded input in blocks of channels ([`super::tap_blocks`],
//! [`over_pixels`]).
//! Each pair of channels' sums go to their output rows through a 16x16 transpose
//! ([`columns_to_rows`]). Values may instead lie in blocks of 16 channels
//! ([`super::blocked`], [`Layout`]): a 1x1 product then reads a K block's 12 pixels as one run
//! (`Pixels::Blocked`), and any of these convolutions writes a pixel's 16 sums as they leave
//! the lanes ([`finish_pixels`]).
//!
//! Why: [`super::conv_direct`] puts the pixels along the lanes, 32 per kernel call, so a 7x7
//! map's 49 pixels took 64 columns of work and a 14x14 map's 196 took 224; and it reads `B`
//! (the input) in unaligned runs at every tap. Here a block is 12 pixels by 32 channels
//! (ResNet's channels are multiples of 32; a map wastes at most the rest of its last block, 4%
//! of 196 pixels, 10% of 49 with a last 6-pixel tile), `B` is the packed weights. Measured at
//! two threads on Zen 4 (AVX-512), against [`super::conv_direct`]: 1024 to 256 channels on 14x14
//! 0.66 against 0.49 ms, 2048 to 512 on 7x7 0.86 against 0.57, the 1024 to 2048 downsampling
//! with stride 2 1.70 against 1.07, the 3x3 stride-2 256 to 256 on 28x28 1.48 against 1.31;
//! ResNet50's f32 path 42.6-43.3 against 40.2-40.9 ms per image (when its 1x1 convolutions of
//! 64 input channels on 56x56 still came here too). Which layers take it: [`pays`].
//!
//! On AVX-512F (the kernel's pairs of 512-bit panels) and AVX2 (four 6x16 tiles a block,
//! `kernel::x86_lanes`, on fewer maps: [`SMALL_MAP_AVX2`]). The sums run over `k` in order, in
//! the same K blocks as [`super::conv_direct`] ([`k_block`]), one fused multiply-add per term:
//! the same floats (tested bit for bit).

use rayon::prelude::*;

use super::blocked::{Layout, LANES};
use super::buf::Buf;
use super::conv_direct::{k_block, Phases};
use super::disjoint::Shared;
use super::epilogue::{finish_pixels, finish_row};
use super::gemm::{Epilogue, Rows};
use super::im2col::Geometry;
use super::kernel::{
    lanes_pay, pairs_pay, tile_pair_cols_to, tile_pair_pixel_cols_to, tile_pair_tap_cols_to,
    PanelPair, Pixels, MR, NR,
};
use super::phases::phase_of_row;
use super::scratch;
use super::tap_blocks::TapBlocks;
use super::transpose::columns_to_rows;

/// A layer's weights as the panels of `Wᵀ` ([`super::token_gemm::weight_panels`]): floats, or
/// a packed layer's codes as `i8` ([`byte_panels`]), which the kernel turns into their floats
/// as it loads them (the same floats: the epilogue multiplies by the scales either way).
#[derive(Clone, Copy)]
pub enum LaneWeights<'a> {
    F32(&'a [f32]),
    I8(&'a [i8]),
}

impl LaneWeights<'_> {
    fn len(&self) -> usize {
        match self {
            LaneWeights::F32(w) => w.len(),
            LaneWeights::I8(w) => w.len(),
        }
    }

    /// Rows `k0..k0 + kc` of panels `j` and `second` (of `k` rows each).
    fn pair(
        &self,
        (j, second): (usize, usize),
        k: usize,
        (k0, kc): (usize, usize),
    ) -> PanelPair<'_> {
        let rows = |j: usize| (j * k + k0) * NR..(j * k + k0 + kc) * NR;
        match self {
            LaneWeights::F32(w) => PanelPair::F32(&w[rows(j)], &w[rows(second)]),
            LaneWeights::I8(w) => PanelPair::I8(&w[rows(j)], &w[rows(second)]),
        }
    }
}

/// Bytes of weights (as floats) from which a layer keeps its panels as `i8` codes
/// ([`bytes_pay`]).
const BYTES_MIN: usize = 4 << 20;

/// Whether a layer of `weights` weights keeps its panels as `i8` codes ([`byte_panels`]): on
/// AVX-512F and AVX2 (whose kernels turn them into floats in their registers), when their
/// floats ([`BYTES_MIN`] and more) come from memory on every image rather than from the
/// caches. (On the Zen 3 of stop 68, ResNet50's 1x1 layers on 7x7, 4 MB of floats each:
/// 0.69-0.70 -> 0.64-0.65 ms, `step_times`, 4 processes alternated.)
///
/// Why: as floats, ResNet50's f32 weights (100 MB) do not stay in cache from one image to the
/// next, and its last stage's convolutions waited on them. In ResNet50 (`step_times`, the Xeon
/// of stop 52, 2 rounds): the last stage's 1x1 convolutions (4-8 MB as floats) 0.48-0.55 ->
/// 0.44-0.46 ms, its downsampling 0.99-1.00 -> 0.84-0.86, its stride-2 3x3 1.25 -> 1.09; the
/// conversion (two instructions per row of `B`) made the 2.4 MB stride-2 3x3 of the stage
/// before slower (1.07 -> 1.16 ms), and its 1 MB layers no faster: hence the size.
pub fn bytes_pay(weights: usize) -> bool {
    lanes_pay() && weights * std::mem::size_of::<f32>() >= BYTES_MIN
}

/// The panels of [`super::token_gemm::weight_panels`] of `rows` weight rows of `k` as `i8`,
/// made from the rows directly (no panels of floats first, which were a transient 4 bytes a
/// weight on top of the resident memory), when every weight is a whole number within `i8`'s
/// range (a packed layer's codes, 2 to 8 bits); `None` otherwise (an FP32 export's weights).
pub fn byte_panels(w: &Rows, rows: usize, k: usize) -> Option<Buf<i8>> {
    let byte = |v: f32| (v.fract() == 0.0 && (-128.0..=127.0).contains(&v)).then_some(v as i8);
    let mut wp = Buf::zeroed(rows.div_ceil(NR) * k * NR);
    if k == 0 {
        return Some(wp);
    }
    let whole = wp.par_chunks_mut(k * NR).enumerate().all(|(j, panel)| {
        let mut row = vec![0f32; k];
        (0..NR.min(rows - j * NR)).all(|c| {
            w.load(j * NR + c, 0, &mut row);
            row.iter()
                .enumerate()
                .all(|(i, &v)| byte(v).map(|b| panel[i * NR + c] = b).is_some())
        })
    });
    whole.then_some(wp)
}

/// Pixels per block: the kernel's `2 MR` rows.
const BLOCK: usize = 2 * MR;
/// Channels per block: a pair of panels.
const PAIR: usize = 2 * NR;
/// Whether [`conv_lanes`] runs this convolution, on the AVX-512F and AVX2 paths
/// ([`lanes_pay`]): ungrouped, with whole pairs of panels of output channels (a multiple of 32:
/// every convolution of the ResNets but their stems), and either a 1x1 without padding over a
/// small map ([`SMALL_MAP`], [`SMALL_MAP_AVX2`]), or another of [`MIN_TAP_CHANNELS`] input
/// channels or more over a small map ([`MAX_TAP_MAP`]).
pub fn pays(geo: &Geometry, co: usize, groups: usize) -> bool {
    let ones = (geo.kernel, geo.padding) == (1, 0);
    // AVX-512F's pairs of 512-bit panels take larger maps than AVX2's tiles ([`SMALL_MAP`]).
    let small = if pairs_pay() {
        SMALL_MAP
    } else {
        BLOCKED_MAP_AVX2
    };
    lanes_pay()
        && groups == 1
        && geo.stride >= 1
        && geo.n() > 0
        && geo.c > 0
        && co > 0
        && co.is_multiple_of(PAIR)
        && if ones {
            geo.n() <= small
        } else {
            geo.c >= MIN_TAP_CHANNELS && geo.n() <= MAX_TAP_MAP
        }
}

/// Maps up to this many output pixels (28x28) take this path for a convolution of more than one
/// tap; larger ones (56x56 and up) waste no columns in [`super::conv_direct`], which ran them
/// faster on the Intel Xeon of stop 50 (TinyViT-5M's 32 to 64, stride 2 to 56x56, 0.71-0.72
/// against 0.75-0.87 ms, `step_times`, `set_conv_lanes` off and on); ResNet18's 14x14 and 7x7 ones
/// stay here (128 to 256, stride 2 to 14x14: 0.52 against 0.55; 256 to 512 to 7x7: 0.56-0.57
/// against 0.65-0.69).
///
/// 28x28 maps came here at stop 65, with their 1x1 layers ([`SMALL_MAP`]): the strided 3x3
/// into ResNet's second stage then writes its output in blocks of channels for the 1x1 layer
/// after it. `step_times`, both limits alternated in one process (the Xeon of stop 65, 4 + 4
/// processes): ResNet50's 128 to 128 stride 2 0.95-1.00 -> 0.88-0.94 ms and the 1x1 after it
/// 0.37-0.39 -> 0.35-0.37, ResNet18's 64 to 128 0.46 -> 0.43. (At stop 50, before the blocks,
/// ResNet18's took 0.65-0.67 ms here against 0.54-0.55 in [`super::conv_direct`].)
const MAX_TAP_MAP: usize = 1024;

/// Maps up to this many output pixels (28x28) take this path for a 1x1 convolution:
/// [`super::conv_direct`] wastes 14% of a 14x14 map's work and 31% of a 7x7 one's, and on
/// 28x28 maps this path keeps the values of ResNet50's second stage in blocks of channels
/// ([`super::blocked`]) between its 1x1 layers and its Winograd ones (its downsampling, stride
/// 2 from 56x56, writes the residual they all read). In ResNet50 (`step_times`, both limits
/// alternated in one process, 8 processes, the Xeon of stop 65): 512 to 128 channels on 28x28
/// 0.41-0.43 -> 0.38-0.41 ms, 128 to 512 0.43-0.46 -> 0.38-0.40, 512 to 256 0.87-0.88 ->
/// 0.72-0.77, the Winograd layers between them 0.90-0.96 of their time, the downsampling
/// 0.90-0.92 -> 0.95-0.96 ms; the step sum 28.2-28.5 -> 27.7-27.8 ms. (With the stride-1 ones
/// alone, the residual stayed in channel planes, and 512 to 128 took 0.45-0.47 ms.) ResNet18's
/// and TinyViT-5M's step sums within noise.
///
/// 56x56 maps stay with [`super::conv_direct`] whatever their channels: tasks here are ranges
/// of channel pairs, 2 of them for 64 output channels, and a pair's sums of 3,136 pixels (400
/// KB) gather outside L1 (ResNet50's 256 to 64 on 56x56 1.7 times slower here at stop 65).
///
/// Before the blocks of channels and the prefetches (stops 62-64), stop 45 sent the 1x1
/// convolutions of 128 input channels or more here on every map, measured at two threads on
/// Zen 4 (AVX-512 on 256-bit units): 256 to 64 channels on 56x56 0.47 against 0.50-0.55 ms, 512
/// to 128 on 28x28 0.50 against 0.55. On the Intel Xeon of stop 47 (two 512-bit FMA units per
/// core) the same layers took twice as long here as there: in ResNet50, 256 to 64 on 56x56
/// 1.00-1.04 against 0.47-0.48 ms, 512 to 128 on 28x28 0.82-0.85 against 0.48-0.49, 256 to 128
/// and 512 to 256 1.71 and 1.41 against 0.95; TinyViT-5M's 256 to 64 on 56x56 1.06-1.14
/// against 0.62-0.74 (`step_times`, `set_conv_lanes` off and on). Both paths give the same
/// floats, so the choice is speed alone: a few percent on those layers on Zen 4 against half
/// their time on the Xeon.
const SMALL_MAP: usize = 1024;

/// Maps up to this many output pixels (14x14) take this path for a 1x1 convolution on AVX2
/// whatever the layout of its values (up to [`BLOCKED_MAP_AVX2`] in blocks of channels), whose
/// kernel is four 6x16 tiles a block (`kernel::x86_lanes`).
///
/// Why: over whole maps in channel planes (before [`pixel_chunk`]), a block's sums (12 pixels
/// by 32 channels) gathered in a buffer of a pair's pixels, 100 KB at 28x28, outside the L1
/// cache, which a short `K` re-read often: ResNet50's 128 to 512 on 28x28 0.64-0.67 ms in
/// [`super::conv_direct`] against 0.76-0.78 here, its strided 256 to 512 to 28x28 1.43 against
/// 1.53 (its 512 to 128 0.73-0.76 against 0.66-0.68); larger maps come here in blocks only
/// ([`BLOCKED_MAP_AVX2`]). On 14x14 and 7x7 this path wins outright: [`super::conv_direct`]'s
/// 16 pixels along the lanes take 208 columns of work for 196 pixels and 64 for 49, and read
/// each step's pixels from another channel plane, unaligned. In ResNet50 (`step_times`, f32, 2
/// threads, the Zen 3 of stop 68, 5 processes alternating `FQ_NO_LANES`, `FQ_NO_BLOCKS` and
/// neither, the fastest two of each step): its 1x1 layers on 14x14 0.77-0.80 ms ->
/// 0.64-0.65 here -> 0.58-0.60 with the values between them in blocks of channels
/// ([`blocks_pay`]), those on 7x7 0.98-1.16 -> 0.63-0.67 (their weights as `i8`: [`bytes_pay`]),
/// the strided 512 to 1024 to 14x14 1.47-1.50 -> 1.26-1.28 and 1024 to 2048 to 7x7 1.71 ->
/// 1.25-1.27; the strided 3x3 ones ([`over_taps`], [`MAX_TAP_MAP`]) 128 to 128 to 28x28 1.84
/// -> 1.69, 256 to 256 to 14x14 1.87 -> 1.59, 512 to 512 to 7x7 1.95 -> 1.74. The step sum
/// 50.9 -> 46.7 -> 44.5 ms (onnxruntime's per node on the same CPU, `enable_profiling`: 45.2).
const SMALL_MAP_AVX2: usize = 196;

/// Maps up to this many output pixels (56x56) take this path for a 1x1 convolution on AVX2
/// when its input or output lies in blocks of channels ([`wants_blocks`]), in chunks of pixels
/// ([`pixel_chunk`]).
///
/// Why: read and written in blocks, a 1x1 layer's pixels are runs of a pixel's 16 channels,
/// and the Winograd layers between them read and write the same. In ResNet50 (`step_times`,
/// f32, 2 threads, the Zen 3 of stop 68, 4 + 4 processes alternated against 196 pixels): 512
/// to 128 on 28x28 0.74-0.75 -> 0.59 ms, 128 to 512 with its residual 0.67-0.68 -> 0.59-0.62,
/// 256 to 64 on 56x56 0.67-0.69 -> 0.60, 64 to 256 with its residual 0.75-0.82 -> 0.69-0.73,
/// the strided 256 to 512 1.42 -> 1.25, the Winograd layers between them 0.64-0.67 -> 0.57-0.62
/// (28x28) and 0.84-0.90 -> 0.73-0.76 (56x56); the step sum 45.1 -> 42.9 ms. With neither in
/// blocks it lost: TinyViT-5M's 1x1 layers on 56x56, with GELU epilogues or a depthwise
/// layer's output as input, 1.24-1.26 -> 1.49-1.60 ms (64 to 256), 0.83 -> 0.88-0.89 (256 to
/// 64), 0.63 -> 0.74 (64 to 128 on 28x28).
const BLOCKED_MAP_AVX2: usize = 3136;

/// Whether this convolution, which [`pays`], pays on this path only with its input or output
/// in blocks of channels ([`BLOCKED_MAP_AVX2`]): on AVX2, a 1x1 one over a map above
/// [`SMALL_MAP_AVX2`]. The executor finds which do (`Executor::wide_lanes`, a fixed point over
/// the blocked values) and runs the others by [`super::conv_direct`].
pub fn wants_blocks(geo: &Geometry) -> bool {
    lanes_pay() && !pairs_pay() && (geo.kernel, geo.padding) == (1, 0) && geo.n() > SMALL_MAP_AVX2
}

/// Input channels from which a convolution of more than one tap takes this path: the RGB stems
/// (3) ran faster in [`super::conv_direct`] (ResNet's 7x7 1.19 against 1.24 ms), TinyViT's 32 to
/// 64 channels on 112x112 as fast, ResNet18's and ResNet50's strided 3x3 convolutions (64 to
/// 512 channels) 2-20% faster here.
const MIN_TAP_CHANNELS: usize = 16;

/// Whether the executor keeps values in blocks of channels ([`super::blocked`]) at all: where
/// this module's 1x1 products run ([`lanes_pay`]; measured on AVX2 at [`SMALL_MAP_AVX2`]).
pub fn blocks_pay() -> bool {
    lanes_pay()
}

/// Whether [`conv_lanes`] reads this convolution's input in blocks ([`Layout`]): a 1x1 one
/// without padding. Every one writes its output in blocks when asked.
pub fn takes_blocks(geo: &Geometry) -> bool {
    (geo.kernel, geo.padding) == (1, 0)
}
/// `out` (`[co][ho * wo]`, or blocked) = epilogue(`conv(x)`) for the convolution `geo`
/// ([`pays`]) over `x` (`[c][h][w]`, or blocked; [`Layout`]) and `wp` the panels of `Wᵀ` of
/// `co` rows of `c` ([`super::token_gemm::weight_panels`]). A strided 1x1 first takes the pixels
/// it reads into a buffer of its own (ResNet50's downsampling convolutions: a quarter of their
/// input), in its input's layout.
pub fn conv_lanes(
    x: &[f32],
    geo: &Geometry,
    wp: LaneWeights,
    co: usize,
    out: &mut [f32],
    (epi, layout): (Epilogue, Layout),
) {
    assert!(
        x.len() == geo.c * geo.h * geo.w,
        "conv_lanes: {geo:?} over {} inputs",
        x.len()
    );
    if !takes_blocks(geo) {
        assert!(
            !layout.input_blocked,
            "conv_lanes: a blocked input for {geo:?}"
        );
        return over_taps(x, geo, wp, co, out, (epi, layout.output_blocked));
    }
    if geo.stride == 1 {
        return product(
            x,
            (geo.c, geo.n()),
            wp,
            co,
            out,
            (epi, k_block(geo), layout),
        );
    }
    let (s, n) = (geo.stride, geo.n());
    let mut picked = scratch::F32.take(geo.c * n, true);
    if layout.input_blocked {
        // Each block's picked pixels, a pixel's `LANES` channels at a time.
        picked
            .par_chunks_mut((n * LANES).max(1))
            .zip(x.par_chunks(geo.h * geo.w * LANES))
            .for_each(|(dst, plane)| {
                for (q, px) in dst.chunks_exact_mut(LANES).enumerate() {
                    let (oy, ox) = (q / geo.wo, q % geo.wo);
                    let from = (oy * s * geo.w + ox * s) * LANES;
                    px.copy_from_slice(&plane[from..from + LANES]);
                }
            });
    } else {
        picked
            .par_chunks_mut(n.max(1))
            .zip(x.par_chunks(geo.h * geo.w))
            .for_each(|(dst, plane)| {
                for (y, row) in dst.chunks_exact_mut(geo.wo).enumerate() {
                    phase_of_row(&plane[y * s * geo.w..][..geo.w], s, 0, 0, row);
                }
            });
    }
    product(
        &picked,
        (geo.c, n),
        wp,
        co,
        out,
        (epi, k_block(geo), layout),
    );
    scratch::F32.give(picked);
}

/// Output pixels from which a map's blocks ask for their next block ([`prefetch_block`]): a
/// 7x7 map's planes (49 floats, three or four cache lines, which the L2 fetches in pairs) come
/// in with the first block's reads, and there the prefetches only cost (ResNet50's and
/// ResNet18's strided 3x3 layers to 7x7: 1.15–1.17 → 1.16–1.20 ms and 0.59–0.60 → 0.60–0.62,
/// the 1x1 layers on 7x7 within ±0.015 ms); 14x14 maps (196) take them.
const AHEAD_MIN_PIXELS: usize = 128;

/// Asks for the `BLOCK` floats of `src` at `at + off` for each offset (the next block's pixels
/// in each channel plane of a K block, or its positions at each tap in [`over_taps`]' phases),
/// into L1 while the kernel multiplies this block's.
///
/// Why: a block reads its 12 positions from each of a K block's 128 planes, more streams than
/// the hardware prefetcher follows, and a task's first pair of channels finds the input in the
/// caches of the cores that wrote it, or in L3, not in its own L2 (its later pairs do).
/// [`product`] and [`over_taps`] ask on each task's first pair, on maps of
/// [`AHEAD_MIN_PIXELS`] and more. Measured with `step_times ... f32 30 2`, 8 rounds, the
/// binaries' order alternated (the Xeon of stop 62): ResNet50's 1024→256 1x1 layers on 14x14
/// (one pair per task) 0.47–0.50 ms without, 0.42–0.43 with; asking on every pair of a task
/// instead cost the layers whose input stays in L2 (256→1024 on 14x14, four pairs per task:
/// 0.41–0.43 against 0.39–0.41 ms on the first pair alone, 3 runs; 1024→512, two pairs:
/// 0.76–0.78 against 0.73–0.75), and in [`over_taps`] (ResNet50's strided 3x3 layers to 14x14
/// and 7x7) 1.07 → 1.05 and 1.21 → 1.28 ms. On the first pair alone, the strided 3x3 layers to
/// 14x14 took 1.01 → 0.98 and 0.98 → 0.93 ms (ResNet50's 256→256, 2 runs) and 0.52 → 0.48 and
/// 0.52 → 0.50 (ResNet18's 128→256).
fn prefetch_block(src: &[f32], at: usize, offsets: impl Iterator<Item = usize>) {
    #[cfg(target_arch = "x86_64")]
    for off in offsets {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = src.as_ptr().wrapping_add(at + off);
        // SAFETY: `_mm_prefetch` is a hint (SSE, in every x86-64 CPU); it reads nothing and
        // never faults, whatever the address. Both ends of the 48 bytes: they may straddle a
        // line.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(BLOCK - 1) as *const i8);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, at, offsets);
}

/// The product itself: `x` is `[k][n]` (or blocked, [`Layout`]), summed in K blocks of `kb`.
fn product(
    x: &[f32],
    (k, n): (usize, usize),
    wp: LaneWeights,
    co: usize,
    out: &mut [f32],
    (epi, kb, layout): (Epilogue, usize, Layout),
) {
    let panels = co.div_ceil(NR);
    assert!(
        x.len() == k * n && out.len() == co * n && wp.len() == panels * k * NR && k > 0,
        "conv_lanes: {} inputs for [{k}][{n}], {} outputs for {co}, {} weights",
        x.len(),
        out.len(),
        wp.len()
    );
    assert!(
        !layout.input_blocked || (k.is_multiple_of(LANES) && kb.is_multiple_of(LANES)),
        "conv_lanes: blocked input of {k} channels in K blocks of {kb}"
    );
    assert!(
        !layout.output_blocked || co.is_multiple_of(LANES),
        "conv_lanes: blocked output of {co} channels"
    );
    if n == 0 || co == 0 {
        return;
    }
    // The last block's pixels, zero-padded to a whole block (`tail[i * BLOCK + r]`, blocked:
    // `tail[(i / LANES) * BLOCK * LANES + r * LANES + i % LANES]`), so that the kernel never
    // reads past the input.
    let full = n / BLOCK * BLOCK;
    let mut tail = Buf::zeroed(if full < n { k * BLOCK } else { 0 });
    if layout.input_blocked {
        for (b, t) in tail.chunks_exact_mut(BLOCK * LANES).enumerate() {
            let from = b * n * LANES + full * LANES;
            t[..(n - full) * LANES].copy_from_slice(&x[from..(b + 1) * n * LANES]);
        }
    } else {
        for (i, t) in tail.chunks_exact_mut(BLOCK).enumerate() {
            t[..n - full].copy_from_slice(&x[i * n + full..(i + 1) * n]);
        }
    }
    // Tasks are ranges of pairs of panels (channels) by ranges of chunks of pixels
    // ([`pixel_chunk`]; on AVX-512F one chunk, all pixels: every weight is read once). A
    // pair's sums of a chunk gather in a buffer of its pixels' rows of 32 (32 KB for a map of
    // 256 pixels, in the core's L1) while the pair's `K` blocks add into it, then go to their
    // output rows.
    let pairs = panels.div_ceil(2);
    let chunk = pixel_chunk(n);
    let chunks = n.div_ceil(chunk);
    let base = Shared(out.as_mut_ptr());
    let ahead_map = n >= AHEAD_MIN_PIXELS;
    for_each_task((pairs, chunks), |(p0, p1), (c0, c1)| {
        // Recycled, stale contents: a pair's first `K` block sets every value of it.
        let mut c = scratch::F32.take(chunk.min(n) * PAIR, true);
        for j in (2 * p0..(2 * p1).min(panels)).step_by(2) {
            // A lone last panel goes in as both; its second half of sums is dropped.
            let second = (j + 1).min(panels - 1);
            // The task's first pair reads the input cold ([`prefetch_block`]).
            let ahead = ahead_map && j == 2 * p0;
            for (q0, q1) in (c0..c1).map(|h| (h * chunk, ((h + 1) * chunk).min(n))) {
                for k0 in (0..k).step_by(kb) {
                    let kc = kb.min(k - k0);
                    for g in (q0..q1).step_by(BLOCK) {
                        let rows = BLOCK.min(n - g);
                        let a = match (layout.input_blocked, g + BLOCK <= n) {
                            (false, true) => Pixels::Planes(&x[k0 * n + g..], n),
                            (false, false) => Pixels::Planes(&tail[k0 * BLOCK..], BLOCK),
                            (true, true) => Pixels::Blocked(&x[k0 * n + g * LANES..], n * LANES),
                            (true, false) => Pixels::Blocked(&tail[k0 * BLOCK..], BLOCK * LANES),
                        };
                        if ahead && g + BLOCK < q1 && !layout.input_blocked {
                            prefetch_block(x, g + BLOCK, (k0..k0 + kc).map(|i| i * n));
                        }
                        let to = c[(g - q0) * PAIR..].as_mut_ptr();
                        // SAFETY: rows `g - q0..+rows` of `c`, 32 floats each: inside `c`,
                        // this task's own.
                        unsafe {
                            tile_pair_cols_to(
                                kc,
                                a,
                                wp.pair((j, second), k, (k0, kc)),
                                (to, PAIR, rows, k0 > 0),
                            )
                        };
                    }
                }
                finish_chunk(
                    &c,
                    (j, co, n),
                    (q0, q1),
                    base,
                    (&epi, layout.output_blocked),
                );
            }
        }
        scratch::F32.give(c);
    });
}

/// Runs `task(pairs p0..p1, chunks c0..c1)` over a grid of ranges of `pairs` pairs of panels by
/// ranges of `chunks` chunks of pixels or positions ([`product`], [`over_taps`]), in parallel:
/// about four tasks per thread, chunks split first.
fn for_each_task(
    (pairs, chunks): (usize, usize),
    task: impl Fn((usize, usize), (usize, usize)) + Send + Sync,
) {
    let want = 4 * rayon::current_num_threads().max(1);
    let col_tasks = chunks.min(want).max(1);
    let row_tasks = pairs.min(want.div_ceil(col_tasks)).max(1);
    super::tasks::each(row_tasks * col_tasks, |t| {
        let (pt, ct) = (t / col_tasks, t % col_tasks);
        let (p0, p1) = (pairs * pt / row_tasks, pairs * (pt + 1) / row_tasks);
        let (c0, c1) = (chunks * ct / col_tasks, chunks * (ct + 1) / col_tasks);
        task((p0, p1), (c0, c1));
    });
}

/// Pixels per chunk of [`product`]: all of them on AVX-512F (its 1 MB and more of L2 keep a
/// pair's sums of a 28x28 map, 100 KB, and its measurements were made so) and on maps of up to
/// [`SMALL_MAP_AVX2`] pixels (25 KB of sums); on AVX2's larger maps 96, whose sums for a pair
/// (12 KB) stay in the L1 cache across the `K` blocks. (In chunks of 96, ResNet50's 1x1 layers
/// on 14x14 took 0.63-0.71 ms against 0.58-0.60 whole: a last chunk of 4 pixels, and each
/// pair's weights read three times.)
fn pixel_chunk(n: usize) -> usize {
    if pairs_pay() || n <= SMALL_MAP_AVX2 {
        n.max(1)
    } else {
        8 * BLOCK
    }
}

/// The sums `c` of pixels `q0..q1` (row `p - q0` of `PAIR`) of the pair of panels from `j` to
/// their outputs, finished ([`finish_pixels`] into blocks of channels, or through
/// [`columns_to_rows`] into channel planes and [`finish_row`]).
fn finish_chunk(
    c: &[f32],
    (j, co, n): (usize, usize, usize),
    (q0, q1): (usize, usize),
    base: Shared<f32>,
    (epi, output_blocked): (&Epilogue, bool),
) {
    let channels = j * NR..((j + 2) * NR).min(co);
    let len = q1 - q0;
    if output_blocked {
        // A panel's channels are a block's (`NR` = `LANES`): its plane, pixel by pixel.
        for (h, c0) in channels.step_by(LANES).enumerate() {
            let at = c0 * n + q0 * LANES..c0 * n + q1 * LANES;
            // SAFETY: tasks own disjoint (channels, pixels) rectangles, so disjoint runs of
            // blocks, which lie in `out`, which outlives the parallel loop.
            let dst = unsafe { base.slice(at.start, at.len()) };
            let res = epi.residual.map(|r| &r[at]);
            finish_pixels(dst, Some((&c[h * NR..], PAIR)), epi, c0, res);
        }
        return;
    }
    // SAFETY: tasks own disjoint (channels, pixels) rectangles; rows `o < co` lie in `out`,
    // which outlives the parallel loop.
    unsafe {
        columns_to_rows(
            c,
            PAIR,
            (len, channels.len()),
            base.offset(j * NR * n + q0),
            n,
        )
    };
    for o in channels {
        // SAFETY: as above.
        let row = unsafe { base.slice(o * n + q0, len) };
        let res = epi.residual.map(|r| &r[o * n + q0..o * n + q1]);
        finish_row(row, epi, o, res);
    }
}

/// Any other convolution ([`conv_lanes`]): over the phases of its padded input on AVX-512F
/// ([`over_phases`]), over its padded input in blocks of channels on AVX2 ([`over_pixels`]).
fn over_taps(
    x: &[f32],
    geo: &Geometry,
    wp: LaneWeights,
    co: usize,
    out: &mut [f32],
    (epi, output_blocked): (Epilogue, bool),
) {
    if pairs_pay() {
        over_phases(x, geo, wp, co, out, (epi, output_blocked))
    } else {
        over_pixels(x, geo, wp, co, out, (epi, output_blocked))
    }
}

/// [`over_taps`] on AVX-512F: [`super::conv_direct`]'s output positions over the phases of its
/// padded input as the rows of `A` (read where they lie, [`tile_pair_tap_cols_to`]: position
/// `q`'s tap `i` at `src[q + taps[i]]`); the sums of a chunk of positions gather per pair of
/// channels, then go to their output rows (the positions that wrap past a row's end dropped).
fn over_phases(
    x: &[f32],
    geo: &Geometry,
    wp: LaneWeights,
    co: usize,
    out: &mut [f32],
    (epi, output_blocked): (Epilogue, bool),
) {
    let kb = k_block(geo);
    let g = geo;
    let (k, n) = (g.k(), g.n());
    let panels = co.div_ceil(NR);
    assert!(
        k > 0 && n > 0 && out.len() == co * n && wp.len() == panels * k * NR,
        "conv_lanes: {g:?}"
    );
    let ph = Phases::new(g);
    let wpl = ph.wp;
    let positions = (g.ho - 1) * wpl + g.wo;
    let taps = ph.taps(g.kernel);
    // The last block of positions reads up to `BLOCK` of them.
    let len = ph.len().max(positions.div_ceil(BLOCK) * BLOCK + taps.max());
    let mut buf = scratch::F32.take(len, true);
    ph.fill(x, &mut buf[..len]);
    let src = &buf[..len];
    let ahead_map = n >= AHEAD_MIN_PIXELS;
    let base = Shared(out.as_mut_ptr());
    let block = |b: &TapBlock| {
        // A task's first pair reads the chunk's phases cold ([`prefetch_block`]).
        if ahead_map && b.first_pair && b.q + BLOCK < b.q1 {
            let offsets = taps.offsets()[b.k0..b.k0 + b.kc].iter().copied();
            prefetch_block(src, b.q + BLOCK, offsets);
        }
        // SAFETY: `b.to` is `b.rows` rows of 32 floats of the task's own sums
        // ([`over_chunks`]).
        unsafe {
            tile_pair_tap_cols_to(
                (src, b.q, &taps),
                (b.k0, b.kc),
                wp.pair((b.j, b.second), k, (b.k0, b.kc)),
                (b.to, PAIR, b.rows, b.k0 > 0),
            )
        };
    };
    // The chunk's real pixels (positions `ox < wo`) of the pair's channels.
    let finish = |c: &[f32], j: usize, (q0, q1): (usize, usize)| {
        let (oy0, oy1) = (q0 / wpl, (q1 - 1) / wpl + 1);
        let channels = j * NR..((j + 2) * NR).min(co);
        for oy in oy0..oy1 {
            let (qa, qb) = ((oy * wpl).max(q0), (oy * wpl + g.wo).min(q1));
            if qa >= qb {
                continue;
            }
            let p = oy * g.wo + qa - oy * wpl;
            let sums = &c[(qa - q0) * PAIR..];
            if output_blocked {
                // A panel's channels are a block's: its pixels `p..p + qb - qa`.
                for (h, o) in channels.clone().step_by(LANES).enumerate() {
                    let at = o * n + p * LANES..o * n + (p + qb - qa) * LANES;
                    // SAFETY: tasks own disjoint (channels, positions) rectangles, so disjoint
                    // runs of blocks, which lie in `out`, which outlives the parallel loop.
                    let dst = unsafe { base.slice(at.start, at.len()) };
                    let res = epi.residual.map(|r| &r[at]);
                    finish_pixels(dst, Some((&sums[h * NR..], PAIR)), &epi, o, res);
                }
                continue;
            }
            let to = base.offset(j * NR * n + p);
            // SAFETY: tasks own disjoint (channels, positions) rectangles, so disjoint pixels
            // `p..p + qb - qa` of each row `o < co` of `out`, which outlives the parallel loop.
            unsafe { columns_to_rows(sums, PAIR, (qb - qa, channels.len()), to, n) };
            for o in channels.clone() {
                // SAFETY: as above.
                let dst = unsafe { base.slice(o * n + p, qb - qa) };
                let res = epi.residual.map(|r| &r[o * n + p..o * n + p + qb - qa]);
                finish_row(dst, &epi, o, res);
            }
        }
    };
    over_chunks((positions, panels), (k, kb), block, finish);
    scratch::F32.give(buf);
}

/// [`over_taps`] on AVX2: the output pixels as the rows of `A` over the input in padded blocks
/// of channels ([`TapBlocks`], [`tile_pair_pixel_cols_to`]: pixel `p`'s step `i` at
/// `data[pixel(p) + offsets[i]]`), whose tiles read a step's six pixels from lines the steps
/// around it read too (see [`super::tap_blocks`]); the sums of a chunk of pixels go per pair of
/// channels to their outputs as [`product`]'s do ([`finish_chunk`]).
fn over_pixels(
    x: &[f32],
    geo: &Geometry,
    wp: LaneWeights,
    co: usize,
    out: &mut [f32],
    (epi, output_blocked): (Epilogue, bool),
) {
    let kb = k_block(geo);
    let (k, n) = (geo.k(), geo.n());
    let panels = co.div_ceil(NR);
    assert!(
        k > 0 && n > 0 && out.len() == co * n && wp.len() == panels * k * NR,
        "conv_lanes: {geo:?}"
    );
    let input = TapBlocks::fill(x, geo);
    let taps = input.offsets(geo);
    let base = Shared(out.as_mut_ptr());
    let block = |b: &TapBlock| {
        // The block's pixels; the rows past them read the last one's.
        let pixels = std::array::from_fn(|r| input.pixel(b.q + r.min(b.rows - 1)));
        // SAFETY: `b.to` is `b.rows` rows of 32 floats of the task's own sums
        // ([`over_chunks`]).
        unsafe {
            tile_pair_pixel_cols_to(
                (input.data(), &pixels, &taps),
                (b.k0, b.kc),
                wp.pair((b.j, b.second), k, (b.k0, b.kc)),
                (b.to, PAIR, b.rows, b.k0 > 0),
            )
        };
    };
    let finish = |c: &[f32], j: usize, chunk: (usize, usize)| {
        finish_chunk(c, (j, co, n), chunk, base, (&epi, output_blocked))
    };
    over_chunks((n, panels), (k, kb), block, finish);
}

/// One call of [`over_chunks`]' `block`: the sums of rows `q..q + rows` (positions or pixels;
/// the chunk's end is `q1`) against the pair of panels `(j, second)` over the K block
/// `k0..k0 + kc`, into `to`: `rows` rows of `PAIR` floats of the task's own sums, set on the
/// first K block and added on the others. `first_pair`: whether `j` is the task's first pair.
struct TapBlock {
    j: usize,
    second: usize,
    k0: usize,
    kc: usize,
    q: usize,
    q1: usize,
    rows: usize,
    to: *mut f32,
    first_pair: bool,
}

/// The tasks of [`over_phases`] and [`over_pixels`]: `rows` rows (positions or pixels) in chunks
/// of [`CHUNK`] by the pairs of `panels` ([`for_each_task`]); per chunk and pair, each K block
/// of `kb` of the `k` steps in blocks of [`BLOCK`] rows through `block` into the chunk's sums,
/// then `finish(sums, j, (q0, q1))` with the pair's first panel `j` and the chunk's rows.
fn over_chunks(
    (rows, panels): (usize, usize),
    (k, kb): (usize, usize),
    block: impl Fn(&TapBlock) + Sync,
    finish: impl Fn(&[f32], usize, (usize, usize)) + Sync,
) {
    let (chunks, pairs) = (rows.div_ceil(CHUNK), panels.div_ceil(2));
    for_each_task((pairs, chunks), |(p0, p1), (c0, c1)| {
        // Recycled, stale contents: a pair's first `K` block sets every value of it.
        let mut c = scratch::F32.take(CHUNK * PAIR, true);
        for chunk in c0..c1 {
            let (q0, q1) = (chunk * CHUNK, ((chunk + 1) * CHUNK).min(rows));
            for j in (2 * p0..(2 * p1).min(panels)).step_by(2) {
                let second = (j + 1).min(panels - 1);
                for k0 in (0..k).step_by(kb) {
                    let kc = kb.min(k - k0);
                    for q in (q0..q1).step_by(BLOCK) {
                        block(&TapBlock {
                            j,
                            second,
                            k0,
                            kc,
                            q,
                            q1,
                            rows: BLOCK.min(q1 - q),
                            to: c[(q - q0) * PAIR..].as_mut_ptr(),
                            first_pair: j == 2 * p0,
                        });
                    }
                }
                finish(&c, j, (q0, q1));
            }
        }
        scratch::F32.give(c);
    });
}

/// Positions (pixels, in [`over_pixels`]) per chunk of [`over_taps`]: their sums for a pair of
/// channels, 24 KB, stay in L1 across the `K` blocks.
const CHUNK: usize = 16 * BLOCK;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::gemm::KC;
    use crate::exec::int8_gemm::tests::in_pool;
    use crate::exec::token_gemm::weight_panels;

    /// Against the f64 definition: maps of whole and ragged blocks (1 to 6 and 7 to 11 pixels
    /// in the last), `k` across a `KC` boundary, maps that take the prefetches, channels of a
    /// lone last panel and of whole pairs, with scale, bias, residual and ReLU; in pools of 1 to
    /// 3 threads (1 to 6 tasks).
    #[test]
    fn matches_the_definition() {
        for (k, n, co) in [
            (3, 1, 16),
            (40, 49, 64),
            (300, 196, 48),
            (257, 24, 32),
            (64, 17, 80),
            (520, 7, 96),
            // Past `AHEAD_MIN_PIXELS`, over five K blocks: the first pair of each task asks
            // for each block's next pixels ahead.
            (1030, 130, 32),
        ] {
            let x: Vec<f32> = (0..k * n)
                .map(|i| ((i * 7919) % 211) as f32 / 50.0 - 2.0)
                .collect();
            let w: Vec<f32> = (0..co * k)
                .map(|i| ((i as u64 * 104_729) % 97) as f32 / 40.0 - 1.2)
                .collect();
            let scale: Vec<f32> = (0..co).map(|o| 0.5 + o as f32 * 0.01).collect();
            let bias: Vec<f32> = (0..co).map(|o| o as f32 * -0.1).collect();
            let res: Vec<f32> = (0..co * n).map(|i| (i % 9) as f32 * 0.2).collect();
            let wp = weight_panels(&Rows::F32 { data: &w, cols: k }, co, k);
            for (relu, threads) in [(false, 1), (true, 2), (true, 3)] {
                let epi = Epilogue {
                    scale: Some(&scale),
                    bias: Some(&bias),
                    residual: Some(&res),
                    relu,
                    gelu: false,
                };
                let mut got = vec![f32::NAN; co * n];
                in_pool(threads, || {
                    product(
                        &x,
                        (k, n),
                        LaneWeights::F32(&wp),
                        co,
                        &mut got,
                        (epi, KC, Layout::default()),
                    )
                });
                for o in 0..co {
                    for p in 0..n {
                        let dot: f64 = (0..k)
                            .map(|i| w[o * k + i] as f64 * x[i * n + p] as f64)
                            .sum();
                        let mut want =
                            dot * scale[o] as f64 + bias[o] as f64 + res[o * n + p] as f64;
                        if relu {
                            want = want.max(0.0);
                        }
                        let g = got[o * n + p] as f64;
                        assert!(
                            (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "k {k} n {n} co {co}, {threads} threads: ({o}, {p}) {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// `len` input values and `weights` weight values on coarse grids, shared by the tests
    /// that compare two ways of computing a layer.
    fn inputs(len: usize, weights: usize) -> (Vec<f32>, Vec<f32>) {
        let x = (0..len)
            .map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0)
            .collect();
        let wts = (0..weights)
            .map(|i| ((i * 13) % 29) as f32 / 10.0 - 1.4)
            .collect();
        (x, wts)
    }

    /// Convolutions of more than one tap (3x3 at strides 1 and 2, 7x7 and 5x5 with padding, maps
    /// of ragged chunks and blocks, channels of a lone last panel) and 1x1 ones (strided, and
    /// `k` across a `KC` boundary) give the floats of the
    /// pixels-along-the-lanes path ([`super::super::conv::conv2d`]) within rounding, in pools of
    /// 1 to 3 threads; on AVX-512F, where that path is `conv_direct`, bit for bit (the same
    /// fused multiply-adds in the same order).
    #[test]
    fn taps_give_the_direct_convolution() {
        use fq_models::Conv2d;
        for (c, h, w, kernel, stride, padding, co) in [
            (16, 14, 14, 3, 1, 1, 32),
            (20, 17, 15, 3, 2, 1, 48),
            (16, 23, 20, 7, 2, 3, 16),
            (24, 9, 30, 5, 1, 2, 64),
            (300, 6, 7, 3, 2, 1, 32),
            (64, 14, 14, 1, 1, 0, 64),
            (40, 9, 11, 1, 2, 0, 32),
            (300, 7, 7, 1, 1, 0, 96),
        ] {
            let geo = Geometry::of(c, h, w, kernel, stride, padding);
            let k = c * kernel * kernel;
            let (x, wts) = inputs(c * h * w, co * k);
            let rows = Rows::F32 {
                data: &wts,
                cols: k,
            };
            let wp = weight_panels(&rows, co, k);
            let bias: Vec<f32> = (0..co).map(|o| o as f32 * 0.1 - 1.0).collect();
            let res: Vec<f32> = (0..co * geo.n()).map(|i| (i % 7) as f32 * 0.3).collect();
            let epi = Epilogue {
                bias: Some(&bias),
                residual: Some(&res),
                relu: true,
                ..Epilogue::default()
            };
            let conv = Conv2d {
                in_channels: c,
                out_channels: co,
                kernel,
                stride,
                padding,
                groups: 1,
                bias: true,
            };
            let n = geo.n();
            let mut want = vec![f32::NAN; co * n];
            super::super::conv::conv2d(
                &x,
                (c, h, w),
                &conv,
                (co, geo.ho, geo.wo),
                &rows,
                epi,
                &mut want,
            );
            for threads in 1..=3 {
                let mut got = vec![f32::NAN; co * n];
                in_pool(threads, || {
                    conv_lanes(
                        &x,
                        &geo,
                        LaneWeights::F32(&wp),
                        co,
                        &mut got,
                        (epi, Layout::default()),
                    )
                });
                let what = format!("{geo:?} to {co}, {threads} threads");
                if lanes_pay() {
                    assert_eq!(got, want, "{what}");
                }
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{what}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Weights that are codes (whole numbers of 2 to 8 bits) as `i8` panels give the floats of
    /// their `f32` panels bit for bit, 1x1 (strided and not, `k` across a K block) and 3x3
    /// (stride 1 and 2), with the epilogue's scales; panels of other weights are refused.
    #[test]
    fn byte_panels_give_the_same_floats() {
        for (c, h, w, kernel, stride, padding, co, bits) in [
            (300, 7, 7, 1, 1, 0, 96, 8u32),
            (40, 9, 11, 1, 2, 0, 32, 4),
            (16, 14, 14, 3, 1, 1, 32, 2),
            (20, 17, 15, 3, 2, 1, 48, 5),
        ] {
            let geo = Geometry::of(c, h, w, kernel, stride, padding);
            let k = c * kernel * kernel;
            let top = (1i32 << (bits - 1)) as f32;
            let (x, wts) = inputs(c * h * w, co * k);
            let codes: Vec<f32> = wts
                .iter()
                .map(|v| (v * 10.0 * top).round().clamp(-top, top - 1.0))
                .collect();
            let rows = Rows::F32 {
                data: &codes,
                cols: k,
            };
            let wp = weight_panels(&rows, co, k);
            let bytes = byte_panels(&rows, co, k).expect("codes");
            assert_eq!(bytes.len(), wp.len());
            let scale: Vec<f32> = (0..co).map(|o| 0.01 * (o % 5 + 1) as f32).collect();
            let epi = Epilogue {
                scale: Some(&scale),
                relu: true,
                ..Epilogue::default()
            };
            let mut want = vec![f32::NAN; co * geo.n()];
            conv_lanes(
                &x,
                &geo,
                LaneWeights::F32(&wp),
                co,
                &mut want,
                (epi, Layout::default()),
            );
            let mut got = vec![f32::NAN; co * geo.n()];
            conv_lanes(
                &x,
                &geo,
                LaneWeights::I8(&bytes),
                co,
                &mut got,
                (epi, Layout::default()),
            );
            let first = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(first, None, "{geo:?} to {co}, {bits}-bit codes");
        }
        for bad in [0.5f32, 128.0] {
            let w = [1.0, bad];
            let rows = Rows::F32 { data: &w, cols: 2 };
            assert!(byte_panels(&rows, 1, 2).is_none(), "{bad}");
        }
    }

    /// Which convolutions come here ([`pays`]), on AVX-512F and AVX2: 1x1 ones over small maps
    /// whatever their channels (on AVX2 up to 56x56, beyond 14x14 only in blocks:
    /// [`wants_blocks`]), others of 16 input channels or more over
    /// small maps, ungrouped, of whole pairs of output channels; never on another path.
    #[test]
    fn takes_the_layers_it_suits() {
        let on = lanes_pay();
        // Whether it comes here on AVX-512F and on AVX2.
        for (geo, co, groups, (avx512, avx2)) in [
            (Geometry::of(256, 56, 56, 1, 1, 0), 64, 1, (false, true)),
            (Geometry::of(512, 28, 28, 1, 1, 0), 128, 1, (true, true)),
            (Geometry::of(256, 56, 56, 1, 2, 0), 512, 1, (true, true)),
            (Geometry::of(256, 112, 112, 1, 2, 0), 512, 1, (false, true)),
            (Geometry::of(2048, 7, 7, 1, 1, 0), 512, 1, (true, true)),
            (Geometry::of(64, 56, 56, 1, 1, 0), 256, 1, (false, true)),
            (Geometry::of(64, 112, 112, 1, 1, 0), 256, 1, (false, false)),
            (Geometry::of(64, 14, 14, 1, 1, 0), 256, 1, (true, true)),
            (Geometry::of(1024, 14, 14, 1, 2, 0), 2048, 1, (true, true)),
            (Geometry::of(128, 56, 56, 3, 2, 1), 128, 1, (true, true)),
            (Geometry::of(32, 112, 112, 3, 2, 1), 64, 1, (false, false)),
            (Geometry::of(256, 28, 28, 3, 2, 1), 256, 1, (true, true)),
            (Geometry::of(512, 7, 7, 3, 1, 1), 512, 1, (true, true)),
            (Geometry::of(3, 224, 224, 7, 2, 3), 64, 1, (false, false)),
            (Geometry::of(256, 56, 56, 1, 1, 0), 48, 1, (false, false)),
            (Geometry::of(64, 56, 56, 3, 1, 1), 64, 64, (false, false)),
            (Geometry::of(8, 28, 28, 3, 1, 1), 64, 1, (false, false)),
            (Geometry::of(0, 7, 7, 1, 1, 0), 64, 1, (false, false)),
        ] {
            let want = if pairs_pay() { avx512 } else { avx2 };
            assert_eq!(
                pays(&geo, co, groups),
                on && want,
                "{geo:?} to {co}, {groups} groups"
            );
            let ones = geo.kernel == 1;
            assert_eq!(
                wants_blocks(&geo),
                on && !pairs_pay() && ones && geo.n() > SMALL_MAP_AVX2,
                "{geo:?}"
            );
        }
    }

    /// A strided 1x1 convolution reads the pixels of its stride, at odd sizes too: the same
    /// floats as the product over those pixels picked by hand.
    #[test]
    fn strided_reads_its_pixels() {
        for (c, h, w, s, co) in [(20, 9, 11, 2, 48), (8, 14, 14, 2, 32), (5, 7, 10, 3, 16)] {
            let geo = Geometry::of(c, h, w, 1, s, 0);
            let (x, wts) = inputs(c * h * w, co * c);
            let wp = weight_panels(
                &Rows::F32 {
                    data: &wts,
                    cols: c,
                },
                co,
                c,
            );
            let picked: Vec<f32> = (0..c)
                .flat_map(|ch| (0..geo.ho).flat_map(move |y| (0..geo.wo).map(move |x| (ch, y, x))))
                .map(|(ch, y, xx)| x[(ch * h + y * s) * w + xx * s])
                .collect();
            let n = geo.n();
            let epi = Epilogue::default();
            let (mut got, mut want) = (vec![f32::NAN; co * n], vec![f32::NAN; co * n]);
            conv_lanes(
                &x,
                &geo,
                LaneWeights::F32(&wp),
                co,
                &mut got,
                (epi, Layout::default()),
            );
            product(
                &picked,
                (c, n),
                LaneWeights::F32(&wp),
                co,
                &mut want,
                (epi, KC, Layout::default()),
            );
            assert_eq!(got, want, "{c}x{h}x{w} stride {s}");
        }
    }

    /// A test layer: a convolution's geometry, its input on a coarse grid, whole-number weights
    /// (a packed layer's codes) as float and `i8` panels, and per-channel scales.
    struct Layer {
        geo: Geometry,
        x: Vec<f32>,
        wp: Buf<f32>,
        bytes: Buf<i8>,
        scale: Vec<f32>,
    }

    impl Layer {
        fn new(
            c: usize,
            (h, w): (usize, usize),
            (kernel, stride): (usize, usize),
            co: usize,
        ) -> Self {
            let geo = Geometry::of(c, h, w, kernel, stride, kernel / 2);
            let k = geo.k();
            let (x, wts) = inputs(c * h * w, co * k);
            let codes: Vec<f32> = wts.iter().map(|v| (v * 40.0).round()).collect();
            let rows = Rows::F32 {
                data: &codes,
                cols: k,
            };
            Layer {
                geo,
                x,
                wp: weight_panels(&rows, co, k),
                bytes: byte_panels(&rows, co, k).expect("codes"),
                scale: (0..co).map(|o| 0.01 * (o % 5 + 1) as f32).collect(),
            }
        }

        /// The weights as `i8` panels, or as floats.
        fn weights(&self, bytes: bool) -> LaneWeights<'_> {
            if bytes {
                LaneWeights::I8(&self.bytes)
            } else {
                LaneWeights::F32(&self.wp)
            }
        }
    }

    /// The first element whose bits differ.
    fn first_difference(a: &[f32], b: &[f32]) -> Option<usize> {
        a.iter()
            .zip(b)
            .position(|(a, b)| a.to_bits() != b.to_bits())
    }

    /// Blocked values ([`super::super::blocked`]) in, out, or both give the floats of channel
    /// planes bit for bit, with the residual laid out as the output: 1x1 stride 1 and 2, maps
    /// of whole and ragged last blocks (196, 49, 13 pixels), `k` across a K block, 3x3 stride
    /// 1 and 2 (blocked output alone), f32 and `i8` weights, 1 to 3 threads.
    #[test]
    fn blocked_values_give_the_same_floats() {
        use super::super::blocked::{from_planes, laid_out, to_planes};
        for (c, h, w, kernel, stride, co) in [
            (256, 14, 14, 1, 1, 64),
            (160, 7, 7, 1, 1, 96),
            (48, 14, 14, 1, 2, 32),
            (32, 13, 1, 1, 1, 32),
            (32, 9, 11, 1, 2, 64),
            (32, 14, 14, 3, 2, 64),
            (16, 9, 7, 3, 1, 32),
        ] {
            let layer = Layer::new(c, (h, w), (kernel, stride), co);
            let (geo, x, scale, n) = (&layer.geo, &layer.x, &layer.scale, layer.geo.n());
            let bias: Vec<f32> = (0..co).map(|o| o as f32 * 0.1 - 1.0).collect();
            let res: Vec<f32> = (0..co * n).map(|i| (i % 7) as f32 * 0.3 - 0.8).collect();
            let res_blocked = from_planes(&res, co, n);
            let x_blocked = from_planes(x, c, h * w);
            let layouts: &[(bool, bool)] = if takes_blocks(geo) {
                &[(true, false), (false, true), (true, true)]
            } else {
                &[(false, true)]
            };
            for &(input_blocked, output_blocked) in layouts {
                let layout = Layout {
                    input_blocked,
                    output_blocked,
                };
                for (bytes_in, threads) in [(false, 1), (true, 2), (false, 3)] {
                    let wts = layer.weights(bytes_in);
                    let epi = |residual| Epilogue {
                        scale: Some(scale),
                        bias: Some(&bias),
                        residual: Some(residual),
                        relu: true,
                        gelu: false,
                    };
                    let mut want = vec![f32::NAN; co * n];
                    let mut got = vec![f32::NAN; co * n];
                    in_pool(threads, || {
                        conv_lanes(x, geo, wts, co, &mut want, (epi(&res), Layout::default()));
                        let (input, residual) =
                            laid_out(layout, (x, &x_blocked), (&res, &res_blocked));
                        conv_lanes(input, geo, wts, co, &mut got, (epi(residual), layout));
                    });
                    if output_blocked {
                        got = to_planes(&got, co, n).to_vec();
                    }
                    assert_eq!(
                        first_difference(&got, &want),
                        None,
                        "{geo:?} to {co}, {layout:?}, {threads} threads"
                    );
                }
            }
        }
    }

    /// On AVX2 the tap blocks ([`over_pixels`]) give the phases' floats ([`over_phases`],
    /// AVX-512F's path, run here with AVX2's kernel) bit for bit: the same steps in the same
    /// order and K blocks. Strides 1 and 2, kernels 3, 5 and 7 with their padding, `k` across
    /// K blocks, ragged chunks and blocks, channels of a lone last panel, f32 and `i8` weights,
    /// 1 to 3 threads. Skipped on AVX-512F, whose tap blocks would run the plain loop.
    #[test]
    fn tap_blocks_give_the_phases_floats() {
        if pairs_pay() {
            return;
        }
        for (c, h, w, kernel, stride, co) in [
            (16, 14, 14, 3, 1, 32),
            (40, 17, 15, 3, 2, 48),
            (128, 28, 28, 3, 2, 64),
            (24, 9, 30, 5, 1, 64),
            (16, 23, 20, 7, 2, 16),
        ] {
            let layer = Layer::new(c, (h, w), (kernel, stride), co);
            let (geo, x, n) = (&layer.geo, &layer.x, layer.geo.n());
            let epi = Epilogue {
                scale: Some(&layer.scale),
                relu: true,
                ..Epilogue::default()
            };
            for (bytes_in, threads) in [(false, 1), (true, 2), (false, 3)] {
                let wts = layer.weights(bytes_in);
                let (mut want, mut got) = (vec![f32::NAN; co * n], vec![f32::NAN; co * n]);
                in_pool(threads, || {
                    over_phases(x, geo, wts, co, &mut want, (epi, false));
                    over_pixels(x, geo, wts, co, &mut got, (epi, false));
                });
                let first = first_difference(&got, &want);
                assert_eq!(first, None, "{geo:?} to {co}, {threads} threads");
            }
        }
    }
}
