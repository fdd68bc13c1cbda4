//! The im2col convolution op against candle's own conv2d: values and the gradients of both the
//! input and the weight, on random shapes covering strides 1/2, padding 0/1/3, kernels 1/3/7,
//! odd sizes, and batches split into several parallel chunks.
//!
//! Tolerance: max |ours - candle| ≤ 1e-4 · max(1, max |candle|) per tensor. Both sum the same
//! products in f32 in a different order; at these sizes (≤ 392 terms) the rounding differences
//! stay near 1e-6 relative.

use candle_core::{Device, Tensor, Var};
use fq_compress::nn::ops::conv::conv2d;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

/// `(value, d/dx, d/dw)` of `sum(conv(x, w) · r)`.
fn run(
    conv: impl Fn(&Tensor, &Tensor) -> Tensor,
    x: &Tensor,
    w: &Tensor,
    r: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (xv, wv) = (Var::from_tensor(x).unwrap(), Var::from_tensor(w).unwrap());
    let y = conv(xv.as_tensor(), wv.as_tensor());
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    (
        y,
        grads.get(xv.as_tensor()).unwrap().clone(),
        grads.get(wv.as_tensor()).unwrap().clone(),
    )
}

#[test]
fn values_and_gradients_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // (batch, in channels, height, width, out channels, kernel, stride, padding)
    let cases = [
        (2, 3, 11, 13, 5, 3, 1, 1),
        (3, 4, 9, 9, 6, 3, 2, 1),
        (2, 3, 17, 15, 8, 7, 2, 3),
        (4, 6, 7, 5, 3, 1, 1, 0),
        (3, 5, 9, 11, 7, 1, 2, 0),
        (5, 8, 4, 4, 16, 3, 1, 1),
        (7, 4, 3, 3, 5, 1, 1, 0),
        (1, 2, 6, 6, 3, 3, 2, 0),
        (2, 3, 8, 8, 4, 3, 1, 0),
        (3, 2, 10, 7, 3, 7, 1, 3),
        (9, 16, 2, 2, 8, 3, 2, 1),
        // Large enough for the runtime's kernels (`ops::conv_direct`, over 4 million
        // multiply-adds per image): stride 1 (forward and input gradient), stride 2 with the
        // 7x7 stem's padding (forward), stride 1 without padding.
        (2, 16, 32, 30, 32, 3, 1, 1),
        (2, 3, 64, 62, 64, 7, 2, 3),
        (1, 8, 40, 40, 64, 3, 1, 0),
    ];
    for (b, c, h, wd, o, k, s, p) in cases {
        let x = random(&mut rng, &[b, c, h, wd]);
        let w = random(&mut rng, &[o, c, k, k]);
        let y_ref = x.conv2d(&w, p, s, 1, 1).unwrap();
        let r = random(&mut rng, y_ref.dims());
        let theirs = run(|x, w| x.conv2d(w, p, s, 1, 1).unwrap(), &x, &w, &r);
        // Training keeps the forward's columns for the weight gradient; without a backward to
        // follow, the weight gradient builds them again.
        for keep in [true, false] {
            let ours = run(|x, w| conv2d(x, w, p, s, 1, keep).unwrap(), &x, &w, &r);
            let case = format!("b{b} c{c} {h}x{wd} o{o} k{k} s{s} p{p} keep {keep}");
            for (what, a, e) in [
                ("value", &ours.0, &theirs.0),
                ("input gradient", &ours.1, &theirs.1),
                ("weight gradient", &ours.2, &theirs.2),
            ] {
                let d = max_rel_diff(a, e);
                assert!(d <= 1e-4, "{case}: {what} differs by {d} (relative)");
            }
        }
    }
}

/// The large cases above do go through the runtime's kernels where the CPU has them (AVX2 or
/// AVX-512F), so the comparison with candle covers that path; small layers keep im2col.
#[test]
fn large_layers_take_the_runtime_kernels() {
    use fq_compress::nn::ops::conv_direct;
    use fq_compress::nn::ops::im2col::ConvGeom;
    use fq_runtime::exec::kernel::{path, KernelPath};
    let has = matches!(path(), KernelPath::Avx512F | KernelPath::Avx2Fma);
    let large = ConvGeom::new((16, 32, 30), (3, 3), 1, 1).unwrap();
    let (x, w) = (vec![0.5f32; 16 * 32 * 30], vec![0.25f32; 32 * 16 * 9]);
    let gy = vec![1.0f32; 32 * 32 * 30];
    assert_eq!(conv_direct::forward(&large, 1, &x, &w, 32).is_some(), has);
    assert_eq!(
        conv_direct::backward_data(&large, 1, &gy, &w, 32).is_some(),
        has
    );
    let small = ConvGeom::new((16, 16, 16), (3, 3), 1, 1).unwrap();
    assert!(conv_direct::forward(&small, 1, &x[..16 * 256], &w[..16 * 16 * 9], 16).is_none());
    let strided = ConvGeom::new((16, 64, 60), (3, 3), 2, 1).unwrap();
    let xs = vec![0.5f32; 16 * 64 * 60];
    // Its output is the large case's size: the same `dy`.
    assert!(conv_direct::backward_data(&strided, 1, &gy, &w, 32).is_none());
    assert_eq!(
        conv_direct::forward(&strided, 1, &xs, &w, 32).is_some(),
        has
    );
    // The embedded model's stem (3x64x64, 16 filters, 7x7 stride 2) and first stage do not keep
    // their columns for the weight gradient, and stay on im2col + gemm (the sums the demo's
    // results were trained with); its last stage keeps its columns (under 2 MB for a batch of
    // 32).
    use fq_compress::nn::ops::conv::keeps_columns;
    let stem = ConvGeom::new((3, 64, 64), (7, 7), 2, 3).unwrap();
    assert!(!keeps_columns(&stem, 32));
    let (xs, ws) = (vec![0.5f32; 3 * 64 * 64], vec![0.25f32; 16 * 3 * 49]);
    assert!(conv_direct::forward(&stem, 1, &xs, &ws, 16).is_none());
    assert!(!keeps_columns(&small, 32));
    assert!(keeps_columns(
        &ConvGeom::new((128, 2, 2), (3, 3), 1, 1).unwrap(),
        32
    ));
}

/// A strided (non-contiguous) input and a grouped convolution take the same route as candle.
#[test]
fn non_contiguous_and_grouped_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = random(&mut rng, &[2, 7, 6, 3]).transpose(2, 3).unwrap();
    let w = random(&mut rng, &[4, 7, 3, 3]);
    let d = max_rel_diff(
        &conv2d(&x, &w, 1, 1, 1, false).unwrap(),
        &x.conv2d(&w, 1, 1, 1, 1).unwrap(),
    );
    assert!(d <= 1e-4, "non-contiguous input differs by {d}");
    let x = random(&mut rng, &[2, 4, 5, 5]);
    let w = random(&mut rng, &[6, 2, 3, 3]);
    let d = max_rel_diff(
        &conv2d(&x, &w, 1, 1, 2, false).unwrap(),
        &x.conv2d(&w, 1, 1, 1, 2).unwrap(),
    );
    assert!(d <= 1e-4, "grouped conv differs by {d}");
}

/// Mismatched channels are an error, not a panic.
#[test]
fn channel_mismatch_is_an_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random(&mut rng, &[1, 3, 5, 5]);
    let w = random(&mut rng, &[2, 4, 3, 3]);
    assert!(conv2d(&x, &w, 1, 1, 1, true).is_err());
}

/// The weight gradient sums the images' contributions in a fixed order: repeated runs (and so
/// trainings) are bit-identical, whatever rayon's work stealing does.
#[test]
fn weight_gradient_is_bit_reproducible() {
    use fq_compress::nn::ops::conv::backward_weight;
    use fq_compress::nn::ops::im2col::ConvGeom;
    let (batch, c, h, w, o) = (24, 8, 12, 12, 16);
    let g = ConvGeom {
        c,
        h,
        w,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
        oh: h,
        ow: w,
    };
    let mut seed = 1u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let x: Vec<f32> = (0..batch * c * h * w).map(|_| next()).collect();
    let gy: Vec<f32> = (0..batch * o * h * w).map(|_| next()).collect();
    let first = backward_weight(&g, batch, &x, &gy, o, None);
    for _ in 0..20 {
        let again = backward_weight(&g, batch, &x, &gy, o, None);
        assert!(
            first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "the weight gradient changed between identical calls"
        );
    }
}

/// The weight gradient's two forms (`dW = dy · colsᵀ`, and `dWᵀ = cols · dyᵀ` transposed, which
/// suits few output channels) agree, with the forward's columns kept or built again, on
/// shapes where either is the chosen one; the tests above check the chosen form against candle.
#[test]
fn both_weight_gradient_forms_agree() {
    use fq_compress::nn::ops::conv::{backward_weight_as, forward};
    use fq_compress::nn::ops::im2col::ConvGeom;
    let mut seed = 5u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    // (batch, in channels, size, out channels, kernel, stride, padding)
    for (b, c, h, o, k, s, p) in [
        (4, 3, 20, 16, 7, 2, 3),
        (3, 8, 9, 70, 3, 1, 1),
        (6, 5, 14, 128, 3, 2, 1),
        (2, 16, 15, 96, 1, 1, 0),
    ] {
        let g = ConvGeom::new((c, h, h), (k, k), s, p).unwrap();
        let x: Vec<f32> = (0..b * g.input_len()).map(|_| next()).collect();
        let w: Vec<f32> = (0..o * g.k()).map(|_| next()).collect();
        let gy: Vec<f32> = (0..b * o * g.n()).map(|_| next()).collect();
        let kept = forward(&g, b, &x, &w, o, true).1;
        for cols in [None, kept.as_ref()] {
            let direct = backward_weight_as(&g, b, &x, &gy, o, cols, false);
            let flipped = backward_weight_as(&g, b, &x, &gy, o, cols, true);
            let scale = direct.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = direct
                .iter()
                .zip(&flipped)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let case = format!("b{b} c{c} {h}px o{o} k{k} s{s}, kept {}", cols.is_some());
            assert!(
                worst <= 1e-5 * scale,
                "{case}: forms differ by {worst} of {scale}"
            );
        }
    }
}

/// Depthwise convolutions (TinyViT) take the direct-loop op: values and both gradients as
/// candle's grouped conv, strides 1/2, padding 0/1, odd sizes.
#[test]
fn depthwise_values_and_gradients_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    // (batch, channels, height, width, kernel, stride, padding)
    for (b, c, h, wd, k, s, p) in [
        (2, 5, 7, 9, 3, 1, 1),
        (3, 8, 8, 8, 3, 2, 1),
        (1, 4, 5, 7, 3, 2, 0),
        (2, 3, 4, 4, 1, 1, 0),
    ] {
        let x = random(&mut rng, &[b, c, h, wd]);
        let w = random(&mut rng, &[c, 1, k, k]);
        let r = random(&mut rng, x.conv2d(&w, p, s, 1, c).unwrap().dims());
        let ours = run(|x, w| conv2d(x, w, p, s, c, true).unwrap(), &x, &w, &r);
        let theirs = run(|x, w| x.conv2d(w, p, s, 1, c).unwrap(), &x, &w, &r);
        for (what, a, e) in [
            ("value", &ours.0, &theirs.0),
            ("input gradient", &ours.1, &theirs.1),
            ("weight gradient", &ours.2, &theirs.2),
        ] {
            let d = max_rel_diff(a, e);
            assert!(
                d <= 1e-5,
                "depthwise b{b} c{c} k{k} s{s} p{p}: {what} differs by {d}"
            );
        }
    }
}
