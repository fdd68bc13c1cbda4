//! The FairQuant methods end to end on an open run: calibrate (once per run, cached), allocate,
//! then quantization-aware training with fixed bits (FQ-QAT, spec §5.3) or learnable bits
//! (FQ-BAQ, spec §4). Each method leaves `weights.safetensors`, `bits.json`, `allocation.json`,
//! `config.toml` and `history.json` in `RUN_DIR/methods/<method>/`.

use crate::methods::allocate::{allocate, Allocation, AllocationConfig};
use crate::methods::baq::{BaqConfig, BaqParams};
use crate::methods::fairgrape::{FairgrapeConfig, FairgrapeStyle};
use crate::methods::importance::{calibrate, scope_scores, GroupImportance, ImportanceConfig};
use crate::methods::{method_dir, Method, MethodId};
use crate::nn::model::{Model, Quant};
use crate::nn::params::ParamStore;
use crate::nn::quant::BitAssignment;
use crate::run::run_dir::Run;
use crate::train::{train, TrainConfig, TrainIo};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Named settings bundles (`--preset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
            crate::methods::fairquantize::apply(&mut c);
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

    /// The defaults for a run: the spec's when it fine-tunes pretrained weights, the embedded
    /// default's when it trained from scratch.
    pub fn for_run(method: Method, run: &crate::run::config::RunConfig) -> Self {
        match run.model.weights {
            None => Self::embedded(method, &run.train),
            Some(_) => Self::spec(method, &run.train),
        }
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

/// What the calibration pass leaves for every method of the run.
pub(crate) struct Calibrated {
    /// The FP32 weights with batch-norm statistics moved by the train-mode calibration passes.
    pub model: Model,
    /// Reduced scope scores, per layer.
    pub scores: Vec<Vec<f32>>,
    /// The cache directory (`maps.safetensors`: the per-group maps).
    pub dir: PathBuf,
}

/// Calibrate once per (run, importance settings): `RUN_DIR/importance/` keeps the group maps, the
/// calibrated model and the settings used; a later method with the same settings reuses them.
pub(crate) fn calibrated(run: &Run, fp32: &Model, cfg: &CompressConfig) -> Result<Calibrated> {
    let layers = run.graph.quant_layers()?;
    let key = serde_json::json!({
        "importance": cfg.importance,
        "seed": cfg.finetune.seed,
        "batch_size": cfg.finetune.batch_size,
        "augment": cfg.finetune.augment,
    });
    let root = run.dir.join("importance");
    std::fs::create_dir_all(&root).with_context(|| format!("{}: cannot create", root.display()))?;
    let dir = cache_dir(&root, &key)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    // Sweep cells running at once (`sweep --cell`) share this cache: one calibrates a setting,
    // the others wait here and then read what it wrote.
    let _lock = crate::support::run_lock::WaitLock::acquire(&dir.join(".lock"))?;
    let key_path = dir.join("settings.json");
    let model_path = dir.join("calibrated.safetensors");
    let scores_path = dir.join("scores.json");
    let cached = std::fs::read_to_string(&key_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|k| k == key)
        && model_path.exists()
        && scores_path.exists();
    if cached {
        let params = ParamStore::load_safetensors(&run.graph, &model_path, 0, &run.device, false)?;
        let text = std::fs::read_to_string(&scores_path)?;
        let saved: ScoresFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: unreadable", scores_path.display()))?;
        return Ok(Calibrated {
            model: Model::new(run.graph.clone(), params, run.device.clone()),
            scores: saved.reduced,
            dir,
        });
    }
    let model = Model::new(
        run.graph.clone(),
        fp32.params.duplicate()?,
        run.device.clone(),
    );
    let imp = calibrate(
        &model,
        &run.train,
        &layers,
        &cfg.importance,
        &cfg.finetune,
        &run.preprocess,
        run.progress,
    )?;
    let reduced = scope_scores(&imp.reduce(&cfg.importance)?, &layers, run.cfg.granularity)?;
    // Per-group scores (each group's own map, no reduction) for the heat map and diagnostics.
    let per_group = (0..imp.maps.len())
        .map(|g| scope_scores(&imp.maps[g], &layers, run.cfg.granularity))
        .collect::<Result<Vec<_>>>()?;
    imp.save(&dir.join("maps.safetensors"))?;
    model.params.save(&model_path)?;
    let file = ScoresFile {
        layers: imp.layers.clone(),
        groups: run.dataset.groups.clone(),
        group_samples: imp.samples.clone(),
        reducer: cfg.importance.reducer,
        reduced: reduced.clone(),
        per_group,
    };
    fq_runtime::atomic::write_json_atomic(&scores_path, &file)?;
    crate::methods::importance_plot::heatmap_png(&file, &dir.join("heatmap.png"))?;
    fq_runtime::atomic::write_json_atomic(&key_path, &key)?;
    Ok(Calibrated {
        model,
        scores: reduced,
        dir,
    })
}

/// Where the calibration for `key` is cached: `root` itself for the run's first settings (so
/// `importance/heatmap.png` is where a user looks), `root/k<hash>/` for other settings (other
/// seeds in a sweep), so that methods with different settings never evict each other's cache.
fn cache_dir(root: &Path, key: &serde_json::Value) -> Result<PathBuf> {
    if &root_owner(root, key)? == key {
        return Ok(root.to_path_buf());
    }
    // FNV-1a: stable across builds, unlike std's hasher.
    let h = key
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    Ok(root.join(format!("k{h:016x}")))
}

/// The settings that own the cache root: those named by `root/claim.json`, else (a run cached
/// before claims existed) by `root/settings.json`, else `key`, which claims the root now. The
/// claim is a hard link of a finished temporary file, which fails when `claim.json` exists (also
/// on NFS): two sweep cells calibrating different settings at once never both take the root and
/// mix their files, which a check of `settings.json` (written last) could not prevent.
fn root_owner(root: &Path, key: &serde_json::Value) -> Result<serde_json::Value> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    };
    let claim = root.join("claim.json");
    if let Some(k) = read(&claim).or_else(|| read(&root.join("settings.json"))) {
        return Ok(k);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = root.join(format!(".claim.{}.{nanos}", std::process::id()));
    fq_runtime::atomic::write_json_atomic(&tmp, key)?;
    let linked = std::fs::hard_link(&tmp, &claim);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&claim).with_context(|| format!("{}: unreadable cache claim", claim.display()))
        }
        Err(e) => Err(e).with_context(|| format!("{}: cannot claim", claim.display())),
    }
}

/// `importance/scores.json`: scope scores per layer, reduced and per group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoresFile {
    pub layers: Vec<String>,
    pub groups: Vec<String>,
    pub group_samples: Vec<usize>,
    pub reducer: crate::methods::importance::Reducer,
    pub reduced: Vec<Vec<f32>>,
    pub per_group: Vec<Vec<Vec<f32>>>,
}

/// Read a saved assignment: a `bits.json` ([`BitAssignment`]) or an `allocation.json`.
pub fn load_allocation(path: &Path) -> Result<BitAssignment> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if let Ok(a) = serde_json::from_str::<Allocation>(&text) {
        return Ok(a.bits);
    }
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: neither a bit assignment nor an allocation file",
            path.display()
        )
    })
}

/// The controls for FairQuant's extra training (QAT-U4, FP32-FT): FQ-QAT's fine-tuning without
/// the importance allocation and the fairness loss, so that a table shows what FairQuant adds
/// beyond the epochs.
pub fn is_control(method: Method) -> bool {
    matches!(method, Method::QatU4 | Method::Fp32Ft)
}

/// Run FQ-QAT, FQ-BAQ, FairGRAPE, FairQuantize or a training control (QAT-U4, FP32-FT) on `run` from its FP32
/// model; a finished method is left as it is.
///
/// The controls start where FQ-QAT starts, from the calibrated model (the FP32 weights with the
/// batch-norm statistics the train-mode calibration passes moved; the calibration is cached, so
/// beside FQ-QAT it costs nothing), and train with the same `cfg.finetune` through the same loop:
/// same epochs, rate, AdamW settings, constant schedule, clipping, batch size, seed and hence
/// batch order and augmentation draws. QAT-U4 quantizes every scope to 4 bits with the spec §1
/// quantizer and STE; FP32-FT does not quantize.
pub fn compress(
    run: &Run,
    fp32: &Model,
    id: &MethodId,
    cfg: &CompressConfig,
    resume: bool,
) -> Result<()> {
    let method = id.method;
    if !method.is_trained() {
        bail!("{} has nothing to train", method.label());
    }
    if is_control(method) && cfg.allocation_file.is_some() {
        bail!(
            "{}: a training control has no importance allocation; --allocation does not apply",
            method.label()
        );
    }
    let dir = method_dir(&run.dir, id.clone());
    let (weights, bits_path) = (dir.join("weights.safetensors"), dir.join("bits.json"));
    if crate::methods::finished(&dir, method) {
        return Ok(());
    }
    let fairgrape = (method == Method::Fairgrape).then_some(cfg.fairgrape.style);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let cfg_path = dir.join("config.toml");
    let checkpoint = dir.join("checkpoint.safetensors");
    if resume && checkpoint.exists() && cfg_path.exists() {
        let saved = CompressConfig::load(&cfg_path)?;
        if &saved != cfg {
            bail!(
                "{}: the checkpoint was made with other settings; remove {} to start over",
                cfg_path.display(),
                dir.display()
            );
        }
    }
    cfg.save(&cfg_path)?;
    let layers = run.graph.quant_layers()?;
    let baseline = fairgrape.is_some() || method == Method::Fairquantize;
    let (cal, scores, maps) = if baseline {
        // The per-group maps do not depend on the reducer: reuse the FairQuant methods'
        // calibration (same key as theirs) and reduce with the baseline's reducer here
        // (FairGRAPE: `max`; FairQuantize: `subtractive`).
        let mut shared = cfg.clone();
        shared.importance = ImportanceConfig {
            calib_batches: cfg.importance.calib_batches,
            ..ImportanceConfig::default()
        };
        let cal = calibrated(run, fp32, &shared)?;
        let maps = GroupImportance::load(
            &cal.dir.join("maps.safetensors"),
            &layers,
            run.dataset.groups.len(),
        )?;
        let reduced = maps
            .reduce(&cfg.importance)
            .with_context(|| format!("{} on {}", id.label(), run.dataset.name))?;
        let scores = scope_scores(&reduced, &layers, run.cfg.granularity)?;
        (cal, scores, Some(maps))
    } else {
        let cal = calibrated(run, fp32, cfg)?;
        let scores = cal.scores.clone();
        (cal, scores, None)
    };
    let label = id.label();
    let io = TrainIo {
        preprocess: &run.preprocess,
        group_names: &run.dataset.groups,
        checkpoint: &checkpoint,
        resume,
        progress: run.progress,
        label: &label,
    };
    if let (Some(FairgrapeStyle::Prune), Some(maps)) = (fairgrape, &maps) {
        return crate::methods::fairgrape::prune_and_finetune(
            run, &cal.model, maps, cfg, &dir, &io,
        );
    }
    if is_control(method) {
        return train_control(run, cal.model, method, cfg, &dir, &io);
    }
    let alloc_path = dir.join("allocation.json");
    let start_bits = match &cfg.allocation_file {
        Some(p) => load_allocation(p)?,
        None => {
            let a = allocate(&scores, &layers, run.cfg.granularity, &cfg.allocation)?;
            fq_runtime::atomic::write_json_atomic(&alloc_path, &a)?;
            a.bits
        }
    };
    let model = cal.model;
    let (outcome, bits) = match method {
        Method::FqQat | Method::Fairgrape | Method::Fairquantize => {
            let o = train(
                &model,
                Quant::Fixed(&start_bits),
                &run.train,
                None,
                &cfg.finetune,
                &io,
            )?;
            (o, start_bits)
        }
        _ => {
            let p = BaqParams::new(
                &layers,
                run.cfg.granularity,
                Some(&start_bits),
                cfg.baq.clone(),
                &run.device,
            )?;
            // The fixed-bit phase comes out of the fine-tuning budget, so FQ-BAQ trains exactly
            // as many epochs as FQ-QAT and the training controls (qat-u4, fp32-ft). A budget
            // that leaves no learnable-bit epoch (quick tests with `--epochs 1`) keeps one and
            // says so: BAQ without learning its bits would not be BAQ.
            let fixed = cfg.baq.final_fixed_epochs;
            let epochs = cfg.finetune.epochs;
            if fixed > 0 && fixed >= epochs {
                eprintln!(
                    "{label}: --epochs {epochs} leaves no learnable-bit epoch before the \
                     {fixed} fixed-bit epoch(s) (--final-fixed-epochs); training 1 + {fixed}"
                );
            }
            let learnable = TrainConfig {
                epochs: epochs.saturating_sub(fixed).max(1),
                ..cfg.finetune.clone()
            };
            let o = train(
                &model,
                Quant::Learnable(&p),
                &run.train,
                None,
                &learnable,
                &io,
            )?;
            let bits = p.discretize()?;
            let o = match cfg.baq.final_fixed_epochs {
                0 => o,
                k => {
                    let phase = crate::methods::baq_shipping::FixedPhase {
                        baq: &p,
                        bits: &bits,
                        train: &run.train,
                        test: &run.test,
                        finetune: &cfg.finetune,
                        dir: &dir,
                    };
                    let (fixed, gap) =
                        crate::methods::baq_shipping::fixed_phase(&model, &phase, &io, k)?;
                    fq_runtime::atomic::write_json_atomic(&dir.join("shipping_gap.json"), &gap)?;
                    println!("{}", gap.summary(&label));
                    crate::methods::baq_shipping::merge_histories(o, fixed)
                }
            };
            (o, bits)
        }
    };
    fq_runtime::atomic::write_json_atomic(&dir.join("history.json"), &outcome)?;
    model.params.save(&weights)?;
    // Written last: its presence marks the method as finished.
    fq_runtime::atomic::write_json_atomic(&bits_path, &bits)?;
    Ok(())
}

/// The body of a training control: FQ-QAT's fine-tuning of `model` (the calibrated start) with
/// uniform 4-bit weights (QAT-U4) or none (FP32-FT). FP32-FT writes no `bits.json`: its weights,
/// written last and atomically, mark it finished.
fn train_control(
    run: &Run,
    model: Model,
    method: Method,
    cfg: &CompressConfig,
    dir: &Path,
    io: &TrainIo,
) -> Result<()> {
    let layers = run.graph.quant_layers()?;
    let bits = (method == Method::QatU4)
        .then(|| BitAssignment::uniform_scoped(&layers, 4, run.cfg.granularity));
    let quant = bits.as_ref().map_or(Quant::Fp32, Quant::Fixed);
    let outcome = train(&model, quant, &run.train, None, &cfg.finetune, io)?;
    fq_runtime::atomic::write_json_atomic(&dir.join("history.json"), &outcome)?;
    model.params.save(&dir.join("weights.safetensors"))?;
    if let Some(b) = bits {
        // Written last: its presence marks the method as finished.
        fq_runtime::atomic::write_json_atomic(&dir.join("bits.json"), &b)?;
    }
    Ok(())
}

#[cfg(test)]
mod cache_claim_tests {
    use super::*;

    /// Sweep cells with different calibration settings that start at once: exactly one owns the
    /// cache root, and every one of them agrees which.
    #[test]
    fn concurrent_claims_agree_on_one_owner() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            let barrier = std::sync::Barrier::new(4);
            let owners: Vec<serde_json::Value> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|i| {
                        let (root, barrier) = (&root, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            root_owner(root, &serde_json::json!({ "seed": i })).unwrap()
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(owners.iter().all(|o| o == &owners[0]), "{owners:?}");
            let dirs: Vec<PathBuf> = (0..4)
                .map(|i| cache_dir(&root, &serde_json::json!({ "seed": i })).unwrap())
                .collect();
            assert_eq!(dirs.iter().filter(|d| **d == root).count(), 1, "{dirs:?}");
        }
    }

    /// A cache written before claims existed keeps its owner (its `settings.json`).
    #[test]
    fn an_old_cache_root_keeps_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let old = serde_json::json!({ "seed": 1 });
        fq_runtime::atomic::write_json_atomic(&dir.path().join("settings.json"), &old).unwrap();
        let new = serde_json::json!({ "seed": 2 });
        assert_eq!(cache_dir(dir.path(), &old).unwrap(), dir.path());
        assert_ne!(cache_dir(dir.path(), &new).unwrap(), dir.path());
    }
}
