//! Load-time buffers: each layer's weights as the GEMM kernels read them, and the uniform and
//! storage buffers of the activations. Everything here is created once per model.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::format::{Layer, LayerWeights, PackedMatrix};

/// Per-row metadata of a layer, the storage array element `Row` of `shaders/unpack.wgsl`; its
/// layout (size, member offsets) is asserted equal to the WGSL's by `runtime/tests/gpu_layout.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RowInfo {
    /// First bit of the row in the word array.
    pub bit: u32,
    /// 2..=8, or 32 for an f32 row.
    pub bits: u32,
    pub scale: f32,
    pub bias: f32,
}

/// A layer's weights on the device: the packed bytes as they are in the file (now as words, plus
/// two spare words for the 32-bit windows) and one [`RowInfo`] per output channel.
pub struct LayerBuffers {
    pub words: wgpu::Buffer,
    pub rows: wgpu::Buffer,
}

/// The word array and row table of a layer; the packed bytes are not re-laid out.
pub fn layer_words(layer: &Layer) -> (Vec<u32>, Vec<RowInfo>) {
    let (rows, _) = layer.weights.dims();
    let bias = |r: usize| layer.bias.as_ref().map_or(0.0, |b| b[r]);
    match &layer.weights {
        LayerWeights::Packed(m) => packed_words(m, bias),
        LayerWeights::F32 { cols, data, .. } => {
            let mut words: Vec<u32> = data.iter().map(|v| v.to_bits()).collect();
            words.extend([0, 0]);
            let info = (0..rows)
                .map(|r| RowInfo {
                    bit: ((r * cols) as u32) << 5,
                    bits: 32,
                    scale: 1.0,
                    bias: bias(r),
                })
                .collect();
            (words, info)
        }
    }
}

fn packed_words(m: &PackedMatrix, bias: impl Fn(usize) -> f32) -> (Vec<u32>, Vec<RowInfo>) {
    let offsets = m.row_offsets();
    let mut words = vec![0u32; m.data.len().div_ceil(4) + 2];
    for (i, chunk) in m.data.chunks(4).enumerate() {
        let mut b = [0u8; 4];
        b[..chunk.len()].copy_from_slice(chunk);
        words[i] = u32::from_le_bytes(b);
    }
    let info = (0..m.rows)
        .map(|r| RowInfo {
            bit: (offsets[r] * 8) as u32,
            bits: m.bits[r] as u32,
            scale: m.scales[r],
            bias: bias(r),
        })
        .collect();
    (words, info)
}

impl LayerBuffers {
    pub fn new(device: &wgpu::Device, layer: &Layer) -> Self {
        let (words, rows) = layer_words(layer);
        Self {
            words: storage_init(device, &layer.name, bytemuck::cast_slice(&words)),
            rows: storage_init(device, &layer.name, bytemuck::cast_slice(&rows)),
        }
    }
}

/// A read-only storage buffer holding `bytes` (at least 4, as bindings may not be empty).
pub fn storage_init(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let mut data = bytes.to_vec();
    data.resize(data.len().max(4).next_multiple_of(4), 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &data,
        usage: wgpu::BufferUsages::STORAGE,
    })
}

/// A uniform buffer holding `value`, padded to 16 bytes as uniform structs are.
pub fn uniform<T: Pod>(device: &wgpu::Device, label: &str, value: &T) -> wgpu::Buffer {
    let mut data = bytemuck::bytes_of(value).to_vec();
    data.resize(data.len().next_multiple_of(16).max(16), 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &data,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

/// A storage buffer of `floats` f32 that kernels write and the host may fill or copy out.
pub fn activation(device: &wgpu::Device, label: &str, floats: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (floats.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// A host-readable buffer for results.
pub fn readback(device: &wgpu::Device, bytes: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Copies a mapped-readable buffer's first `floats` values to the host (blocks until the GPU is
/// done with everything submitted before). Native only: a browser cannot block; it awaits
/// [`read_floats_async`], which this wraps, so both share one code path (called in a browser,
/// it would panic: a WebAssembly page has no thread to block).
pub fn read_floats(
    device: &wgpu::Device,
    buf: &wgpu::Buffer,
    floats: usize,
) -> Result<Vec<f32>, super::GpuError> {
    pollster::block_on(read_floats_async(device, buf, floats))
}

/// [`read_floats`] as a future. Natively the device is polled here until the map is done, so the
/// future is ready at once; in a browser (WebGPU) `mapAsync` resolves on the page's event loop
/// and the future completes then (`device.poll` is a no-op there).
pub async fn read_floats_async(
    device: &wgpu::Device,
    buf: &wgpu::Buffer,
    floats: usize,
) -> Result<Vec<f32>, super::GpuError> {
    let slice = buf.slice(..(floats.max(1) * 4) as u64);
    let done = MapDone::default();
    let signal = done.clone();
    slice.map_async(wgpu::MapMode::Read, move |r| signal.finish(r));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| super::GpuError::Run(e.to_string()))?;
    done.await
        .map_err(|e| super::GpuError::Run(e.to_string()))?;
    let out = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| super::GpuError::Run(e.to_string()))?;
        bytemuck::cast_slice::<u8, f32>(&view)[..floats].to_vec()
    };
    buf.unmap();
    Ok(out)
}

/// A one-shot future completed by `map_async`'s callback (no executor-specific channel, so it
/// runs under pollster natively and under wasm-bindgen-futures in a browser).
#[derive(Clone, Default)]
struct MapDone(Arc<Mutex<MapState>>);

#[derive(Default)]
struct MapState {
    result: Option<Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

impl MapDone {
    fn finish(&self, r: Result<(), wgpu::BufferAsyncError>) {
        let waker = {
            let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
            s.result = Some(r);
            s.waker.take()
        };
        // Woken after the lock is released: an executor may poll the future at once.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Future for MapDone {
    type Output = Result<(), wgpu::BufferAsyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
