//! The token models' parameter-light ops as ONNX (all values batched, see [`super::lower`]):
//! layer norm, exact GELU, grid <-> token reshapes, the class token and TinyViT's window
//! partition (zero padding included) and its inverse. Each mirrors `fq_runtime::exec::tokens`.

use fq_models::{windows, Shape};
use fq_runtime::format::NamedTensor;

use super::builder::{Attr, GraphBuilder};

/// `LayerNormalization` (opset 17) over the last axis, biased variance as PyTorch and the
/// runtime compute it.
pub fn layer_norm(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    gamma: &NamedTensor,
    beta: &NamedTensor,
    eps: f64,
) -> String {
    let g = b.f32(&gamma.name, &[gamma.data.len()], &gamma.data);
    let be = b.f32(&beta.name, &[beta.data.len()], &beta.data);
    b.node(
        "LayerNormalization",
        name,
        &[x, &g, &be],
        vec![
            ("axis", Attr::Int(-1)),
            ("epsilon", Attr::Float(eps as f32)),
        ],
    )
}

/// The exact GELU `x * 0.5 * (1 + erf(x / sqrt 2))` from opset-13 ops (the `Gelu` op needs
/// opset 20); onnxruntime fuses this exact pattern into its Gelu kernel.
pub fn gelu(b: &mut GraphBuilder, name: &str, x: &str) -> String {
    let sqrt2 = b.scalar("sqrt2", std::f32::consts::SQRT_2);
    let one = b.scalar("one", 1.0);
    let half = b.scalar("half", 0.5);
    let d = b.node("Div", name, &[x, &sqrt2], vec![]);
    let e = b.node("Erf", name, &[&d], vec![]);
    let a = b.node("Add", name, &[&e, &one], vec![]);
    let m = b.node("Mul", name, &[x, &a], vec![]);
    b.node("Mul", name, &[&m, &half], vec![])
}

/// `[N, C, H, W] -> [N, H*W, C]`.
pub fn to_tokens(b: &mut GraphBuilder, name: &str, x: &str, shape: Shape) -> String {
    let Shape::Chw(c, h, w) = shape else {
        unreachable!("validated: to-tokens input is [C,H,W]")
    };
    let s = b.shape(&[0, c as i64, (h * w) as i64]);
    let r = b.node("Reshape", name, &[x, &s], vec![]);
    b.node(
        "Transpose",
        name,
        &[&r],
        vec![("perm", Attr::Ints(vec![0, 2, 1]))],
    )
}

/// `[N, H*W, C] -> [N, C, H, W]`.
pub fn to_chw(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    shape: Shape,
    h: usize,
    w: usize,
) -> String {
    let Shape::Seq(_, c) = shape else {
        unreachable!("validated: to-[C,H,W] input is a token sequence")
    };
    let t = b.node(
        "Transpose",
        name,
        &[x],
        vec![("perm", Attr::Ints(vec![0, 2, 1]))],
    );
    let s = b.shape(&[0, c as i64, h as i64, w as i64]);
    b.node("Reshape", name, &[&t, &s], vec![])
}

/// Prepends the class token `[1, 1, D]`, broadcast over the batch.
pub fn class_token(b: &mut GraphBuilder, name: &str, x: &str, token: &NamedTensor) -> String {
    let d = token.data.len();
    let tok = b.f32(name, &[1, 1, d], &token.data);
    let shape = b.node("Shape", name, &[x], vec![]);
    let (start, end) = (b.shape(&[0]), b.shape(&[1]));
    let n = b.node("Slice", name, &[&shape, &start, &end], vec![]);
    let rest = b.shape(&[1, d as i64]);
    let target = b.node("Concat", name, &[&n, &rest], vec![("axis", Attr::Int(0))]);
    let toks = b.node("Expand", name, &[&tok, &target], vec![]);
    b.node("Concat", name, &[&toks, x], vec![("axis", Attr::Int(1))])
}

/// A `h x w` token grid of `shape` in `ws x ws` windows: (channels, windows down, windows
/// across, padded height, padded width).
fn window_grid(shape: Shape, h: usize, w: usize, ws: usize) -> (usize, usize, usize, usize, usize) {
    let Shape::Seq(_, c) = shape else {
        unreachable!("validated: a window partition or reverse takes a token sequence")
    };
    let (nh, nw) = (windows(h, ws), windows(w, ws));
    (c, nh, nw, nh * ws, nw * ws)
}

/// `[N, H*W, C]` (row-major grid) `-> [N, nh*nw*ws*ws, C]`: zero-pad the grid to multiples of
/// the window, then order the tokens window by window.
pub fn window_partition(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    shape: Shape,
    h: usize,
    w: usize,
    ws: usize,
) -> String {
    let (c, nh, nw, hp, wp) = window_grid(shape, h, w, ws);
    let s = b.shape(&[0, h as i64, w as i64, c as i64]);
    let mut y = b.node("Reshape", name, &[x, &s], vec![]);
    if (hp, wp) != (h, w) {
        let pads = b.shape(&[0, 0, 0, 0, 0, (hp - h) as i64, (wp - w) as i64, 0]);
        y = b.node("Pad", name, &[&y, &pads], vec![]);
    }
    let [nh, nw, ws, c] = [nh, nw, ws, c].map(|v| v as i64);
    let s = b.shape(&[0, nh, ws, nw, ws, c]);
    let y = b.node("Reshape", name, &[&y, &s], vec![]);
    let perm = Attr::Ints(vec![0, 1, 3, 2, 4, 5]);
    let y = b.node("Transpose", name, &[&y], vec![("perm", perm)]);
    let s = b.shape(&[0, nh * nw * ws * ws, c]);
    b.node("Reshape", name, &[&y, &s], vec![])
}

/// The inverse of [`window_partition`]: back to the row-major grid, padding dropped.
pub fn window_reverse(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    shape: Shape,
    h: usize,
    w: usize,
    ws: usize,
) -> String {
    let (c, nh, nw, hp, wp) = window_grid(shape, h, w, ws);
    let [nh, nw, wsi, ci] = [nh, nw, ws, c].map(|v| v as i64);
    let s = b.shape(&[0, nh, nw, wsi, wsi, ci]);
    let y = b.node("Reshape", name, &[x, &s], vec![]);
    let perm = Attr::Ints(vec![0, 1, 3, 2, 4, 5]);
    let y = b.node("Transpose", name, &[&y], vec![("perm", perm)]);
    let s = b.shape(&[0, hp as i64, wp as i64, ci]);
    let mut y = b.node("Reshape", name, &[&y, &s], vec![]);
    if (hp, wp) != (h, w) {
        let starts = b.shape(&[0, 0]);
        let ends = b.shape(&[h as i64, w as i64]);
        let axes = b.shape(&[1, 2]);
        y = b.node("Slice", name, &[&y, &starts, &ends, &axes], vec![]);
    }
    let s = b.shape(&[0, (h * w) as i64, ci]);
    b.node("Reshape", name, &[&y, &s], vec![])
}
