//! Linear over a token sequence with the tokens as the GEMM's rows: `out[t][o] = epilogue(x[t] .
//! W[o])`, written straight into the `[L, rows]` layout the next step reads.
//!
//! The general [`super::gemm::gemm`] puts the weights on the rows and the pixels on the columns
//! (right for convolutions, whose `[C, H, W]` output is channel-major). For tokens that layout
//! cost a packing pass over the input and a transpose of the output per Linear; here the
//! tokens are the micro-kernel's `A` in place (row-major `[L, k]` is already what it reads) and
//! the weights are unpacked once per call into `NR`-column panels of `Wᵀ`, the `B` it streams.

use rayon::prelude::*;

use super::buf::Buf;
use super::gemm::{add_or_set, Epilogue, Rows, KC};
use super::kernel::{pairs_pay, tile, tile_block, tile_pair, tile_pair_to, MR, NR};

/// `out[t][o] = relu(W[o] . x[t] * scale[o] + bias[o] + residual[o][t])` (then `gelu` of it when
/// `epi.gelu`) for `l` tokens of `k` features; `residual` (if any) is indexed `[rows, l]` as in
/// [`super::gemm::gemm`]'s layout.
pub fn linear_tokens(w: &Rows, rows: usize, x: &[f32], l: usize, epi: Epilogue) -> Buf<f32> {
    let k = x.len() / l.max(1);
    linear_tokens_panels(&weight_panels(w, rows, k), rows, x, l, epi)
}

/// `Wᵀ` of `rows` weight rows of `k` in the panels [`linear_tokens_panels`] streams:
/// `wp[(j * k + i) * NR + c] = W[j * NR + c][i]`, rows past `rows` zero. The executor keeps them
/// per layer on the f32 path (unpacking and transposing them on every call was a tenth of
/// DeiT-Tiny's f32 time).
pub fn weight_panels(w: &Rows, rows: usize, k: usize) -> Buf<f32> {
    let panels = rows.div_ceil(NR);
    let mut wp = Buf::zeroed(panels * k * NR);
    if k > 0 {
        wp.par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(j, panel)| {
                let mut row = vec![0f32; k];
                for c in 0..NR.min(rows - j * NR) {
                    w.load(j * NR + c, 0, &mut row);
                    for (i, &v) in row.iter().enumerate() {
                        panel[i * NR + c] = v;
                    }
                }
            });
    }
    wp
}

/// [`linear_tokens`] with the weights already in panels ([`weight_panels`]).
pub fn linear_tokens_panels(
    wp: &[f32],
    rows: usize,
    x: &[f32],
    l: usize,
    epi: Epilogue,
) -> Buf<f32> {
    let k = x.len() / l.max(1);
    if l == 0 || rows == 0 || k == 0 {
        // No sums to write (`k == 0`: each output is its epilogue of 0).
        let mut out = Buf::zeroed(l * rows);
        for (t, row) in out.chunks_exact_mut(rows.max(1)).enumerate() {
            finish_columns(row, &epi, t, l);
        }
        return out;
    }
    // Recycled (stale contents): the first `k` block sets every output below.
    let mut out = super::scratch::F32.take(l * rows, true);
    let panels = rows.div_ceil(NR);
    assert_eq!(wp.len(), panels * k * NR, "linear_tokens: weight panels");
    // The last `l % MR` tokens, zero-padded to a full tile of rows.
    let full = l / MR * MR;
    let mut tail = Buf::zeroed(MR * k);
    tail[..(l - full) * k].copy_from_slice(&x[full * k..]);
    let mt = block_tokens(l);
    // Each block of tokens a job of its own ([`super::tasks`]).
    out.par_chunks_mut(mt * rows)
        .with_max_len(1)
        .enumerate()
        .for_each(|(task, c)| {
            let t0 = task * mt;
            let m = c.len() / rows;
            let mut acc = [0f32; MR * NR];
            let mut acc2 = [0f32; MR * 2 * NR];
            let mut acc4 = [0f32; 2 * MR * 2 * NR];
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let panel = |j: usize| &wp[(j * k + k0) * NR..(j * k + k0 + kc) * NR];
                // The `MR` tokens from `t` (the zero-padded tail for the last, partial tile).
                let tokens = |t: usize| {
                    if t + MR <= l {
                        &x[t * k + k0..]
                    } else {
                        &tail[k0..]
                    }
                };
                if pairs_pay() {
                    // Two weight panels per tile (AVX-512's 6x32 kernel, `kernel::tile_pair`),
                    // and twice the tokens where there are 12 real ones (its 12x32 kernel,
                    // `kernel::tile_block`).
                    for j in (0..panels).step_by(2) {
                        let pair = if j + 1 < panels { 2 } else { 1 };
                        let bb = (panel(j), panel(j + pair - 1));
                        if (j + 2) * NR <= rows {
                            // Two whole panels: the sums go from the kernel into the rows.
                            let base = c.as_mut_ptr().wrapping_add(j * NR);
                            // 12 tokens where the task has them, then tiles of up to 6
                            // (the zero-padded tail for the last, partial one).
                            let mut g = 0;
                            while g < m {
                                let (count, a) = if g + 2 * MR <= m {
                                    (2 * MR, &x[(t0 + g) * k + k0..])
                                } else {
                                    (MR.min(m - g), tokens(t0 + g))
                                };
                                // SAFETY: rows `g..g + count` of this task's output, columns
                                // `j * NR..+2 NR` (both panels whole), which only this task
                                // writes.
                                unsafe {
                                    tile_pair_to(
                                        kc,
                                        a,
                                        k,
                                        bb,
                                        (base.wrapping_add(g * rows), rows, count, k0 > 0),
                                    )
                                };
                                g += count;
                            }
                            continue;
                        }
                        let mut g = 0;
                        while g + 2 * MR <= m {
                            tile_block(kc, &x[(t0 + g) * k + k0..], k, bb, &mut acc4);
                            for r in 0..2 * MR {
                                for h in 0..pair {
                                    let (o0, np) = ((j + h) * NR, NR.min(rows - (j + h) * NR));
                                    let dst = &mut c[(g + r) * rows + o0..][..np];
                                    add_or_set(dst, &acc4[r * 2 * NR + h * NR..], k0 == 0);
                                }
                            }
                            g += 2 * MR;
                        }
                        for g in (g..m).step_by(MR) {
                            tile_pair(kc, tokens(t0 + g), k, bb, &mut acc2);
                            for r in 0..MR.min(m - g) {
                                for h in 0..pair {
                                    let (o0, np) = ((j + h) * NR, NR.min(rows - (j + h) * NR));
                                    let dst = &mut c[(g + r) * rows + o0..][..np];
                                    add_or_set(dst, &acc2[r * 2 * NR + h * NR..], k0 == 0);
                                }
                            }
                        }
                    }
                    continue;
                }
                for j in 0..panels {
                    let (o0, np) = (j * NR, NR.min(rows - j * NR));
                    for g in (0..m).step_by(MR) {
                        tile(kc, tokens(t0 + g), k, panel(j), &mut acc);
                        for r in 0..MR.min(m - g) {
                            let dst = &mut c[(g + r) * rows + o0..][..np];
                            add_or_set(dst, &acc[r * NR..], k0 == 0);
                        }
                    }
                }
            }
            for (i, row) in c.chunks_exact_mut(rows).enumerate() {
                finish_columns(row, &epi, t0 + i, l);
            }
        });
    out
}

/// The epilogue of token `t`'s output row (one value per output feature).
#[inline]
fn finish_columns(row: &mut [f32], epi: &Epilogue, t: usize, l: usize) {
    if let Some(s) = epi.scale {
        row.iter_mut().zip(s).for_each(|(v, s)| *v *= s);
    }
    if let Some(b) = epi.bias {
        row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
    }
    if let Some(res) = epi.residual {
        row.iter_mut()
            .enumerate()
            .for_each(|(o, v)| *v += res[o * l + t]);
    }
    if epi.relu {
        row.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    if epi.gelu {
        super::vmath::gelu(row);
    }
}

/// Tokens per task: one block per thread, a multiple of `MR`. Every block streams all of the
/// layer's weight panels (DeiT-Tiny's are 22 MB in f32, beyond the caches), so fewer blocks
/// mean fewer passes over them: four blocks per thread made DeiT-Tiny's f32 Linear layers 8%
/// slower. (Strips of output features over all tokens, each weight read once, were slower
/// still: their tiles write scattered rows and re-read the tokens per panel.)
fn block_tokens(l: usize) -> usize {
    let tasks = rayon::current_num_threads().max(1);
    l.div_ceil(tasks).div_ceil(MR).max(1).saturating_mul(MR)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the f64 definition, for token counts around the tile sizes, `k` across a `KC`
    /// boundary, output widths that are not multiples of `NR`, with scale, bias, residual and
    /// ReLU.
    #[test]
    fn matches_the_definition() {
        for (l, k, rows) in [
            (1, 3, 1),
            (5, 7, 17),
            (6, 16, 16),
            (197, 64, 40),
            (13, 300, 33),
            (50, 513, 7),
            // Whole pairs of panels (sums stored by the kernel), ragged last token blocks.
            (23, 300, 64),
            (40, 257, 96),
        ] {
            let x: Vec<f32> = (0..l * k)
                .map(|i| ((i * 7919) % 211) as f32 / 50.0 - 2.0)
                .collect();
            let w: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 104729) % 97) as f32 / 40.0 - 1.2)
                .collect();
            let scale: Vec<f32> = (0..rows).map(|o| 0.5 + o as f32 * 0.01).collect();
            let bias: Vec<f32> = (0..rows).map(|o| o as f32 * -0.1).collect();
            let res: Vec<f32> = (0..rows * l).map(|i| (i % 9) as f32 * 0.2).collect();
            for relu in [false, true] {
                let epi = Epilogue {
                    scale: Some(&scale),
                    bias: Some(&bias),
                    residual: Some(&res),
                    relu,
                    gelu: false,
                };
                let got = linear_tokens(&Rows::F32 { data: &w, cols: k }, rows, &x, l, epi);
                for t in 0..l {
                    for o in 0..rows {
                        let dot: f64 = (0..k)
                            .map(|i| x[t * k + i] as f64 * w[o * k + i] as f64)
                            .sum();
                        let mut want =
                            dot * scale[o] as f64 + bias[o] as f64 + res[o * l + t] as f64;
                        if relu {
                            want = want.max(0.0);
                        }
                        let g = got[t * rows + o] as f64;
                        assert!(
                            (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "l {l} k {k} rows {rows}: ({t}, {o}) {g} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
