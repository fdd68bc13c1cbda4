#[path = "../tests/packed/mod.rs"]
mod packed;
use fq_models::{Arch, ArchSpec};
use fq_runtime::exec::{Activations, Executor};
use packed::{random_input, random_model, Bits};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arch = match args.get(1).map(String::as_str) {
        Some("resnet50") => Arch::ResNet50,
        _ => Arch::ResNet18,
    };
    let threads: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let reps: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(50);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let g = ArchSpec::new(arch, 64, 224, 7).graph().unwrap();
    let mut model = random_model(&g, Bits::Uniform(4), 1).model;
    let mut exec = Executor::from_model(&mut model).unwrap();
    let x = random_input(exec.input_len(), 2);
    let scales = exec.calibrate([x.as_slice()]).unwrap();
    exec.set_activation_scales(scales);
    exec.set_activations(if args.get(4).map(String::as_str) == Some("f32") {
        Activations::F32
    } else {
        Activations::Int8Static
    });
    let mut t = Vec::new();
    for _ in 0..reps {
        let s = Instant::now();
        std::hint::black_box(exec.run(&x).unwrap());
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("best {:.2} median {:.2} ms", t[0], t[t.len() / 2]);
}
