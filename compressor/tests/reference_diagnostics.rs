//! `diagnose`'s numbers against independent references:
//! - on a tiny softmax-regression model, the finite-difference Hessian-vector product and the
//!   power iteration against the exact Hessian (closed form) and its dense eigendecomposition;
//! - on the narrow ResNet18, FP32 and 4-bit, per-group logit variance, loss, gradient norm and top
//!   Hessian eigenvalue against PyTorch (`tools/reference/diagnostics_ref.py`, which uses exact
//!   double-backprop Hessian-vector products).

use crate::common;
use common::fixture;

use candle_core::{Device, Tensor};
use fq_compress::analysis::diagnose::{
    fd_hvp, flat_params, in_f64, logit_variance, loss_and_grad, materialize, power_iteration,
    DiagnoseConfig, FdKind,
};
use fq_compress::nn::model::{Mode, Model, Quant};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::BitAssignment;
use fq_models::{Arch, ArchSpec, Graph, Linear, Node, Op};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// Power iteration at the spec's settings (20 iterations, relative change 1e-3).
const SPEC_ITERS: usize = 20;
const SPEC_TOL: f64 = 1e-3;

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// Eigenvalues of a symmetric matrix (cyclic Jacobi rotations, f64).
fn jacobi_eigenvalues(mut a: Vec<Vec<f64>>) -> Vec<f64> {
    let n = a.len();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-24 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (rp, rq) = (a[p].clone(), a[q].clone());
                for k in 0..n {
                    a[p][k] = c * rp[k] - s * rq[k];
                    a[q][k] = s * rp[k] + c * rq[k];
                }
            }
        }
    }
    (0..n).map(|i| a[i][i]).collect()
}

/// A one-layer model: logits = W flatten(x) + b, D = 4 features, K = 3 classes.
fn softmax_regression() -> Model {
    let (d, k) = (4usize, 3usize);
    let graph = Graph {
        arch: "softmax-regression".into(),
        in_channels: d,
        input_size: 1,
        num_classes: k,
        nodes: vec![Node {
            name: "fc".into(),
            op: Op::Linear(Linear {
                in_features: d,
                out_features: k,
                bias: true,
            }),
            inputs: vec![0],
        }],
        output: 1,
    };
    let dev = Device::Cpu;
    let params = ParamStore::init(&graph, 3, &dev).unwrap();
    // Larger weights than the default init, so the softmax is far from uniform.
    let mut r = rng(11);
    for (_, v) in &params.vars {
        let t: Vec<f32> = (0..v.elem_count())
            .map(|_| r.random_range(-1.5f32..1.5))
            .collect();
        v.set(&Tensor::from_vec(t, v.dims(), &dev).unwrap())
            .unwrap();
    }
    Model::new(graph, params, dev)
}

/// The exact Hessian of the mean cross-entropy in (W row-major, then b):
/// `H = mean_i (diag p_i − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ`, with `x̃ = [x; 1]` and b as the extra column.
fn exact_hessian(model: &Model, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let w: Vec<f32> = model.params.vars[0]
        .1
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = model.params.vars[1].1.as_tensor().to_vec1().unwrap();
    let (k, d) = (b.len(), x[0].len());
    let dim = k * d + k;
    // Flat index of (class c, feature j), j == d meaning the bias.
    let at = |c: usize, j: usize| if j < d { c * d + j } else { k * d + c };
    let mut h = vec![vec![0f64; dim]; dim];
    for xi in x {
        let z: Vec<f64> = (0..k)
            .map(|c| b[c] as f64 + (0..d).map(|j| w[c * d + j] as f64 * xi[j]).sum::<f64>())
            .collect();
        let m = z.iter().copied().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        let xt = |j: usize| if j < d { xi[j] } else { 1.0 };
        for c in 0..k {
            for c2 in 0..k {
                let a = if c == c2 { p[c] } else { 0.0 } - p[c] * p[c2];
                for j in 0..=d {
                    for j2 in 0..=d {
                        h[at(c, j)][at(c2, j2)] += a * xt(j) * xt(j2) / x.len() as f64;
                    }
                }
            }
        }
    }
    h
}

#[test]
fn power_iteration_matches_the_dense_hessian_of_a_tiny_model() {
    let eps = DiagnoseConfig::default().hvp_step;
    let f32_model = softmax_regression();
    let model = in_f64(&f32_model).unwrap();
    let (n, d) = (10usize, 4usize);
    let mut r = rng(5);
    let xs: Vec<Vec<f64>> = (0..n)
        .map(|_| {
            (0..d)
                .map(|_| r.random_range(-2.0..2.0f32) as f64)
                .collect()
        })
        .collect();
    let flat: Vec<f32> = xs.iter().flatten().map(|&v| v as f32).collect();
    let x = Tensor::from_vec(flat, (n, d, 1, 1), &Device::Cpu).unwrap();
    let y: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    let y = Tensor::new(y.as_slice(), &Device::Cpu).unwrap();
    let h = exact_hessian(&f32_model, &xs);
    let dim = h.len();
    let base = flat_params(&model).unwrap();
    assert_eq!(base.len(), dim);

    // One finite-difference product against H v.
    let mut v: Vec<f64> = (0..dim).map(|_| r.random_range(-1.0..1.0)).collect();
    let nv = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    v.iter_mut().for_each(|a| *a /= nv);
    let (_, grad0) = loss_and_grad(&model, &x, &y).unwrap();
    let (fd, kind) = fd_hvp(&model, &base, &grad0, &x, &y, &v, eps).unwrap();
    assert_eq!(kind, FdKind::Central);
    let exact: Vec<f64> = h
        .iter()
        .map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum())
        .collect();
    let scale = exact.iter().fold(0f64, |m, a| m.max(a.abs()));
    let err = fd
        .iter()
        .zip(&exact)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err / scale < 1e-6, "FD-HVP relative error {}", err / scale);
    // The parameters are restored.
    assert_eq!(flat_params(&model).unwrap(), base);

    let eig = jacobi_eigenvalues(h);
    let top = eig
        .iter()
        .copied()
        .fold(0f64, |m, v| if v.abs() > m.abs() { v } else { m });
    let run = |iters, tol| {
        power_iteration(
            dim,
            |v| fd_hvp(&model, &base, &grad0, &x, &y, v, eps).map(|r| r.0),
            iters,
            tol,
            &mut rng(1),
        )
        .unwrap()
    };
    let tight = run(500, 1e-9);
    assert!(
        (tight.eigenvalue - top).abs() / top.abs() < 1e-6,
        "power iteration {} vs dense {top} (all: {eig:?})",
        tight.eigenvalue
    );
    let spec = run(SPEC_ITERS, SPEC_TOL);
    eprintln!(
        "tiny model: dense λ_max {top:.6}, power iteration {:.6} (500 its), spec settings {:.6} ({} its, converged {})",
        tight.eigenvalue, spec.eigenvalue, spec.iterations, spec.converged
    );
    // At the spec's settings the Rayleigh quotient is a lower bound that is already close.
    assert!(spec.eigenvalue <= top * (1.0 + 1e-3) && spec.eigenvalue > 0.9 * top);
}

fn scalar(t: &HashMap<String, Tensor>, k: &str) -> f64 {
    t[k].to_vec1::<f32>().unwrap()[0] as f64
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn per_group_diagnostics_match_pytorch() {
    let dev = Device::Cpu;
    let graph = ArchSpec::new(Arch::ResNet18, 8, 64, 5).graph().unwrap();
    let params =
        ParamStore::load_safetensors(&graph, &fixture("resnet18_w8.safetensors"), 0, &dev, false)
            .unwrap();
    let layers = graph.quant_layers().unwrap();
    let fp32 = Model::new(graph, params, dev.clone());
    let u4 = materialize(&fp32, &BitAssignment::uniform(&layers, 4)).unwrap();
    let eps = DiagnoseConfig::default().hvp_step;
    let t = candle_core::safetensors::load(fixture("diagnostics_ref.safetensors"), &dev).unwrap();
    let x = &t["input"];
    let y = t["target"].to_dtype(candle_core::DType::U32).unwrap();
    let groups: Vec<i64> = t["group"].to_vec1().unwrap();
    for (name, model) in [("fp32", &fp32), ("u4", &u4)] {
        let z = model.forward_q(x, Mode::Eval, Quant::Fp32).unwrap();
        let want: Vec<f32> = t[&format!("logits.{name}")]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got: Vec<f32> = z.flatten_all().unwrap().to_vec1().unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err / scale < 1e-4,
            "{name} logits: relative error {}",
            err / scale
        );
        let m64 = in_f64(model).unwrap();
        let base = flat_params(&m64).unwrap();
        for g in 0..2i64 {
            let rows: Vec<u32> = (0..groups.len() as u32)
                .filter(|&i| groups[i as usize] == g)
                .collect();
            let idx = Tensor::new(rows.as_slice(), &dev).unwrap();
            let (xg, yg) = (
                x.index_select(&idx, 0).unwrap(),
                y.index_select(&idx, 0).unwrap(),
            );
            let zg = model.forward_q(&xg, Mode::Eval, Quant::Fp32).unwrap();
            let lv = logit_variance(&zg).unwrap();
            let lv = lv.iter().sum::<f64>() / lv.len() as f64;
            let (loss, grad) = loss_and_grad(&m64, &xg, &yg).unwrap();
            let norm = grad.iter().map(|v| v * v).sum::<f64>().sqrt();
            let key = |k: &str| format!("{k}.{name}.g{g}");
            let checks = [
                ("logit variance", lv, scalar(&t, &key("logit_var")), 1e-4),
                ("loss", loss, scalar(&t, &key("loss")), 1e-5),
                ("gradient norm", norm, scalar(&t, &key("grad_norm")), 1e-4),
            ];
            for (what, got, want, tol) in checks {
                assert!(
                    rel(got, want) < tol,
                    "{name} group {g} {what}: {got} vs PyTorch {want}"
                );
            }
            let want = scalar(&t, &key("hessian_top"));
            // One finite-difference HVP along the unit gradient direction against the exact one.
            let u: Vec<f64> = grad.iter().map(|v| v / norm).collect();
            let (hu, kind) = fd_hvp(&m64, &base, &grad, &xg, &yg, &u, eps).unwrap();
            assert_eq!(kind, FdKind::Central);
            let uhu: f64 = u.iter().zip(&hu).map(|(a, b)| a * b).sum();
            let hu_norm = hu.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (what, got, want) in [
                ("u^T H u", uhu, scalar(&t, &key("grad_dir_curvature"))),
                ("||H u||", hu_norm, scalar(&t, &key("grad_dir_hv_norm"))),
            ] {
                eprintln!("{name} group {g} {what}: FD {got:.5} vs PyTorch {want:.5}");
                assert!(
                    rel(got, want) < 1e-3,
                    "{name} group {g} {what}: FD {got} vs PyTorch {want}"
                );
            }
            let hvp = |v: &[f64]| fd_hvp(&m64, &base, &grad, &xg, &yg, v, eps).map(|r| r.0);
            let tight = power_iteration(base.len(), hvp, 400, 1e-8, &mut rng(g as u64)).unwrap();
            let spec =
                power_iteration(base.len(), hvp, SPEC_ITERS, SPEC_TOL, &mut rng(g as u64)).unwrap();
            eprintln!(
                "{name} group {g}: λ_max PyTorch (exact HVP, 300 its) {want:.4}; FD-HVP {} its {:.4} (rel {:.1e}); spec settings {:.4} ({} its, rel {:.1e})",
                tight.iterations,
                tight.eigenvalue,
                rel(tight.eigenvalue, want),
                spec.eigenvalue,
                spec.iterations,
                rel(spec.eigenvalue, want)
            );
            // Run to convergence, the power iteration finds PyTorch's eigenvalue.
            assert!(
                rel(tight.eigenvalue, want) < 1e-3,
                "{name} group {g}: λ_max {} vs PyTorch {want}",
                tight.eigenvalue
            );
            // At the spec's settings (≤ 20 iterations, relative change 1e-3) it is within 1%.
            assert!(
                rel(spec.eigenvalue, want) < 1e-2,
                "{name} group {g}: λ_max at the spec's settings {} vs PyTorch {want}",
                spec.eigenvalue
            );
        }
    }
}

// ---- Bellam & Kim's precision sweep (`diagnose --precision-sweep`) on a tiny trained run ----

const BIN: &str = env!("CARGO_BIN_EXE_fq-compress");

fn fq_ok(c: &mut std::process::Command) -> std::process::Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tiny run: 240 synthetic 32-px images, ResNet18 at width 4, two epochs.
fn tiny_run(root: &std::path::Path) -> std::path::PathBuf {
    let (data, run) = (root.join("data"), root.join("run"));
    fq_ok(
        std::process::Command::new(BIN)
            .args([
                "--quiet",
                "synth",
                "--num-images",
                "240",
                "--image-size",
                "32",
                "--out",
            ])
            .arg(&data),
    );
    fq_ok(
        std::process::Command::new(BIN)
            .args(["--quiet", "train", "--run-dir"])
            .arg(&run)
            .args(["--dataset", "fitzpatrick17k", "--csv"])
            .arg(data.join("fitzpatrick17k.csv"))
            .arg("--images")
            .arg(data.join("images"))
            .args(["--width", "4", "--input-size", "32", "--epochs", "2"])
            .args(["--batch-size", "16", "--lr", "1e-3", "--seed", "7"]),
    );
    run
}

#[test]
fn precision_sweep_matches_direct_ptq_evaluation() {
    use fq_compress::analysis::precision_sweep::PrecisionSweep;
    use fq_compress::run::config::RunConfig;
    use fq_compress::run::run_dir::Run;
    use fq_compress::train::evaluate::evaluate;

    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(tmp.path());
    let t0 = std::time::Instant::now();
    let out = fq_ok(
        std::process::Command::new(BIN)
            .arg("diagnose")
            .arg(&run_dir)
            .args(["--precision-sweep", "--bits", "16,2,4"])
            .args(["--samples-per-group", "4", "--power-iters", "6"]),
    );
    eprintln!(
        "sweep of 3 widths + FP32: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // One progress line per width.
    let err = String::from_utf8_lossy(&out.stderr);
    for (i, l) in ["int2", "int4", "int16", "FP32"].iter().enumerate() {
        assert!(
            err.contains(&format!("precision sweep {}/4: {l:>5}", i + 1)),
            "no progress line for {l}:\n{err}"
        );
    }
    let dir = run_dir.join("diagnostics");
    let s: PrecisionSweep =
        serde_json::from_str(&std::fs::read_to_string(dir.join("precision_sweep.json")).unwrap())
            .unwrap();
    // The plot is a PNG that decodes, of the size of 3×2 panels.
    let png = std::fs::read(dir.join("precision_sweep.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1200, 3 * 380 + 40));

    // Shape: the widths ascending, then FP32; every group measured at every point.
    assert_eq!(s.bits, vec![2, 4, 16]);
    let labels: Vec<&str> = s.points.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["int2", "int4", "int16", "FP32"]);
    assert_eq!(
        s.points.iter().map(|p| p.bits).collect::<Vec<_>>(),
        [Some(2), Some(4), Some(16), None]
    );
    for p in &s.points {
        assert_eq!(p.diagnostics.groups.len(), s.groups.len());
        for g in &p.diagnostics.groups {
            assert!(g.samples > 0 && g.grad_samples > 0, "{}: {g:?}", p.label);
            assert!(g.grad_norm.is_some_and(f64::is_finite));
            assert!(g.hessian.as_ref().is_some_and(|h| h.eigenvalue.is_finite()));
        }
    }

    // Independent: each point's accuracies against the report's evaluation of that PTQ model
    // (fake quantization inside the forward pass, not the sweep's materialised weights).
    let cfg = RunConfig::load(&run_dir.join("config.toml")).unwrap();
    let run = Run::open(&run_dir, cfg, false).unwrap();
    let fp32 = run.train_fp32(true).unwrap();
    let layers = run.graph.quant_layers().unwrap();
    for p in &s.points {
        let bits = p.bits.map(|b| BitAssignment::uniform(&layers, b));
        let m = evaluate(
            &fp32,
            &run.test,
            bits.as_ref().into(),
            &run.preprocess,
            &run.dataset.groups,
            64,
        )
        .unwrap();
        eprintln!(
            "{}: worst {:.4} (direct {:.4}), FVO {:.4} (direct {:.4}), avg {:.4}",
            p.label, p.worst_group_accuracy, m.worst_acc, p.fvo, m.gap, p.average_accuracy
        );
        for (what, got, want) in [
            ("worst-group accuracy", p.worst_group_accuracy, m.worst_acc),
            ("FVO", p.fvo, m.gap),
            ("average accuracy", p.average_accuracy, m.avg_acc),
            ("overall accuracy", p.overall_accuracy, m.overall_acc),
        ] {
            assert!(
                (got - want).abs() < 1e-12,
                "{}: {what} {got} vs direct evaluation {want}",
                p.label
            );
        }
    }

    // int16 is FP32 up to a 2^-15 relative weight error: the measures agree.
    let (q16, f) = (&s.points[2].diagnostics, &s.points[3].diagnostics);
    for (a, b) in q16.groups.iter().zip(&f.groups) {
        let n = a.samples as f64;
        assert!((a.accuracy.unwrap() - b.accuracy.unwrap()).abs() <= 1.0 / n + 1e-12);
        for (what, x, y, tol) in [
            ("logit variance", a.logit_variance, b.logit_variance, 1e-3),
            ("loss", a.mean_loss, b.mean_loss, 1e-3),
            ("gradient norm", a.grad_norm, b.grad_norm, 1e-2),
        ] {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(
                rel(x, y) < tol,
                "int16 vs FP32, group {}: {what} {x} vs {y}",
                a.group
            );
        }
    }
    // int2 is not: its weights are ternary, so its measures move away from FP32's.
    let q2 = &s.points[0].diagnostics;
    assert!(q2
        .groups
        .iter()
        .zip(&f.groups)
        .any(|(a, b)| rel(a.logit_variance.unwrap(), b.logit_variance.unwrap()) > 1e-2));
}

#[test]
fn precision_sweep_rejects_bad_widths() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("none");
    let run = run.to_str().unwrap();
    // --bits without --precision-sweep, --precision-sweep with --methods, widths out of 2..=16:
    // refused by the argument parser, before the (missing) run is looked at.
    for args in [
        vec!["diagnose", run, "--bits", "4"],
        vec!["diagnose", run, "--precision-sweep", "--methods", "fp32"],
        vec!["diagnose", run, "--precision-sweep", "--bits", "1,4"],
        vec!["diagnose", run, "--precision-sweep", "--bits", "4,17"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: ") && !err.contains("config.toml"),
            "{args:?}: {err}"
        );
    }
    for bits in [&[1u8, 4][..], &[4, 17], &[4, 4]] {
        let e = fq_compress::analysis::precision_sweep::check_bits(bits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--bits"), "{e}");
    }
}
