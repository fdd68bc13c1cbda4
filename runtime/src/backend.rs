//! Which backend runs a model: the CPU executor or, with the `wgpu` feature, the GPU one.
//!
//! `FQ_BACKEND=cpu|wgpu|auto` (or an app's `--backend` flag, parsed with [`BackendChoice::parse`])
//! forces a choice; `auto` takes the best GPU adapter (discrete, integrated, then software) and
//! falls back to the CPU with a one-line message when there is none. A build without the feature
//! has no graphics code at all and always runs on the CPU.

use std::fmt;
#[cfg(feature = "wgpu")]
use std::sync::Arc;

#[cfg(feature = "wgpu")]
use crate::gpu::GpuDevice;

/// The environment variable that forces a backend.
pub const ENV: &str = "FQ_BACKEND";

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best GPU adapter if there is one, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// A GPU adapter or an error.
    Wgpu,
}

impl BackendChoice {
    /// `cpu`, `wgpu` (or `gpu`), `auto`; case-insensitive.
    pub fn parse(s: &str) -> Result<Self, BackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(BackendError::Unknown(other.to_string())),
        }
    }

    /// The choice in `FQ_BACKEND`, `Auto` when unset.
    pub fn from_env() -> Result<Self, BackendError> {
        match std::env::var(ENV) {
            Ok(v) => Self::parse(&v).map_err(|e| BackendError::Env(Box::new(e))),
            Err(_) => Ok(Self::Auto),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend `{0}` (cpu, wgpu or auto)")]
    Unknown(String),
    #[error("{ENV}: {0}")]
    Env(Box<BackendError>),
    #[error("the wgpu backend was asked for, but this build has no `wgpu` feature")]
    NotBuilt,
    #[cfg(feature = "wgpu")]
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

/// A backend ready to load models on; cheap to clone (the GPU device is shared).
#[derive(Clone)]
pub enum Backend {
    Cpu,
    #[cfg(feature = "wgpu")]
    Wgpu(Arc<GpuDevice>),
}

impl Backend {
    /// `cpu` or `wgpu (adapter name)`, for printing.
    pub fn name(&self) -> String {
        match self {
            Backend::Cpu => "cpu".into(),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu(d) => format!("wgpu ({})", d.description()),
        }
    }

    pub fn is_gpu(&self) -> bool {
        !matches!(self, Backend::Cpu)
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The backend for `choice`; a forced `wgpu` without an adapter (or without the feature) is an
/// error, `auto` falls back to the CPU.
pub fn try_select(choice: BackendChoice) -> Result<Backend, BackendError> {
    match choice {
        BackendChoice::Cpu => Ok(Backend::Cpu),
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => Ok(Backend::Wgpu(Arc::new(GpuDevice::new()?))),
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Wgpu => Err(BackendError::NotBuilt),
        BackendChoice::Auto => Ok(auto()),
    }
}

#[cfg(feature = "wgpu")]
fn auto() -> Backend {
    match GpuDevice::new() {
        Ok(d) => Backend::Wgpu(Arc::new(d)),
        Err(e) => {
            eprintln!("fq-runtime: {e}; running on the CPU");
            Backend::Cpu
        }
    }
}

#[cfg(not(feature = "wgpu"))]
fn auto() -> Backend {
    Backend::Cpu
}

/// Like [`try_select`], but never fails: whatever cannot be had falls back to the CPU with a
/// one-line message on stderr.
pub fn select(choice: BackendChoice) -> Backend {
    try_select(choice).unwrap_or_else(|e| {
        eprintln!("fq-runtime: {e}; running on the CPU");
        Backend::Cpu
    })
}

/// The backend `FQ_BACKEND` asks for ([`select`]; an unreadable value is reported and `auto`).
pub fn from_env() -> Backend {
    let choice = BackendChoice::from_env().unwrap_or_else(|e| {
        eprintln!("fq-runtime: {e}; using auto");
        BackendChoice::Auto
    });
    select(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!(BackendChoice::parse("CPU").unwrap(), BackendChoice::Cpu);
        assert_eq!(BackendChoice::parse("gpu").unwrap(), BackendChoice::Wgpu);
        assert_eq!(BackendChoice::parse(" auto ").unwrap(), BackendChoice::Auto);
        let e = BackendChoice::parse("cuda").unwrap_err().to_string();
        assert!(
            e.contains("`cuda`") && e.contains("cpu, wgpu or auto"),
            "{e}"
        );
        assert_eq!(select(BackendChoice::Cpu).name(), "cpu");
    }
}
