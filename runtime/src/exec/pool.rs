//! The parameter-free ops: max pooling, global average pooling, residual add, ReLU.

use rayon::prelude::*;

/// Max pooling of `[c, h, w]` with PyTorch's semantics (padding never wins: it is -inf).
#[allow(clippy::too_many_arguments)]
pub fn max_pool(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    (ho, wo): (usize, usize),
) -> Vec<f32> {
    let mut out = vec![0f32; c * ho * wo];
    if ho * wo == 0 {
        return out;
    }
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, plane)| {
            // Per output row: the column-wise max over the window's rows, then the max over
            // each window's columns (windows clipped to the input; validation guarantees that
            // every window overlaps it).
            let mut colmax = vec![f32::NEG_INFINITY; w];
            for (oy, out_row) in dst.chunks_exact_mut(wo).enumerate() {
                let y0 = (oy * stride).saturating_sub(padding);
                let y1 = (oy * stride + kernel)
                    .saturating_sub(padding)
                    .min(h)
                    .max(y0);
                colmax.fill(f32::NEG_INFINITY);
                for row in plane[y0 * w..y1 * w].chunks_exact(w) {
                    for (m, &v) in colmax.iter_mut().zip(row) {
                        *m = if v > *m { v } else { *m };
                    }
                }
                for (ox, o) in out_row.iter_mut().enumerate() {
                    let x0 = (ox * stride).saturating_sub(padding);
                    let x1 = (ox * stride + kernel)
                        .saturating_sub(padding)
                        .min(w)
                        .max(x0);
                    *o = colmax[x0..x1]
                        .iter()
                        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
                }
            }
        });
    out
}

/// Mean of each channel plane: `[c, hw] -> [c]`.
pub fn global_avg_pool(x: &[f32], c: usize, hw: usize) -> Vec<f32> {
    if hw == 0 {
        return vec![0.0; c];
    }
    x.chunks_exact(hw)
        .take(c)
        .map(|p| p.iter().sum::<f32>() / hw as f32)
        .collect()
}

/// `a + b`, optionally followed by ReLU, reusing `a`'s buffer.
pub fn add(mut a: Vec<f32>, b: &[f32], relu: bool) -> Vec<f32> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    if relu {
        a.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    a
}

pub fn relu(mut x: Vec<f32>) -> Vec<f32> {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}
