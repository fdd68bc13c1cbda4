//! The large convolutions of a training step through the runtime's float kernels
//! ([`FloatConv`]), which read their taps from the padded input instead of an im2col matrix.
//!
//! Why: at 224x224 a ResNet18 layer's columns matrix is 7 MB per image (236 MB per batch of 32
//! for the stem), written and read back around each `gemm` call, and the backward pass's
//! col2im adds the same again. Per layer at batch 32 on two threads (AMD EPYC Zen 4, AVX-512;
//! `bench/results.md`, "Update, stop 40"): the stem's forward 119 → 77 ms, a first-stage 3x3
//! forward 67 → 46 ms, its input gradient 54 → 46 ms. On small layers (the embedded model: at
//! most 2.4 million multiply-adds per image) one image is too little work for a call, and
//! im2col + `gemm` stays faster, so they keep it ([`pays`]).
//!
//! 3x3 stride-1 layers, forward and input gradient, run there by Winograd's F(2x2, 3x3), as the
//! runtime's f32 path runs them ([`FloatConv`]'s doc has the figures).
//!
//! Only where the forward does not keep its columns for the weight gradient: there the columns
//! are built anyway and the `gemm` on them is the cheaper half.

use fq_runtime::exec::FloatConv;
use rayon::prelude::*;

use super::im2col::ConvGeom;

/// Multiply-adds per image from which a layer goes through [`FloatConv`]: every ResNet18-224
/// layer but the 1x1 ones does 115-118 million; the embedded model's largest (its stem) 2.4
/// million. That stem ran faster here (1.0 ms per batch against im2col + `gemm`'s 1.4, stop
/// 50), but its sums round differently from `gemm`'s, and the demo's quantisation-aware methods
/// amplify a last bit into other weights and other accuracies (up to 4 points): it stays on
/// `gemm`, and so the demo's results stay what they were.
const MIN_MACS: usize = 4 << 20;

/// Whether a convolution of `o` filters of geometry `g` is large enough, and of a shape the
/// runtime's kernels take (square, wider than 1x1: the pointwise ones were slower there).
fn pays(g: &ConvGeom, o: usize) -> bool {
    g.kh == g.kw && g.kh > 1 && o * g.k() * g.n() >= MIN_MACS
}

/// Runs `conv` on every image of `x` into a fresh `[batch, out]` buffer, images in parallel.
fn each_image(conv: &FloatConv, x: &[f32], batch: usize) -> Vec<f32> {
    let mut y = vec![0f32; batch * conv.output_len()];
    y.par_chunks_mut(conv.output_len())
        .zip(x.par_chunks(conv.input_len()))
        .for_each(|(y, x)| conv.run(x, y));
    y
}

/// The forward `y = W * x` (`[batch, o, oh, ow]`), or `None` where [`pays`] says no or the CPU
/// has no kernel for it (the caller runs im2col + `gemm`).
pub fn forward(g: &ConvGeom, batch: usize, x: &[f32], w: &[f32], o: usize) -> Option<Vec<f32>> {
    if !pays(g, o) {
        return None;
    }
    let conv = FloatConv::new((g.c, g.h, g.w), (g.kh, g.stride, g.pad), w, o)?;
    Some(each_image(&conv, x, batch))
}

/// The input gradient of a stride-1 convolution as the convolution of `dy` with the filters
/// transposed (`c` filters of `o` channels) and flipped, padded by `kernel - 1 - pad`; `None`
/// where that does not apply (strided, [`pays`] says no, no kernel).
pub fn backward_data(
    g: &ConvGeom,
    batch: usize,
    gy: &[f32],
    w: &[f32],
    o: usize,
) -> Option<Vec<f32>> {
    let k = g.kh;
    if g.stride != 1 || g.pad >= k || !pays(g, o) {
        return None;
    }
    let mut flipped = vec![0f32; w.len()];
    for f in 0..o {
        for c in 0..g.c {
            let from = &w[(f * g.c + c) * k * k..][..k * k];
            let to = &mut flipped[(c * o + f) * k * k..][..k * k];
            for (t, v) in to.iter_mut().zip(from.iter().rev()) {
                *t = *v;
            }
        }
    }
    let conv = FloatConv::new((o, g.oh, g.ow), (k, 1, k - 1 - g.pad), &flipped, g.c)?;
    (conv.output_len() == g.input_len()).then(|| each_image(&conv, gy, batch))
}
