//! Whole-model latency of the f32 and the integer (dynamic i8 activations) paths on a random
//! ResNet at 224x224, interleaved, median per image:
//! `cargo run --release -p fq-runtime --example int8_model_timing -- [resnet18|resnet50] [threads]`.
//! A guide while the integer path is built (issue 16); the benchmark is `bench/`.

#[path = "../tests/packed/mod.rs"]
mod packed;

use std::time::Instant;

use fq_models::{Arch, ArchSpec};
use fq_runtime::exec::{kernel, Activations, Executor};
use packed::{random_input, random_model, Bits};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arch = match args.get(1).map(String::as_str) {
        Some("resnet50") => Arch::ResNet50,
        _ => Arch::ResNet18,
    };
    let threads: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let g = ArchSpec::new(arch, 64, 224, 7).graph().unwrap();
    println!(
        "{} at 224, {threads} thread(s); kernel paths: f32 {}, int8 {}",
        g.arch,
        kernel::path().name(),
        kernel::int8_path().name()
    );
    for bits in [Bits::Uniform(4), Bits::RandomMix] {
        let mut model = random_model(&g, bits, 1).model;
        let mut exec = Executor::from_model(&mut model).unwrap();
        let x = random_input(exec.input_len(), 2);
        let mut times = [Vec::new(), Vec::new()];
        for rep in 0..8 {
            for (i, a) in [Activations::F32, Activations::Int8Dynamic]
                .into_iter()
                .enumerate()
            {
                exec.set_activations(a);
                let t = Instant::now();
                std::hint::black_box(exec.run(&x).unwrap());
                if rep > 0 {
                    times[i].push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (f, q) = (median(&mut times[0]), median(&mut times[1]));
        println!(
            "{bits:?}: f32 {f:.1} ms, int8-dynamic {q:.1} ms per image (f32 / int8 = {:.2})",
            f / q
        );
    }
}
