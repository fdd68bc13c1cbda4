//! A compression method's settings (`RUN_DIR/methods/<method>/config.toml`): the spec's and the
//! embedded defaults per method, and the named presets (`--preset`).

use crate::methods::allocate::AllocationConfig;
use crate::methods::baq::BaqConfig;
use crate::methods::fairgrape::{FairgrapeConfig, FairgrapeStyle};
use crate::methods::importance::ImportanceConfig;
use crate::methods::{is_control, Method};
use crate::train::TrainConfig;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Named settings bundles (`--preset`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The paper's behaviour with the spec's defaults (the default).
    Paper,
    /// The official code at HEAD, exactly: the quantized weight is detached (bits stay at the
    /// warm start) and the regularizer anchors to the warm start.
    OfficialCode,
    /// FairGRAPE as the official run script runs it: FQ-QAT with the `max` reducer, no fairness
    /// loss, palette {2,4,8} @ {0.2,0.4,0.4} (spec §5.4), instead of the table's pruning.
    FairgrapeScript,
}

/// Every value a FairQuant method uses (written to its `config.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompressConfig {
    pub importance: ImportanceConfig,
    pub allocation: AllocationConfig,
    /// Reuse a saved bit assignment (`bits.json` or `allocation.json`) instead of calibrating.
    pub allocation_file: Option<PathBuf>,
    /// Quantized fine-tuning (QAT and BAQ's weights).
    pub finetune: TrainConfig,
    pub baq: BaqConfig,
    /// FairGRAPE's form and pruning ratio (used by `--method fairgrape` only).
    #[serde(default)]
    pub fairgrape: FairgrapeConfig,
}

impl CompressConfig {
    /// The spec's defaults for `method` (§4, §5.3): 10 constant-rate epochs at 3e-5, clip 1.0,
    /// fairness weight 0.5; the fine-tuning seed and augmentation are the run's.
    pub fn spec(method: Method, run_train: &TrainConfig) -> Self {
        let allocation = match method {
            Method::FqBaq => AllocationConfig::fq_baq(),
            _ => AllocationConfig::fq_qat(),
        };
        let mut c = Self {
            importance: ImportanceConfig::default(),
            allocation,
            allocation_file: None,
            finetune: TrainConfig {
                epochs: 10,
                batch_size: run_train.batch_size,
                lr: 3e-5,
                lr_step: None,
                lr_gamma: 1.0,
                weight_decay: 0.01,
                grad_clip: Some(1.0),
                lambda_fair: 0.5,
                patience: None,
                seed: run_train.seed,
                augment: run_train.augment.clone(),
                sampler: Default::default(),
                group_weights: Default::default(),
            },
            baq: BaqConfig::default(),
            fairgrape: FairgrapeConfig::default(),
        };
        if method == Method::Fairgrape {
            // FairGRAPE: max over groups without normalisation, no fairness loss (spec §5.4).
            c.importance.reducer = crate::methods::importance::Reducer::Max;
            c.finetune.lambda_fair = 0.0;
        }
        if method == Method::Fairquantize {
            crate::methods::fairquantize::apply(
                &mut c.importance,
                &mut c.allocation,
                &mut c.finetune,
            );
        }
        if is_control(method) {
            // The training controls keep FQ-QAT's whole fine-tuning budget (this `finetune`, the
            // calibrated start model) and drop only what FairQuant adds: the fairness loss here,
            // the importance allocation in `compress`.
            c.finetune.lambda_fair = 0.0;
        }
        c
    }

    /// The embedded default: the FP32 model is trained from scratch at 10x the spec's rate, so
    /// the fine-tuning rates are 10x the spec's too (weights 3e-4, bit logits 3e-2), over fewer
    /// epochs and calibration batches so that the demo stays within minutes on 2 cores.
    pub fn embedded(method: Method, run_train: &TrainConfig) -> Self {
        let mut c = Self::spec(method, run_train);
        c.importance.calib_batches = 8;
        // Every method, FairGRAPE included, gets the same fine-tuning budget.
        c.finetune.epochs = 2;
        c.finetune.lr = 3e-4;
        c.baq.logit_lr = 3e-2;
        c
    }

    /// Apply a named bundle of settings.
    pub fn apply_preset(&mut self, preset: Preset) {
        match preset {
            Preset::Paper => {}
            Preset::OfficialCode => {
                self.baq.gradient = crate::methods::baq::BaqGradient::Detached;
                self.baq.regularizer = crate::methods::baq::BitRegularizer::Anchor;
            }
            Preset::FairgrapeScript => {
                self.fairgrape.style = FairgrapeStyle::Script;
                self.importance.reducer = crate::methods::importance::Reducer::Max;
                self.finetune.lambda_fair = 0.0;
                self.allocation = AllocationConfig::fq_qat();
            }
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::support::io::save_toml(self, path)
    }

    pub fn load(path: &Path) -> Result<Self> {
        crate::support::io::load_toml(path, "compression configuration")
    }
}
