//! The run directory's file names, in one place: every stage that reads or writes a run (the
//! methods, the run itself, the analyses, the command line) asks these types for a path instead
//! of spelling the name, so a name is changed (or looked up) here only. Stage-free, because the
//! methods write under the run directory before the `run` stage exists.
//!
//! ```text
//! RUN_DIR/config.toml              RunFiles::config          the run's settings
//! RUN_DIR/split.csv                RunFiles::split           the saved train/val/test split
//! RUN_DIR/checkpoint.safetensors   RunFiles::checkpoint      the FP32 training checkpoint
//! RUN_DIR/fp32.safetensors         RunFiles::fp32            the trained FP32 model
//! RUN_DIR/report.json              RunFiles::report          every method's metrics
//! RUN_DIR/group_accuracy.png       RunFiles::group_accuracy  the report's chart
//! RUN_DIR/importance/              RunFiles::importance      the calibration cache
//! RUN_DIR/methods/<method>/        RunFiles::method          one method's files (MethodFiles)
//! ```

use std::path::{Path, PathBuf};

/// The files directly in a run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFiles {
    root: PathBuf,
}

impl RunFiles {
    pub const CONFIG: &'static str = "config.toml";
    pub const SPLIT: &'static str = "split.csv";
    pub const CHECKPOINT: &'static str = "checkpoint.safetensors";
    pub const FP32: &'static str = "fp32.safetensors";
    pub const REPORT: &'static str = "report.json";
    pub const GROUP_ACCURACY: &'static str = "group_accuracy.png";
    pub const IMPORTANCE: &'static str = "importance";
    pub const METHODS: &'static str = "methods";

    pub fn new(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> PathBuf {
        self.root.join(Self::CONFIG)
    }

    pub fn split(&self) -> PathBuf {
        self.root.join(Self::SPLIT)
    }

    /// The FP32 training's checkpoint (a method's own is [`MethodFiles::checkpoint`]).
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join(Self::CHECKPOINT)
    }

    pub fn fp32(&self) -> PathBuf {
        self.root.join(Self::FP32)
    }

    pub fn report(&self) -> PathBuf {
        self.root.join(Self::REPORT)
    }

    pub fn group_accuracy(&self) -> PathBuf {
        self.root.join(Self::GROUP_ACCURACY)
    }

    pub fn importance(&self) -> PathBuf {
        self.root.join(Self::IMPORTANCE)
    }

    /// The directory of the method (or method variant) named `name`.
    pub fn method(&self, name: &str) -> MethodFiles {
        MethodFiles::new(self.root.join(Self::METHODS).join(name))
    }
}

/// The files in one method's directory (`RUN_DIR/methods/<method>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodFiles {
    dir: PathBuf,
}

impl MethodFiles {
    pub const WEIGHTS: &'static str = "weights.safetensors";
    pub const BITS: &'static str = "bits.json";
    pub const PRUNE: &'static str = "prune.json";
    pub const MASK: &'static str = "mask.safetensors";
    pub const CONFIG: &'static str = "config.toml";
    pub const CHECKPOINT: &'static str = "checkpoint.safetensors";
    pub const HISTORY: &'static str = "history.json";
    pub const ALLOCATION: &'static str = "allocation.json";
    pub const SHIPPING_GAP: &'static str = "shipping_gap.json";
    pub const CHECKPOINT_FIXED: &'static str = "checkpoint-fixed.safetensors";

    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fine-tuned weights (FP32-FT: its only result, written last).
    pub fn weights(&self) -> PathBuf {
        self.dir.join(Self::WEIGHTS)
    }

    /// The bit assignment, written last: its presence marks a quantized method finished.
    pub fn bits(&self) -> PathBuf {
        self.dir.join(Self::BITS)
    }

    /// FairGRAPE's pruning summary, written last: its presence marks the pruned method finished.
    pub fn prune(&self) -> PathBuf {
        self.dir.join(Self::PRUNE)
    }

    pub fn mask(&self) -> PathBuf {
        self.dir.join(Self::MASK)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join(Self::CONFIG)
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join(Self::CHECKPOINT)
    }

    pub fn history(&self) -> PathBuf {
        self.dir.join(Self::HISTORY)
    }

    pub fn allocation(&self) -> PathBuf {
        self.dir.join(Self::ALLOCATION)
    }

    pub fn shipping_gap(&self) -> PathBuf {
        self.dir.join(Self::SHIPPING_GAP)
    }

    /// FQ-BAQ's final fixed-bit phase's own checkpoint.
    pub fn checkpoint_fixed(&self) -> PathBuf {
        self.dir.join(Self::CHECKPOINT_FIXED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are the ones runs on disk already have (renaming one would orphan old runs).
    #[test]
    fn names_match_existing_runs() {
        let r = RunFiles::new("r");
        assert_eq!(r.config(), Path::new("r/config.toml"));
        assert_eq!(r.split(), Path::new("r/split.csv"));
        assert_eq!(r.checkpoint(), Path::new("r/checkpoint.safetensors"));
        assert_eq!(r.fp32(), Path::new("r/fp32.safetensors"));
        assert_eq!(r.report(), Path::new("r/report.json"));
        assert_eq!(r.group_accuracy(), Path::new("r/group_accuracy.png"));
        assert_eq!(r.importance(), Path::new("r/importance"));
        let m = r.method("fq-qat");
        assert_eq!(m.dir(), Path::new("r/methods/fq-qat"));
        assert_eq!(
            m.weights(),
            Path::new("r/methods/fq-qat/weights.safetensors")
        );
        assert_eq!(m.bits(), Path::new("r/methods/fq-qat/bits.json"));
        assert_eq!(m.prune(), Path::new("r/methods/fq-qat/prune.json"));
        assert_eq!(m.mask(), Path::new("r/methods/fq-qat/mask.safetensors"));
        assert_eq!(m.config(), Path::new("r/methods/fq-qat/config.toml"));
        assert_eq!(
            m.checkpoint(),
            Path::new("r/methods/fq-qat/checkpoint.safetensors")
        );
        assert_eq!(m.history(), Path::new("r/methods/fq-qat/history.json"));
        assert_eq!(
            m.allocation(),
            Path::new("r/methods/fq-qat/allocation.json")
        );
        assert_eq!(
            m.shipping_gap(),
            Path::new("r/methods/fq-qat/shipping_gap.json")
        );
        assert_eq!(
            m.checkpoint_fixed(),
            Path::new("r/methods/fq-qat/checkpoint-fixed.safetensors")
        );
    }
}
