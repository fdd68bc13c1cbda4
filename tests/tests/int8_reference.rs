//! The runtime's integer path against an independent PyTorch computation of the same integer
//! arithmetic (`tools/reference/int8_ref.py` on the narrow timm ResNet18 `resnet18_w8`): every
//! convolution's i32 sums bit for bit before any rescaling, given the reference's i8 input codes,
//! and the whole model's logits with the reference's static activation scales.

use crate::common::zoo::{fixture, narrow};

use fq_models::{Graph, Node, Op};
use fq_runtime::exec::Executor;
use fq_runtime::format::{
    assemble_with, BatchNormParams, Layer, LayerParams, LayerSource, LayerWeights, ModelMeta,
    PackedMatrix,
};
use fq_runtime::preprocess::PreprocessConfig;
use safetensors::{Dtype, SafeTensors};

/// The weight bits the reference quantises to.
const BITS: u8 = 4;

struct Tensors(Vec<u8>);

impl Tensors {
    fn load(name: &str) -> Self {
        let path = fixture(name);
        Self(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    fn raw(&self, key: &str, dtype: Dtype) -> (Vec<usize>, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.0).unwrap();
        let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(t.dtype(), dtype, "{key}");
        (t.shape().to_vec(), t.data().to_vec())
    }

    fn f32(&self, key: &str) -> Vec<f32> {
        let (_, b) = self.raw(key, Dtype::F32);
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn i8(&self, key: &str) -> (Vec<usize>, Vec<i8>) {
        let (s, b) = self.raw(key, Dtype::I8);
        (s, b.into_iter().map(|v| v as i8).collect())
    }

    fn i32(&self, key: &str) -> (Vec<usize>, Vec<i32>) {
        let (s, b) = self.raw(key, Dtype::I32);
        let v = b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (s, v)
    }
}

/// The conv layers of the graph, with their geometry.
fn convs(g: &Graph) -> Vec<(String, fq_models::Conv2d)> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Conv2d(c) => Some((n.name.clone(), c.clone())),
            _ => None,
        })
        .collect()
}

/// Each convolution alone, on the reference's input codes: a one-node graph whose weights are
/// the codes with scale 1, run on the integer path with input scale 1, so its f32 output is the
/// i32 sum itself (exact: every sum is below 2^24).
#[test]
fn every_convolution_sums_exactly_as_the_reference() {
    let r = Tensors::load("int8_resnet18_w8.safetensors");
    let g = narrow("resnet18_w8");
    let mut checked = 0;
    for (name, c) in convs(&g) {
        let (_, codes) = r.i8(&format!("codes.{name}"));
        let (qs, q) = r.i8(&format!("q.{name}"));
        let (accs, acc) = r.i32(&format!("acc.{name}"));
        let (n, ch, h, w) = (qs[0], qs[1], qs[2], qs[3]);
        assert_eq!((ch, h), (c.in_channels, w));
        let cols = codes.len() / c.out_channels;
        let rows = c.out_channels;
        let weights =
            PackedMatrix::from_codes(cols, vec![BITS; rows], &codes, vec![1.0; rows]).unwrap();
        let one = Graph {
            arch: "one-conv".into(),
            in_channels: ch,
            input_size: h,
            num_classes: rows,
            nodes: vec![Node {
                name: name.clone(),
                op: Op::Conv2d(fq_models::Conv2d {
                    bias: false,
                    ..c.clone()
                }),
                inputs: vec![0],
            }],
            output: 1,
        };
        let layer = Layer {
            name: name.clone(),
            weights: LayerWeights::Packed(weights),
            bias: None,
        };
        let mut exec = Executor::from_graph(&one, vec![layer]).unwrap();
        exec.set_activation_scales(vec![Some(1.0)]);
        let per_in = ch * h * w;
        let per_out = accs[1] * accs[2] * accs[3];
        for i in 0..n {
            let x: Vec<f32> = q[i * per_in..(i + 1) * per_in]
                .iter()
                .map(|&v| v as f32)
                .collect();
            let out = exec.run(&x).unwrap();
            let want = &acc[i * per_out..(i + 1) * per_out];
            assert!(want.iter().all(|v| v.unsigned_abs() < 1 << 24));
            let got: Vec<i32> = out.iter().map(|&v| v as i32).collect();
            assert!(
                out.iter().all(|v| v.fract() == 0.0),
                "{name}: not an integer"
            );
            assert_eq!(
                got, want,
                "{name}, image {i}: i32 sums differ from PyTorch's"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 20);
}

/// The whole model on the integer path with the reference's weights, codes and activation
/// scales: logits within 0.1% of the largest (the rescaling and the float steps between the
/// convolutions are f32 on both sides, in different orders), the same classes.
#[test]
fn the_integer_model_matches_the_reference_logits() {
    let r = Tensors::load("int8_resnet18_w8.safetensors");
    let sd = Tensors::load("resnet18_w8.safetensors");
    let io = Tensors::load("resnet18_w8_io.safetensors");
    let g = narrow("resnet18_w8");
    let meta = ModelMeta {
        classes: (0..g.num_classes).map(|i| format!("c{i}")).collect(),
        groups: vec!["all".into()],
        preprocess: PreprocessConfig {
            width: 64,
            height: 64,
            ..PreprocessConfig::default()
        },
        method: "ptq-u4".into(),
        method_label: "U4".into(),
        test_metrics: None,
    };
    let mut model = assemble_with(
        &g,
        meta,
        |name, _, _| {
            if name == "fc" {
                return Ok(LayerParams {
                    weights: LayerSource::Float(sd.f32("fc.weight")),
                    bias: Some(sd.f32("fc.bias")),
                });
            }
            let codes = r.i8(&format!("codes.{name}")).1;
            let scales = r.f32(&format!("wscale.{name}"));
            Ok(LayerParams {
                weights: LayerSource::Quantized {
                    bits: vec![BITS; scales.len()],
                    codes,
                    scales,
                },
                bias: None,
            })
        },
        |bn| {
            Ok(BatchNormParams {
                weight: sd.f32(&format!("{bn}.weight")),
                bias: sd.f32(&format!("{bn}.bias")),
                running_mean: sd.f32(&format!("{bn}.running_mean")),
                running_var: sd.f32(&format!("{bn}.running_var")),
            })
        },
        |name, _| Err(format!("unexpected tensor {name}")),
    )
    .unwrap();
    let scales: Vec<Option<f32>> = model
        .layers
        .iter()
        .map(|l| (l.name != "fc").then(|| r.f32(&format!("act_scale.{}", l.name))[0]))
        .collect();
    let mut exec = Executor::from_model(&mut model).unwrap();
    let x = io.f32("input");
    let per = exec.input_len();
    let classes = exec.output_len();
    let check = |exec: &Executor, key: &str, tol: f32| {
        let want = r.f32(key);
        for i in 0..x.len() / per {
            let got = exec.run(&x[i * per..(i + 1) * per]).unwrap();
            let want = &want[i * classes..(i + 1) * classes];
            let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = got
                .iter()
                .zip(want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("{key}, image {i}: max |diff| {err:.2e} of peak {peak:.3}");
            assert!(err <= tol * peak, "{key}, image {i}: {got:?} vs {want:?}");
            let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]));
            assert_eq!(argmax(&got), argmax(want), "{key}, image {i}: class");
        }
    };
    // The float path first (the same weights, f32 activations), then the integer one.
    check(&exec, "float_logits", 1e-4);
    exec.set_activation_scales(scales);
    check(&exec, "logits", 1e-3);
}
