//! A bounds-checked wrapper over the `gemm` crate (the kernel candle's own matmul uses), so the
//! convolution ops can multiply strided views and accumulate into an output in place.

/// A strided view of a `rows × cols` matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with row stride `ld`.
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with row stride `ld`.
    pub fn transposed(data: &'a [f32], ld: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: ld,
        }
    }

    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * self.rs + (cols - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "gemm: {what} view {rows}x{cols} (rs {}, cs {}) exceeds its {} elements",
                self.rs,
                self.cs,
                self.data.len()
            );
        }
    }
}

/// `dst[m×n] (+)= a[m×k] · b[k×n]`, `dst` row-major with row stride `ld`; `accumulate` adds to
/// the existing values instead of overwriting them. `threads > 1` lets gemm split the work on
/// the current rayon pool (for calls that are not already inside a parallel loop).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ld: usize,
    accumulate: bool,
    a: View,
    b: View,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * ld..r * ld + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        n <= ld && (m - 1) * ld + n <= dst.len(),
        "gemm: destination {m}x{n} (ld {ld}) exceeds its {} elements",
        dst.len()
    );
    a.check(m, k, "lhs");
    b.check(k, n, "rhs");
    let par = if threads > 1 {
        ::gemm::Parallelism::Rayon(threads)
    } else {
        ::gemm::Parallelism::None
    };
    // SAFETY: every index the kernel touches is within the slices (checked above), `dst` is
    // borrowed mutably and so aliases neither input.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_views_and_accumulation() {
        // a = [[1,2,3],[4,5,6]] (2x3), b = a^T (3x2) via a transposed view of the same data.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut dst = [1.0, 1.0, 1.0, 1.0];
        gemm(
            2,
            2,
            3,
            &mut dst,
            2,
            false,
            View::rows(&a, 3),
            View::transposed(&a, 3),
            1,
        );
        assert_eq!(dst, [14.0, 32.0, 32.0, 77.0]);
        gemm(
            2,
            2,
            3,
            &mut dst,
            2,
            true,
            View::rows(&a, 3),
            View::transposed(&a, 3),
            1,
        );
        assert_eq!(dst, [28.0, 64.0, 64.0, 154.0]);
    }
}
