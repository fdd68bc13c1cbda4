//! Datasets as lists of samples (id, image path, class index, group index), loaded from the real CSV formats
//! of Fitzpatrick17k and ISIC 2019, from UTKFace's file names or from a generic folder + CSV, plus
//! train/val/test splits (stratified, the papers' official ones, or saved).
//!
//! Loading checks that every image exists but does not decode it; decoding happens in
//! [`crate::images::load_dataset_images`], whose errors point back to the CSV row via [`Origin`].

#[cfg(feature = "cli")]
mod args;
mod builder;
mod error;
pub mod fitzpatrick17k;
pub mod folder;
mod image_index;
pub mod isic2019;
pub mod mt19937;
pub mod official_split;
mod skip;
mod source;
pub mod split;
pub mod split_method;
mod table;
pub mod utkface;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
pub use args::{DataArgs, DatasetKind, SplitArgs, SplitKind};
pub use error::DataError;
pub use image_index::ImageIndex;
pub use skip::{skip_summary, SkipReason, SkipSummary, Skipped};
pub use source::DataSource;
pub use split::{read_id_list, IdList, Split, SplitFractions, SplitName};
pub use split_method::{make_split, SplitMethod};

/// Where a sample came from, so that later errors (e.g. a corrupt image) can name the CSV row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based; the header is line 1.
    pub line: usize,
}

/// One labelled image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub id: String,
    pub image: PathBuf,
    /// Index into `Dataset::classes`.
    pub label: usize,
    /// Index into `Dataset::groups`.
    pub group: usize,
    pub origin: Origin,
}

/// A loaded dataset. `skipped` lists every source row that is not a sample, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub samples: Vec<Sample>,
    pub classes: Vec<String>,
    pub groups: Vec<String>,
    pub skipped: Vec<Skipped>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    pub fn num_groups(&self) -> usize {
        self.groups.len()
    }

    /// Class index of every sample, in sample order.
    pub fn labels(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.label).collect()
    }

    /// Group index of every sample, in sample order.
    pub fn group_ids(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.group).collect()
    }

    /// Number of samples per group (indexed like `groups`).
    pub fn group_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.groups.len()];
        for s in &self.samples {
            if let Some(n) = c.get_mut(s.group) {
                *n += 1;
            }
        }
        c
    }

    /// Number of samples per class (indexed like `classes`).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for s in &self.samples {
            if let Some(n) = c.get_mut(s.label) {
                *n += 1;
            }
        }
        c
    }

    /// Number of skipped rows per reason.
    pub fn skip_summary(&self) -> SkipSummary {
        skip_summary(&self.skipped)
    }

    /// The samples at `indices` (in that order), with the same classes and groups; out-of-range indices are
    /// ignored. `skipped` is not carried over (it describes the source files, not the subset).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            name: self.name.clone(),
            samples: indices
                .iter()
                .filter_map(|&i| self.samples.get(i).cloned())
                .collect(),
            classes: self.classes.clone(),
            groups: self.groups.clone(),
            skipped: Vec::new(),
        }
    }
}
