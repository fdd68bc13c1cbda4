//! A convolution on the integer path: the input quantised to i8 once (one scale per tensor), its
//! im2col gathered from the codes, the integer GEMM, and the f32 epilogue (weight scale, folded
//! batch norm, bias, residual, ReLU) as on the float path, so the next layer reads f32 as before.
//!
//! Only ungrouped convolutions come here (`Executor::set_activations` picks them); depthwise
//! ones have 9 multiply-adds per output, too few to pay for quantising their input.

use fq_models::Conv2d;
use rayon::prelude::*;

use super::gemm::Epilogue;
use super::im2col::Geometry;
use super::int8_gemm::{dynamic_scale, gemm_i8, quantize, PanelB8, WeightsI8};

/// `out = epilogue(conv(x))` for an input `[c, h, w]` and output `[co, ho, wo]`, `conv.groups == 1`;
/// the input quantised with `scale` (calibrated) or, when `None`, its own dynamic scale.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    conv: &Conv2d,
    (ho, wo): (usize, usize),
    weights: &WeightsI8,
    scale: Option<f32>,
    epi: Epilogue,
    out: &mut [f32],
) {
    debug_assert_eq!(
        conv.groups, 1,
        "the executor sends only ungrouped convolutions"
    );
    let scale = scale.unwrap_or_else(|| dynamic_scale(x));
    let inv = 1.0 / scale;
    let xq: Vec<i8> = x.par_iter().map(|&v| quantize(v, inv)).collect();
    let geo = Geometry {
        c,
        h,
        w,
        kernel: conv.kernel,
        stride: conv.stride,
        padding: conv.padding,
        ho,
        wo,
    };
    gemm_i8(weights, &PanelB8::im2col(&xq, &geo, scale), out, epi);
}
