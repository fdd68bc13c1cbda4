//! This crate's integration tests, linked into one binary (ripgrep's `tests/tests.rs` pattern):
//! each test file below is a module, so candle and wgpu are linked once per crate, not once per file.
//! Run one file's tests with `cargo test --release -p <crate> --test suite <module>::`.

mod common;

mod apps_e2e;
mod cli_datasets;
mod demo_export;
mod diagnose_fairgrape;
mod gpu_demo;
mod gpu_zoo;
mod int8_reference;
mod onnx_export;
mod packed_parity;
mod sweep;
mod zoo_parity;
mod zoo_pipeline;
