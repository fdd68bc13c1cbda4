//! A packed layer's weights as ONNX: the integer codes as an int8 (or, for a layer whose every
//! channel is at most 4 bits and an opset that has it, int4) initializer, exactly the codes of
//! the `.fqm`, dequantized by a per-output-channel `DequantizeLinear` (axis 0, zero points 0,
//! the `.fqm`'s scales with any folded batch-norm factor). onnxruntime then computes
//! `code * scale` per weight, which is what the `.fqm` means by the same numbers.

use fq_runtime::format::{pack, Layer, LayerWeights, PackedMatrix};

use super::builder::GraphBuilder;
use super::ExportError;

/// First opset whose `DequantizeLinear` takes int4 input.
pub const INT4_OPSET: i64 = 21;

/// The weight tensor of `layer` (shape `dims`, row-major `[out, ...]`) as the f32 output of a
/// `DequantizeLinear`, or as an f32 initializer for an unquantized (FP32) layer.
pub fn weight(
    b: &mut GraphBuilder,
    layer: &Layer,
    dims: &[usize],
    opset: i64,
) -> Result<String, ExportError> {
    let name = format!("{}.weight", layer.name);
    match &layer.weights {
        LayerWeights::F32 { data, .. } => Ok(b.f32(&name, dims, data)),
        LayerWeights::Packed(m) => {
            let codes = codes(m).map_err(|msg| ExportError::Layer {
                layer: layer.name.clone(),
                msg,
            })?;
            let int4 = opset >= INT4_OPSET && m.bits.iter().all(|&w| w <= 4);
            let zeros = vec![0i8; m.rows];
            let (q, zp) = if int4 {
                (
                    b.i4(&name, dims, &codes),
                    b.i4("zero_point", &[m.rows], &zeros),
                )
            } else {
                (
                    b.i8(&name, dims, &codes),
                    b.i8("zero_point", &[m.rows], &zeros),
                )
            };
            let s = b.f32(&format!("{}.scale", layer.name), &[m.rows], &m.scales);
            Ok(b.node(
                "DequantizeLinear",
                &layer.name,
                &[&q, &s, &zp],
                vec![("axis", super::builder::Attr::Int(0))],
            ))
        }
    }
}

/// The signed codes of a packed matrix, row-major: the inverse of the `.fqm` bit packing.
fn codes(m: &PackedMatrix) -> Result<Vec<i8>, String> {
    let offsets = m.row_offsets();
    let mut row = vec![0f32; m.cols];
    let mut out = Vec::with_capacity(m.rows * m.cols);
    for r in 0..m.rows {
        let bytes = m
            .data
            .get(offsets[r]..offsets[r + 1])
            .ok_or_else(|| format!("row {r}: packed data too short"))?;
        if !pack::unpack_row(bytes, m.bits[r], 0, &mut row) {
            return Err(format!("row {r}: cannot unpack {} bits", m.bits[r]));
        }
        out.extend(row.iter().map(|&c| c as i8));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_packing() {
        // Row 0 at 2 bits (codes -1..=1), row 1 at 8 bits (-127..=127), 9 columns: a partial chunk.
        let valid: Vec<i8> = vec![
            1, -1, 0, 1, 1, -1, 0, 0, -1, //
            0, 127, -127, 5, -3, 2, 0, 0, 9,
        ];
        let m = PackedMatrix::from_codes(9, vec![2, 8], &valid, vec![0.5, 0.25]).unwrap();
        assert_eq!(codes(&m).unwrap(), valid);
    }
}
