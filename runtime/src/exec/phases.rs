//! Rows split by column phase, for the strided windows of the depthwise convolution and max
//! pooling: phase `p` of a row padded by `padding` holds its padded columns `p, p + stride, ...`,
//! so the window column `kx` of every output in the row is one contiguous run, phase
//! `kx % stride` from `kx / stride`, and the loop over outputs has no bounds tests or strides.

/// `dst[j] = src[j * stride + p - padding]` for every `j` whose column lies inside `src`; the
/// other entries of `dst` (the padding) are left as they are.
pub(super) fn phase_of_row(src: &[f32], stride: usize, padding: usize, p: usize, dst: &mut [f32]) {
    // The first `j` with `j * stride + p >= padding`, then every `stride`-th input column.
    let first = padding.saturating_sub(p).div_ceil(stride);
    let Some(ix) = (first * stride + p).checked_sub(padding) else {
        return;
    };
    let (src, dst) = (
        src.get(ix..).unwrap_or(&[]),
        dst.get_mut(first..).unwrap_or(&mut []),
    );
    if stride == 1 {
        // One phase, the row itself: a plain copy (the stepped loop below is not one).
        let len = src.len().min(dst.len());
        dst[..len].copy_from_slice(&src[..len]);
        return;
    }
    // Stride 2 (every strided convolution and pooling of the zoo) sixteen at a time where the
    // CPU has AVX-512F: the stepped loop below does not vectorise, and it was 15% of a ResNet50
    // 3x3 stride-2 convolution's f32 time (filling its input's phases).
    let done = if stride == 2 {
        every_second(src, dst)
    } else {
        0
    };
    for (d, &v) in dst[done..].iter_mut().zip(
        src.get(done * stride..)
            .unwrap_or(&[])
            .iter()
            .step_by(stride),
    ) {
        *d = v;
    }
}

/// `dst[j] = src[2 j]` for every `j` on AVX-512F (sixteen at a time, the last ones masked);
/// how many it wrote (0 elsewhere, where the stepped loop does all).
fn every_second(src: &[f32], dst: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if super::kernel::path() == super::kernel::KernelPath::Avx512F {
        let n = dst.len().min(src.len().div_ceil(2));
        // SAFETY: the path is AVX-512F only where the CPU has it; `n` outputs read
        // `src[..2 n - 1]`, inside `src`, and write `dst[..n]`.
        unsafe { every_second_avx512(src.as_ptr(), src.len(), dst.as_mut_ptr(), n) };
        return n;
    }
    let _ = (src, dst);
    0
}

/// # Safety
/// AVX-512F must be available; `src` must hold `len >= 2 n - 1` floats and `dst` `n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn every_second_avx512(src: *const f32, len: usize, dst: *mut f32, n: usize) {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mask = |count: usize| ((1u32 << count.min(16)) - 1) as __mmask16;
    for j in (0..n).step_by(16) {
        // Block `j / 16` reads `src[2 j..]`, at most 32 of them and only those before `len`,
        // and writes `dst[j..]`, at most 16 and only those before `n`.
        let left = len - 2 * j;
        // SAFETY: the caller's guarantees; the masks keep every access inside them.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(mask(left), src.add(2 * j));
            let hi = _mm512_maskz_loadu_ps(mask(left.saturating_sub(16)), src.add(2 * j + 16));
            let v = _mm512_permutex2var_ps(lo, even, hi);
            _mm512_mask_storeu_ps(dst.add(j), mask(n - j), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every phase of rows padded by 0 to 3 at strides 1 to 3 against the padded row's columns,
    /// rows short and long enough for whole registers (and their ragged ends) at stride 2.
    #[test]
    fn phases_are_the_padded_columns() {
        for len in [7, 40, 77] {
            phases_of(&(1..=len).map(|v| v as f32).collect::<Vec<_>>());
        }
    }

    fn phases_of(src: &[f32]) {
        let out = src.len() / 2 + 3;
        for stride in 1..=3 {
            for padding in 0..=3 {
                let padded = |c: usize| {
                    c.checked_sub(padding)
                        .and_then(|i| src.get(i))
                        .copied()
                        .unwrap_or(0.0)
                };
                for p in 0..stride {
                    let mut dst = vec![0f32; out];
                    phase_of_row(src, stride, padding, p, &mut dst);
                    let want: Vec<f32> = (0..out).map(|j| padded(j * stride + p)).collect();
                    assert_eq!(dst, want, "stride {stride} padding {padding} phase {p}");
                }
            }
        }
    }
}
