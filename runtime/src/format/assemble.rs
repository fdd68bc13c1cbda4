//! Building a [`PackedModel`] from a trained graph's tensors: batch norm is folded into the
//! convolution before it and the quantized weights are bit-packed.
//!
//! Folding is exact for quantized layers: with `w = code * s` per output channel and batch norm
//! `y -> (y - mean) * gamma / sqrt(var + eps) + beta`, the codes stay as they are, the scale
//! becomes `s * gamma / sqrt(var + eps)` and the bias `beta - mean * gamma / sqrt(var + eps)`
//! (plus the convolution's own bias times the same factor). Nothing is re-quantized, so the packed
//! model computes what the compressor's fake-quantized model computes, up to float rounding.

use fq_models::{Graph, Node, Op};

use super::{
    pack, CompressionSummary, FormatError, Layer, LayerWeights, NamedTensor, PackedMatrix,
    PackedModel,
};
use crate::metrics::FairnessMetrics;
use crate::preprocess::PreprocessConfig;

/// Weights of one Conv2d/Linear layer as the compressor hands them over.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSource {
    /// The quantizer's output: integer codes (row-major `[out, cols]`) with one bit-width (2..=8)
    /// and one scale per output channel, `w = code * scale`.
    Quantized {
        bits: Vec<u8>,
        codes: Vec<i8>,
        scales: Vec<f32>,
    },
    /// Unquantized row-major weights.
    Float(Vec<f32>),
}

/// A Conv2d/Linear layer's tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    pub weights: LayerSource,
    /// Present iff the node has a bias.
    pub bias: Option<Vec<f32>>,
}

/// A batch norm's tensors (its `eps` comes from the graph).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormParams {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
}

/// Everything of a model file besides the graph and the tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    pub classes: Vec<String>,
    pub groups: Vec<String>,
    pub preprocess: PreprocessConfig,
    pub method: String,
    pub method_label: String,
    pub test_metrics: Option<FairnessMetrics>,
}

/// Folds every batch norm into the convolution that feeds it, packs the layers and validates the
/// result. `layer(name, rows, cols)` supplies a Conv2d/Linear layer's tensors, `batch_norm(name)`
/// a batch norm's; errors name the layer. For graphs whose only parameters are those (ResNets).
pub fn assemble(
    graph: &Graph,
    meta: ModelMeta,
    layer: impl FnMut(&str, usize, usize) -> Result<LayerParams, String>,
    batch_norm: impl FnMut(&str) -> Result<BatchNormParams, String>,
) -> Result<PackedModel, FormatError> {
    assemble_with(graph, meta, layer, batch_norm, |name, _| {
        Err(format!("no source for parameter `{name}`"))
    })
}

/// [`assemble`] for any graph: `tensor(name, shape)` supplies every other parameter (layer norms,
/// class token, position embedding, attention biases) as row-major f32.
pub fn assemble_with(
    graph: &Graph,
    meta: ModelMeta,
    mut layer: impl FnMut(&str, usize, usize) -> Result<LayerParams, String>,
    mut batch_norm: impl FnMut(&str) -> Result<BatchNormParams, String>,
    mut tensor: impl FnMut(&str, &[usize]) -> Result<Vec<f32>, String>,
) -> Result<PackedModel, FormatError> {
    let invalid = FormatError::Invalid;
    let n = graph.nodes.len();
    let mut uses = vec![0usize; n + 1];
    for node in &graph.nodes {
        for &v in &node.inputs {
            *uses
                .get_mut(v)
                .ok_or_else(|| invalid(format!("value {v} does not exist")))? += 1;
        }
    }
    // The batch norm folded into each node, if any.
    let mut folded_bn: Vec<Option<usize>> = vec![None; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        if let Op::BatchNorm2d { channels, .. } = node.op {
            let v = node.inputs.first().copied().unwrap_or(0);
            let conv = v.checked_sub(1).filter(|&j| {
                matches!(&graph.nodes[j].op, Op::Conv2d(c) if c.out_channels == channels)
                    && uses[v] == 1
            });
            match conv {
                Some(j) => folded_bn[j] = Some(i),
                None => {
                    return Err(invalid(format!(
                        "batch norm `{}` does not follow a convolution whose only consumer it is, so it cannot be folded",
                        node.name
                    )))
                }
            }
        }
    }

    // The folded graph: batch norm nodes dropped, their consumers rewired to the convolution.
    let mut new_id = vec![0usize; n + 1];
    let mut nodes = Vec::with_capacity(n);
    let mut layers = Vec::new();
    let mut folded = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if matches!(node.op, Op::BatchNorm2d { .. }) {
            new_id[i + 1] = new_id[node.inputs[0]];
            continue;
        }
        let mut op = node.op.clone();
        let (rows, cols) = match &op {
            Op::Conv2d(c) => (
                c.out_channels,
                c.in_channels / c.groups.max(1) * c.kernel * c.kernel,
            ),
            Op::Linear(l) => (l.out_features, l.in_features),
            _ => (0, 0),
        };
        if rows > 0 {
            let bn = match folded_bn[i] {
                Some(b) => {
                    let bn_node = &graph.nodes[b];
                    let Op::BatchNorm2d { eps, .. } = bn_node.op else {
                        unreachable!("folded_bn only records batch norms")
                    };
                    let p = batch_norm(&bn_node.name)
                        .map_err(|e| invalid(format!("batch norm `{}`: {e}", bn_node.name)))?;
                    folded.push((bn_node.name.clone(), node.name.clone()));
                    Some(
                        fold_factors(&p, rows, eps)
                            .map_err(|e| invalid(format!("batch norm `{}`: {e}", bn_node.name)))?,
                    )
                }
                None => None,
            };
            let params = layer(&node.name, rows, cols)
                .map_err(|e| invalid(format!("layer `{}`: {e}", node.name)))?;
            let packed = pack_layer(&node.name, params, rows, cols, bn.as_ref())?;
            if bn.is_some() {
                if let Op::Conv2d(c) = &mut op {
                    c.bias = true;
                }
            }
            layers.push(packed);
        }
        nodes.push(Node {
            name: node.name.clone(),
            op,
            inputs: node.inputs.iter().map(|&v| new_id[v]).collect(),
        });
        new_id[i + 1] = nodes.len();
    }
    let folded_graph = Graph {
        arch: graph.arch.clone(),
        in_channels: graph.in_channels,
        input_size: graph.input_size,
        num_classes: graph.num_classes,
        nodes,
        output: new_id[graph.output.min(n)],
    };
    let mut tensors = Vec::new();
    for spec in super::tensor_specs(&folded_graph) {
        let data = tensor(&spec.name, &spec.shape)
            .map_err(|e| invalid(format!("parameter `{}`: {e}", spec.name)))?;
        tensors.push(NamedTensor {
            name: spec.name,
            shape: spec.shape,
            data,
        });
    }
    let avg_bits = average_bits(&layers);
    let model = PackedModel {
        graph: folded_graph,
        classes: meta.classes,
        groups: meta.groups,
        preprocess: meta.preprocess,
        summary: CompressionSummary {
            method: meta.method,
            method_label: meta.method_label,
            avg_bits,
            folded,
            test_metrics: meta.test_metrics,
        },
        layers,
        tensors,
        activations: None,
    };
    model.validate()?;
    Ok(model)
}

/// Per-channel `(factor, shift)` of a batch norm in eval mode: `y * factor + shift`, in f64.
fn fold_factors(p: &BatchNormParams, c: usize, eps: f64) -> Result<Vec<(f64, f64)>, String> {
    let lens = [
        p.weight.len(),
        p.bias.len(),
        p.running_mean.len(),
        p.running_var.len(),
    ];
    if lens.iter().any(|&l| l != c) {
        return Err(format!(
            "weight/bias/running_mean/running_var have {lens:?} values, expected {c}"
        ));
    }
    (0..c)
        .map(|o| {
            let var = p.running_var[o] as f64 + eps;
            if var.is_nan() || var <= 0.0 {
                return Err(format!(
                    "channel {o}: running_var + eps = {var} is not positive"
                ));
            }
            let f = p.weight[o] as f64 / var.sqrt();
            Ok((f, p.bias[o] as f64 - p.running_mean[o] as f64 * f))
        })
        .collect()
}

fn pack_layer(
    name: &str,
    p: LayerParams,
    rows: usize,
    cols: usize,
    bn: Option<&Vec<(f64, f64)>>,
) -> Result<Layer, FormatError> {
    let bad = |msg: String| FormatError::Invalid(format!("layer `{name}`: {msg}"));
    if let Some(b) = &p.bias {
        if b.len() != rows {
            return Err(bad(format!("bias has {} values, expected {rows}", b.len())));
        }
    }
    let factor = |o: usize| bn.map_or(1.0, |f| f[o].0);
    let weights = match p.weights {
        LayerSource::Quantized {
            bits,
            codes,
            scales,
        } => {
            if let Some(b) = bits
                .iter()
                .find(|b| !(pack::MIN_BITS..=pack::MAX_BITS).contains(*b))
            {
                return Err(bad(format!(
                    "bit-width {b}: the packed format stores 2..=8 bits per output channel"
                )));
            }
            if bits.len() != rows || scales.len() != rows {
                return Err(bad(format!(
                    "{} bit-widths and {} scales for {rows} output channels",
                    bits.len(),
                    scales.len()
                )));
            }
            let scales = scales
                .iter()
                .enumerate()
                .map(|(o, &s)| (s as f64 * factor(o)) as f32)
                .collect();
            LayerWeights::Packed(PackedMatrix::from_codes(cols, bits, &codes, scales).map_err(bad)?)
        }
        LayerSource::Float(mut data) => {
            if data.len() != rows * cols {
                return Err(bad(format!(
                    "{} weights, expected {}",
                    data.len(),
                    rows * cols
                )));
            }
            if bn.is_some() {
                for (o, row) in data.chunks_mut(cols.max(1)).enumerate() {
                    let f = factor(o);
                    row.iter_mut().for_each(|w| *w = (*w as f64 * f) as f32);
                }
            }
            LayerWeights::F32 { rows, cols, data }
        }
    };
    let bias = match bn {
        Some(f) => Some(
            (0..rows)
                .map(|o| {
                    let own = p.bias.as_ref().map_or(0.0, |b| b[o] as f64);
                    (f[o].1 + own * f[o].0) as f32
                })
                .collect(),
        ),
        None => p.bias,
    };
    Ok(Layer {
        name: name.to_string(),
        weights,
        bias,
    })
}

/// Parameter-weighted mean bit-width (spec §8): every weight counts its channel's width, 32 for f32.
fn average_bits(layers: &[Layer]) -> f64 {
    let (mut bits, mut count) = (0f64, 0f64);
    for l in layers {
        let (rows, cols) = l.weights.dims();
        match &l.weights {
            LayerWeights::Packed(p) => {
                bits += p.bits.iter().map(|&b| b as f64 * cols as f64).sum::<f64>();
            }
            LayerWeights::F32 { .. } => bits += 32.0 * (rows * cols) as f64,
        }
        count += (rows * cols) as f64;
    }
    if count > 0.0 {
        bits / count
    } else {
        0.0
    }
}
