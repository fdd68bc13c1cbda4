//! A convolution and the max pooling that alone reads it as one integer step, band by band:
//! each task computes the convolution's rows under a band of pooled rows into a buffer of its
//! own, still in the core's cache, and pools them at once.
//!
//! Why: the RGB stem's output is the network's largest tensor (64 x 112 x 112 floats, 3.2 MB for
//! ResNet18 and ResNet50) and the max pooling its only reader. Written whole, it went out to
//! memory and came back: the stem's GEMM ran at about half its rate with a cold output (0.72 ms
//! on one core, against 0.39-0.45 ms with the output in cache), and the pooling then read the
//! 3.2 MB back. A band's buffer is at most about 450 KB; the one convolution row two bands share
//! is computed by both (7% more of the stem's multiply-adds with ResNet's bands of 7 rows).
//!
//! The numbers are the two steps' own: the same tasks' sums, epilogue and pooling per value.

use rayon::prelude::*;

use super::buf::Buf;
use super::conv_direct::{sums, Ahead, TapInput, Tiles};
use super::disjoint::Shared;
use super::epilogue::finish_row;
use super::gemm::Epilogue;
use super::im2col::Geometry;
use super::int8_gemm::{gemm_task, GatherPanels, Panels, Target, TaskOut, WeightsI8};
use super::kernel::int8::NR as NR8;
use super::kernel::{MR, NR};
use super::pool::PoolRows;
use super::quads::{store_quad_pixels, Quads, Q};

/// Pooled rows per band: about four bands per thread, at most `MAX_BAND` (a band's buffer
/// holds `stride * rows + kernel` convolution rows).
const MAX_BAND: usize = 8;

/// Bytes of weights per chunk of rows in [`conv_pool_f32`]'s bands: with ResNet's stem (147
/// taps), 24 rows, 14 KB, which a pair's `B` (19 KB) leaves room for in L1.
///
/// Why: all 64 rows' weights (38 KB) and a pair's `B` did not fit in L1 together, and the
/// band's kernel calls ran slower than `conv_direct`'s, whose tasks split the rows (`step_times`
/// on ResNet18, the Xeon of stop 52, 2 rounds: the fused stem 1.38-1.42 ms with all rows at
/// once, 1.25-1.28 with chunks of 24, 1.25-1.31 with 12 or 36).
const CHUNK_WEIGHTS: usize = 16 << 10;

/// `out` (`[co][ph][pw]`) = max pooling `pool` (kernel, stride, padding) of epilogue(conv `geo`
/// of `src`, worth `scale` and all `>= 0` when `nonneg`, with `w`): the output of the two steps,
/// without the convolution's. With `codes` (quads of `[co][ph][pw]` and `1 / scale`), the
/// pooled values' codes too, band by band while they are in the core's cache, as the next
/// convolutions would quantise them; `out` then may be empty (no floats kept).
///
/// Why the codes here: the next convolutions read the pooled value as codes, and the residual
/// after them too; written as floats (0.8 MB for ResNet's 64 x 56 x 56) and quantised by the
/// next step, it was a pass over memory each way.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_i8(
    w: &WeightsI8,
    src: &dyn GatherPanels,
    geo: &Geometry,
    (scale, nonneg): (f32, bool),
    epi: Epilogue,
    pool: (usize, usize, usize),
    (ph, pw): (usize, usize),
    out: &mut [f32],
    codes: Option<(&mut Quads, f32)>,
) {
    let (kernel, stride, _) = pool;
    let (co, ho, wo) = (w.rows, geo.ho, geo.wo);
    let keep = !out.is_empty() || codes.is_none();
    assert!(
        (!keep || out.len() == co * ph * pw) && stride >= 1 && kernel >= 1,
        "conv_pool_i8: {} outputs for {co} x {ph} x {pw}",
        out.len()
    );
    let target = codes.map(|(q, scale)| {
        assert!(
            (q.shape.c, q.shape.h, q.shape.w) == (co, ph, pw) && q.data.len() >= q.shape.len(),
            "conv_pool_i8: codes of {:?} for {co} x {ph} x {pw}",
            q.shape
        );
        (Shared(q.data.as_mut_ptr()), q.shape, 1.0 / scale)
    });
    if co * ph * pw == 0 {
        return;
    }
    let band = band_rows(ph);
    let panels = Panels::Gather {
        src,
        geo,
        scale,
        nonneg,
        direct: None,
    };
    #[cfg(target_arch = "x86_64")]
    if let (false, Some(target), (3, 2, 1)) = (keep, target, pool) {
        if pools_codes() {
            return conv_pool_codes(w, &panels, geo, epi, (ph, band), target);
        }
    }
    let n = geo.n();
    let dst = Shared(out.as_mut_ptr());
    (0..ph.div_ceil(band)).into_par_iter().for_each(|b| {
        let oys = b * band..((b + 1) * band).min(ph);
        // The convolution rows under the band's windows, clipped to the output.
        let (y_first, y_end) = conv_rows(oys.clone(), pool, ho);
        let (j0, j1) = (
            y_first * wo / NR8,
            (y_end * wo).div_ceil(NR8).min(n.div_ceil(NR8)),
        );
        let width = (j1 - j0) * NR8;
        let mut buf = BAND.with(|b| std::mem::take(&mut *b.borrow_mut()));
        // Stale contents are fine: the task writes every value it pools.
        buf.resize(co * width, 0.0);
        let to = TaskOut {
            base: Shared(buf.as_mut_ptr()),
            ld: width,
            row0: 0,
            col0: j0 * NR8,
        };
        // SAFETY: `buf` holds every row's columns of panels `j0..j1` and is this task's alone;
        // no codes are written; the residual, if any, is the convolution's `[co][n]`.
        unsafe {
            gemm_task(
                w,
                &panels,
                0..co,
                j0..j1,
                Some(to),
                &epi,
                &Target::None,
                None,
            )
        };
        let first = y_first * wo - j0 * NR8;
        let mut pooling = PoolRows::new((ho, wo), pool, (ph, pw));
        // The band's pooled rows: in `out`, or (no floats kept) a buffer of the band's own.
        let len = oys.len() * pw;
        let mut pooled = POOLED.with(|b| std::mem::take(&mut *b.borrow_mut()));
        if !keep {
            pooled.resize(co * len, 0.0);
        }
        let rows_of = |ch: usize| -> *mut f32 {
            if keep {
                dst.offset(ch * ph * pw + oys.start * pw).0
            } else {
                pooled.as_ptr().wrapping_add(ch * len).cast_mut()
            }
        };
        for ch in 0..co {
            // SAFETY: band `b` alone writes rows `oys` of each channel (`len` values at
            // `rows_of(ch)`, in `out` or in the band's own buffer).
            let rows = unsafe { std::slice::from_raw_parts_mut(rows_of(ch), len) };
            pooling.rows(&buf[ch * width + first..], y_first, oys.clone(), rows);
        }
        if let Some((data, shape, inv)) = target {
            for q in 0..co.div_ceil(Q) {
                let count = Q.min(co - q * Q);
                let mut channels: [&[f32]; Q] = [&[]; Q];
                for (l, ch) in channels.iter_mut().enumerate().take(count) {
                    // SAFETY: the band's pooled rows of channel `4 q + l`, written above.
                    *ch = unsafe { std::slice::from_raw_parts(rows_of(q * Q + l), len) };
                }
                // SAFETY: plane `q` of the codes (asserted above); band `b` alone writes
                // its pixels `oys.start * pw..` (`len` of them).
                unsafe {
                    store_quad_pixels(
                        data.offset(q * shape.plane()).0,
                        &shape,
                        &channels[..count],
                        oys.start * pw,
                        inv,
                    )
                };
            }
        }
        BAND.with(|b| *b.borrow_mut() = buf);
        POOLED.with(|b| *b.borrow_mut() = pooled);
    });
}

/// [`conv_pool_i8`] on the f32 path: `out` (`[m][ph][pw]`) = max pooling `pool` of
/// epilogue(conv `geo` of `x`), the convolution by [`conv_direct`]'s kernel (weights `a`: `m`
/// rows as whole `MR`-row tiles). Each band's sums, epilogue and pooling are those of the two
/// steps apart, value for value (the same K blocks, in the same order).
///
/// Why: apart, ResNet's stem wrote its 3.2 MB output twice (each task's block, then the
/// output's rows) and the pooling read it back from memory.
///
/// [`conv_direct`]: super::conv_direct::conv_direct
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_f32(
    x: &[f32],
    geo: &Geometry,
    a: Tiles,
    m: usize,
    epi: Epilogue,
    pool: (usize, usize, usize),
    (ph, pw): (usize, usize),
    out: &mut [f32],
) {
    let (kernel, stride, _) = pool;
    let (ho, wo, n) = (geo.ho, geo.wo, geo.n());
    assert!(
        out.len() == m * ph * pw && stride >= 1 && kernel >= 1 && n > 0,
        "conv_pool_f32: {} outputs for {m} x {ph} x {pw}",
        out.len()
    );
    assert!(
        a.len() >= m.div_ceil(MR) * MR * geo.k(),
        "conv_pool_f32: weight rows"
    );
    if out.is_empty() {
        return;
    }
    let input = TapInput::new(x, geo);
    let reader = input.reader();
    let wp = input.wp;
    let band = band_rows(ph);
    let dst = Shared(out.as_mut_ptr());
    (0..ph.div_ceil(band)).into_par_iter().for_each(|b| {
        let oys = b * band..((b + 1) * band).min(ph);
        let (y_first, y_end) = conv_rows(oys.clone(), pool, ho);
        // Positions of those rows, from the panel of the first one's.
        let q0 = y_first * wp / NR * NR;
        let width = ((y_end - 1) * wp + wo - q0).div_ceil(2 * NR) * 2 * NR;
        let mut buf = BAND.with(|b| std::mem::take(&mut *b.borrow_mut()));
        // Stale contents are fine: the first K block sets every sum.
        buf.resize(m * width, 0.0);
        let bp = buf.as_mut_ptr();
        // Rows in chunks whose weights stay in L1 beside a pair's `B` ([`CHUNK_WEIGHTS`]).
        let chunk = (CHUNK_WEIGHTS / (4 * geo.k()) / (2 * MR)).max(1) * 2 * MR;
        for r0 in (0..m).step_by(chunk) {
            // SAFETY: row `r0 + gr..` of pair `j` lies in `buf` (`m` rows of `width`, whole
            // pairs), which is this task's alone.
            unsafe {
                sums(
                    &reader,
                    a,
                    (r0, chunk.min(m - r0)),
                    (q0, width),
                    Ahead::Pairs,
                    |gr, j| (bp.wrapping_add((r0 + gr) * width + j), width),
                )
            };
        }
        let mut pooling = PoolRows::new((ho, wo), pool, (ph, pw));
        let pixels = (y_end - y_first) * wo;
        for (o, row) in buf.chunks_exact_mut(width).enumerate() {
            // The rows' real pixels to the front, in place (each moves left).
            for y in y_first..y_end {
                let from = y * wp - q0;
                row.copy_within(from..from + wo, (y - y_first) * wo);
            }
            let res = epi.residual.map(|v| &v[o * n + y_first * wo..][..pixels]);
            finish_row(&mut row[..pixels], &epi, o, res);
            // SAFETY: band `b` alone writes rows `oys` of each channel.
            let rows = unsafe { dst.slice(o * ph * pw + oys.start * pw, oys.len() * pw) };
            pooling.rows(row, y_first, oys.clone(), rows);
        }
        BAND.with(|b| *b.borrow_mut() = buf);
    });
}

/// Whether [`conv_pool_codes`] runs here: AVX-512F kernels and AVX-512BW's byte maxima.
#[cfg(target_arch = "x86_64")]
fn pools_codes() -> bool {
    super::kernel::path() == super::kernel::KernelPath::Avx512F
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// [`conv_pool_i8`] for ResNet's 3x3/2 pooling when only the pooled codes are kept: each band's
/// convolution rows are finished straight into codes, in quads of the band's own (the integer
/// GEMM's codes target, as any integer convolution's), and pooled as codes
/// ([`super::pool::pool_codes_3x3s2_avx512`]: the max of codes is the code of the max) into
/// `target`'s quads (`1 / scale` its `inv`). The same codes as the float bands quantised after
/// their pooling, which `stem_and_pool_as_one_step_change_no_value` compares.
///
/// Why: the float band (64 x 15 x 112 floats, 430 KB) went to L2 and was read back by the
/// pooling; as codes it is a quarter of that, and the pooling does sixteen pixels of four
/// channels per register instead of sixteen values.
#[cfg(target_arch = "x86_64")]
fn conv_pool_codes(
    w: &WeightsI8,
    panels: &Panels,
    geo: &Geometry,
    epi: Epilogue,
    (ph, band): (usize, usize),
    (data, shape, inv): (Shared<i8>, super::quads::QuadShape, f32),
) {
    let (co, ho, wo, n) = (w.rows, geo.ho, geo.wo, geo.n());
    (0..ph.div_ceil(band)).into_par_iter().for_each(|b| {
        let oys = b * band..((b + 1) * band).min(ph);
        let (y_first, y_end) = conv_rows(oys.clone(), (3, 2, 1), ho);
        let (j0, j1) = (
            y_first * wo / NR8,
            (y_end * wo).div_ceil(NR8).min(n.div_ceil(NR8)),
        );
        // The band's convolution pixels as quads of their own, pixel `j0 * 16` first.
        let own = super::quads::QuadShape {
            c: co,
            h: 1,
            w: (j1 - j0) * NR8,
            pad: 0,
        };
        let mut codes = BAND_CODES.with(|b| std::mem::take(&mut *b.borrow_mut()));
        // Stale contents are fine: the blocks write every pixel the pooling reads.
        codes.resize(own.len(), 0);
        let to = Target::Quads(Shared(codes.as_mut_ptr()), own, inv, j0 * NR8);
        // SAFETY: `codes` holds the band's quads and is this task's alone; no floats.
        unsafe { gemm_task(w, panels, 0..co, j0..j1, None, &epi, &to, None) };
        for q in 0..co.div_ceil(Q) {
            let plane = &codes[q * own.plane()..][..own.plane()];
            // SAFETY: `pools_codes` checked the CPU; the band holds the rows under `oys`'
            // windows (`conv_rows`); plane `q` of the output, whose rows `oys` only this band
            // writes.
            unsafe {
                super::pool::pool_codes_3x3s2_avx512(
                    plane,
                    j0 * NR8,
                    (ho, wo),
                    oys.clone(),
                    data.offset(q * shape.plane()).0,
                    &shape,
                )
            };
        }
        BAND_CODES.with(|b| *b.borrow_mut() = codes);
    });
}

/// Pooled rows per band: about four bands per thread, at most [`MAX_BAND`].
fn band_rows(ph: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    ph.div_ceil(4 * threads).clamp(1, MAX_BAND)
}

/// The convolution rows `y_first..y_end` under the windows of pooled rows `oys`, clipped to
/// the convolution's `ho` rows.
fn conv_rows(
    oys: std::ops::Range<usize>,
    (kernel, stride, padding): (usize, usize, usize),
    ho: usize,
) -> (usize, usize) {
    let y_first = (oys.start * stride).saturating_sub(padding).min(ho);
    let y_end = ((oys.end - 1) * stride + kernel)
        .saturating_sub(padding)
        .clamp(y_first, ho);
    (y_first, y_end)
}

thread_local! {
    /// Each pool thread's band buffer, kept between images (a few hundred KB; a fresh one was
    /// page faults, and taking the executor's activation buffers for it left those short).
    static BAND: std::cell::RefCell<Buf<f32>> = const { std::cell::RefCell::new(Buf::new()) };
    /// Each pool thread's pooled rows of a band whose floats are not kept ([`conv_pool_i8`]).
    static POOLED: std::cell::RefCell<Buf<f32>> = const { std::cell::RefCell::new(Buf::new()) };
    /// Each pool thread's band of convolution codes ([`conv_pool_codes`]).
    #[cfg(target_arch = "x86_64")]
    static BAND_CODES: std::cell::RefCell<Buf<i8>> = const { std::cell::RefCell::new(Buf::new()) };
}
