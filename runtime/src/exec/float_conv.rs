//! The float convolution of the executor's f32 path ([`super::conv_direct`]) for callers outside
//! it: the compressor's training forward (`fq_compress::nn::ops::conv`) runs one image at a time
//! through the same micro-kernels, which read their taps from the padded input instead of an
//! im2col matrix.
//!
//! Why: on ResNet18 at 224x224 the compressor's forward built a columns matrix of up to 7 MB
//! per image and multiplied it with the `gemm` crate; the executor's kernels skip that copy.
//!
//! 3x3 stride-1 layers run as the executor runs them, by Winograd's F(2x2, 3x3)
//! ([`super::winograd`]): 2.25 times fewer multiply-adds, sums that round a little differently
//! from the direct ones (its transforms only add, subtract and halve). Those are 83% of
//! ResNet18's multiply-adds, forward and in the input gradient alike (the transposed, flipped
//! filters of a 3x3 stride-1 layer are again one). One image at a time on two threads (the Xeon
//! of stop 51, alternated): ResNet18's 3x3 stride-1 layers from 128 channels on 28x28 down
//! 0.85-0.99 -> 0.56-0.71 ms, 64 channels on 56x56 0.78 -> 0.74 ms; its training step at 224x224,
//! batch 32, FP32: 2.09-2.16 -> 1.93-1.95 s (3 rounds, best of 4 steps each).

use fq_models::geometry::window_output;

use super::blocked::Layout;
use super::buf::Buf;
use super::conv_direct::{conv_direct, for_kernel, pays, Tiles};
use super::gemm::Epilogue;
use super::im2col::Geometry;
use super::kernel::MR;
use super::winograd;

/// One convolution layer (square kernel, one group, no bias) ready to run on images.
pub struct FloatConv {
    geo: Geometry,
    weights: Weights,
    m: usize,
}

/// The weights as the layer's kernels read them.
enum Weights {
    /// Whole `MR`-row tiles (rows past `m` zero) as [`conv_direct`]'s kernel reads them
    /// ([`for_kernel`]).
    Tiles(Buf<f32>),
    /// Transformed for [`winograd::conv_winograd`].
    Winograd(Buf<f32>),
}

impl FloatConv {
    /// The convolution of `m` filters `weights` (`[m, c, kernel, kernel]`, row-major) over
    /// `[c, h, w]` inputs; `None` where the CPU path has no kernel that reads taps (the caller
    /// keeps its own), where the window does not fit the padded input, or where a size is 0.
    pub fn new(
        input: (usize, usize, usize),
        window: (usize, usize, usize),
        weights: &[f32],
        m: usize,
    ) -> Option<Self> {
        Self::with(input, window, weights, m, true)
    }

    /// [`FloatConv::new`] with the direct kernel ([`conv_direct`]) on every layer, Winograd's
    /// included: the multiply-adds of the layer's GEMM, its taps read in place, which is what
    /// the benchmark sets beside `torch.mm` on the same shape (`tests/examples/bench.rs`).
    pub fn direct(
        input: (usize, usize, usize),
        window: (usize, usize, usize),
        weights: &[f32],
        m: usize,
    ) -> Option<Self> {
        Self::with(input, window, weights, m, false)
    }

    fn with(
        (c, h, w): (usize, usize, usize),
        (kernel, stride, padding): (usize, usize, usize),
        weights: &[f32],
        m: usize,
        winograd_ok: bool,
    ) -> Option<Self> {
        let out = |n: usize| window_output(n, kernel, stride, padding);
        let geo = Geometry {
            c,
            h,
            w,
            kernel,
            stride,
            padding,
            ho: out(h)?,
            wo: out(w)?,
        };
        let k = geo.k();
        if m == 0 || !pays(&geo) || weights.len() != m * k {
            return None;
        }
        let weights = if winograd_ok && winograd::suits(&geo, m) {
            Weights::Winograd(winograd::transform_weights(
                weights,
                m,
                c,
                winograd::tile_for(&geo, m),
            ))
        } else {
            let mut rows = Buf::zeroed(m.div_ceil(MR) * MR * k);
            rows[..m * k].copy_from_slice(weights);
            Weights::Tiles(for_kernel(rows, k))
        };
        Some(Self { geo, weights, m })
    }

    /// Floats of one image's input (`c * h * w`).
    pub fn input_len(&self) -> usize {
        self.geo.c * self.geo.h * self.geo.w
    }

    /// Floats of one image's output (`m * ho * wo`).
    pub fn output_len(&self) -> usize {
        self.m * self.geo.n()
    }

    /// `out = conv(x)` for one image, parallel on the current rayon pool.
    pub fn run(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.input_len(), "FloatConv: input size");
        assert_eq!(out.len(), self.output_len(), "FloatConv: output size");
        let (geo, m, epi) = (&self.geo, self.m, Epilogue::default());
        match &self.weights {
            Weights::Tiles(rows) => conv_direct(x, geo, Tiles::of(rows), m, out, epi),
            Weights::Winograd(u) => winograd::conv_winograd(
                x,
                geo,
                winograd::Transformed::F32(u),
                m,
                out,
                (epi, Layout::default()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv_direct::tests::naive;
    use super::*;

    /// A 3x3 stride-1 layer of enough channels runs by Winograd, one of too few directly; both
    /// give the definition's sums to float rounding (odd sizes, rows off the tile).
    #[test]
    fn winograd_and_direct_layers_give_the_definition() {
        if !pays(&Geometry::of(16, 5, 5, 3, 1, 1)) {
            return; // No tap-reading kernel on this CPU: `new` declines every layer.
        }
        for (c, h, w, m, winograd) in [(16, 9, 7, 19, true), (8, 6, 5, 7, false)] {
            let x: Vec<f32> = (0..c * h * w)
                .map(|i| ((i * 37) % 23) as f32 * 0.1 - 1.1)
                .collect();
            let wts: Vec<f32> = (0..m * c * 9)
                .map(|i| ((i * 11) % 17) as f32 * 0.05 - 0.4)
                .collect();
            let conv = FloatConv::new((c, h, w), (3, 1, 1), &wts, m).expect("a kernel");
            assert_eq!(
                matches!(conv.weights, Weights::Winograd(_)),
                winograd,
                "{c} channels"
            );
            let mut got = vec![f32::NAN; conv.output_len()];
            conv.run(&x, &mut got);
            let want = naive(&x, &conv.geo, &wts, m, &Epilogue::default());
            let top = want.iter().fold(1f32, |a, v| a.max(v.abs()));
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-5 * top,
                    "{c} channels, output {i}: {g} vs {e}"
                );
            }
        }
    }
}
