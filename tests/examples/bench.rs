//! CPU benchmark of the packed runtime (fq-runtime): packed-GEMM GFLOP/s per bit-width on
//! ResNet18's convolution shapes, ResNet18 (224x224, 1000 classes) latency at batch 1, and the
//! `.fqm` size against the f32 safetensors. PyTorch/onnxruntime figures on the same shapes are
//! read from `bench/reference.json` (written by `bench/reference.py`) when present.
//!
//! Run through `bench/run.sh`, which writes `bench/results.md`. Not part of `cargo test`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use fq_compress::export::{pack_model, ExportMeta};
use fq_compress::methods::Method;
use fq_compress::model::{Mode, Model};
use fq_compress::params::ParamStore;
use fq_compress::quant::{BitAssignment, Granularity};
use fq_models::ArchSpec;
use fq_runtime::classify::Classifier;
use fq_runtime::exec::gemm::{gemm, Epilogue, PanelB, Rows};
use fq_runtime::exec::kernel::NR;
use fq_runtime::format::PackedMatrix;
use fq_runtime::preprocess::PreprocessConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// `(layer, M = out channels, K = in * k * k, N = output pixels)` of ResNet18 at 224x224, and
/// a square product for comparison with plain matmul figures.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("conv1 7x7/2", 64, 147, 12544),
    ("layer1 3x3", 64, 576, 3136),
    ("layer2 3x3", 128, 1152, 784),
    ("layer3 3x3", 256, 2304, 196),
    ("layer4 3x3", 512, 4608, 49),
    ("square", 1024, 1024, 1024),
];

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

const WEIGHTS: [W; 5] = [W::F32, W::Bits(8), W::Bits(4), W::Bits(2), W::Mix];

/// Seconds of `f`: the best and the median of at least `min_reps` runs and about `budget` seconds
/// (after one warm-up). The best is the figure compared: on a shared VM whose CPU time fluctuates
/// it is the one that repeats, for this runtime and for the references alike.
fn time(min_reps: usize, budget: f64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let start = Instant::now();
    let mut t = Vec::new();
    while t.len() < min_reps || (start.elapsed().as_secs_f64() < budget && t.len() < 200) {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

fn gemm_gflops(m: usize, k: usize, n: usize, w: W, budget: f64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let b = PanelB {
        data: (0..n.div_ceil(NR) * k * NR)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
        k,
        n,
    };
    let mut out = vec![0f32; m * n];
    let flops = 2.0 * (m * k * n) as f64;
    let secs = match w {
        W::F32 => {
            let data: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let rows = Rows::F32 {
                data: &data,
                cols: k,
            };
            time(3, budget, || {
                gemm(&rows, 0, m, &b, &mut out, Epilogue::default())
            })
        }
        W::Bits(_) | W::Mix => {
            let bits: Vec<u8> = (0..m)
                .map(|_| match w {
                    W::Bits(x) => x,
                    _ => rng.random_range(2..=8),
                })
                .collect();
            let codes: Vec<i8> = bits
                .iter()
                .flat_map(|&b| {
                    let q = (1i32 << (b - 1)) - 1;
                    (0..k)
                        .map(|_| rng.random_range(-q..=q) as i8)
                        .collect::<Vec<_>>()
                })
                .collect();
            let pm = PackedMatrix::from_codes(k, bits, &codes, vec![0.01; m]).unwrap();
            let offsets = pm.row_offsets();
            let rows = Rows::Packed {
                m: &pm,
                offsets: &offsets,
            };
            let epi = Epilogue {
                scale: Some(&pm.scales),
                ..Epilogue::default()
            };
            time(3, budget, || gemm(&rows, 0, m, &b, &mut out, epi))
        }
    };
    flops / secs.0 / 1e9
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

fn reference(path: &PathBuf) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn main() -> Result<()> {
    let mut out = PathBuf::from("bench/results.md");
    let mut reference_path = PathBuf::from("bench/reference.json");
    let mut budget = 1.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().context("--out FILE")?.into(),
            "--reference" => reference_path = args.next().context("--reference FILE")?.into(),
            "--quick" => budget = 0.1,
            other => {
                anyhow::bail!("unknown argument `{other}` (--out FILE, --reference FILE, --quick)")
            }
        }
    }
    let refs = reference(&reference_path);
    let r = |path: &[&str]| -> Option<f64> {
        let mut v = refs.as_ref()?;
        for p in path {
            v = v.get(p)?;
        }
        v.as_f64()
    };
    let fmt = |x: Option<f64>, digits: usize| x.map_or("–".into(), |v| format!("{v:.digits$}"));

    let threads = rayon::current_num_threads();
    #[cfg(target_arch = "x86_64")]
    let simd = if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        "AVX2+FMA micro-kernel"
    } else {
        "portable micro-kernel"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let simd = "portable micro-kernel";
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());

    let mut md = String::new();
    md += "# FairQuant runtime — CPU benchmark\n\n";
    md += &format!(
        "Machine: {cpu}, {threads} threads (rayon), {simd}. Generated by `bench/run.sh` \
         (`cargo run --release -p fq-e2e --example bench`). Times are the best of repeated runs \
         (the machine is a shared VM whose CPU time fluctuates; the best is what repeats), \
         medians in parentheses.\n"
    );
    match &refs {
        Some(v) => {
            md +=
                &format!(
                "Reference: {} on the same machine and thread count (`bench/reference.py`).\n\n",
                v.get("versions").and_then(Value::as_str).unwrap_or("PyTorch")
            )
        }
        None => md += "No `bench/reference.json`: PyTorch/onnxruntime columns are empty.\n\n",
    }

    md += "## Packed GEMM, GFLOP/s\n\n";
    md += "`out[M×N] = W[M×K] · B[K×N]` with each weight row unpacked from its codes on the fly \
           (B already in panel layout, i.e. im2col excluded); 2·M·K·N flops. PyTorch: `torch.mm` \
           in f32 on the same shape.\n\n";
    md += "| layer | M×K×N |";
    for w in WEIGHTS {
        md += &format!(" {} |", w.label());
    }
    md += " torch f32 |\n|---|---|";
    md += &"---|".repeat(WEIGHTS.len() + 1);
    md += "\n";
    for &(name, m, k, n) in SHAPES {
        md += &format!("| {name} | {m}×{k}×{n} |");
        for w in WEIGHTS {
            let g = gemm_gflops(m, k, n, w, budget);
            eprintln!("gemm {name} {}: {g:.1} GFLOP/s", w.label());
            md += &format!(" {g:.1} |");
        }
        let key = format!("{m}x{k}x{n}");
        md += &format!(" {} |\n", fmt(r(&["gemm_gflops", &key]), 1));
    }

    let graph = ArchSpec::new("resnet18", 64, 224, 1000).graph()?;
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
    let meta = || ExportMeta {
        method: Method::PtqU4,
        classes: (0..1000).map(|i| format!("class{i}")).collect(),
        groups: vec!["all".into()],
        preprocess: PreprocessConfig::default(),
        test_metrics: None,
    };

    let mut latency = String::new();
    let mut sizes = String::new();
    for w in [W::F32, W::Bits(8), W::Bits(4), W::Mix] {
        let bits = assignment(&layers, w);
        let packed = pack_model(&graph, &params, bits.as_ref(), meta())?;
        let bytes = packed.to_bytes()?;
        let avg = packed.summary.avg_bits;
        let load = Instant::now();
        let c = Classifier::from_bytes(&bytes)?;
        let load_ms = load.elapsed().as_secs_f64() * 1e3;
        let (best, median) = time(5, 4.0 * budget, || {
            c.logits(&x).unwrap();
        });
        let x8: Vec<f32> = x.iter().cycle().take(8 * x.len()).copied().collect();
        let (b8, _) = time(2, 4.0 * budget, || {
            c.logits_batch(&x8, 8).unwrap();
        });
        let (best, median) = (best * 1e3, median * 1e3);
        eprintln!(
            "resnet18 {}: {best:.1} ms (median {median:.1}), batch 8 {:.1} img/s",
            w.label(),
            8.0 / b8
        );
        latency += &format!(
            "| fq-runtime | {} ({avg:.2} bits) | {best:.1} ({median:.1}) | {:.1} | {load_ms:.0} |\n",
            w.label(),
            8.0 / b8
        );
        sizes += &format!(
            "| {} | {avg:.2} | {:.2} | {:.2}× |\n",
            w.label(),
            bytes.len() as f64 / 1e6,
            f32_bytes as f64 / bytes.len() as f64
        );
    }
    let model = Model::new(graph.clone(), params, dev.clone());
    let xt = Tensor::from_vec(x.clone(), (1, 3, 224, 224), &dev)?;
    let (cb, cm) = time(3, 4.0 * budget, || {
        model.forward(&xt, Mode::Eval, None).unwrap();
    });
    latency += &format!(
        "| candle 0.11 (the compressor) | f32 | {:.1} ({:.1}) | – | – |\n",
        cb * 1e3,
        cm * 1e3
    );
    for (name, key) in [
        ("PyTorch (torchvision)", "torch"),
        ("onnxruntime", "onnxruntime"),
    ] {
        latency += &format!(
            "| {name} | f32 | {} ({}) | {} | – |\n",
            fmt(r(&["resnet18_ms", key]), 1),
            fmt(r(&["resnet18_median_ms", key]), 1),
            fmt(r(&["resnet18_batch8_img_s", key]), 1)
        );
    }

    md += "\n## ResNet18, 224×224, 1000 classes\n\n";
    md += "Random-init weights (latency does not depend on them); batch 1 latency, batch 8 \
           throughput (fq-runtime runs the 8 images in parallel), and the time to verify and \
           load the file from memory.\n\n";
    md += "| runtime | weights | batch 1, ms: best (median) | batch 8, images/s | load, ms |\n|---|---|---|---|---|\n";
    md += &latency;
    md += &format!(
        "\n## File size\n\nf32 safetensors of the same model: {:.2} MB.\n\n",
        f32_bytes as f64 / 1e6
    );
    md += "| weights | avg bits | .fqm, MB | smaller than f32 by |\n|---|---|---|---|\n";
    md += &sizes;
    fq_runtime::atomic::write_atomic(&out, md.as_bytes())?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
