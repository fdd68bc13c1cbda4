//! FairQuant on the transformers, unchanged: a narrow DeiT-Tiny and TinyViT-5M go through the
//! command line a user types (`train`, `compress` FQ-QAT and FQ-BAQ with importance and allocation,
//! `export`), and the runtime, reading the run's test images itself, reproduces the compressor's
//! per-group results from the packed file.

use crate::common;

use fq_compress::methods::allocate::Allocation;
use fq_compress::nn::quant::BitAssignment;
use fq_compress::run::report::Report;
use fq_eval::Evaluate;
use fq_models::{ArchSpec, QuantLayer};
use fq_runtime::classify::Classifier;
use std::path::Path;

/// The method's saved per-channel bits: FQ-QAT's allocation (its palette counts checked against
/// the proportions 0.2/0.4/0.4 first) or FQ-BAQ's discretized bits (within [2, 8]).
fn saved_bits(run: &Path, m: &str, layers: &[QuantLayer]) -> BitAssignment {
    let read = |f: &str| std::fs::read(run.join("methods").join(m).join(f)).unwrap();
    let bits = if m == "fq-qat" {
        let a: Allocation = serde_json::from_slice(&read("allocation.json")).unwrap();
        let n: usize = layers.iter().map(|l| l.out_channels).sum();
        assert_eq!(a.counts.iter().sum::<usize>(), n);
        for (c, p) in a.counts.iter().zip([0.2, 0.4, 0.4]) {
            // Quantile thresholds: each width gets its share up to ties at a threshold.
            assert!(
                (*c as f64 - p * n as f64).abs() <= 2.0,
                "{:?} of {n}",
                a.counts
            );
        }
        a.bits
    } else {
        serde_json::from_slice(&read("bits.json")).unwrap()
    };
    for l in layers {
        let b = &bits.layers[&l.name];
        assert_eq!(b.len(), l.out_channels, "{m}: {}", l.name);
        assert!(b.iter().all(|&x| (2..=8).contains(&x)), "{m}: {}", l.name);
    }
    bits
}

/// AvgBits recomputed here from the layers' sizes and the saved bits, in f64: spec §8's
/// `Σ trunc(P_l · mean_l) / Σ P_l` (the report's) and the untruncated `Σ P_l · mean_l / Σ P_l`
/// (what the packed file's summary states: its exact mean bits per weight).
fn avg_bits(layers: &[QuantLayer], bits: &BitAssignment) -> (f64, f64) {
    let mut sum = (0.0f64, 0.0f64, 0.0f64);
    for l in layers {
        let b = &bits.layers[&l.name];
        let mean = b.iter().map(|&x| x as f64).sum::<f64>() / b.len() as f64;
        sum.0 += (l.params as f64 * mean).trunc();
        sum.1 += l.params as f64 * mean;
        sum.2 += l.params as f64;
    }
    (sum.0 / sum.2, sum.1 / sum.2)
}

fn run_zoo(arch: &str, width: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = common::trained_run_arch(dir.path(), 240, arch, width);
    let r = run.to_str().unwrap();
    let cli = common::cli;
    for m in ["fq-qat", "fq-baq"] {
        let args = ["--method", m, "--epochs", "1", "--calib-batches", "2"];
        cli(&[&["compress", "--run-dir", r][..], &args[..]].concat());
    }
    let report = Report::load(&run.join("report.json")).unwrap();
    let test = common::test_split(&run);
    let layers = ArchSpec::new(arch.parse().unwrap(), width, 32, test.classes.len())
        .graph()
        .unwrap()
        .quant_layers()
        .unwrap();
    for (m, label) in [("fq-qat", "FQ-QAT"), ("fq-baq", "FQ-BAQ")] {
        let out = run.join(format!("{m}.fqm"));
        cli(&["export", r, "--method", m, "-o", out.to_str().unwrap()]);
        let reported = report
            .results
            .iter()
            .find(|x| x.method.label() == label)
            .unwrap();
        // The reported and the deployed bits are exactly the method's saved per-channel bits,
        // and mixed precision really happened (more than one width).
        let bits = saved_bits(&run, m, &layers);
        let (want, exact) = avg_bits(&layers, &bits);
        assert!((reported.avg_bits - want).abs() < 1e-12, "{arch} {label}");
        let widths: std::collections::BTreeSet<u8> =
            bits.layers.values().flatten().copied().collect();
        assert!(widths.len() > 1, "{arch} {label}: one width {widths:?}");
        let c = Classifier::load(&out).unwrap();
        assert!(
            (c.summary().avg_bits - exact).abs() < 1e-9,
            "{arch} {label}: file {} vs saved bits {exact}",
            c.summary().avg_bits
        );
        // As exported (8-bit activations: the export's own evaluation by fq-runtime), and with
        // f32 activations (the compressor's row).
        let deployed = common::deployed_metrics(&run, label);
        assert_eq!(c.summary().test_metrics.as_ref(), Some(&deployed));
        for (c, want, what) in [
            (c, &deployed, "as exported"),
            (common::load_f32(&out), &reported.metrics, "f32"),
        ] {
            let ev = c.evaluate_dataset(&test).unwrap();
            assert_eq!(
                (&ev.metrics.group_count, &ev.metrics.group_correct),
                (&want.group_count, &want.group_correct),
                "{arch} {label} ({what}): the runtime's per-group results differ from the compressor's"
            );
        }
    }
}

#[test]
fn deit_tiny_compresses_and_runs_packed() {
    run_zoo("deit-tiny", 8);
}

#[test]
fn tiny_vit_compresses_and_runs_packed() {
    run_zoo("tinyvit-5m", 8);
}
