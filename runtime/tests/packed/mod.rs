//! Helpers for the packed-format and executor tests: random models built through the real
//! `assemble` (batch norm folded, layers packed) together with an independent f64 reference that
//! runs the unfolded graph with plain loops.
#![allow(dead_code)]

use std::collections::HashMap;

use fq_models::{Conv2d, Graph, Linear, Node, Op, Shape};
use fq_runtime::format::{
    assemble, BatchNormParams, LayerParams, LayerSource, ModelMeta, PackedModel,
};
use fq_runtime::preprocess::PreprocessConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the layers of a random model are stored.
#[derive(Clone, Copy, Debug)]
pub enum Bits {
    F32,
    Uniform(u8),
    /// Every output channel an independent width in 2..=8.
    RandomMix,
}

/// A packed model and the tensors of the unfolded graph it came from (dequantized, in f64).
pub struct TestModel {
    pub model: PackedModel,
    pub graph: Graph,
    pub tensors: HashMap<String, Vec<f64>>,
}

pub fn meta(graph: &Graph) -> ModelMeta {
    ModelMeta {
        classes: (0..graph.num_classes)
            .map(|i| format!("class{i}"))
            .collect(),
        groups: vec!["I-III".into(), "IV-VI".into()],
        preprocess: PreprocessConfig {
            width: graph.input_size as u32,
            height: graph.input_size as u32,
            ..PreprocessConfig::default()
        },
        method: "test".into(),
        method_label: "TEST".into(),
        test_metrics: None,
    }
}

/// Random weights (activations stay O(1): He-like scales), non-trivial batch-norm statistics.
pub fn random_model(graph: &Graph, bits: Bits, seed: u64) -> TestModel {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors: HashMap<String, Vec<f64>> = HashMap::new();
    let mut sources: HashMap<String, LayerParams> = HashMap::new();
    let mut bns: HashMap<String, BatchNormParams> = HashMap::new();
    for node in &graph.nodes {
        let name = &node.name;
        let (rows, cols, bias) = match &node.op {
            Op::Conv2d(c) => (
                c.out_channels,
                c.in_channels / c.groups * c.kernel * c.kernel,
                c.bias,
            ),
            Op::Linear(l) => (l.out_features, l.in_features, l.bias),
            Op::BatchNorm2d { channels, .. } => {
                let mut u = |lo: f32, hi: f32| -> Vec<f32> {
                    (0..*channels).map(|_| rng.random_range(lo..hi)).collect()
                };
                let p = BatchNormParams {
                    weight: u(0.5, 1.5),
                    bias: u(-0.2, 0.2),
                    running_mean: u(-0.5, 0.5),
                    running_var: u(0.3, 2.0),
                };
                for (k, v) in [
                    ("weight", &p.weight),
                    ("bias", &p.bias),
                    ("running_mean", &p.running_mean),
                    ("running_var", &p.running_var),
                ] {
                    tensors.insert(format!("{name}.{k}"), v.iter().map(|&x| x as f64).collect());
                }
                bns.insert(name.clone(), p);
                continue;
            }
            _ => continue,
        };
        let std = (2.0 / cols as f64).sqrt();
        let (weights, dense) = match bits {
            Bits::F32 => {
                let w: Vec<f32> = (0..rows * cols)
                    .map(|_| (rng.random_range(-1.0..1.0) * std * 3f64.sqrt()) as f32)
                    .collect();
                let dense = w.iter().map(|&x| x as f64).collect();
                (LayerSource::Float(w), dense)
            }
            Bits::Uniform(_) | Bits::RandomMix => {
                let b: Vec<u8> = (0..rows)
                    .map(|_| match bits {
                        Bits::Uniform(b) => b,
                        _ => rng.random_range(2..=8),
                    })
                    .collect();
                let mut codes = Vec::with_capacity(rows * cols);
                let mut scales = Vec::with_capacity(rows);
                let mut dense = Vec::with_capacity(rows * cols);
                for &bw in &b {
                    let max = (1i32 << (bw - 1)) - 1;
                    let s = (std * 3f64.sqrt() / max as f64 * rng.random_range(0.7..1.3)) as f32;
                    scales.push(s);
                    for _ in 0..cols {
                        let q = rng.random_range(-max..=max);
                        codes.push(q as i8);
                        dense.push(q as f64 * s as f64);
                    }
                }
                (
                    LayerSource::Quantized {
                        bits: b,
                        codes,
                        scales,
                    },
                    dense,
                )
            }
        };
        tensors.insert(format!("{name}.weight"), dense);
        let bias = bias.then(|| {
            let b: Vec<f32> = (0..rows).map(|_| rng.random_range(-0.1..0.1)).collect();
            tensors.insert(
                format!("{name}.bias"),
                b.iter().map(|&x| x as f64).collect(),
            );
            b
        });
        sources.insert(name.clone(), LayerParams { weights, bias });
    }
    let model = assemble(
        graph,
        meta(graph),
        |name, _, _| {
            sources
                .remove(name)
                .ok_or_else(|| "no such layer".to_string())
        },
        |name| {
            bns.get(name)
                .cloned()
                .ok_or_else(|| "no such batch norm".to_string())
        },
    )
    .expect("assemble a random model");
    TestModel {
        model,
        graph: graph.clone(),
        tensors,
    }
}

/// A random image tensor, roughly normalised.
pub fn random_input(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-2.0..2.0)).collect()
}

/// Largest |a - b| relative to the largest |b|.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-12);
    a.iter()
        .zip(b)
        .fold(0f64, |m, (&x, y)| m.max((x as f64 - y).abs()))
        / scale
}

/// The unfolded graph evaluated in f64 with direct loops (batch norm in eval mode).
pub fn reference(t: &TestModel, input: &[f32]) -> Vec<f64> {
    let g = &t.graph;
    let shapes = g.shapes().unwrap();
    let p = |n: &str| &t.tensors[n];
    let mut values: Vec<Vec<f64>> = vec![input.iter().map(|&x| x as f64).collect()];
    for (i, node) in g.nodes.iter().enumerate() {
        let x = &values[node.inputs[0]];
        let out = match (&node.op, shapes[node.inputs[0]], shapes[i + 1]) {
            (Op::Conv2d(c), Shape::Chw(_, h, w), Shape::Chw(co, ho, wo)) => {
                let w_ = p(&format!("{}.weight", node.name));
                let cg = c.in_channels / c.groups;
                let og = co / c.groups;
                let k = c.kernel;
                let mut out = vec![0f64; co * ho * wo];
                for o in 0..co {
                    let g0 = o / og * cg;
                    let b = if c.bias {
                        p(&format!("{}.bias", node.name))[o]
                    } else {
                        0.0
                    };
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let mut s = b;
                            for ci in 0..cg {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let iy = (oy * c.stride + ky) as isize - c.padding as isize;
                                        let ix = (ox * c.stride + kx) as isize - c.padding as isize;
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize
                                        {
                                            continue;
                                        }
                                        s += w_[((o * cg + ci) * k + ky) * k + kx]
                                            * x[((g0 + ci) * h + iy as usize) * w + ix as usize];
                                    }
                                }
                            }
                            out[(o * ho + oy) * wo + ox] = s;
                        }
                    }
                }
                out
            }
            (Op::BatchNorm2d { eps, .. }, Shape::Chw(c, h, w), _) => {
                let n = &node.name;
                let (gm, bt, mu, var) = (
                    p(&format!("{n}.weight")),
                    p(&format!("{n}.bias")),
                    p(&format!("{n}.running_mean")),
                    p(&format!("{n}.running_var")),
                );
                (0..c * h * w)
                    .map(|j| {
                        let ch = j / (h * w);
                        (x[j] - mu[ch]) / (var[ch] + eps).sqrt() * gm[ch] + bt[ch]
                    })
                    .collect()
            }
            (Op::Relu, ..) => x.iter().map(|v| v.max(0.0)).collect(),
            (
                Op::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                },
                Shape::Chw(c, h, w),
                Shape::Chw(_, ho, wo),
            ) => {
                let mut out = vec![f64::NEG_INFINITY; c * ho * wo];
                for ch in 0..c {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            for ky in 0..*kernel {
                                for kx in 0..*kernel {
                                    let iy = (oy * stride + ky) as isize - *padding as isize;
                                    let ix = (ox * stride + kx) as isize - *padding as isize;
                                    if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                        let v = x[(ch * h + iy as usize) * w + ix as usize];
                                        let o = &mut out[(ch * ho + oy) * wo + ox];
                                        *o = o.max(v);
                                    }
                                }
                            }
                        }
                    }
                }
                out
            }
            (Op::Add, ..) => x
                .iter()
                .zip(&values[node.inputs[1]])
                .map(|(a, b)| a + b)
                .collect(),
            (Op::GlobalAvgPool, Shape::Chw(c, h, w), _) => (0..c)
                .map(|ch| x[ch * h * w..(ch + 1) * h * w].iter().sum::<f64>() / (h * w) as f64)
                .collect(),
            (Op::Linear(l), ..) => {
                let w_ = p(&format!("{}.weight", node.name));
                (0..l.out_features)
                    .map(|o| {
                        let b = if l.bias {
                            p(&format!("{}.bias", node.name))[o]
                        } else {
                            0.0
                        };
                        b + (0..l.in_features)
                            .map(|k| w_[o * l.in_features + k] * x[k])
                            .sum::<f64>()
                    })
                    .collect()
            }
            (op, s, _) => panic!("reference: {op:?} on {s:?}"),
        };
        values.push(out);
    }
    values.swap_remove(g.output)
}

/// A graph that exercises what ResNets do not: grouped and biased convolutions, stride 2 without
/// padding, a 5x5 kernel, a padded max pool, `x + x`, Linear on a `[C,H,W]` value, and odd
/// numbers of output pixels. The first two convolutions have enough pixels (75², 37²) for the
/// column-parallel fused path, the later ones (19²) take the row-parallel one.
pub fn odd_graph() -> Graph {
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
    let node = |name: &str, op, inputs: Vec<usize>| Node {
        name: name.into(),
        op,
        inputs,
    };
    let nodes = vec![
        node("a", conv(3, 8, 3, 1, 1, 1, true), vec![0]),
        node("a_relu", Op::Relu, vec![1]),
        node("b", conv(8, 8, 3, 2, 0, 2, false), vec![2]),
        node(
            "b_bn",
            Op::BatchNorm2d {
                channels: 8,
                eps: 1e-5,
                momentum: 0.1,
            },
            vec![3],
        ),
        node(
            "pool",
            Op::MaxPool2d {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            vec![4],
        ),
        node("c", conv(8, 12, 1, 1, 0, 1, false), vec![5]),
        node("d", conv(8, 12, 5, 1, 2, 1, true), vec![5]),
        node("add", Op::Add, vec![6, 7]),
        node("double", Op::Add, vec![8, 8]),
        node("double_relu", Op::Relu, vec![9]),
        node(
            "fc1",
            Op::Linear(Linear {
                in_features: 12 * 19 * 19,
                out_features: 7,
                bias: true,
            }),
            vec![10],
        ),
        node("fc1_relu", Op::Relu, vec![11]),
        node(
            "fc2",
            Op::Linear(Linear {
                in_features: 7,
                out_features: 4,
                bias: false,
            }),
            vec![12],
        ),
    ];
    Graph {
        arch: "odd".into(),
        in_channels: 3,
        input_size: 75,
        num_classes: 4,
        nodes,
        output: 13,
    }
}

/// A deterministic test photo, deliberately not the models' 32x32: the API resizes as the
/// compressor's preprocessing does.
pub fn test_image(seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(40, 36, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) % 256;
        image::Rgb([
            v as u8,
            ((v * 3 + seed) % 256) as u8,
            ((x * y + seed) % 256) as u8,
        ])
    })
}

/// `img` encoded as PNG bytes, as an upload or a file would hold it.
pub fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A random mixed-precision narrow ResNet18 (3 classes, 32 px) saved in `dir` and loaded back
/// through the deployment API.
pub fn saved_classifier(dir: &std::path::Path) -> fq_runtime::Classifier {
    let g = fq_models::ArchSpec::new(fq_models::Arch::ResNet18, 4, 32, 3)
        .graph()
        .unwrap();
    let path = dir.join("model.fqm");
    random_model(&g, Bits::RandomMix, 2)
        .model
        .save(&path)
        .unwrap();
    fq_runtime::Classifier::load(&path).unwrap()
}

/// A random model of any graph, token models included (DeiT, TinyViT), through the real
/// `assemble_with` (batch norms folded): packed layers of random widths 2..=8 per row with
/// weights of about ±sqrt(3 / cols), biases in ±0.5, layer-norm weights near 1 and the other
/// extra tensors (tokens, embeddings, attention biases) in ±0.5. No f64 reference: for
/// comparing two runs of the runtime with each other, and for timings.
pub fn random_token_model(graph: &Graph, seed: u64) -> PackedModel {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let has_bias: HashMap<&str, bool> = graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Conv2d(c) => Some((n.name.as_str(), c.bias)),
            Op::Linear(l) => Some((n.name.as_str(), l.bias)),
            _ => None,
        })
        .collect();
    let bn_channels: HashMap<&str, usize> = graph
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            Op::BatchNorm2d { channels, .. } => Some((n.name.as_str(), channels)),
            _ => None,
        })
        .collect();
    let rng = std::cell::RefCell::new(&mut rng);
    fq_runtime::format::assemble_with(
        graph,
        meta(graph),
        |name, rows, cols| {
            let rng = &mut *rng.borrow_mut();
            let bits: Vec<u8> = (0..rows).map(|_| rng.random_range(2..=8)).collect();
            let codes = random_codes(rng, &bits, cols);
            let std = (3.0 / cols as f32).sqrt();
            let scales = bits
                .iter()
                .map(|&b| std / ((1i32 << (b - 1)) - 1) as f32)
                .collect();
            let bias =
                has_bias[name].then(|| (0..rows).map(|_| rng.random_range(-0.5..0.5)).collect());
            Ok(LayerParams {
                weights: LayerSource::Quantized {
                    bits,
                    codes,
                    scales,
                },
                bias,
            })
        },
        |name| {
            let rng = &mut *rng.borrow_mut();
            let c = bn_channels[name];
            let mut u = |lo: f32, hi: f32| (0..c).map(|_| rng.random_range(lo..hi)).collect();
            Ok(BatchNormParams {
                weight: u(0.5, 1.5),
                bias: u(-0.2, 0.2),
                running_mean: u(-0.5, 0.5),
                running_var: u(0.3, 2.0),
            })
        },
        |name, shape| {
            let rng = &mut *rng.borrow_mut();
            let n: usize = shape.iter().product();
            let around = if name.ends_with(".weight") { 1.0 } else { 0.0 };
            Ok((0..n)
                .map(|_| around + rng.random_range(-0.5..0.5))
                .collect())
        },
    )
    .expect("assemble a random token model")
}

/// `cols` random codes per row, each row within its width's symmetric range.
pub fn random_codes(rng: &mut impl Rng, bits: &[u8], cols: usize) -> Vec<i8> {
    bits.iter()
        .flat_map(|&b| {
            let q = (1i32 << (b - 1)) - 1;
            (0..cols)
                .map(|_| rng.random_range(-q..=q) as i8)
                .collect::<Vec<_>>()
        })
        .collect()
}
