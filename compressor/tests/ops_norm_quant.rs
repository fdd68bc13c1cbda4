//! The fused train-mode batch norm (with and without its ReLU), the fused add + ReLU, the
//! max-pool op and the fake-quant op against the candle-op versions they replace: values, batch
//! statistics and gradients.
//!
//! Tolerance for batch norm: 1e-4 relative to the largest reference magnitude (f64 vs f32
//! accumulation of the statistics). Fake-quant must match exactly: it is the same quantizer.

use candle_core::{Device, Tensor, Var};
use fq_compress::nn::model::max_pool;
use fq_compress::nn::ops::{add_relu::add_relu, batch_norm, fake_quant, max_pool::max_pool2d};
use fq_compress::nn::quant::Granularity;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, dims: &[usize], offset: f32) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| rng.random_range(-1.0f32..1.0) * 2.0 + offset)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

/// The candle-op batch norm the model used before (batch statistics, biased variance).
fn reference(x: &Tensor, g: &Tensor, b: &Tensor, eps: f64) -> (Tensor, Tensor, Tensor) {
    let c = g.dim(0).unwrap();
    let mean = x.mean_keepdim((0, 2, 3)).unwrap();
    let var = x
        .broadcast_sub(&mean)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_keepdim((0, 2, 3))
        .unwrap();
    let inv = (&var + eps).unwrap().sqrt().unwrap().recip().unwrap();
    let scale = (inv * g.reshape((1, c, 1, 1)).unwrap()).unwrap();
    let y = x
        .broadcast_sub(&mean)
        .unwrap()
        .broadcast_mul(&scale)
        .unwrap()
        .broadcast_add(&b.reshape((1, c, 1, 1)).unwrap())
        .unwrap();
    (y, mean.flatten_all().unwrap(), var.flatten_all().unwrap())
}

#[test]
fn batch_norm_matches_candle_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (dims, offset) in [
        ([4, 3, 5, 7], 0.0),
        ([2, 5, 1, 1], 3.0),
        ([3, 8, 9, 3], -20.0),
        ([1, 2, 4, 4], 0.5),
    ] {
        // With a ReLU inside the op, against candle's batch norm then ReLU.
        for relu in [false, true] {
            let c = dims[1];
            let x = Var::from_tensor(&random(&mut rng, &dims, offset)).unwrap();
            let g = Var::from_tensor(&random(&mut rng, &[c], 1.0)).unwrap();
            let b = Var::from_tensor(&random(&mut rng, &[c], 0.0)).unwrap();
            let r = random(&mut rng, &dims, 0.0);
            let (xt, gt, bt) = (x.as_tensor(), g.as_tensor(), b.as_tensor());
            let ours = batch_norm::train(xt, gt, bt, 1e-5, relu).unwrap().unwrap();
            let (y, mean, var) = reference(xt, gt, bt, 1e-5);
            let y = if relu { y.relu().unwrap() } else { y };
            let case = format!("{dims:?} offset {offset} relu {relu}");
            for (what, a, e) in [
                ("value", &ours.y, &y),
                ("mean", &ours.mean, &mean),
                ("variance", &ours.var, &var),
            ] {
                let d = max_rel_diff(a, e);
                assert!(d <= 1e-4, "{case}: {what} differs by {d}");
            }
            let go = (&ours.y * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gr = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (what, v) in [("input", xt), ("weight", gt), ("bias", bt)] {
                let d = max_rel_diff(go.get(v).unwrap(), gr.get(v).unwrap());
                assert!(d <= 1e-4, "{case}: {what} gradient differs by {d}");
            }
        }
    }
}

/// The ReLU inside the batch norm passes the gradient where the batch norm's output is exactly
/// zero, as candle's ReLU does (a constant channel with a zero shift: every output 0).
#[test]
fn batch_norm_relu_passes_gradients_at_zero_as_candle() {
    let dims = [2usize, 2, 3, 3];
    // Channel 0 constant (planes 0 and 2 of the `[2, 2]` images), channel 1 varying.
    let v: Vec<f32> = (0..36)
        .map(|i| match (i / 9) % 2 {
            0 => 0.75,
            _ => i as f32 / 7.0 - 1.0,
        })
        .collect();
    let x = Var::from_tensor(&Tensor::from_vec(v, &dims, &Device::Cpu).unwrap()).unwrap();
    let g = Var::from_tensor(&Tensor::new(&[1.5f32, 0.5], &Device::Cpu).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::new(&[0.0f32, 0.1], &Device::Cpu).unwrap()).unwrap();
    let r = Tensor::from_vec(
        (0..36).map(|i| i as f32 - 17.5).collect::<Vec<_>>(),
        &dims,
        &Device::Cpu,
    )
    .unwrap();
    let (xt, gt, bt) = (x.as_tensor(), g.as_tensor(), b.as_tensor());
    let ours = batch_norm::train(xt, gt, bt, 1e-5, true)
        .unwrap()
        .unwrap()
        .y;
    let theirs = reference(xt, gt, bt, 1e-5).0.relu().unwrap();
    let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (&theirs * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (what, v) in [("weight", gt), ("bias", bt)] {
        let d = max_rel_diff(go.get(v).unwrap(), gr.get(v).unwrap());
        assert!(d <= 1e-6, "{what} gradient differs by {d}");
    }
    // The constant channel's bias gradient is the sum of its `r`: nothing stopped at zero.
    let db: Vec<f32> = go.get(bt).unwrap().to_vec1().unwrap();
    let want: f32 = (0..9).chain(18..27).map(|i| i as f32 - 17.5).sum();
    assert_eq!(db[0], want);
}

#[test]
fn add_relu_matches_candle_ops() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for dims in [vec![4, 3, 5, 7], vec![2, 70_000], vec![3]] {
        let a = Var::from_tensor(&random(&mut rng, &dims, 0.0)).unwrap();
        // Some sums exactly zero: candle's ReLU passes the gradient there, and so must ours.
        let b = random(&mut rng, &dims, 0.3);
        let n = b.elem_count();
        let neg = a.as_tensor().neg().unwrap().flatten_all().unwrap();
        let mixed: Vec<f32> = (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    neg.get(i).unwrap().to_scalar::<f32>().unwrap()
                } else {
                    b.flatten_all()
                        .unwrap()
                        .get(i)
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                }
            })
            .collect();
        let b =
            Var::from_tensor(&Tensor::from_vec(mixed, &dims[..], &Device::Cpu).unwrap()).unwrap();
        let r = random(&mut rng, &dims, 0.0);
        let (at, bt) = (a.as_tensor(), b.as_tensor());
        let ours = add_relu(at, bt).unwrap();
        let theirs = (at + bt).unwrap().relu().unwrap();
        // The same f32 sum and clamp: exactly equal, as are the masked gradients.
        assert_eq!(
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{dims:?}: value"
        );
        let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gt = (&theirs * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (what, v) in [("first", at), ("second", bt)] {
            assert_eq!(
                go.get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
                gt.get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
                "{dims:?}: {what} input's gradient"
            );
        }
    }
}

#[test]
fn fake_quant_is_the_quantizer_with_an_identity_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let w = Var::from_tensor(&random(&mut rng, &[4, 3, 3, 3], 0.0)).unwrap();
    let r = random(&mut rng, &[4, 3, 3, 3], 0.0);
    for (bits, gran) in [
        (vec![2u8, 4, 8, 1], Granularity::PerChannel),
        (vec![0u8, 3, 5, 6], Granularity::PerChannel),
        (vec![4u8], Granularity::PerTensor),
    ] {
        let q = fake_quant::apply(w.as_tensor(), &bits, gran).unwrap();
        let host: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let (want, _) = fq_compress::nn::quant::quantize_weight(&host, 4, &bits, gran).unwrap();
        assert_eq!(q.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        let grads = (&q * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let d = max_rel_diff(grads.get(w.as_tensor()).unwrap(), &r);
        assert_eq!(d, 0.0, "the straight-through gradient is the identity");
    }
    // A bit list of the wrong length is an error naming the counts, not a panic.
    let err = fake_quant::apply(w.as_tensor(), &[4, 4], Granularity::PerChannel).unwrap_err();
    assert!(err.to_string().contains("4 channels"), "{err}");
}

/// Against the model's shifted-maxima pool on non-negative inputs (where its zero padding equals
/// -inf padding) without ties (distinct values), so both route each gradient to the same input.
#[test]
fn max_pool_matches_the_shifted_maxima_pool() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (dims, k, s, p) in [
        ([2, 3, 9, 9], 3, 2, 1),
        ([3, 2, 8, 11], 3, 2, 1),
        ([2, 4, 6, 6], 2, 2, 0),
        ([1, 2, 7, 5], 3, 1, 1),
    ] {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| i as f32 * 1e-3 + rng.random_range(0.0f32..1.0))
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(v, &dims, &Device::Cpu).unwrap()).unwrap();
        let ours = max_pool2d(x.as_tensor(), k, s, p).unwrap().unwrap();
        let theirs = max_pool(x.as_tensor(), k, s, p).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        assert_eq!(max_rel_diff(&ours, &theirs), 0.0, "{dims:?} k{k} s{s} p{p}");
        let r = random(&mut rng, ours.dims(), 0.0);
        let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gt = (&theirs * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let d = max_rel_diff(
            go.get(x.as_tensor()).unwrap(),
            gt.get(x.as_tensor()).unwrap(),
        );
        assert!(
            d <= 1e-6,
            "{dims:?} k{k} s{s} p{p}: gradient differs by {d}"
        );
    }
}
