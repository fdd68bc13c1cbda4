//! The epilogue's pass over a finished row of outputs: `v * scale + bias (+ residual)`, then
//! ReLU or GELU. Every GEMM and convolution ends with it, float and integer paths alike.
//!
//! Why its own dispatch: the crate is compiled for the baseline of each architecture, so on
//! x86-64 the plain loop ran four lanes at a time (SSE2), and on ResNet50's integer path the
//! epilogue's passes were about a quarter of the time (its 1x1 convolutions do 64–256
//! multiply-adds per output, so the pass over the outputs weighs as much as the GEMM). The same
//! loop compiled for AVX-512F (sixteen lanes) or AVX2 (eight) follows the f32 kernel's path
//! (`kernel::path`, `FQ_MAX_ISA` included). Multiplies and adds stay separate
//! operations (Rust never contracts them into FMA), so every path gives the same floats.

use super::blocked::LANES;
use super::gemm::Epilogue;
#[cfg(target_arch = "x86_64")]
use super::kernel::{path, KernelPath};

/// Finishes output row `o` in place (`residual`, when given, as long as `row`).
#[inline]
pub fn finish_row(row: &mut [f32], epi: &Epilogue, o: usize, residual: Option<&[f32]>) {
    let s = epi.scale.map_or(1.0, |s| s[o]);
    let b = epi.bias.map_or(0.0, |b| b[o]);
    // Elsewhere the baseline already has the architecture's vectors (NEON, SIMD128 when built
    // with it): the plain loop.
    #[cfg(not(target_arch = "x86_64"))]
    affine(row, s, b, residual, epi.relu);
    #[cfg(target_arch = "x86_64")]
    match path() {
        // SAFETY: `path` only returns a path this CPU has.
        KernelPath::Avx512F => unsafe { affine_avx512(row, s, b, residual, epi.relu) },
        // SAFETY: as above.
        KernelPath::Avx2Fma => unsafe { affine_avx2(row, s, b, residual, epi.relu) },
        _ => affine(row, s, b, residual, epi.relu),
    }
    if epi.gelu {
        super::vmath::gelu(row);
    }
}

/// Finishes the sums of `LANES` channels from `c0` at each pixel into a blocked value's plane
/// (`super::blocked`): `dst[p * LANES + l]` from `src[p * ld + l]`, with `residual` (when
/// given) laid out as `dst`. The same floats as [`finish_row`] on each channel's row (the
/// same operations per value, in the same order); no GELU (the executor blocks no value a
/// GELU epilogue writes).
#[inline]
pub fn finish_pixels(
    dst: &mut [f32],
    src: Option<(&[f32], usize)>,
    epi: &Epilogue,
    c0: usize,
    residual: Option<&[f32]>,
) {
    assert!(!epi.gelu, "epilogue: no GELU into a blocked value");
    let n = dst.len() / LANES;
    assert!(
        dst.len() == n * LANES
            && src.is_none_or(|(src, ld)| {
                ld >= LANES && (n == 0 || src.len() >= (n - 1) * ld + LANES)
            })
            && residual.is_none_or(|r| r.len() == dst.len()),
        "epilogue: {} blocked outputs",
        dst.len(),
    );
    let mut s = [1.0f32; LANES];
    let mut b = [0.0f32; LANES];
    if let Some(scale) = epi.scale {
        s.copy_from_slice(&scale[c0..c0 + LANES]);
    }
    if let Some(bias) = epi.bias {
        b.copy_from_slice(&bias[c0..c0 + LANES]);
    }
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: `path` only returns a path this CPU has.
        return unsafe { pixels_avx512(dst, src, (&s, &b), residual, epi.relu) };
    }
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        // SAFETY: `path` only returns a path this CPU has.
        return unsafe { pixels_avx2(dst, src, (&s, &b), residual, epi.relu) };
    }
    pixels(dst, src, (&s, &b), residual, epi.relu);
}

/// [`finish_pixels`]' loop: per pixel, the [`affine`] map of its `LANES` sums.
#[inline(always)]
fn pixels(
    dst: &mut [f32],
    src: Option<(&[f32], usize)>,
    (s, b): (&[f32; LANES], &[f32; LANES]),
    residual: Option<&[f32]>,
    relu: bool,
) {
    for (p, out) in dst.chunks_exact_mut(LANES).enumerate() {
        let out: &mut [f32; LANES] = out.try_into().expect("a pixel's outputs");
        let sums: [f32; LANES] = match src {
            Some((src, ld)) => src[p * ld..p * ld + LANES]
                .try_into()
                .expect("a pixel's sums"),
            None => *out,
        };
        match residual {
            Some(res) => {
                let r: &[f32; LANES] = res[p * LANES..(p + 1) * LANES]
                    .try_into()
                    .expect("a pixel's residuals");
                for l in 0..LANES {
                    let v = sums[l] * s[l] + b[l] + r[l];
                    out[l] = if relu { v.max(0.0) } else { v };
                }
            }
            None => {
                for l in 0..LANES {
                    let v = sums[l] * s[l] + b[l];
                    out[l] = if relu { v.max(0.0) } else { v };
                }
            }
        }
    }
}

/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pixels_avx512(
    dst: &mut [f32],
    src: Option<(&[f32], usize)>,
    sb: (&[f32; LANES], &[f32; LANES]),
    residual: Option<&[f32]>,
    relu: bool,
) {
    pixels(dst, src, sb, residual, relu);
}

/// # Safety
/// AVX2 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pixels_avx2(
    dst: &mut [f32],
    src: Option<(&[f32], usize)>,
    sb: (&[f32; LANES], &[f32; LANES]),
    residual: Option<&[f32]>,
    relu: bool,
) {
    pixels(dst, src, sb, residual, relu);
}

/// `row[i] = max?(row[i] * s + b (+ residual[i]))`: the loop every path compiles, one pass per
/// case (a separate ReLU pass read and wrote every row again: on ResNet50's integer path the
/// epilogue is a tenth of the time).
#[inline(always)]
fn affine(row: &mut [f32], s: f32, b: f32, residual: Option<&[f32]>, relu: bool) {
    match (residual, relu) {
        (Some(res), true) => {
            assert_eq!(res.len(), row.len(), "epilogue: residual length");
            row.iter_mut()
                .zip(res)
                .for_each(|(v, r)| *v = (*v * s + b + r).max(0.0));
        }
        (Some(res), false) => {
            assert_eq!(res.len(), row.len(), "epilogue: residual length");
            row.iter_mut()
                .zip(res)
                .for_each(|(v, r)| *v = *v * s + b + r);
        }
        (None, true) => row.iter_mut().for_each(|v| *v = (*v * s + b).max(0.0)),
        (None, false) => row.iter_mut().for_each(|v| *v = *v * s + b),
    }
}

/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn affine_avx512(row: &mut [f32], s: f32, b: f32, residual: Option<&[f32]>, relu: bool) {
    affine(row, s, b, residual, relu);
}

/// # Safety
/// AVX2 must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn affine_avx2(row: &mut [f32], s: f32, b: f32, residual: Option<&[f32]>, relu: bool) {
    affine(row, s, b, residual, relu);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched pass equals the definition bit for bit (lengths around every vector
    /// width, with and without residual and ReLU, on values whose products round and a NaN).
    #[test]
    fn every_path_gives_the_baseline_floats() {
        let base: Vec<f32> = (0..70)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.731 + 1e-7 * i as f32)
            .collect();
        let res: Vec<f32> = (0..70).map(|i| (i as f32 - 33.0) * 0.173).collect();
        let (scale, bias) = (vec![0.37f32, -1.3], vec![0.11f32, 2.5]);
        for n in [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 70] {
            for relu in [false, true] {
                for with_res in [false, true] {
                    for o in 0..2 {
                        let mut x = base[..n].to_vec();
                        if n > 2 {
                            x[2] = f32::NAN;
                        }
                        let residual = with_res.then(|| &res[..n]);
                        // The definition, element by element: the affine map, then ReLU.
                        let mut want = x.clone();
                        for (i, v) in want.iter_mut().enumerate() {
                            *v = *v * scale[o] + bias[o];
                            if let Some(r) = residual {
                                *v += r[i];
                            }
                            if relu {
                                *v = v.max(0.0);
                            }
                        }
                        let epi = Epilogue {
                            scale: Some(&scale),
                            bias: Some(&bias),
                            residual: None,
                            relu,
                            gelu: false,
                        };
                        finish_row(&mut x, &epi, o, residual);
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&x),
                            bits(&want),
                            "n {n}, relu {relu}, residual {with_res}"
                        );
                    }
                }
            }
        }
    }
}
