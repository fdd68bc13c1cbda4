//! CPU vs CUDA parity of training: a few AdamW steps of the narrow ResNet18 (train-mode batch
//! norm) and the narrow DeiT, FP32 and with U4 / learnable-bit (BAQ) fake-quantized weights,
//! from the same initial weights and batch on both devices; the losses, every parameter's
//! gradient and the batch-norm running statistics must agree within the tolerances below.
//!
//! Compiled always; the CUDA comparisons run only in a `--features cuda` build on a machine with
//! a GPU and print a skip message otherwise. `FQ_REQUIRE_CUDA=1` turns the skip into a failure
//! (scripts/gpu-check.sh sets it on the GPU machine, so a broken driver setup cannot pass).
//!
//! Tolerances, and why. Both sides compute in f32 (candle's CUDA matmul keeps full f32, no TF32,
//! by default; checked below), but in different orders: the CPU runs `fq_compress::nn::ops`
//! (im2col + gemm, batch-norm sums in f64), CUDA runs candle's kernels and cuBLAS. f32 rounding
//! (eps 1.2e-7) over dot products of up to ~600 terms and ~20 layers forward and back gives
//! relative differences around 1e-6..1e-5, so:
//! - loss: |a - b| <= 1e-4 · max(1, |a|);
//! - gradients: ‖a - b‖₂ <= 1e-3 · ‖a‖₂ per tensor (norm-wise: a tensor's tiny elements carry
//!   cancellation noise that says nothing), plus 1e-7 absolute for all-but-zero gradients;
//! - batch-norm running mean / variance: |a - b| <= 1e-4 · (1 + |a|) elementwise.
//!
//! A wrong op, a missing term or a wrong reduction axis gives differences of 1e-2 and more, so
//! these 10-100x margins above rounding noise still catch real bugs. The always-on test
//! `harness_...` runs the same comparison on the CPU between the fast ops and candle's own ops
//! (the ops CUDA falls back to), so the harness and the tolerances are exercised on every machine.

use candle_core::{Device, Tensor};
use fq_compress::methods::baq::{BaqConfig, BaqParams};
use fq_compress::nn::model::{Mode, Model, Quant};
use fq_compress::nn::ops;
use fq_compress::nn::optim::{AdamW, AdamWConfig};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::{quantize_weight, BitAssignment, Granularity};
use fq_compress::support::device::{select, DeviceChoice};
use fq_models::ArchSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// `ops::set_enabled` is process-wide: the tests of this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

const STEPS: usize = 3;
const BATCH: usize = 8;
const SIZE: usize = 32;
const CLASSES: usize = 4;

/// CUDA GPU 0, or `None` with a skip message; with `FQ_REQUIRE_CUDA=1` a missing GPU (or a build
/// without the `cuda` feature) fails the test instead.
fn cuda_or_skip(test: &str) -> Option<Device> {
    match select(DeviceChoice::Cuda) {
        Ok(d) => Some(d),
        Err(e) if std::env::var("FQ_REQUIRE_CUDA").as_deref() == Ok("1") => {
            panic!("{test}: FQ_REQUIRE_CUDA=1 but CUDA is not available: {e:#}")
        }
        Err(e) => {
            eprintln!("{test}: skipped, no CUDA ({e:#}); FQ_REQUIRE_CUDA=1 makes this a failure");
            None
        }
    }
}

/// What one device's run records, everything on the host as f32.
#[derive(Default)]
struct Trace {
    losses: Vec<f32>,
    /// Per step: gradient of every trainable tensor (model weights and BAQ logits) by name.
    grads: Vec<BTreeMap<String, Vec<f32>>>,
    /// Per step, after the update: every batch-norm running statistic by name.
    stats: Vec<BTreeMap<String, Vec<f32>>>,
}

#[derive(Clone, Copy, Debug)]
enum Weights {
    Fp32,
    U4,
    Baq,
}

fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The same batch on every device: images in [-1, 1], labels `i % CLASSES`.
fn batch(dev: &Device) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x: Vec<f32> = (0..BATCH * 3 * SIZE * SIZE)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let y: Vec<u32> = (0..BATCH as u32).map(|i| i % CLASSES as u32).collect();
    (
        Tensor::from_vec(x, (BATCH, 3, SIZE, SIZE), dev).unwrap(),
        Tensor::from_vec(y, BATCH, dev).unwrap(),
    )
}

/// `STEPS` AdamW steps of `arch` on `dev` (the CPU's fast ops on or off) from seed-7 weights.
fn train(arch: &str, dev: &Device, fast_ops: bool, weights: Weights) -> Trace {
    ops::set_enabled(fast_ops);
    let g = ArchSpec::new(arch.parse().unwrap(), 8, SIZE, CLASSES)
        .graph()
        .unwrap();
    let model = Model::new(
        g.clone(),
        ParamStore::init(&g, 7, dev).unwrap(),
        dev.clone(),
    );
    let layers = g.quant_layers().unwrap();
    let u4 = BitAssignment::uniform(&layers, 4);
    // A per-channel 3..6-bit warm start, so BAQ's rounding sees several widths.
    let mixed = BitAssignment {
        granularity: Some(Granularity::PerChannel),
        layers: layers
            .iter()
            .map(|l| {
                (
                    l.name.clone(),
                    (0..l.out_channels).map(|c| 3 + (c % 4) as u8).collect(),
                )
            })
            .collect(),
    };
    let baq = BaqParams::new(
        &layers,
        Granularity::PerChannel,
        Some(&mixed),
        BaqConfig::default(),
        dev,
    )
    .unwrap();
    let mut groups = vec![model.params.vars.clone()];
    if let Weights::Baq = weights {
        groups.push(baq.vars());
    }
    let lrs = vec![1e-3; groups.len()];
    let mut opt = AdamW::new(groups.clone(), lrs, AdamWConfig::default()).unwrap();
    let (x, y) = batch(dev);
    let mut t = Trace::default();
    for _ in 0..STEPS {
        let quant = match weights {
            Weights::Fp32 => Quant::Fp32,
            Weights::U4 => Quant::Fixed(&u4),
            Weights::Baq => Quant::Transform(&baq),
        };
        let logits = model.forward_q(&x, Mode::Train, quant).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        t.losses.push(loss.to_scalar::<f32>().unwrap());
        let grads = loss.backward().unwrap();
        t.grads.push(
            groups
                .iter()
                .flatten()
                .filter_map(|(n, v)| grads.get(v.as_tensor()).map(|g| (n.clone(), host(g))))
                .collect(),
        );
        opt.step(&grads, None).unwrap();
        t.stats.push(
            model
                .params
                .buffers
                .iter()
                .map(|(n, v)| (n.clone(), host(v.as_tensor())))
                .collect(),
        );
    }
    ops::set_enabled(true);
    t
}

fn norm(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

/// Every difference beyond the tolerances, as readable lines (empty = parity).
fn compare(a: &Trace, b: &Trace) -> Vec<String> {
    let mut bad = Vec::new();
    for (s, (la, lb)) in a.losses.iter().zip(&b.losses).enumerate() {
        if (la - lb).abs() > 1e-4 * la.abs().max(1.0) {
            bad.push(format!("step {s}: loss {la} vs {lb}"));
        }
    }
    for (s, (ga, gb)) in a.grads.iter().zip(&b.grads).enumerate() {
        if ga.keys().ne(gb.keys()) {
            bad.push(format!("step {s}: different sets of gradients"));
        }
        for (name, va) in ga {
            let Some(vb) = gb.get(name) else { continue };
            let diff = norm(va.iter().zip(vb).map(|(p, q)| (p - q) as f64));
            let scale = norm(va.iter().map(|&p| p as f64));
            if diff > 1e-3 * scale + 1e-7 {
                bad.push(format!(
                    "step {s}: gradient of {name}: ‖Δ‖ {diff:.3e} vs ‖g‖ {scale:.3e}"
                ));
            }
        }
    }
    for (s, (sa, sb)) in a.stats.iter().zip(&b.stats).enumerate() {
        for (name, va) in sa {
            let vb = &sb[name];
            if let Some((p, q)) = va
                .iter()
                .zip(vb)
                .find(|(p, q)| (*p - *q).abs() > 1e-4 * (1.0 + p.abs()))
            {
                bad.push(format!("step {s}: {name}: {p} vs {q}"));
            }
        }
    }
    bad
}

fn assert_parity(what: &str, a: &Trace, b: &Trace) {
    assert_eq!(a.losses.len(), STEPS);
    assert!(!a.grads[0].is_empty(), "{what}: no gradients recorded");
    let bad = compare(a, b);
    assert!(
        bad.is_empty(),
        "{what}: {} differences:\n{}",
        bad.len(),
        bad.join("\n")
    );
    eprintln!(
        "{what}: parity over {STEPS} steps, losses {:?} vs {:?}",
        a.losses, b.losses
    );
}

/// CUDA training of `arch` matches the CPU's (the CPU side with the fast ops, as it runs).
fn cuda_parity(test: &str, arch: &str, weights: Weights) {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(gpu) = cuda_or_skip(test) else {
        return;
    };
    #[cfg(feature = "cuda")]
    assert!(
        !candle_core::cuda_backend::gemm_reduced_precision_f32(),
        "the tolerances assume full-f32 matmuls on CUDA"
    );
    let cpu = train(arch, &Device::Cpu, true, weights);
    let cuda = train(arch, &gpu, true, weights);
    assert_parity(&format!("{arch} {weights:?} cpu vs cuda"), &cpu, &cuda);
}

#[test]
fn resnet18_training_steps_match_on_cuda() {
    cuda_parity(
        "resnet18_training_steps_match_on_cuda",
        "resnet18",
        Weights::Fp32,
    );
}

#[test]
fn resnet18_quantized_training_steps_match_on_cuda() {
    cuda_parity(
        "resnet18_quantized_training_steps_match_on_cuda",
        "resnet18",
        Weights::U4,
    );
    cuda_parity(
        "resnet18_quantized_training_steps_match_on_cuda",
        "resnet18",
        Weights::Baq,
    );
}

#[test]
fn deit_training_steps_match_on_cuda() {
    cuda_parity(
        "deit_training_steps_match_on_cuda",
        "deit-tiny",
        Weights::Fp32,
    );
    cuda_parity(
        "deit_training_steps_match_on_cuda",
        "deit-tiny",
        Weights::U4,
    );
}

/// The quantizer on CUDA is the host quantizer bit for bit (the packed export reproduces it).
#[test]
fn quantizer_is_bit_exact_on_cuda() {
    let Some(gpu) = cuda_or_skip("quantizer_is_bit_exact_on_cuda") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (o, k) = (64, 576);
    let w: Vec<f32> = (0..o * k).map(|_| rng.random_range(-0.3f32..0.3)).collect();
    let bits: Vec<u8> = (0..o).map(|i| [0, 1, 2, 3, 4, 5, 6, 8][i % 8]).collect();
    let t = Tensor::from_vec(w.clone(), (o, k), &gpu).unwrap();
    let got =
        host(&fq_compress::nn::fake_quant::fake_quant(&t, &bits, Granularity::PerChannel).unwrap());
    let (want, _) = quantize_weight(&w, o, &bits, Granularity::PerChannel).unwrap();
    let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(
        differ,
        0,
        "{differ} of {} quantized weights differ from the host's",
        want.len()
    );
}

/// The comparison itself, on any machine: the CPU's fast ops against candle's own ops (which
/// CUDA runs), same tolerances. Guards the harness, and that the fallback ops train alike.
#[test]
fn harness_cpu_fast_ops_match_candle_ops() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (arch, weights) in [
        ("resnet18", Weights::Fp32),
        ("resnet18", Weights::U4),
        ("deit-tiny", Weights::Fp32),
    ] {
        let fast = train(arch, &Device::Cpu, true, weights);
        let candle = train(arch, &Device::Cpu, false, weights);
        assert_parity(
            &format!("{arch} {weights:?} fast ops vs candle ops"),
            &fast,
            &candle,
        );
    }
    // And the harness can fail: a perturbed loss is reported.
    let mut a = train("resnet18", &Device::Cpu, true, Weights::Fp32);
    let b = train("resnet18", &Device::Cpu, true, Weights::Fp32);
    assert!(compare(&a, &b).is_empty(), "a run differs from itself");
    a.losses[1] *= 1.01;
    assert_eq!(compare(&a, &b).len(), 1);
}
