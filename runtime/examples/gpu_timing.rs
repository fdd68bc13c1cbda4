//! Quick before/after timing of the WGSL GEMM on whatever adapter `GpuDevice::new` opens (on the
//! development machines: lavapipe), without candle (the full benchmark, `bench_gpu` in fq-e2e,
//! needs the compressor): the packed Linear GEMM (tiled shader) and ResNet18-224 batch 1 and 8
//! at a random per-channel 2–8-bit mix. Best and median of `rounds` runs, ms.
//! `cargo run --release -p fq-runtime --features wgpu --example gpu_timing -- [rounds]`.

#[path = "../tests/packed/mod.rs"]
mod packed;

use std::sync::Arc;
use std::time::Instant;

use fq_models::{Arch, ArchSpec};
use fq_runtime::format::{Layer, LayerWeights, PackedMatrix};
use fq_runtime::gpu::{GemmKernel, GpuDevice, GpuExecutor, LinearGemm};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Best and median of `rounds` timings of `f`, ms.
fn time(rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

fn main() {
    // SAFETY: first statement of `main`, no other thread exists yet (see `driver_env::prepare`).
    unsafe {
        fq_runtime::driver_env::prepare();
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dev = Arc::new(GpuDevice::new().expect("a GPU adapter"));
    println!("adapter: {}", dev.description());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (m, n, k) in [(1, 1024, 1024), (32, 1024, 1024), (256, 1024, 1024)] {
        let bits: Vec<u8> = (0..n).map(|_| rng.random_range(2..=8)).collect();
        let codes: Vec<i8> = bits
            .iter()
            .flat_map(|&b| {
                let q = (1i32 << (b - 1)) - 1;
                (0..k)
                    .map(|_| rng.random_range(-q..=q) as i8)
                    .collect::<Vec<_>>()
            })
            .collect();
        let w = PackedMatrix::from_codes(k, bits, &codes, vec![0.01; n]).unwrap();
        let layer = Layer {
            name: "gemm".into(),
            weights: LayerWeights::Packed(w),
            bias: None,
        };
        let g = LinearGemm::new(dev.clone(), &layer, m, GemmKernel::Tiled).unwrap();
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        g.set_input(&x).unwrap();
        let (best, med) = time(rounds, || g.run().unwrap());
        let gf = 2.0 * (m * n * k) as f64 / best / 1e6;
        println!("GEMM {m}x{n}x{k} mix 2-8: {best:.1} ms ({med:.1}), {gf:.2} GFLOP/s");
    }
    let graph = ArchSpec::new(Arch::ResNet18, 64, 224, 1000)
        .graph()
        .unwrap();
    let mut model = packed::random_model(&graph, packed::Bits::RandomMix, 7).model;
    let plan = fq_runtime::exec::Plan::from_model(&mut model).unwrap();
    for batch in [1usize, 8] {
        let gpu = GpuExecutor::from_plan(dev.clone(), &plan, GemmKernel::Tiled, batch).unwrap();
        let x: Vec<f32> = (0..batch * gpu.input_len())
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let r = if batch == 1 {
            rounds
        } else {
            rounds.div_ceil(2)
        };
        let (best, med) = time(r, || {
            gpu.run_batch(&x, batch).unwrap();
        });
        println!(
            "ResNet18-224 batch {batch}: {best:.0} ms ({med:.0}) per batch, {:.0} ms per image",
            best / batch as f64
        );
    }
}
