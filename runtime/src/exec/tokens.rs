//! CPU kernels of the token models (DeiT, TinyViT) on one image: Linear over every token through
//! the packed GEMM, layer norm, exact GELU, multi-head attention (optionally in windows, with
//! TinyViT's attention biases) and the token/grid reshapes. A sequence is `[L, D]` row-major.

use rayon::prelude::*;

use super::buf::Buf;
use super::disjoint::Shared;
use super::gemm::Epilogue;
use super::kernel::{pairs_pay, tile, tile_pair, MR, NR};
use super::vmath;
use fq_models::{windows, Attention, QkvLayout};

/// `out[t][o] = W[o] . x[t] * scale[o] + bias[o]` for `l` tokens of `k` features, straight into
/// the `[L, rows]` layout (see [`super::token_gemm`]).
pub use super::token_gemm::linear_tokens;

/// [`linear_tokens`] on the integer path: the tokens quantised with `scale` (or their own
/// dynamic scale), exact i32 sums, the same epilogue.
pub fn linear_tokens_i8(
    w: &super::int8_gemm::WeightsI8,
    x: &[f32],
    l: usize,
    scale: Option<f32>,
    epi: Epilogue,
) -> Buf<f32> {
    use super::int8_gemm::{dynamic_scale, gemm_i8, PanelB8};
    let k = x.len() / l.max(1);
    let scale = scale.unwrap_or_else(|| dynamic_scale(x));
    let b = PanelB8::from_tokens(x, l, k, scale);
    // Recycled (stale contents): the integer GEMM writes every output. A zeroed allocation
    // per Linear was a serial `memset` of up to 1.6 MB on the executor's thread.
    let mut out_t = super::scratch::F32.take(w.rows * l, true);
    gemm_i8(w, &b, &mut out_t, epi);
    let out = transpose(&out_t, w.rows, l);
    super::scratch::F32.give(out_t);
    out
}

/// `[r, c] -> [c, r]`, parallel over blocks of 16 output rows, each through
/// [`super::transpose::columns_to_rows`] (16x16 blocks in registers on AVX-512F).
///
/// Why: element by element, the loop strode a whole row of `out` per element (several percent
/// of DeiT's run time); through a 16x16 tile on the stack it still cost 2.5% of TinyViT-5M's
/// integer path (perf), as two scalar operations per element and a `memmove` per ragged row.
pub fn transpose(x: &[f32], r: usize, c: usize) -> Buf<f32> {
    const B: usize = 16;
    assert_eq!(x.len(), r * c, "transpose: {r} x {c}");
    // Recycled: every value is written below.
    let mut out = super::scratch::F32.take(r * c, true);
    if r == 0 || c == 0 {
        return out;
    }
    out.par_chunks_mut(B * r)
        .enumerate()
        .for_each(|(jb, block)| {
            let (j0, nj) = (jb * B, block.len() / r);
            let dst = super::disjoint::Shared(block.as_mut_ptr());
            // SAFETY: `block` holds rows `j0..j0 + nj` of `out` (`r` floats each), this
            // task's alone; the source's columns `j0..j0 + nj` of its `r` rows lie in `x`.
            unsafe { super::transpose::columns_to_rows(&x[j0..], c, (r, nj), dst, r) };
        });
    out
}

/// Layer norm of each `d`-feature row (biased variance), in f32 as PyTorch does: two passes over
/// the row with eight partial sums each, so the compiler vectorises them (the f64 version this
/// replaces could not be).
pub fn layer_norm(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], eps: f64) -> Buf<f32> {
    if d == 0 {
        return Buf::zeroed(x.len());
    }
    // Recycled: every row is written below.
    let mut out = super::scratch::F32.take(x.len(), true);
    let eps = eps as f32;
    out.par_chunks_mut(d * 32)
        .zip(x.par_chunks(d * 32))
        .for_each(|(o, x)| {
            for (row, o) in x.chunks_exact(d).zip(o.chunks_exact_mut(d)) {
                let mean = lane_sum(row, |v| v) / d as f32;
                let var = lane_sum(row, |v| (v - mean) * (v - mean)) / d as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for i in 0..d {
                    o[i] = (row[i] - mean) * inv * gamma[i] + beta[i];
                }
            }
        });
    out
}

/// Sum of `f(v)` over `row`, with eight interleaved partial sums so the compiler vectorises it
/// (and more accurate than one running sum).
#[inline]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// PyTorch's exact GELU, `x * Phi(x) = x/2 * erfc(-x/sqrt(2))`, vectorised by hand in
/// [`vmath::gelu`] (PyTorch's `x/2 (1 + erf(x/sqrt 2))` with a rational `erf` on AVX2, SSE2,
/// NEON and SIMD128, a piecewise fit on AVX-512F; [`erfc`], the `erfcc` fit of
/// `shaders/gelu.wgsl`, is the scalar reference): a libm `erf` per element dominated TinyViT's
/// CPU time.
pub fn gelu(mut x: Buf<f32>) -> Buf<f32> {
    x.par_chunks_mut(4096).for_each(vmath::gelu);
    x
}

pub use vmath::erfc;

/// `[L, D]` plus the class token `[D]` in front.
pub fn class_token(x: &[f32], token: &[f32]) -> Buf<f32> {
    let mut out = Buf::zeroed(x.len() + token.len());
    let (front, rest) = out.split_at_mut(token.len());
    front.copy_from_slice(token);
    rest.copy_from_slice(x);
    out
}

/// `[H*W, C]` grid tokens to windows of `ws x ws` (zero-padded), window by window.
pub fn window_partition(x: &[f32], h: usize, w: usize, c: usize, ws: usize) -> Buf<f32> {
    let (nh, nw) = (windows(h, ws), windows(w, ws));
    // Recycled (stale contents): every token is written below, the padding's with zeros.
    let mut out = super::scratch::F32.take(nh * nw * ws * ws * c, true);
    if c == 0 {
        return out;
    }
    // Windows in parallel (a serial copy was most of TinyViT-5M's layout steps).
    out.par_chunks_mut(ws * ws * c)
        .enumerate()
        .for_each(|(win, tokens)| {
            for (pos, dst) in tokens.chunks_exact_mut(c).enumerate() {
                let (y, x0) = window_pixel(win * ws * ws + pos, nw, ws);
                if y < h && x0 < w {
                    dst.copy_from_slice(&x[(y * w + x0) * c..][..c]);
                } else {
                    dst.fill(0.0);
                }
            }
        });
    out
}

/// The inverse of [`window_partition`], dropping the padding.
pub fn window_reverse(x: &[f32], h: usize, w: usize, c: usize, ws: usize) -> Buf<f32> {
    let nw = windows(w, ws);
    // Recycled (stale contents): every grid pixel lies in one window, so every token is
    // copied below.
    let mut out = super::scratch::F32.take(h * w * c, true);
    if c == 0 || w == 0 {
        return out;
    }
    // Grid rows in parallel: pixel `(y, x0)` is token `t` of window `(y / ws, x0 / ws)`.
    out.par_chunks_mut(w * c).enumerate().for_each(|(y, row)| {
        for (x0, dst) in row.chunks_exact_mut(c).enumerate() {
            let t = ((y / ws) * nw + x0 / ws) * ws * ws + (y % ws) * ws + x0 % ws;
            dst.copy_from_slice(&x[t * c..][..c]);
        }
    });
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
/// `[L, heads*vd]`; `biases`, when the op has a window's biases, are their rows
/// ([`window_bias_rows`]: `[heads, g, g]`, what each query adds to each key's score).
///
/// Each (group, head, block of queries) task is two small GEMMs through the f32 micro-kernel
/// ([`tile`], [`tile_pair`]): the scores `Q Kᵀ` (Q's rows in place, Kᵀ packed into `NR`-column
/// panels) and `P V` (the probabilities' rows in place, V packed into panels), with the softmax
/// between them (vectorised `exp`, [`vmath::exp_shifted_sum`]) and its `1/sum` applied as each
/// query's outputs are written straight into the result. A task's buffers are reused by the
/// next task on the same worker: no allocation per head or per token.
///
/// Queries are split into blocks when there are too few (group, head) pairs to share out:
/// DeiT-Tiny's 3 heads made 3 tasks for 2 threads, one thread doing two while the other idled,
/// a third of its attention time. The keys and values of a split pair are packed once, before
/// its blocks ([`pack_kv`]).
pub fn attention(qkv: &[f32], l: usize, a: &Attention, biases: Option<&[f32]>) -> Buf<f32> {
    let f = a.qkv_features();
    let g = a.group.unwrap_or(l);
    let (kd, vd) = (a.key_dim, a.val_dim);
    let width = a.out_features();
    let pairs = l.checked_div(g).unwrap_or(0) * a.heads;
    let (blocks, rq) = query_blocks(pairs, g, rayon::current_num_threads());
    let mut out = if g > 0 && vd > 0 && l.is_multiple_of(g) {
        // Recycled (stale contents): the tasks write every (token, head) range of it.
        super::scratch::F32.take(l * width, true)
    } else {
        // Zeros where no task writes: no sums at all, or the tokens past the last group.
        Buf::zeroed(l * width)
    };
    if g == 0 || vd == 0 {
        return out;
    }
    // A pair split into query blocks has its keys and values packed once, before the blocks
    // (each block packing them again was half of DeiT-Tiny's attention outside the GEMMs);
    // unsplit pairs pack them in their one task. The padding keys' values stay zero.
    let (gn, vp) = (g.div_ceil(NR) * NR, vd.div_ceil(NR) * NR);
    let kv_len = gn * (kd + vp);
    let mut kv = Buf::zeroed(if blocks > 1 { pairs * kv_len } else { 0 });
    kv.par_chunks_mut(kv_len.max(1))
        .enumerate()
        .for_each(|(pair, buf)| {
            let (grp, head) = (pair / a.heads, pair % a.heads);
            let (kt, v) = buf.split_at_mut(gn * kd);
            pack_kv(&qkv[grp * g * f..(grp + 1) * g * f], f, a, head, kt, v);
        });
    let base = Shared(out.as_mut_ptr());
    (0..pairs * blocks).into_par_iter().for_each_init(
        || AttnScratch::new(g, rq, kd, vd, blocks == 1),
        |sc, task| {
            let (pair, block) = (task / blocks, task % blocks);
            let (grp, head) = (pair / a.heads, pair % a.heads);
            let rows = &qkv[grp * g * f..(grp + 1) * g * f];
            let q0 = block * rq;
            let queries = q0..(q0 + rq).min(g);
            let packed =
                (blocks > 1).then(|| kv[pair * kv_len..(pair + 1) * kv_len].split_at(gn * kd));
            // Query `q` of the block, this head's `vd` outputs: the token's row of `out`.
            // SAFETY: tasks write disjoint (token, head) ranges of `out`, which outlives them.
            let dst = |q: usize| unsafe { base.slice((grp * g + q0 + q) * width + head * vd, vd) };
            attention_head(sc, rows, f, a, head, biases, queries, packed, &dst);
        },
    );
    out
}

/// Head `head`'s keys of a group's `rows` (qkv rows of `f` features) into `kt` as `Kᵀ` in
/// `NR`-column panels (`kt[(j * kd + i) * NR + c] = K[j * NR + c][i]`), its values into `v` as
/// panels (`v[(p * gn + t) * NR + c] = V[t][p * NR + c]`, `gn` keys with the padding).
fn pack_kv(rows: &[f32], f: usize, a: &Attention, head: usize, kt: &mut [f32], v: &mut [f32]) {
    let (kd, vd) = (a.key_dim, a.val_dim);
    let gn = rows.len() / f.max(1);
    let gn = gn.div_ceil(NR) * NR;
    let (ck, cv) = (qkv_col(a, 1, head, 0), qkv_col(a, 2, head, 0));
    for (t, row) in rows.chunks_exact(f).enumerate() {
        let (j, c) = (t / NR, t % NR);
        for (i, &x) in row[ck..ck + kd].iter().enumerate() {
            kt[(j * kd + i) * NR + c] = x;
        }
        for (p, chunk) in row[cv..cv + vd].chunks(NR).enumerate() {
            v[(p * gn + t) * NR..][..chunk.len()].copy_from_slice(chunk);
        }
    }
}

/// How to split each of `pairs` (group, head) pairs' `g` queries for `threads`: `(blocks, rows
/// per block)`, rows a multiple of `MR`; one block per pair when there are at least four pairs
/// per thread. Split pairs take a block count that makes the tasks a multiple of the threads
/// where one within 8 more blocks does: DeiT-Tiny's 3 heads in 3 blocks made 9 tasks, which
/// rayon halves into 4 and 5 on 2 threads (a tenth of its attention time waiting); in 4 blocks
/// they make 12.
fn query_blocks(pairs: usize, g: usize, threads: usize) -> (usize, usize) {
    let (threads, most) = (threads.max(1), g.div_ceil(MR).max(1));
    // `b` blocks asked for: rows per block in whole tiles, and the blocks that then makes.
    let split = |b: usize| {
        let rq = (g.div_ceil(b).div_ceil(MR) * MR).max(MR);
        (g.div_ceil(rq).max(1), rq)
    };
    let want = (4 * threads).div_ceil(pairs.max(1)).clamp(1, most);
    if want == 1 {
        return split(1);
    }
    (want..=(want + 8).min(most))
        .map(split)
        .find(|&(blocks, _)| (blocks * pairs).is_multiple_of(threads))
        .unwrap_or_else(|| split(want))
}

/// One worker's buffers for [`attention_head`]; rows are padded to a multiple of `MR` and
/// columns to a multiple of `NR` (the padding stays zero), so every tile is a full one.
struct AttnScratch {
    /// The block's queries, `[gm, kd]` row-major.
    q: Buf<f32>,
    /// Kᵀ in panels (`pack_kv`), when the task packs them itself.
    kt: Buf<f32>,
    /// Scores, then probabilities: `[gm, gn]` row-major.
    s: Buf<f32>,
    /// V in panels (`pack_kv`), likewise.
    v: Buf<f32>,
    /// `1 / sum` of each probability row.
    inv: Buf<f32>,
    /// Query rows (a multiple of `MR`), key tokens padded to `NR`.
    gm: usize,
    gn: usize,
}

impl AttnScratch {
    /// For `g` keys and values and up to `rq` queries (a multiple of `MR`); with `kv`, room to
    /// pack the keys and values too.
    fn new(g: usize, rq: usize, kd: usize, vd: usize, kv: bool) -> Self {
        let (gm, gn) = (rq, g.div_ceil(NR) * NR);
        let kv = usize::from(kv);
        Self {
            q: Buf::zeroed(gm * kd),
            kt: Buf::zeroed(kv * gn * kd),
            s: Buf::zeroed(gm * gn),
            v: Buf::zeroed(kv * gn * vd.div_ceil(NR) * NR),
            inv: Buf::zeroed(gm),
            gm,
            gn,
        }
    }
}

/// One head of one group for the queries `queries`: `rows` are the group's `g` qkv rows of `f`
/// features, `biases` the op's bias rows ([`window_bias_rows`]), `packed` the head's keys and values as
/// [`pack_kv`] lays them out (`None`: packed here, into the scratch); `dst(q)` is where query
/// `queries.start + q`'s `vd` outputs go.
#[allow(clippy::too_many_arguments)]
fn attention_head<'o>(
    sc: &mut AttnScratch,
    rows: &[f32],
    f: usize,
    a: &Attention,
    head: usize,
    biases: Option<&[f32]>,
    queries: std::ops::Range<usize>,
    packed: Option<(&[f32], &[f32])>,
    dst: &impl Fn(usize) -> &'o mut [f32],
) {
    let (kd, vd) = (a.key_dim, a.val_dim);
    let g = rows.len() / f;
    let (gn, nq) = (sc.gn, queries.len());
    // Tiles of query rows that hold real queries (the scratch has room for `gm`).
    let gm = nq.div_ceil(MR) * MR;
    debug_assert!(gm <= sc.gm);
    let scale = (kd as f32).powf(-0.5);
    let cq = qkv_col(a, 0, head, 0);
    let (kt, v): (&[f32], &[f32]) = match packed {
        Some(kv) => kv,
        None => {
            pack_kv(rows, f, a, head, &mut sc.kt, &mut sc.v);
            (&sc.kt, &sc.v)
        }
    };
    for (t, row) in rows
        .chunks_exact(f)
        .skip(queries.start)
        .take(nq)
        .enumerate()
    {
        sc.q[t * kd..][..kd].copy_from_slice(&row[cq..cq + kd]);
    }
    // Rows of the last tile past the queries: zeros (finite scores, never read back).
    sc.q[nq * kd..gm * kd].fill(0.0);
    // Scores: s[qi][kj] = q[qi] . k[kj].
    // Two key panels per tile where the CPU has a kernel for it (`kernel::tile_pair`).
    let mut acc = [0f32; MR * NR];
    let mut acc2 = [0f32; MR * 2 * NR];
    let step = if pairs_pay() { 2 } else { 1 };
    for j in (0..gn / NR).step_by(step) {
        let pair = step.min(gn / NR - j);
        let b = |j: usize| &kt[j * kd * NR..(j + 1) * kd * NR];
        for r0 in (0..gm).step_by(MR) {
            if pair == 2 {
                tile_pair(kd, &sc.q[r0 * kd..], kd, (b(j), b(j + 1)), &mut acc2);
                for r in 0..MR {
                    let src = &acc2[r * 2 * NR..][..2 * NR];
                    sc.s[(r0 + r) * gn + j * NR..][..2 * NR].copy_from_slice(src);
                }
                continue;
            }
            tile(kd, &sc.q[r0 * kd..], kd, b(j), &mut acc);
            for r in 0..MR {
                sc.s[(r0 + r) * gn + j * NR..][..NR].copy_from_slice(&acc[r * NR..][..NR]);
            }
        }
    }
    // Softmax of each real row over the real keys; the padding keys get probability 0.
    for t in 0..nq {
        let qi = queries.start + t;
        let srow = &mut sc.s[t * gn..][..gn];
        let real = &mut srow[..g];
        let row = biases.map(|b| &b[(head * g + qi) * g..][..g]);
        let m = vmath::scale_add_max(real, scale, row);
        sc.inv[t] = 1.0 / vmath::exp_shifted_sum(real, m);
        srow[g..].fill(0.0);
    }
    // Output: o[qi] = sum_kj p[qi][kj] v[kj] / sum, two value panels per tile where the CPU
    // has a kernel for it.
    let vpanels = vd.div_ceil(NR);
    for p in (0..vpanels).step_by(step) {
        let pair = step.min(vpanels - p);
        let b = |p: usize| &v[p * gn * NR..(p + 1) * gn * NR];
        for r0 in (0..gm).step_by(MR) {
            let (tiles, width): (&[f32], usize) = if pair == 2 {
                tile_pair(gn, &sc.s[r0 * gn..], gn, (b(p), b(p + 1)), &mut acc2);
                (&acc2, 2 * NR)
            } else {
                tile(gn, &sc.s[r0 * gn..], gn, b(p), &mut acc);
                (&acc, NR)
            };
            for r in 0..MR.min(nq - r0) {
                let (inv, out) = (sc.inv[r0 + r], dst(r0 + r));
                for h in 0..pair {
                    let (c0, nc) = ((p + h) * NR, NR.min(vd - (p + h) * NR));
                    out[c0..c0 + nc]
                        .iter_mut()
                        .zip(&tiles[r * width + h * NR..])
                        .for_each(|(d, s)| *d = s * inv);
                }
            }
        }
    }
}

/// A window attention's `[heads, ws*ws]` bias table (`a.bias_window` is `ws`) as the rows
/// [`attention`] adds: `[heads, g, g]`, row `(head, qi)` holding
/// `table[head][bias_index(qi, kj, ws)]` for every key `kj` of the `g` in a group. `None` when
/// the op has no window.
///
/// Why: the scores took their biases through that index, `|dy| * ws + |dx|`, one score at a
/// time, 3% of TinyViT-5M's f32 time (`perf`, the Zen 5 EPYC of stop 56); from the rows they
/// are one vectorised multiply-add per row. The executor makes them once per model. Memory:
/// `heads * g * g` floats against the table's `heads * ws * ws` (`g` is the window's `ws * ws`
/// tokens): 4.9 MB for TinyViT-5M, 4.6 of them its third stage's 14x14 windows (peak resident
/// memory of its integer path 29.8 -> 35.1 MB, of its f32 path 38.9 -> 44.0).
///
/// # Panics
/// If the table does not hold `heads * ws * ws` floats.
pub fn window_bias_rows(table: &[f32], a: &Attention, g: usize) -> Option<Buf<f32>> {
    let ws = a.bias_window?;
    assert_eq!(
        table.len(),
        a.heads * ws * ws,
        "window_bias_rows: table size"
    );
    let mut rows = Buf::zeroed(a.heads * g * g);
    for (hq, row) in rows.chunks_exact_mut(g.max(1)).enumerate() {
        let (head, qi) = (hq / g, hq % g);
        let t = &table[head * ws * ws..][..ws * ws];
        for (kj, v) in row.iter_mut().enumerate() {
            *v = t[Attention::bias_index(qi, kj, ws)];
        }
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention straight from the definition, in f64: scores, softmax, weighted sum, per
    /// (group, head, query) with scalar loops (the shape of the implementation this replaced).
    fn reference(qkv: &[f32], l: usize, a: &Attention, biases: Option<&[f32]>) -> Vec<f64> {
        let f = a.qkv_features();
        let g = a.group.unwrap_or(l);
        let (kd, vd) = (a.key_dim, a.val_dim);
        let width = a.out_features();
        let at = |t: usize, part: usize, head: usize, i: usize| {
            qkv[t * f + qkv_col(a, part, head, i)] as f64
        };
        let mut out = vec![0f64; l * width];
        for grp in 0..l / g {
            for head in 0..a.heads {
                for qi in 0..g {
                    let tq = grp * g + qi;
                    let mut s: Vec<f64> = (0..g)
                        .map(|kj| {
                            let dot: f64 = (0..kd)
                                .map(|i| at(tq, 0, head, i) * at(grp * g + kj, 1, head, i))
                                .sum();
                            let bias = match (biases, a.bias_window) {
                                (Some(b), Some(ws)) => {
                                    b[head * ws * ws + Attention::bias_index(qi, kj, ws)] as f64
                                }
                                _ => 0.0,
                            };
                            dot / (kd as f64).sqrt() + bias
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    s.iter_mut().for_each(|v| *v = (*v - m).exp());
                    let sum: f64 = s.iter().sum();
                    for i in 0..vd {
                        out[tq * width + head * vd + i] = (0..g)
                            .map(|kj| s[kj] * at(grp * g + kj, 2, head, i))
                            .sum::<f64>()
                            / sum;
                    }
                }
            }
        }
        out
    }

    /// Query blocks cover every query once, in whole tiles, with no empty block; a pair per
    /// thread or fewer is split, many pairs are not.
    #[test]
    fn query_blocks_cover_the_queries() {
        for pairs in [1, 3, 8, 64] {
            for g in [1, 5, 6, 49, 197] {
                for threads in [1, 2, 16] {
                    let (blocks, rq) = query_blocks(pairs, g, threads);
                    assert!(
                        rq % MR == 0 && blocks * rq >= g && (blocks - 1) * rq < g,
                        "{pairs} pairs of {g} queries, {threads} threads: {blocks} x {rq}"
                    );
                    if pairs >= 4 * threads {
                        assert_eq!(blocks, 1);
                    }
                }
            }
        }
        assert_eq!(query_blocks(3, 197, 2), (4, 54), "DeiT-Tiny on 2 threads");
        // On 4 threads no count of whole-tile blocks within reach makes a multiple of 4 tasks:
        // as many as asked for.
        assert_eq!(query_blocks(3, 197, 4), (6, 36), "DeiT-Tiny on 4 threads");
    }

    /// DeiT's shape (one group, q|k|v by parts) and TinyViT's (windows with a bias table, heads
    /// by q|k|v), at sizes that leave ragged tiles: token counts that are not multiples of `MR`
    /// or `NR`, a value width that is not a multiple of `NR`.
    #[test]
    fn attention_matches_the_definition() {
        let cases = [
            (
                Attention {
                    heads: 3,
                    key_dim: 8,
                    val_dim: 8,
                    layout: QkvLayout::QkvHeads,
                    group: None,
                    bias_window: None,
                },
                197,
            ),
            (
                Attention {
                    heads: 2,
                    key_dim: 5,
                    val_dim: 21,
                    layout: QkvLayout::QkvHeads,
                    group: None,
                    bias_window: None,
                },
                17,
            ),
            (
                Attention {
                    heads: 2,
                    key_dim: 4,
                    val_dim: 6,
                    layout: QkvLayout::HeadsQkv,
                    group: Some(49),
                    bias_window: Some(7),
                },
                98,
            ),
            (
                Attention {
                    heads: 1,
                    key_dim: 3,
                    val_dim: 16,
                    layout: QkvLayout::HeadsQkv,
                    group: Some(9),
                    bias_window: Some(3),
                },
                27,
            ),
            (
                // Many windows (16 pairs: one task each, keys packed in the task) and three
                // value panels (a pair of them, then one).
                Attention {
                    heads: 2,
                    key_dim: 4,
                    val_dim: 40,
                    layout: QkvLayout::HeadsQkv,
                    group: Some(16),
                    bias_window: Some(4),
                },
                128,
            ),
        ];
        for (a, l) in cases {
            let qkv: Vec<f32> = (0..l * a.qkv_features())
                .map(|i| ((i * 7919) % 1009) as f32 / 300.0 - 1.7)
                .collect();
            let table: Option<Vec<f32>> = a.bias_window.map(|ws| {
                (0..a.heads * ws * ws)
                    .map(|i| (i % 5) as f32 * 0.3 - 0.6)
                    .collect()
            });
            // From a stale buffer (recycled outputs): every output is written.
            crate::exec::scratch::F32.give_everywhere(|| Buf::filled(1 << 16, f32::NAN));
            let g = a.group.unwrap_or(l);
            let rows = table.as_deref().and_then(|t| window_bias_rows(t, &a, g));
            let got = attention(&qkv, l, &a, rows.as_deref());
            let want = reference(&qkv, l, &a, table.as_deref());
            assert_eq!(got.len(), want.len());
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{a:?} l {l}: element {i}: {g} vs {w}"
                );
            }
        }
    }

    /// Windows and back, from stale buffers: every token lands where it was, the padding of a
    /// map that is no whole number of windows is zeros.
    #[test]
    fn windows_and_back_give_the_tokens() {
        for (h, w, c, ws) in [(14, 14, 3, 7), (9, 10, 2, 4), (5, 5, 1, 5)] {
            let x: Vec<f32> = (0..h * w * c).map(|i| i as f32 + 1.0).collect();
            crate::exec::scratch::F32.give_everywhere(|| Buf::filled(1 << 12, f32::NAN));
            let win = window_partition(&x, h, w, c, ws);
            let (nh, nw) = (windows(h, ws), windows(w, ws));
            assert_eq!(win.len(), nh * nw * ws * ws * c);
            let real = win.iter().filter(|&&v| v != 0.0).count();
            assert_eq!(real, h * w * c, "{h}x{w}: the tokens, and zeros past them");
            crate::exec::scratch::F32.give_everywhere(|| Buf::filled(1 << 12, f32::NAN));
            assert_eq!(
                &window_reverse(&win, h, w, c, ws)[..],
                &x[..],
                "{h}x{w} by {ws}"
            );
        }
    }

    #[test]
    fn transpose_is_a_transpose() {
        for (r, c) in [
            (0, 3),
            (1, 1),
            (3, 5),
            (16, 16),
            (17, 33),
            (197, 192),
            (40, 7),
        ] {
            let x: Vec<f32> = (0..r * c).map(|i| i as f32).collect();
            let t = transpose(&x, r, c);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(t[j * r + i], x[i * c + j], "{r}x{c} at ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn layer_norm_matches_f64() {
        for d in [1, 7, 8, 9, 192, 203] {
            let x: Vec<f32> = (0..3 * d)
                .map(|i| ((i * 37) % 17) as f32 * 0.7 + 100.0)
                .collect();
            let gamma: Vec<f32> = (0..d).map(|i| 1.0 + i as f32 * 0.01).collect();
            let beta: Vec<f32> = (0..d).map(|i| i as f32 * -0.02).collect();
            let got = layer_norm(&x, d, &gamma, &beta, 1e-6);
            for (r, row) in x.chunks_exact(d).enumerate() {
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                for i in 0..d {
                    let want = (row[i] as f64 - mean) / (var + 1e-6).sqrt() * gamma[i] as f64
                        + beta[i] as f64;
                    let e = (got[r * d + i] as f64 - want).abs();
                    assert!(
                        e < 2e-5 * (1.0 + want.abs()),
                        "d {d} row {r} feature {i}: {} vs {want}",
                        got[r * d + i]
                    );
                }
            }
        }
    }
}
