//! This crate's integration tests, linked into one binary (ripgrep's `tests/tests.rs` pattern):
//! each test file below is a module, so candle and wgpu are linked once per crate, not once per file.
//! Run one file's tests with `cargo test --release -p <crate> --test suite <module>::`.

mod common;

mod backend_auto;
mod binary;
mod parity_fixture;
