//! This crate's integration tests, linked into one binary (ripgrep's `tests/tests.rs` pattern):
//! each test file below is a module, so candle and wgpu are linked once per crate, not once per file.
//! Run one file's tests with `cargo test --release -p <crate> --test suite <module>::`.

mod common;

mod ops_conv;
mod ops_norm_quant;
mod reference_autoaugment;
mod reference_diagnostics;
mod reference_fairquant;
mod reference_quantizer;
mod reference_resnet;
mod reference_transformer;
mod resume;
mod stages;
mod sweep_cells;
mod synth;
mod zoo_learns;
