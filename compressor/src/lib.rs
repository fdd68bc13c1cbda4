//! FairQuant compressor: fairness-aware mixed-precision quantization of medical image classifiers.
//!
//! The modules are the pipeline's stages, in order; each one imports only from the ones above it
//! (`tests/stages.rs` fails on an import from a later stage):
//!
//! 1. [`support`]: stage-free utilities (atomic files, progress bars, seeds, run locks, device).
//! 2. [`data`]: images in memory, augmentation, AutoAugment, the group-balanced sampler, the
//!    synthetic dataset.
//! 3. [`nn`]: the model interpreter, its ops and parameters, the optimizer, the losses, the
//!    quantizer, and the [`nn::transform::WeightTransform`] trait through which methods change
//!    the weights a forward pass sees.
//! 4. [`train`]: the training loop, its checkpoints, evaluation.
//! 5. [`methods`]: the compression methods (importance, allocation, QAT, BAQ, FairGRAPE,
//!    FairQuantize), their configurations and the per-method runner.
//! 6. [`run`]: a run directory (its configuration, its file names, the FP32 model, the report,
//!    the export, the model card) and the demo.
//! 7. [`analysis`]: diagnostics, the precision sweep, the Slurm sweep and their plots.
//! 8. [`cli`]: the command line, the only module that knows clap: the argument structs and the
//!    dispatch. The stages below take plain configuration structs; their option enums list, name
//!    and document their variants with strum, and `cli` turns that into clap's possible values
//!    (so each option's help stays beside its type). `tests/stages.rs` fails if clap appears
//!    anywhere else.

pub mod support;

pub mod data;

pub mod nn;

pub mod train;

pub mod methods;

pub mod run;

pub mod analysis;

pub mod cli;
