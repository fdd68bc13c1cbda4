//! 1x1 convolutions (no padding, any stride) with the output channels along the kernel's lanes:
//! `out[o][p] = epilogue(sum_k W[o][k] * x[k][p])` computed as the token GEMM computes a Linear
//! layer, the pixels as the rows of `A` read where they lie in the channel-major input
//! ([`tile_pair_cols_to`]: pixel `r` of channel `i` at `x[r + i * n]`) and the weights as the
//! panels of `Wᵀ` ([`super::token_gemm::weight_panels`], kept by the executor).
//!
//! Why: [`super::conv_direct`] puts the pixels along the lanes, 32 per kernel call, so a 7x7
//! map's 49 pixels took 64 columns of work and a 14x14 map's 196 took 224. ResNet50's 1x1
//! convolutions on those maps (23 of its 53 convolutions) ran at 62-72% of onnxruntime's speed
//! on AVX-512 (Zen 4, two threads), whose kernels put the channels along the lanes. Here a
//! block is 12 pixels by 32 channels: ResNet's channels are multiples of 32, and a map wastes at
//! most the rest of its last block (4% of 196 pixels, 10% of 49 with a last 6-pixel tile).
//! Measured at two threads: 1024 to 256 channels on 14x14 0.66 against 0.50 ms, 2048 to 512 on
//! 7x7 0.86 against 0.57, the 1024 to 2048 downsampling with stride 2 1.70 against 1.07. Layers
//! of wide `k` and many channels take this path on larger maps too ([`pays`]).
//!
//! AVX-512F only, like the kernel's pairs of panels. The sums run over `k` in order, in the
//! same `KC` blocks as [`super::conv_direct`], one fused multiply-add per term.

use rayon::prelude::*;

use super::disjoint::Shared;
use super::epilogue::finish_row;
use super::gemm::{Epilogue, KC};
use super::im2col::Geometry;
use super::kernel::{pairs_pay, tile_pair_cols_to, MR, NR};
use super::scratch;

/// Pixels per block: the kernel's `2 MR` rows.
const BLOCK: usize = 2 * MR;
/// Channels per block: a pair of panels.
const PAIR: usize = 2 * NR;
/// Maps up to this many pixels always take this path: [`super::conv_direct`] wastes 14% of a
/// 14x14 map's work and 31% of a 7x7 one's.
const SMALL_MAP: usize = 256;

/// Whether [`conv_lanes`] runs this convolution: an ungrouped 1x1 without padding, on the
/// AVX-512F path, whose output is a small map ([`SMALL_MAP`]) or whose `k` and output channels
/// are wide (at least 256 and 128).
///
/// Why the widths: each output costs the same here to take from its block to its row, and a
/// pair of channels reads the whole input, so a layer of few multiply-adds per output or few
/// channels runs faster in [`super::conv_direct`] (measured at two threads on Zen 4: 64 to 256
/// channels on 56x56 0.54 against 0.73 ms, 128 to 512 on 28x28 0.53 against 0.60), and one of
/// many faster here (256 to 128 on 56x56 1.15 against 1.05 ms, 512 to 128 on 28x28 0.55
/// against 0.50, ResNet50's downsampling 256 to 512 with stride 2 1.33 against 1.28).
pub fn pays(geo: &Geometry, co: usize, groups: usize) -> bool {
    pairs_pay()
        && groups == 1
        && (geo.kernel, geo.padding) == (1, 0)
        && geo.stride >= 1
        && geo.n() > 0
        && geo.c > 0
        && (geo.n() <= SMALL_MAP || (geo.c >= 256 && co >= 128))
}

/// `out` (`[co][ho * wo]`) = epilogue(`conv(x)`) for the 1x1 convolution `geo` ([`pays`]) over
/// `x` (`[c][h][w]`) and `wp` the panels of `Wᵀ` of `co` rows of `c`
/// ([`super::token_gemm::weight_panels`]). A strided one first takes the pixels it reads into a
/// buffer of its own (ResNet50's downsampling convolutions: a quarter of their input).
pub fn conv_lanes(
    x: &[f32],
    geo: &Geometry,
    wp: &[f32],
    co: usize,
    out: &mut [f32],
    epi: Epilogue,
) {
    assert!(
        geo.kernel == 1 && geo.padding == 0 && x.len() == geo.c * geo.h * geo.w,
        "conv_lanes: {geo:?} over {} inputs",
        x.len()
    );
    if geo.stride == 1 {
        return product(x, (geo.c, geo.n()), wp, co, out, epi);
    }
    let (s, n) = (geo.stride, geo.n());
    let mut picked = scratch::F32.take(geo.c * n, true);
    picked
        .par_chunks_mut(n.max(1))
        .zip(x.par_chunks(geo.h * geo.w))
        .for_each(|(dst, plane)| {
            for (y, row) in dst.chunks_exact_mut(geo.wo).enumerate() {
                let src = &plane[y * s * geo.w..];
                for (x, v) in row.iter_mut().enumerate() {
                    *v = src[x * s];
                }
            }
        });
    product(&picked, (geo.c, n), wp, co, out, epi);
    scratch::F32.give(picked);
}

/// The product itself: `x` is `[k][n]`.
fn product(
    x: &[f32],
    (k, n): (usize, usize),
    wp: &[f32],
    co: usize,
    out: &mut [f32],
    epi: Epilogue,
) {
    let panels = co.div_ceil(NR);
    assert!(
        x.len() == k * n && out.len() == co * n && wp.len() == panels * k * NR && k > 0,
        "conv_lanes: {} inputs for [{k}][{n}], {} outputs for {co}, {} weights",
        x.len(),
        out.len(),
        wp.len()
    );
    if n == 0 || co == 0 {
        return;
    }
    // The last block's pixels, zero-padded to a whole block (`tail[i * BLOCK + r]`), so that
    // the kernel never reads past the input.
    let full = n / BLOCK * BLOCK;
    let tail: Vec<f32> = if full < n {
        (0..k)
            .flat_map(|i| (0..BLOCK).map(move |r| (i, full + r)))
            .map(|(i, p)| if p < n { x[i * n + p] } else { 0.0 })
            .collect()
    } else {
        Vec::new()
    };
    // Tasks are ranges of pairs of panels (channels), all pixels each: every weight is read
    // once. A pair's sums gather in a buffer of `n` rows of 32 (25 KB at most), in the core's
    // L1 while the pair's `K` blocks add into it, then go to their output rows.
    let pairs = panels.div_ceil(2);
    let tasks = pairs.min(4 * rayon::current_num_threads().max(1));
    let base = Shared(out.as_mut_ptr());
    (0..tasks).into_par_iter().for_each(|t| {
        let (p0, p1) = (pairs * t / tasks, pairs * (t + 1) / tasks);
        // Recycled, stale contents: a pair's first `K` block sets every value of it.
        let mut c = scratch::F32.take(n * PAIR, true);
        for j in (2 * p0..(2 * p1).min(panels)).step_by(2) {
            // A lone last panel goes in as both; its second half of sums is dropped.
            let second = (j + 1).min(panels - 1);
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let panel = |j: usize| &wp[(j * k + k0) * NR..(j * k + k0 + kc) * NR];
                for g in (0..n).step_by(BLOCK) {
                    let rows = BLOCK.min(n - g);
                    let a = if g + BLOCK <= n {
                        (&x[k0 * n + g..], n)
                    } else {
                        (&tail[k0 * BLOCK..], BLOCK)
                    };
                    let to = c[g * PAIR..].as_mut_ptr();
                    // SAFETY: rows `g..g + rows` of `c`, 32 floats each: inside `c`, this
                    // task's own.
                    unsafe {
                        tile_pair_cols_to(
                            kc,
                            a,
                            (panel(j), panel(second)),
                            (to, PAIR, rows, k0 > 0),
                        )
                    };
                }
            }
            for o in j * NR..((j + 2) * NR).min(co) {
                // SAFETY: tasks own disjoint ranges of channels, so of output rows; row
                // `o < co` lies in `out`, which outlives the parallel loop.
                let row = unsafe { base.slice(o * n, n) };
                let col = o - j * NR;
                for (p, v) in row.iter_mut().enumerate() {
                    *v = c[p * PAIR + col];
                }
                let res = epi.residual.map(|r| &r[o * n..(o + 1) * n]);
                finish_row(row, &epi, o, res);
            }
        }
        scratch::F32.give(c);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::gemm::Rows;
    use crate::exec::token_gemm::weight_panels;

    /// Against the f64 definition: maps of whole and ragged blocks (1 to 6 and 7 to 11 pixels
    /// in the last), `k` across a `KC` boundary, channels of a lone last panel and of whole
    /// pairs, with scale, bias, residual and ReLU; in pools of 1 to 3 threads (1 to 6 tasks).
    #[test]
    fn matches_the_definition() {
        for (k, n, co) in [
            (3, 1, 16),
            (40, 49, 64),
            (300, 196, 48),
            (257, 24, 32),
            (64, 17, 80),
            (520, 7, 96),
        ] {
            let x: Vec<f32> = (0..k * n)
                .map(|i| ((i * 7919) % 211) as f32 / 50.0 - 2.0)
                .collect();
            let w: Vec<f32> = (0..co * k)
                .map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.2)
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
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut got = vec![f32::NAN; co * n];
                pool.install(|| product(&x, (k, n), &wp, co, &mut got, epi));
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

    /// A strided 1x1 convolution reads the pixels of its stride, at odd sizes too: the same
    /// floats as the product over those pixels picked by hand.
    #[test]
    fn strided_reads_its_pixels() {
        for (c, h, w, s, co) in [(20, 9, 11, 2, 48), (8, 14, 14, 2, 32), (5, 7, 10, 3, 16)] {
            let geo = Geometry::of(c, h, w, 1, s, 0);
            let x: Vec<f32> = (0..c * h * w)
                .map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0)
                .collect();
            let wts: Vec<f32> = (0..co * c)
                .map(|i| ((i * 13) % 29) as f32 / 10.0 - 1.4)
                .collect();
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
            conv_lanes(&x, &geo, &wp, co, &mut got, epi);
            product(&picked, (c, n), &wp, co, &mut want, epi);
            assert_eq!(got, want, "{c}x{h}x{w} stride {s}");
        }
    }
}
