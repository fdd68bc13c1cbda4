//! Dot products of many rows with one vector, `sums[r] = a[r * lda..][..x.len()] . x`: how the
//! packed GEMM sums a last panel of a few columns on the AVX2 path (`exec::gemm::THIN`), where
//! the micro-kernel would compute all `NR` columns of the panel for one or two real ones.
//!
//! Four rows at a time, each in two accumulators (eight FMA chains, enough to cover the FMA's
//! latency), the vector loaded once for the four. `gemv`'s plain-Rust dot products (one
//! eight-lane chain a row, no FMA) took 0.2-0.25 ms a column of 512 x 4608 on two threads where
//! these take 0.13-0.17 (`FQ_MAX_ISA=avx2`, stop 61).
//! The sums round differently from the tile's (another order), as `gemv`'s do.
//!
//! An AVX2+FMA kernel only: the GEMM takes this route on that path alone (`gemm::thin_pays`).

use super::{path, KernelPath};

/// `sums[r] = a[r * lda..r * lda + x.len()] . x` for every `r < sums.len()`, on the kernel path
/// of this CPU.
pub fn dot_rows(a: (&[f32], usize), x: &[f32], sums: &mut [f32]) {
    dot_rows_on(path(), a, x, sums)
}

/// [`dot_rows`] on a given path (the AVX2+FMA kernel on that path, plain Rust on the others);
/// panics when the CPU lacks it, so the tests can run every path this CPU has.
pub fn dot_rows_on(path: KernelPath, (a, lda): (&[f32], usize), x: &[f32], sums: &mut [f32]) {
    let k = x.len();
    if let Some(last) = sums.len().checked_sub(1) {
        assert!(a.len() >= last * lda + k, "dot_rows: rows");
    }
    assert!(
        path.available(),
        "f32 path {} not available on this CPU",
        path.name()
    );
    #[cfg(target_arch = "x86_64")]
    if path == KernelPath::Avx2Fma {
        // SAFETY: the CPU has the path (checked above) and the rows were checked above.
        return unsafe { x86::dot_rows_avx2(a.as_ptr(), lda, x, sums) };
    }
    for (r, s) in sums.iter_mut().enumerate() {
        *s = a[r * lda..r * lda + k]
            .iter()
            .zip(x)
            .map(|(p, q)| p * q)
            .sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Rows `r0..r0 + R` dotted with `x`: `2 R` accumulators of eight floats, the remainder of
    /// `k` past whole pairs of vectors added in scalar arithmetic.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; rows `r0..r0 + R` must hold `x.len()` floats each at
    /// `a + r * lda`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<const R: usize>(a: *const f32, lda: usize, x: &[f32], r0: usize) -> [f32; R] {
        const LANES: usize = 8;
        let k = x.len();
        let xp = x.as_ptr();
        // SAFETY: the caller's guarantees: every read is inside a row or `x`.
        unsafe {
            let row = |r: usize| a.add((r0 + r) * lda);
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            let mut i = 0;
            while i + 2 * LANES <= k {
                let x0 = _mm256_loadu_ps(xp.add(i));
                let x1 = _mm256_loadu_ps(xp.add(i + LANES));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let p = row(r).add(i);
                    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(p), x0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(LANES)), x1, acc[1]);
                }
                i += 2 * LANES;
            }
            let mut out = [0f32; R];
            for (r, (o, acc)) in out.iter_mut().zip(&acc).enumerate() {
                let mut s = hsum(_mm256_add_ps(acc[0], acc[1]));
                for (j, &v) in x.iter().enumerate().skip(i) {
                    s += *row(r).add(j) * v;
                }
                *o = s;
            }
            out
        }
    }

    /// The eight lanes of `v` added.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let h = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)))
    }

    /// Every row of `sums`, four at a time, then one at a time ([`rows`]).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a` must hold `(sums.len() - 1) * lda + x.len()` floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows_avx2(a: *const f32, lda: usize, x: &[f32], sums: &mut [f32]) {
        let mut r = 0;
        // SAFETY: every row read is `r < sums.len()`, `x.len()` floats from `a + r * lda`.
        unsafe {
            while r + 4 <= sums.len() {
                sums[r..r + 4].copy_from_slice(&rows::<4>(a, lda, x, r));
                r += 4;
            }
            while r < sums.len() {
                sums[r] = rows::<1>(a, lda, x, r)[0];
                r += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row's sum agrees with the definition within rounding, on every path this CPU has
    /// (the AVX2 kernel included where the detected path is AVX-512F): odd row counts (the
    /// fours and the rest), `k` past whole pairs of vectors, rows `lda` apart with gaps between.
    #[test]
    fn sums_are_the_dot_products() {
        let paths = [KernelPath::Avx2Fma, KernelPath::Portable];
        for p in paths.into_iter().filter(|p| p.available()) {
            for (rows, k) in [(1, 3), (7, 45), (9, 256), (4, 32)] {
                let lda = k + 5;
                let a: Vec<f32> = (0..rows * lda)
                    .map(|i| ((i * 7) % 13) as f32 * 0.25 - 1.5)
                    .collect();
                let x: Vec<f32> = (0..k).map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0).collect();
                let mut sums = vec![f32::NAN; rows];
                dot_rows_on(p, (&a, lda), &x, &mut sums);
                for (r, s) in sums.iter().enumerate() {
                    let want: f64 = (0..k).map(|i| a[r * lda + i] as f64 * x[i] as f64).sum();
                    assert!(
                        (*s as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{}: {rows}x{k} row {r}: {s} vs {want}",
                        p.name()
                    );
                }
            }
        }
    }
}
