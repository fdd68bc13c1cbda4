//! Fake quantization of a weight tensor in a forward pass, on whichever device it is: the CPU
//! kernel (`ops::fake_quant`) where it applies, the tensor-op version (`quant_ops`) off the CPU,
//! else the reference quantizer on the host. Kept apart from `quant` (the quantizer itself),
//! which both kernels build on, so that neither imports its own caller.

use crate::nn::quant::{quantize_weight, Granularity};
use crate::nn::{ops, quant_ops};
use anyhow::Result;
use candle_core::Tensor;

/// Fake-quantize a weight tensor with a straight-through estimator:
/// forward `Q(w)`, backward identity; no gradient reaches the scale. Written as
/// `Q(w) + (w - stopgrad(w))` rather than `w + stopgrad(Q(w) - w)` so the forward value is exactly
/// `Q(w)` (the packed runtime model must reproduce it bit for bit).
pub fn fake_quant(w: &Tensor, bits: &[u8], gran: Granularity) -> Result<Tensor> {
    if ops::applies(w) {
        return Ok(ops::fake_quant::apply(w, bits, gran)?);
    }
    // Off the CPU: the same arithmetic in tensor ops on the device, no host round trip.
    if quant_ops::off_cpu(w) {
        return quant_ops::fake_quant(w, bits, gran);
    }
    let dims = w.dims().to_vec();
    let host: Vec<f32> = w.flatten_all()?.to_vec1()?;
    let (q, _) = quantize_weight(&host, dims[0], bits, gran)?;
    let q = Tensor::from_vec(q, dims, w.device())?;
    Ok((q + (w - w.detach())?)?)
}
