//! Whole-model latency of the f32 and the integer paths (dynamic i8 activations; static ones
//! calibrated on the input, with and without requantising in the epilogue, with codes in quads or
//! channel-major) on a random ResNet at 224x224, interleaved, median per image:
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
        let scales = exec.calibrate([x.as_slice()]).unwrap();
        exec.set_activation_scales(scales);
        let variants = [
            (Activations::F32, true, true),
            (Activations::Int8Dynamic, true, true),
            (Activations::Int8Static, true, true),
            (Activations::Int8Static, false, true),
            (Activations::Int8Static, true, false),
        ];
        let mut times = vec![Vec::new(); variants.len()];
        for rep in 0..8 {
            for (i, &(a, fused, quads)) in variants.iter().enumerate() {
                exec.set_activations(a);
                exec.set_requantize_in_epilogue(fused);
                exec.set_quad_layout(quads);
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
        let m: Vec<f64> = times.iter_mut().map(median).collect();
        println!(
            "{bits:?}: f32 {:.1} ms, int8-dynamic {:.1} ms, int8-static {:.1} ms (requantised in \
             the epilogue, codes in quads), {:.1} ms (each layer quantising its input), {:.1} ms \
             (codes channel-major) per image",
            m[0], m[1], m[2], m[3], m[4]
        );
    }
}
