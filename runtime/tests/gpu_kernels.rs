//! Each GPU kernel against the CPU kernel it replaces, on random shapes and bit mixes: the bit
//! unpacking exactly, the tiled and the naive GEMM (convolutions of every kernel size, stride,
//! padding and grouping, Linear layers; packed 2–8 bits mixed within a layer, and f32), max and
//! average pooling, add/ReLU and softmax, all through batches of several images.
//!
//! Tolerance: the GEMMs sum up to ~1,000 products in f32 in another order than the CPU, so
//! results agree to ~1e-6 of the output's scale; 1e-4 is asserted. Pooling, add and ReLU are
//! exact. Skips (with the reason printed) when there is no adapter, unless `FQ_REQUIRE_GPU=1`.
#![cfg(feature = "wgpu")]

use crate::gpu_common;

use fq_models::{Conv2d, Graph, Linear, Node, Op};
use fq_runtime::classify::softmax;
use fq_runtime::format::pack;
use fq_runtime::gpu::{unpack_codes, GemmKernel};
use gpu_common::{compare, device, random_layers, random_packed, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;

fn graph(size: usize, nodes: Vec<(Op, Vec<usize>)>) -> Graph {
    let output = nodes.len();
    Graph {
        arch: "kernel".into(),
        in_channels: 3,
        input_size: size,
        num_classes: 1,
        nodes: nodes
            .into_iter()
            .enumerate()
            .map(|(i, (op, inputs))| Node {
                name: format!("n{i}"),
                op,
                inputs,
            })
            .collect(),
        output,
    }
}

#[test]
fn unpacking_is_exact_for_every_width() {
    let Some(dev) = device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for case in 0..12 {
        let rows = rng.random_range(1..40);
        // Odd column counts leave partial chunks and rows that start mid-word.
        let cols = rng.random_range(1..300);
        let (m, codes) = random_packed(&mut rng, rows, cols, case % 4 == 0);
        let got = unpack_codes(&dev, &m).unwrap();
        let want: Vec<i32> = codes.iter().map(|&c| c as i32).collect();
        assert_eq!(got, want, "case {case}: {rows}x{cols}, bits {:?}", m.bits);
        // And the CPU's unpacker agrees on the same bytes.
        let offsets = m.row_offsets();
        let mut row = vec![0f32; cols];
        for r in 0..rows {
            assert!(pack::unpack_row(
                &m.data[offsets[r]..offsets[r + 1]],
                m.bits[r],
                0,
                &mut row
            ));
            assert!(row
                .iter()
                .zip(&want[r * cols..])
                .all(|(a, &b)| *a == b as f32));
        }
    }
}

#[test]
fn gemm_convolutions_match_the_cpu() {
    let Some(dev) = device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let storages = [
        Storage::Mix,
        Storage::F32,
        Storage::Bits(2),
        Storage::Bits(8),
    ];
    let mut worst = 0f32;
    for case in 0..16 {
        let groups = [1, 1, 2, 4][rng.random_range(0..4)];
        let cin = 3;
        let c1 = groups * rng.random_range(1..10);
        let kernel = [1, 3, 5, 7][rng.random_range(0..4)];
        let stride = rng.random_range(1..=2);
        let padding = rng.random_range(0..=kernel / 2);
        let size = rng.random_range(kernel.max(3)..40);
        let co = groups * rng.random_range(1..40);
        let residual = case % 3 == 0;
        let conv = |i, o, k, s, p, g, b| {
            Op::Conv2d(Conv2d {
                in_channels: i,
                out_channels: o,
                kernel: k,
                stride: s,
                padding: p,
                groups: g,
                bias: b,
            })
        };
        // A first convolution brings the channels to a multiple of the groups; the second is the
        // one under test, ReLU and (sometimes) a residual add fused into its epilogue.
        let mut nodes = vec![
            (conv(cin, c1, 1, 1, 0, 1, true), vec![0]),
            (
                conv(c1, co, kernel, stride, padding, groups, case % 2 == 0),
                vec![1],
            ),
        ];
        if residual {
            // A 1x1 projection of the same input, strided alike, as in a ResNet downsample.
            nodes.push((conv(c1, co, 1, stride, 0, 1, false), vec![1]));
            let ho = (size + 2 * padding - kernel) / stride + 1;
            let hp = (size - 1) / stride + 1;
            if ho != hp {
                nodes.pop();
                nodes.push((Op::Relu, vec![2]));
            } else {
                nodes.push((Op::Add, vec![3, 2]));
                nodes.push((Op::Relu, vec![4]));
            }
        } else {
            nodes.push((Op::Relu, vec![2]));
        }
        let g = graph(size, nodes);
        let storage = storages[case % storages.len()];
        let layers = random_layers(&g, storage, &mut rng);
        let n = rng.random_range(1..4);
        for kernel in [GemmKernel::Tiled, GemmKernel::Naive] {
            let e = compare(&dev, &g, &layers, n, kernel, case as u64);
            assert!(e < TOL, "case {case} {kernel:?} {storage:?}: error {e:.2e}");
            worst = worst.max(e);
        }
    }
    eprintln!("convolutions: largest relative error {worst:.2e}");
}

#[test]
fn gemm_linear_layers_match_the_cpu() {
    let Some(dev) = device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut worst = 0f32;
    for case in 0..8 {
        let size = rng.random_range(1..20);
        let k = 3 * size * size;
        let hidden = rng.random_range(1..200);
        let out = rng.random_range(1..70);
        let g = graph(
            size,
            vec![
                (
                    Op::Linear(Linear {
                        in_features: k,
                        out_features: hidden,
                        bias: true,
                    }),
                    vec![0],
                ),
                (Op::Relu, vec![1]),
                (
                    Op::Linear(Linear {
                        in_features: hidden,
                        out_features: out,
                        bias: case % 2 == 0,
                    }),
                    vec![2],
                ),
            ],
        );
        let storage = [Storage::Mix, Storage::F32, Storage::Bits(4)][case % 3];
        let layers = random_layers(&g, storage, &mut rng);
        let n = rng.random_range(1..70);
        for kernel in [GemmKernel::Tiled, GemmKernel::Naive] {
            let e = compare(&dev, &g, &layers, n, kernel, case as u64);
            assert!(e < TOL, "case {case} {kernel:?}: error {e:.2e}");
            worst = worst.max(e);
        }
    }
    eprintln!("linear layers: largest relative error {worst:.2e}");
}

#[test]
fn pooling_add_and_relu_match_the_cpu_exactly() {
    let Some(dev) = device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for case in 0..10 {
        let kernel = rng.random_range(1..5);
        let stride = rng.random_range(1..4);
        let padding = rng.random_range(0..=kernel / 2);
        let size = rng.random_range(kernel..30);
        let n = rng.random_range(1..6);
        let pool = Op::MaxPool2d {
            kernel,
            stride,
            padding,
        };
        // Max pool, then x + x (not fusable into a convolution) and its ReLU; a standalone ReLU;
        // the global average (summed in the same order on both sides, so exact too).
        let graphs = [
            graph(
                size,
                vec![(pool, vec![0]), (Op::Add, vec![1, 1]), (Op::Relu, vec![2])],
            ),
            graph(size, vec![(Op::Relu, vec![0])]),
            graph(size, vec![(Op::GlobalAvgPool, vec![0])]),
        ];
        for (i, g) in graphs.iter().enumerate() {
            let e = compare(&dev, g, &[], n, GemmKernel::Tiled, case);
            assert_eq!(e, 0.0, "case {case}, graph {i}: differs");
        }
    }
}

#[test]
fn softmax_matches_the_cpu() {
    let Some(dev) = device() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for classes in [1usize, 2, 5, 1000] {
        let g = graph(
            4,
            vec![(
                Op::Linear(Linear {
                    in_features: 48,
                    out_features: classes,
                    bias: true,
                }),
                vec![0],
            )],
        );
        let layers = random_layers(&g, Storage::Mix, &mut rng);
        let gpu =
            fq_runtime::gpu::GpuExecutor::from_graph(dev.clone(), &g, layers, GemmKernel::Tiled, 8)
                .unwrap();
        let n = 11;
        let x: Vec<f32> = (0..n * 48).map(|_| rng.random_range(-4.0..4.0)).collect();
        let out = gpu.run_batch(&x, n).unwrap();
        for (l, p) in out
            .logits
            .chunks(classes)
            .zip(out.probabilities.chunks(classes))
        {
            let want = softmax(l);
            let e = p
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(e < 1e-6, "{classes} classes: softmax error {e:.2e}");
            let sum: f32 = p.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5);
        }
    }
}
