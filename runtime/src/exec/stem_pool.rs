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

use super::disjoint::Shared;
use super::gemm::Epilogue;
use super::im2col::Geometry;
use super::int8_gemm::{gemm_task, GatherPanels, Panels, Target, TaskOut, WeightsI8};
use super::kernel::int8::NR;
use super::pool::PoolRows;

/// Pooled rows per band: about four bands per thread, at most `MAX_BAND` (a band's buffer
/// holds `stride * rows + kernel` convolution rows).
const MAX_BAND: usize = 8;

/// `out` (`[co][ph][pw]`) = max pooling `pool` (kernel, stride, padding) of epilogue(conv `geo`
/// of `src`, worth `scale` and all `>= 0` when `nonneg`, with `w`): the output of the two steps,
/// without the convolution's.
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
) {
    let (kernel, stride, padding) = pool;
    let (co, ho, wo) = (w.rows, geo.ho, geo.wo);
    assert!(
        out.len() == co * ph * pw && stride >= 1 && kernel >= 1,
        "conv_pool_i8: {} outputs for {co} x {ph} x {pw}",
        out.len()
    );
    if out.is_empty() {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let band = ph.div_ceil(4 * threads).clamp(1, MAX_BAND);
    let panels = Panels::Gather {
        src,
        geo,
        scale,
        nonneg,
        direct: None,
    };
    let n = geo.n();
    let dst = Shared(out.as_mut_ptr());
    (0..ph.div_ceil(band)).into_par_iter().for_each(|b| {
        let oys = b * band..((b + 1) * band).min(ph);
        // The convolution rows under the band's windows, clipped to the output.
        let y_first = (oys.start * stride).saturating_sub(padding).min(ho);
        let y_end = ((oys.end - 1) * stride + kernel)
            .saturating_sub(padding)
            .clamp(y_first, ho);
        let (j0, j1) = (
            y_first * wo / NR,
            (y_end * wo).div_ceil(NR).min(n.div_ceil(NR)),
        );
        let width = (j1 - j0) * NR;
        let mut buf = BAND.with(|b| std::mem::take(&mut *b.borrow_mut()));
        // Stale contents are fine: the task writes every value it pools.
        buf.resize(co * width, 0.0);
        let to = TaskOut {
            base: Shared(buf.as_mut_ptr()),
            ld: width,
            row0: 0,
            col0: j0 * NR,
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
        let first = y_first * wo - j0 * NR;
        let mut pooling = PoolRows::new((ho, wo), pool, (ph, pw));
        for ch in 0..co {
            // SAFETY: band `b` alone writes rows `oys` of each channel.
            let rows = unsafe { dst.slice(ch * ph * pw + oys.start * pw, oys.len() * pw) };
            pooling.rows(&buf[ch * width + first..], y_first, oys.clone(), rows);
        }
        BAND.with(|b| *b.borrow_mut() = buf);
    });
}

thread_local! {
    /// Each pool thread's band buffer, kept between images (a few hundred KB; a fresh one was
    /// page faults, and taking the executor's activation buffers for it left those short).
    static BAND: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
