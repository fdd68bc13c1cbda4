//! Whole-model latency of DeiT-Tiny and TinyViT-5M (random packed 2–8-bit weights, 224x224)
//! with each GELU fused into the Linear/convolution before it and as its own step, on the f32
//! and the
//! dynamic int8 paths, interleaved in one process, median (and least) time per image, plus the
//! median time of the Linear, convolution and GELU steps of each:
//! `cargo run --release -p fq-runtime --example token_model_timing -- [threads] [reps]`.
//! A guide while the token models are tuned (issue 16); the benchmark is `bench/`.

#[path = "../tests/packed/mod.rs"]
mod packed;

use std::time::Instant;

use fq_models::{Arch, ArchSpec};
use fq_runtime::exec::{kernel, Activations, Executor};
use packed::{random_input, random_token_model};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
    let reps: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(9);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    println!(
        "224x224, {threads} thread(s), {reps} timed runs per variant; kernel paths: f32 {}, int8 {}",
        kernel::path().name(),
        kernel::int8_path().name()
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for arch in [Arch::DeitTiny, Arch::TinyVit5m] {
        // Width 64 is the architecture as published (DeiT-Tiny's 192 features, TinyViT-5M's
        // 64..320 channels).
        let g = ArchSpec::new(arch, 64, 224, 7).graph().unwrap();
        let mut exec = Executor::from_model(&mut random_token_model(&g, 1)).unwrap();
        let x = random_input(exec.input_len(), 2);
        let variants = [
            (Activations::F32, true),
            (Activations::F32, false),
            (Activations::Int8Dynamic, true),
            (Activations::Int8Dynamic, false),
        ];
        let mut total = vec![Vec::new(); variants.len()];
        // Per variant, per rep: time in Linear, convolution and GELU steps.
        let mut linear = vec![Vec::new(); variants.len()];
        let mut conv = vec![Vec::new(); variants.len()];
        let mut gelu = vec![Vec::new(); variants.len()];
        // One activation path at a time (switching prepares or drops the i8 weights, which
        // would leave the next run a cold cache); fused and unfused alternate, in alternating
        // order, so neither always runs first.
        for (i0, pair) in variants.chunks(2).enumerate() {
            exec.set_activations(pair[0].0);
            for rep in 0..=reps {
                for j in 0..2 {
                    let i = 2 * i0 + (j + rep) % 2;
                    exec.set_gelu_fusion(variants[i].1);
                    let kinds: Vec<&str> = exec.steps().iter().map(|s| s.kind()).collect();
                    let (mut lin, mut cv, mut gel) = (0.0, 0.0, 0.0);
                    let t = Instant::now();
                    let mut last = Instant::now();
                    std::hint::black_box(
                        exec.run_stepped(&x, |s| {
                            let now = Instant::now();
                            let dt = (now - last).as_secs_f64() * 1e3;
                            last = now;
                            match kinds[s] {
                                "linear" => lin += dt,
                                "conv" => cv += dt,
                                "gelu" => gel += dt,
                                _ => {}
                            }
                        })
                        .unwrap(),
                    );
                    if rep > 0 {
                        total[i].push(t.elapsed().as_secs_f64() * 1e3);
                        linear[i].push(lin);
                        conv[i].push(cv);
                        gelu[i].push(gel);
                    }
                }
            }
        }
        for (i, &(a, fused)) in variants.iter().enumerate() {
            let min = total[i].iter().copied().fold(f64::INFINITY, f64::min);
            println!(
                "{arch:?} {} GELU {}: median {:.2} ms, min {min:.2} ms per image (Linear steps \
                 {:.2} ms, conv steps {:.2} ms, GELU steps {:.2} ms)",
                a.name(),
                if fused { "fused  " } else { "unfused" },
                median(&mut total[i]),
                median(&mut linear[i]),
                median(&mut conv[i]),
                median(&mut gelu[i]),
            );
        }
    }
}
