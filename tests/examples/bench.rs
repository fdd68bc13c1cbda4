//! CPU benchmark of the packed runtime (fq-runtime): packed-GEMM GFLOP/s per bit-width on
//! ResNet18's convolution shapes, ResNet18 (224x224, 1000 classes) latency at batch 1 and
//! throughput at batch 8, and the `.fqm` size against the f32 safetensors. PyTorch/onnxruntime
//! figures on the same shapes are read from `bench/reference.json` (written by
//! `bench/reference.py`) when present.
//!
//! The variants compared in one table are timed round-robin, one run each per round, so that the
//! drifts of a shared machine's speed hit them alike. Run through `bench/run.sh`, which writes
//! `bench/results.md`. Not part of `cargo test`.

mod bench_common;
use bench_common::time_rounds;
use bench_common::torch_mm::TorchMm;

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use fq_compress::nn::model::{Mode, Model};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::{BitAssignment, Granularity};
use fq_compress::run::export::pack_model;
use fq_models::{Arch, ArchSpec};
use fq_runtime::classify::Classifier;
use fq_runtime::exec::gemm::{gemm, Epilogue, PanelB, Rows};
use fq_runtime::exec::kernel::NR;
use fq_runtime::exec::{Buf, FloatConv};
use fq_runtime::format::PackedMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// `(layer, M = out channels, K = in * k * k, N = output pixels)` of ResNet18 at 224x224, and
/// a square product for comparison with plain matmul figures; with the convolution of each layer
/// shape, `(in channels, input size, kernel, stride, padding)`.
type Shape = (&'static str, usize, usize, usize, Option<Window>);
type Window = (usize, usize, usize, usize, usize);
const SHAPES: &[Shape] = &[
    ("conv1 7x7/2", 64, 147, 12544, Some((3, 224, 7, 2, 3))),
    ("layer1 3x3", 64, 576, 3136, Some((64, 56, 3, 1, 1))),
    ("layer2 3x3", 128, 1152, 784, Some((128, 28, 3, 1, 1))),
    ("layer3 3x3", 256, 2304, 196, Some((256, 14, 3, 1, 1))),
    ("layer4 3x3", 512, 4608, 49, Some((512, 7, 3, 1, 1))),
    ("square", 1024, 1024, 1024, None),
];
/// Rounds of the GEMM table: each round times every variant of a shape, then `torch.mm` on it.
const GEMM_ROUNDS: usize = 3;

#[derive(Clone, Copy)]
enum W {
    F32,
    Bits(u8),
    Mix,
}

impl W {
    fn label(self) -> String {
        match self {
            W::F32 => "f32".into(),
            W::Bits(b) => format!("U{b}"),
            W::Mix => "mix 2–8".into(),
        }
    }
}

const GEMM_WEIGHTS: [W; 5] = [W::F32, W::Bits(8), W::Bits(4), W::Bits(2), W::Mix];
const MODEL_WEIGHTS: [W; 4] = [W::F32, W::Bits(8), W::Bits(4), W::Mix];

/// Random codes of one weight matrix at `w`'s widths (F32 draws a mix, as before).
fn packed(m: usize, k: usize, w: W, rng: &mut ChaCha8Rng) -> PackedMatrix {
    let width = match w {
        W::Bits(x) => Some(x),
        _ => None,
    };
    bench_common::packed(m, k, width, rng)
}

/// Best GFLOP/s of one shape: every entry of `GEMM_WEIGHTS`, then the direct convolution of the
/// layer (`None` without a window or a tap-reading kernel on this CPU), then `torch.mm` (`None`
/// without the child), over `GEMM_ROUNDS` rounds that alternate the two sides.
fn gemm_gflops(
    (m, k, n, window): (usize, usize, usize, Option<Window>),
    budget: f64,
    torch: &mut Option<TorchMm>,
) -> Result<(Vec<f64>, Option<f64>, Option<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let b = PanelB {
        data: (0..n.div_ceil(NR) * k * NR)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
        k,
        n,
    };
    let dense: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mats: Vec<Option<(PackedMatrix, Vec<usize>)>> = GEMM_WEIGHTS
        .iter()
        .map(|&w| match w {
            W::F32 => None,
            _ => {
                let p = packed(m, k, w, &mut rng);
                let offsets = p.row_offsets();
                Some((p, offsets))
            }
        })
        .collect();
    // The layer as the f32 path's direct kernel runs it: taps read from the input in place.
    let conv = window.and_then(|(c, h, kernel, stride, pad)| {
        let conv = FloatConv::direct((c, h, h), (kernel, stride, pad), &dense, m)?;
        assert_eq!(conv.output_len(), m * n, "the window of {m}x{k}x{n}");
        let x: Vec<f32> = (0..conv.input_len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Some((conv, x))
    });
    // Outputs on a cache line, as the executor's are (`Buf`).
    let mut outs: Vec<Buf<f32>> = (0..=mats.len()).map(|_| Buf::zeroed(m * n)).collect();
    let (conv_out, outs) = outs.split_last_mut().expect("one output per variant");
    let b = &b;
    let mut fs: Vec<Box<dyn FnMut() + '_>> = mats
        .iter()
        .zip(outs.iter_mut())
        .map(|(mat, out)| -> Box<dyn FnMut() + '_> {
            match mat {
                None => {
                    let rows = Rows::F32 {
                        data: &dense,
                        cols: k,
                    };
                    Box::new(move || gemm(&rows, 0, m, b, out, Epilogue::default()))
                }
                Some((p, offsets)) => {
                    let rows = Rows::Packed { m: p, offsets };
                    let epi = Epilogue {
                        scale: Some(&p.scales),
                        ..Epilogue::default()
                    };
                    Box::new(move || gemm(&rows, 0, m, b, out, epi))
                }
            }
        })
        .collect();
    if let Some((conv, x)) = &conv {
        fs.push(Box::new(move || conv.run(x, conv_out)));
    }
    let flops = 2.0 * (m * k * n) as f64;
    let share = budget / GEMM_ROUNDS as f64;
    let mut ours = vec![0f64; fs.len()];
    let mut theirs: Option<f64> = None;
    let variants = fs.len() as f64;
    for _ in 0..GEMM_ROUNDS {
        let times = time_rounds(&mut fs, 2, 200, share * variants);
        for (best, (t, _)) in ours.iter_mut().zip(times) {
            *best = best.max(flops / t / 1e9);
        }
        if let Some(t) = torch {
            let g = t.gflops((m, k, n), share)?;
            theirs = Some(theirs.map_or(g, |b| b.max(g)));
        }
    }
    let direct = conv.is_some().then(|| ours.pop()).flatten();
    Ok((ours, direct, theirs))
}

fn assignment(layers: &[fq_models::QuantLayer], w: W) -> Option<BitAssignment> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    match w {
        W::F32 => None,
        W::Bits(b) => Some(BitAssignment::uniform(layers, b)),
        W::Mix => Some(BitAssignment {
            granularity: Some(Granularity::PerChannel),
            layers: layers
                .iter()
                .map(|l| {
                    let b = (0..l.out_channels)
                        .map(|_| rng.random_range(2..=8))
                        .collect();
                    (l.name.clone(), b)
                })
                .collect(),
        }),
    }
}

fn cpu_description() -> String {
    // The f32 micro-kernel and the integer kernel the runtime dispatched to on this CPU
    // (FQ_MAX_ISA caps both), so a figure says which kernels produced it.
    format!(
        "{}, {} threads (rayon), {} f32 micro-kernel, {} integer kernel",
        bench_common::cpu_model_and_flags(),
        rayon::current_num_threads(),
        fq_runtime::exec::kernel::path().name(),
        fq_runtime::exec::kernel::int8::int8_path().name()
    )
}

fn main() -> Result<()> {
    let args = bench_common::Args::parse("bench/reference.json")?;
    let (out, refs) = (args.out, args.reference);
    let budget = if args.quick { 0.1 } else { 1.0 };
    let r = |path: &[&str]| -> Option<f64> {
        let mut v = refs.as_ref()?;
        for p in path {
            v = v.get(p)?;
        }
        v.as_f64()
    };
    let fmt = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.1}"));

    let mut md = String::new();
    md += "# FairQuant runtime — CPU benchmark\n\n";
    md += &format!(
        "Machine: {}. Generated by `bench/run.sh` (`cargo run --release -p fq-e2e --example \
         bench`). Times are the best of repeated runs, medians in parentheses: the machine is a \
         shared VM whose CPU time fluctuates, and the best is the figure that repeats. Variants \
         in one table are timed round-robin so drifts hit them alike.\n",
        cpu_description()
    );
    match &refs {
        Some(v) => {
            md += &format!(
                "Reference: {} on the same machine and thread count, best of repeated runs \
                 (`bench/reference.py`, run just before{}).\n\n",
                v.get("versions")
                    .and_then(Value::as_str)
                    .unwrap_or("PyTorch"),
                if args.torch.is_some() {
                    "; the GEMM table's `torch.mm` in the same run, alternated with ours"
                } else {
                    ""
                }
            )
        }
        None => md += "No `bench/reference.json`: PyTorch/onnxruntime columns are empty.\n\n",
    }

    md += "## Packed GEMM, GFLOP/s\n\n";
    let mut torch = match &args.torch {
        Some(python) => Some(TorchMm::start(python)?),
        None => None,
    };
    md += &format!(
        "`out[M×N] = W[M×K] · B[K×N]` with each weight row unpacked from its codes on the fly \
         (B already in panel layout, i.e. im2col excluded); 2·M·K·N flops. *f32 direct conv*: the \
         layer's convolution by the f32 path's direct kernel, its taps read from the input where \
         they lie (im2col included; the executor runs the stride-1 3x3 layers by Winograd \
         instead, with fewer multiply-adds). PyTorch: `torch.mm` in f32 on the same shape, {}; \
         *f32 ÷ torch*: the first column's share of it.\n\n| layer | M×K×N |",
        if torch.is_some() {
            format!(
                "timed in the same run, alternated with the Rust side shape by shape \
                 (`bench/reference.py --serve-mm`), best of {GEMM_ROUNDS} rounds each"
            )
        } else {
            "from `bench/reference.json`".to_string()
        }
    );
    for w in GEMM_WEIGHTS {
        md += &format!(" {} |", w.label());
    }
    md += " f32 direct conv | torch f32 | f32 ÷ torch |\n|---|---|";
    md += &"---|".repeat(GEMM_WEIGHTS.len() + 3);
    md += "\n";
    for &(name, m, k, n, window) in SHAPES {
        let (g, direct, live) = gemm_gflops((m, k, n, window), budget, &mut torch)?;
        let theirs = live.or_else(|| r(&["gemm_gflops", &format!("{m}x{k}x{n}")]));
        eprintln!("gemm {name}: {g:.1?}, direct {direct:.1?}, torch.mm {theirs:.1?} GFLOP/s");
        md += &format!("| {name} | {m}×{k}×{n} |");
        for v in &g {
            md += &format!(" {v:.1} |");
        }
        let ratio = theirs.map_or("–".into(), |t| format!("{:.0}%", 100.0 * g[0] / t));
        md += &format!(" {} | {} | {ratio} |\n", fmt(direct), fmt(theirs));
    }
    drop(torch);

    let graph = ArchSpec::new(Arch::ResNet18, 64, 224, 1000).graph()?;
    let layers = graph.quant_layers()?;
    let dev = Device::Cpu;
    let params = ParamStore::init(&graph, 0, &dev)?;
    let tmp = tempfile::tempdir()?;
    let st = tmp.path().join("fp32.safetensors");
    params.save(&st)?;
    let f32_bytes = std::fs::metadata(&st)?.len();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f32> = (0..3 * 224 * 224)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let x8: Vec<f32> = x.iter().cycle().take(8 * x.len()).copied().collect();

    let mut models = Vec::new();
    let mut sizes = String::new();
    for w in MODEL_WEIGHTS {
        let bits = assignment(&layers, w);
        let meta = bench_common::imagenet_meta();
        let packed = pack_model(&graph, &params, bits.as_ref(), meta)?;
        let bytes = packed.to_bytes()?;
        let avg = packed.summary.avg_bits;
        let load = Instant::now();
        let c = Classifier::from_bytes(&bytes)?;
        let load_ms = load.elapsed().as_secs_f64() * 1e3;
        sizes += &format!(
            "| {} | {avg:.2} | {:.2} | {:.2}× |\n",
            w.label(),
            bytes.len() as f64 / 1e6,
            f32_bytes as f64 / bytes.len() as f64
        );
        models.push((w, avg, load_ms, c));
    }
    let candle = Model::new(graph.clone(), params, dev.clone());
    let xt = Tensor::from_vec(x.clone(), (1, 3, 224, 224), &dev)?;

    let mut batch1: Vec<Box<dyn FnMut() + '_>> = models
        .iter()
        .map(|(_, _, _, c)| -> Box<dyn FnMut() + '_> {
            Box::new(|| {
                c.logits(&x).expect("input size");
            })
        })
        .collect();
    batch1.push(Box::new(|| {
        candle
            .forward(&xt, Mode::Eval, None)
            .expect("candle forward");
    }));
    let n1 = batch1.len() as f64;
    let t1 = time_rounds(&mut batch1, 5, 200, 4.0 * budget * n1);
    drop(batch1);
    let mut batch8: Vec<Box<dyn FnMut() + '_>> = models
        .iter()
        .map(|(_, _, _, c)| -> Box<dyn FnMut() + '_> {
            Box::new(|| {
                c.logits_batch(&x8, 8).expect("input size");
            })
        })
        .collect();
    let n8 = batch8.len() as f64;
    let t8 = time_rounds(&mut batch8, 2, 200, 4.0 * budget * n8);

    md += "\n## ResNet18, 224×224, 1000 classes\n\n";
    md += "Random-init weights (latency does not depend on them); batch 1 latency, batch 8 \
           throughput (fq-runtime runs the 8 images in parallel), and the time to verify and \
           load the file from memory.\n\n";
    md += "| runtime | weights | batch 1, ms: best (median) | batch 8, images/s | load, ms |\n\
           |---|---|---|---|---|\n";
    for (i, (w, avg, load_ms, _)) in models.iter().enumerate() {
        let ((b, m), (b8, _)) = (t1[i], t8[i]);
        eprintln!(
            "resnet18 {}: {:.1} ms (median {:.1})",
            w.label(),
            b * 1e3,
            m * 1e3
        );
        md += &format!(
            "| fq-runtime | {} ({avg:.2} bits) | {:.1} ({:.1}) | {:.1} | {load_ms:.0} |\n",
            w.label(),
            b * 1e3,
            m * 1e3,
            8.0 / b8
        );
    }
    let (cb, cm) = t1[models.len()];
    md += &format!(
        "| candle 0.11 (the compressor) | f32 | {:.1} ({:.1}) | – | – |\n",
        cb * 1e3,
        cm * 1e3
    );
    for (name, key) in [
        ("PyTorch (torchvision)", "torch"),
        ("onnxruntime", "onnxruntime"),
    ] {
        md += &format!(
            "| {name} | f32 | {} ({}) | {} | – |\n",
            fmt(r(&["resnet18_ms", key])),
            fmt(r(&["resnet18_median_ms", key])),
            fmt(r(&["resnet18_batch8_img_s", key]))
        );
    }
    md += &format!(
        "\n## File size\n\nf32 safetensors of the same model: {:.2} MB.\n\n\
         | weights | avg bits | .fqm, MB | smaller than f32 by |\n|---|---|---|---|\n{sizes}",
        f32_bytes as f64 / 1e6
    );
    // The GPU and training benchmarks' sections of the same file are kept.
    fq_eval::sections::write_keeping_sections(&out, &md, &[])?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
