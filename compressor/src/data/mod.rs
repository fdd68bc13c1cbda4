//! Stage 1, data: the images of a split in memory and their batches, augmentation (flips,
//! rotation, AutoAugment), the group-balanced sampler and the synthetic dataset.

pub mod augment;
pub mod autoaugment;
pub mod geometry;
pub mod image_set;
pub mod sampler;
pub mod synth;
