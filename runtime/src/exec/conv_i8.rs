//! A convolution on the integer path: the input quantised to i8 once (one scale per tensor), its
//! im2col gathered from the codes, the integer GEMM, and the f32 epilogue (weight scale, folded
//! batch norm, bias, residual, ReLU) as on the float path. When the next layer is an integer
//! convolution with a calibrated scale, the epilogue also requantises the output to that layer's
//! 8-bit input (`requant`), and that layer takes the codes (`codes`) instead of quantising the
//! floats again. The floats are written only where a step reads them (residual adds, pooling,
//! a reader that quantises for itself); otherwise `out` is empty and only the codes are kept,
//! and the input's floats may be empty too when its codes are given.
//!
//! Weights made for quads ([`WeightsI8::reads_quads`]) take their input as [`Quads`] (every
//! convolution whose input channels are a multiple of 4), those made for tap rows as
//! [`TapRows`] (the 3-channel stems: `taps::suits`), the others as channel-major codes.
//!
//! Only ungrouped convolutions come here (`Executor::set_activations` picks them); depthwise
//! ones have 9 multiply-adds per output, too few to pay for quantising their input.

use fq_models::Conv2d;

use super::gemm::Epilogue;
use super::im2col::Geometry;
use super::int8_gemm::{
    dynamic_scale, gathers_pay, gemm_i8_gather, gemm_i8_requant, quantize_all, reads_in_place,
    CodesOut, InputLayout, PanelB8, Residual8, WeightsI8,
};
#[cfg(target_arch = "x86_64")]
use super::int8_gemm::{gemm_i8_pair, quad_panels};
use super::quads::{QuadShape, Quads};
use super::taps::TapRows;

/// Codes of a convolution's input that the producing layer's epilogue already quantised with
/// this layer's scale.
#[derive(Clone, Copy)]
pub enum CodesIn<'a> {
    None,
    /// Channel-major, `[c][h][w]`.
    Rows(&'a [i8]),
    Quads(&'a Quads),
}

/// The input of an integer convolution: the floats, their codes when there are some, and
/// whether every value is `>= 0` (a ReLU's output, known from the graph: then so is every code,
/// which the AVX2 kernel multiplies as it is, `kernel::int8_narrow`).
#[derive(Clone, Copy)]
pub struct InputI8<'a> {
    pub x: &'a [f32],
    pub codes: CodesIn<'a>,
    pub nonneg: bool,
}

/// `out = epilogue(conv(x))` for an input `[c, h, w]` and output `[co, ho, wo]`, `conv.groups == 1`;
/// the input quantised with `scale` (calibrated) or, when `None`, its own dynamic scale (its
/// codes taken as they are when given in the layout the weights read: they must come from the
/// same `scale`). With `requant`, the output's codes for the next layer too
/// ([`gemm_i8_requant`]); with `res8`, the residual added from its codes ([`Residual8`]).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8(
    input: InputI8,
    (c, h, w): (usize, usize, usize),
    conv: &Conv2d,
    (ho, wo): (usize, usize),
    weights: &WeightsI8,
    scale: Option<f32>,
    epi: Epilogue,
    out: &mut [f32],
    requant: Option<(CodesOut, f32)>,
    res8: Option<Residual8>,
) {
    debug_assert_eq!(
        conv.groups, 1,
        "the executor sends only ungrouped convolutions"
    );
    let geo = geometry((c, h, w), conv, (ho, wo));
    // Layers of two panels per thread and more gather their panels per task
    // (`gemm_i8_gather`), as do those whose panels all lie in place; the others pack them all
    // first.
    let nonneg = input.nonneg;
    let over_quads = |q: &Quads, s: f32, out: &mut [f32], requant| {
        if gathers_pay(geo.n()) || reads_in_place(q, &geo) {
            gemm_i8_gather(weights, q, &geo, (s, nonneg), out, epi, requant, res8);
        } else {
            let mut panels = q.im2col(&geo, s);
            panels.nonneg = nonneg;
            gemm_i8_requant(weights, &panels, out, epi, requant, res8);
        }
    };
    if weights.layout() == InputLayout::Taps {
        let (src, s) = tap_rows(input, &geo, scale);
        return gemm_i8_gather(weights, &src, &geo, (s, nonneg), out, epi, requant, res8);
    }
    let mut panel = match (input.codes, scale, weights.reads_quads()) {
        (CodesIn::Quads(q), Some(s), true) => {
            debug_assert_eq!((q.shape.c, q.shape.h, q.shape.w), (c, h, w));
            return over_quads(q, s, out, requant);
        }
        (_, s, true) => {
            let s = s.unwrap_or_else(|| dynamic_scale(input.x));
            let shape = QuadShape {
                c,
                h,
                w,
                pad: conv.padding,
            };
            return over_quads(&Quads::quantize(input.x, shape, 1.0 / s), s, out, requant);
        }
        (CodesIn::Rows(codes), Some(s), false) => {
            debug_assert_eq!(codes.len(), c * h * w, "requantised input size");
            PanelB8::im2col(codes, &geo, s)
        }
        (_, s, false) => {
            let s = s.unwrap_or_else(|| dynamic_scale(input.x));
            let inv = 1.0 / s;
            PanelB8::im2col(&quantize_all(input.x, inv), &geo, s)
        }
    };
    panel.nonneg = nonneg;
    gemm_i8_requant(weights, &panel, out, epi, requant, res8);
}

/// The RGB stem's convolution (weights over [`TapRows`]) and the max pooling `pool` (kernel,
/// stride, padding) that alone reads its output, as one step ([`super::stem_pool`]): `out` is
/// the pooling's `[co][ph][pw]` (empty: not kept), `codes` its codes with their scale, if
/// wanted; the convolution's output is never written.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_pool_i8(
    input: InputI8,
    (c, h, w): (usize, usize, usize),
    conv: &Conv2d,
    (ho, wo): (usize, usize),
    weights: &WeightsI8,
    scale: Option<f32>,
    epi: Epilogue,
    pool: (usize, usize, usize),
    pooled: (usize, usize),
    out: &mut [f32],
    codes: Option<(&mut Quads, f32)>,
) {
    assert_eq!(
        weights.layout(),
        InputLayout::Taps,
        "conv2d_pool_i8 runs the stems over tap rows"
    );
    let geo = geometry((c, h, w), conv, (ho, wo));
    let (src, s) = tap_rows(input, &geo, scale);
    let input = (s, input.nonneg);
    super::stem_pool::conv_pool_i8(weights, &src, &geo, input, epi, pool, pooled, out, codes);
}

/// One of the two convolutions of [`conv2d_i8_pair`]: its input, its `(c, h, w)` and output
/// `(ho, wo)`, its weights (over quads), calibrated input scale and epilogue.
#[cfg(target_arch = "x86_64")]
pub struct ConvI8<'a> {
    pub input: InputI8<'a>,
    pub dims: (usize, usize, usize),
    pub conv: &'a Conv2d,
    pub out: (usize, usize),
    pub weights: &'a WeightsI8,
    pub scale: f32,
    pub epi: Epilogue<'a>,
}

/// `second`'s output codes into `codes` (quads, with the next layers' `scale`) where `first`'s
/// output is only `second`'s residual: both as one pair of blocks per task
/// ([`super::int8_gemm::gemm_i8_pair`]; `pair_fuses` must hold), the first's floats never
/// written. Each input's quads are its codes when given, else quantised here.
#[cfg(target_arch = "x86_64")]
pub fn conv2d_i8_pair(first: ConvI8, second: ConvI8, codes: &mut Quads, scale: f32) {
    let (mut own_p, mut own) = (None, None);
    let (qp, q) = (quads_of(&first, &mut own_p), quads_of(&second, &mut own));
    let (geo_p, geo) = (
        geometry(first.dims, first.conv, first.out),
        geometry(second.dims, second.conv, second.out),
    );
    let (mut packed_p, mut packed) = (None, None);
    let bp = quad_panels(qp, &geo_p, (first.scale, first.input.nonneg), &mut packed_p);
    let b = quad_panels(q, &geo, (second.scale, second.input.nonneg), &mut packed);
    gemm_i8_pair(
        (first.weights, bp, &first.epi),
        (second.weights, b, &second.epi),
        codes,
        scale,
    );
}

/// A pair convolution's input quads: its codes when given, else its floats quantised into `own`.
#[cfg(target_arch = "x86_64")]
fn quads_of<'q>(a: &ConvI8<'q>, own: &'q mut Option<Quads>) -> &'q Quads {
    if let CodesIn::Quads(q) = a.input.codes {
        return q;
    }
    let (c, h, w) = a.dims;
    let shape = QuadShape {
        c,
        h,
        w,
        pad: a.conv.padding,
    };
    own.insert(Quads::quantize(a.input.x, shape, 1.0 / a.scale))
}

/// A convolution's geometry from its input and output sizes.
fn geometry((c, h, w): (usize, usize, usize), conv: &Conv2d, (ho, wo): (usize, usize)) -> Geometry {
    Geometry {
        c,
        h,
        w,
        kernel: conv.kernel,
        stride: conv.stride,
        padding: conv.padding,
        ho,
        wo,
    }
}

/// A stem's input as [`TapRows`], from its codes when its producer wrote them with the calibrated
/// `scale`, else quantised here; with the scale they are worth.
fn tap_rows(input: InputI8, geo: &Geometry, scale: Option<f32>) -> (TapRows, f32) {
    let s = scale.unwrap_or_else(|| dynamic_scale(input.x));
    let src = match (input.codes, scale) {
        (CodesIn::Rows(codes), Some(_)) => TapRows::from_codes(codes, geo),
        _ => TapRows::quantize(input.x, geo, 1.0 / s),
    };
    (src, s)
}
