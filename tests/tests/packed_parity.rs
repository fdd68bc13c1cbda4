//! The packed runtime model against the compressor's fake-quantized candle model: same logits
//! (within a stated tolerance) and the same predicted classes, for U8, U4, a random per-channel
//! 2–8 mix, per-tensor bits and FP32, on a random-init ResNet18 (width 8, 32x32) whose batch norms
//! have random, non-trivial running statistics (so the folding is really exercised). Also the
//! `export` command's run-directory contract: default method, test metrics, file sizes.

use candle_core::{Device, Tensor};
use fq_compress::methods::Method;
use fq_compress::nn::model::{Mode, Model};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::{BitAssignment, Granularity};
use fq_compress::run::config::RunConfig;
use fq_compress::run::export::{default_method, export_run, pack_model, ExportMeta};
use fq_compress::run::report::{MethodResult, Report};
use fq_eval::metrics::FairnessMetrics;
use fq_models::{Arch, ArchSpec, Graph, Op};
use fq_runtime::classify::Classifier;
use fq_runtime::format::PackedModel;
use fq_runtime::preprocess::PreprocessConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest |packed - candle| relative to the largest |candle| logit. Both sides compute in f32
/// with different summation orders and the packed side applies the folded scale after the sum;
/// the measured error is ~1e-6, so 1e-4 leaves two orders of magnitude of headroom.
const TOL: f32 = 1e-4;
const N: usize = 16;

fn graph() -> Graph {
    ArchSpec::new(Arch::ResNet18, 8, 32, 5).graph().unwrap()
}

/// Random-init weights with random batch-norm affine parameters and running statistics.
fn params(g: &Graph, seed: u64) -> ParamStore {
    let dev = Device::Cpu;
    let p = ParamStore::init(g, seed, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for node in &g.nodes {
        if let Op::BatchNorm2d { channels, .. } = node.op {
            for (field, lo, hi) in [
                ("weight", 0.5f32, 1.5f32),
                ("bias", -0.2, 0.2),
                ("running_mean", -0.5, 0.5),
                ("running_var", 0.3, 2.0),
            ] {
                let v: Vec<f32> = (0..channels).map(|_| rng.random_range(lo..hi)).collect();
                p.get(&format!("{}.{field}", node.name))
                    .unwrap()
                    .set(&Tensor::from_vec(v, channels, &dev).unwrap())
                    .unwrap();
            }
        }
    }
    p
}

fn meta(g: &Graph, method: Method) -> ExportMeta {
    ExportMeta {
        method: method.into(),
        classes: (0..g.num_classes).map(|i| format!("c{i}")).collect(),
        groups: vec!["light".into(), "dark".into()],
        preprocess: PreprocessConfig {
            width: 32,
            height: 32,
            ..PreprocessConfig::default()
        },
        test_metrics: None,
    }
}

fn argmax(row: &[f32]) -> usize {
    fq_eval::metrics::argmax_rows(row, row.len())[0]
}

/// Exports, serializes, reloads and runs the packed model; returns the relative logit error and
/// the smallest top-2 margin of the candle logits (how close a prediction was to flipping).
fn parity(g: &Graph, p: &ParamStore, bits: Option<&BitAssignment>, what: &str) -> (f32, f32) {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let x: Vec<f32> = (0..N * 3 * 32 * 32)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let model = Model::new(g.clone(), p.duplicate().unwrap(), dev.clone());
    let xt = Tensor::from_vec(x.clone(), (N, 3, 32, 32), &dev).unwrap();
    let want: Vec<f32> = model
        .forward(&xt, Mode::Eval, bits)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();

    let packed = pack_model(g, p, bits, meta(g, Method::PtqU4)).unwrap();
    let bytes = packed.to_bytes().unwrap();
    let c = Classifier::from_bytes(&bytes).unwrap();
    let got = c.logits_batch(&x, N).unwrap();

    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    let mut margin = f32::INFINITY;
    for (i, (gr, wr)) in got.chunks(5).zip(want.chunks(5)).enumerate() {
        assert_eq!(
            argmax(gr),
            argmax(wr),
            "{what}: image {i} predicted differently"
        );
        let mut s = wr.to_vec();
        s.sort_by(|a, b| b.total_cmp(a));
        margin = margin.min((s[0] - s[1]) / scale);
    }
    assert!(
        err < TOL,
        "{what}: relative logit error {err:.2e} > {TOL:.0e}"
    );
    eprintln!(
        "{what}: {} bytes, avg {:.2} bits, relative logit error {err:.2e}, smallest top-2 margin {margin:.2e}",
        bytes.len(),
        packed.summary.avg_bits
    );
    (err, margin)
}

#[test]
fn packed_logits_match_fake_quant_candle() {
    let g = graph();
    let layers = g.quant_layers().unwrap();
    let p = params(&g, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mix = BitAssignment {
        granularity: Some(Granularity::PerChannel),
        layers: layers
            .iter()
            .map(|l| {
                let b = (0..l.out_channels)
                    .map(|_| rng.random_range(2..=8))
                    .collect();
                (l.name.clone(), b)
            })
            .collect(),
    };
    let per_tensor = BitAssignment {
        granularity: Some(Granularity::PerTensor),
        layers: layers.iter().map(|l| (l.name.clone(), vec![5])).collect(),
    };
    let cases = [
        ("U8", Some(BitAssignment::uniform(&layers, 8))),
        ("U4", Some(BitAssignment::uniform(&layers, 4))),
        ("mix 2-8", Some(mix)),
        ("per-tensor 5", Some(per_tensor)),
        ("FP32", None),
    ];
    for (what, bits) in &cases {
        let (err, margin) = parity(&g, &p, bits.as_ref(), what);
        // Identical classes say something only if no prediction was within the error of a tie.
        assert!(
            margin > 100.0 * err,
            "{what}: top-2 margin {margin:.1e} vs error {err:.1e}"
        );
    }
}

#[test]
fn export_refuses_widths_outside_the_format() {
    let g = graph();
    let layers = g.quant_layers().unwrap();
    let mut bits = BitAssignment::uniform(&layers, 4);
    bits.layers.get_mut("layer2.0.conv1").unwrap()[3] = 1;
    let err = pack_model(&g, &params(&g, 1), Some(&bits), meta(&g, Method::PtqU4)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("layer2.0.conv1") && msg.contains("2..=8"),
        "{msg}"
    );
}

/// `fq-compress export RUN_DIR`: reads config.toml, report.json and the method's artifacts.
#[test]
fn export_run_writes_the_file_the_report_describes() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    let g = graph();
    let layers = g.quant_layers().unwrap();
    let mut cfg = RunConfig::embedded_default(&run.join("data"), 1);
    cfg.model.width = 8;
    cfg.model.input_size = 32;
    cfg.save(&run.join("config.toml")).unwrap();
    params(&g, 5).save(&run.join("fp32.safetensors")).unwrap();
    let classes: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let groups = vec!["light".to_string(), "dark".to_string()];
    // Made-up test results: U8 has the better worst group, so it is the default.
    let metrics = |pred: &[usize]| {
        FairnessMetrics::compute(&[0, 1, 2, 3], pred, &[0, 0, 1, 1], 5, &groups).unwrap()
    };
    let u8m = metrics(&[0, 1, 2, 3]);
    let u4m = metrics(&[0, 1, 2, 0]);
    let results = vec![
        MethodResult::new(&Method::Fp32.into(), &layers, None, metrics(&[0, 1, 2, 3])),
        MethodResult::new(
            &Method::PtqU8.into(),
            &layers,
            Some(&BitAssignment::uniform(&layers, 8)),
            u8m.clone(),
        ),
        MethodResult::new(
            &Method::PtqU4.into(),
            &layers,
            Some(&BitAssignment::uniform(&layers, 4)),
            u4m.clone(),
        ),
    ];
    let report = Report {
        dataset: "synthetic".into(),
        arch: g.arch.clone(),
        classes: classes.clone(),
        groups: groups.clone(),
        test_samples: 4,
        results,
        activations: vec![],
    };
    report.write(run).unwrap();
    assert_eq!(default_method(&report), Method::PtqU8.into());

    let e = export_run(run, None, None).unwrap();
    assert_eq!(e.method, Method::PtqU8.into());
    assert_eq!(e.path, run.join("model-u8.fqm"));
    let m = PackedModel::load(&e.path).unwrap();
    assert_eq!(m.summary.method, "ptq-u8");
    assert_eq!(m.summary.test_metrics.as_ref(), Some(&u8m));
    assert_eq!((m.classes.clone(), m.groups.clone()), (classes, groups));
    assert!((m.summary.avg_bits - report.results[1].avg_bits).abs() < 1e-9);

    let out = run.join("deploy/clinic.fqm");
    let e = export_run(run, Some(Method::PtqU4.into()), Some(&out)).unwrap();
    let m = PackedModel::load(&out).unwrap();
    assert_eq!(m.summary.test_metrics.as_ref(), Some(&u4m));
    assert_eq!(m.summary.folded.len(), 20);
    // U4 of a width-8 ResNet18: ~0.5 bytes per weight plus per-channel scales and biases.
    let ratio = e.f32_bytes as f64 / e.bytes as f64;
    assert!(ratio > 5.0, "U4 is only {ratio:.1}x smaller than f32");
    let line = e.to_string();
    assert!(
        line.contains("clinic.fqm") && line.contains("fp32.safetensors"),
        "{line}"
    );

    // A method's own bits.json overrides its fixed bits.
    let mut mix = BitAssignment::uniform(&layers, 4);
    mix.layers.insert("fc".into(), vec![8; 5]);
    let own = fq_compress::methods::method_dir(run, Method::PtqU4);
    fq_runtime::atomic::write_json_atomic(&own.join("bits.json"), &mix).unwrap();
    export_run(run, Some(Method::PtqU4.into()), Some(&out)).unwrap();
    let m = PackedModel::load(&out).unwrap();
    let fc = m.layers.iter().find(|l| l.name == "fc").unwrap();
    let fq_runtime::format::LayerWeights::Packed(fc) = &fc.weights else {
        panic!("fc should be packed")
    };
    assert_eq!(fc.bits, vec![8; 5]);

    // Without a report there is nothing to describe the classes with.
    std::fs::remove_file(run.join("report.json")).unwrap();
    let err = format!("{:#}", export_run(run, None, None).unwrap_err());
    assert!(
        err.contains("report.json") && err.contains("compress"),
        "{err}"
    );
}
