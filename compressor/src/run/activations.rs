//! 8-bit activations for the exported model. The run's calibration images fix each integer
//! layer's input scale, chosen either as they come (`plain`) or the same number from every
//! patient group (`group-balanced`, so that a minority group's activation range is not clipped
//! by the majority's); then the packed model is evaluated by the runtime's own executor on the
//! integer path. The report, the model card and the file's test metrics therefore describe what
//! a device computes, not a float model standing in for it.

use crate::data::image_set::ImageSet;
use crate::methods::MethodId;
use crate::support::seed;
use anyhow::{Context, Result};
use fq_eval::metrics::FairnessMetrics;
use fq_runtime::exec::{Activations, Executor};
use fq_runtime::format::{ActivationScales, PackedModel};
use fq_runtime::metrics::argmax_rows;
use fq_runtime::preprocess::{to_chw, PreprocessConfig};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Calibration images drawn from the training split (fewer if it is smaller).
pub const CALIBRATION_IMAGES: usize = 128;

/// How the calibration images are drawn from the training split.
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
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Calibration {
    /// A seeded random sample of the training split: the groups in their own proportions.
    Plain,
    /// The same number of images from every patient group.
    GroupBalanced,
}

impl Calibration {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Which calibration `export` stores.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
pub enum CalibrationChoice {
    /// Both are evaluated; the one with the better worst-group accuracy on the validation split
    /// is stored (ties: group-balanced).
    #[default]
    Auto,
    /// Plain calibration (still evaluated beside group-balanced).
    Plain,
    /// Group-balanced calibration (still evaluated beside plain).
    GroupBalanced,
}

/// One activation setting of an exported method, evaluated by fq-runtime on the test split.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivationResult {
    pub method: crate::methods::Method,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `None`: f32 activations (the same packed weights, the reference); else 8-bit activations
    /// with scales from this calibration.
    pub calibration: Option<Calibration>,
    /// Calibration images used (0 for f32).
    pub images: usize,
    /// Worst-group accuracy on the validation split (what `auto` chooses by), if there is one.
    pub val_worst_acc: Option<f64>,
    /// Test-split metrics, computed by the runtime's executor.
    pub metrics: FairnessMetrics,
    /// Whether the exported file carries this setting.
    pub deployed: bool,
}

impl ActivationResult {
    pub fn id(&self) -> MethodId {
        MethodId {
            method: self.method,
            variant: self.variant.clone(),
        }
    }

    /// `FQ-QAT, A8 group-balanced (deployed)`: the row label of the report's table and chart.
    pub fn label(&self) -> String {
        let a = match self.calibration {
            None => "A f32 (fq-runtime)".to_string(),
            Some(c) => format!("A8 {}", c.name()),
        };
        let deployed = if self.deployed { " (deployed)" } else { "" };
        format!("{}, {a}{deployed}", self.id().label())
    }
}

/// What [`study`] found: every row, and the scales and test metrics of the deployed setting.
pub struct ActivationStudy {
    pub rows: Vec<ActivationResult>,
    pub scales: ActivationScales,
    pub metrics: FairnessMetrics,
}

/// Indices into `train` of the calibration images: `n` of a seeded shuffle (`Plain`), or the
/// same number from every group that has images, `n` shared out and capped by the smallest
/// group (`GroupBalanced`).
pub fn calibration_indices(train: &ImageSet, how: Calibration, n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut seed::rng(seed, &[seed::tag::ACTIVATIONS]));
    match how {
        Calibration::Plain => {
            order.truncate(n);
            order
        }
        Calibration::GroupBalanced => {
            let counts = train.group_counts();
            let present = counts.iter().filter(|&&c| c > 0).count().max(1);
            let smallest = counts.iter().copied().filter(|&c| c > 0).min().unwrap_or(0);
            let per = (n / present).max(1).min(smallest);
            let mut taken = vec![0usize; train.num_groups];
            order
                .into_iter()
                .filter(|&i| {
                    let g = train.groups[i];
                    taken[g] += 1;
                    taken[g] <= per
                })
                .collect()
        }
    }
}

/// Preprocessed CHW tensors of `idx` of `set`.
fn tensors(set: &ImageSet, idx: &[usize], pre: &PreprocessConfig) -> Vec<Vec<f32>> {
    idx.iter().map(|&i| to_chw(&set.images[i], pre)).collect()
}

/// The executor's predictions on `set` (images in parallel, a chunk at a time).
fn predict(exec: &Executor, set: &ImageSet, pre: &PreprocessConfig) -> Result<Vec<usize>> {
    let classes = exec.output_len();
    let mut out = Vec::with_capacity(set.len());
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(64) {
        let x: Vec<f32> = tensors(set, chunk, pre).concat();
        let logits = exec.run_batch(&x, chunk.len())?;
        out.extend(argmax_rows(&logits, classes));
    }
    Ok(out)
}

/// Per-group metrics of the executor on `set`; `None` for an empty set.
fn metrics(
    exec: &Executor,
    set: &ImageSet,
    pre: &PreprocessConfig,
    groups: &[String],
) -> Result<Option<FairnessMetrics>> {
    if set.is_empty() {
        return Ok(None);
    }
    let pred = predict(exec, set, pre)?;
    Ok(Some(FairnessMetrics::compute(
        &set.labels,
        &pred,
        &set.groups,
        set.num_classes,
        groups,
    )?))
}

/// What [`study`] reads of a run (an open `run_dir::Run` provides each).
pub struct StudyData<'a> {
    pub train: &'a ImageSet,
    pub val: &'a ImageSet,
    pub test: &'a ImageSet,
    pub preprocess: &'a PreprocessConfig,
    pub groups: &'a [String],
    /// The run's seed: the calibration samples derive from it.
    pub seed: u64,
}

/// Evaluates `model` (the packed model `export` writes) with f32 activations and with 8-bit
/// activations under both calibrations, on the run's validation and test splits, through the
/// runtime's executor; picks the calibration `choice` says.
pub fn study(
    run: &StudyData,
    model: &PackedModel,
    id: &MethodId,
    choice: CalibrationChoice,
) -> Result<ActivationStudy> {
    let groups = run.groups;
    let mut exec = Executor::from_model(&mut model.clone())
        .context("the packed model does not compile for the runtime")?;
    let test = |exec: &Executor| -> Result<FairnessMetrics> {
        metrics(exec, run.test, run.preprocess, groups)?
            .context("the run's test split is empty: nothing to evaluate 8-bit activations on")
    };
    let row = |calibration, images, val: Option<FairnessMetrics>, metrics| ActivationResult {
        method: id.method,
        variant: id.variant.clone(),
        calibration,
        images,
        val_worst_acc: val.map(|m| m.worst_acc),
        metrics,
        deployed: false,
    };
    let mut rows = vec![row(
        None,
        0,
        metrics(&exec, run.val, run.preprocess, groups)?,
        test(&exec)?,
    )];
    let mut scales = Vec::new();
    for how in [Calibration::Plain, Calibration::GroupBalanced] {
        let idx = calibration_indices(run.train, how, CALIBRATION_IMAGES, run.seed);
        let images = tensors(run.train, &idx, run.preprocess);
        let s = exec.calibrate(images.iter().map(Vec::as_slice))?;
        exec.set_activation_scales(s.clone());
        debug_assert_eq!(exec.activations(), Activations::Int8Static);
        let val = metrics(&exec, run.val, run.preprocess, groups)?;
        rows.push(row(Some(how), idx.len(), val, test(&exec)?));
        scales.push((how, idx.len(), s));
    }
    let pick = match choice {
        CalibrationChoice::Plain => 1,
        CalibrationChoice::GroupBalanced => 2,
        CalibrationChoice::Auto => {
            let val = |r: &ActivationResult| r.val_worst_acc.unwrap_or(f64::NEG_INFINITY);
            if val(&rows[1]) > val(&rows[2]) {
                1
            } else {
                2
            }
        }
    };
    rows[pick].deployed = true;
    let (how, images, input_scales) = scales.swap_remove(pick - 1);
    Ok(ActivationStudy {
        metrics: rows[pick].metrics.clone(),
        rows,
        scales: ActivationScales {
            calibration: how.name().to_string(),
            images: images as u32,
            input_scales,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(groups: &[usize]) -> ImageSet {
        ImageSet {
            ids: (0..groups.len()).map(|i| i.to_string()).collect(),
            images: vec![image::RgbImage::new(1, 1); groups.len()],
            labels: vec![0; groups.len()],
            groups: groups.to_vec(),
            num_classes: 1,
            num_groups: 3,
        }
    }

    #[test]
    fn group_balanced_calibration_takes_the_same_number_from_every_group() {
        // 90 images of group 0, 10 of group 1, none of group 2.
        let groups: Vec<usize> = (0..100).map(|i| usize::from(i % 10 == 0)).collect();
        let train = set(&groups);
        let count = |idx: &[usize], g| idx.iter().filter(|&&i| groups[i] == g).count();
        let plain = calibration_indices(&train, Calibration::Plain, 40, 3);
        assert_eq!(plain.len(), 40);
        assert!(count(&plain, 0) > count(&plain, 1));
        // 40 shared by the 2 groups with images is 20 each, capped by group 1's 10.
        let balanced = calibration_indices(&train, Calibration::GroupBalanced, 40, 3);
        assert_eq!((count(&balanced, 0), count(&balanced, 1)), (10, 10));
        let fewer = calibration_indices(&train, Calibration::GroupBalanced, 8, 3);
        assert_eq!((count(&fewer, 0), count(&fewer, 1)), (4, 4));
        // Deterministic for a seed, different for another.
        assert_eq!(
            plain,
            calibration_indices(&train, Calibration::Plain, 40, 3)
        );
        assert_ne!(
            plain,
            calibration_indices(&train, Calibration::Plain, 40, 4)
        );
    }
}
