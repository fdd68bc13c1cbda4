//! Decoded images in memory and the batches the trainer feeds candle.
//!
//! Images are kept as resized u8 RGB (the small embedded default fits easily; a full-size dataset
//! at 224x224 needs ~150 KB per image) and augmented then normalised per batch, with the runtime's
//! preprocessing so training and deployment cannot disagree.

use crate::data::augment::{augment, AugmentConfig};
use crate::support::seed;
use anyhow::Result;
use candle_core::{Device, Tensor};
use fq_runtime::preprocess::{to_chw, PreprocessConfig};
use image::RgbImage;
use rayon::prelude::*;

/// A labelled, grouped image set (one split of a dataset).
#[derive(Clone)]
pub struct ImageSet {
    pub ids: Vec<String>,
    pub images: Vec<RgbImage>,
    pub labels: Vec<usize>,
    pub groups: Vec<usize>,
    pub num_classes: usize,
    pub num_groups: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> ImageSet {
        ImageSet {
            ids: idx.iter().map(|&i| self.ids[i].clone()).collect(),
            images: idx.iter().map(|&i| self.images[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            groups: idx.iter().map(|&i| self.groups[i]).collect(),
            num_classes: self.num_classes,
            num_groups: self.num_groups,
        }
    }

    /// Number of samples per group.
    pub fn group_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_groups];
        for &g in &self.groups {
            c[g] += 1;
        }
        c
    }
}

/// How a batch is built: augmentation (training) needs the seed and epoch of its random stream.
pub struct BatchSpec<'a> {
    pub preprocess: &'a PreprocessConfig,
    pub augment: Option<(&'a AugmentConfig, u64 /*seed*/, u64 /*epoch*/)>,
}

/// Images `[N, 3, H, W]` (normalised) and labels `[N]` (u32) for the samples at `idx`.
/// Each sample's augmentation stream depends on (seed, epoch, sample index) only.
pub fn batch(
    set: &ImageSet,
    idx: &[usize],
    spec: &BatchSpec,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let (h, w) = (
        spec.preprocess.height as usize,
        spec.preprocess.width as usize,
    );
    let chw: Vec<Vec<f32>> = idx
        .par_iter()
        .map(|&i| match spec.augment {
            Some((cfg, s, epoch)) => {
                let mut rng = seed::rng(s, &[seed::tag::AUGMENT, epoch, i as u64]);
                to_chw(&augment(&set.images[i], cfg, &mut rng), spec.preprocess)
            }
            None => to_chw(&set.images[i], spec.preprocess),
        })
        .collect();
    let x = Tensor::from_vec(chw.concat(), (idx.len(), 3, h, w), device)?;
    let y: Vec<u32> = idx.iter().map(|&i| set.labels[i] as u32).collect();
    let y = Tensor::from_vec(y, idx.len(), device)?;
    Ok((x, y))
}
