//! Which device candle computes on: `--device cpu|cuda|auto`.
//!
//! `auto` (the default) is the behaviour the compressor always had: CUDA when the binary was built
//! with the `cuda` feature and a GPU answers, else the CPU. `cuda` is a promise the user wants
//! kept, so it fails loudly (no feature, or no GPU) instead of silently training on a 2-core CPU
//! for days. The choice is made once per process and kept here, so every command path (demo,
//! sweep cells, diagnose) computes on the same device, and all tensors share one CUDA context:
//! candle refuses to mix tensors of two `Device::new_cuda(0)` calls.

use anyhow::{bail, Result};
use candle_core::Device;
use std::sync::OnceLock;

/// The `--device` option.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumMessage,
)]
#[strum(serialize_all = "kebab-case")]
pub enum DeviceChoice {
    /// CUDA if built with the `cuda` feature and a GPU is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA GPU 0; an error without the `cuda` feature or without a GPU.
    Cuda,
}

static CHOSEN: OnceLock<Device> = OnceLock::new();

/// The device for `choice`, or a clear error when `cuda` cannot be had.
pub fn select(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(cuda().unwrap_or(Device::Cpu)),
        DeviceChoice::Cuda => {
            if !cfg!(feature = "cuda") {
                bail!(
                    "--device cuda: this fq-compress was built without CUDA support; rebuild it with \
                     `cargo build --release -p fq-compress --features cuda` (scripts/cuda-toolchain.sh \
                     installs the toolkit), or pass --device cpu"
                );
            }
            match Device::new_cuda(0) {
                Ok(d) => Ok(d),
                Err(e) => {
                    bail!("--device cuda: no usable CUDA GPU 0 ({e}); pass --device cpu or auto")
                }
            }
        }
    }
}

/// CUDA GPU 0 when the build has the feature and the driver finds a GPU.
fn cuda() -> Option<Device> {
    if cfg!(feature = "cuda") {
        Device::new_cuda(0).ok()
    } else {
        None
    }
}

/// Make `choice` this process's device (the first call wins; the CLI calls it once, before any
/// work) and return it.
pub fn configure(choice: DeviceChoice) -> Result<Device> {
    if let Some(d) = CHOSEN.get() {
        return Ok(d.clone());
    }
    let d = select(choice)?;
    Ok(CHOSEN.get_or_init(|| d).clone())
}

/// The process's device: the configured one, else `auto`'s.
pub fn current() -> Device {
    CHOSEN.get_or_init(|| cuda().unwrap_or(Device::Cpu)).clone()
}

/// A short name for reports and logs: `cpu` or `cuda:0`.
pub fn label(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available_and_cuda_without_the_feature_is_an_error() {
        assert!(select(DeviceChoice::Cpu).unwrap().is_cpu());
        assert_eq!(label(&Device::Cpu), "cpu");
        if !cfg!(feature = "cuda") {
            let e = select(DeviceChoice::Cuda).unwrap_err().to_string();
            assert!(e.contains("built without CUDA support"), "{e}");
            assert!(select(DeviceChoice::Auto).unwrap().is_cpu());
        }
    }
}
