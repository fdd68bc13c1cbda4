//! Times the packed f32 GEMM against the integer GEMM (issue 16 groundwork) on ResNet-18 layer
//! shapes, one thread, 4-bit codes: `cargo run --release -p fq-runtime --example int8_gemm_timing`.
//! Prints the CPU's kernel paths; a rough guide for the integer executor, not the benchmark.

use std::time::Instant;

use fq_runtime::exec::gemm::{gemm, Epilogue, PanelB, Rows};
use fq_runtime::exec::int8_gemm::{dynamic_scale, gemm_i8, PanelB8, WeightsI8};
use fq_runtime::exec::kernel::{self, NR};
use fq_runtime::format::PackedMatrix;

fn main() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .unwrap();
    println!(
        "kernel paths: f32 {}, int8 {}",
        kernel::path().name(),
        kernel::int8_path().name()
    );
    // (name, output channels, k = in * 3 * 3, output pixels)
    for (name, rows, k, n) in [
        ("layer1 3x3 64", 64, 576, 3136),
        ("layer2 3x3 128", 128, 1152, 784),
        ("layer3 3x3 256", 256, 2304, 196),
        ("layer4 3x3 512", 512, 4608, 49),
    ] {
        let codes: Vec<i8> = (0..rows * k).map(|j| ((j * 7) % 15) as i8 - 7).collect();
        let m = PackedMatrix::from_codes(k, vec![4; rows], &codes, vec![0.01; rows]).unwrap();
        let offsets = m.row_offsets();
        let x: Vec<f32> = (0..k * n).map(|j| ((j * 13) % 17) as f32 * 0.1).collect();
        let panels = n.div_ceil(NR);
        let mut pb = vec![0f32; panels * k * NR];
        for j in 0..panels {
            for i in 0..k {
                for c in 0..NR.min(n - j * NR) {
                    pb[(j * k + i) * NR + c] = x[i * n + j * NR + c];
                }
            }
        }
        let pb = PanelB {
            data: pb.into(),
            k,
            n,
        };
        let mut out = vec![0f32; rows * n];
        let epi = Epilogue::default();
        let reps = 5;
        let rows_ref = Rows::Packed {
            m: &m,
            offsets: &offsets,
        };
        gemm(&rows_ref, 0, rows, &pb, &mut out, epi);
        let t = Instant::now();
        for _ in 0..reps {
            gemm(&rows_ref, 0, rows, &pb, &mut out, epi);
        }
        let f32_ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let w8 = WeightsI8::new(&m);
        let t = Instant::now();
        for _ in 0..reps {
            let b8 = PanelB8::from_rows(&x, k, n, dynamic_scale(&x));
            gemm_i8(&w8, &b8, &mut out, epi);
        }
        let i8_ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(PanelB8::from_rows(&x, k, n, dynamic_scale(&x)));
        }
        let pack_ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        let gmac = (rows * k * n) as f64 / 1e9;
        println!(
            "{name:>16}: f32 {f32_ms:7.2} ms ({:5.1} GMAC/s)  int8 {i8_ms:7.2} ms ({:5.1} GMAC/s), of which quantising and packing B {pack_ms:5.2} ms",
            gmac / f32_ms * 1e3,
            gmac / i8_ms * 1e3
        );
    }
}
