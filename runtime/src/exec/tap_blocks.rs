//! A convolution's input as `exec::conv_lanes` reads it on AVX2 for a kernel of more than one
//! tap: padded, in blocks of `NR` channels, `[c / NR][h + 2p][w + 2p][NR]`, so that one
//! pixel's 16 channels are one 64-byte line. A tile's pixel `r` at step `i` (channel `ch`, tap
//! `(ky, kx)`) is then `data[pixel(r) + offsets[i]]`: a base per output pixel (stride and row
//! ends folded in) plus one offset per step, the same for the tile's six pixels.
//!
//! Why: over `exec::conv_direct`'s phases (a plane per channel and phase) a tile read its six
//! positions from another plane at every step, so a K block of 256 steps touched some 200 lines
//! per tile, and with a pair's 32 KB of weights for that block they did not stay in L1: the
//! kernel waited on its broadcasts (`perf annotate`: the first multiply-add after each step's
//! first broadcast held a tenth of the phases' AVX2 kernel's samples, against an even spread over the
//! multiply-adds here). Here the nine taps of six pixels of a stride-2 3x3 lie in about 39
//! lines that serve 16 channels, 144 steps; and the output pixels are the tile's rows as they
//! are, so a row's end no longer wastes the positions past it. Measured on the Zen 3 EPYC of
//! stop 75 (AVX2; `step_times`' fastest of 40 runs, the two paths alternated run by run in one
//! process, 2 threads): ResNet50's strided 3x3 layers 1.69 / 1.62 / 1.84 -> 1.43 / 1.45 / 1.48
//! ms (onnxruntime's 1.24 / 1.29 / 1.54 in its profile that session), its step sum 43.5 ->
//! 42.4; ResNet18's 0.83 / 0.80 / 0.88 -> 0.70 / 0.72 / 0.73, 15.5 -> 15.1; one thread,
//! ResNet50's 3.30 / 3.15 / 3.52 -> 2.81 / 2.80 / 2.94.
//!
//! The sums run over `k` in the model's (channel, ky, kx) order, in the same K blocks: the same
//! floats as the phases (`conv_lanes`' test `tap_blocks_give_the_phases_floats`, bit for bit).

use rayon::prelude::*;

use super::buf::Buf;
use super::disjoint::Shared;
use super::im2col::Geometry;
use super::kernel::{Taps, NR};
use super::scratch;
use super::transpose::columns_to_rows;

/// A convolution's padded input in blocks of `NR` channels (see the module doc), in a recycled
/// buffer.
pub struct TapBlocks {
    /// Padded height and width.
    hp: usize,
    wp: usize,
    stride: usize,
    wo: usize,
    data: Buf<f32>,
}

impl Drop for TapBlocks {
    fn drop(&mut self) {
        scratch::F32.give(std::mem::take(&mut self.data));
    }
}

impl TapBlocks {
    /// `x` (`[g.c][g.h * g.w]`) padded with zeros into blocks, in parallel by padded row, the
    /// channels of the last block past `g.c` zeros too.
    pub fn fill(x: &[f32], g: &Geometry) -> Self {
        assert_eq!(x.len(), g.c * g.h * g.w, "tap blocks: input of {g:?}");
        let (p, h, w) = (g.padding, g.h, g.w);
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let blocks = g.c.div_ceil(NR);
        // Recycled (stale contents): every row is written below.
        let mut data = scratch::F32.take(blocks * hp * wp * NR, true);
        data.par_chunks_mut(wp * NR)
            .enumerate()
            .for_each(|(row, dst)| {
                let (b, y) = (row / hp, row % hp);
                let Some(y) = y.checked_sub(p).filter(|&y| y < h) else {
                    dst.fill(0.0);
                    return;
                };
                dst[..p * NR].fill(0.0);
                dst[(p + w) * NR..].fill(0.0);
                let pixels = &mut dst[p * NR..(p + w) * NR];
                // The block's real channels' rows `y`, through the transpose's kernel: row
                // `lane`'s pixel `xx` to `pixels[xx * NR + lane]`.
                let lanes = NR.min(g.c - b * NR);
                let src = &x[(b * NR * h + y) * w..][..(lanes - 1) * h * w + w];
                // SAFETY: `pixels` holds `w` pixels of `NR` floats, which this task alone
                // writes; `src` holds `lanes` rows of `w` floats `h * w` apart.
                unsafe { columns_to_rows(src, h * w, (lanes, w), Shared(pixels.as_mut_ptr()), NR) };
                if lanes < NR {
                    pixels
                        .chunks_exact_mut(NR)
                        .for_each(|px| px[lanes..].fill(0.0));
                }
            });
        Self {
            hp,
            wp,
            stride: g.stride,
            wo: g.wo,
            data,
        }
    }

    /// The padded blocks, which [`Self::pixel`] and [`Self::offsets`] index.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Each step's offset from a pixel's base ([`Self::pixel`]), in the model's `k` order
    /// (channel, ky, kx).
    pub fn offsets(&self, g: &Geometry) -> Taps {
        let (kernel, plane) = (g.kernel, self.hp * self.wp * NR);
        let offsets = (0..g.c)
            .flat_map(|c| (0..kernel).flat_map(move |ky| (0..kernel).map(move |kx| (c, ky, kx))))
            .map(|(c, ky, kx)| (c / NR) * plane + (ky * self.wp + kx) * NR + c % NR)
            .collect();
        Taps::new(offsets)
    }

    /// Where output pixel `p` (row-major over the output map) reads its first tap.
    pub fn pixel(&self, p: usize) -> usize {
        let (oy, ox) = (p / self.wo, p % self.wo);
        (oy * self.stride * self.wp + ox * self.stride) * NR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output pixel's every step reads the input value the convolution's definition
    /// names (zero in the padding), for strides 1 and 2, channels of a partial last block and
    /// of whole ones.
    #[test]
    fn each_step_reads_its_input_value() {
        for (c, h, w, kernel, stride, padding) in [
            (3, 5, 7, 3, 1, 1),
            (20, 9, 8, 3, 2, 1),
            (16, 6, 6, 5, 1, 2),
            (33, 7, 9, 1, 2, 0),
            (32, 7, 6, 3, 2, 1),
        ] {
            let g = Geometry::of(c, h, w, kernel, stride, padding);
            let x: Vec<f32> = (0..c * h * w).map(|i| i as f32 + 1.0).collect();
            let tb = TapBlocks::fill(&x, &g);
            let taps = tb.offsets(&g);
            for p in 0..g.n() {
                let (oy, ox) = (p / g.wo, p % g.wo);
                for (i, &off) in taps.offsets().iter().enumerate() {
                    let (ch, ky, kx) = (i / (kernel * kernel), i / kernel % kernel, i % kernel);
                    let (y, xx) = (oy * stride + ky, ox * stride + kx);
                    let want = match (y.checked_sub(padding), xx.checked_sub(padding)) {
                        (Some(y), Some(xx)) if y < h && xx < w => x[(ch * h + y) * w + xx],
                        _ => 0.0,
                    };
                    assert_eq!(
                        tb.data()[tb.pixel(p) + off],
                        want,
                        "{g:?} pixel {p} step {i}"
                    );
                }
            }
        }
    }
}
