//! The data a method takes from its run, so that `methods` need not know the run directory type
//! (`run::run_dir::Run` lends it with `method_inputs`).

use crate::data::image_set::ImageSet;
use crate::nn::quant::Granularity;
use candle_core::Device;
use fq_models::Graph;
use fq_runtime::preprocess::PreprocessConfig;
use std::path::Path;

/// What a method needs from its run, and nothing else: where it writes, the architecture, the
/// data, and how to report. `run::run_dir::Run::method_inputs` lends it from an open run.
pub struct MethodInputs<'a> {
    /// The run directory (methods write under `methods/<method>/`, the calibration under
    /// `importance/`).
    pub dir: &'a Path,
    pub graph: &'a Graph,
    pub device: &'a Device,
    pub train: &'a ImageSet,
    pub test: &'a ImageSet,
    pub preprocess: &'a PreprocessConfig,
    /// The dataset's group names, in group-index order.
    pub groups: &'a [String],
    /// The dataset's name (for error messages).
    pub dataset_name: &'a str,
    pub granularity: Granularity,
    pub progress: bool,
}
