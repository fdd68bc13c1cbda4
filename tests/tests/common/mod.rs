//! What the end-to-end tests share: the command line as a user types it, and a small trained run.

#![allow(dead_code)]

pub mod zoo;

use clap::Parser;
use fq_compress::cli::{dispatch, Cli};
use std::path::{Path, PathBuf};

/// The test split of a run directory, as the compressor evaluated it.
pub fn test_split(run: &Path) -> fq_eval::dataset::Dataset {
    let cfg = fq_compress::run::config::RunConfig::load(&run.join("config.toml")).unwrap();
    let ds = fq_compress::run::run_dir::load_dataset(&cfg).unwrap();
    let split = fq_eval::dataset::Split::load_csv(&run.join("split.csv"), &ds).unwrap();
    ds.subset(&split.test)
}

/// Run `fq-compress --quiet ARGS` in-process; a failure fails the test with its message.
pub fn cli(args: &[&str]) {
    let mut argv = vec!["fq-compress", "--quiet"];
    argv.extend_from_slice(args);
    dispatch(Cli::try_parse_from(argv).unwrap()).unwrap();
}

/// `synth` `num_images` images at 32 px into `root/data`, then `train` a ResNet18 of `width` for
/// one epoch into `root/run`. Returns (data dir, run dir).
pub fn trained_run(root: &Path, num_images: usize, width: usize) -> (PathBuf, PathBuf) {
    trained_run_arch(root, num_images, "resnet18", width)
}

/// [`trained_run`] for any architecture of the zoo.
pub fn trained_run_arch(
    root: &Path,
    num_images: usize,
    arch: &str,
    width: usize,
) -> (PathBuf, PathBuf) {
    let data = root.join("data");
    let run = root.join("run");
    let (d, r) = (data.to_str().unwrap(), run.to_str().unwrap());
    let n = num_images.to_string();
    cli(&[
        "synth",
        "--out",
        d,
        "--num-images",
        &n,
        "--image-size",
        "32",
    ]);
    let (csv, images) = (format!("{d}/fitzpatrick17k.csv"), format!("{d}/images"));
    let w = width.to_string();
    #[rustfmt::skip]
    cli(&[
        "train", "--run-dir", r, "--csv", &csv, "--images", &images, "--arch", arch,
        "--width", &w, "--input-size", "32", "--epochs", "1", "--batch-size", "64",
    ]);
    (data, run)
}

/// What a model file exported for the method labelled `label` promises: the deployed 8-bit
/// activation row of `report.json` when its export calibrated one (the default), else the
/// method's own (f32-activation) row.
pub fn deployed_metrics(run: &Path, label: &str) -> fq_eval::metrics::FairnessMetrics {
    let report = fq_compress::run::report::Report::load(&run.join("report.json")).unwrap();
    match report
        .activations
        .iter()
        .find(|a| a.method.label() == label && a.deployed)
    {
        Some(a) => a.metrics.clone(),
        None => {
            let r = report.results.iter().find(|r| r.method.label() == label);
            r.unwrap_or_else(|| panic!("no row {label}"))
                .metrics
                .clone()
        }
    }
}

/// A model file on the CPU with f32 activations, whatever it carries: what the compressor's own
/// (f32-activation) rows and the GPU and ONNX paths compare against.
pub fn load_f32(path: &Path) -> fq_runtime::Classifier {
    fq_runtime::Classifier::load_with(
        path,
        fq_runtime::LoadOptions {
            backend: fq_runtime::BackendChoice::Cpu,
            activations: fq_runtime::ActivationChoice::F32,
        },
    )
    .unwrap()
}
