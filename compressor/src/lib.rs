//! FairQuant compressor: fairness-aware mixed-precision quantization of medical image classifiers.

pub mod allocate;
pub mod augment;
pub mod baq;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod evaluate;
pub mod export;
pub mod fairquant;
pub mod importance;
pub mod importance_plot;
pub mod io;
pub mod loss;
pub mod methods;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
pub mod pipeline;
pub mod quant;
pub mod report;
pub mod seed;
pub mod synth;
pub mod train;
