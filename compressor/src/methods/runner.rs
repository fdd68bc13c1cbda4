//! The FairQuant methods end to end on an open run: calibrate (once per run, cached), allocate,
//! then quantization-aware training with fixed bits (FQ-QAT, spec §5.3) or learnable bits
//! (FQ-BAQ, spec §4). Each method leaves `weights.safetensors`, `bits.json`, `allocation.json`,
//! `config.toml` and `history.json` in `RUN_DIR/methods/<method>/`.

use crate::methods::allocate::{allocate, Allocation};
use crate::methods::baq::BaqParams;
use crate::methods::calibrate::calibrated;
use crate::methods::config::CompressConfig;
use crate::methods::fairgrape::FairgrapeStyle;
use crate::methods::importance::{scope_scores, GroupImportance, ImportanceConfig};
use crate::methods::inputs::MethodInputs;
use crate::methods::{is_control, method_dir, Method, MethodId};
use crate::nn::model::{Model, Quant};
use crate::nn::quant::BitAssignment;
use crate::support::run_files::MethodFiles;
use crate::train::{train, TrainConfig, TrainIo};
use anyhow::{bail, Context, Result};
use std::path::Path;

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
    run: &MethodInputs,
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
    let dir = method_dir(run.dir, id.clone());
    let files = MethodFiles::new(&dir);
    let (weights, bits_path) = (files.weights(), files.bits());
    if crate::methods::finished(&dir, method) {
        return Ok(());
    }
    let fairgrape = (method == Method::Fairgrape).then_some(cfg.fairgrape.style);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let cfg_path = files.config();
    let checkpoint = files.checkpoint();
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
        let maps =
            GroupImportance::load(&cal.dir.join("maps.safetensors"), &layers, run.groups.len())?;
        let reduced = maps
            .reduce(&cfg.importance)
            .with_context(|| format!("{} on {}", id.label(), run.dataset_name))?;
        let scores = scope_scores(&reduced, &layers, run.granularity)?;
        (cal, scores, Some(maps))
    } else {
        let cal = calibrated(run, fp32, cfg)?;
        let scores = cal.scores.clone();
        (cal, scores, None)
    };
    let label = id.label();
    let io = TrainIo {
        preprocess: run.preprocess,
        group_names: run.groups,
        checkpoint: &checkpoint,
        resume,
        progress: run.progress,
        label: &label,
    };
    if let (Some(FairgrapeStyle::Prune), Some(maps)) = (fairgrape, &maps) {
        return crate::methods::fairgrape::prune_and_finetune(
            &cal.model,
            maps,
            run.train,
            &cfg.fairgrape,
            &cfg.finetune,
            &dir,
            &io,
        );
    }
    if is_control(method) {
        return train_control(run, cal.model, method, cfg, &dir, &io);
    }
    let alloc_path = files.allocation();
    let start_bits = match &cfg.allocation_file {
        Some(p) => load_allocation(p)?,
        None => {
            let a = allocate(&scores, &layers, run.granularity, &cfg.allocation)?;
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
                run.train,
                None,
                &cfg.finetune,
                &io,
            )?;
            (o, start_bits)
        }
        _ => {
            let p = BaqParams::new(
                &layers,
                run.granularity,
                Some(&start_bits),
                cfg.baq.clone(),
                run.device,
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
                Quant::Transform(&p),
                run.train,
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
                        train: run.train,
                        test: run.test,
                        finetune: &cfg.finetune,
                        dir: &dir,
                    };
                    let (fixed, gap) =
                        crate::methods::baq_shipping::fixed_phase(&model, &phase, &io, k)?;
                    fq_runtime::atomic::write_json_atomic(&files.shipping_gap(), &gap)?;
                    println!("{}", gap.summary(&label));
                    crate::methods::baq_shipping::merge_histories(o, fixed)
                }
            };
            (o, bits)
        }
    };
    fq_runtime::atomic::write_json_atomic(&files.history(), &outcome)?;
    model.params.save(&weights)?;
    // Written last: its presence marks the method as finished.
    fq_runtime::atomic::write_json_atomic(&bits_path, &bits)?;
    Ok(())
}

/// The body of a training control: FQ-QAT's fine-tuning of `model` (the calibrated start) with
/// uniform 4-bit weights (QAT-U4) or none (FP32-FT). FP32-FT writes no `bits.json`: its weights,
/// written last and atomically, mark it finished.
fn train_control(
    run: &MethodInputs,
    model: Model,
    method: Method,
    cfg: &CompressConfig,
    dir: &Path,
    io: &TrainIo,
) -> Result<()> {
    let layers = run.graph.quant_layers()?;
    let bits = (method == Method::QatU4)
        .then(|| BitAssignment::uniform_scoped(&layers, 4, run.granularity));
    let quant = bits.as_ref().map_or(Quant::Fp32, Quant::Fixed);
    let outcome = train(&model, quant, run.train, None, &cfg.finetune, io)?;
    let files = MethodFiles::new(dir);
    fq_runtime::atomic::write_json_atomic(&files.history(), &outcome)?;
    model.params.save(&files.weights())?;
    if let Some(b) = bits {
        // Written last: its presence marks the method as finished.
        fq_runtime::atomic::write_json_atomic(&files.bits(), &b)?;
    }
    Ok(())
}
