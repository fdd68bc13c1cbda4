//! Training throughput of the compressor on one device, for `scripts/gpu-check.sh`: images/s of a
//! full training step (forward, cross-entropy, backward, AdamW update) of ResNet18 in f32, FP32
//! weights and U4 fake-quantized ones (QAT), timed with the device synchronised around each step.
//! `bench/gpu_check.py` measures the same step in PyTorch on the same machine.
//!
//!   device_train_bench --device cuda|cpu|auto [--batch 64] [--size 224] [--steps 10]
//!                      [--budget 40] [--json OUT.json]
//!
//! `--budget` caps the seconds of timed steps per variant (a slow backend still ends in time).
//! Not part of `cargo test` (built by it, like every example).

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use fq_compress::nn::model::{Mode, Model, Quant};
use fq_compress::nn::optim::{AdamW, AdamWConfig};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::BitAssignment;
use fq_compress::support::device::{label, select, DeviceChoice};
use fq_models::{Arch, ArchSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::time::Instant;

struct Args {
    device: DeviceChoice,
    batch: usize,
    size: usize,
    steps: usize,
    budget: f64,
    json: Option<std::path::PathBuf>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        device: DeviceChoice::Auto,
        batch: 64,
        size: 224,
        steps: 10,
        budget: 40.0,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        let mut val = || it.next().with_context(|| format!("{s} needs a value"));
        match s.as_str() {
            "--device" => {
                a.device = match val()?.as_str() {
                    "cpu" => DeviceChoice::Cpu,
                    "cuda" => DeviceChoice::Cuda,
                    "auto" => DeviceChoice::Auto,
                    other => bail!("--device {other}: cpu, cuda or auto"),
                }
            }
            "--batch" => a.batch = val()?.parse()?,
            "--size" => a.size = val()?.parse()?,
            "--steps" => a.steps = val()?.parse()?,
            "--budget" => a.budget = val()?.parse()?,
            "--json" => a.json = Some(val()?.into()),
            other => bail!("unknown argument `{other}`"),
        }
    }
    Ok(a)
}

/// Images/s of `steps` timed steps (after one untimed) of `model`, or fewer if `budget` runs out.
fn throughput(
    model: &Model,
    quant: Quant,
    x: &Tensor,
    y: &Tensor,
    a: &Args,
) -> Result<(f64, usize)> {
    let dev = &model.device;
    let mut opt = AdamW::new(
        vec![model.params.vars.clone()],
        vec![1e-4],
        AdamWConfig::default(),
    )?;
    let mut step = || -> Result<()> {
        let logits = model.forward_q(x, Mode::Train, quant)?;
        let loss = candle_nn::loss::cross_entropy(&logits, y)?;
        opt.step(&loss.backward()?, None)?;
        Ok(())
    };
    step()?;
    dev.synchronize()?;
    let start = Instant::now();
    let mut done = 0;
    while done < a.steps && (done == 0 || start.elapsed().as_secs_f64() < a.budget) {
        step()?;
        dev.synchronize()?;
        done += 1;
    }
    Ok((
        (done * a.batch) as f64 / start.elapsed().as_secs_f64(),
        done,
    ))
}

fn main() -> Result<()> {
    let a = args()?;
    let dev: Device = select(a.device)?;
    let g = ArchSpec::new(Arch::ResNet18, 64, a.size, 1000).graph()?;
    let model = Model::new(g.clone(), ParamStore::init(&g, 0, &dev)?, dev.clone());
    let u4 = BitAssignment::uniform(&g.quant_layers()?, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..a.batch * 3 * a.size * a.size)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let y: Vec<u32> = (0..a.batch).map(|_| rng.random_range(0..1000u32)).collect();
    let x = Tensor::from_vec(x, (a.batch, 3, a.size, a.size), &dev)?;
    let y = Tensor::from_vec(y, a.batch, &dev)?;
    let (fp32, n1) = throughput(&model, Quant::Fp32, &x, &y, &a)?;
    eprintln!(
        "resnet18-{} batch {} on {}: FP32 {fp32:.1} images/s ({n1} steps)",
        a.size,
        a.batch,
        label(&dev)
    );
    let (q, n2) = throughput(&model, Quant::Fixed(&u4), &x, &y, &a)?;
    eprintln!("  U4 fake-quant (QAT) {q:.1} images/s ({n2} steps)");
    let out = json!({
        "device": label(&dev), "arch": "resnet18", "size": a.size, "batch": a.batch,
        "fp32_images_per_s": fp32, "fp32_steps": n1, "u4_images_per_s": q, "u4_steps": n2,
    });
    println!("{out}");
    if let Some(p) = &a.json {
        fq_runtime::atomic::write_json_atomic(p, &out)?;
    }
    Ok(())
}
