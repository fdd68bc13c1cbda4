//! Where the CPU time of one image goes, per kind of step (`Step::kind`), for the zoo at 224x224
//! with U4 weights, on the f32 path and on the integer path (dynamic i8 activations): the
//! profile issue 16 asks for before the token models are optimised. Random-init weights.
//!   cargo run --release -p fq-e2e --example profile_steps -- [--threads N] [--reps N] [--out FILE]
//!     [--only SUBSTRING]   (only the models whose label contains it, e.g. `--only i`: the token models)
//! Prints a table (and with `--out`, writes it as the "Per-step profile" section of that file).

mod bench_common;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::BitAssignment;
use fq_compress::run::export::pack_model;
use fq_models::ArchSpec;
use fq_runtime::exec::{kernel, Activations, Executor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MODELS: &[(&str, &str)] = &[
    ("resnet18", "ResNet18"),
    ("resnet50", "ResNet50"),
    ("deit_tiny_patch16_224", "DeiT-Tiny"),
    ("tiny_vit_5m_224", "TinyViT-5M"),
];
const KINDS: &[&str] = &[
    "conv",
    "linear",
    "attention",
    "layer-norm",
    "gelu",
    "layout",
    "pool",
    "add",
    "relu",
    "token",
];

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut threads, mut reps, mut out, mut only) = (1usize, 5usize, None, String::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().unwrap_or_default().parse()?,
            "--reps" => reps = args.next().unwrap_or_default().parse()?,
            "--out" => out = args.next(),
            "--only" => only = args.next().unwrap_or_default(),
            _ => anyhow::bail!("unknown argument {a}"),
        }
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mut md = format!(
        "## Per-step profile of one image (issue 16)\n\n{cpu}, {threads} thread(s), kernel paths \
         f32 `{}`, int8 `{}`; U4 weights, random init, 224×224, median of {reps} runs per step \
         kind, ms (share of the total). `cargo run --release -p fq-e2e --example profile_steps`.\n\n\
         | model | activations | total | {} |\n|---|---|---|{}\n",
        kernel::path().name(),
        kernel::int8_path().name(),
        KINDS.join(" | "),
        "---|".repeat(KINDS.len())
    );
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f32> = (0..3 * 224 * 224)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    for &(arch, label) in MODELS.iter().filter(|(_, l)| l.contains(only.as_str())) {
        let graph = ArchSpec::new(arch.parse()?, 64, 224, 1000).graph()?;
        let params = ParamStore::init(&graph, 0, &candle_core::Device::Cpu)?;
        let bits = BitAssignment::uniform(&graph.quant_layers()?, 4);
        let meta = bench_common::imagenet_meta();
        let mut model = pack_model(&graph, &params, Some(&bits), meta)?;
        let mut exec = Executor::from_model(&mut model)?;
        for activations in [Activations::F32, Activations::Int8Dynamic] {
            exec.set_activations(activations);
            let mut per_kind: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            let mut totals = Vec::new();
            for rep in 0..=reps {
                let mut kinds: BTreeMap<&str, f64> = BTreeMap::new();
                let start = Instant::now();
                let mut last = start;
                // On a pool thread, as `Executor::run` does (from outside the pool every parallel
                // loop would hand over to the pool and wait: wake-ups a real run does not have).
                rayon::scope(|_| {
                    exec.run_stepped(&x, |s| {
                        let now = Instant::now();
                        *kinds.entry(exec.steps()[s].kind()).or_default() +=
                            (now - last).as_secs_f64() * 1e3;
                        last = now;
                    })
                })?;
                if rep > 0 {
                    totals.push(start.elapsed().as_secs_f64() * 1e3);
                    for (k, v) in kinds {
                        per_kind.entry(k).or_default().push(v);
                    }
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let total = median(&mut totals);
            let cells: Vec<String> = KINDS
                .iter()
                .map(|k| match per_kind.get_mut(k) {
                    Some(v) => {
                        let m = median(v);
                        format!("{m:.1} ({:.0}%)", 100.0 * m / total)
                    }
                    None => "–".into(),
                })
                .collect();
            let line = format!(
                "| {label} | {} | {total:.1} | {} |\n",
                activations.name(),
                cells.join(" | ")
            );
            eprint!("{line}");
            md += &line;
        }
    }
    if let Some(out) = out {
        fq_eval::sections::write_keeping_sections(std::path::Path::new(&out), &md, &[])?;
        eprintln!("wrote {out}");
    }
    Ok(())
}
