//! What an ONNX file says about its model beyond the graph, as `metadata_props` (string keys,
//! JSON string values; onnxruntime exposes them as `session.get_modelmeta().custom_metadata_map`).
//! The same facts as the `.fqm` header fields, so a site can validate either file the same way.

use std::collections::BTreeMap;

use fq_runtime::format::PackedModel;
use serde_json::json;

use super::proto::StringStringEntryProto;

/// Prefix of every key this exporter writes.
pub const PREFIX: &str = "fairquant.";

/// The keys and their JSON values:
/// - `fairquant.classes`, `fairquant.groups`: the class and patient-group names, in logit / group
///   order;
/// - `fairquant.preprocess`: `{width, height, mean, std, resize, scale, layout}` — resize to
///   exactly `width x height` (bilinear), `(pixel / 255 - mean[c]) / std[c]`, RGB, NCHW;
/// - `fairquant.method`, `fairquant.method_label`, `fairquant.avg_bits`, `fairquant.arch`;
/// - `fairquant.bits`: `{layer: [bits of each output channel]}` (`[32, ...]` for an f32 layer);
/// - `fairquant.folded`: the `[batch norm, convolution]` pairs folded at export;
/// - `fairquant.test_metrics`: the compressor's per-group test metrics (`null` if none), the
///   figures `fq-validate` compares a site's results against;
/// - `fairquant.activations`: `"f32"`.
pub fn props(model: &PackedModel) -> Vec<StringStringEntryProto> {
    let p = &model.preprocess;
    let bits: BTreeMap<String, Vec<u8>> = crate::run::model_card::layer_bits(model)
        .into_iter()
        .collect();
    let s = &model.summary;
    let entries = [
        ("arch", json!(model.graph.arch)),
        ("classes", json!(model.classes)),
        ("groups", json!(model.groups)),
        (
            "preprocess",
            json!({
                "width": p.width,
                "height": p.height,
                "mean": p.mean.map(short),
                "std": p.std.map(short),
                "resize": "exact width x height, bilinear (aspect ratio not kept)",
                "scale": "(pixel / 255 - mean[c]) / std[c]",
                "layout": "NCHW, RGB, f32",
            }),
        ),
        ("method", json!(s.method)),
        ("method_label", json!(s.method_label)),
        ("avg_bits", json!(s.avg_bits)),
        ("bits", json!(bits)),
        ("folded", json!(s.folded)),
        ("test_metrics", json!(s.test_metrics)),
        ("activations", json!("f32")),
    ];
    entries
        .into_iter()
        .map(|(k, v)| StringStringEntryProto {
            key: Some(format!("{PREFIX}{k}")),
            // A `Value` displays as compact JSON.
            value: Some(v.to_string()),
        })
        .collect()
}

/// An f32 as the shortest decimal that reads back to it (`0.485`, not `0.48500001430511475`).
fn short(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}
