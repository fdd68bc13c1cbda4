//! The compressed model as ONNX, for deployment stacks built on onnxruntime (issue 21).
//!
//! The ONNX file is built from the very [`PackedModel`] the `.fqm` export writes (batch norm
//! already folded, the same integer codes and per-channel scales), so both files describe one
//! model: each Conv2d/Linear weight is an int8 (opset 21: int4 for a layer whose every channel
//! has at most 4 bits) initializer of the `.fqm`'s codes, dequantized per output channel by
//! `DequantizeLinear` (axis 0, zero points 0); everything else is f32, activations included (the
//! runtime has no activation scales yet; QDQ activations come with the integer runtime). The
//! class and group names, preprocessing, per-channel bit-widths and per-group test metrics go
//! into `metadata_props` as JSON strings (see [`metadata`]); preprocessing itself (resize,
//! normalize) stays outside the graph, as in the runtime.
//!
//! The protobuf types are generated from the ONNX project's `onnx.proto` by
//! `tools/onnx-proto-gen` (pure Rust, no `protoc`) and encoded with `prost`.

mod attention;
mod builder;
mod lower;
pub mod metadata;
#[allow(clippy::all, missing_docs, rustdoc::all)]
mod proto;
mod tokens;
mod weights;

use std::path::Path;

use fq_runtime::format::PackedModel;
use prost::Message;

use builder::GraphBuilder;
use proto::{
    tensor_proto::DataType, tensor_shape_proto, tensor_shape_proto::dimension::Value as Dim,
    type_proto, GraphProto, ModelProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

pub use lower::INPUT;
pub use weights::INT4_OPSET;

/// Name of the graph's output, `[N, classes]` f32 logits.
pub const OUTPUT: &str = "logits";

/// The default opset: the first with `LayerNormalization`, run by every onnxruntime since 1.14.
pub const DEFAULT_OPSET: i64 = 17;

/// Why a model cannot be written as ONNX; messages name the node or layer.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the model's graph is invalid: {0}")]
    Graph(String),
    #[error("node {node} (`{name}`): {msg}")]
    Node {
        node: usize,
        name: String,
        msg: String,
    },
    #[error("layer `{layer}`: {msg}")]
    Layer { layer: String, msg: String },
    #[error("opset {0} is not supported: use 17..=21 ({INT4_OPSET} stores layers of at most 4 bits as int4)")]
    Opset(i64),
    #[error("cannot write the ONNX model: {0}")]
    Write(std::io::Error),
}

/// How to write the ONNX model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnnxOptions {
    /// ONNX opset (17..=21); from [`INT4_OPSET`] on, layers whose channels all have at most 4
    /// bits are stored as int4 (half the bytes of int8).
    pub opset: i64,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        Self {
            opset: DEFAULT_OPSET,
        }
    }
}

/// The ONNX model of `model`.
pub fn to_model_proto(model: &PackedModel, opts: OnnxOptions) -> Result<ModelProto, ExportError> {
    if !(DEFAULT_OPSET..=INT4_OPSET).contains(&opts.opset) {
        return Err(ExportError::Opset(opts.opset));
    }
    model
        .validate()
        .map_err(|e| ExportError::Graph(e.to_string()))?;
    let g = &model.graph;
    let mut b = GraphBuilder::default();
    let logits = lower::lower(&mut b, model, opts.opset)?;
    b.node("Identity", OUTPUT, &[&logits], vec![]);
    // The Identity's output gets a fresh name; rename it to the public one.
    let last = b.nodes.last_mut().expect("just added");
    last.output = vec![OUTPUT.to_string()];
    let batch = || Dim::DimParam("batch".into());
    let size = g.input_size as i64;
    let graph = GraphProto {
        name: Some(g.arch.clone()),
        node: b.nodes,
        initializer: b.initializers,
        input: vec![value_info(
            INPUT,
            vec![
                batch(),
                Dim::DimValue(g.in_channels as i64),
                Dim::DimValue(size),
                Dim::DimValue(size),
            ],
        )],
        output: vec![value_info(
            OUTPUT,
            vec![batch(), Dim::DimValue(model.classes.len() as i64)],
        )],
        doc_string: Some(format!(
            "{} compressed with {} ({:.2} bits/weight); input: preprocessed images, see metadata",
            g.arch, model.summary.method_label, model.summary.avg_bits
        )),
        ..Default::default()
    };
    Ok(ModelProto {
        // IR 8 came with opset 17, IR 10 with opset 21 (int4).
        ir_version: Some(if opts.opset >= INT4_OPSET { 10 } else { 8 }),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opts.opset),
        }],
        producer_name: Some("fq-compress".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: Some("fairquant".into()),
        model_version: Some(1),
        doc_string: Some(
            "FairQuant: fairness-aware mixed-precision quantized classifier (weights int codes x per-channel scale)"
                .into(),
        ),
        graph: Some(graph),
        metadata_props: metadata::props(model),
        ..Default::default()
    })
}

/// The encoded ONNX file of `model`.
pub fn to_bytes(model: &PackedModel, opts: OnnxOptions) -> Result<Vec<u8>, ExportError> {
    Ok(to_model_proto(model, opts)?.encode_to_vec())
}

/// Writes `model` as ONNX to `path` atomically; returns the file size.
pub fn save(model: &PackedModel, path: &Path, opts: OnnxOptions) -> Result<u64, ExportError> {
    let bytes = to_bytes(model, opts)?;
    fq_runtime::atomic::write_atomic(path, &bytes).map_err(ExportError::Write)?;
    Ok(bytes.len() as u64)
}

fn value_info(name: &str, dims: Vec<Dim>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|d| tensor_shape_proto::Dimension {
                            value: Some(d),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opset_without_layer_norm_or_beyond_int4_is_refused() {
        let g = fq_models::ArchSpec::new(fq_models::Arch::ResNet18, 4, 32, 3)
            .graph()
            .unwrap();
        // The error comes before the model is looked at, so any model will do.
        let model = PackedModel {
            graph: g,
            classes: vec![],
            groups: vec![],
            preprocess: Default::default(),
            summary: fq_runtime::format::CompressionSummary {
                method: String::new(),
                method_label: String::new(),
                avg_bits: 0.0,
                folded: vec![],
                test_metrics: None,
            },
            layers: vec![],
            tensors: vec![],
            activations: None,
        };
        for opset in [13, 22] {
            let e = to_bytes(&model, OnnxOptions { opset })
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("opset {opset}")) && e.contains("17..=21"),
                "{e}"
            );
        }
        let e = to_bytes(&model, OnnxOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid"), "{e}");
    }
}
