//! `fq-compress demo`: the whole pipeline on a synthetic dataset, from nothing to a report and an
//! exported model, within minutes on 2 cores.

use crate::data::synth::{self, SynthConfig};
use crate::methods::{Method, MethodId};
use crate::run::config::RunConfig;
use crate::run::run_dir::Run;
use crate::support::run_files::RunFiles;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the demo runs (the command line's `demo` options).
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// The run directory (the synthetic data goes to its `data/`).
    pub out: PathBuf,
    /// Seed of the FP32 training and the methods.
    pub seed: u64,
    /// FP32 training epochs; `None`: the embedded default's.
    pub epochs: Option<usize>,
    pub num_images: usize,
    /// Start over instead of reusing a finished dataset, checkpoint or model.
    pub fresh: bool,
    pub arch: fq_models::Arch,
    pub width: usize,
}

/// Empties `dir` for `--fresh`, keeping the run lock this process holds in it (removing the
/// lock file would let a second process lock a new file while this one still runs).
fn remove_contents_except_lock(dir: &Path) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for e in entries {
        let path = e
            .with_context(|| format!("{}: cannot list", dir.display()))?
            .path();
        if path.file_name() == Some(std::ffi::OsStr::new(crate::support::run_lock::LOCK_FILE)) {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("{}: cannot remove", path.display()))?;
    }
    Ok(())
}

/// `fq-compress demo`: synth → train → PTQ → report on the embedded default.
pub fn demo(a: &DemoConfig, progress: bool) -> Result<()> {
    let start = Instant::now();
    if a.fresh && a.out.exists() {
        remove_contents_except_lock(&a.out)?;
    }
    let data_dir = a.out.join("data");
    let synth_cfg = SynthConfig {
        seed: 0,
        num_images: a.num_images,
        ..SynthConfig::default()
    };
    let s = synth::generate(&synth_cfg, &data_dir, progress)?;
    println!(
        "dataset: {} synthetic images in {} ({:.1}s)",
        s.num_images,
        data_dir.display(),
        start.elapsed().as_secs_f64()
    );
    let mut cfg = RunConfig::embedded_default(&data_dir, a.seed);
    cfg.model.arch = a.arch;
    cfg.model.width = a.width;
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    let run = Run::open(&a.out, cfg, progress)?;
    println!(
        "model: {} ({} parameters, {:.1} MMAC/image); split train {} / val {} / test {}",
        run.graph.arch,
        run.graph.param_count(),
        run.graph.macs()? as f64 / 1e6,
        run.train.len(),
        run.val.len(),
        run.test.len()
    );
    let model = run.train_fp32(true)?;
    println!("trained FP32 in {:.1}s", start.elapsed().as_secs_f64());
    // FairGRAPE and FairQuantize (the paper's "Lin et al." and "Guo et al." rows) reuse the
    // FairQuant calibration maps. QAT-U4 and FP32-FT are FQ-QAT's fine-tuning without
    // allocation and fairness loss (the controls for the extra epochs), from the same cached
    // calibration.
    for m in [
        Method::FqQat,
        Method::FqBaq,
        Method::QatU4,
        Method::Fp32Ft,
        Method::Fairgrape,
        Method::Fairquantize,
    ] {
        let t = Instant::now();
        let c = crate::methods::config::CompressConfig::embedded(m, &run.cfg.train);
        crate::methods::runner::compress(&run.method_inputs(), &model, &m.into(), &c, true)?;
        println!(
            "{} done at {:.1}s ({:.1}s)",
            m.label(),
            start.elapsed().as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
    let all = [
        Method::Fp32,
        Method::PtqU8,
        Method::PtqU4,
        Method::FqQat,
        Method::FqBaq,
        Method::QatU4,
        Method::Fp32Ft,
        Method::Fairgrape,
        Method::Fairquantize,
    ];
    let ids: Vec<MethodId> = all.into_iter().map(MethodId::from).collect();
    run.evaluate_methods(&model, &ids, false)?;
    // The method `export` picks by default: the best worst-group accuracy, then fewer bits;
    // with 8-bit activations, calibrated plain and group-balanced and evaluated by fq-runtime,
    // which adds the method's A f32 / A8 rows to the report.
    let packed = crate::run::export::export_run_as(
        &run.dir,
        None,
        None,
        crate::run::export::ExportFormat::Fqm,
        crate::run::onnx::OnnxOptions::default(),
        crate::run::export::ExportActivations::Int8(Default::default()),
    )?;
    let report = crate::run::report::Report::load(&RunFiles::new(&run.dir).report())?;
    println!("\n{}", report.table());
    println!("{packed}");
    println!(
        "report: {}  chart: {}  ({:.1}s in all)",
        RunFiles::new(&run.dir).report().display(),
        RunFiles::new(&run.dir).group_accuracy().display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
