//! Adapter selection: a device with limits large enough for a model's weights, on the best
//! adapter the [`AdapterPolicy`] allows.
//!
//! Why a policy: Mesa's lavapipe (and SwiftShader, WARP) present themselves as GPUs but run the
//! shaders on the CPU, ~20x slower than the native CPU executor. `auto` must therefore never land
//! on one ([`AdapterPolicy::HardwareOnly`]); the tests and a user who names the GPU backend
//! explicitly still can ([`AdapterPolicy::AllowSoftware`]).

use super::kernels::Kernels;
use super::GpuError;

/// Which adapters [`GpuDevice::with_policy`] may open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// Real GPUs only: discrete, integrated or virtual (a VM's pass-through), never a software
    /// rasteriser nor an adapter of unknown type.
    HardwareOnly,
    /// Any adapter, real GPUs first, then software rasterisers such as lavapipe.
    AllowSoftware,
}

/// A wgpu device with the kernels compiled for it (once, here).
pub struct GpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) kernels: Kernels,
    info: wgpu::AdapterInfo,
    /// WebGPU validation errors, collected instead of wgpu's default (a panic, which in a
    /// browser vanishes in an event callback and leaves zeros in the results); the async
    /// run reports them. Always empty natively.
    pub(crate) errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Rank of an adapter type: lower is preferred.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Names of the software rasterisers, lower case. Drivers normally report them as
/// `DeviceType::Cpu`, but GL drivers only expose a renderer string that wgpu classifies by
/// guesswork, so the name is checked too.
const SOFTWARE_NAMES: [&str; 5] = [
    "llvmpipe",
    "lavapipe",
    "softpipe",
    "swiftshader",
    // Windows' WARP.
    "microsoft basic render",
];

/// Whether an adapter is a software rasteriser (runs its shaders on the CPU).
pub fn is_software_adapter(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_ascii_lowercase();
    info.device_type == wgpu::DeviceType::Cpu || SOFTWARE_NAMES.iter().any(|s| name.contains(s))
}

/// Whether an adapter is a real GPU that `auto` may use.
fn is_hardware(info: &wgpu::AdapterInfo) -> bool {
    matches!(
        info.device_type,
        wgpu::DeviceType::DiscreteGpu
            | wgpu::DeviceType::IntegratedGpu
            | wgpu::DeviceType::VirtualGpu
    ) && !is_software_adapter(info)
}

impl GpuDevice {
    /// Opens the best adapter of any kind, software rasterisers included (what the tests and an
    /// explicit `--backend gpu` use); see [`Self::with_policy`].
    pub fn new() -> Result<Self, GpuError> {
        Self::with_policy(AdapterPolicy::AllowSoftware)
    }

    /// Opens the best adapter `policy` allows on any backend wgpu was built with
    /// (`WGPU_BACKEND` narrows the choice, as in every wgpu program), and compiles the kernels.
    /// With [`AdapterPolicy::HardwareOnly`] and only other adapters present the error is
    /// [`GpuError::NoHardwareAdapter`], naming them.
    ///
    /// Binaries should call [`crate::driver_env::prepare`] at the start of `main` first, so that
    /// Mesa finds the runtime directory it expects and prints nothing.
    pub fn with_policy(policy: AdapterPolicy) -> Result<Self, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        // Stable: among equals the backend order wgpu reports (Vulkan/Metal/DX12 before GL).
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        if policy == AdapterPolicy::HardwareOnly {
            let (hardware, others): (Vec<_>, Vec<_>) = adapters
                .into_iter()
                .partition(|a| is_hardware(&a.get_info()));
            if hardware.is_empty() && !others.is_empty() {
                let infos: Vec<_> = others.iter().map(|a| a.get_info()).collect();
                let mut names: Vec<String> = Vec::new();
                for i in &infos {
                    if !names.contains(&i.name) {
                        names.push(i.name.clone());
                    }
                }
                return Err(GpuError::NoHardwareAdapter {
                    software: infos.iter().all(is_software_adapter),
                    names: names.join(", "),
                });
            }
            adapters = hardware;
        }
        let mut last = None;
        for adapter in adapters {
            match Self::open(adapter) {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(GpuError::NoAdapter))
    }

    /// The browser's (WebGPU) adapter under `policy`, opened without blocking: a page has one
    /// adapter to ask for (`navigator.gpu.requestAdapter`, no enumeration), and the same rule as
    /// natively decides whether it may be used (`HardwareOnly` refuses a software rasteriser
    /// such as SwiftShader, so `auto` then runs on the CPU).
    pub async fn with_policy_async(policy: AdapterPolicy) -> Result<Self, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|_| GpuError::NoAdapter)?;
        let info = adapter.get_info();
        // Browsers do not tell the device type (wgpu reports `Other`, or `Cpu` for a fallback
        // adapter), so there a real GPU is one that is neither of those nor named as software.
        let hardware = if info.backend == wgpu::Backend::BrowserWebGpu {
            info.device_type != wgpu::DeviceType::Cpu && !is_software_adapter(&info)
        } else {
            is_hardware(&info)
        };
        if policy == AdapterPolicy::HardwareOnly && !hardware {
            return Err(GpuError::NoHardwareAdapter {
                software: is_software_adapter(&info),
                names: info.name.clone(),
            });
        }
        let desc = Self::device_descriptor(&adapter)?;
        let (device, queue) = adapter
            .request_device(&desc)
            .await
            .map_err(|e| GpuError::Device(format!("{}: {e}", info.name)))?;
        Ok(Self::finish(device, queue, info))
    }

    fn open(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let desc = Self::device_descriptor(&adapter)?;
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| GpuError::Device(format!("{}: {e}", info.name)))?;
        Ok(Self::finish(device, queue, info))
    }

    /// What the kernels need of a device, or why this adapter cannot give it.
    fn device_descriptor(
        adapter: &wgpu::Adapter,
    ) -> Result<wgpu::DeviceDescriptor<'static>, GpuError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // The GEMM binds five storage buffers; WebGPU's default is 8, old GL drivers give 4.
        if limits.max_storage_buffers_per_shader_stage < 5 {
            return Err(GpuError::Device(format!(
                "{}: {} storage buffers per shader stage, the kernels need 5",
                info.name, limits.max_storage_buffers_per_shader_stage
            )));
        }
        Ok(wgpu::DeviceDescriptor {
            label: Some("fq-runtime"),
            // Everything the adapter offers: a layer's weights and a batch of activations go in
            // single bindings, which can exceed WebGPU's 128 MiB default.
            required_limits: limits,
            ..Default::default()
        })
    }

    fn finish(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if info.backend == wgpu::Backend::BrowserWebGpu {
            let sink = std::sync::Arc::clone(&errors);
            device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
                let mut v = sink.lock().unwrap_or_else(|p| p.into_inner());
                if v.len() < 16 {
                    v.push(e.to_string());
                }
            }));
        }
        let kernels = Kernels::with_tiled(&device, Self::tiled_gemm(&info));
        Self {
            device,
            queue,
            kernels,
            info,
            errors,
        }
    }

    /// Whether the tiled GEMM is compiled and used: natively yes; in a browser not yet, since
    /// Chromium's SwiftShader never finishes compiling it (the only WebGPU the tests have), and
    /// the naive GEMM gives the same results.
    fn tiled_gemm(info: &wgpu::AdapterInfo) -> bool {
        info.backend != wgpu::Backend::BrowserWebGpu
    }

    /// The WebGPU errors reported since the last call (none natively), emptied.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The GEMM kernel models on this device use.
    pub fn gemm_kernel(&self) -> super::GemmKernel {
        if Self::tiled_gemm(&self.info) {
            super::GemmKernel::Tiled
        } else {
            super::GemmKernel::Naive
        }
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Name, device type and graphics API, for logs: `llvmpipe (…) (Cpu, Vulkan)`.
    pub fn description(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.device_type, self.info.backend
        )
    }

    /// Whether this adapter is a software rasteriser (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        is_software_adapter(&self.info)
    }
}
