//! Stage 5, run: a run directory (its configuration, the FP32 model, the methods' results), the
//! report, the export (`.fqm`, ONNX), the model card and the demo.

pub mod activations;
pub mod config;
pub mod demo;
pub mod export;
pub mod model_card;
pub mod onnx;
pub mod report;
pub mod run_dir;
