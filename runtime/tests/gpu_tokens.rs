//! The GPU kernels of the token models (DeiT, TinyViT) against the CPU kernels of
//! `exec/tokens.rs`, through both executors on random graphs: Linear on tokens (packed 2–8-bit
//! mix, 4 bits, f32; tiled and naive GEMM), layer norm, exact GELU, the class token, position
//! embedding, token transposes, window partition/reverse with zero padding, and attention in both
//! qkv layouts, over the whole sequence or in windows, with and without TinyViT's bias table.
//!
//! Every prefix of each graph is run as its own graph, so each step's output is compared, not
//! only the last one: several images per run, two per submit. Tolerance 1e-5 of the largest
//! output (f32 sums in another order than the CPU; the largest error measured is printed).
//! Skips (with the reason printed) when there is no adapter, unless `FQ_REQUIRE_GPU=1`.
#![cfg(feature = "wgpu")]

use crate::gpu_common;

use fq_models::{Attention, Graph, Linear, Node, Op, QkvLayout};
use fq_runtime::format::{Layer, NamedTensor};
use fq_runtime::gpu::GemmKernel;
use gpu_common::{compare_parts, device, random_layers, random_tensors, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-5;

fn graph(channels: usize, size: usize, nodes: Vec<(Op, Vec<usize>)>) -> Graph {
    // Images are RGB.
    assert_eq!(channels, 3);
    let output = nodes.len();
    Graph {
        arch: "tokens".into(),
        in_channels: channels,
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

fn linear(i: usize, o: usize, bias: bool) -> Op {
    Op::Linear(Linear {
        in_features: i,
        out_features: o,
        bias,
    })
}

/// The first `k` nodes of `g` (their output the graph's), with their layers and tensors.
fn prefix(
    g: &Graph,
    layers: &[Layer],
    tensors: &[NamedTensor],
    k: usize,
) -> (Graph, Vec<Layer>, Vec<NamedTensor>) {
    let mut p = g.clone();
    p.nodes.truncate(k);
    p.output = k;
    let names: Vec<&str> = p.nodes.iter().map(|n| n.name.as_str()).collect();
    let owner = |name: &str| name.split('.').next().unwrap_or("").to_string();
    let keep = |name: &str| names.contains(&owner(name).as_str());
    (
        p.clone(),
        layers.iter().filter(|l| keep(&l.name)).cloned().collect(),
        tensors.iter().filter(|t| keep(&t.name)).cloned().collect(),
    )
}

/// Compares every prefix of `g` on the GPU with the CPU; returns the largest error.
fn check_prefixes(g: &Graph, storage: Storage, seed: u64, what: &str) -> f32 {
    let Some(dev) = device() else { return 0.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layers = random_layers(g, storage, &mut rng);
    let tensors = random_tensors(g, &mut rng);
    let mut worst = 0f32;
    for k in 1..=g.nodes.len() {
        let (p, l, t) = prefix(g, &layers, &tensors, k);
        let kernels: &[GemmKernel] = if matches!(g.nodes[k - 1].op, Op::Linear(_)) {
            &[GemmKernel::Tiled, GemmKernel::Naive]
        } else {
            &[GemmKernel::Tiled]
        };
        for &kernel in kernels {
            let e = compare_parts(&dev, &p, &l, &t, 3, kernel, seed + k as u64);
            let op = &g.nodes[k - 1].op;
            assert!(
                e < TOL,
                "{what} {storage:?}, step {k} ({op:?}, {kernel:?}): error {e:.2e}"
            );
            worst = worst.max(e);
        }
    }
    worst
}

/// DeiT's shape of computation: patch tokens, a token Linear, the class token, position
/// embedding, layer norm, whole-sequence attention, a residual add, GELU, the class token's row
/// and a head.
fn deit_like(rng: &mut ChaCha8Rng, layout: QkvLayout) -> Graph {
    let (c, s) = (3, rng.random_range(2..7));
    let d = rng.random_range(4..40);
    let (heads, kd) = (rng.random_range(1..4), rng.random_range(1..20));
    // Past the shader's 64-feature value chunk now and then.
    let vd = [kd, rng.random_range(1..20), 70][rng.random_range(0..3)];
    let a = Attention {
        heads,
        key_dim: kd,
        val_dim: vd,
        layout,
        group: None,
        bias_window: None,
    };
    let l = s * s + 1;
    graph(
        c,
        s,
        vec![
            (Op::ToTokens, vec![0]),
            (linear(c, d, true), vec![1]),
            (Op::ClassToken { dim: d }, vec![2]),
            (Op::PosEmbed { tokens: l, dim: d }, vec![3]),
            (Op::LayerNorm { dim: d, eps: 1e-6 }, vec![4]),
            (linear(d, a.qkv_features(), true), vec![5]),
            (Op::Attention(a.clone()), vec![6]),
            (linear(a.out_features(), d, true), vec![7]),
            (Op::Add, vec![8, 4]),
            (Op::Gelu, vec![9]),
            (
                Op::TakeToken {
                    index: rng.random_range(0..l),
                },
                vec![10],
            ),
            (Op::LayerNorm { dim: d, eps: 1e-5 }, vec![11]),
            (linear(d, 7, false), vec![12]),
        ],
    )
}

/// TinyViT's: tokens into zero-padded windows, windowed attention (with or without the bias
/// table), back to the grid and to `[C, H, W]`, pooled.
fn tinyvit_like(rng: &mut ChaCha8Rng, layout: QkvLayout, biases: bool) -> Graph {
    let (c, s) = (3, rng.random_range(3..12));
    // A window that does not divide the grid, so the last windows are padded.
    let ws = rng.random_range(2..s.min(8));
    let a = Attention {
        heads: rng.random_range(1..4),
        key_dim: rng.random_range(1..20),
        val_dim: rng.random_range(1..40),
        layout,
        group: Some(ws * ws),
        bias_window: biases.then_some(ws),
    };
    let win = |op: fn(usize, usize, usize) -> Op| op(s, s, ws);
    graph(
        c,
        s,
        vec![
            (Op::ToTokens, vec![0]),
            (linear(c, a.qkv_features(), true), vec![1]),
            (
                win(|height, width, window| Op::WindowPartition {
                    height,
                    width,
                    window,
                }),
                vec![2],
            ),
            (Op::Attention(a.clone()), vec![3]),
            (
                win(|height, width, window| Op::WindowReverse {
                    height,
                    width,
                    window,
                }),
                vec![4],
            ),
            (
                Op::ToChw {
                    height: s,
                    width: s,
                },
                vec![5],
            ),
            (Op::GlobalAvgPool, vec![6]),
            (Op::Gelu, vec![7]),
        ],
    )
}

#[test]
fn deit_steps_match_the_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut worst = 0f32;
    for case in 0..6 {
        let layout = [QkvLayout::QkvHeads, QkvLayout::HeadsQkv][case % 2];
        let storage = [Storage::Mix, Storage::F32, Storage::Bits(4)][case % 3];
        let g = deit_like(&mut rng, layout);
        worst = worst.max(check_prefixes(&g, storage, case as u64, "DeiT-like"));
    }
    eprintln!("DeiT-like steps: largest relative error {worst:.2e}");
}

#[test]
fn windowed_attention_matches_the_cpu() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut worst = 0f32;
    for case in 0..8 {
        let layout = [QkvLayout::HeadsQkv, QkvLayout::QkvHeads][case % 2];
        let storage = [Storage::Mix, Storage::F32][case % 2];
        let g = tinyvit_like(&mut rng, layout, case % 4 != 3);
        worst = worst.max(check_prefixes(
            &g,
            storage,
            100 + case as u64,
            "TinyViT-like",
        ));
    }
    eprintln!("windowed attention: largest relative error {worst:.2e}");
}

/// GELU over a wide range, including the far negative tail where erfc is tiny: every element
/// within 1e-5 of its own magnitude (or 1e-12 absolute) of the CPU's scalar GELU, not only of
/// the largest.
#[test]
fn gelu_is_accurate_elementwise() {
    let Some(dev) = device() else { return };
    let g = graph(3, 40, vec![(Op::Gelu, vec![0])]);
    let n = 3 * 40 * 40;
    let x: Vec<f32> = (0..n).map(|i| -12.0 + 24.0 * i as f32 / n as f32).collect();
    let gpu = fq_runtime::gpu::GpuExecutor::from_graph(dev, &g, Vec::new(), GemmKernel::Tiled, 1)
        .unwrap();
    let got = gpu.run_batch(&x, 1).unwrap().logits;
    // The scalar `erfcc` GELU the shader writes (`shaders/gelu.wgsl`): the CPU's SIMD loops are
    // PyTorch's form on most paths, accurate in absolute terms only (`vmath::gelu`).
    let erfc = fq_runtime::exec::tokens::erfc;
    let want: Vec<f32> = x
        .iter()
        .map(|&v| v / 2.0 * erfc(-v * std::f32::consts::FRAC_1_SQRT_2))
        .collect();
    let mut worst = 0f32;
    for ((a, b), xi) in got.iter().zip(&want).zip(&x) {
        let e = (a - b).abs() / b.abs().max(1e-7);
        assert!(
            (a - b).abs() < 1e-12 || e < TOL,
            "gelu({xi}) = {a}, CPU {b}: relative error {e:.2e}"
        );
        if (a - b).abs() >= 1e-12 {
            worst = worst.max(e);
        }
    }
    eprintln!("GELU: largest elementwise relative error {worst:.2e}");
}

/// The CPU's integer path on token models (the Linear layers over tokens take i8 activations;
/// layer norm, GELU and attention stay f32) against its f32 path, on DeiT-like and TinyViT-like
/// graphs with packed weights: within 5% of the largest output, and not equal to it (the
/// integer path ran). Needs no GPU; it lives here for the token-graph builders.
#[test]
fn cpu_int8_token_linears_stay_close_to_f32() {
    use fq_runtime::exec::{Activations, Executor};
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for case in 0..4 {
        let layout = [QkvLayout::QkvHeads, QkvLayout::HeadsQkv][case % 2];
        let storage = [Storage::Mix, Storage::Bits(4)][case / 2];
        let g = if case % 2 == 0 {
            deit_like(&mut rng, layout)
        } else {
            tinyvit_like(&mut rng, layout, true)
        };
        let layers = random_layers(&g, storage, &mut rng);
        let tensors = random_tensors(&g, &mut rng);
        let mut exec = Executor::from_parts(&g, layers, tensors).unwrap();
        let x: Vec<f32> = (0..exec.input_len())
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let want = exec.run(&x).unwrap();
        exec.set_activations(Activations::Int8Dynamic);
        let got = exec.run(&x).unwrap();
        let top = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / top;
        eprintln!("token graph {case} ({storage:?}): int8 vs f32 {err:.2e}");
        assert!(
            err < 5e-2,
            "case {case}: int8 tokens relative error {err:.2e}"
        );
        assert!(err > 1e-6, "case {case}: the integer path did not run");
    }
}
