//! The quantizer against the PyTorch implementation of spec §1 (`tools/reference/quantizer.py`):
//! exact dequantized values and scales, ties, zero channels, mixed bits, and the STE gradient.

use candle_core::{Device, Tensor, Var};
use fq_compress::nn::fake_quant::fake_quant;
use fq_compress::nn::quant::{quantize_weight, Granularity};
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

/// PTQ at every width on the real (narrow ResNet18) weights: each output channel of every layer
/// takes at most `2 qmax + 1 = 2^b - 1` distinct values (ptq-u3: 7), all of them `q * scale` with
/// integer `|q| <= qmax`, and the largest |w| of the channel lands on `±qmax`. The names and
/// labels of old runs (`ptq-u8`/U8, `ptq-u4`/U4) still read.
#[test]
fn ptq_widths_use_their_grid_per_channel() {
    use fq_compress::methods::{ptq_bits, Method, MethodId};
    let dev = Device::Cpu;
    let graph = fq_models::ArchSpec::new(fq_models::Arch::ResNet18, 8, 64, 5)
        .graph()
        .unwrap();
    let fx = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tools/reference/fixtures/resnet18_w8.safetensors"
    );
    let params = fq_compress::nn::params::ParamStore::load_safetensors(
        &graph,
        std::path::Path::new(fx),
        0,
        &dev,
        false,
    )
    .unwrap();
    let layers = graph.quant_layers().unwrap();
    let mut widths = Vec::new();
    for m in Method::PTQ {
        let b = m.ptq_width().unwrap();
        widths.push(b);
        let assignment = m.fixed_bits(&layers).unwrap();
        assert_eq!(assignment, ptq_bits(&layers, b).unwrap());
        let qmax = ((1u32 << (b - 1)) - 1) as f32;
        for l in &layers {
            let w: Vec<f32> = params
                .get(&format!("{}.weight", l.name))
                .unwrap()
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let bits = &assignment.layers[&l.name];
            assert!(bits.iter().all(|&x| x == b));
            let (q, scales) =
                quantize_weight(&w, l.out_channels, bits, Granularity::PerChannel).unwrap();
            let per = w.len() / l.out_channels;
            for (o, (qc, wc)) in q.chunks(per).zip(w.chunks(per)).enumerate() {
                let s = scales[o];
                // By value: -0.0 and +0.0 are the one zero level (`+ 0.0` maps -0.0 to +0.0).
                let mut distinct: Vec<u32> = qc.iter().map(|x| (x + 0.0).to_bits()).collect();
                distinct.sort_unstable();
                distinct.dedup();
                assert!(
                    distinct.len() as f32 <= 2.0 * qmax + 1.0,
                    "{} at {b} bits, channel {o}: {} distinct values",
                    l.name,
                    distinct.len()
                );
                for &x in qc {
                    let k = (x / s).round_ties_even();
                    assert!(
                        k * s == x && k.abs() <= qmax,
                        "{} at {b} bits, channel {o}: {x} is not an integer <= {qmax} times {s}",
                        l.name
                    );
                }
                let amax = wc.iter().fold(0f32, |m, x| m.max(x.abs()));
                let top = qc.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert_eq!(top, qmax * s, "{} channel {o}", l.name);
                assert!(amax > 0.0);
            }
        }
    }
    assert_eq!(widths, [2, 3, 4, 5, 6, 7, 8, 16]);
    assert_eq!(Method::ptq(3), Some(Method::PtqU3));
    assert_eq!(Method::ptq(9), None);
    // 9..=15 have no method; the precision sweep takes them from `ptq_bits`.
    assert!(ptq_bits(&layers, 12).is_ok());
    assert!(ptq_bits(&layers, 1).is_err() && ptq_bits(&layers, 17).is_err());
    for (m, name, label) in [
        (Method::PtqU8, "ptq-u8", "U8"),
        (Method::PtqU4, "ptq-u4", "U4"),
        (Method::PtqU3, "ptq-u3", "U3"),
        (Method::PtqU16, "ptq-u16", "U16"),
        (Method::QatU4, "qat-u4", "QAT-U4"),
        (Method::Fp32Ft, "fp32-ft", "FP32-FT"),
    ] {
        assert_eq!(MethodId::from(m).name(), name);
        assert_eq!(m.label(), label);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Method>(&json).unwrap(), m);
    }
}
