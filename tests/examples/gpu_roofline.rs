//! The wgpu backend on a real GPU, for `scripts/gpu-check.sh`: what `bench_gpu` lacks for the
//! GPU targets of issue 22. (1) ResNet18-224 latency at batch 1 and batch 32 (the figures set next
//! to PyTorch CUDA eager); (2) the bit-unpacking GEMV (M = 1) and small-batch GEMM (M = 32) on a
//! Linear layer far larger than the L2 cache, as a fraction of the roofline
//! `max(bytes / bandwidth, flops / peak)`. Kernel time per launch is the difference of one submit
//! of R launches and one of 1, over R - 1, so the submit-and-wait overhead cancels.
//!
//!   gpu_roofline --json OUT.json [--bandwidth BYTES_PER_S] [--peak FLOP_PER_S] [--quick]
//!
//! Defaults: 4.3e12 B/s (H200 device-to-device copy, measured with PyTorch; gpu-check.sh passes
//! the figure it measures) and 6.7e13 FLOP/s (H200 SXM f32 without tensor cores, datasheet).
//! `--quick` uses small shapes, for a smoke test on a software adapter. Not part of `cargo test`.

mod bench_common;
use bench_common::{packed, random_mix_model, time_rounds};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use fq_models::{Arch, ArchSpec};
use fq_runtime::format::{Layer, LayerWeights};
use fq_runtime::gpu::{GemmKernel, GpuDevice, GpuExecutor, LinearGemm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

struct Args {
    json: PathBuf,
    bandwidth: f64,
    peak: f64,
    quick: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        json: PathBuf::from("gpu_roofline.json"),
        bandwidth: 4.3e12,
        peak: 6.7e13,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--json" => a.json = it.next().context("--json FILE")?.into(),
            "--bandwidth" => a.bandwidth = it.next().context("--bandwidth B/s")?.parse()?,
            "--peak" => a.peak = it.next().context("--peak FLOP/s")?.parse()?,
            "--quick" => a.quick = true,
            other => anyhow::bail!(
                "unknown argument `{other}` (--json FILE, --bandwidth B/s, --peak FLOP/s, --quick)"
            ),
        }
    }
    Ok(a)
}

/// Seconds per kernel launch: best over rounds of (t(R launches) - t(1 launch)) / (R - 1).
fn per_launch(g: &LinearGemm, repeats: u32, rounds: usize) -> Result<f64> {
    g.run_repeated(1)?;
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let s = Instant::now();
        g.run_repeated(1)?;
        let one = s.elapsed().as_secs_f64();
        let s = Instant::now();
        g.run_repeated(repeats)?;
        let many = s.elapsed().as_secs_f64();
        best = best.min(((many - one) / (repeats - 1) as f64).max(1e-9));
    }
    Ok(best)
}

/// GEMV/GEMM rows of the roofline table, one per (M, weights, kernel).
fn roofline(dev: &Arc<GpuDevice>, a: &Args) -> Result<Vec<Value>> {
    let (n, k, repeats, rounds) = if a.quick {
        (256, 512, 3, 2)
    } else {
        (16384, 8192, 20, 5)
    };
    let mut rows = Vec::new();
    for (label, width) in [("U4", Some(4)), ("mix 2–8", None), ("U8", Some(8))] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w = packed(n, k, width, &mut rng);
        let weight_bytes = w.data.len() + 4 * n;
        let dense = w.dequantize();
        let layer = Layer {
            name: "gemm".into(),
            weights: LayerWeights::Packed(w),
            bias: None,
        };
        for m in [1usize, 32] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            // Reference on the host in f64 (first row of the batch is enough to catch a wrong kernel).
            let want: Vec<f64> = dense
                .chunks(k)
                .map(|r| {
                    r.iter()
                        .zip(&x[..k])
                        .map(|(p, q)| *p as f64 * *q as f64)
                        .sum()
                })
                .collect();
            let scale = want.iter().fold(0f64, |s, v| s.max(v.abs()));
            for (kname, kernel) in [("tiled", GemmKernel::Tiled), ("naive", GemmKernel::Naive)] {
                let g = LinearGemm::new(dev.clone(), &layer, m, kernel)?;
                g.set_input(&x)?;
                let t = per_launch(&g, repeats, rounds)?;
                let out = g.output()?;
                let err = out[..n]
                    .iter()
                    .zip(&want)
                    .fold(0f64, |e, (p, q)| e.max((*p as f64 - q).abs()))
                    / scale.max(1e-30);
                let bytes = (weight_bytes + 4 * m * k + 4 * m * n) as f64;
                let flops = 2.0 * (m * n * k) as f64;
                let roof = (bytes / a.bandwidth).max(flops / a.peak);
                eprintln!(
                    "{label} M={m} {kname}: {:.1} us, {:.0} GB/s, {:.1}% of roofline, err {err:.1e}",
                    t * 1e6,
                    bytes / t / 1e9,
                    100.0 * roof / t
                );
                rows.push(json!({
                    "weights": label, "m": m, "n": n, "k": k, "kernel": kname,
                    "us": t * 1e6, "bytes": bytes, "gbps": bytes / t / 1e9,
                    "gflops": flops / t / 1e9, "roofline_fraction": roof / t,
                    "bound": if bytes / a.bandwidth >= flops / a.peak { "memory" } else { "compute" },
                    "rel_error": err,
                }));
            }
        }
    }
    Ok(rows)
}

/// ResNet18-224 (1000 classes, random per-channel 2–8-bit mix) latency at batch 1 and 32.
fn resnet18(dev: &Arc<GpuDevice>, a: &Args) -> Result<Value> {
    let size = if a.quick { 64 } else { 224 };
    let g = ArchSpec::new(Arch::ResNet18, 64, size, 1000).graph()?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let model = random_mix_model(&g, &mut rng)?;
    let batch = if a.quick { 4 } else { 32 };
    let gpu = GpuExecutor::from_model(dev.clone(), &mut model.clone(), GemmKernel::Tiled, batch)?;
    let cpu = fq_runtime::classify::Classifier::from_model(model)?;
    let x: Vec<f32> = (0..batch * gpu.input_len())
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let one = &x[..gpu.input_len()];
    let (got, want) = (gpu.run_batch(one, 1)?.logits, cpu.logits(one)?);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()))
        / scale;
    let budget = if a.quick { 0.5 } else { 4.0 };
    let t = {
        let mut fs: Vec<Box<dyn FnMut() + '_>> = vec![
            Box::new(|| {
                gpu.run_batch(one, 1).expect("batch 1");
            }),
            Box::new(|| {
                gpu.run_batch(&x, batch).expect("batch");
            }),
        ];
        time_rounds(&mut fs, 3, 200, budget)
    };
    let flops = 2.0 * g.macs()? as f64;
    eprintln!(
        "resnet18-{size}: batch 1 {:.2} ms, batch {batch} {:.2} ms, rel err {err:.1e}",
        t[0].0 * 1e3,
        t[1].0 * 1e3
    );
    Ok(json!({
        "input": size, "gflop_per_image": flops / 1e9, "batch": batch,
        "b1_ms_best": t[0].0 * 1e3, "b1_ms_median": t[0].1 * 1e3,
        "batch_ms_best": t[1].0 * 1e3, "batch_ms_median": t[1].1 * 1e3,
        "rel_error_vs_cpu": err,
        "same_top1": fq_eval::metrics::argmax_rows(&got, 1000) == fq_eval::metrics::argmax_rows(&want, 1000),
    }))
}

fn main() -> Result<()> {
    let a = args()?;
    let dev = Arc::new(GpuDevice::new().context("no wgpu adapter")?);
    eprintln!("adapter: {}", dev.description());
    let r = resnet18(&dev, &a)?;
    let rows = roofline(&dev, &a)?;
    let out = json!({
        "adapter": dev.description(), "software": dev.is_software(),
        "bandwidth": a.bandwidth, "peak": a.peak, "quick": a.quick,
        "resnet18": r, "gemm": rows,
    });
    fq_runtime::atomic::write_json_atomic(&a.json, &out)?;
    println!("wrote {}", a.json.display());
    Ok(())
}
