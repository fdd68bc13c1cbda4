//! Which backend runs a model: the CPU executor or, with the `wgpu` feature, the GPU one.
//!
//! `FQ_BACKEND=auto|cpu|gpu` (or an app's `--backend` flag, parsed with [`BackendChoice::parse`])
//! picks it:
//! - `auto` takes a real GPU (discrete, integrated or virtual) and otherwise the CPU executor. It
//!   never takes a software rasteriser such as Mesa's lavapipe: those run the shaders on the CPU,
//!   ~20x slower than the native CPU path, so they are never the better choice.
//! - `cpu` is the CPU executor.
//! - `gpu` (alias `wgpu`) is the best adapter of any kind, software rasterisers included (the
//!   tests use lavapipe this way), with a warning when it is one; an error when there is none.
//!
//! [`choose`] also says why, in words, so that the apps can report it. A build without the
//! feature has no graphics code at all and always runs on the CPU.

use std::fmt;
#[cfg(feature = "wgpu")]
use std::sync::Arc;

#[cfg(feature = "wgpu")]
use crate::gpu::{AdapterPolicy, GpuDevice, GpuError};

/// The environment variable that forces a backend.
pub const ENV: &str = "FQ_BACKEND";

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// A real GPU if there is one, else the CPU (never a software rasteriser).
    #[default]
    Auto,
    Cpu,
    /// The best GPU adapter, a software rasteriser included, or an error.
    Gpu,
}

impl BackendChoice {
    /// `auto`, `cpu`, `gpu` (or `wgpu`); case-insensitive.
    pub fn parse(s: &str) -> Result<Self, BackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" | "wgpu" => Ok(Self::Gpu),
            other => Err(BackendError::Unknown(other.to_string())),
        }
    }

    /// The choice in `FQ_BACKEND`, `Auto` when unset or empty.
    pub fn from_env() -> Result<Self, BackendError> {
        match std::env::var(ENV) {
            Ok(v) => Self::parse(&v).map_err(|_| BackendError::Env(v)),
            Err(_) => Ok(Self::Auto),
        }
    }

    /// What an app runs on: its `--backend` flag when given, else `FQ_BACKEND`, else `Auto`.
    pub fn resolve(flag: Option<Self>) -> Result<Self, BackendError> {
        match flag {
            Some(c) => Ok(c),
            None => Self::from_env(),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        })
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend `{0}` (auto, cpu or gpu)")]
    Unknown(String),
    #[error("{ENV}=`{0}` is not a backend (auto, cpu or gpu)")]
    Env(String),
    #[error("the gpu backend was asked for, but this build has no `wgpu` feature")]
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

    /// What runs the model, for people: `CPU (8 threads)` or `wgpu (adapter name)`.
    pub fn label(&self) -> String {
        match self {
            Backend::Cpu => format!("CPU ({} threads)", rayon::current_num_threads()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu(_) => self.name(),
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

/// A selected backend and why it was chosen.
#[derive(Clone, Debug)]
pub struct Selection {
    pub backend: Backend,
    /// Why, for people: `auto: only a software GPU adapter (llvmpipe …), slower than the CPU path`.
    pub reason: String,
    /// Something the user should know about the choice (a software rasteriser asked for by
    /// name); the apps print it on stderr.
    pub warning: Option<String>,
}

/// The backend for `choice` and why; `gpu` without any adapter (or without the feature) is an
/// error, `auto` falls back to the CPU.
pub fn choose(choice: BackendChoice) -> Result<Selection, BackendError> {
    match choice {
        BackendChoice::Cpu => Ok(Selection {
            backend: Backend::Cpu,
            reason: "cpu asked for".into(),
            warning: None,
        }),
        #[cfg(feature = "wgpu")]
        BackendChoice::Gpu => Ok(gpu_selection(GpuDevice::with_policy(
            AdapterPolicy::AllowSoftware,
        )?)),
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Gpu => Err(BackendError::NotBuilt),
        BackendChoice::Auto => Ok(auto()),
    }
}

/// [`choose`] without blocking, for a browser (WebGPU adapters and devices are promises there):
/// the same choices, reasons and fallback rule.
pub async fn choose_async(choice: BackendChoice) -> Result<Selection, BackendError> {
    match choice {
        #[cfg(feature = "wgpu")]
        BackendChoice::Gpu => Ok(gpu_selection(
            GpuDevice::with_policy_async(AdapterPolicy::AllowSoftware).await?,
        )),
        #[cfg(feature = "wgpu")]
        BackendChoice::Auto => Ok(auto_selection(
            GpuDevice::with_policy_async(AdapterPolicy::HardwareOnly).await,
        )),
        other => choose(other),
    }
}

/// An explicitly asked-for GPU, with a warning when it is a software rasteriser.
#[cfg(feature = "wgpu")]
fn gpu_selection(dev: GpuDevice) -> Selection {
    let warning = dev.is_software().then(|| {
        format!(
            "{} is a software rasteriser: the GPU is emulated on the CPU, far slower \
             than the cpu backend (use auto or cpu unless you are testing the GPU path)",
            dev.name()
        )
    });
    let reason = if dev.is_software() {
        "gpu asked for; only a software adapter is present".into()
    } else {
        "gpu asked for".into()
    };
    Selection {
        backend: Backend::Wgpu(Arc::new(dev)),
        reason,
        warning,
    }
}

#[cfg(feature = "wgpu")]
fn auto() -> Selection {
    auto_selection(GpuDevice::with_policy(AdapterPolicy::HardwareOnly))
}

/// `auto`'s rule: a hardware adapter, else the CPU with the reason.
#[cfg(feature = "wgpu")]
fn auto_selection(device: Result<GpuDevice, GpuError>) -> Selection {
    let cpu = |reason: String| Selection {
        backend: Backend::Cpu,
        reason,
        warning: None,
    };
    match device {
        Ok(d) => Selection {
            reason: "auto: a hardware GPU adapter is present".into(),
            backend: Backend::Wgpu(Arc::new(d)),
            warning: None,
        },
        Err(GpuError::NoHardwareAdapter {
            software: true,
            names,
        }) => cpu(format!(
            "auto: only a software GPU adapter ({names}), which is slower than the CPU path"
        )),
        Err(GpuError::NoAdapter) => cpu("auto: no GPU adapter".into()),
        Err(e) => cpu(format!("auto: {e}")),
    }
}

#[cfg(not(feature = "wgpu"))]
fn auto() -> Selection {
    Selection {
        backend: Backend::Cpu,
        reason: "auto: built without the GPU backend".into(),
        warning: None,
    }
}

/// The backend for `choice` ([`choose`] without the reason; a warning goes to stderr).
pub fn try_select(choice: BackendChoice) -> Result<Backend, BackendError> {
    choose(choice).map(|s| {
        if let Some(w) = &s.warning {
            eprintln!("fq-runtime: warning: {w}");
        }
        s.backend
    })
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
        assert_eq!(BackendChoice::parse("gpu").unwrap(), BackendChoice::Gpu);
        assert_eq!(BackendChoice::parse("wgpu").unwrap(), BackendChoice::Gpu);
        assert_eq!(BackendChoice::parse(" auto ").unwrap(), BackendChoice::Auto);
        let e = BackendChoice::parse("cuda").unwrap_err().to_string();
        assert!(
            e.contains("`cuda`") && e.contains("auto, cpu or gpu"),
            "{e}"
        );
        assert_eq!(select(BackendChoice::Cpu).name(), "cpu");
        assert_eq!(choose(BackendChoice::Cpu).unwrap().reason, "cpu asked for");
        // The flag wins over the environment; a bad value in it is named.
        assert_eq!(
            BackendChoice::resolve(Some(BackendChoice::Cpu)).unwrap(),
            BackendChoice::Cpu
        );
        let e = BackendError::Env("tpu".into()).to_string();
        assert!(e.contains("FQ_BACKEND=`tpu`"), "{e}");
    }
}
