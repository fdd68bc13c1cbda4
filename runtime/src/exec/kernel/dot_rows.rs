//! Dot products of many rows with one vector, `sums[r] = a[r * lda..][..x.len()] . x`: how the
//! packed GEMM sums a last panel of a few columns on the AVX2 path (`exec::gemm::THIN`), where
//! the micro-kernel would compute all `NR` columns of the panel for one or two real ones.
//!
//! Four rows at a time, each in two accumulators (eight FMA chains, enough to cover the FMA's
//! latency), the vector loaded once for the four. `gemv`'s plain-Rust dot products (one
//! eight-lane chain a row, no FMA) took 0.2-0.25 ms a column of 512 x 4608 on two threads where
//! these take 0.13-0.17 (`FQ_MAX_ISA=avx2`, stop 61).
//! The sums round differently from the tile's (another order), as `gemv`'s do.

/// `sums[r] = a[r * lda..r * lda + x.len()] . x` for every `r < sums.len()`, on the kernel path
/// of this CPU.
pub fn dot_rows((a, lda): (&[f32], usize), x: &[f32], sums: &mut [f32]) {
    let k = x.len();
    if let Some(last) = sums.len().checked_sub(1) {
        assert!(a.len() >= last * lda + k, "dot_rows: rows");
    }
    #[cfg(target_arch = "x86_64")]
    {
        use super::KernelPath;
        let a = a.as_ptr();
        match super::path() {
            // SAFETY: `path` only returns a path this CPU has; the rows were checked above.
            KernelPath::Avx512F => return unsafe { x86::dot_rows_avx512(a, lda, x, sums) },
            // SAFETY: as above.
            KernelPath::Avx2Fma => return unsafe { x86::dot_rows_avx2(a, lda, x, sums) },
            _ => {}
        }
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

    /// Rows `r0..r0 + R` dotted with `x`: `2 R` accumulators of `LANES` floats, the remainder
    /// of `k` past whole pairs of vectors added in scalar arithmetic.
    macro_rules! rows {
        ($R:expr, $a:ident, $lda:ident, $x:ident, $r0:expr, $lanes:expr, $zero:ident,
         $load:ident, $fmadd:ident, $add:ident, $hsum:expr) => {{
            let k = $x.len();
            let xp = $x.as_ptr();
            let row = |r: usize| $a.add(($r0 + r) * $lda);
            let mut acc = [[$zero(); 2]; $R];
            let mut i = 0;
            while i + 2 * $lanes <= k {
                let x0 = $load(xp.add(i));
                let x1 = $load(xp.add(i + $lanes));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let p = row(r).add(i);
                    acc[0] = $fmadd($load(p), x0, acc[0]);
                    acc[1] = $fmadd($load(p.add($lanes)), x1, acc[1]);
                }
                i += 2 * $lanes;
            }
            let mut out = [0f32; $R];
            for (r, (o, acc)) in out.iter_mut().zip(&acc).enumerate() {
                let mut s: f32 = $hsum($add(acc[0], acc[1]));
                for j in i..k {
                    s += *row(r).add(j) * $x[j];
                }
                *o = s;
            }
            out
        }};
    }

    /// Every row of `sums` by [`rows!`], four at a time, then one at a time; `$ops` are the
    /// vector width's lanes and operations, as in `rows!`.
    macro_rules! all_rows {
        ($a:ident, $lda:ident, $x:ident, $sums:ident, $($ops:tt)*) => {{
            let mut r = 0;
            while r + 4 <= $sums.len() {
                let s = rows! { 4, $a, $lda, $x, r, $($ops)* };
                $sums[r..r + 4].copy_from_slice(&s);
                r += 4;
            }
            while r < $sums.len() {
                $sums[r] = rows! { 1, $a, $lda, $x, r, $($ops)* }[0];
                r += 1;
            }
        }};
    }

    /// # Safety
    /// AVX-512F must be available; `a` must hold `(sums.len() - 1) * lda + x.len()` floats.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_rows_avx512(a: *const f32, lda: usize, x: &[f32], sums: &mut [f32]) {
        let hsum = |v: __m512| _mm512_reduce_add_ps(v);
        // SAFETY: every row read is `r < sums.len()`, `x.len()` floats from `a + r * lda`.
        unsafe {
            all_rows! {
                a, lda, x, sums, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps,
                _mm512_add_ps, hsum
            }
        }
    }

    /// The eight lanes of `v` added.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum256(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let h = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)))
    }

    /// # Safety
    /// AVX2 and FMA must be available; `a` must hold `(sums.len() - 1) * lda + x.len()` floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_rows_avx2(a: *const f32, lda: usize, x: &[f32], sums: &mut [f32]) {
        // SAFETY: every row read is `r < sums.len()`, `x.len()` floats from `a + r * lda`.
        unsafe {
            all_rows! {
                a, lda, x, sums, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps,
                _mm256_add_ps, hsum256
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row's sum agrees with the definition within rounding: odd row counts (the fours
    /// and the rest), `k` past whole pairs of vectors, rows `lda` apart with gaps between.
    #[test]
    fn sums_are_the_dot_products() {
        for (rows, k) in [(1, 3), (7, 45), (9, 256), (4, 32)] {
            let lda = k + 5;
            let a: Vec<f32> = (0..rows * lda)
                .map(|i| ((i * 7) % 13) as f32 * 0.25 - 1.5)
                .collect();
            let x: Vec<f32> = (0..k).map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0).collect();
            let mut sums = vec![f32::NAN; rows];
            dot_rows((&a, lda), &x, &mut sums);
            for (r, s) in sums.iter().enumerate() {
                let want: f64 = (0..k).map(|i| a[r * lda + i] as f64 * x[i] as f64).sum();
                assert!(
                    (*s as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{rows}x{k} row {r}: {s} vs {want}"
                );
            }
        }
    }
}
