//! Command-line interface: argument definitions and dispatch to the pipeline.

use crate::data::augment::AugmentConfig;
use crate::data::sampler::{GroupWeights, Sampler};
use crate::data::synth::SynthConfig;
use crate::methods::{Method, MethodId};
use crate::nn::quant::Granularity;
use crate::run::config::{ModelConfig, RunConfig, SplitConfig};
use crate::run::run_dir;
use crate::support::run_files::RunFiles;
use crate::support::run_lock::{LockKind, RunLock};
use crate::train::TrainConfig;
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use strum::IntoEnumIterator;

#[derive(Parser, Debug)]
#[command(
    name = "fq-compress",
    version,
    about = "Fairness-aware mixed-precision quantization of medical image classifiers (FairQuant)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Hide progress bars.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Where candle computes (train, compress, demo, sweep, diagnose): `auto` = CUDA when built
    /// with the `cuda` feature and a GPU is present, else the CPU; `cuda` fails if it cannot.
    #[arg(long, global = true, value_parser = choice::<crate::support::device::DeviceChoice>(), default_value = "auto")]
    pub device: crate::support::device::DeviceChoice,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate the embedded synthetic dermatology dataset (PNG + Fitzpatrick17k-schema CSV).
    Synth(SynthArgs),
    /// Train (fine-tune) the FP32 model of a run; checkpoints every epoch.
    Train(Box<TrainArgs>),
    /// Evaluate a compression method on the run's test split and add it to the report.
    Compress(Box<CompressArgs>),
    /// The whole pipeline on the embedded default: synth → train → PTQ → report.
    Demo(DemoArgs),
    /// Pack a run's compressed model into a `.fqm` file for the runtime (fq-runtime).
    Export(ExportArgs),
    /// Seeds and ablations on a trained run: mean ± std table in the paper's Table 1 layout,
    /// ablation CIs and plots, in RUN_DIR/sweep/. Finished runs are skipped.
    Sweep(Box<SweepArgs>),
    /// Why a quantized model is unfair (Bellam & Kim): per group, logit variance, loss, gradient
    /// norm and top Hessian eigenvalue for FP32 and each variant, and the FVO; JSON and charts
    /// in RUN_DIR/diagnostics/.
    Diagnose(DiagnoseArgs),
}

#[derive(Args, Debug)]
pub struct DiagnoseArgs {
    /// A run with a trained FP32 model (and, for quantized variants, finished methods).
    pub run_dir: PathBuf,
    /// Methods to diagnose, e.g. `fp32,ptq-u4,fq-qat-s42` [default: every row of report.json,
    /// else FP32, U8 and U4].
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Test samples per group for the gradient norm and the Hessian.
    #[arg(long, default_value_t = 8)]
    pub samples_per_group: usize,
    /// Power iteration cap (spec: 20).
    #[arg(long, default_value_t = 20)]
    pub power_iters: usize,
    /// Power iteration stop: relative change of the eigenvalue below this (spec: 1e-3).
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// Finite-difference step of the Hessian-vector product (along a unit vector, in f64).
    #[arg(long, default_value_t = 1e-8)]
    pub hvp_step: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory [default: RUN_DIR/diagnostics].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Instead of the methods: Bellam & Kim's precision sweep, the FP32 model under uniform
    /// per-channel PTQ at each of --bits (and FP32), to precision_sweep.json and .png.
    #[arg(long, conflicts_with = "methods")]
    pub precision_sweep: bool,
    /// Weight widths of the precision sweep (each 2..=16).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = clap::value_parser!(u8).range(2..=16),
        requires = "precision_sweep",
        default_values_t = crate::analysis::precision_sweep::DEFAULT_BITS
    )]
    pub bits: Vec<u8>,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 3000)]
    pub num_images: usize,
    #[arg(long, default_value_t = 64)]
    pub image_size: u32,
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    #[arg(long, default_value = "resnet18")]
    /// resnet18, resnet50, deit_tiny_patch16_224 (alias deit-tiny) or tiny_vit_5m_224 (tinyvit-5m).
    pub arch: fq_models::Arch,
    /// Width knob, 64 = the published model: ResNet stem width, DeiT embedding dim / 3, TinyViT
    /// first-stage dim.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    #[arg(long, default_value_t = 224)]
    pub input_size: usize,
    /// Pretrained torchvision/timm safetensors (the classifier head is replaced).
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct HyperArgs {
    /// Spec §6.1: 200 for ResNets, 20 for the ViTs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// StepLR: multiply the rate by --lr-gamma every this many epochs (spec: 160).
    #[arg(long, default_value_t = 160)]
    pub lr_step: usize,
    #[arg(long, default_value_t = 0.1)]
    pub lr_gamma: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Clip the global gradient norm (off for FP32 training in the spec).
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// Early stopping patience in epochs on the validation AvgAcc (spec: 10).
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Training seed (spec §6.1: `set_seed(42)`; the paper's tables average 2, 42 and 2026).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Turn off all training-time augmentation (flips, rotation, AutoAugment).
    #[arg(long)]
    pub no_augment: bool,
    /// Keep the flips and rotation but skip spec §6.2's AutoAugment (ImageNet policy).
    #[arg(long)]
    pub no_autoaugment: bool,
    /// Batch order; `group-balanced` draws samples ∝ 1/n_g with replacement (Bellam–Kim).
    #[arg(long, value_parser = choice::<Sampler>(), default_value = "shuffle")]
    pub sampler: Sampler,
    /// Cross-entropy weight per group: `inverse-frequency` (w_g = N/(|G| n_g)) or `w0,w1,...`.
    #[arg(long, value_parser = parse_group_weights)]
    pub group_weights: Option<GroupWeights>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Continue from the run's checkpoint and its config.toml.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub data: fq_eval::dataset::DataArgs,
    /// Seed of the stratified train/val/test split.
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
    #[command(flatten)]
    pub split: fq_eval::dataset::SplitArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub hyper: HyperArgs,
    #[arg(long, value_parser = choice::<Granularity>(), default_value = "per-channel")]
    pub granularity: Granularity,
}

#[derive(Args, Debug)]
pub struct CompressArgs {
    #[arg(long)]
    pub run_dir: PathBuf,
    #[arg(long, value_parser = choice::<Method>())]
    pub method: Method,
    /// Name this setting (e.g. `official-code`, `s42`): its files go to
    /// `methods/<method>-<variant>/` and it gets its own report row, beside the plain method's.
    #[arg(long)]
    pub variant: Option<String>,
    /// A compression config (TOML, as written to `methods/<method>/config.toml`); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `official-code` reproduces the official code at HEAD: the quantized weight is detached
    /// (bits stay at the warm start) and the regularizer anchors to the warm start.
    #[arg(long, value_parser = choice::<crate::methods::config::Preset>())]
    pub preset: Option<crate::methods::config::Preset>,
    /// Reuse a saved bit assignment (bits.json or allocation.json) instead of calibrating.
    #[arg(long)]
    pub allocation: Option<PathBuf>,
    #[arg(long)]
    pub calib_batches: Option<usize>,
    #[arg(long, value_parser = choice::<crate::methods::importance::Reducer>())]
    pub reducer: Option<crate::methods::importance::Reducer>,
    #[arg(long)]
    pub cvar_alpha: Option<f64>,
    #[arg(long)]
    pub subtractive_beta: Option<f64>,
    /// Bit palette, e.g. `2,4,8`.
    #[arg(long, value_delimiter = ',')]
    pub palette: Option<Vec<u8>>,
    /// Share of scopes per palette entry (sorted bits), e.g. `0.2,0.4,0.4`.
    #[arg(long, value_delimiter = ',')]
    pub proportions: Option<Vec<f64>>,
    /// Quantized fine-tuning epochs (spec: 10).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate of the weights (spec: 3e-5).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// Fairness penalty weight (spec: 0.5).
    #[arg(long)]
    pub lambda_fair: Option<f64>,
    /// Fine-tuning seed [default: the run's].
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub b_min: Option<f64>,
    #[arg(long)]
    pub b_max: Option<f64>,
    /// Bitrate regularizer weight (spec: 1e-2).
    #[arg(long)]
    pub lambda_bit: Option<f64>,
    #[arg(long, value_parser = choice::<crate::methods::baq::BitRegularizer>())]
    pub bit_regularizer: Option<crate::methods::baq::BitRegularizer>,
    #[arg(long, value_parser = choice::<crate::methods::baq::BaqGradient>())]
    pub baq_gradient: Option<crate::methods::baq::BaqGradient>,
    /// Learning rate of the bit logits (spec: 3e-3).
    #[arg(long)]
    pub logit_lr: Option<f64>,
    /// Start BAQ at high precision (theta = 6) instead of the importance allocation.
    #[arg(long)]
    pub no_warm_start: bool,
    /// Batch order of the fine-tuning; `group-balanced` draws samples ∝ 1/n_g (Bellam–Kim).
    #[arg(long, value_parser = choice::<Sampler>())]
    pub sampler: Option<Sampler>,
    /// Fine-tuning cross-entropy weight per group: `inverse-frequency`, `none` or `w0,w1,...`.
    #[arg(long, value_parser = parse_group_weights)]
    pub group_weights: Option<GroupWeights>,
    /// FairGRAPE: share of each layer's weights pruned (spec §5.4: 0.85).
    #[arg(long)]
    pub prune_ratio: Option<f64>,
    /// FQ-BAQ: epochs on the plain quantizer with the bits frozen after the learnable-bit epochs,
    /// so the last steps train the exported model (docs/BAQ_SHIPPING.md; 0 = off).
    #[arg(long)]
    pub final_fixed_epochs: Option<usize>,
}

impl CompressArgs {
    /// The method's settings: the config file or the defaults (the spec's for fine-tuning a
    /// pretrained model; the embedded default's for a run trained from scratch), then the flags.
    pub fn to_config(&self, run: &RunConfig) -> Result<crate::methods::config::CompressConfig> {
        use crate::methods::config::CompressConfig;
        let mut c = match &self.config {
            Some(p) => CompressConfig::load(p)?,
            None => CompressConfig::for_run(self.method, run),
        };
        if let Some(p) = self.preset {
            c.apply_preset(p);
        }
        macro_rules! set {
            ($field:expr, $flag:expr) => {
                if let Some(v) = $flag.clone() {
                    $field = v;
                }
            };
        }
        c.allocation_file = self.allocation.clone().or(c.allocation_file);
        set!(c.importance.calib_batches, self.calib_batches);
        set!(c.importance.reducer, self.reducer);
        set!(c.importance.cvar_alpha, self.cvar_alpha);
        set!(c.importance.subtractive_beta, self.subtractive_beta);
        set!(c.allocation.palette, self.palette);
        if self.proportions.is_some() || self.palette.is_some() {
            c.allocation.proportions = self.proportions.clone();
        }
        set!(c.finetune.epochs, self.epochs);
        set!(c.finetune.lr, self.lr);
        set!(c.finetune.batch_size, self.batch_size);
        set!(c.finetune.weight_decay, self.weight_decay);
        if self.grad_clip.is_some() {
            c.finetune.grad_clip = self.grad_clip;
        }
        set!(c.finetune.lambda_fair, self.lambda_fair);
        set!(c.finetune.seed, self.seed);
        set!(c.baq.b_min, self.b_min);
        set!(c.baq.b_max, self.b_max);
        set!(c.baq.lambda_bit, self.lambda_bit);
        set!(c.baq.regularizer, self.bit_regularizer);
        set!(c.baq.gradient, self.baq_gradient);
        set!(c.baq.logit_lr, self.logit_lr);
        if self.no_warm_start {
            c.baq.warm_start = false;
        }
        set!(c.finetune.sampler, self.sampler);
        set!(c.finetune.group_weights, self.group_weights);
        set!(c.fairgrape.prune_ratio, self.prune_ratio);
        set!(c.baq.final_fixed_epochs, self.final_fixed_epochs);
        Ok(c)
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run directory (config.toml, report.json and the method's weights).
    pub run_dir: PathBuf,
    /// Output file [default: RUN_DIR/model-<method label>.fqm, e.g. model-u4.fqm].
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Method to export [default: the report's non-FP32 method with the best worst-group
    /// accuracy (ties: fewer bits), else ptq-u4]. FP32 exports keep f32 weights.
    #[arg(long, value_parser = choice::<Method>())]
    pub method: Option<Method>,
    /// The method's variant (`compress --variant`).
    #[arg(long, requires = "method")]
    pub variant: Option<String>,
    /// File format: `fqm` (fq-runtime) or `onnx` (onnxruntime; default file model-<label>.onnx).
    #[arg(long, value_parser = choice::<crate::run::export::ExportFormat>(), default_value = "fqm")]
    pub format: crate::run::export::ExportFormat,
    /// ONNX opset (17..=21); 21 stores layers of at most 4 bits as int4 instead of int8.
    #[arg(long, default_value_t = crate::run::onnx::DEFAULT_OPSET)]
    pub opset: i64,
    /// Activations of an `.fqm`: `int8` calibrates static 8-bit scales on the run's training
    /// split and evaluates the integer model with fq-runtime (needs the run's data); `f32` keeps
    /// float activations. ONNX exports keep f32 activations.
    #[arg(long, value_parser = choice::<ActivationsFlag>(), default_value = "int8")]
    pub activations: ActivationsFlag,
    /// With `--activations int8`: which calibration the file stores; both are evaluated.
    #[arg(long, value_parser = choice::<crate::run::activations::CalibrationChoice>(), default_value = "auto")]
    pub calibration: crate::run::activations::CalibrationChoice,
}

/// `export --activations`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::EnumIter, strum::IntoStaticStr, strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
pub enum ActivationsFlag {
    /// 8-bit activations, calibrated and evaluated at export (the runtime's integer path).
    Int8,
    /// f32 activations.
    F32,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// A trained run (`fq-compress train` or `demo`).
    #[arg(long)]
    pub run_dir: PathBuf,
    /// Seeds of the seeded methods (the paper's three).
    #[arg(long, value_delimiter = ',', default_value = "2,42,2026")]
    pub seeds: Vec<u64>,
    /// Methods run once per seed (qat-u4 and fp32-ft: the training controls).
    #[arg(
        long,
        value_parser = choice::<Method>(),
        value_delimiter = ',',
        default_value = "fq-qat,fq-baq,qat-u4,fp32-ft"
    )]
    pub methods: Vec<Method>,
    /// Leave out FQ-BAQ with the official code's preset (run beside the paper's by default).
    #[arg(long)]
    pub no_official_code: bool,
    /// Ablate the bitrate coefficient at these values, e.g. `0.001,0.01,0.1`.
    #[arg(long, value_delimiter = ',')]
    pub lambda_bit: Vec<f64>,
    /// Ablate the fairness coefficient at these values, e.g. `0,0.5,1`.
    #[arg(long, value_delimiter = ',')]
    pub lambda_fair: Vec<f64>,
    /// Ablate the bit-logit learning rate at these values.
    #[arg(long, value_delimiter = ',')]
    pub logit_lr: Vec<f64>,
    /// The method the ablations run.
    #[arg(long, value_parser = choice::<Method>(), default_value = "fq-baq")]
    pub ablation_method: Method,
    /// Seeds of the ablation runs [default: --seeds].
    #[arg(long, value_delimiter = ',')]
    pub ablation_seeds: Option<Vec<u64>>,
    /// Bellam–Kim mitigations, each run with every --methods entry and seed, e.g.
    /// `balanced-sampler,weighted-loss` (rows `FQ-QAT (balanced-sampler)`, ...).
    #[arg(long, value_parser = choice::<crate::analysis::sweep::grid::Mitigation>(), value_delimiter = ',')]
    pub mitigations: Vec<crate::analysis::sweep::grid::Mitigation>,
    /// Quantized fine-tuning epochs of every run [default: the method's].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Calibration batches of every run [default: the method's].
    #[arg(long)]
    pub calib_batches: Option<usize>,
    /// Output directory [default: RUN_DIR/sweep].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// For a cluster: write the grid as independent cells instead of running it: OUT/plan.json,
    /// plan.txt (line N+1: the command of cell N) and the Slurm array script sweep.sbatch.
    #[arg(long, conflicts_with_all = ["cell", "collect"])]
    pub plan: bool,
    /// Run cell N of OUT/plan.json (0-based, as $SLURM_ARRAY_TASK_ID); the grid options come from
    /// the plan. A finished cell is skipped.
    #[arg(long, conflicts_with = "collect")]
    pub cell: Option<usize>,
    /// Aggregate the cells of OUT/plan.json into the tables and plots; fails naming every cell
    /// that has not finished.
    #[arg(long)]
    pub collect: bool,
    #[command(flatten)]
    pub slurm: SlurmFlags,
}

/// `sweep --plan`: the resources of each array task (`analysis::sweep::slurm::SlurmResources`).
#[derive(Args, Clone, Debug)]
pub struct SlurmFlags {
    /// With --plan: CPUs per array task (`--cpus-per-task`; also the cell's thread count).
    #[arg(long, default_value_t = 4)]
    pub slurm_cpus: usize,
    /// With --plan: memory per array task (`--mem`, e.g. 16G).
    #[arg(long, default_value = "16G")]
    pub slurm_mem: String,
    /// With --plan: time limit per array task (`--time`, e.g. 24:00:00 or 2-00:00:00).
    #[arg(long, default_value = "24:00:00")]
    pub slurm_time: String,
    /// With --plan: GPUs per array task (`--gres=gpu:N`, for a build with the `cuda` feature);
    /// 0 leaves the line commented out.
    #[arg(long, default_value_t = 0)]
    pub slurm_gpus: usize,
    /// With --plan: the partition (`--partition`) [default: the cluster's].
    #[arg(long)]
    pub slurm_partition: Option<String>,
    /// With --plan: run at most this many array tasks at once (`--array=0-N%K`).
    #[arg(long)]
    pub slurm_max_running: Option<usize>,
    /// With --plan: the fq-compress binary the commands call [default: this one]; compute nodes
    /// must reach it at this path.
    #[arg(long)]
    pub exe: Option<PathBuf>,
}

impl SlurmFlags {
    fn to_resources(&self) -> crate::analysis::sweep::slurm::SlurmResources {
        crate::analysis::sweep::slurm::SlurmResources {
            slurm_cpus: self.slurm_cpus,
            slurm_mem: self.slurm_mem.clone(),
            slurm_time: self.slurm_time.clone(),
            slurm_gpus: self.slurm_gpus,
            slurm_partition: self.slurm_partition.clone(),
            slurm_max_running: self.slurm_max_running,
            exe: self.exe.clone(),
        }
    }
}

impl SweepArgs {
    /// `--plan`, `--cell N` or `--collect` as the sweep takes them (it knows no clap). The grid
    /// is only read (and checked) for `--plan`: the other two take it from the saved plan.
    pub fn to_cells_command(&self) -> Result<crate::analysis::sweep::CellsCommand<'_>> {
        use crate::analysis::sweep::{CellsAction, CellsCommand};
        let action = if self.plan {
            CellsAction::Plan(self.to_spec()?)
        } else if self.collect {
            CellsAction::Collect
        } else {
            CellsAction::Cell(self.cell)
        };
        Ok(CellsCommand {
            run_dir: &self.run_dir,
            out: self.out.as_deref(),
            action,
            slurm: self.slurm.to_resources(),
        })
    }

    pub fn to_spec(&self) -> Result<crate::analysis::sweep::grid::GridSpec> {
        use crate::analysis::sweep::grid::{GridSpec, Overrides, Param};
        if self.seeds.is_empty() {
            bail!("--seeds: give at least one seed");
        }
        if let Some(m) = self
            .methods
            .iter()
            .chain([&self.ablation_method])
            .find(|m| !m.is_trained())
        {
            bail!(
                "--methods/--ablation-method: {} has no seed to sweep (FP32 and PTQ are evaluated once anyway)",
                m.label()
            );
        }
        let ablations = [
            (Param::LambdaBit, &self.lambda_bit),
            (Param::LambdaFair, &self.lambda_fair),
            (Param::LogitLr, &self.logit_lr),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| (p, v.clone()))
        .collect();
        Ok(GridSpec {
            seeds: self.seeds.clone(),
            methods: self.methods.clone(),
            official_code: !self.no_official_code,
            ablations,
            ablation_method: self.ablation_method,
            ablation_seeds: self
                .ablation_seeds
                .clone()
                .unwrap_or_else(|| self.seeds.clone()),
            mitigations: self.mitigations.clone(),
            overrides: Overrides {
                epochs: self.epochs,
                calib_batches: self.calib_batches,
            },
        })
    }
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Seed of the FP32 training and the methods (spec §6.1: 42; the sweep adds 2 and 2026).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// FP32 training epochs (the embedded default's).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 2400)]
    pub num_images: usize,
    /// Start over instead of reusing a finished dataset, checkpoint or model.
    #[arg(long)]
    pub fresh: bool,
    /// Architecture: resnet18, resnet50, deit_tiny_patch16_224 (deit-tiny) or tiny_vit_5m_224
    /// (tinyvit-5m), narrowed by `--width`.
    #[arg(long, default_value = "resnet18")]
    pub arch: fq_models::Arch,
    /// Width knob, 64 = the published model (see `fq_models::ArchSpec`).
    #[arg(long, default_value_t = 16)]
    pub width: usize,
}

impl DemoArgs {
    /// The demo's settings, as the `run` stage takes them (it knows no clap).
    pub fn to_config(&self) -> crate::run::demo::DemoConfig {
        crate::run::demo::DemoConfig {
            out: self.out.clone(),
            seed: self.seed,
            epochs: self.epochs,
            num_images: self.num_images,
            fresh: self.fresh,
            arch: self.arch,
            width: self.width,
        }
    }
}

fn train_config(h: &HyperArgs) -> TrainConfig {
    TrainConfig {
        epochs: h.epochs,
        batch_size: h.batch_size,
        lr: h.lr,
        lr_step: Some(h.lr_step),
        lr_gamma: h.lr_gamma,
        weight_decay: h.weight_decay,
        grad_clip: h.grad_clip,
        lambda_fair: 0.0,
        patience: (h.patience > 0).then_some(h.patience),
        seed: h.seed,
        augment: if h.no_augment {
            AugmentConfig::off()
        } else {
            AugmentConfig {
                autoaugment: !h.no_autoaugment,
                ..AugmentConfig::default()
            }
        },
        sampler: h.sampler,
        group_weights: h.group_weights.clone().unwrap_or_default(),
    }
}

/// The methods `diagnose` looks at: the named ones (`fq-baq-s42` = method `fq-baq`, variant
/// `s42`), else the report's rows, else FP32, U8 and U4.
fn diagnose_methods(run_dir: &std::path::Path, names: &[String]) -> Result<Vec<MethodId>> {
    if names.is_empty() {
        let path = RunFiles::new(run_dir).report();
        if path.exists() {
            let r = crate::run::report::Report::load(&path)?;
            return Ok(r.results.iter().map(|x| x.id()).collect());
        }
        return Ok([Method::Fp32, Method::PtqU8, Method::PtqU4]
            .into_iter()
            .map(MethodId::from)
            .collect());
    }
    names
        .iter()
        .map(|n| {
            // The longest method name that prefixes `n` (`fq-qat` in `fq-qat-s2`).
            let m = Method::iter()
                .filter_map(|m| {
                    let base = MethodId::from(m).name();
                    (n == &base || n.starts_with(&format!("{base}-"))).then_some((m, base))
                })
                .max_by_key(|(_, b)| b.len());
            match m {
                Some((m, base)) if n.len() == base.len() => Ok(MethodId::from(m)),
                Some((m, base)) => MethodId::new(m, Some(&n[base.len() + 1..])),
                None => bail!("--methods: `{n}` names no method (e.g. fp32, ptq-u4, fq-baq-s42)"),
            }
        })
        .collect()
}

fn parse_group_weights(s: &str) -> Result<GroupWeights, String> {
    GroupWeights::parse(s).map_err(|e| e.to_string())
}

/// The run directory a command writes and how it locks it for its whole life (see
/// [`crate::support::run_lock`]). `synth` takes none: it builds its output beside the target and renames it
/// into place, so a second writer can never leave a mixed dataset. The cells of a cluster sweep
/// (`sweep --cell`) and `--collect` share the run, each cell locking the method directory it
/// writes; everything else is the run's only user.
fn run_lock(command: &Command) -> Option<(&Path, LockKind)> {
    let only = LockKind::Exclusive;
    match command {
        Command::Synth(_) => None,
        Command::Train(a) => Some((&a.run_dir, only)),
        Command::Compress(a) => Some((&a.run_dir, only)),
        Command::Demo(a) => Some((&a.out, only)),
        Command::Sweep(a) if a.cell.is_some() || a.collect => Some((&a.run_dir, LockKind::Shared)),
        Command::Sweep(a) => Some((&a.run_dir, only)),
        Command::Diagnose(a) => Some((&a.run_dir, only)),
        Command::Export(a) => Some((&a.run_dir, only)),
    }
}

pub fn dispatch(cli: Cli) -> Result<()> {
    let progress = !cli.quiet;
    crate::support::device::configure(cli.device)?;
    let invocation = std::env::args().collect::<Vec<_>>().join(" ");
    let _lock = run_lock(&cli.command)
        .map(|(dir, kind)| RunLock::acquire(dir, &invocation, kind))
        .transpose()?;
    match cli.command {
        Command::Synth(a) => {
            let cfg = SynthConfig {
                seed: a.seed,
                num_images: a.num_images,
                image_size: a.image_size,
                ..SynthConfig::default()
            };
            let s = crate::data::synth::generate(&cfg, &a.out, progress)?;
            println!("wrote {} images to {}", s.num_images, s.out_dir.display());
            Ok(())
        }
        Command::Train(a) => {
            let a = *a;
            let cfg_path = RunFiles::new(&a.run_dir).config();
            let cfg = if a.resume && cfg_path.exists() {
                RunConfig::load(&cfg_path)?
            } else {
                if cfg_path.exists() && RunFiles::new(&a.run_dir).checkpoint().exists() {
                    bail!("{}: a run already exists here; pass --resume to continue it or choose another --run-dir", a.run_dir.display());
                }
                RunConfig {
                    data: a.data.to_source()?,
                    skip_bad_rows: a.data.skip_bad_rows,
                    split: SplitConfig {
                        seed: a.split_seed,
                        method: a.split.to_method(&a.data)?,
                        ..SplitConfig::default()
                    },
                    model: ModelConfig {
                        arch: a.model.arch,
                        width: a.model.width,
                        input_size: a.model.input_size,
                        weights: a.model.weights,
                    },
                    train: train_config(&a.hyper),
                    granularity: a.granularity,
                }
            };
            let run = run_dir::Run::open(&a.run_dir, cfg, progress)?;
            run.train_fp32(true)?;
            Ok(())
        }
        Command::Compress(a) => {
            let cfg = RunConfig::load(&RunFiles::new(&a.run_dir).config())?;
            let run = run_dir::Run::open(&a.run_dir, cfg, progress)?;
            let model = run.train_fp32(true)?;
            // FairGRAPE's script form gets its own row beside the pruned one unless named.
            let variant = a.variant.clone().or_else(|| {
                (a.method == Method::Fairgrape
                    && a.preset == Some(crate::methods::config::Preset::FairgrapeScript))
                .then(|| "script".to_string())
            });
            let id = MethodId::new(a.method, variant.as_deref())?;
            if a.method.is_trained() {
                let c = a.to_config(&run.cfg)?;
                crate::methods::runner::compress(&run.method_inputs(), &model, &id, &c, true)?;
            }
            let report = run.evaluate_methods(&model, &[id], false)?;
            println!("{}", report.table());
            Ok(())
        }
        Command::Demo(a) => crate::run::demo::demo(&a.to_config(), progress),
        Command::Sweep(a) => {
            if a.plan || a.cell.is_some() || a.collect {
                return crate::analysis::sweep::cells_command(&a.to_cells_command()?, progress);
            }
            let spec = a.to_spec()?;
            let cfg = RunConfig::load(&RunFiles::new(&a.run_dir).config())?;
            let run = run_dir::Run::open(&a.run_dir, cfg, progress)?;
            let out = crate::analysis::sweep::sweep(&run, &spec, a.out.as_deref())?;
            println!("{}\n{}", out.table1, out.ablations);
            println!("wrote {}", out.dir.display());
            Ok(())
        }
        Command::Diagnose(a) => {
            let cfg = RunConfig::load(&RunFiles::new(&a.run_dir).config())?;
            let run = run_dir::Run::open(&a.run_dir, cfg, progress)?;
            let methods = diagnose_methods(&a.run_dir, &a.methods)?;
            let dcfg = crate::analysis::diagnose::DiagnoseConfig {
                samples_per_group: a.samples_per_group,
                power_iters: a.power_iters,
                tol: a.tol,
                hvp_step: a.hvp_step,
                seed: a.seed,
                ..Default::default()
            };
            if a.precision_sweep {
                let (s, dir) = crate::analysis::precision_sweep::precision_sweep(
                    &run,
                    &a.bits,
                    &dcfg,
                    a.out.as_deref(),
                )?;
                println!("{}", crate::analysis::precision_sweep::table(&s));
                println!("wrote {}", dir.display());
                return Ok(());
            }
            let (d, dir) =
                crate::analysis::diagnose::diagnose(&run, &methods, &dcfg, a.out.as_deref())?;
            println!("{}", crate::analysis::diagnose::table(&d));
            println!("wrote {}", dir.display());
            Ok(())
        }
        Command::Export(a) => {
            let id = a
                .method
                .map(|m| MethodId::new(m, a.variant.as_deref()))
                .transpose()?;
            let onnx = crate::run::onnx::OnnxOptions { opset: a.opset };
            let e = crate::run::export::export_run_as(
                &a.run_dir,
                id,
                a.out.as_deref(),
                a.format,
                onnx,
                match a.activations {
                    ActivationsFlag::Int8 => {
                        crate::run::export::ExportActivations::Int8(a.calibration)
                    }
                    ActivationsFlag::F32 => crate::run::export::ExportActivations::F32,
                },
            )?;
            println!("{e}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod arch_tests {
    use super::{Cli, Command};
    use clap::Parser;
    use fq_models::Arch;

    /// `--arch` takes the names and aliases it always took; an unknown name is refused with the
    /// known ones listed, instead of silently training a ResNet.
    #[test]
    fn arch_names_parse_and_unknown_ones_are_errors() {
        let demo = |arch: &str| Cli::try_parse_from(["fq-compress", "demo", "--arch", arch]);
        for (name, arch) in [
            ("resnet18", Arch::ResNet18),
            ("resnet50", Arch::ResNet50),
            ("deit-tiny", Arch::DeitTiny),
            ("tinyvit-5m", Arch::TinyVit5m),
            ("tiny_vit_5m_224", Arch::TinyVit5m),
        ] {
            match demo(name).unwrap().command {
                Command::Demo(a) => assert_eq!(a.arch, arch, "{name}"),
                _ => panic!("demo expected"),
            }
        }
        let err = demo("vgg16").unwrap_err().to_string();
        assert!(err.contains("unknown architecture `vgg16`"), "{err}");
        assert!(err.contains("resnet50"), "{err}");
    }
}

/// The value parser of an option enum from a stage below this module. Those stages know no clap:
/// their enums list their variants (`strum::EnumIter`), name them in kebab case
/// (`strum::IntoStaticStr`) and keep their doc comments (`strum::EnumMessage`); this turns that
/// into clap's possible values with the same help a `clap::ValueEnum` derive would print (the
/// first paragraph of the doc comment, lines joined, without its final period).
#[derive(Clone)]
struct Choice<T>(std::marker::PhantomData<T>);

fn choice<T>() -> Choice<T> {
    Choice(std::marker::PhantomData)
}

impl<T> Choice<T>
where
    T: IntoEnumIterator + strum::EnumMessage + Into<&'static str> + Copy,
{
    fn possible(&self) -> impl Iterator<Item = clap::builder::PossibleValue> {
        T::iter().map(|v| {
            let value = clap::builder::PossibleValue::new(v.into());
            match v.get_documentation().map(summary) {
                Some(help) if !help.is_empty() => value.help(help),
                _ => value,
            }
        })
    }
}

/// A doc comment as clap's derive shows it in a list of values.
fn summary(doc: &str) -> String {
    let first: Vec<&str> = doc
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let mut s = first.join(" ");
    if s.ends_with('.') && !s.ends_with("..") {
        s.pop();
    }
    s
}

impl<T> clap::builder::TypedValueParser for Choice<T>
where
    T: IntoEnumIterator + strum::EnumMessage + Into<&'static str> + Copy + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        // clap's own parser, so a wrong value gets clap's message listing the possible ones.
        let name =
            clap::builder::PossibleValuesParser::new(self.possible()).parse_ref(cmd, arg, value)?;
        T::iter()
            .find(|v| Into::<&'static str>::into(*v) == name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidValue).with_cmd(cmd))
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(self.possible()))
    }
}
