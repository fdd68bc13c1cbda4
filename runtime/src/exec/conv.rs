//! Convolution on the f32 path, in the shape that suits the CPU and the layer.
//!
//! On AVX-512F every convolution but the depthwise ones reads its taps where they lie
//! ([`conv_direct`]: no im2col). Elsewhere it is im2col + packed GEMM. Layers with many output
//! pixels and few weights (a ResNet's early stages) run column-parallel with im2col fused in: the
//! layer's rows are unpacked once into a transient f32 buffer (unless the executor holds them
//! unpacked already), and each task builds its own cache-sized block of `B` and multiplies it,
//! so the full im2col matrix (9x the input for a 3x3 convolution) never goes through memory.
//! Layers with few pixels and many weights (the late stages) materialise `B` (it is small) and
//! run the row-parallel [`gemm`], which unpacks each row block where it is used.

use fq_models::Conv2d;
use rayon::prelude::*;

use super::buf::Buf;
use super::conv_direct;
use super::epilogue::finish_row;
use super::gemm::{add_or_set, gemm, Epilogue, Rows, KC};
use super::im2col::{im2col, Geometry, Padded};
use super::kernel::{pairs_pay, tile, tile_pair, MR, NR};

/// Output pixels per task of the fused path.
const NC: usize = 128;
/// The fused path needs this many pixels (tasks enough to share out) ...
const FUSED_MIN_N: usize = 4 * NC;
/// ... and at most this many weights (the transient f32 copy of the layer).
const FUSED_MAX_WEIGHTS: usize = 1 << 20;

/// `out = epilogue(conv(x))` for an input `[c, h, w]` and output `[co, ho, wo]`; `epi`'s slices
/// cover all `co` output channels.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    conv: &Conv2d,
    (co, ho, wo): (usize, usize, usize),
    rows: &Rows,
    epi: Epilogue,
    out: &mut [f32],
) {
    let (groups, n) = (conv.groups, ho * wo);
    let (cg, og) = (c / groups, co / groups);
    if groups > 1 && cg == 1 && og == 1 {
        let geometry = (conv.kernel, conv.stride, conv.padding);
        return super::depthwise::depthwise(x, (c, h, w), geometry, (ho, wo), rows, epi, out);
    }
    for g in 0..groups {
        let geo = Geometry {
            c: cg,
            h,
            w,
            kernel: conv.kernel,
            stride: conv.stride,
            padding: conv.padding,
            ho,
            wo,
        };
        let xg = &x[g * cg * h * w..(g + 1) * cg * h * w];
        let r = g * og..(g + 1) * og;
        let epi = Epilogue {
            scale: epi.scale.map(|s| &s[r.clone()]),
            bias: epi.bias.map(|b| &b[r.clone()]),
            residual: epi.residual.map(|v| &v[r.start * n..r.end * n]),
            relu: epi.relu,
            gelu: epi.gelu,
        };
        let out = &mut out[r.start * n..r.end * n];
        if conv_direct::pays(&geo) {
            let a = rows.tiles(r.start, og, geo.k());
            conv_direct::conv_direct(xg, &geo, conv_direct::Tiles::Rows(&a), og, out, epi);
        } else if n >= FUSED_MIN_N && og * geo.k() <= FUSED_MAX_WEIGHTS {
            fused(xg, &geo, rows, r.start, og, out, epi);
        } else {
            gemm(rows, r.start, og, &im2col(xg, &geo), out, epi);
        }
    }
}

/// Column-parallel GEMM with im2col built per task and K block.
fn fused(
    x: &[f32],
    geo: &Geometry,
    rows: &Rows,
    row0: usize,
    m: usize,
    out: &mut [f32],
    epi: Epilogue,
) {
    let (k, n) = (geo.k(), geo.n());
    let groups = m.div_ceil(MR);
    let a = rows.tiles(row0, m, k);
    let src = Padded::new(x, geo);
    let tiles: Vec<Buf<f32>> = (0..n.div_ceil(NC))
        .into_par_iter()
        .map(|t| {
            let (p0, nc) = (t * NC, NC.min(n - t * NC));
            let panels = nc.div_ceil(NR);
            let mut b = Buf::zeroed(panels * KC.min(k) * NR);
            let mut c = Buf::zeroed(m * nc);
            let mut acc = [0f32; MR * NR];
            let mut acc2 = [0f32; MR * 2 * NR];
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                let b = &mut b[..panels * kc * NR];
                src.fill(k0, k0 + kc, p0 / NR, b);
                if pairs_pay() {
                    let bp = |j: usize| &b[j * kc * NR..(j + 1) * kc * NR];
                    for j in (0..panels).step_by(2) {
                        let pair = if j + 1 < panels { 2 } else { 1 };
                        for g in 0..groups {
                            let a = &a[g * MR * k + k0..];
                            tile_pair(kc, a, k, (bp(j), bp(j + pair - 1)), &mut acc2);
                            for r in 0..MR.min(m - g * MR) {
                                for h in 0..pair {
                                    let np = NR.min(nc - (j + h) * NR);
                                    let dst = &mut c[(g * MR + r) * nc + (j + h) * NR..][..np];
                                    add_or_set(dst, &acc2[r * 2 * NR + h * NR..], k0 == 0);
                                }
                            }
                        }
                    }
                    continue;
                }
                for (j, bp) in b.chunks_exact(kc * NR).enumerate() {
                    let np = NR.min(nc - j * NR);
                    for g in 0..groups {
                        tile(kc, &a[g * MR * k + k0..], k, bp, &mut acc);
                        for r in 0..MR.min(m - g * MR) {
                            let dst = &mut c[(g * MR + r) * nc + j * NR..][..np];
                            add_or_set(dst, &acc[r * NR..], k0 == 0);
                        }
                    }
                }
            }
            for (o, row) in c.chunks_exact_mut(nc).enumerate() {
                let res = epi.residual.map(|v| &v[o * n + p0..o * n + p0 + nc]);
                finish_row(row, &epi, o, res);
            }
            c
        })
        .collect();
    out.par_chunks_mut(n.max(1))
        .enumerate()
        .for_each(|(o, row)| {
            for (t, c) in tiles.iter().enumerate() {
                let nc = c.len() / m;
                row[t * NC..t * NC + nc].copy_from_slice(&c[o * nc..(o + 1) * nc]);
            }
        });
}
