//! The wgpu backend: the packed model on a GPU (or a software Vulkan rasteriser), through WGSL
//! kernels that unpack the 2–8-bit codes inside a tiled GEMM (`shaders/`).
//!
//! [`adapter`] picks the device, [`kernels`] compiles the shaders once, [`buffers`] uploads the
//! weights as stored in the file (no re-packing) and allocates activations at load, [`dispatch`]
//! wraps each kernel's parameters and grid, [`gather`] makes the index maps of the token
//! reshapes, and [`forward`] encodes a whole batch's forward pass into one submit. Built only with the `wgpu` feature.

mod adapter;
pub mod buffers;
pub mod dispatch;
mod forward;
pub mod gather;
pub mod kernels;
mod standalone;

use std::sync::Arc;

pub use adapter::{is_software_adapter, AdapterPolicy, GpuDevice};
pub use dispatch::GemmKernel;
pub use forward::{GpuExecutor, GpuOutput, DEFAULT_BATCH};
pub use standalone::LinearGemm;

use crate::format::PackedMatrix;

/// Why the GPU path cannot be used or a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter (wgpu found no Vulkan, Metal, DX12 or GL device)")]
    NoAdapter,
    /// Only adapters that are not real GPUs: software rasterisers (`software`) or of unknown type.
    #[error(
        "no hardware GPU adapter, only {}: {names}",
        if *software { "a software rasteriser" } else { "adapters of unknown type" }
    )]
    NoHardwareAdapter { software: bool, names: String },
    #[error("cannot open the GPU device {0}")]
    Device(String),
    #[error("the model cannot run on the GPU: {0}")]
    Model(String),
    #[error("input has {got} values, the model takes {expected}")]
    Input { got: usize, expected: usize },
    #[error("GPU run failed: {0}")]
    Run(String),
}

/// Every code of a packed matrix as unpacked by the GPU (row-major, signed): the exact check of
/// the shaders' bit unpacking against [`crate::format::pack::unpack_row`].
pub fn unpack_codes(dev: &Arc<GpuDevice>, m: &PackedMatrix) -> Result<Vec<i32>, GpuError> {
    use wgpu::util::DeviceExt;
    let layer = crate::format::Layer {
        name: "unpack".into(),
        weights: crate::format::LayerWeights::Packed(m.clone()),
        bias: None,
    };
    let device = &dev.device;
    let weights = buffers::LayerBuffers::new(device, &layer);
    let n = m.rows * m.cols;
    let dims = buffers::uniform(device, "dims", &[m.rows as u32, m.cols as u32]);
    let codes = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("codes"),
        contents: &vec![0u8; n.max(1) * 4],
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let pipeline = &dev.kernels.unpack_codes;
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("unpack"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            (0, &dims),
            (1, &codes),
            (2, &weights.words),
            (3, &weights.rows),
        ]
        .map(|(binding, b)| wgpu::BindGroupEntry {
            binding,
            resource: b.as_entire_binding(),
        }),
    });
    let staging = buffers::readback(device, (n.max(1) * 4) as u64);
    let mut enc = device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups((m.cols as u32).div_ceil(64), m.rows as u32, 1);
    }
    enc.copy_buffer_to_buffer(&codes, 0, &staging, 0, (n.max(1) * 4) as u64);
    dev.queue.submit([enc.finish()]);
    let floats = buffers::read_floats(device, &staging, n)?;
    Ok(floats.into_iter().map(|f| f.to_bits() as i32).collect())
}

/// Writes four floats, copies them into a mapped-readable buffer and reads them back through
/// [`buffers::read_floats_async`]: the smallest check that a device answers (a browser's WebGPU
/// path awaits exactly this read-back after every forward pass).
pub async fn roundtrip(dev: &GpuDevice) -> Result<Vec<f32>, GpuError> {
    use wgpu::util::DeviceExt;
    let device = &dev.device;
    let values = [1.0f32, 2.0, 3.0, 4.0];
    let src = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("roundtrip"),
        contents: bytemuck::cast_slice(&values),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let staging = buffers::readback(device, 16);
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&src, 0, &staging, 0, 16);
    dev.queue.submit([enc.finish()]);
    buffers::read_floats_async(device, &staging, 4).await
}

/// A diagnostic for new platforms: on a fresh device (default limits, no kernels), compiles the
/// kernel `kernel` of [`kernels::sources`] (`all`, or `none`), then does [`roundtrip`]'s copy.
/// This is how the browser investigation found that SwiftShader never finishes compiling
/// `gemm_tiled` (docs/web/STATUS.md); the page exposes it as `gpu_compile_probe`.
pub async fn compile_and_roundtrip(kernel: &str) -> Result<Vec<f32>, GpuError> {
    use wgpu::util::DeviceExt;
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions::default())
        .await
        .map_err(|_| GpuError::NoAdapter)?;
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor::default())
        .await
        .map_err(|e| GpuError::Device(e.to_string()))?;
    let _pipelines: Vec<wgpu::ComputePipeline> = kernels::sources()
        .into_iter()
        .filter(|k| k.name == kernel || kernel == "all")
        .map(|k| kernels::pipeline(&device, k))
        .collect();
    let values = [1.0f32, 2.0, 3.0, 4.0];
    let src = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("roundtrip"),
        contents: bytemuck::cast_slice(&values),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    let staging = buffers::readback(&device, 16);
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&src, 0, &staging, 0, 16);
    queue.submit([enc.finish()]);
    buffers::read_floats_async(&device, &staging, 4).await
}
