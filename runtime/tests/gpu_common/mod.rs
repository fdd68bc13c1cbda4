//! Helpers of the GPU tests: the shared device (or the reason to skip), random layers, and the
//! comparison of the GPU executor with the CPU one on the same graph.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use fq_models::{Graph, Op};
use fq_runtime::exec::{Executor, Plan};
use fq_runtime::format::{Layer, LayerWeights, NamedTensor, PackedMatrix};
use fq_runtime::gpu::{GemmKernel, GpuDevice, GpuExecutor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The adapter the tests run on, opened once. `None` (after printing why) when there is none,
/// unless `FQ_REQUIRE_GPU=1`, where that is a failure: CI must never skip these silently.
pub fn device() -> Option<Arc<GpuDevice>> {
    static DEV: OnceLock<Result<Arc<GpuDevice>, String>> = OnceLock::new();
    let dev = DEV.get_or_init(|| GpuDevice::new().map(Arc::new).map_err(|e| e.to_string()));
    match dev {
        Ok(d) => {
            eprintln!("GPU tests on {}", d.description());
            Some(d.clone())
        }
        Err(e) if std::env::var("FQ_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("FQ_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipping a GPU test: {e}");
            None
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Storage {
    F32,
    Bits(u8),
    /// Each output channel its own width in 2..=8.
    Mix,
}

/// A packed matrix of random codes (random widths when `mixed`, else one random width) and its
/// codes, row-major.
pub fn random_packed(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    uniform: bool,
) -> (PackedMatrix, Vec<i8>) {
    let one = rng.random_range(2..=8u8);
    let bits: Vec<u8> = (0..rows)
        .map(|_| {
            if uniform {
                one
            } else {
                rng.random_range(2..=8)
            }
        })
        .collect();
    let codes = crate::packed::random_codes(rng, &bits, cols);
    let scales = (0..rows).map(|_| rng.random_range(0.001..0.1)).collect();
    let m = PackedMatrix::from_codes(cols, bits, &codes, scales).unwrap();
    (m, codes)
}

/// Random weights for every Conv2d/Linear node of `g`, scaled so activations stay O(1).
pub fn random_layers(g: &Graph, storage: Storage, rng: &mut ChaCha8Rng) -> Vec<Layer> {
    g.nodes
        .iter()
        .filter_map(|node| {
            let (rows, cols, bias) = match &node.op {
                Op::Conv2d(c) => (
                    c.out_channels,
                    c.in_channels / c.groups * c.kernel * c.kernel,
                    c.bias,
                ),
                Op::Linear(l) => (l.out_features, l.in_features, l.bias),
                _ => return None,
            };
            let std = (3.0 / cols as f32).sqrt();
            let weights = match storage {
                Storage::F32 => LayerWeights::F32 {
                    rows,
                    cols,
                    data: (0..rows * cols)
                        .map(|_| rng.random_range(-std..std))
                        .collect(),
                },
                Storage::Bits(b) => {
                    let (mut m, _) = random_packed_width(rng, rows, cols, Some(b));
                    m.scales.iter_mut().for_each(|s| *s *= std * 10.0);
                    LayerWeights::Packed(m)
                }
                Storage::Mix => {
                    let (mut m, _) = random_packed_width(rng, rows, cols, None);
                    m.scales.iter_mut().for_each(|s| *s *= std * 10.0);
                    LayerWeights::Packed(m)
                }
            };
            Some(Layer {
                name: node.name.clone(),
                weights,
                bias: bias.then(|| (0..rows).map(|_| rng.random_range(-0.5..0.5)).collect()),
            })
        })
        .collect()
}

fn random_packed_width(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    width: Option<u8>,
) -> (PackedMatrix, Vec<i8>) {
    let bits: Vec<u8> = (0..rows)
        .map(|_| width.unwrap_or_else(|| rng.random_range(2..=8)))
        .collect();
    let codes = crate::packed::random_codes(rng, &bits, cols);
    // Scale ~ 1/qmax so every width gives weights of the same size.
    let scales = bits
        .iter()
        .map(|&b| 0.1 / ((1i32 << (b - 1)) - 1) as f32)
        .collect();
    let m = PackedMatrix::from_codes(cols, bits, &codes, scales).unwrap();
    (m, codes)
}

/// Runs `g` on `n` random images on the GPU (with `kernel`) and on the CPU; returns the largest
/// difference relative to the largest CPU output.
pub fn compare(
    dev: &Arc<GpuDevice>,
    g: &Graph,
    layers: &[Layer],
    n: usize,
    kernel: GemmKernel,
    seed: u64,
) -> f32 {
    compare_parts(dev, g, layers, &[], n, kernel, seed)
}

/// Random extra parameter tensors of `g` (layer norms near the identity, tokens, embeddings
/// and attention biases of O(1)), named and shaped as a model file stores them.
pub fn random_tensors(g: &Graph, rng: &mut ChaCha8Rng) -> Vec<NamedTensor> {
    let weighted: std::collections::HashSet<&str> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d(_) | Op::Linear(_) | Op::BatchNorm2d { .. }))
        .map(|n| n.name.as_str())
        .collect();
    g.params()
        .into_iter()
        .filter(|p| !weighted.contains(p.name.rsplit_once('.').map_or("", |(m, _)| m)))
        .map(|p| {
            let n: usize = p.shape.iter().product();
            let around = if p.name.ends_with(".weight") {
                1.0
            } else {
                0.0
            };
            NamedTensor {
                data: (0..n)
                    .map(|_| around + rng.random_range(-0.5..0.5))
                    .collect(),
                name: p.name,
                shape: p.shape,
            }
        })
        .collect()
}

/// [`compare`] for a graph with extra parameter tensors.
pub fn compare_parts(
    dev: &Arc<GpuDevice>,
    g: &Graph,
    layers: &[Layer],
    tensors: &[NamedTensor],
    n: usize,
    kernel: GemmKernel,
    seed: u64,
) -> f32 {
    // One plan feeds both executors, as the classifier does.
    let plan = Plan::from_parts(g, layers.to_vec(), tensors.to_vec()).unwrap();
    // A batch smaller than n: several submits per run are exercised too.
    let gpu = GpuExecutor::from_plan(dev.clone(), &plan, kernel, 2).unwrap();
    let cpu = Executor::from_plan(plan);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * cpu.input_len())
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let want = cpu.run_batch(&x, n).unwrap();
    let got = gpu.run_batch(&x, n).unwrap().logits;
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    got.iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}
