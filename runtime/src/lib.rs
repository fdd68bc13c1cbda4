//! FairQuant runtime: everything a deployed device needs, without candle.
//!
//! The compressor reuses the dataset loaders, the preprocessing and the fairness metrics from here, so that
//! training-time and inference-time behaviour cannot drift apart.

pub mod atomic;
pub mod backend;
pub mod classify;
pub mod dataset;
pub mod driver_env;
pub mod exec;
pub mod format;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod metrics;
#[cfg(feature = "plots")]
pub mod plots;
pub mod preprocess;
pub mod sections;
