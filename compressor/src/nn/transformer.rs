//! The token operations of DeiT and TinyViT as differentiable candle compositions (layer norm,
//! multi-head attention with optional windows and attention biases, token/grid reshapes), so
//! FairQuant's importance, QAT and BAQ backpropagate through them unchanged. Values are
//! `[N, L, D]` tokens; grids are `[N, C, H, W]`.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use fq_models::{windows, Attention, QkvLayout};

/// Layer norm over the last axis (biased variance, as PyTorch).
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(y.broadcast_mul(gamma)?.broadcast_add(beta)?)
}

/// `[N, C, H, W] -> [N, H*W, C]`.
pub fn to_tokens(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    Ok(x.reshape((n, c, h * w))?.transpose(1, 2)?.contiguous()?)
}

/// `[N, H*W, C] -> [N, C, H, W]`.
pub fn to_chw(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (n, _, c) = x.dims3()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((n, c, h, w))?)
}

/// Prepends the class token `[1, 1, D]` to every sequence.
pub fn class_token(x: &Tensor, token: &Tensor) -> Result<Tensor> {
    let (n, _, d) = x.dims3()?;
    let t = token.broadcast_as((n, 1, d))?;
    Ok(Tensor::cat(&[&t, x], 1)?)
}

/// `[N, H*W, C] -> [N, nh*nw*ws*ws, C]`: zero-pad the grid to whole windows, then order the
/// tokens window by window (timm's TinyViT block).
pub fn window_partition(x: &Tensor, h: usize, w: usize, ws: usize) -> Result<Tensor> {
    let (n, _, c) = x.dims3()?;
    let (nh, nw) = (windows(h, ws), windows(w, ws));
    let g = x
        .reshape((n, h, w, c))?
        .pad_with_zeros(1, 0, nh * ws - h)?
        .pad_with_zeros(2, 0, nw * ws - w)?;
    Ok(g.reshape((n, nh, ws, nw, ws, c))?
        .transpose(2, 3)?
        .contiguous()?
        .reshape((n, nh * nw * ws * ws, c))?)
}

/// The inverse of [`window_partition`], cropping the padding.
pub fn window_reverse(x: &Tensor, h: usize, w: usize, ws: usize) -> Result<Tensor> {
    let (n, _, c) = x.dims3()?;
    let (nh, nw) = (windows(h, ws), windows(w, ws));
    let g = x
        .reshape((n, nh, nw, ws, ws, c))?
        .transpose(2, 3)?
        .contiguous()?
        .reshape((n, nh * ws, nw * ws, c))?
        .narrow(1, 0, h)?
        .narrow(2, 0, w)?;
    Ok(g.contiguous()?.reshape((n, h * w, c))?)
}

/// The `[heads, g, g]` bias of every query/key pair from the `[heads, ws*ws]` table.
fn expand_biases(table: &Tensor, ws: usize, device: &Device) -> Result<Tensor> {
    let g = ws * ws;
    let idx: Vec<u32> = (0..g * g)
        .map(|k| Attention::bias_index(k / g, k % g, ws) as u32)
        .collect();
    let idx = Tensor::from_vec(idx, g * g, device)?;
    let heads = table.dim(0)?;
    Ok(table.index_select(&idx, 1)?.reshape((heads, g, g))?)
}

/// Softmax over the last axis from differentiable primitives (the max is a constant shift).
fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}

/// Multi-head attention from a fused `qkv` output `[N, L, heads*(2*kd+vd)]` to
/// `[N, L, heads*vd]`; `biases` is TinyViT's `[heads, ws*ws]` table when the op has one.
pub fn attention(qkv: &Tensor, a: &Attention, biases: Option<&Tensor>) -> Result<Tensor> {
    let (n, l, f) = qkv.dims3()?;
    if f != a.qkv_features() {
        bail!(
            "attention expects {} qkv features, got {f}",
            a.qkv_features()
        );
    }
    let (h, kd, vd) = (a.heads, a.key_dim, a.val_dim);
    // q, k, v as [N, H, L, d].
    let (q, k, v) = match a.layout {
        QkvLayout::QkvHeads => {
            let t = qkv.reshape((n, l, 3, h, kd))?.permute((2, 0, 3, 1, 4))?;
            let part = |i: usize| -> Result<Tensor> { Ok(t.get(i)?.contiguous()?) };
            (part(0)?, part(1)?, part(2)?)
        }
        QkvLayout::HeadsQkv => {
            let t = qkv.reshape((n, l, h, 2 * kd + vd))?;
            let part = |start: usize, len: usize| -> Result<Tensor> {
                Ok(t.narrow(3, start, len)?.transpose(1, 2)?.contiguous()?)
            };
            (part(0, kd)?, part(kd, kd)?, part(2 * kd, vd)?)
        }
    };
    let g = a.group.unwrap_or(l);
    let groups = l / g;
    // Batched matmuls over [N*H*groups, g, d] (candle wants 3-d, contiguous operands).
    let b = n * h * groups;
    let split = |t: &Tensor, d: usize| -> Result<Tensor> { Ok(t.reshape((b, g, d))?) };
    let (q, k, v) = (split(&q, kd)?, split(&k, kd)?, split(&v, vd)?);
    let scale = (kd as f64).powf(-0.5);
    let mut scores = (q * scale)?.matmul(&k.transpose(1, 2)?.contiguous()?)?;
    if let Some(table) = biases {
        let ws = a
            .bias_window
            .ok_or_else(|| anyhow::anyhow!("attention biases without a window size"))?;
        let bias = expand_biases(table, ws, qkv.device())?.reshape((1, h, 1, g, g))?;
        scores = scores
            .reshape((n, h, groups, g, g))?
            .broadcast_add(&bias)?
            .reshape((b, g, g))?;
    }
    let attn = softmax_last(&scores)?;
    let out = attn.matmul(&v)?; // [N*H*groups, g, vd]
    Ok(out
        .reshape((n, h, l, vd))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, l, h * vd))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_partition_round_trips_with_padding() {
        let x = Tensor::arange(0f32, 2.0 * 5.0 * 5.0 * 3.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 25, 3))
            .unwrap();
        let p = window_partition(&x, 5, 5, 3).unwrap();
        assert_eq!(p.dims(), &[2, 4 * 9, 3]);
        // The first window's second row starts at grid row 1, column 0 (token 5).
        let v: Vec<Vec<f32>> = p.get(0).unwrap().to_vec2().unwrap();
        assert_eq!(v[3], vec![15.0, 16.0, 17.0]);
        // Window 1 (top right) has columns 3, 4 and one padded column.
        assert_eq!(v[9 + 2], vec![0.0; 3]);
        let back = window_reverse(&p, 5, 5, 3).unwrap();
        let d = (back - &x).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn bias_index_follows_timm_offset_order() {
        // ws = 3: position 0 = (0,0), 5 = (1,2), 7 = (2,1).
        let b = Attention::bias_index;
        assert_eq!(b(0, 0, 3), 0);
        assert_eq!(b(0, 5, 3), 3 + 2);
        assert_eq!(b(7, 5, 3), 3 + 1);
        assert_eq!(b(5, 7, 3), b(7, 5, 3));
    }

    #[test]
    fn single_head_attention_matches_a_direct_computation() {
        // One head, L = 2, kd = vd = 1: q = [1, 0], k = [0, 1], v = [10, 20].
        let a = Attention {
            heads: 1,
            key_dim: 1,
            val_dim: 1,
            layout: QkvLayout::QkvHeads,
            group: None,
            bias_window: None,
        };
        let qkv = Tensor::new(&[[[1f32, 0.0, 10.0], [0.0, 1.0, 20.0]]], &Device::Cpu).unwrap();
        let out: Vec<f32> = attention(&qkv, &a, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Query 0 scores keys [0, 1]; query 1 scores [0, 0].
        let p = 1.0 / (1.0 + 1f32.exp());
        assert!((out[0] - (10.0 * p + 20.0 * (1.0 - p))).abs() < 1e-5);
        assert!((out[1] - 15.0).abs() < 1e-5);
    }
}
