//! Sliding-window geometry (convolution and pooling), the one place the output-size formula
//! lives: the graph's shape inference, the runtime's kernels and the compressor's candle ops all
//! call it, so a model cannot be one pixel wider in training than at inference.

/// `size + 2 * padding`: the length of an axis after zero-padding both ends; `None` on overflow.
pub fn padded(size: usize, padding: usize) -> Option<usize> {
    size.checked_add(padding.checked_mul(2)?)
}

/// Output length along one axis of a `kernel`-wide window moved by `stride` over `size` elements
/// zero-padded by `padding` at both ends (PyTorch's `floor((size + 2p - k) / s) + 1`, dilation 1).
///
/// `None` when there is no valid output: a zero kernel or stride, a window wider than the padded
/// input, or an overflow (the runtime feeds this sizes read from untrusted files).
pub fn window_output(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    if kernel == 0 || stride == 0 {
        return None;
    }
    Some(padded(size, padding)?.checked_sub(kernel)? / stride + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pytorch_on_resnet_layers_and_refuses_what_does_not_fit() {
        // ResNet's stem (7x7 s2 p3), max pool (3x3 s2 p1) and a 3x3 s1 p1 conv at 224 px.
        assert_eq!(window_output(224, 7, 2, 3), Some(112));
        assert_eq!(window_output(112, 3, 2, 1), Some(56));
        assert_eq!(window_output(56, 3, 1, 1), Some(56));
        // Floor division: 7 + 2 - 3 = 6, 6 / 4 = 1, + 1.
        assert_eq!(window_output(7, 3, 4, 1), Some(2));
        assert_eq!(window_output(2, 5, 1, 1), None);
        assert_eq!(window_output(2, 0, 1, 0), None);
        assert_eq!(window_output(2, 1, 0, 0), None);
        assert_eq!(window_output(usize::MAX, 1, 1, 1), None);
        assert_eq!(padded(5, usize::MAX / 2 + 1), None);
        assert_eq!(padded(5, 2), Some(9));
    }
}
