//! Model-size metrics of spec §8: average weight bits and GBOPs, computed the way the reference code did
//! so that the numbers are comparable with the paper's table.

/// AvgBits = `sum_l trunc(P_l * bbar_l) / sum_l P_l` over `(P_l, bbar_l)` = (weight parameters, mean bits
/// over the layer's output channels). The per-layer truncation to an integer is the reference code's
/// (`int(numel * mean_bits)`). Unquantized layers should be passed with 32 bits. Returns 0 when there are
/// no parameters.
pub fn avg_bits(layers: &[(u64, f64)]) -> f64 {
    let mut bits = 0.0f64;
    let mut params = 0.0f64;
    for &(p, b) in layers {
        bits += (p as f64 * b).trunc();
        params += p as f64;
    }
    if params > 0.0 {
        bits / params
    } else {
        0.0
    }
}

/// GBOPs = `1e-9 * sum_l BOPs_l * bbar_l / 32` over `(BOPs_l, bbar_l)`, where `BOPs_l` is the layer's FLOPs
/// (2 x MACs, counted once per layer). FP32 layers (32 bits) contribute their full FLOPs.
pub fn gbops(layers: &[(f64, f64)]) -> f64 {
    layers.iter().map(|&(bops, b)| bops * b / 32.0).sum::<f64>() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avg_bits_truncates_per_layer() {
        // 3 * 2.5 = 7.5 -> 7; 10 * 8 = 80; (7 + 80) / 13.
        assert_eq!(avg_bits(&[(3, 2.5), (10, 8.0)]), 87.0 / 13.0);
        // Without truncation this would be exactly 4.5.
        assert_eq!(avg_bits(&[(1, 4.5), (1, 4.5)]), 4.0);
        assert_eq!(avg_bits(&[(100, 32.0)]), 32.0);
        assert_eq!(avg_bits(&[]), 0.0);
        assert_eq!(avg_bits(&[(0, 8.0)]), 0.0);
    }

    #[test]
    fn gbops_scales_flops_by_bits() {
        // ResNet18 FP32: 3.63 GFLOPs stay 3.63 GBOPs; at 8 bits a quarter.
        assert!((gbops(&[(3.63e9, 32.0)]) - 3.63).abs() < 1e-12);
        assert!((gbops(&[(3.0e9, 8.0), (1.0e9, 4.0)]) - 0.875).abs() < 1e-12);
        assert_eq!(gbops(&[]), 0.0);
    }
}
