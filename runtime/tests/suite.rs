//! This crate's integration tests, linked into one binary (ripgrep's `tests/tests.rs` pattern):
//! each test file below is a module, so candle and wgpu are linked once per crate, not once per file.
//! Run one file's tests with `cargo test --release -p <crate> --test suite <module>::`.

#[cfg(feature = "wgpu")]
mod gpu_common;
mod packed;

mod classify;
mod executor;
mod gelu_fusion;
mod gpu_kernels;
mod gpu_layout;
mod gpu_model;
mod gpu_shaders;
mod gpu_tokens;
mod metrics_fairlearn;
mod model_file;
mod preprocess;
