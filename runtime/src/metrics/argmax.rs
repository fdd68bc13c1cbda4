//! Predictions from logits, as `torch.argmax(logits, dim=1)`.

/// The index of the first maximum of each row of a row-major `[n, num_classes]` matrix. A NaN counts as
/// the maximum (as in torch); a trailing partial row is ignored; `num_classes == 0` gives no rows.
pub fn argmax_rows(logits: &[f32], num_classes: usize) -> Vec<usize> {
    if num_classes == 0 {
        return Vec::new();
    }
    logits
        .chunks_exact(num_classes)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate().skip(1) {
                let b = row[best];
                if !b.is_nan() && (v.is_nan() || v > b) {
                    best = i;
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_maximum_per_row() {
        let logits = [0.1, 0.9, 0.9, -1.0, -3.0, -2.0, 5.0, f32::NAN, 7.0];
        assert_eq!(argmax_rows(&logits, 3), vec![1, 0, 1]);
        assert_eq!(argmax_rows(&[1.0, 2.0, 3.0], 0), Vec::<usize>::new());
        assert_eq!(argmax_rows(&[1.0, 2.0, 3.0], 2), vec![1]);
    }
}
