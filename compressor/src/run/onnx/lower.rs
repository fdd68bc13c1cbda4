//! The folded graph of a [`PackedModel`], node by node, as standard ONNX operators.
//!
//! Every value carries a leading batch axis: `[C, H, W]` becomes `[N, C, H, W]`, `[F]` becomes
//! `[N, F]`, a token sequence `[L, D]` becomes `[N, L, D]`. Each op mirrors the CPU executor's
//! semantics (`fq_runtime::exec`): PyTorch's zero-padded convolution and `-inf`-padded max pool,
//! Linear as `x W^T + b` on every token, exact-erf GELU; the token ops live in [`super::tokens`]
//! and [`super::attention`].

use std::collections::HashMap;

use fq_models::{Op, Shape};
use fq_runtime::format::{Layer, NamedTensor, PackedModel};

use super::builder::{Attr, GraphBuilder};
use super::{attention, tokens, weights, ExportError};

/// Name of the graph's input tensor, `[N, 3, H, W]` f32, preprocessed as the metadata says.
pub const INPUT: &str = "input";

/// Writes the nodes of `model`'s graph into `b`; returns the name of the logits tensor.
pub fn lower(b: &mut GraphBuilder, model: &PackedModel, opset: i64) -> Result<String, ExportError> {
    let g = &model.graph;
    let shapes = g.shapes().map_err(|e| ExportError::Graph(e.to_string()))?;
    let tensors: HashMap<&str, &NamedTensor> =
        model.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut layers = model.layers.iter();
    let mut values: Vec<String> = vec![INPUT.to_string()];
    for (i, node) in g.nodes.iter().enumerate() {
        let unsupported = |msg: &str| ExportError::Node {
            node: i,
            name: node.name.clone(),
            msg: msg.to_string(),
        };
        let x = values[node.inputs[0]].clone();
        let in_shape = shapes[node.inputs[0]];
        let name = node.name.as_str();
        let tensor = |key: String| -> Result<&NamedTensor, ExportError> {
            tensors
                .get(key.as_str())
                .copied()
                .ok_or_else(|| unsupported(&format!("the model has no tensor `{key}`")))
        };
        let mut next_layer = || -> Result<&Layer, ExportError> {
            let l = layers
                .next()
                .ok_or_else(|| unsupported("the model has fewer layers than the graph"))?;
            if l.name != node.name {
                return Err(unsupported(&format!("the next layer is `{}`", l.name)));
            }
            Ok(l)
        };
        let out = match &node.op {
            Op::Conv2d(c) => {
                let l = next_layer()?;
                let dims = [c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel];
                let w = weights::weight(b, l, &dims, opset)?;
                let mut inputs = vec![x.as_str(), w.as_str()];
                let bias = l
                    .bias
                    .as_ref()
                    .map(|v| b.f32(&format!("{name}.bias"), &[v.len()], v));
                inputs.extend(bias.as_deref());
                let (k, s, p) = (c.kernel as i64, c.stride as i64, c.padding as i64);
                b.node(
                    "Conv",
                    name,
                    &inputs,
                    vec![
                        ("kernel_shape", Attr::Ints(vec![k, k])),
                        ("strides", Attr::Ints(vec![s, s])),
                        ("pads", Attr::Ints(vec![p, p, p, p])),
                        ("dilations", Attr::Ints(vec![1, 1])),
                        ("group", Attr::Int(c.groups as i64)),
                    ],
                )
            }
            Op::Linear(lin) => {
                let l = next_layer()?;
                let dims = [lin.out_features, lin.in_features];
                let w = weights::weight(b, l, &dims, opset)?;
                let bias = l
                    .bias
                    .as_ref()
                    .map(|v| b.f32(&format!("{name}.bias"), &[v.len()], v));
                linear(b, name, &x, in_shape, &w, bias.as_deref(), lin.out_features)
            }
            Op::BatchNorm2d { .. } => {
                return Err(unsupported(
                    "batch norm left in a packed model (the .fqm folds every batch norm)",
                ))
            }
            Op::Relu => b.node("Relu", name, &[&x], vec![]),
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
            } => {
                let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                b.node(
                    "MaxPool",
                    name,
                    &[&x],
                    vec![
                        ("kernel_shape", Attr::Ints(vec![k, k])),
                        ("strides", Attr::Ints(vec![s, s])),
                        ("pads", Attr::Ints(vec![p, p, p, p])),
                    ],
                )
            }
            Op::Add => {
                let y = values[node.inputs[1]].clone();
                b.node("Add", name, &[&x, &y], vec![])
            }
            Op::GlobalAvgPool => {
                let p = b.node("GlobalAveragePool", name, &[&x], vec![]);
                b.node("Flatten", name, &[&p], vec![("axis", Attr::Int(1))])
            }
            Op::LayerNorm { eps, .. } => {
                let gamma = tensor(format!("{name}.weight"))?;
                let beta = tensor(format!("{name}.bias"))?;
                tokens::layer_norm(b, name, &x, gamma, beta, *eps)
            }
            Op::Gelu => tokens::gelu(b, name, &x),
            Op::ToTokens => tokens::to_tokens(b, name, &x, in_shape),
            Op::ToChw { height, width } => tokens::to_chw(b, name, &x, in_shape, *height, *width),
            Op::ClassToken { .. } => tokens::class_token(b, name, &x, tensor(name.to_string())?),
            Op::PosEmbed { .. } => {
                let p = tensor(name.to_string())?;
                let pos = b.f32(name, &p.shape, &p.data);
                b.node("Add", name, &[&x, &pos], vec![])
            }
            Op::TakeToken { index } => {
                let idx = b.i64("index", &[], &[*index as i64]);
                b.node("Gather", name, &[&x, &idx], vec![("axis", Attr::Int(1))])
            }
            Op::WindowPartition {
                height,
                width,
                window,
            } => tokens::window_partition(b, name, &x, in_shape, *height, *width, *window),
            Op::WindowReverse {
                height,
                width,
                window,
            } => tokens::window_reverse(b, name, &x, in_shape, *height, *width, *window),
            Op::Attention(a) => {
                let table = match a.bias_window {
                    Some(_) => Some(tensor(format!("{name}.attention_biases"))?),
                    None => None,
                };
                attention::attention(b, name, &x, in_shape, a, table)
                    .map_err(|msg| unsupported(&msg))?
            }
        };
        values.push(out);
    }
    if let Some(l) = layers.next() {
        return Err(ExportError::Layer {
            layer: l.name.clone(),
            msg: "no node of the graph uses this layer".into(),
        });
    }
    Ok(values[g.output].clone())
}

/// `x W^T + b` as a `Gemm` (weights kept `[out, in]`, so the dequantization axis is the output
/// channel), on a flat vector, a flattened `[C, H, W]`, or every token of a sequence (folded
/// into the batch axis and back).
fn linear(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    shape: Shape,
    w: &str,
    bias: Option<&str>,
    out_features: usize,
) -> String {
    let gemm = |b: &mut GraphBuilder, x: &str| {
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        b.node("Gemm", name, &inputs, vec![("transB", Attr::Int(1))])
    };
    match shape {
        Shape::Flat(_) => gemm(b, x),
        Shape::Chw(..) => {
            let f = b.node("Flatten", name, &[x], vec![("axis", Attr::Int(1))]);
            gemm(b, &f)
        }
        Shape::Seq(l, d) => {
            let s = b.shape(&[-1, d as i64]);
            let rows = b.node("Reshape", name, &[x, &s], vec![]);
            let y = gemm(b, &rows);
            let s = b.shape(&[-1, l as i64, out_features as i64]);
            b.node("Reshape", name, &[&y, &s], vec![])
        }
    }
}
