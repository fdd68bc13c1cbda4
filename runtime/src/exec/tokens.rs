//! CPU kernels of the token models (DeiT, TinyViT) on one image: Linear over every token through
//! the packed GEMM, layer norm, exact GELU, multi-head attention (optionally in windows, with
//! TinyViT's attention biases) and the token/grid reshapes. A sequence is `[L, D]` row-major.

use rayon::prelude::*;

use super::gemm::{dot, gemm, Epilogue, PanelB, Rows};
use super::kernel::NR;
use fq_models::{windows, Attention, QkvLayout};

/// `out[t][o] = W[o] . x[t] * scale[o] + bias[o]` for `l` tokens of `k` features: one packed GEMM
/// with the tokens as the columns of `B`, so every weight row is unpacked once per block, not
/// once per token.
pub fn linear_tokens(w: &Rows, rows: usize, x: &[f32], l: usize, epi: Epilogue) -> Vec<f32> {
    let k = x.len() / l.max(1);
    let mut data = vec![0f32; l.div_ceil(NR) * k * NR];
    data.par_chunks_mut((k * NR).max(1))
        .enumerate()
        .for_each(|(j, panel)| {
            for c in 0..NR.min(l - j * NR) {
                let tok = &x[(j * NR + c) * k..][..k];
                for (i, &v) in tok.iter().enumerate() {
                    panel[i * NR + c] = v;
                }
            }
        });
    let b = PanelB { data, k, n: l };
    let mut out_t = vec![0f32; rows * l];
    gemm(w, 0, rows, &b, &mut out_t, epi);
    transpose(&out_t, rows, l)
}

/// [`linear_tokens`] on the integer path: the tokens quantised with `scale` (or their own
/// dynamic scale), exact i32 sums, the same epilogue.
pub fn linear_tokens_i8(
    w: &super::int8_gemm::WeightsI8,
    x: &[f32],
    l: usize,
    scale: Option<f32>,
    epi: Epilogue,
) -> Vec<f32> {
    use super::int8_gemm::{dynamic_scale, gemm_i8, PanelB8};
    let k = x.len() / l.max(1);
    let scale = scale.unwrap_or_else(|| dynamic_scale(x));
    let b = PanelB8::from_tokens(x, l, k, scale);
    let mut out_t = vec![0f32; w.rows * l];
    gemm_i8(w, &b, &mut out_t, epi);
    transpose(&out_t, w.rows, l)
}

/// `[r, c] -> [c, r]`.
pub fn transpose(x: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = x[i * c + j];
        }
    }
    out
}

/// Layer norm of each `d`-feature row (biased variance, accumulated in f64).
pub fn layer_norm(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for i in 0..d {
            o[i] = ((row[i] as f64 - mean) * inv) as f32 * gamma[i] + beta[i];
        }
    }
    out
}

/// PyTorch's exact GELU, `x * Phi(x) = x/2 * erfc(-x/sqrt(2))`, with [`erfc`] (the same fit as
/// `shaders/gelu.wgsl`); several times faster than a libm `erf`, which dominated TinyViT's CPU time.
pub fn gelu(mut x: Vec<f32>) -> Vec<f32> {
    x.par_chunks_mut(4096).for_each(|c| {
        c.iter_mut()
            .for_each(|v| *v = 0.5 * *v * erfc(-*v * std::f32::consts::FRAC_1_SQRT_2))
    });
    x
}

/// `erfc(x)` by the Chebyshev fit of Numerical Recipes (`erfcc`, §6.2): fractional error below
/// 1.2e-7 over the whole real line, so GELU's small negative tail stays accurate too.
pub fn erfc(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * (-z * z + poly).exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// `[L, D]` plus the class token `[D]` in front.
pub fn class_token(x: &[f32], token: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() + token.len());
    out.extend_from_slice(token);
    out.extend_from_slice(x);
    out
}

/// `[H*W, C]` grid tokens to windows of `ws x ws` (zero-padded), window by window.
pub fn window_partition(x: &[f32], h: usize, w: usize, c: usize, ws: usize) -> Vec<f32> {
    let (nh, nw) = (windows(h, ws), windows(w, ws));
    let mut out = vec![0f32; nh * nw * ws * ws * c];
    for (t, dst) in out.chunks_exact_mut(c).enumerate() {
        let (y, x0) = window_pixel(t, nw, ws);
        if y < h && x0 < w {
            dst.copy_from_slice(&x[(y * w + x0) * c..][..c]);
        }
    }
    out
}

/// The inverse of [`window_partition`], dropping the padding.
pub fn window_reverse(x: &[f32], h: usize, w: usize, c: usize, ws: usize) -> Vec<f32> {
    let nw = windows(w, ws);
    let mut out = vec![0f32; h * w * c];
    for (t, src) in x.chunks_exact(c).enumerate() {
        let (y, x0) = window_pixel(t, nw, ws);
        if y < h && x0 < w {
            out[(y * w + x0) * c..][..c].copy_from_slice(src);
        }
    }
    out
}

/// Grid position `(row, column)` of token `t` of the window-ordered sequence.
fn window_pixel(t: usize, nw: usize, ws: usize) -> (usize, usize) {
    let (win, pos) = (t / (ws * ws), t % (ws * ws));
    let (wy, wx) = (win / nw, win % nw);
    (wy * ws + pos / ws, wx * ws + pos % ws)
}

/// Column of `q`, `k` or `v` (part 0, 1, 2) feature `i` of `head` in a fused qkv row.
fn qkv_col(a: &Attention, part: usize, head: usize, i: usize) -> usize {
    match a.layout {
        QkvLayout::QkvHeads => part * a.heads * a.key_dim + head * a.key_dim + i,
        QkvLayout::HeadsQkv => head * (2 * a.key_dim + a.val_dim) + part * a.key_dim + i,
    }
}

/// Multi-head attention of `l` tokens from the fused qkv `[L, heads*(2kd+vd)]` to
/// `[L, heads*vd]`; `biases` is the `[heads, ws*ws]` table when the op has one. Each (group,
/// head) task first gathers its q, k, v into contiguous rows so the dot products and the
/// weighted sums run over unit-stride slices.
pub fn attention(qkv: &[f32], l: usize, a: &Attention, biases: Option<&[f32]>) -> Vec<f32> {
    let f = a.qkv_features();
    let g = a.group.unwrap_or(l);
    let (kd, vd) = (a.key_dim, a.val_dim);
    let scale = (kd as f32).powf(-0.5);
    let width = a.out_features();
    let gather = |t0: usize, head: usize, part: usize, d: usize| -> Vec<f32> {
        let c0 = qkv_col(a, part, head, 0);
        let mut m = Vec::with_capacity(g * d);
        for t in t0..t0 + g {
            m.extend_from_slice(&qkv[t * f + c0..][..d]);
        }
        m
    };
    let parts: Vec<(usize, usize, Vec<f32>)> = (0..(l / g) * a.heads)
        .into_par_iter()
        .map(|task| {
            let (grp, head) = (task / a.heads, task % a.heads);
            let t0 = grp * g;
            let q = gather(t0, head, 0, kd);
            let k = gather(t0, head, 1, kd);
            let v = gather(t0, head, 2, vd);
            let mut out = vec![0f32; g * vd];
            let mut s = vec![0f32; g];
            for (qi, o) in out.chunks_exact_mut(vd).enumerate() {
                let qr = &q[qi * kd..][..kd];
                for (kj, sj) in s.iter_mut().enumerate() {
                    *sj = dot(qr, &k[kj * kd..][..kd]) * scale;
                }
                if let (Some(b), Some(ws)) = (biases, a.bias_window) {
                    let row = &b[head * ws * ws..][..ws * ws];
                    for (kj, sj) in s.iter_mut().enumerate() {
                        *sj += row[Attention::bias_index(qi, kj, ws)];
                    }
                }
                let m = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut sum = 0f32;
                s.iter_mut().for_each(|v| {
                    *v = (*v - m).exp();
                    sum += *v;
                });
                for (kj, &p) in s.iter().enumerate() {
                    let vr = &v[kj * vd..][..vd];
                    o.iter_mut().zip(vr).for_each(|(oi, x)| *oi += p * x);
                }
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|v| *v *= inv);
            }
            (grp, head, out)
        })
        .collect();
    let mut out = vec![0f32; l * width];
    for (grp, head, o) in parts {
        for qi in 0..g {
            out[(grp * g + qi) * width + head * vd..][..vd].copy_from_slice(&o[qi * vd..][..vd]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_fit_is_within_its_relative_bound() {
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let want = libm::erfc(x);
            let e = (erfc(x as f32) as f64 - want).abs() / want;
            // 1.2e-7 for the fit, plus f32 rounding of exp(-z^2) in the far tail.
            assert!(e < 1e-5, "erfc({x}) off by {e:.2e} relative");
        }
    }
}
