//! The WGSL kernels (`shaders/*.wgsl`, embedded at build time) and their compute pipelines,
//! compiled once per device. WGSL has no includes: the GEMM kernels and the unpack test kernel
//! are compiled with the shared files they build on prepended.

/// Shared bit unpacking (`Row`, `code`, `weights4`).
const UNPACK: &str = include_str!("../../../shaders/unpack.wgsl");
/// Shared implicit im2col and epilogue of the GEMMs.
const IM2COL: &str = include_str!("../../../shaders/im2col.wgsl");

/// One kernel: its name (the file's stem) and its full source as compiled.
pub struct KernelSource {
    pub name: &'static str,
    pub source: String,
}

/// Every kernel's source as compiled (what the naga tests validate).
pub fn sources() -> Vec<KernelSource> {
    let gemm = |body: &str| format!("{UNPACK}\n{IM2COL}\n{body}");
    vec![
        KernelSource {
            name: "gemm_tiled",
            source: gemm(include_str!("../../../shaders/gemm_tiled.wgsl")),
        },
        KernelSource {
            name: "gemm_naive",
            source: gemm(include_str!("../../../shaders/gemm_naive.wgsl")),
        },
        KernelSource {
            name: "max_pool",
            source: include_str!("../../../shaders/max_pool.wgsl").into(),
        },
        KernelSource {
            name: "global_avg_pool",
            source: include_str!("../../../shaders/global_avg_pool.wgsl").into(),
        },
        KernelSource {
            name: "add_relu",
            source: include_str!("../../../shaders/add_relu.wgsl").into(),
        },
        KernelSource {
            name: "softmax",
            source: include_str!("../../../shaders/softmax.wgsl").into(),
        },
        KernelSource {
            name: "layer_norm",
            source: include_str!("../../../shaders/layer_norm.wgsl").into(),
        },
        KernelSource {
            name: "gelu",
            source: include_str!("../../../shaders/gelu.wgsl").into(),
        },
        KernelSource {
            name: "gather",
            source: include_str!("../../../shaders/gather.wgsl").into(),
        },
        KernelSource {
            name: "attention",
            source: include_str!("../../../shaders/attention.wgsl").into(),
        },
        KernelSource {
            name: "unpack_codes",
            source: format!(
                "{UNPACK}\n{}",
                include_str!("../../../shaders/unpack_codes.wgsl")
            ),
        },
    ]
}

/// The compiled pipelines, one per kernel.
pub struct Kernels {
    pub gemm_tiled: wgpu::ComputePipeline,
    pub gemm_naive: wgpu::ComputePipeline,
    pub max_pool: wgpu::ComputePipeline,
    pub global_avg_pool: wgpu::ComputePipeline,
    pub add_relu: wgpu::ComputePipeline,
    pub softmax: wgpu::ComputePipeline,
    pub layer_norm: wgpu::ComputePipeline,
    pub gelu: wgpu::ComputePipeline,
    pub gather: wgpu::ComputePipeline,
    pub attention: wgpu::ComputePipeline,
    pub unpack_codes: wgpu::ComputePipeline,
}

/// One kernel's compute pipeline, its bind group layout derived from the shader (each kernel's
/// bindings are what it declares and uses).
pub fn pipeline(device: &wgpu::Device, k: KernelSource) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(k.name),
        source: wgpu::ShaderSource::Wgsl(k.source.into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(k.name),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

impl Kernels {
    /// Every kernel.
    pub fn new(device: &wgpu::Device) -> Self {
        Self::with_tiled(device, true)
    }

    /// Every kernel; without `tiled`, the tiled GEMM is not compiled and its slot holds the
    /// naive GEMM (SwiftShader in Chromium never finishes compiling `gemm_tiled`, and a
    /// pipeline still compiling stalls the whole queue; see docs/web/STATUS.md).
    pub fn with_tiled(device: &wgpu::Device, tiled: bool) -> Self {
        let mut src = sources().into_iter();
        let tiled_source = src.next().expect("gemm_tiled comes first");
        let gemm_tiled = tiled.then(|| pipeline(device, tiled_source));
        let mut next = || pipeline(device, src.next().expect("one source per kernel"));
        let gemm_naive = next();
        Self {
            gemm_tiled: gemm_tiled.unwrap_or_else(|| gemm_naive.clone()),
            gemm_naive,
            max_pool: next(),
            global_avg_pool: next(),
            add_relu: next(),
            softmax: next(),
            layer_norm: next(),
            gelu: next(),
            gather: next(),
            attention: next(),
            unpack_codes: next(),
        }
    }
}
