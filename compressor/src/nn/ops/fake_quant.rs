//! The spec §1 straight-through fake-quantizer as one op: forward `Q(w)` computed straight from
//! the weight's storage, backward the identity. Replaces `Q(w) + (w - stopgrad(w))`, which copied
//! the weight to the host and back and added three tensor ops (and their backward) per layer.

use super::cpu_slice;
use crate::nn::quant::{quantize_weight, Granularity};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// `Q(w)` with an identity gradient, on a contiguous f32 CPU weight `[O, ...]`.
pub fn apply(w: &Tensor, bits: &[u8], gran: Granularity) -> candle_core::Result<Tensor> {
    w.contiguous()?.apply_op1(FakeQuant {
        bits: bits.to_vec(),
        gran,
    })
}

struct FakeQuant {
    bits: Vec<u8>,
    gran: Granularity,
}

impl CustomOp1 for FakeQuant {
    fn name(&self) -> &'static str {
        "fq-fake-quant"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = cpu_slice(s, l)?;
        let out = l.dims().first().copied().unwrap_or(1);
        let (q, _) = quantize_weight(w, out, &self.bits, self.gran)
            .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
        Ok((CpuStorage::F32(q), l.shape().clone()))
    }

    /// Straight-through: the gradient passes unchanged to the full-precision weight.
    fn bwd(
        &self,
        _w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.clone()))
    }
}
