//! The spec §1 quantizer and round-half-even written in candle tensor ops, for devices other than
//! the CPU. On the CPU the quantizer runs on the host slice (`quant::quantize_weight`, or the
//! `ops::fake_quant` op); on CUDA that would copy every weight to the host and back at every
//! forward pass (and stall the GPU on each copy), so the same arithmetic runs on the device.
//!
//! The results are bit-for-bit those of the host quantizer, because each step is one IEEE f32
//! operation in the same order: `amax = max |w|` (exact), `s = amax / q` and `w / s` (correctly
//! rounded division: candle's CUDA kernels are built without fast-math), round-half-even by the
//! `2^23` trick (exact for every f32, see [`round_half_even`]), clamp and `· s` (exact / one
//! rounding). The unit tests check that on the CPU against the host quantizer; the CUDA parity test
//! checks it on a GPU.

use crate::nn::quant::{qmax, Granularity};
use anyhow::{bail, Result};
use candle_core::Tensor;

/// `2^23`: at and above it every f32 is an integer; below it `(a + 2^23) - 2^23` is `a` rounded
/// to an integer by the FPU's round-to-nearest-even mode.
const TWO_23: f64 = 8_388_608.0;

/// Elementwise `round_ties_even` in tensor ops (candle's `round` rounds halves away from zero,
/// unlike PyTorch and the host quantizer): `sign(x) · r(|x|)` with `r(a) = (a + 2^23) - 2^23` for
/// `a < 2^23`, else `a`; the sign gives `-0.0` for small negatives, as `round_ties_even` does.
pub fn round_half_even(x: &Tensor) -> Result<Tensor> {
    let a = x.abs()?;
    let r = ((&a + TWO_23)? - TWO_23)?;
    let r = a.ge(TWO_23)?.where_cond(&a, &r)?;
    // `sign(±0) = 0` would turn -0.0 into +0.0: zeros pass through as they are.
    Ok(x.eq(0.0)?.where_cond(x, &(r * x.sign()?)?)?)
}

/// Forward `Q(w)` (spec §1: per-channel or per-tensor symmetric quantize–dequantize, 0 bits =
/// zero, 1 bit = sign), backward identity, all in tensor ops on `w`'s device.
pub fn fake_quant(w: &Tensor, bits: &[u8], gran: Granularity) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let n = w.elem_count();
    let scopes = match gran {
        Granularity::PerTensor => {
            if bits.len() != 1 {
                bail!(
                    "per-tensor quantization takes one bit-width, got {}",
                    bits.len()
                );
            }
            1
        }
        Granularity::PerChannel => {
            let out = dims.first().copied().unwrap_or(0);
            if bits.len() != out || out == 0 || !n.is_multiple_of(out) {
                bail!(
                    "per-channel quantization of {n} weights needs one bit-width per each of {out} channels, got {}",
                    bits.len()
                );
            }
            out
        }
    };
    let dev = w.device();
    let flat = w.detach().reshape((scopes, n / scopes))?;
    // qmax per scope; 1 for the 0/1-bit scopes, whose values are replaced below.
    let q: Vec<f32> = bits
        .iter()
        .map(|&b| if b >= 2 { qmax(b) } else { 1.0 })
        .collect();
    let q = Tensor::from_vec(q, (scopes, 1), dev)?.to_dtype(w.dtype())?;
    let amax = flat.abs()?.max_keepdim(1)?.maximum(1e-8)?;
    let s = amax.broadcast_div(&q)?;
    let r = round_half_even(&flat.broadcast_div(&s)?)?
        .broadcast_minimum(&q)?
        .broadcast_maximum(&q.neg()?)?;
    let mut out = r.broadcast_mul(&s)?;
    if bits.iter().any(|&b| b < 2) {
        let mode: Vec<u8> = bits.iter().map(|&b| b.min(2)).collect();
        let mode = Tensor::from_vec(mode, (scopes, 1), dev)?.broadcast_as(flat.shape())?;
        let one_bit = mode
            .eq(1u8)?
            .where_cond(&flat.sign()?, &flat.zeros_like()?)?;
        out = mode.eq(2u8)?.where_cond(&out, &one_bit)?;
    }
    let out = out.reshape(dims)?;
    Ok((out + (w - w.detach())?)?)
}

/// Whether `t` should use these tensor-op versions: off the CPU (on the CPU the host code is
/// faster and needs no copies).
pub fn off_cpu(t: &Tensor) -> bool {
    !t.device().is_cpu()
}

/// `t` as f32 values on the host (tests and reports).
#[cfg(test)]
fn host(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::F32))
        .and_then(|t| t.to_vec1())
        .expect("f32 values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::quant::quantize_weight;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    #[test]
    fn round_half_even_matches_round_ties_even_bit_for_bit() {
        let v: Vec<f32> = vec![
            0.0,
            -0.0,
            0.3,
            -0.3,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            3.5,
            126.5,
            -127.5,
            0.49999997,
            4_194_304.5,
            -4_194_304.5,
            8_388_607.5,
            8_388_608.0,
            1e30,
            -1e30,
            1e-40,
            7.0,
            6.5,
        ];
        let t = Tensor::from_vec(v.clone(), v.len(), &Device::Cpu).unwrap();
        let got = host(&round_half_even(&t).unwrap());
        for (x, g) in v.iter().zip(&got) {
            assert_eq!(
                g.to_bits(),
                x.round_ties_even().to_bits(),
                "round_half_even({x}) = {g}"
            );
        }
    }

    #[test]
    fn tensor_op_quantizer_equals_the_host_quantizer_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (o, k) = (12, 37);
        let mut w: Vec<f32> = (0..o * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        // Exact ties: amax 7 at 4 bits gives scale 1, so 2.5 and -2.5 sit on a half.
        w[..4].copy_from_slice(&[7.0, 2.5, 3.5, -2.5]);
        let bits: Vec<u8> = (0..o).map(|i| [0, 1, 2, 3, 4, 5, 6, 8][i % 8]).collect();
        let t = Tensor::from_vec(w.clone(), (o, k), &Device::Cpu).unwrap();
        for (gran, b) in [
            (Granularity::PerChannel, bits.clone()),
            (Granularity::PerTensor, vec![4]),
            (Granularity::PerTensor, vec![1]),
        ] {
            let (want, _) = quantize_weight(&w, o, &b, gran).unwrap();
            let got = host(&fake_quant(&t, &b, gran).unwrap());
            assert_eq!(got, want, "{gran:?} {b:?}");
        }
        assert!(fake_quant(&t, &bits[..3], Granularity::PerChannel).is_err());
    }

    #[test]
    fn tensor_op_quantizer_passes_the_gradient_straight_through() {
        let w = Var::from_vec(vec![0.3f32, -0.7, 0.1, 0.9], (2, 2), &Device::Cpu).unwrap();
        let y = fake_quant(w.as_tensor(), &[2, 4], Granularity::PerChannel).unwrap();
        let g = (y * 3.0).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(host(g.get(w.as_tensor()).unwrap()), [3.0; 4]);
    }
}
