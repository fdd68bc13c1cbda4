//! AutoAugment (ImageNet policy) against torchvision 0.29 / Pillow 13 (`tools/reference/autoaugment_ref.py`):
//! the policy table, the magnitude bins, every op of the policy at every bin it uses (both signs), a few
//! extra ops/bins of the same augmentation space, and all 25 sub-policies applied end to end, on three
//! small images. Every output must match torchvision's pixels exactly.

use crate::common;
use common::fixture;

use fq_compress::data::autoaugment::{apply, Draw, Op, IMAGENET_POLICY, NUM_BINS};
use image::RgbImage;
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::BTreeMap;

struct Fixture {
    json: Value,
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Fixture {
        let json = std::fs::read_to_string(fixture("autoaugment_ref.json")).unwrap();
        Fixture {
            json: serde_json::from_str(&json).unwrap(),
            bytes: std::fs::read(fixture("autoaugment_ref.safetensors")).unwrap(),
        }
    }

    fn image(&self, name: &str) -> RgbImage {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), safetensors::Dtype::U8, "{name}");
        let &[h, w, 3] = t.shape() else {
            panic!("{name}: shape {:?}", t.shape())
        };
        RgbImage::from_raw(w as u32, h as u32, t.data().to_vec()).unwrap()
    }

    fn inputs(&self) -> Vec<RgbImage> {
        let n = self.json["images"].as_u64().unwrap();
        (0..n).map(|k| self.image(&format!("input.{k}"))).collect()
    }

    fn cases(&self) -> &Vec<Value> {
        self.json["cases"].as_array().unwrap()
    }
}

/// Largest absolute difference and number of differing bytes.
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    a.iter().zip(b.iter()).fold((0, 0), |(m, n), (&x, &y)| {
        (m.max(x.abs_diff(y)), n + usize::from(x != y))
    })
}

/// A magnitude against the fixture's float32 bit pattern: torchvision's magnitudes are float32 values
/// widened to f64, so equal float32 bits and an f32-exact `m` mean the same double (the decimal in the JSON
/// is for reading; serde_json may round it 1 ulp off).
fn same_magnitude(m: f64, bits: &Value) -> bool {
    let bits = bits.as_u64().unwrap() as u32;
    f64::from(m as f32) == m && (m as f32).to_bits() == bits
}

fn bin_of(v: &Value) -> Option<usize> {
    v.as_u64().map(|b| b as usize)
}

#[test]
fn policy_table_is_torchvisions() {
    let f = Fixture::load();
    let policy = f.json["policy"].as_array().unwrap();
    assert_eq!(policy.len(), IMAGENET_POLICY.len());
    for (i, (want, got)) in policy.iter().zip(IMAGENET_POLICY.iter()).enumerate() {
        for (w, g) in want.as_array().unwrap().iter().zip(got) {
            assert_eq!(w[0].as_str().unwrap(), g.op.name(), "sub-policy {i}");
            assert_eq!(w[1].as_f64().unwrap(), g.p, "sub-policy {i}");
            assert_eq!(bin_of(&w[2]), g.bin, "sub-policy {i}");
        }
    }
}

#[test]
fn magnitude_bins_are_torchvisions_to_the_bit() {
    let f = Fixture::load();
    let table = f.json["magnitudes"].as_object().unwrap();
    for op in Op::ALL {
        let entry = &table[op.name()];
        assert_eq!(entry["signed"].as_bool().unwrap(), op.signed(), "{op:?}");
        let bits = entry["f32_bits"].as_array().unwrap();
        if bits.len() == 1 {
            assert!(
                same_magnitude(op.magnitude(None, false), &bits[0]),
                "{op:?}"
            );
            continue;
        }
        assert_eq!(bits.len(), NUM_BINS, "{op:?}");
        for (bin, b) in bits.iter().enumerate() {
            let m = op.magnitude(Some(bin), false);
            assert!(same_magnitude(m, b), "{op:?} bin {bin}: {m}");
            let flipped = if op.signed() { -m } else { m };
            assert_eq!(
                op.magnitude(Some(bin), true).to_bits(),
                flipped.to_bits(),
                "{op:?} bin {bin}"
            );
        }
    }
}

#[test]
fn every_op_matches_torchvision_exactly() {
    let f = Fixture::load();
    let inputs = f.inputs();
    // Per op: (cases, largest |diff|, differing bytes).
    let mut per_op: BTreeMap<&str, (usize, u8, usize)> = BTreeMap::new();
    let mut covered = std::collections::HashSet::new();
    for case in f.cases().iter().filter(|c| c.get("op").is_some()) {
        let name = case["name"].as_str().unwrap();
        let op = Op::from_name(case["op"].as_str().unwrap()).expect("implemented op");
        let (bin, negative) = (bin_of(&case["bin"]), case["negative"].as_bool().unwrap());
        covered.insert((op, bin, negative && op.signed()));
        for (k, img) in inputs.iter().enumerate() {
            let m = op.magnitude(bin, negative);
            let want_m = &case["magnitude_f32_bits"][k];
            assert!(same_magnitude(m, want_m), "{name}: magnitude {m}");
            assert_eq!(
                m < 0.0,
                case["magnitude"][k].as_f64().unwrap() < 0.0,
                "{name}: sign"
            );
            let (d, n) = diff(&op.apply(img, m), &f.image(&format!("{name}.{k}")));
            let e = per_op.entry(op.name()).or_default();
            *e = (e.0 + 1, e.1.max(d), e.2 + n);
        }
    }
    println!("op            cases  max|diff|  differing bytes");
    for (op, (cases, d, n)) in &per_op {
        println!("{op:<13} {cases:>5}  {d:>9}  {n:>15}");
    }
    // Every step of the policy, with both signs where signed, was checked.
    for step in IMAGENET_POLICY.iter().flatten() {
        for negative in [false, true] {
            let neg = negative && step.op.signed();
            assert!(
                covered.contains(&(step.op, step.bin, neg)),
                "{step:?} negative={neg} not covered"
            );
        }
    }
    let bad: Vec<_> = per_op.iter().filter(|(_, v)| v.1 > 0).collect();
    assert!(bad.is_empty(), "ops differing from torchvision: {bad:?}");
}

#[test]
fn every_sub_policy_matches_torchvision_exactly() {
    let f = Fixture::load();
    let inputs = f.inputs();
    let mut seen = 0;
    for case in f.cases().iter().filter(|c| c.get("sub_policy").is_some()) {
        let name = case["name"].as_str().unwrap();
        let negative = case["negative"].as_array().unwrap();
        let draw = Draw {
            sub_policy: case["sub_policy"].as_u64().unwrap() as usize,
            // A zero draw applies every step (`draw <= p`, and the smallest p is 0).
            probs: [0.0, 0.0],
            negative: [
                negative[0].as_bool().unwrap(),
                negative[1].as_bool().unwrap(),
            ],
        };
        for (k, img) in inputs.iter().enumerate() {
            let (d, n) = diff(&apply(img, &draw), &f.image(&format!("{name}.{k}")));
            assert_eq!(
                (d, n),
                (0, 0),
                "{name} image {k}: max |diff| {d}, {n} bytes differ"
            );
        }
        seen += 1;
    }
    assert_eq!(seen, IMAGENET_POLICY.len());
}
