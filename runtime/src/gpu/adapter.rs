//! Adapter selection: the best GPU the system offers (discrete, then integrated, then virtual,
//! then a software rasteriser such as Mesa's lavapipe), and a device with limits large enough
//! for a model's weights.

use super::kernels::Kernels;
use super::GpuError;

/// A wgpu device with the kernels compiled for it (once, here).
pub struct GpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) kernels: Kernels,
    info: wgpu::AdapterInfo,
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

impl GpuDevice {
    /// Opens the best adapter on any backend wgpu was built with (`WGPU_BACKEND` narrows the
    /// choice, as in every wgpu program), and compiles the kernels.
    pub fn new() -> Result<Self, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        // Stable: among equals the backend order wgpu reports (Vulkan/Metal/DX12 before GL).
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let mut last = None;
        for adapter in adapters {
            match Self::open(adapter) {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(GpuError::NoAdapter))
    }

    fn open(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // The GEMM binds five storage buffers; WebGPU's default is 8, old GL drivers give 4.
        if limits.max_storage_buffers_per_shader_stage < 5 {
            return Err(GpuError::Device(format!(
                "{}: {} storage buffers per shader stage, the kernels need 5",
                info.name, limits.max_storage_buffers_per_shader_stage
            )));
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fq-runtime"),
            // Everything the adapter offers: a layer's weights and a batch of activations go in
            // single bindings, which can exceed WebGPU's 128 MiB default.
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(format!("{}: {e}", info.name)))?;
        let kernels = Kernels::new(&device);
        Ok(Self {
            device,
            queue,
            kernels,
            info,
        })
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
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}
