//! The `.fqm` body after the checksum: what an attacker controls, since anyone can write a header
//! whose SHA-256 matches. The input is the postcard body; the target wraps it in a valid header,
//! so every input reaches the decoder and the validator. A model that validates then goes through
//! the CPU plan builder, through `assemble` (re-packing its own layers must not panic), and, when
//! small, one forward pass.
#![no_main]

use fq_runtime::exec::Executor;
use fq_runtime::format::pack::{row_bytes, unpack_row};
use fq_runtime::format::{
    assemble_with, wrap, LayerParams, LayerSource, LayerWeights, ModelMeta, PackedModel,
};
use libfuzzer_sys::fuzz_target;

/// Forward passes only for models up to this many multiply-accumulates (keeps executions fast;
/// the bounds on bigger models are the validator's job, tested in runtime/tests/bad_input.rs).
const RUN_MACS: u64 = 2_000_000;

fuzz_target!(|body: &[u8]| {
    let file = wrap(body);
    let Ok(model) = PackedModel::from_bytes(&file) else {
        return;
    };
    // What validates must encode and decode back to itself.
    let again = PackedModel::from_bytes(&model.to_bytes().expect("a valid model encodes"))
        .expect("a model's own bytes decode");
    assert_eq!(again, model);

    reassemble(&model);

    let macs = model.graph.macs().unwrap_or(u64::MAX);
    let mut exec = model.clone();
    let exec = Executor::from_model(&mut exec).expect("a validated model compiles");
    if macs <= RUN_MACS && exec.input_len() <= 3 * 64 * 64 {
        let image: Vec<f32> = (0..exec.input_len())
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        let logits = exec.run(&image).expect("input of the declared size");
        assert_eq!(logits.len(), exec.output_len());
        assert!(exec.run(&image[1..]).is_err());
    }
});

/// `assemble_with` on the model's own (already folded) graph and tensors: must succeed or fail
/// with an error, and a success keeps the graph and every layer's dimensions.
fn reassemble(model: &PackedModel) {
    let meta = ModelMeta {
        classes: model.classes.clone(),
        groups: model.groups.clone(),
        preprocess: model.preprocess.clone(),
        method: model.summary.method.clone(),
        method_label: model.summary.method_label.clone(),
        test_metrics: model.summary.test_metrics.clone(),
    };
    let layer = |name: &str, rows: usize, cols: usize| -> Result<LayerParams, String> {
        let l = model
            .layers
            .iter()
            .find(|l| l.name == name)
            .ok_or("no such layer")?;
        if l.weights.dims() != (rows, cols) {
            return Err("dims".into());
        }
        let weights = match &l.weights {
            LayerWeights::F32 { data, .. } => LayerSource::Float(data.clone()),
            LayerWeights::Packed(m) => {
                let mut codes = Vec::with_capacity(rows * cols);
                let mut at = 0;
                let mut row = vec![0f32; cols];
                for &b in &m.bits {
                    let n = row_bytes(cols, b);
                    if !unpack_row(&m.data[at..at + n], b, 0, &mut row) {
                        return Err("unpack".into());
                    }
                    codes.extend(row.iter().map(|&q| q as i8));
                    at += n;
                }
                LayerSource::Quantized {
                    bits: m.bits.clone(),
                    codes,
                    scales: m.scales.clone(),
                }
            }
        };
        Ok(LayerParams {
            weights,
            bias: l.bias.clone(),
        })
    };
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let t = model
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or("no such tensor")?;
        if t.shape != shape {
            return Err("shape".into());
        }
        Ok(t.data.clone())
    };
    let no_bn = |name: &str| Err(format!("no batch norm `{name}` in a folded model"));
    if let Ok(m) = assemble_with(&model.graph, meta, layer, no_bn, tensor) {
        assert_eq!(m.graph, model.graph);
        assert_eq!(m.layers.len(), model.layers.len());
        for (a, b) in m.layers.iter().zip(&model.layers) {
            assert_eq!(a.weights.dims(), b.weights.dims());
        }
    }
}
