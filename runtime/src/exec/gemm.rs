//! Packed GEMM: `out[o][p] = epilogue(sum_k W[o][k] * B[k][p])` with the weight rows unpacked from
//! their 2–8-bit codes on the fly, one cache block at a time.
//!
//! Blocking follows the usual CPU GEMM scheme: a task owns `mc` output rows and walks K in blocks
//! of `KC`; per block it unpacks its rows straight into a row-major buffer (small enough for L2;
//! the micro-kernel reads the rows in place, so there is no packing pass beyond the unpacking),
//! then sweeps every `NR`-column panel of `B` (whose `KC x NR` block stays in L1) through the
//! micro-kernel. Scales, bias, residual and ReLU are applied once at the end, so the integer codes
//! are multiplied as small exact floats and each row's scale is a single multiply per output.

use rayon::prelude::*;

use super::kernel::{tile, MR, NR};
use crate::format::{pack, PackedMatrix};

/// K block: a multiple of the packing chunk, so every block starts on a chunk boundary.
pub(super) const KC: usize = 256;
const _: () = assert!(KC.is_multiple_of(pack::CHUNK));
/// Largest row block of one task.
const MC_MAX: usize = 96;

/// The rows of a weight matrix, as stored.
pub enum Rows<'a> {
    /// Bit-packed codes; `offsets[r]..offsets[r + 1]` is row `r` of `m.data`.
    Packed {
        m: &'a PackedMatrix,
        offsets: &'a [usize],
    },
    /// Row-major f32.
    F32 { data: &'a [f32], cols: usize },
}

impl Rows<'_> {
    /// Writes `W[row][k0 .. k0 + out.len()]` into `out`.
    #[inline]
    pub(super) fn load(&self, row: usize, k0: usize, out: &mut [f32]) {
        match self {
            Rows::Packed { m, offsets } => {
                let ok = pack::unpack_row(
                    &m.data[offsets[row]..offsets[row + 1]],
                    m.bits[row],
                    k0,
                    out,
                );
                // The model was validated: every row holds its codes at a width of 2..=8.
                debug_assert!(ok);
            }
            Rows::F32 { data, cols } => {
                out.copy_from_slice(&data[row * cols + k0..][..out.len()]);
            }
        }
    }
}

/// What happens to a row's sums: `relu(sum * scale + bias + residual)`, then `gelu` of that when
/// `gelu` is set; every slice is indexed by the output row (relative to the call), `residual`
/// like `out`.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub scale: Option<&'a [f32]>,
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
    /// The exact GELU ([`super::vmath::gelu`]) on each finished row while it is still in cache:
    /// how a transformer MLP's first Linear absorbs the GELU after it (the plan sets it on
    /// Linear steps only), saving a pass and a copy of the block's largest tensor.
    pub gelu: bool,
}

/// The right-hand matrix `[k][n]`, packed in panels of `NR` columns: `data[(j * k + i) * NR + c]`
/// is `B[i][j * NR + c]`. Columns past `n` in the last panel hold anything finite or not; they
/// only reach outputs that are discarded.
pub struct PanelB {
    pub data: Vec<f32>,
    pub k: usize,
    pub n: usize,
}

impl PanelB {
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

/// `out` (`rows x b.n`, row-major) = epilogue(`W[row0 .. row0 + rows] * B`), parallel over row blocks.
pub fn gemm(w: &Rows, row0: usize, rows: usize, b: &PanelB, out: &mut [f32], epi: Epilogue) {
    let (k, n) = (b.k, b.n);
    assert_eq!(out.len(), rows * n, "gemm output size");
    assert!(b.data.len() >= b.panels() * k * NR, "gemm B panels");
    if rows == 0 || n == 0 {
        return;
    }
    let mc = block_rows(rows);
    out.par_chunks_mut(mc * n).enumerate().for_each(|(t, c)| {
        let r0 = t * mc;
        let m = c.len() / n;
        let groups = m.div_ceil(MR);
        // Row-major rows of this block; rows past `m` (filling the last tile) stay zero.
        let mut a = vec![0f32; groups * MR * KC.min(k.max(1))];
        let mut acc = [0f32; MR * NR];
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            for (i, row) in a.chunks_exact_mut(kc).take(m).enumerate() {
                w.load(row0 + r0 + i, k0, row);
            }
            for j in 0..b.panels() {
                let bb = &b.data[(j * k + k0) * NR..(j * k + k0 + kc) * NR];
                let p0 = j * NR;
                let np = NR.min(n - p0);
                for g in 0..groups {
                    tile(kc, &a[g * kc * MR..(g + 1) * kc * MR], kc, bb, &mut acc);
                    for r in 0..MR.min(m - g * MR) {
                        let dst = &mut c[(g * MR + r) * n + p0..][..np];
                        let src = &acc[r * NR..r * NR + np];
                        if k0 == 0 {
                            dst.copy_from_slice(src);
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                        }
                    }
                }
            }
        }
        if k == 0 {
            c.fill(0.0);
        }
        for (i, out_row) in c.chunks_exact_mut(n).enumerate() {
            let o = r0 + i;
            let res = epi.residual.map(|r| &r[o * n..(o + 1) * n]);
            finish_row(out_row, &epi, o, res);
        }
    });
}

/// `out[o] = epilogue(W[row0 + o] . x)` for a single input vector (a Linear layer on one image).
pub fn gemv(w: &Rows, row0: usize, x: &[f32], out: &mut [f32], epi: Epilogue) {
    let k = x.len();
    out.par_chunks_mut(64).enumerate().for_each(|(t, chunk)| {
        let mut row = vec![0f32; KC.min(k.max(1))];
        for (i, o) in chunk.iter_mut().enumerate() {
            let r = t * 64 + i;
            let mut sum = 0f32;
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                w.load(row0 + r, k0, &mut row[..kc]);
                sum += dot(&row[..kc], &x[k0..k0 + kc]);
            }
            let mut v = [sum];
            let res = epi.residual.map(|rs| &rs[r..r + 1]);
            finish_row(&mut v, &epi, r, res);
            *o = v[0];
        }
    });
}

/// Eight partial sums, so the compiler can vectorise the reduction.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline]
pub(super) fn finish_row(row: &mut [f32], epi: &Epilogue, o: usize, residual: Option<&[f32]>) {
    let s = epi.scale.map_or(1.0, |s| s[o]);
    let b = epi.bias.map_or(0.0, |b| b[o]);
    match residual {
        Some(res) => row
            .iter_mut()
            .zip(res)
            .for_each(|(v, r)| *v = *v * s + b + r),
        None => row.iter_mut().for_each(|v| *v = *v * s + b),
    }
    if epi.relu {
        row.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    if epi.gelu {
        super::vmath::gelu(row);
    }
}

/// Rows per task: about four tasks per thread for balance, a multiple of MR, at most `MC_MAX`.
fn block_rows(rows: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    rows.div_ceil(tasks)
        .div_ceil(MR)
        .max(1)
        .saturating_mul(MR)
        .min(MC_MAX)
}
