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
    for (d, &v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
        *d = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every phase of rows padded by 0 to 3 at strides 1 to 3 against the padded row's columns.
    #[test]
    fn phases_are_the_padded_columns() {
        let src: Vec<f32> = (1..=7).map(|v| v as f32).collect();
        for stride in 1..=3 {
            for padding in 0..=3 {
                let padded = |c: usize| {
                    c.checked_sub(padding)
                        .and_then(|i| src.get(i))
                        .copied()
                        .unwrap_or(0.0)
                };
                for p in 0..stride {
                    let mut dst = vec![0f32; 6];
                    phase_of_row(&src, stride, padding, p, &mut dst);
                    let want: Vec<f32> = (0..6).map(|j| padded(j * stride + p)).collect();
                    assert_eq!(dst, want, "stride {stride} padding {padding} phase {p}");
                }
            }
        }
    }
}
