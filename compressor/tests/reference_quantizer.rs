//! The quantizer against the PyTorch implementation of spec §1 (`tools/reference/quantizer.py`):
//! exact dequantized values and scales, ties, zero channels, mixed bits, and the STE gradient.

use candle_core::{Device, Tensor, Var};
use fq_compress::quant::{fake_quant, quantize_weight, Granularity};
use serde_json::Value;

fn load() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tools/reference/fixtures/quantizer.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn gran(v: &Value) -> Granularity {
    match v.as_str().unwrap() {
        "per_channel" => Granularity::PerChannel,
        "per_tensor" => Granularity::PerTensor,
        g => panic!("unknown granularity {g}"),
    }
}

fn bits(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect()
}

#[test]
fn quantize_dequantize_matches_torch_exactly() {
    let fx = load();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let (q, s) = quantize_weight(
            &f32s(&case["w"]),
            shape[0],
            &bits(&case["bits"]),
            gran(&case["granularity"]),
        )
        .unwrap();
        let (want_q, want_s) = (f32s(&case["q"]), f32s(&case["scale"]));
        for (i, (a, b)) in q.iter().zip(&want_q).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{name}[{i}]: {a} vs torch {b}");
        }
        // b = 0/1 have no scale in our API (0) while torch reports its unused one.
        for (a, b) in s.iter().zip(&want_s) {
            assert!(*a == 0.0 || a == b, "{name}: scale {a} vs torch {b}");
        }
    }
}

#[test]
fn straight_through_gradient_is_identity() {
    let fx = load();
    for case in fx["ste_cases"].as_array().unwrap() {
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let w = Var::from_tensor(
            &Tensor::from_vec(f32s(&case["w"]), shape.clone(), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let g = Tensor::from_vec(f32s(&case["upstream_grad"]), shape, &Device::Cpu).unwrap();
        let q = fake_quant(
            w.as_tensor(),
            &bits(&case["bits"]),
            gran(&case["granularity"]),
        )
        .unwrap();
        let got: Vec<f32> = q.flatten_all().unwrap().to_vec1().unwrap();
        let want = f32s(&case["q"]);
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.to_bits(), b.to_bits(), "forward {a} vs {b}");
        }
        let grads = (q * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gw: Vec<f32> = grads
            .get(w.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(gw, f32s(&case["grad_w"]), "{}", case["name"]);
    }
}
