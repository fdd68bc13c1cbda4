//! The float convolution of the executor's f32 path ([`super::conv_direct`]) for callers outside
//! it: the compressor's training forward (`fq_compress::nn::ops::conv`) runs one image at a time
//! through the same micro-kernels, which read their taps from the padded input instead of an
//! im2col matrix.
//!
//! Why: on ResNet18 at 224x224 the compressor's forward built a columns matrix of up to 7 MB
//! per image and multiplied it with the `gemm` crate; the executor's kernels skip that copy.

use fq_models::geometry::window_output;

use super::conv_direct::{conv_direct, pays};
use super::gemm::Epilogue;
use super::im2col::Geometry;
use super::kernel::MR;

/// One convolution layer (square kernel, one group, no bias) ready to run on images.
pub struct FloatConv {
    geo: Geometry,
    /// The weights as whole `MR`-row tiles (rows past `m` zero), as the kernels read them.
    rows: Vec<f32>,
    m: usize,
}

impl FloatConv {
    /// The convolution of `m` filters `weights` (`[m, c, kernel, kernel]`, row-major) over
    /// `[c, h, w]` inputs; `None` where the CPU path has no kernel that reads taps (the caller
    /// keeps its own), where the window does not fit the padded input, or where a size is 0.
    pub fn new(
        (c, h, w): (usize, usize, usize),
        (kernel, stride, padding): (usize, usize, usize),
        weights: &[f32],
        m: usize,
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
        let mut rows = vec![0f32; m.div_ceil(MR) * MR * k];
        rows[..m * k].copy_from_slice(weights);
        Some(Self { geo, rows, m })
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
        conv_direct(x, &self.geo, &self.rows, self.m, out, Epilogue::default());
    }
}
