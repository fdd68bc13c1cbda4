//! GPU benchmark of the wgpu backend, next to the CPU one: GFLOP/s of the packed GEMM and latency
//! of the ResNet18 forward pass on the adapter wgpu picks, side by side with a naive
//! one-thread-per-output bit-unpacking shader on the same adapter and with the CPU path, all
//! timed round-robin in one run; then DeiT and TinyViT (narrow and full size), GPU vs CPU per
//! image. `--zoo` runs only that last table. Writes (replaces) the `## wgpu backend` section at the end of
//! `bench/results.md` (`bench/run.sh` runs it after the CPU benchmark). Not part of `cargo test`.

mod bench_common;
use bench_common::{packed, random_mix_model, time_rounds};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use fq_models::{Arch, ArchSpec, Graph, TinyVitConfig, VitConfig};
use fq_runtime::classify::Classifier;
use fq_runtime::exec::gemm::{gemm, Epilogue, PanelB, Rows};
use fq_runtime::exec::kernel::NR;
use fq_runtime::exec::Plan;
use fq_runtime::format::{Layer, LayerWeights};
use fq_runtime::gpu::{GemmKernel, GpuDevice, GpuExecutor, LinearGemm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SECTION: &str = "## wgpu backend";

/// The GEMM `out[M×N] = B[M×K] · Wᵀ` of a Linear layer with `N` packed output rows over a batch
/// of `M` vectors: GFLOP/s of the tiled shader, the naive shader and the CPU packed GEMM, and
/// the largest difference of the GPU result from the CPU's (relative to its largest value).
fn gemm_row(
    dev: &Arc<GpuDevice>,
    (m, n, k): (usize, usize, usize),
    width: Option<u8>,
    budget: f64,
) -> Result<([(f64, f64); 3], f32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let w = packed(n, k, width, &mut rng);
    let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let layer = Layer {
        name: "gemm".into(),
        weights: LayerWeights::Packed(w.clone()),
        bias: None,
    };
    let tiled = LinearGemm::new(dev.clone(), &layer, m, GemmKernel::Tiled)?;
    let naive = LinearGemm::new(dev.clone(), &layer, m, GemmKernel::Naive)?;
    tiled.set_input(&x)?;
    naive.set_input(&x)?;
    // The CPU path: the packed GEMM with the batch as the columns of B (panel layout).
    let mut data = vec![0f32; m.div_ceil(NR) * k * NR];
    for (i, xi) in x.chunks(k).enumerate() {
        for (kk, v) in xi.iter().enumerate() {
            data[((i / NR) * k + kk) * NR + i % NR] = *v;
        }
    }
    let b = PanelB {
        data: data.into(),
        k,
        n: m,
    };
    let offsets = w.row_offsets();
    let rows = Rows::Packed {
        m: &w,
        offsets: &offsets,
    };
    let epi = Epilogue {
        scale: Some(&w.scales),
        ..Epilogue::default()
    };
    let mut cpu_out = vec![0f32; n * m];
    let times = {
        let cpu_out = &mut cpu_out;
        let mut fs: Vec<Box<dyn FnMut() + '_>> = vec![
            Box::new(|| tiled.run().expect("tiled GEMM")),
            Box::new(|| naive.run().expect("naive GEMM")),
            Box::new(|| gemm(&rows, 0, n, &b, cpu_out, epi)),
        ];
        time_rounds(&mut fs, 3, 100, budget)
    };
    let flops = 2.0 * (m * n * k) as f64;
    let g = |(best, median): (f64, f64)| (flops / best / 1e9, flops / median / 1e9);
    // cpu_out is [n][m]; the GPU's [m][n].
    let scale = cpu_out.iter().fold(0f32, |a, v| a.max(v.abs()));
    let mut err = 0f32;
    for out in [tiled.output()?, naive.output()?] {
        for (i, row) in out.chunks(n).enumerate() {
            for (o, v) in row.iter().enumerate() {
                err = err.max((v - cpu_out[o * m + i]).abs() / scale);
            }
        }
    }
    Ok(([g(times[0]), g(times[1]), g(times[2])], err))
}

fn main() -> Result<()> {
    // SAFETY: first statement of `main`, no other thread exists yet (see `driver_env::prepare`).
    unsafe {
        fq_runtime::driver_env::prepare();
    }
    let mut out = PathBuf::from("bench/results.md");
    let mut budget = 3.0;
    let mut zoo_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().context("--out FILE")?.into(),
            "--quick" => budget = 0.3,
            "--zoo" => zoo_only = true,
            other => anyhow::bail!("unknown argument `{other}` (--out FILE, --quick, --zoo)"),
        }
    }
    let mut md = format!("{SECTION}\n\n");
    match GpuDevice::new() {
        Err(e) => {
            eprintln!("bench_gpu: {e}; no GPU figures");
            md += &format!("No adapter on this machine ({e}); nothing measured.\n");
        }
        Ok(dev) => {
            let dev = Arc::new(dev);
            if !zoo_only {
                gpu_section(dev.clone(), budget, budget < 1.0, &mut md)?;
            }
            zoo_section(&dev, budget, &mut md)?;
        }
    }
    fq_eval::sections::write_keeping_sections(&out, &md, &[])
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{md}");
    Ok(())
}

/// `quick` leaves out the naive shader's ResNet18 (minutes per pass on a software adapter).
fn gpu_section(dev: Arc<GpuDevice>, budget: f64, quick: bool, md: &mut String) -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    *md += &format!(
        "Adapter: {}{}. Generated by `bench/run.sh` after the CPU benchmark (`cargo run \
         --release -p fq-e2e --example bench_gpu{}`){}; the columns of a table are timed \
         round-robin in one run. Best of repeated runs, medians in parentheses. The naive shader is \
         `shaders/gemm_naive.wgsl`: one thread per output, every code unpacked where it is used; \
         the tiled one is `shaders/gemm_tiled.wgsl` (64×64 tile per workgroup, 4×4 outputs per \
         thread, weights unpacked into workgroup memory once per K step).\n\n",
        dev.description(),
        if dev.is_software() {
            format!(
                ", a software rasteriser running on the same {cpus} CPU threads as the CPU \
                 path"
            )
        } else {
            String::new()
        },
        if quick { " -- --quick" } else { "" },
        if quick {
            ", short timings, the naive shader's ResNet18 pass left out"
        } else {
            ""
        }
    );

    *md += "### Packed GEMM, GFLOP/s\n\n`out[M×N] = X[M×K] · Wᵀ`: a Linear layer of N packed \
            output channels over a batch of M input vectors; 2·M·N·K flops. GPU times include \
            the submit and the wait, not uploads (the input stays on the device). Error: largest \
            |GPU − CPU| of both shaders relative to the largest output.\n\n\
            | M×N×K | weights | tiled shader | naive shader | tiled ÷ naive | CPU packed GEMM | \
            error |\n|---|---|---|---|---|---|---|\n";
    for shape in [(32, 1024, 1024), (256, 1024, 1024)] {
        for (label, width) in [("U4", Some(4)), ("mix 2–8", None), ("U8", Some(8))] {
            let ([t, nv, c], err) = gemm_row(&dev, shape, width, budget)?;
            let (m, n, k) = shape;
            *md += &format!(
                "| {m}×{n}×{k} | {label} | {:.1} ({:.1}) | {:.2} ({:.2}) | **{:.1}×** | {:.1} \
                 ({:.1}) | {err:.1e} |\n",
                t.0,
                t.1,
                nv.0,
                nv.1,
                t.0 / nv.0,
                c.0,
                c.1
            );
            eprintln!(
                "gemm {shape:?} {label}: tiled {:.2}, naive {:.2}, cpu {:.2}",
                t.0, nv.0, c.0
            );
        }
    }

    // ResNet18 at 224x224, 1000 classes, per-channel mixed 2-8 bits.
    let g = ArchSpec::new(Arch::ResNet18, 64, 224, 1000).graph()?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let model = random_mix_model(&g, &mut rng)?;
    let flops = 2.0 * g.macs()? as f64;
    let plan = Plan::from_model(&mut model.clone())?;
    let tiled = GpuExecutor::from_plan(dev.clone(), &plan, GemmKernel::Tiled, 8)?;
    let naive = GpuExecutor::from_plan(dev.clone(), &plan, GemmKernel::Naive, 8)?;
    let cpu = Classifier::from_model(model)?;
    let x: Vec<f32> = (0..3 * 224 * 224)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let (a, b) = (tiled.run_batch(&x, 1)?, cpu.logits(&x)?);
    let top = |l: &[f32]| fq_eval::metrics::argmax_rows(l, l.len())[0];
    let same = top(&a.logits) == top(&b);
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a
        .logits
        .iter()
        .zip(&b)
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()))
        / scale;
    let times = {
        let mut fs: Vec<Box<dyn FnMut() + '_>> = vec![
            Box::new(|| {
                tiled.run_batch(&x, 1).expect("tiled forward");
            }),
            Box::new(|| {
                cpu.logits(&x).expect("cpu forward");
            }),
        ];
        if !quick {
            fs.push(Box::new(|| {
                naive.run_batch(&x, 1).expect("naive forward");
            }));
        }
        let mut t = time_rounds(&mut fs, 2, 100, budget * 4.0);
        t.push((f64::NAN, f64::NAN));
        [t[0], t[2], t[1]]
    };
    let ms = |(best, median): (f64, f64)| {
        if best.is_nan() {
            "not run (--quick)".to_string()
        } else {
            format!("{:.1} ({:.1})", best * 1e3, median * 1e3)
        }
    };
    *md += &format!(
        "\n### ResNet18 forward, 224×224, 1000 classes, batch 1\n\nRandom-init weights at a \
         random per-channel 2–8-bit mix; {:.2} GFLOP per image. The GPU figure is the whole \
         forward pass: upload, every layer in one command buffer, logits and softmax read back. \
         GPU vs CPU on this image: relative logit error {err:.1e}, same top class: {}.\n\n\
         | path | latency, ms | GFLOP/s |\n|---|---|---|\n\
         | wgpu, tiled shader | {} | {:.1} |\n\
         | wgpu, naive shader | {} | {} |\n\
         | CPU (fq-runtime, {}) | {} | {:.1} |\n\n{}",
        flops / 1e9,
        if same { "yes" } else { "no" },
        ms(times[0]),
        flops / times[0].0 / 1e9,
        ms(times[1]),
        if quick {
            "–".to_string()
        } else {
            format!("{:.2}", flops / times[1].0 / 1e9)
        },
        fq_runtime::exec::kernel::path().name(),
        ms(times[2]),
        flops / times[2].0 / 1e9,
        if quick {
            String::new()
        } else {
            format!(
                "Tiled vs naive on the same adapter: **{:.1}×** faster.\n",
                times[1].0 / times[0].0
            )
        },
    );
    Ok(())
}

/// The token models and ResNet18 at a random per-channel 2–8-bit mix: GPU (tiled shader, one
/// submit of `BATCH` images) vs the CPU executor (images in parallel) on the same batch, ms per
/// image, timed round-robin.
fn zoo_section(dev: &Arc<GpuDevice>, budget: f64, md: &mut String) -> Result<()> {
    const BATCH: usize = 8;
    let narrow_deit = VitConfig {
        dim: 48,
        depth: 2,
        input_size: 64,
        ..VitConfig::deit_tiny(5)
    }
    .build("deit_tiny-w48-d2-64px".into());
    let narrow_tinyvit = TinyVitConfig {
        embed_dims: [16, 32, 40, 80],
        depths: [1, 1, 2, 1],
        input_size: 64,
        ..TinyVitConfig::tiny_vit_5m(5)
    }
    .build("tiny_vit_5m-w16-d1122-64px".into());
    let models: Vec<Graph> = vec![
        narrow_deit,
        narrow_tinyvit,
        ArchSpec::new(Arch::ResNet18, 64, 224, 1000).graph()?,
        VitConfig::deit_tiny(1000).build("deit_tiny_patch16_224".into()),
        TinyVitConfig::tiny_vit_5m(1000).build("tiny_vit_5m_224".into()),
    ];
    *md += &format!(
        "\n### Token models vs ResNet18, GPU vs CPU, ms per image\n\nRandom-init weights at a \
         random per-channel 2–8-bit mix; one batch of {BATCH} images per run (one submit on the \
         GPU, images in parallel on the CPU), timed round-robin; best of the runs, medians in \
         parentheses. GFLOP: the convolutions' and Linear layers' multiply-adds ×2 per image \
         (attention's own products not counted). Error: largest |GPU − CPU| logit relative to \
         the largest.\n\n\
         | model | input | GFLOP | wgpu, tiled shader | CPU (fq-runtime) | GPU time ÷ CPU time | error | \
         same top-1 |\n|---|---|---|---|---|---|---|---|\n"
    );
    for g in &models {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let model = random_mix_model(g, &mut rng)?;
        let gpu =
            GpuExecutor::from_model(dev.clone(), &mut model.clone(), GemmKernel::Tiled, BATCH)?;
        let cpu = Classifier::from_model(model)?;
        let x: Vec<f32> = (0..BATCH * gpu.input_len())
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let (a, b) = (
            gpu.run_batch(&x, BATCH)?.logits,
            cpu.logits_batch(&x, BATCH)?,
        );
        let classes = g.num_classes;
        let top = |l: &[f32]| fq_eval::metrics::argmax_rows(l, classes);
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()))
            / scale;
        let times = {
            let mut fs: Vec<Box<dyn FnMut() + '_>> = vec![
                Box::new(|| {
                    gpu.run_batch(&x, BATCH).expect("gpu forward");
                }),
                Box::new(|| {
                    cpu.logits_batch(&x, BATCH).expect("cpu forward");
                }),
            ];
            time_rounds(&mut fs, 2, 100, budget * 4.0)
        };
        let per = |(best, median): (f64, f64)| {
            format!(
                "{:.1} ({:.1})",
                best * 1e3 / BATCH as f64,
                median * 1e3 / BATCH as f64
            )
        };
        eprintln!("{}: gpu {:?}, cpu {:?}", g.arch, times[0], times[1]);
        *md += &format!(
            "| {} | {s}×{s} | {:.3} | {} | {} | {:.1}× | {err:.1e} | {} |\n",
            g.arch,
            2.0 * g.macs()? as f64 / 1e9,
            per(times[0]),
            per(times[1]),
            times[0].0 / times[1].0,
            if top(&a) == top(&b) { "yes" } else { "no" },
            s = g.input_size,
        );
    }
    Ok(())
}
