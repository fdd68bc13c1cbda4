//! What the benchmark binaries share: round-robin timing of the variants of one table.

use std::time::Instant;

pub mod torch_mm;

use fq_compress::methods::Method;
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::{BitAssignment, Granularity};
use fq_compress::run::export::{pack_model, ExportMeta};
use fq_models::Graph;
use fq_runtime::format::{PackedMatrix, PackedModel};
use fq_runtime::preprocess::PreprocessConfig;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `g` with seed-0 random weights and a random per-channel 2–8-bit mix drawn from `rng`, packed
/// as `fq-compress export` packs a run (classes `c0…`, two groups): the model the GPU
/// benchmarks time against the CPU path.
/// The export metadata of the benchmarks' ImageNet-sized models: 1000 classes, one group,
/// ImageNet preprocessing (latency does not depend on any of it).
#[allow(dead_code)]
pub fn imagenet_meta() -> ExportMeta {
    ExportMeta {
        method: Method::PtqU4.into(),
        classes: (0..1000).map(|i| format!("class{i}")).collect(),
        groups: vec!["all".into()],
        preprocess: PreprocessConfig::default(),
        test_metrics: None,
    }
}

/// A random per-channel bit-width in `widths` for every output channel of `g`'s quantized layers.
#[allow(dead_code)]
pub fn random_bits(
    g: &Graph,
    rng: &mut ChaCha8Rng,
    widths: std::ops::RangeInclusive<u8>,
) -> anyhow::Result<BitAssignment> {
    Ok(BitAssignment {
        granularity: Some(Granularity::PerChannel),
        layers: g
            .quant_layers()?
            .iter()
            .map(|l| {
                let b = (0..l.out_channels)
                    .map(|_| rng.random_range(widths.clone()))
                    .collect();
                (l.name.clone(), b)
            })
            .collect(),
    })
}

#[allow(dead_code)]
pub fn random_mix_model(g: &Graph, rng: &mut ChaCha8Rng) -> anyhow::Result<PackedModel> {
    let p = ParamStore::init(g, 0, &candle_core::Device::Cpu)?;
    let bits = random_bits(g, rng, 2..=8)?;
    let meta = ExportMeta {
        method: Method::PtqU4.into(),
        classes: (0..g.num_classes).map(|i| format!("c{i}")).collect(),
        groups: vec!["I-III".into(), "IV-VI".into()],
        preprocess: PreprocessConfig {
            width: g.input_size as u32,
            height: g.input_size as u32,
            ..PreprocessConfig::default()
        },
        test_metrics: None,
    };
    pack_model(g, &p, Some(&bits), meta)
}

/// A packed matrix of random codes at one width (`Some`) or a per-row mix of 2..=8, scale 0.01.
#[allow(dead_code)]
pub fn packed(rows: usize, k: usize, width: Option<u8>, rng: &mut ChaCha8Rng) -> PackedMatrix {
    let bits: Vec<u8> = (0..rows)
        .map(|_| width.unwrap_or_else(|| rng.random_range(2..=8)))
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
    PackedMatrix::from_codes(k, bits, &codes, vec![0.01; rows]).expect("valid codes")
}

/// Best and median seconds of each closure, run in turn round after round (after one warm-up
/// round) for at least `min_rounds` rounds and about `budget` seconds, at most `max_rounds`.
/// The best is the figure compared: on a shared VM whose CPU time fluctuates it is the one that
/// repeats; running the variants in turn makes drift hit them alike.
#[allow(dead_code)]
pub fn time_rounds(
    fs: &mut [Box<dyn FnMut() + '_>],
    min_rounds: usize,
    max_rounds: usize,
    budget: f64,
) -> Vec<(f64, f64)> {
    fs.iter_mut().for_each(|f| f());
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); fs.len()];
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < min_rounds || (start.elapsed().as_secs_f64() < budget && rounds < max_rounds) {
        for (f, ti) in fs.iter_mut().zip(&mut t) {
            let s = Instant::now();
            f();
            ti.push(s.elapsed().as_secs_f64());
        }
        rounds += 1;
    }
    t.into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2])
        })
        .collect()
}

/// The command line of a benchmark that compares against a reference file (the GPU bench has
/// its own flags, so it leaves this unused).
#[allow(dead_code)]
pub struct Args {
    pub out: std::path::PathBuf,
    /// The reference tools' figures, if the file exists and parses.
    pub reference: Option<serde_json::Value>,
    /// Whether `--quick` asked for short timings.
    pub quick: bool,
    /// `--torch PYTHON`: a Python with torch, to time `torch.mm` beside the GEMM (`bench.rs`).
    pub torch: Option<String>,
}

#[allow(dead_code)]
impl Args {
    /// Parses `--out FILE` (default `bench/results.md`), `--reference FILE` (default
    /// `reference`), `--quick` and `--torch PYTHON`.
    pub fn parse(reference: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut out = std::path::PathBuf::from("bench/results.md");
        let mut reference_path = std::path::PathBuf::from(reference);
        let mut quick = false;
        let mut torch = None;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--out" => out = args.next().context("--out FILE")?.into(),
                "--reference" => reference_path = args.next().context("--reference FILE")?.into(),
                "--quick" => quick = true,
                "--torch" => torch = Some(args.next().context("--torch PYTHON")?),
                other => anyhow::bail!(
                    "unknown argument `{other}` (--out FILE, --reference FILE, --quick, \
                     --torch PYTHON)"
                ),
            }
        }
        let reference = std::fs::read_to_string(&reference_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        Ok(Self {
            out,
            reference,
            quick,
            torch,
        })
    }
}

/// The CPU's model name and its SIMD flags (x86's avx*, amx*, fma; aarch64's asimd*, sve*,
/// i8mm), from `/proc/cpuinfo`: the machines this project runs on differ, and every figure names
/// the one that produced it.
#[allow(dead_code)] // not every bench example writes a CPU line
pub fn cpu_model_and_flags() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |names: &[&str]| {
        info.lines()
            .find(|l| names.iter().any(|n| l.starts_with(n)))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let model = match field(&["model name"]) {
        m if m.is_empty() => "unknown CPU".to_string(),
        m => m,
    };
    let all = field(&["flags", "Features"]);
    let simd: Vec<&str> = all
        .split_whitespace()
        .filter(|f| {
            ["avx", "amx", "asimd", "sve", "i8mm"]
                .iter()
                .any(|p| f.starts_with(p))
                || *f == "fma"
        })
        .collect();
    format!("{model} (flags: {})", simd.join(", "))
}
