//! A run from data to report: load and split the dataset, decode images, train the FP32 model
//! (checkpointed, resumable), evaluate each compression method and write the report.

use crate::cli::DemoArgs;
use crate::config::RunConfig;
use crate::data::ImageSet;
use crate::evaluate::evaluate;
use crate::methods::{Method, MethodId};
use crate::model::Model;
use crate::params::ParamStore;
use crate::report::{MethodResult, Report};
use crate::seed;
use crate::synth::{self, SynthConfig};
use crate::train::{train, TrainIo};
use anyhow::{Context, Result};
use candle_core::Device;
use fq_eval::dataset::{self, Dataset, Split};
use fq_models::{ArchSpec, Graph};
use fq_runtime::preprocess::PreprocessConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The device candle computes on: the process's `--device` choice (see [`crate::device`]); by
/// default CUDA when built with the `cuda` feature and a GPU is present, else the CPU.
pub fn device() -> Device {
    crate::device::current()
}

/// Read the dataset a configuration names with the matching real-format loader.
pub fn load_dataset(cfg: &RunConfig) -> Result<Dataset> {
    let ds = cfg.data.load(cfg.skip_bad_rows)?;
    if !ds.skipped.is_empty() {
        eprintln!(
            "skipped {} rows: {}",
            ds.skipped.len(),
            dataset::skip_summary(&ds.skipped)
        );
    }
    Ok(ds)
}

/// An open run directory with its data decoded and split.
pub struct Run {
    pub dir: PathBuf,
    pub cfg: RunConfig,
    pub dataset: Dataset,
    pub graph: Graph,
    pub preprocess: PreprocessConfig,
    pub train: ImageSet,
    pub val: ImageSet,
    pub test: ImageSet,
    pub device: Device,
    pub progress: bool,
}

impl Run {
    /// Load the data, reuse the run's saved split (or make and save one) and decode the images.
    pub fn open(dir: &Path, cfg: RunConfig, progress: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create run directory", dir.display()))?;
        cfg.save(&dir.join("config.toml"))?;
        let dataset = load_dataset(&cfg)?;
        let split_path = dir.join("split.csv");
        // The run's `split.csv` is the split (a resumed run reuses it); the first open makes it as the
        // config says and writes it in the `--split-csv` format, so any run's split can be reused.
        let split = if split_path.exists() {
            Split::load_csv(&split_path, &dataset)?
        } else {
            let fr = dataset::SplitFractions {
                train: cfg.split.train,
                val: cfg.split.val,
                test: cfg.split.test,
            };
            let (s, note) = dataset::make_split(
                &dataset,
                &cfg.data,
                &cfg.split.method,
                &fr,
                cfg.split.seed,
                cfg.skip_bad_rows,
            )?;
            if let Some(n) = note {
                eprintln!("{n}");
            }
            s.save_csv(&split_path, &dataset)?;
            s
        };
        let size = cfg.model.input_size as u32;
        let preprocess = PreprocessConfig {
            width: size,
            height: size,
            ..PreprocessConfig::default()
        };
        let bar = crate::progress::bar(
            progress,
            dataset.len() as u64,
            "decode [{elapsed_precise}] {bar:30} {pos}/{len} images ({per_sec})",
        );
        let images = fq_eval::images::load_dataset_images_with(&dataset, &preprocess, &|n| {
            bar.set_position(n as u64)
        })?;
        bar.finish_and_clear();
        let all = ImageSet {
            ids: dataset.samples.iter().map(|s| s.id.clone()).collect(),
            images,
            labels: dataset.samples.iter().map(|s| s.label).collect(),
            groups: dataset.samples.iter().map(|s| s.group).collect(),
            num_classes: dataset.classes.len(),
            num_groups: dataset.groups.len(),
        };
        let graph = ArchSpec::new(
            &cfg.model.arch,
            cfg.model.width,
            cfg.model.input_size,
            dataset.classes.len(),
        )
        .graph()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            train: all.subset(&split.train),
            val: all.subset(&split.val),
            test: all.subset(&split.test),
            cfg,
            dataset,
            graph,
            preprocess,
            device: device(),
            progress,
        })
    }

    /// The trained FP32 model: loaded from `fp32.safetensors` when the run has one, else trained
    /// (resuming from the checkpoint when `resume`) and saved.
    pub fn train_fp32(&self, resume: bool) -> Result<Model> {
        let fp32 = self.dir.join("fp32.safetensors");
        if fp32.exists() {
            let params = ParamStore::load_safetensors(&self.graph, &fp32, 0, &self.device, false)?;
            return Ok(Model::new(self.graph.clone(), params, self.device.clone()));
        }
        let init_seed = seed::derive(self.cfg.train.seed, &[seed::tag::INIT]);
        let params = match &self.cfg.model.weights {
            Some(w) => ParamStore::load_safetensors(&self.graph, w, init_seed, &self.device, true)?,
            None => ParamStore::init(&self.graph, init_seed, &self.device)?,
        };
        let model = Model::new(self.graph.clone(), params, self.device.clone());
        let io = TrainIo {
            preprocess: &self.preprocess,
            group_names: &self.dataset.groups,
            checkpoint: &self.dir.join("checkpoint.safetensors"),
            resume,
            progress: self.progress,
            label: "fp32",
        };
        let outcome = train(
            &model,
            crate::model::Quant::Fp32,
            &self.train,
            // A saved or official split may have no val set: then no early stopping (last epoch).
            (!self.val.is_empty()).then_some(&self.val),
            &self.cfg.train,
            &io,
        )?;
        fq_runtime::atomic::write_json_atomic(&self.dir.join("fp32_history.json"), &outcome)?;
        model.params.save(&fp32)?;
        Ok(model)
    }

    /// Evaluate methods on the test split, merge them into `report.json` and redraw the chart.
    /// With `skip_done`, methods the report already has are not evaluated again (a sweep).
    pub fn evaluate_methods(
        &self,
        fp32: &Model,
        methods: &[MethodId],
        skip_done: bool,
    ) -> Result<Report> {
        let path = self.dir.join("report.json");
        let mut report = if path.exists() {
            Report::load(&path)?
        } else {
            self.empty_report()
        };
        for m in methods {
            if skip_done && report.get(m).is_some() {
                continue;
            }
            report.upsert(self.evaluate_method(fp32, m)?);
        }
        report.write(&self.dir)?;
        Ok(report)
    }

    /// A report of this run without rows.
    pub fn empty_report(&self) -> Report {
        Report {
            dataset: self.dataset.name.clone(),
            arch: self.graph.arch.clone(),
            classes: self.dataset.classes.clone(),
            groups: self.dataset.groups.clone(),
            test_samples: self.test.len(),
            results: Vec::new(),
        }
    }

    /// One method's row on the test split, from its files in the run (nothing is written).
    pub fn evaluate_method(&self, fp32: &Model, m: &MethodId) -> Result<MethodResult> {
        let layers = self.graph.quant_layers()?;
        let (weights, bits) = crate::methods::artifacts(&self.dir, m.clone(), &layers)?;
        let own;
        let model = if weights == self.dir.join("fp32.safetensors") {
            fp32
        } else {
            let p = ParamStore::load_safetensors(&self.graph, &weights, 0, &self.device, false)?;
            own = Model::new(self.graph.clone(), p, self.device.clone());
            &own
        };
        let metrics = evaluate(
            model,
            &self.test,
            bits.as_ref().into(),
            &self.preprocess,
            &self.dataset.groups,
            256,
        )?;
        let (mean_bits, pruned) =
            crate::methods::layer_mean_bits(&self.dir, m, &layers, bits.as_ref())?;
        let mut row = MethodResult::from_layer_bits(m, &layers, &mean_bits, pruned, metrics);
        row.device = Some(crate::device::label(&self.device));
        Ok(row)
    }
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
        if path.file_name() == Some(std::ffi::OsStr::new(crate::run_lock::LOCK_FILE)) {
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
pub fn demo(a: &DemoArgs, progress: bool) -> Result<()> {
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
    cfg.model.arch = a.arch.clone();
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
        let c = crate::fairquant::CompressConfig::embedded(m, &run.cfg.train);
        crate::fairquant::compress(&run, &model, &m.into(), &c, true)?;
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
    let report = run.evaluate_methods(&model, &ids, false)?;
    println!("\n{}", report.table());
    // The method `export` picks by default: the best worst-group accuracy, then fewer bits.
    let packed = crate::export::export_run(&run.dir, None, None)?;
    println!("{packed}");
    println!(
        "report: {}  chart: {}  ({:.1}s in all)",
        run.dir.join("report.json").display(),
        run.dir.join("group_accuracy.png").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
