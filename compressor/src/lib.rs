//! FairQuant compressor: fairness-aware mixed-precision quantization of medical image classifiers.

pub mod io;
pub mod model;
pub mod params;
pub mod quant;
