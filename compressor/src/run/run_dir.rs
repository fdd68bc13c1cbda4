//! A run from data to report: load and split the dataset, decode images, train the FP32 model
//! (checkpointed, resumable), evaluate each compression method and write the report.

use crate::data::image_set::ImageSet;
use crate::methods::inputs::MethodInputs;
use crate::methods::MethodId;
use crate::nn::model::Model;
use crate::nn::params::ParamStore;
use crate::run::config::RunConfig;
use crate::run::report::{MethodResult, Report};
use crate::support::run_files::RunFiles;
use crate::support::seed;
use crate::train::evaluate::evaluate;
use crate::train::{train, TrainIo};
use anyhow::{Context, Result};
use candle_core::Device;
use fq_eval::dataset::{self, Dataset, Split};
use fq_models::{ArchSpec, Graph};
use fq_runtime::preprocess::PreprocessConfig;
use std::path::{Path, PathBuf};

/// The device candle computes on: the process's `--device` choice (see [`crate::support::device`]); by
/// default CUDA when built with the `cuda` feature and a GPU is present, else the CPU.
pub fn device() -> Device {
    crate::support::device::current()
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
    /// What a compression method needs from this run (see [`MethodInputs`]).
    pub fn method_inputs(&self) -> MethodInputs<'_> {
        MethodInputs {
            dir: &self.dir,
            graph: &self.graph,
            device: &self.device,
            train: &self.train,
            test: &self.test,
            preprocess: &self.preprocess,
            groups: &self.dataset.groups,
            dataset_name: &self.dataset.name,
            granularity: self.cfg.granularity,
            progress: self.progress,
        }
    }

    /// Load the data, reuse the run's saved split (or make and save one) and decode the images.
    pub fn open(dir: &Path, cfg: RunConfig, progress: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create run directory", dir.display()))?;
        cfg.save(&RunFiles::new(dir).config())?;
        let dataset = load_dataset(&cfg)?;
        let split_path = RunFiles::new(dir).split();
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
        let bar = crate::support::progress::bar(
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
            cfg.model.arch,
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
        let fp32 = RunFiles::new(&self.dir).fp32();
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
            checkpoint: &RunFiles::new(&self.dir).checkpoint(),
            resume,
            progress: self.progress,
            label: "fp32",
        };
        let outcome = train(
            &model,
            crate::nn::model::Quant::Fp32,
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
        let path = RunFiles::new(&self.dir).report();
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
            activations: Vec::new(),
        }
    }

    /// One method's row on the test split, from its files in the run (nothing is written).
    pub fn evaluate_method(&self, fp32: &Model, m: &MethodId) -> Result<MethodResult> {
        let layers = self.graph.quant_layers()?;
        let (weights, bits) = crate::methods::artifacts(&self.dir, m.clone(), &layers)?;
        let own;
        let model = if weights == RunFiles::new(&self.dir).fp32() {
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
        row.device = Some(crate::support::device::label(&self.device));
        Ok(row)
    }
}
