//! FairQuant compressor: fairness-aware mixed-precision quantization of medical image classifiers.

pub mod io;
pub mod model;
pub mod params;
pub mod quant;
pub mod optim;
pub mod seed;
pub mod augment;
pub mod checkpoint;
pub mod data;
pub mod evaluate;
pub mod loss;
pub mod train;
pub mod cli;
pub mod config;
pub mod methods;
pub mod pipeline;
pub mod report;
pub mod synth;
