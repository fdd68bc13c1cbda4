//! The parameter-free ops: max pooling, global average pooling, residual add, ReLU.

use rayon::prelude::*;

use super::buf::Buf;

/// Max pooling of `[c, h, w]` into `out` (`[c, ho, wo]`, every value written) with PyTorch's
/// semantics (padding never wins: it is -inf).
///
/// Per output row: the column-wise max over the window's rows, laid out by column phase (as the
/// depthwise convolution's buffer: phase `p` holds padded columns `p, p + stride, ...`, the
/// padding -inf), then per window column one contiguous max over the output row. The per-pixel
/// fold it replaces, with each window's bounds computed per output, took 0.6 ms of ResNet18's
/// 5 ms integer path at 2 threads (Zen 5); this takes 0.2-0.3 ms.
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
    out: &mut [f32],
) {
    assert_eq!(out.len(), c * ho * wo, "max_pool: output size");
    if ho * wo == 0 {
        return;
    }
    out.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each_init(
            || PoolRows::new((h, w), (kernel, stride, padding), (ho, wo)),
            |pool, (dst, plane)| pool.rows(plane, 0, 0..ho, dst),
        );
}

/// One max pooling (input `[h][w]`, output `[ho][wo]`) with its working buffers, made once
/// and reused channel after channel: rows of a plane from a band of its input, for a step that
/// makes its input band by band ([`super::stem_pool`]), or whole planes ([`max_pool`]).
pub struct PoolRows {
    pool: Pool,
    ho: usize,
    /// The column maxima's and the phases' buffers of [`Pool::plane`].
    colmax: Vec<f32>,
    phases: Vec<f32>,
}

impl PoolRows {
    pub fn new(
        (h, w): (usize, usize),
        (kernel, stride, padding): (usize, usize, usize),
        (ho, wo): (usize, usize),
    ) -> Self {
        let pool = Pool::new(h, w, kernel, stride, padding, wo);
        Self {
            colmax: vec![f32::NEG_INFINITY; w],
            phases: vec![f32::NEG_INFINITY; pool.stride * pool.cols],
            pool,
            ho,
        }
    }

    /// Output rows `oys` of one channel into `dst` (`[oys.len()][wo]`), from `plane`, which
    /// holds the channel's input rows from `y_first` on and must cover those rows' windows.
    pub fn rows(
        &mut self,
        plane: &[f32],
        y_first: usize,
        oys: std::ops::Range<usize>,
        dst: &mut [f32],
    ) {
        let p = &self.pool;
        assert!(
            oys.end <= self.ho && dst.len() == oys.len() * p.wo,
            "max pool: rows {oys:?} of {}, {} outputs",
            self.ho,
            dst.len()
        );
        #[cfg(target_arch = "x86_64")]
        if (p.kernel, p.stride, p.padding) == (3, 2, 1)
            && p.simd == super::kernel::KernelPath::Avx512F
        {
            // SAFETY: the path is AVX-512F only where the CPU has it; `dst` holds rows `oys`
            // of the pooling's output.
            return unsafe { pool_3x3s2_avx512(plane, y_first, (p.h, p.w), oys, p.wo, dst) };
        }
        #[cfg(target_arch = "x86_64")]
        if (p.kernel, p.stride, p.padding) == (3, 2, 1)
            && p.simd == super::kernel::KernelPath::Avx2Fma
        {
            // SAFETY: the path is AVX2+FMA only where the CPU has them; `dst` holds rows `oys`
            // of the pooling's output.
            return unsafe { pool_3x3s2_avx2(plane, y_first, (p.h, p.w), oys, p.wo, dst) };
        }
        // SAFETY: `path` only returns a path this CPU has.
        unsafe {
            p.plane_on(
                p.simd,
                plane,
                y_first,
                oys,
                &mut self.colmax,
                &mut self.phases,
                dst,
            )
        };
    }
}

/// One max pooling's geometry, with the column phases' width.
struct Pool {
    h: usize,
    w: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    wo: usize,
    cols: usize,
    simd: super::kernel::KernelPath,
}

impl Pool {
    fn new(h: usize, w: usize, kernel: usize, stride: usize, padding: usize, wo: usize) -> Self {
        let stride = stride.max(1);
        Self {
            h,
            w,
            kernel,
            stride,
            padding,
            wo,
            // Columns per phase: every output's window, `(kernel - 1) / stride` past the last
            // output.
            cols: wo + (kernel.max(1) - 1) / stride,
            simd: super::kernel::path(),
        }
    }

    /// [`Pool::plane`] compiled for the vector width of `path`.
    ///
    /// # Safety
    /// The CPU must have `path` ([`super::kernel::KernelPath::available`]).
    #[allow(clippy::too_many_arguments)]
    unsafe fn plane_on(
        &self,
        path: super::kernel::KernelPath,
        plane: &[f32],
        y_first: usize,
        oys: std::ops::Range<usize>,
        colmax: &mut [f32],
        phases: &mut [f32],
        dst: &mut [f32],
    ) {
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller guarantees AVX-512F.
            super::kernel::KernelPath::Avx512F => unsafe {
                self.plane_avx512(plane, y_first, oys, colmax, phases, dst)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller guarantees AVX2.
            super::kernel::KernelPath::Avx2Fma => unsafe {
                self.plane_avx2(plane, y_first, oys, colmax, phases, dst)
            },
            _ => self.plane(plane, y_first, oys, colmax, phases, dst),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn plane_avx512(
        &self,
        plane: &[f32],
        y_first: usize,
        oys: std::ops::Range<usize>,
        colmax: &mut [f32],
        phases: &mut [f32],
        dst: &mut [f32],
    ) {
        self.plane(plane, y_first, oys, colmax, phases, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn plane_avx2(
        &self,
        plane: &[f32],
        y_first: usize,
        oys: std::ops::Range<usize>,
        colmax: &mut [f32],
        phases: &mut [f32],
        dst: &mut [f32],
    ) {
        self.plane(plane, y_first, oys, colmax, phases, dst)
    }

    /// One channel's output rows `oys`: `plane` (input rows from `y_first`) to `dst`
    /// `[oys.len()][wo]`: over the window in (row, column) order
    /// from -inf, `f32::max` (the running max is never NaN, so a NaN never replaces it, as with
    /// the per-pixel fold's `if v > m { v } else { m }`). That spelling compiled here to masked
    /// conditional stores, 8 lanes at a time, ten times slower than `max`.
    #[inline(always)]
    fn plane(
        &self,
        plane: &[f32],
        y_first: usize,
        oys: std::ops::Range<usize>,
        colmax: &mut [f32],
        phases: &mut [f32],
        dst: &mut [f32],
    ) {
        let (h, w, s, cols) = (self.h, self.w, self.stride, self.cols);
        for (oy, out_row) in oys.zip(dst.chunks_exact_mut(self.wo)) {
            // The window's rows clipped to the input (validation guarantees every window
            // overlaps it).
            let y0 = (oy * s).saturating_sub(self.padding);
            let y1 = (oy * s + self.kernel)
                .saturating_sub(self.padding)
                .min(h)
                .max(y0);
            colmax.fill(f32::NEG_INFINITY);
            for row in plane[(y0 - y_first) * w..(y1 - y_first) * w].chunks_exact(w) {
                for (m, &v) in colmax.iter_mut().zip(row) {
                    *m = m.max(v);
                }
            }
            // Padded column `j * s + p` (phase `p`) is input column `j * s + p - padding`.
            for p in 0..s {
                let dst = &mut phases[p * cols..(p + 1) * cols];
                dst.fill(f32::NEG_INFINITY);
                super::phases::phase_of_row(colmax, s, self.padding, p, dst);
            }
            out_row.fill(f32::NEG_INFINITY);
            for kx in 0..self.kernel {
                let src = &phases[(kx % s) * cols + kx / s..][..self.wo];
                for (o, &v) in out_row.iter_mut().zip(src) {
                    *o = o.max(v);
                }
            }
        }
    }
}

/// The loop of both 3x3 stride-2 padding-1 poolings ([`pool_3x3s2_avx512`] on floats,
/// [`pool_codes_3x3s2_avx512`] on codes), in the body of an `unsafe fn` with AVX-512F: per
/// output row `oy` of `$oys` (the `i`-th), sixteen outputs at a time, the column-wise max of
/// the window's (up to) three input rows over the 32 columns under them in two registers,
/// then the max of each window's centre and right columns (two two-register permutes) and its
/// left one (the right ones shifted a lane, the previous block's last coming in). Every value
/// is a 32-bit lane (a float, or a pixel's four codes); `$fill` is the padding's (the lanes
/// past the map and left of it), `$max(new, running)` the lanes' maximum; map row `y` starts
/// at `$row(y)`, output row `oy` at `$out(i, oy)` (pointers to 32-bit lanes).
#[cfg(target_arch = "x86_64")]
macro_rules! pool_3x3s2_rows {
    ($oys:expr, ($h:expr, $w:expr, $wo:expr), $fill:expr, $max:expr, $row:expr, $out:expr) => {{
        use std::arch::x86_64::*;
        let (h, w, wo) = ($h, $w, $wo);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let lanes = |n: usize| ((1u32 << n.min(16)) - 1) as __mmask16;
        for (i, oy) in $oys.enumerate() {
            let y0 = (2 * oy).saturating_sub(1);
            let y1 = (2 * oy + 2).min(h);
            let out: *mut u32 = $out(i, oy);
            // Columns `x - 1 + 2 l` of the previous block's right ones: padding left of the map.
            let mut prev = $fill;
            for b in 0..wo.div_ceil(16) {
                let x = 32 * b;
                let (ml, mh) = (lanes(w.saturating_sub(x)), lanes(w.saturating_sub(x + 16)));
                let (mut lo, mut hi) = ($fill, $fill);
                for y in y0..y1 {
                    let row: *const u32 = $row(y);
                    // SAFETY: row `y` lies in the input (the caller's assertion); lanes past
                    // column `w` are masked (neither read nor faulted), the padding.
                    unsafe {
                        lo = $max(_mm512_mask_loadu_epi32($fill, ml, row.add(x).cast()), lo);
                        hi = $max(
                            _mm512_mask_loadu_epi32($fill, mh, row.add(x + 16).cast()),
                            hi,
                        );
                    }
                }
                // Output `16 b + l`'s window: columns `x + 2 l - 1`, `x + 2 l`, `x + 2 l + 1`.
                let centre = _mm512_permutex2var_epi32(lo, even, hi);
                let right = _mm512_permutex2var_epi32(lo, odd, hi);
                let left = _mm512_alignr_epi32::<15>(right, prev);
                prev = right;
                let v = $max(left, $max(centre, right));
                // SAFETY: output row `oy`, columns `< wo` (masked): the caller's contract.
                unsafe { _mm512_mask_storeu_epi32(out.add(16 * b).cast(), lanes(wo - 16 * b), v) };
            }
        }
    }};
}

/// ResNet's 3x3 stride-2 padding-1 max pooling of one plane, sixteen outputs at a time
/// ([`pool_3x3s2_rows!`]). The generic path's phase split went element by element: ResNet18's
/// pooling took 0.37 ms of one core's 7.6 ms on the integer path (Zen 5). The column maxima
/// once went through a buffer and were read back at two-float offsets, straddling the stores
/// just made; in registers the integer stem with its pooling went 0.262 → 0.259 ms (ResNet18,
/// 2 threads, Zen 5). Same results: the window's values in the same never-NaN-wins fold
/// (`VMAXPS` returns its second operand, the running max, when the new value is NaN), and the
/// padding is -inf.
///
/// Output rows `oys` of a plane `[h][w]` whose rows from `y_first` are in `plane`, into `dst`
/// (`[oys.len()][wo]`).
///
/// # Safety
/// AVX-512F must be available; `wo` and the rows `oys` are the pooling's (every window
/// overlaps the plane).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pool_3x3s2_avx512(
    plane: &[f32],
    y_first: usize,
    (h, w): (usize, usize),
    oys: std::ops::Range<usize>,
    wo: usize,
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    check_3x3s2(plane, y_first, (h, w), &oys, wo, dst.len());
    let max = |a: __m512i, b: __m512i| {
        _mm512_castps_si512(_mm512_max_ps(
            _mm512_castsi512_ps(a),
            _mm512_castsi512_ps(b),
        ))
    };
    let (src, dst) = (plane.as_ptr().cast::<u32>(), dst.as_mut_ptr().cast::<u32>());
    pool_3x3s2_rows!(
        oys,
        (h, w, wo),
        _mm512_castps_si512(_mm512_set1_ps(f32::NEG_INFINITY)),
        max,
        |y: usize| src.wrapping_add((y - y_first) * w),
        |i: usize, _| dst.wrapping_add(i * wo)
    )
}

/// The extents [`pool_3x3s2_avx512`] and [`pool_3x3s2_avx2`] read and write: `dst` (`dst_len`
/// floats) holds output rows `oys`, every window of those rows lies in the map, and `plane`
/// holds the map's rows they read (from `y_first`).
#[cfg(target_arch = "x86_64")]
fn check_3x3s2(
    plane: &[f32],
    y_first: usize,
    (h, w): (usize, usize),
    oys: &std::ops::Range<usize>,
    wo: usize,
    dst_len: usize,
) {
    assert!(
        dst_len >= oys.len() * wo
            && 2 * oys.end <= h + 1
            && 2 * wo <= w + 1
            && (2 * oys.start).saturating_sub(1) >= y_first
            && plane.len() >= ((2 * oys.end).min(h).max(y_first) - y_first) * w,
        "max pool 3x3/2: extents"
    );
}

/// [`pool_3x3s2_avx512`] on AVX2, eight outputs at a time: the column-wise max of the window's
/// rows over the 16 columns under them in two registers, their even and odd columns (the
/// windows' centres and right columns) gathered by a shuffle and a permute, the left ones the
/// right ones a lane on (the previous block's last coming in). Columns past the map are the
/// padding, -inf (a last block's through a copy). The same never-NaN-wins fold (`VMAXPS`
/// returns its second operand, the running max, when the new value is NaN).
///
/// Why: the generic path's phase split goes element by element: ResNet18's f32 stem with its
/// pooling took 1.97 ms, the stem alone 1.62 and the pooling apart 0.31 (`step_times`, 2
/// threads, the Zen 3 of stop 68), onnxruntime's pooling 0.09; with this one 1.76 and 0.09.
///
/// # Safety
/// AVX2 must be available; as [`pool_3x3s2_avx512`] otherwise.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pool_3x3s2_avx2(
    plane: &[f32],
    y_first: usize,
    (h, w): (usize, usize),
    oys: std::ops::Range<usize>,
    wo: usize,
    dst: &mut [f32],
) {
    use std::arch::x86_64::*;
    check_3x3s2(plane, y_first, (h, w), &oys, wo, dst.len());
    let fill = _mm256_set1_ps(f32::NEG_INFINITY);
    // Lane `l` from lane `l - 1`, lane 0 from lane 7.
    let rotate = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
    for (i, oy) in oys.enumerate() {
        let y0 = (2 * oy).saturating_sub(1);
        let y1 = (2 * oy + 2).min(h);
        let rows = &plane[(y0 - y_first) * w..(y1 - y_first) * w];
        let out = &mut dst[i * wo..(i + 1) * wo];
        // Column `x - 1` of the block: the previous block's last right column, or padding.
        let mut prev = fill;
        for (b, chunk) in out.chunks_mut(8).enumerate() {
            let x = 16 * b;
            let (mut lo, mut hi) = (fill, fill);
            for row in rows.chunks_exact(w) {
                let (l, r) = if x + 16 <= w {
                    // SAFETY: columns `x..x + 16` lie in the row.
                    unsafe {
                        let p = row.as_ptr().add(x);
                        (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
                    }
                } else {
                    let mut tail = [f32::NEG_INFINITY; 16];
                    tail[..w - x].copy_from_slice(&row[x..]);
                    // SAFETY: `tail` holds 16 floats.
                    unsafe {
                        (
                            _mm256_loadu_ps(tail.as_ptr()),
                            _mm256_loadu_ps(tail.as_ptr().add(8)),
                        )
                    }
                };
                lo = _mm256_max_ps(l, lo);
                hi = _mm256_max_ps(r, hi);
            }
            // Columns `x + 2 l` and `x + 2 l + 1`, in order: each shuffle takes pairs of both
            // registers within 128-bit halves, the permute puts the halves' pairs in order.
            let order =
                |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
            let centre = order(_mm256_shuffle_ps::<0x88>(lo, hi));
            let right = order(_mm256_shuffle_ps::<0xDD>(lo, hi));
            let left = _mm256_blend_ps::<1>(
                _mm256_permutevar8x32_ps(right, rotate),
                _mm256_permutevar8x32_ps(prev, rotate),
            );
            prev = right;
            let v = _mm256_max_ps(left, _mm256_max_ps(centre, right));
            if chunk.len() == 8 {
                // SAFETY: the chunk holds 8 floats.
                unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), v) };
            } else {
                let mut tail = [0f32; 8];
                // SAFETY: `tail` holds 8 floats.
                unsafe { _mm256_storeu_ps(tail.as_mut_ptr(), v) };
                let n = chunk.len();
                chunk.copy_from_slice(&tail[..n]);
            }
        }
    }
}

/// [`pool_3x3s2_avx512`] on codes in quads: output rows `oys` of one plane of the pooled
/// quads `shape` (at `dst`) from a plane of the input's codes `src`, four channels per pixel,
/// map pixel `p` (of `[h][w]`) at `src[4 (p - origin)..]`. A max of codes is the code of the
/// max (quantising is monotone), so these are the codes of the floats' pooling; the padding is
/// -128, below every code. Four channels per 32-bit lane, sixteen pixels per register.
///
/// # Safety
/// AVX-512F and AVX-512BW must be available; the rows the windows of `oys` read lie in `src`
/// (asserted), `dst` is a plane of `shape` (`[ph][pw]` with `shape.pad`, `2 ph <= h + 1`,
/// `2 pw <= w + 1`) whose rows `oys` no one else touches meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pool_codes_3x3s2_avx512(
    src: &[i8],
    origin: usize,
    (h, w): (usize, usize),
    oys: std::ops::Range<usize>,
    dst: *mut i8,
    shape: &super::quads::QuadShape,
) {
    const Q: usize = super::quads::Q;
    let (ph, pw, pad, wp) = (shape.h, shape.w, shape.pad, shape.wp());
    let y_low = (2 * oys.start).saturating_sub(1);
    let y_high = (2 * oys.end).min(h);
    assert!(
        oys.end <= ph
            && 2 * ph <= h + 1
            && 2 * pw <= w + 1
            && y_low * w >= origin
            && (y_high * w - origin) * Q <= src.len(),
        "pool_codes_3x3s2_avx512: extents"
    );
    let (src, dst) = (src.as_ptr().cast::<u32>(), dst.cast::<u32>());
    pool_3x3s2_rows!(
        oys,
        (h, w, pw),
        _mm512_set1_epi8(i8::MIN),
        |a, b| _mm512_max_epi8(a, b),
        |y: usize| src.wrapping_add(y * w - origin),
        |_, oy: usize| dst.wrapping_add((oy + pad) * wp + pad)
    )
}

/// Mean of each channel plane: `[c, hw] -> [c]`.
pub fn global_avg_pool(x: &[f32], c: usize, hw: usize) -> Buf<f32> {
    if hw == 0 {
        return Buf::zeroed(c);
    }
    x.chunks_exact(hw)
        .take(c)
        .map(|p| p.iter().sum::<f32>() / hw as f32)
        .collect()
}

/// `a + b`, optionally followed by ReLU, reusing `a`'s buffer.
pub fn add(mut a: Buf<f32>, b: &[f32], relu: bool) -> Buf<f32> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    if relu {
        a.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    a
}

pub fn relu(mut x: Buf<f32>) -> Buf<f32> {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's definition per output: the max over the window's pixels inside the input.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        h: usize,
        w: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        ho: usize,
        wo: usize,
    ) -> Vec<f32> {
        let mut out = vec![f32::NEG_INFINITY; ho * wo];
        for oy in 0..ho {
            for ox in 0..wo {
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let (iy, ix) = (
                            (oy * stride + ky) as isize - padding as isize,
                            (ox * stride + kx) as isize - padding as isize,
                        );
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            let v = x[iy as usize * w + ix as usize];
                            let o = &mut out[oy * wo + ox];
                            *o = o.max(v);
                        }
                    }
                }
            }
        }
        out
    }

    /// ResNet's 3x3/2 pad 1 and other kernels, strides and paddings on odd and even sizes,
    /// against the definition, on every channel.
    #[test]
    fn max_pool_matches_the_definition() {
        for (h, w) in [(112, 112), (7, 9), (5, 3), (1, 1), (4, 37)] {
            for (kernel, stride, padding) in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (1, 1, 0), (5, 3, 2)]
            {
                if padding * 2 > kernel || h + 2 * padding < kernel || w + 2 * padding < kernel {
                    continue;
                }
                let (ho, wo) = (
                    (h + 2 * padding - kernel) / stride + 1,
                    (w + 2 * padding - kernel) / stride + 1,
                );
                let c = 3;
                let x: Vec<f32> = (0..c * h * w)
                    .map(|i| ((i * 7919) % 101) as f32 * 0.1 - 5.0)
                    .collect();
                let mut got = vec![f32::NAN; c * ho * wo];
                max_pool(&x, c, h, w, kernel, stride, padding, (ho, wo), &mut got);
                for ch in 0..c {
                    let want = reference(
                        &x[ch * h * w..][..h * w],
                        h,
                        w,
                        kernel,
                        stride,
                        padding,
                        ho,
                        wo,
                    );
                    assert_eq!(
                        &got[ch * ho * wo..][..ho * wo],
                        &want[..],
                        "{h}x{w} k{kernel} s{stride} p{padding} channel {ch}"
                    );
                }
            }
        }
    }

    /// Output rows from a band of the input (what `stem_pool` pools) are the definition's:
    /// every band size, on the AVX-512 3x3/2 path and the generic one.
    #[test]
    fn rows_from_a_band_are_the_definition() {
        for (h, w) in [(112, 112), (20, 20), (9, 37)] {
            for (kernel, stride, padding) in [(3, 2, 1), (2, 2, 0), (3, 1, 1)] {
                let (ho, wo) = (
                    (h + 2 * padding - kernel) / stride + 1,
                    (w + 2 * padding - kernel) / stride + 1,
                );
                let x: Vec<f32> = (0..h * w)
                    .map(|i| ((i * 7919) % 101) as f32 * 0.1 - 5.0)
                    .collect();
                let whole = reference(&x, h, w, kernel, stride, padding, ho, wo);
                // One pooling for every band: its buffers are reused, as `stem_pool` does.
                let mut pool = PoolRows::new((h, w), (kernel, stride, padding), (ho, wo));
                for band in [1, 3, 7, ho] {
                    for o0 in (0..ho).step_by(band) {
                        let oys = o0..(o0 + band).min(ho);
                        let y_first = (o0 * stride).saturating_sub(padding);
                        let y_end = ((oys.end - 1) * stride + kernel)
                            .saturating_sub(padding)
                            .min(h);
                        // Only the band's rows, so a read outside them cannot go unnoticed.
                        let plane = &x[y_first * w..y_end * w];
                        let mut got = vec![f32::NAN; oys.len() * wo];
                        pool.rows(plane, y_first, oys.clone(), &mut got);
                        assert_eq!(
                            got,
                            whole[oys.start * wo..oys.end * wo],
                            "{h}x{w} k{kernel} s{stride} p{padding}, rows {oys:?}"
                        );
                    }
                }
            }
        }
    }
}
