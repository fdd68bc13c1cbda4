//! FairQuant's stages against an independent PyTorch implementation of the spec
//! (`tools/reference/fairquant_ref.py`, fixture `fairquant_ref.safetensors`) on the narrow
//! ResNet18: group importance, the five reducers, allocation thresholds and bits, fixed-bit fake
//! quant, the BAQ warm start, bit proxy, quantized weights, both regularizers and the gradients
//! that reach the bit logits in the paper's and the official code's gradient paths.

use crate::common;
use common::fixture;

use candle_core::{DType, Device, Tensor};
use fq_compress::methods::allocate::{allocate, AllocationConfig};
use fq_compress::methods::baq::{BaqConfig, BaqGradient, BaqParams, BitRegularizer};
use fq_compress::methods::importance::{scope_scores, GroupImportance, ImportanceConfig, Reducer};
use fq_compress::nn::loss::task_and_fairness;
use fq_compress::nn::model::{Mode, Model, Quant};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::{BitAssignment, Granularity};
use fq_models::{Arch, ArchSpec, QuantLayer};
use std::collections::{BTreeMap, HashMap};

struct Ref {
    t: HashMap<String, Tensor>,
    layers: Vec<QuantLayer>,
    model: Model,
    groups: Vec<usize>,
}

fn load() -> Ref {
    let dev = Device::Cpu;
    let graph = ArchSpec::new(Arch::ResNet18, 8, 64, 5).graph().unwrap();
    let params =
        ParamStore::load_safetensors(&graph, &fixture("resnet18_w8.safetensors"), 0, &dev, false)
            .unwrap();
    let layers = graph.quant_layers().unwrap();
    let t = candle_core::safetensors::load(fixture("fairquant_ref.safetensors"), &dev).unwrap();
    let chans: Vec<i64> = t["layer_channels"].to_vec1().unwrap();
    assert_eq!(
        chans,
        layers
            .iter()
            .map(|l| l.out_channels as i64)
            .collect::<Vec<_>>(),
        "layer order differs from the reference's registration order"
    );
    let groups: Vec<i64> = t["group"].to_vec1().unwrap();
    Ref {
        model: Model::new(graph, params, dev),
        layers,
        groups: groups.iter().map(|&g| g as usize).collect(),
        t,
    }
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest |a-b| relative to the largest |b|.
fn rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn concat(v: &[Vec<f32>]) -> Vec<f32> {
    v.iter().flatten().copied().collect()
}

fn split(flat: &[f32], layers: &[QuantLayer]) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    let mut at = 0;
    for l in layers {
        out.push(flat[at..at + l.out_channels].to_vec());
        at += l.out_channels;
    }
    out
}

fn bits_of(t: &Tensor, layers: &[QuantLayer]) -> BitAssignment {
    let b: Vec<i64> = t.to_vec1().unwrap();
    let mut at = 0;
    let mut m = BTreeMap::new();
    for l in layers {
        m.insert(
            l.name.clone(),
            b[at..at + l.out_channels]
                .iter()
                .map(|&v| v as u8)
                .collect(),
        );
        at += l.out_channels;
    }
    BitAssignment {
        granularity: Some(Granularity::PerChannel),
        layers: m,
    }
}

#[test]
fn importance_reducers_and_allocation_match_torch() {
    let r = load();
    let y = r.t["target"].to_dtype(DType::U32).unwrap();
    let mut imp = GroupImportance::zeros(&r.model, &r.layers, 2).unwrap();
    imp.accumulate(&r.model, &r.t["input"], &y, &r.groups)
        .unwrap();
    // Maps pass through every train-mode batch norm of a batch of 12: 1e-3 relative, as the
    // plain gradient check of the ResNet.
    for (g, layer, idx) in [
        (0, "conv1", 0),
        (1, "conv1", 0),
        (0, "fc", 20),
        (1, "fc", 20),
    ] {
        let e = rel(
            &imp.maps[g][idx],
            &f32s(&r.t[&format!("imp.g{g}.{layer}.weight")]),
        );
        assert!(e < 2e-3, "imp g{g} {layer}: {e}");
    }
    for k in [
        "bn1.running_mean",
        "bn1.running_var",
        "layer4.1.bn2.running_var",
    ] {
        let got = f32s(r.model.params.get(k).unwrap().as_tensor());
        let e = rel(&got, &f32s(&r.t[&format!("bn_after.{k}")]));
        assert!(e < 1e-4, "{k}: {e}");
    }
    let mut scores = HashMap::new();
    for (name, reducer) in [
        ("balanced", Reducer::Balanced),
        ("max", Reducer::Max),
        ("mean", Reducer::Mean),
        ("cvar", Reducer::Cvar),
        ("subtractive", Reducer::Subtractive),
    ] {
        let cfg = ImportanceConfig {
            reducer,
            ..Default::default()
        };
        let red = imp.reduce(&cfg).unwrap();
        let s = scope_scores(&red, &r.layers, Granularity::PerChannel).unwrap();
        let e = rel(&concat(&s), &f32s(&r.t[&format!("score.{name}")]));
        assert!(e < 2e-3, "score.{name}: {e}");
        if name == "balanced" {
            let pt = scope_scores(&red, &r.layers, Granularity::PerTensor).unwrap();
            let e = rel(&concat(&pt), &f32s(&r.t["score.balanced_per_tensor"]));
            assert!(e < 2e-3, "per-tensor: {e}");
        }
        scores.insert(name, s);
    }
    // Allocation on the reference's own scores: thresholds bit-exact, bits identical.
    let balanced = split(&f32s(&r.t["score.balanced"]), &r.layers);
    for (cfg, key) in [
        (AllocationConfig::fq_qat(), "qat"),
        (AllocationConfig::fq_baq(), "baq"),
    ] {
        let a = allocate(&balanced, &r.layers, Granularity::PerChannel, &cfg).unwrap();
        assert_eq!(
            a.thresholds,
            f32s(&r.t[&format!("thresholds.{key}")]),
            "{key}"
        );
        assert_eq!(
            a.bits,
            bits_of(&r.t[&format!("bits.{key}")], &r.layers),
            "{key}"
        );
    }
    // FairQuantize (spec §5.5) with the method's own settings (`--method fairquantize`): its
    // reducer on our maps gives the reference's scores, and its allocation on the reference's
    // scores gives the reference's bits exactly (on our scores: all but scopes at a threshold).
    let fqz = fq_compress::methods::config::CompressConfig::spec(
        fq_compress::methods::Method::Fairquantize,
        &fq_compress::run::config::RunConfig::embedded_default(std::path::Path::new("."), 2).train,
    );
    let red = imp.reduce(&fqz.importance).unwrap();
    let ours_sub = scope_scores(&red, &r.layers, Granularity::PerChannel).unwrap();
    let e = rel(&concat(&ours_sub), &f32s(&r.t["score.subtractive"]));
    assert!(e < 2e-3, "FairQuantize scores: {e}");
    let sub = split(&f32s(&r.t["score.subtractive"]), &r.layers);
    let want = bits_of(&r.t["bits.fairquantize"], &r.layers);
    let a = allocate(&sub, &r.layers, Granularity::PerChannel, &fqz.allocation).unwrap();
    assert_eq!(a.bits, want);
    let ours = allocate(
        &ours_sub,
        &r.layers,
        Granularity::PerChannel,
        &fqz.allocation,
    )
    .unwrap();
    let same = ours
        .bits
        .layers
        .values()
        .zip(want.layers.values())
        .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x == y).count())
        .sum::<usize>();
    assert!(
        same as f64 >= 0.99 * 605.0,
        "FairQuantize: only {same}/605 scopes agree"
    );
    // Our own scores, allocated, give the reference bits too (no scope near a threshold moves).
    let ours = allocate(
        &scores["balanced"],
        &r.layers,
        Granularity::PerChannel,
        &AllocationConfig::fq_qat(),
    )
    .unwrap();
    let same = ours
        .bits
        .layers
        .iter()
        .zip(bits_of(&r.t["bits.qat"], &r.layers).layers.values())
        .map(|((_, a), b)| a.iter().zip(b).filter(|(x, y)| x == y).count())
        .sum::<usize>();
    assert!(same as f64 >= 0.99 * 605.0, "only {same}/605 scopes agree");
}

#[test]
fn fixed_bit_fake_quant_matches_torch() {
    let r = load();
    let bits = bits_of(&r.t["bits.qat"], &r.layers);
    let logits = r
        .model
        .forward(&r.t["input"], Mode::Eval, Some(&bits))
        .unwrap();
    let e = rel(&f32s(&logits), &f32s(&r.t["logits.qat_eval"]));
    assert!(e < 1e-4, "{e}");
}

/// The gradients of one logit of every layer, concatenated in layer order.
fn concat_grads(
    p: &BaqParams,
    grads: &candle_core::backprop::GradStore,
    pick: impl Fn(&fq_compress::methods::baq::BaqLayer) -> &candle_core::Var,
) -> Vec<f32> {
    p.layers
        .iter()
        .flat_map(|l| f32s(grads.get(pick(l).as_tensor()).unwrap()))
        .collect()
}

fn baq(r: &Ref, gradient: BaqGradient) -> BaqParams {
    let warm = bits_of(&r.t["bits.baq"], &r.layers);
    let cfg = BaqConfig {
        gradient,
        ..Default::default()
    };
    let p = BaqParams::new(
        &r.layers,
        Granularity::PerChannel,
        Some(&warm),
        cfg,
        &Device::Cpu,
    )
    .unwrap();
    let warm_theta = concat(
        &p.layers
            .iter()
            .map(|l| f32s(l.theta.as_tensor()))
            .collect::<Vec<_>>(),
    );
    let e = rel(&warm_theta, &f32s(&r.t["theta.warm"]));
    assert!(e < 1e-6, "theta.warm {e}");
    let test = split(&f32s(&r.t["theta.test"]), &r.layers);
    for (l, v) in p.layers.iter().zip(test) {
        let n = v.len();
        l.theta
            .set(&Tensor::from_vec(v, n, &Device::Cpu).unwrap())
            .unwrap();
    }
    p
}

#[test]
fn baq_proxy_weights_losses_and_gradients_match_torch() {
    let r = load();
    let p = baq(&r, BaqGradient::Paper);
    let btil: Vec<f32> = p
        .layers
        .iter()
        .flat_map(|l| f32s(&p.proxy(l.theta.as_tensor()).unwrap()))
        .collect();
    assert!(rel(&btil, &f32s(&r.t["btil.test"])) < 1e-6);
    let b = p.discretize().unwrap();
    assert_eq!(b, bits_of(&r.t["b.test"], &r.layers));
    for name in ["conv1", "layer3.0.conv1"] {
        let w = r.model.params.get(&format!("{name}.weight")).unwrap();
        let what = p.quantize(name, w.as_tensor()).unwrap();
        let e = rel(&f32s(&what), &f32s(&r.t[&format!("what.{name}.weight")]));
        assert!(e < 1e-6, "what.{name}: {e}");
    }
    // Losses and gradients in train mode (paper path).
    let y = r.t["target"].to_dtype(DType::U32).unwrap();
    let logits = r
        .model
        .forward_q(&r.t["input"], Mode::Train, Quant::Transform(&p))
        .unwrap();
    assert!(rel(&f32s(&logits), &f32s(&r.t["baq.logits_train"])) < 1e-4);
    let l = task_and_fairness(&logits, &y, &r.groups, 0.5).unwrap();
    let lbit = p.bit_loss().unwrap();
    let total = (&l.total + (&lbit * 1e-2).unwrap()).unwrap();
    let scalar = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0]
    };
    for (got, key, tol) in [
        (scalar(&l.task), "baq.loss_task", 1e-4),
        (scalar(l.fair.as_ref().unwrap()), "baq.loss_fair", 1e-3),
        (scalar(&lbit), "baq.lbit_anchor", 1e-5),
        (scalar(&total), "baq.loss_total", 1e-4),
    ] {
        let want = f32s(&r.t[key])[0];
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "{key}: {got} vs {want}"
        );
    }
    let mut shrink = baq(&r, BaqGradient::Paper);
    shrink.cfg.regularizer = BitRegularizer::Shrink;
    let want = f32s(&r.t["baq.lbit_shrink"])[0];
    assert!((scalar(&shrink.bit_loss().unwrap()) - want).abs() < 1e-5 * want);

    let grads = total.backward().unwrap();
    let gt = concat_grads(&p, &grads, |l| &l.theta);
    let e = rel(&gt, &f32s(&r.t["baq.grad_theta"]));
    assert!(e < 5e-3, "grad theta: {e}");
    let gp = concat_grads(&p, &grads, |l| &l.phi);
    let e = rel(&gp, &f32s(&r.t["baq.grad_phi"]));
    assert!(e < 5e-3, "grad phi: {e}");
    let w = r.model.params.get("conv1.weight").unwrap();
    let e = rel(
        &f32s(grads.get(w.as_tensor()).unwrap()),
        &f32s(&r.t["baq.grad_conv1_weight"]),
    );
    assert!(e < 2e-3, "grad conv1: {e}");
}

#[test]
fn baq_official_path_gives_the_logits_only_the_regularizer() {
    let r = load();
    let p = baq(&r, BaqGradient::Detached);
    let y = r.t["target"].to_dtype(DType::U32).unwrap();
    let logits = r
        .model
        .forward_q(&r.t["input"], Mode::Train, Quant::Transform(&p))
        .unwrap();
    assert!(rel(&f32s(&logits), &f32s(&r.t["baq_official.logits_train"])) < 1e-4);
    let l = task_and_fairness(&logits, &y, &r.groups, 0.5).unwrap();
    let total = (&l.total + (p.bit_loss().unwrap() * 1e-2).unwrap()).unwrap();
    let grads = total.backward().unwrap();
    let gt = concat_grads(&p, &grads, |l| &l.theta);
    assert!(rel(&gt, &f32s(&r.t["baq_official.grad_theta"])) < 1e-5);
    for l in &p.layers {
        // No task or fairness gradient reaches the dead-zone logits on this path.
        if let Some(g) = grads.get(l.phi.as_tensor()) {
            assert!(f32s(g).iter().all(|v| *v == 0.0), "{}", l.name);
        }
    }
}

fn cli(args: &[&str]) -> anyhow::Result<()> {
    use clap::Parser;
    let mut argv = vec!["fq-compress", "--quiet"];
    argv.extend_from_slice(args);
    fq_compress::cli::dispatch(fq_compress::cli::Cli::try_parse_from(argv).unwrap())
}

/// `--method fairquantize` end to end on a tiny run: the bits it trains and ships are the
/// reversed-proportion tiering of `mean_channel |I_0 - I_1|` computed here, independently, from
/// the run's cached per-group maps: 8 bits only where the score is highest, 2 only where lowest,
/// 40/40/20% of the channels, no fairness loss; it gets a report row and exports.
#[test]
fn fairquantize_ships_the_reversed_tiering_of_the_group_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = (dir.path().join("data"), dir.path().join("run"));
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    #[rustfmt::skip]
    cli(&["synth", "--out", d, "--num-images", "200", "--image-size", "32"]).unwrap();
    let (csv, images) = (format!("{d}/fitzpatrick17k.csv"), format!("{d}/images"));
    #[rustfmt::skip]
    cli(&[
        "train", "--run-dir", r, "--csv", &csv, "--images", &images,
        "--width", "4", "--input-size", "32", "--epochs", "1", "--batch-size", "64",
    ])
    .unwrap();
    #[rustfmt::skip]
    cli(&[
        "compress", "--run-dir", r, "--method", "fairquantize", "--epochs", "1",
        "--calib-batches", "2",
    ])
    .unwrap();
    let mdir = run.join("methods/fairquantize");
    let cfg =
        fq_compress::methods::config::CompressConfig::load(&mdir.join("config.toml")).unwrap();
    assert_eq!(cfg.finetune.lambda_fair, 0.0);
    let bits: BitAssignment =
        serde_json::from_slice(&std::fs::read(mdir.join("bits.json")).unwrap()).unwrap();
    let maps =
        candle_core::safetensors::load(run.join("importance/maps.safetensors"), &Device::Cpu)
            .unwrap();
    // (score, bits) of every output channel of every layer.
    let mut chans: Vec<(f32, u8)> = Vec::new();
    for (name, b) in &bits.layers {
        let g0 = f32s(&maps[&format!("g0.{name}")]);
        let g1 = f32s(&maps[&format!("g1.{name}")]);
        let per = g0.len() / b.len();
        for (o, &bo) in b.iter().enumerate() {
            let s: f32 = (o * per..(o + 1) * per)
                .map(|j| (g0[j] - g1[j]).abs())
                .sum::<f32>()
                / per as f32;
            chans.push((s, bo));
        }
    }
    let n = chans.len() as f64;
    // Every channel's bits are the tier of its score: a higher score never gets fewer bits (a
    // tiny tolerance for the f32 summation order).
    chans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in chans.windows(2) {
        assert!(
            w[0].1 <= w[1].1 || (w[1].0 - w[0].0) <= 1e-6 * w[1].0.abs(),
            "score {} got {} bits, score {} got {}",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
    let share = |b: u8| chans.iter().filter(|c| c.1 == b).count() as f64 / n;
    for (b, p) in [(2u8, 0.4), (4, 0.4), (8, 0.2)] {
        assert!(
            (share(b) - p).abs() <= 2.0 / n,
            "{b} bits: {:.3} of {n} channels, want {p}",
            share(b)
        );
    }
    let report = fq_compress::run::report::Report::load(&run.join("report.json")).unwrap();
    let row = report
        .get(&fq_compress::methods::Method::Fairquantize.into())
        .unwrap();
    assert_eq!(row.id().label(), "FairQuantize");
    assert!(row.avg_bits > 2.0 && row.avg_bits < 8.0, "{}", row.avg_bits);
    cli(&["export", r, "--method", "fairquantize"]).unwrap();
    assert!(run.join("model-fairquantize.fqm").exists());
}
