//! Per-kernel dispatch helpers: the parameter block of each kernel (as its WGSL struct), its bind
//! group over load-time buffers, and the workgroup grid for a batch of `n` images. A forward pass
//! is a list of [`Dispatch`]es built once; running one only records it into a compute pass.

use bytemuck::{Pod, Zeroable};

use super::buffers::{storage_init, uniform, LayerBuffers};
use super::kernels::Kernels;

/// The uniform `Gemm` of `shaders/im2col.wgsl`; its layout (size, member offsets) is asserted equal to the WGSL's by `runtime/tests/gpu_layout.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub k: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_group: u32,
    pub c_out: u32,
    pub ho: u32,
    pub wo: u32,
    pub kernel: u32,
    pub stride: u32,
    pub padding: u32,
    pub flags: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// The uniform `Pool` of `shaders/max_pool.wgsl`; its layout (size, member offsets) is asserted equal to the WGSL's by `runtime/tests/gpu_layout.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PoolParams {
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub ho: u32,
    pub wo: u32,
    pub kernel: u32,
    pub stride: u32,
    pub padding: u32,
}

/// The uniform `Attention` of `shaders/attention.wgsl`; its layout (size, member offsets) is asserted equal to the WGSL's by `runtime/tests/gpu_layout.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct AttentionParams {
    pub l: u32,
    pub heads: u32,
    pub kd: u32,
    pub vd: u32,
    pub f: u32,
    pub g: u32,
    /// 0: `QkvHeads`, 1: `HeadsQkv`.
    pub qkv_order: u32,
    /// Bias window side, 0 for none.
    pub ws: u32,
    pub scale: f32,
}

/// Flag bits shared by the GEMM epilogue and `add_relu`.
pub const RELU: u32 = 1;
pub const ADD: u32 = 2;
/// GEMM: a Linear on tokens (token-major `[L, K]` in, `[L, M]` out). `add_relu`: the second
/// operand is one per-image-sized parameter every image adds.
pub const TOKENS: u32 = 4;
pub const BROADCAST: u32 = 4;

/// Which GEMM kernel convolutions and Linear layers use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemmKernel {
    /// 64x64 register-tiled, weights unpacked once per K step into workgroup memory.
    #[default]
    Tiled,
    /// One thread per output (the benchmark's baseline).
    Naive,
}

/// Output tile of `gemm_tiled.wgsl`.
const TILE: u32 = 64;
/// Largest workgroup count along one dimension (WebGPU's default limit).
const MAX_GROUPS: u32 = 65535;

/// How a kernel's workgroup count follows from the batch size.
#[derive(Clone, Copy, Debug)]
enum Grid {
    /// Columns are `n * pixels`, rows `m`, one z layer per convolution group.
    Gemm {
        kernel: GemmKernel,
        m: u32,
        pixels: u32,
        groups: u32,
    },
    /// One thread per element of `n * per_image`, in workgroups of `size`, folded into 2-D.
    Flat { per_image: u32, size: u32 },
}

impl Grid {
    fn workgroups(self, n: u32) -> (u32, u32, u32) {
        match self {
            Grid::Gemm {
                kernel,
                m,
                pixels,
                groups,
            } => {
                let cols = n * pixels;
                match kernel {
                    GemmKernel::Tiled => (cols.div_ceil(TILE), m.div_ceil(TILE), groups),
                    GemmKernel::Naive => (cols.div_ceil(64), m, groups),
                }
            }
            Grid::Flat { per_image, size } => {
                let total = (n * per_image).div_ceil(size);
                let x = total.clamp(1, MAX_GROUPS);
                (x, total.div_ceil(x), 1)
            }
        }
    }
}

/// One recorded kernel launch of a forward pass.
pub struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    grid: Grid,
}

impl Dispatch {
    /// Records the launch for a batch of `n` images.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, n: u32) {
        let (x, y, z) = self.grid.workgroups(n);
        if x == 0 || y == 0 || z == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }

    /// The batch size whose grid would exceed the per-dimension limit (the executor caps its
    /// batch below this).
    pub fn max_batch(&self) -> u32 {
        match self.grid {
            Grid::Gemm {
                kernel: GemmKernel::Tiled,
                pixels,
                ..
            } => MAX_GROUPS * TILE / pixels.max(1),
            Grid::Gemm { pixels, .. } => MAX_GROUPS * 64 / pixels.max(1),
            Grid::Flat { per_image, size } => {
                ((MAX_GROUPS as u64 * MAX_GROUPS as u64 * size as u64) / per_image.max(1) as u64)
                    .min(u32::MAX as u64) as u32
            }
        }
    }
}

fn entries<'a>(buffers: &[&'a wgpu::Buffer]) -> Vec<wgpu::BindGroupEntry<'a>> {
    buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect()
}

fn bind(
    device: &wgpu::Device,
    pipeline: &wgpu::ComputePipeline,
    label: &str,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries(buffers),
    })
}

/// The buffers every dispatch shares: the batch-size uniform and a one-float stand-in for an
/// absent operand.
pub struct Shared<'a> {
    pub device: &'a wgpu::Device,
    pub kernels: &'a Kernels,
    pub batch: &'a wgpu::Buffer,
    pub dummy: &'a wgpu::Buffer,
}

/// A convolution or Linear layer: `output = epilogue(W * im2col(input))`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    s: &Shared,
    kernel: GemmKernel,
    params: GemmParams,
    groups: u32,
    layer: &LayerBuffers,
    input: &wgpu::Buffer,
    residual: Option<&wgpu::Buffer>,
    output: &wgpu::Buffer,
) -> Dispatch {
    let pipeline = match kernel {
        GemmKernel::Tiled => &s.kernels.gemm_tiled,
        GemmKernel::Naive => &s.kernels.gemm_naive,
    };
    let p = uniform(s.device, "gemm params", &params);
    let bind_group = bind(
        s.device,
        pipeline,
        "gemm",
        &[
            &p,
            s.batch,
            &layer.words,
            &layer.rows,
            input,
            residual.unwrap_or(s.dummy),
            output,
        ],
    );
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group,
        grid: Grid::Gemm {
            kernel,
            m: params.m,
            pixels: params.ho * params.wo,
            groups,
        },
    }
}

pub fn max_pool(
    s: &Shared,
    params: PoolParams,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Dispatch {
    let pipeline = &s.kernels.max_pool;
    let p = uniform(s.device, "max pool params", &params);
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(
            s.device,
            pipeline,
            "max pool",
            &[&p, s.batch, input, output],
        ),
        grid: Grid::Flat {
            per_image: params.c * params.ho * params.wo,
            size: 256,
        },
    }
}

/// `[N, c, hw] -> [N, c]` means.
pub fn global_avg_pool(
    s: &Shared,
    c: u32,
    hw: u32,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Dispatch {
    let pipeline = &s.kernels.global_avg_pool;
    let p = uniform(s.device, "avg pool params", &[c, hw]);
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(
            s.device,
            pipeline,
            "avg pool",
            &[&p, s.batch, input, output],
        ),
        grid: Grid::Flat {
            per_image: c,
            size: 64,
        },
    }
}

/// `output = a (+ b) (then ReLU)` over `len` floats per image; `flags` of [`RELU`] and [`ADD`].
pub fn add_relu(
    s: &Shared,
    len: u32,
    flags: u32,
    a: &wgpu::Buffer,
    b: Option<&wgpu::Buffer>,
    output: &wgpu::Buffer,
) -> Dispatch {
    let pipeline = &s.kernels.add_relu;
    let p = uniform(s.device, "elementwise params", &[len, flags]);
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(
            s.device,
            pipeline,
            "elementwise",
            &[&p, s.batch, a, b.unwrap_or(s.dummy), output],
        ),
        grid: Grid::Flat {
            per_image: len,
            size: 256,
        },
    }
}

/// Layer norm of `rows` rows of `d` features per image, one workgroup per row.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    s: &Shared,
    rows: u32,
    d: u32,
    eps: f32,
    input: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> Dispatch {
    let pipeline = &s.kernels.layer_norm;
    let p = uniform(s.device, "layer norm params", &[rows, d, eps.to_bits()]);
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(
            s.device,
            pipeline,
            "layer norm",
            &[&p, s.batch, input, gamma, beta, output],
        ),
        grid: Grid::Flat {
            per_image: rows,
            size: 1,
        },
    }
}

/// Exact GELU over `len` floats per image.
pub fn gelu(s: &Shared, len: u32, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Dispatch {
    let pipeline = &s.kernels.gelu;
    let p = uniform(s.device, "gelu params", &[len]);
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(s.device, pipeline, "gelu", &[&p, s.batch, input, output]),
        grid: Grid::Flat {
            per_image: len,
            size: 256,
        },
    }
}

/// `output[i] = input[map[i]]` per image (see `shaders/gather.wgsl` for the sentinels); `extra`
/// is the shared parameter that flagged entries read.
pub fn gather(
    s: &Shared,
    in_len: u32,
    map: &[u32],
    input: &wgpu::Buffer,
    extra: Option<&wgpu::Buffer>,
    output: &wgpu::Buffer,
) -> Dispatch {
    let pipeline = &s.kernels.gather;
    let p = uniform(s.device, "gather params", &[in_len, map.len() as u32]);
    let m = storage_init(s.device, "gather map", bytemuck::cast_slice(map));
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(
            s.device,
            pipeline,
            "gather",
            &[&p, s.batch, input, &m, extra.unwrap_or(s.dummy), output],
        ),
        grid: Grid::Flat {
            per_image: map.len() as u32,
            size: 256,
        },
    }
}

/// Multi-head attention, one thread per (image, query, head).
pub fn attention(
    s: &Shared,
    params: AttentionParams,
    qkv: &wgpu::Buffer,
    biases: Option<&wgpu::Buffer>,
    output: &wgpu::Buffer,
) -> Dispatch {
    let pipeline = &s.kernels.attention;
    let p = uniform(s.device, "attention params", &params);
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(
            s.device,
            pipeline,
            "attention",
            &[&p, s.batch, qkv, biases.unwrap_or(s.dummy), output],
        ),
        grid: Grid::Flat {
            per_image: params.l * params.heads,
            size: 64,
        },
    }
}

/// Probabilities of `classes` logits per image.
pub fn softmax(s: &Shared, classes: u32, logits: &wgpu::Buffer, probs: &wgpu::Buffer) -> Dispatch {
    let pipeline = &s.kernels.softmax;
    let p = uniform(s.device, "softmax params", &[classes]);
    Dispatch {
        pipeline: pipeline.clone(),
        bind_group: bind(s.device, pipeline, "softmax", &[&p, s.batch, logits, probs]),
        grid: Grid::Flat {
            per_image: 1,
            size: 64,
        },
    }
}
