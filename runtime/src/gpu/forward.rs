//! The GPU executor: the CPU executor's plan (same steps, same fused epilogues) as a list of
//! dispatches over buffers made at load time, encoded into one command buffer per batch of
//! images, so a forward pass never returns to the host between layers.

use std::sync::{Arc, Mutex};

use fq_models::{Graph, QkvLayout, Shape};

use super::buffers::{
    activation, read_floats, read_floats_async, readback, storage_init, uniform, LayerBuffers,
};
use super::dispatch::{
    self, AttentionParams, Dispatch, GemmKernel, GemmParams, PoolParams, Shared, ADD, BROADCAST,
    RELU, TOKENS,
};
use super::gather;
use super::{GpuDevice, GpuError};
use crate::exec::{Plan, Step};
use crate::format::{FormatError, Layer, NamedTensor, PackedModel};

/// Images per submit unless asked otherwise: enough to fill a GPU's wide tiles on a small
/// model, small enough to keep a 224x224 ResNet's activations well under 1 GiB.
pub const DEFAULT_BATCH: usize = 8;

/// Output channels per group up to which a convolution runs on the naive GEMM whatever kernel
/// was asked for.
const DEPTHWISE_ROWS: u32 = 4;

/// A model on the GPU.
pub struct GpuExecutor {
    dev: Arc<GpuDevice>,
    dispatches: Vec<Dispatch>,
    /// One buffer per graph value, `batch` images each (input first).
    values: Vec<wgpu::Buffer>,
    probs: wgpu::Buffer,
    batch_uniform: wgpu::Buffer,
    staging: wgpu::Buffer,
    input_len: usize,
    classes: usize,
    output: usize,
    batch: usize,
    /// Runs share the buffers: one at a time.
    lock: Mutex<()>,
    /// The same for [`Self::run_batch_async`].
    busy: std::sync::atomic::AtomicBool,
    _layers: Vec<LayerBuffers>,
    _tensors: Vec<wgpu::Buffer>,
}

/// Logits and probabilities of a batch, `[n, classes]` each.
pub struct GpuOutput {
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
}

/// A model the plan refuses, as the GPU executor reports it.
fn invalid(e: FormatError) -> GpuError {
    GpuError::Model(e.to_string())
}

fn u(v: usize) -> u32 {
    v as u32
}

impl GpuExecutor {
    /// Uploads a compiled [`Plan`]'s weights and makes every buffer and pipeline; the plan is
    /// only read, so one plan can feed several executors (and the CPU's afterwards).
    pub fn from_plan(
        dev: Arc<GpuDevice>,
        plan: &Plan,
        kernel: GemmKernel,
        batch: usize,
    ) -> Result<Self, GpuError> {
        let (steps, shapes, output) = (plan.steps(), plan.shapes(), plan.output());
        let (layers, tensors) = (plan.layers(), plan.tensors());
        let device = &dev.device;
        let layer_bufs: Vec<LayerBuffers> = layers
            .iter()
            .map(|l| LayerBuffers::new(device, l))
            .collect();
        let tensor_bufs: Vec<wgpu::Buffer> = tensors
            .iter()
            .map(|t| storage_init(device, &t.name, bytemuck::cast_slice(&t.data)))
            .collect();
        let mut batch = batch.max(1);
        // Keep every value of a batch inside one binding.
        let max_floats = (device.limits().max_storage_buffer_binding_size / 4) as usize;
        let largest = shapes.iter().map(Shape::numel).max().unwrap_or(1).max(1);
        batch = batch.min((max_floats / largest).max(1));
        // Values that a fused step never materialises (a convolution's output before its ReLU)
        // get a placeholder.
        let mut written = vec![false; shapes.len()];
        written[0] = true;
        steps.iter().for_each(|s| written[s.output()] = true);
        let values: Vec<wgpu::Buffer> = shapes
            .iter()
            .enumerate()
            .map(|(v, s)| {
                let floats = if written[v] { s.numel() * batch } else { 1 };
                activation(device, &format!("value {v}"), floats)
            })
            .collect();
        let classes = shapes[output].numel();
        let probs = activation(device, "probabilities", classes * batch);
        let batch_uniform = uniform(device, "batch", &[0u32]);
        let dummy = activation(device, "absent operand", 1);
        let shared = Shared {
            device,
            kernels: &dev.kernels,
            batch: &batch_uniform,
            dummy: &dummy,
        };
        let model = ModelBuffers {
            shapes,
            layers: &layer_bufs,
            tensors: &tensor_bufs,
            values: &values,
        };
        let mut dispatches: Vec<Dispatch> = steps
            .iter()
            .map(|step| build(&shared, step, &model, kernel).map_err(GpuError::Model))
            .collect::<Result<_, _>>()?;
        dispatches.push(dispatch::softmax(
            &shared,
            u(classes),
            &values[output],
            &probs,
        ));
        let cap = dispatches
            .iter()
            .map(Dispatch::max_batch)
            .min()
            .unwrap_or(1);
        batch = batch.min(cap.max(1) as usize);
        let staging = readback(device, (2 * classes * batch * 4) as u64);
        Ok(Self {
            dispatches,
            values,
            probs,
            batch_uniform,
            staging,
            input_len: shapes[0].numel(),
            classes,
            output,
            batch,
            lock: Mutex::new(()),
            busy: std::sync::atomic::AtomicBool::new(false),
            _layers: layer_bufs,
            _tensors: tensor_bufs,
            dev,
        })
    }

    /// Validates and compiles a model, taking its layers ([`Plan::from_model`]), and uploads it.
    pub fn from_model(
        dev: Arc<GpuDevice>,
        model: &mut PackedModel,
        kernel: GemmKernel,
        batch: usize,
    ) -> Result<Self, GpuError> {
        let plan = Plan::from_model(model).map_err(invalid)?;
        Self::from_plan(dev, &plan, kernel, batch)
    }

    /// A bare graph with its layers ([`Plan::from_graph`]): any output shape (the "classes" are
    /// then its elements).
    pub fn from_graph(
        dev: Arc<GpuDevice>,
        graph: &Graph,
        layers: Vec<Layer>,
        kernel: GemmKernel,
        batch: usize,
    ) -> Result<Self, GpuError> {
        let plan = Plan::from_graph(graph, layers).map_err(invalid)?;
        Self::from_plan(dev, &plan, kernel, batch)
    }

    /// A graph with its layers and extra parameter tensors ([`Plan::from_parts`]).
    pub fn from_parts(
        dev: Arc<GpuDevice>,
        graph: &Graph,
        layers: Vec<Layer>,
        tensors: Vec<NamedTensor>,
        kernel: GemmKernel,
        batch: usize,
    ) -> Result<Self, GpuError> {
        let plan = Plan::from_parts(graph, layers, tensors).map_err(invalid)?;
        Self::from_plan(dev, &plan, kernel, batch)
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Images per submit.
    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn input_len(&self) -> usize {
        self.input_len
    }

    pub fn output_len(&self) -> usize {
        self.classes
    }

    /// Logits and probabilities of `n` preprocessed images (NCHW): one submit per batch.
    pub fn run_batch(&self, images: &[f32], n: usize) -> Result<GpuOutput, GpuError> {
        if images.len() != n * self.input_len {
            return Err(GpuError::Input {
                got: images.len(),
                expected: n * self.input_len,
            });
        }
        let mut out = GpuOutput {
            logits: Vec::with_capacity(n * self.classes),
            probabilities: Vec::with_capacity(n * self.classes),
        };
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        for chunk in images.chunks((self.batch * self.input_len).max(1)) {
            let b = chunk.len() / self.input_len.max(1);
            let (l, p) = self.submit(chunk, b)?;
            out.logits.extend(l);
            out.probabilities.extend(p);
        }
        Ok(out)
    }

    /// [`Self::run_batch`] as a future, for a browser (WebGPU), which cannot block: the same
    /// encoding, and the read-back awaits the buffer mapping. Not re-entrant: a second call
    /// while one is pending is an error (the page's worker runs one photo at a time).
    pub async fn run_batch_async(&self, images: &[f32], n: usize) -> Result<GpuOutput, GpuError> {
        if images.len() != n * self.input_len {
            return Err(GpuError::Input {
                got: images.len(),
                expected: n * self.input_len,
            });
        }
        // A flag instead of the mutex: a lock guard must not be held across an await.
        if self.busy.swap(true, std::sync::atomic::Ordering::Acquire) {
            return Err(GpuError::Run(
                "a GPU run is already in progress on this model".into(),
            ));
        }
        let mut out = GpuOutput {
            logits: Vec::with_capacity(n * self.classes),
            probabilities: Vec::with_capacity(n * self.classes),
        };
        let mut result = Ok(());
        for chunk in images.chunks((self.batch * self.input_len).max(1)) {
            let b = chunk.len() / self.input_len.max(1);
            self.encode(chunk, b);
            match read_floats_async(&self.dev.device, &self.staging, 2 * b * self.classes).await {
                Ok(both) => {
                    let (l, p) = both.split_at(b * self.classes);
                    out.logits.extend_from_slice(l);
                    out.probabilities.extend_from_slice(p);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.busy.store(false, std::sync::atomic::Ordering::Release);
        result?;
        // A command the browser refused leaves the outputs untouched: report it, never zeros.
        let errors = self.dev.take_errors();
        if !errors.is_empty() {
            return Err(GpuError::Run(errors.join("; ")));
        }
        Ok(out)
    }

    /// One batch: upload, every kernel in one compute pass, one copy back.
    fn submit(&self, images: &[f32], n: usize) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        self.encode(images, n);
        let both = read_floats(&self.dev.device, &self.staging, 2 * n * self.classes)?;
        let (l, p) = both.split_at(n * self.classes);
        Ok((l.to_vec(), p.to_vec()))
    }

    /// Uploads a batch and submits its whole forward pass and the copy into the staging buffer.
    fn encode(&self, images: &[f32], n: usize) {
        let (device, queue) = (&self.dev.device, &self.dev.queue);
        queue.write_buffer(&self.values[0], 0, bytemuck::cast_slice(images));
        queue.write_buffer(&self.batch_uniform, 0, bytemuck::bytes_of(&(n as u32)));
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("forward"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            for d in &self.dispatches {
                d.record(&mut pass, n as u32);
            }
        }
        let bytes = (n * self.classes * 4) as u64;
        enc.copy_buffer_to_buffer(&self.values[self.output], 0, &self.staging, 0, bytes);
        enc.copy_buffer_to_buffer(&self.probs, 0, &self.staging, bytes, bytes);
        queue.submit([enc.finish()]);
    }
}

/// What a step's dispatch binds: the value shapes and the load-time buffers.
struct ModelBuffers<'a> {
    shapes: &'a [Shape],
    layers: &'a [LayerBuffers],
    tensors: &'a [wgpu::Buffer],
    values: &'a [wgpu::Buffer],
}

/// The dispatch of one step (the same step list the CPU executor runs); an error names what the
/// GPU cannot run.
fn build(
    s: &Shared,
    step: &Step,
    m: &ModelBuffers,
    kernel: GemmKernel,
) -> Result<Dispatch, String> {
    let (shapes, layers, values) = (m.shapes, m.layers, m.values);
    let chw = |v: usize| match shapes[v] {
        Shape::Chw(c, h, w) => (c, h, w),
        Shape::Flat(f) => (f, 1, 1),
        Shape::Seq(l, d) => (d, l, 1),
    };
    let seq = |v: usize| match shapes[v] {
        Shape::Seq(l, d) => Ok((l, d)),
        other => Err(format!(
            "{step:?} needs a token sequence, value {v} is {other:?}"
        )),
    };
    let numel = |v: usize| u(shapes[v].numel());
    // The token reshapes: one gather kernel, an index map per step.
    let gather_map = match step {
        Step::ToTokens { input, .. } => {
            let (c, h, w) = chw(*input);
            Some((gather::transpose(c, h * w)?, None))
        }
        Step::ToChw { input, .. } => {
            let (l, c) = seq(*input)?;
            Some((gather::transpose(l, c)?, None))
        }
        Step::ClassToken { tensor, input, .. } => {
            let (l, d) = seq(*input)?;
            Some((gather::class_token(l, d)?, Some(&m.tensors[*tensor])))
        }
        Step::TakeToken { index, input, .. } => {
            let (_, d) = seq(*input)?;
            Some((gather::take_token(*index, d)?, None))
        }
        Step::WindowPartition {
            height,
            width,
            window,
            input,
            ..
        } => {
            let (_, c) = seq(*input)?;
            let map = gather::window_partition(*height, *width, c, *window)?;
            Some((map, None))
        }
        Step::WindowReverse {
            height,
            width,
            window,
            input,
            ..
        } => {
            let (_, c) = seq(*input)?;
            let map = gather::window_reverse(*height, *width, c, *window)?;
            Some((map, None))
        }
        _ => None,
    };
    if let Some((map, extra)) = gather_map {
        let input = step.inputs()[0];
        return Ok(dispatch::gather(
            s,
            numel(input),
            &map,
            &values[input],
            extra,
            &values[step.output()],
        ));
    }
    Ok(match step {
        Step::Conv {
            layer,
            conv,
            input,
            residual,
            relu,
            gelu,
            output,
        } => {
            // Never set in the shared `Plan` (see the Linear step below).
            if *gelu {
                return Err("a convolution with a fused GELU reached the GPU executor".into());
            }
            let ((c, h, w), (co, ho, wo)) = (chw(*input), chw(*output));
            let cg = c / conv.groups;
            let params = GemmParams {
                m: u(co / conv.groups),
                k: u(cg * conv.kernel * conv.kernel),
                c_in: u(c),
                h: u(h),
                w: u(w),
                c_group: u(cg),
                c_out: u(co),
                ho: u(ho),
                wo: u(wo),
                kernel: u(conv.kernel),
                stride: u(conv.stride),
                padding: u(conv.padding),
                flags: if *relu { RELU } else { 0 } | if residual.is_some() { ADD } else { 0 },
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            };
            // A 64-row tile would be nearly empty for a depthwise convolution's one row per
            // group (TinyViT's MBConv): one thread per output wastes nothing there.
            let kernel = if params.m <= DEPTHWISE_ROWS {
                GemmKernel::Naive
            } else {
                kernel
            };
            dispatch::gemm(
                s,
                kernel,
                params,
                u(conv.groups),
                &layers[*layer],
                &values[*input],
                residual.map(|r| &values[r]),
                &values[*output],
            )
        }
        Step::Linear {
            layer,
            input,
            relu,
            gelu,
            output,
        } => {
            // The shared `Plan` never sets it (only the CPU executor's `fuse_gelu` does): the
            // GEMM shader has no GELU epilogue, the graph's `Gelu` runs as its own kernel.
            if *gelu {
                return Err("a Linear step with a fused GELU reached the GPU executor".into());
            }
            // On tokens: one GEMM column per (image, token), token-major in and out.
            let (l, k, o, tokens) = match (shapes[*input], shapes[*output]) {
                (Shape::Seq(l, k), Shape::Seq(_, o)) => (l, k, o, TOKENS),
                (i, o) => (1, i.numel(), o.numel(), 0),
            };
            let params = GemmParams {
                m: u(o),
                k: u(k),
                c_in: u(k),
                h: 1,
                w: 1,
                c_group: u(k),
                c_out: u(o),
                ho: u(l),
                wo: 1,
                kernel: 1,
                stride: 1,
                padding: 0,
                flags: if *relu { RELU } else { 0 } | tokens,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            };
            dispatch::gemm(
                s,
                kernel,
                params,
                1,
                &layers[*layer],
                &values[*input],
                None,
                &values[*output],
            )
        }
        Step::MaxPool {
            kernel,
            stride,
            padding,
            input,
            output,
        } => {
            let ((c, h, w), (_, ho, wo)) = (chw(*input), chw(*output));
            let params = PoolParams {
                c: u(c),
                h: u(h),
                w: u(w),
                ho: u(ho),
                wo: u(wo),
                kernel: u(*kernel),
                stride: u(*stride),
                padding: u(*padding),
            };
            dispatch::max_pool(s, params, &values[*input], &values[*output])
        }
        Step::GlobalAvgPool { input, output } => {
            let (c, h, w) = chw(*input);
            dispatch::global_avg_pool(s, u(c), u(h * w), &values[*input], &values[*output])
        }
        Step::Add { a, b, relu, output } => dispatch::add_relu(
            s,
            u(shapes[*output].numel()),
            ADD | if *relu { RELU } else { 0 },
            &values[*a],
            Some(&values[*b]),
            &values[*output],
        ),
        Step::Relu { input, output } => dispatch::add_relu(
            s,
            u(shapes[*output].numel()),
            RELU,
            &values[*input],
            None,
            &values[*output],
        ),
        Step::LayerNorm {
            tensor,
            eps,
            input,
            output,
        } => {
            let (rows, d) = match shapes[*input] {
                Shape::Seq(l, d) => (l, d),
                other => (1, other.numel()),
            };
            dispatch::layer_norm(
                s,
                u(rows),
                u(d),
                *eps as f32,
                &values[*input],
                &m.tensors[*tensor],
                &m.tensors[*tensor + 1],
                &values[*output],
            )
        }
        Step::Gelu { input, output } => {
            dispatch::gelu(s, numel(*output), &values[*input], &values[*output])
        }
        Step::PosEmbed {
            tensor,
            input,
            output,
        } => dispatch::add_relu(
            s,
            numel(*output),
            ADD | BROADCAST,
            &values[*input],
            Some(&m.tensors[*tensor]),
            &values[*output],
        ),
        Step::Attention {
            attention: a,
            bias,
            input,
            output,
        } => {
            let (l, f) = seq(*input)?;
            let params = AttentionParams {
                l: u(l),
                heads: u(a.heads),
                kd: u(a.key_dim),
                vd: u(a.val_dim),
                f: u(f),
                g: u(a.group.unwrap_or(l)),
                qkv_order: match a.layout {
                    QkvLayout::QkvHeads => 0,
                    QkvLayout::HeadsQkv => 1,
                },
                ws: u(if bias.is_some() {
                    a.bias_window.unwrap_or(0)
                } else {
                    0
                }),
                // As the CPU computes it.
                scale: (a.key_dim as f32).powf(-0.5),
            };
            dispatch::attention(
                s,
                params,
                &values[*input],
                bias.map(|t| &m.tensors[t]),
                &values[*output],
            )
        }
        Step::ToTokens { .. }
        | Step::ToChw { .. }
        | Step::ClassToken { .. }
        | Step::TakeToken { .. }
        | Step::WindowPartition { .. }
        | Step::WindowReverse { .. } => unreachable!("dispatched as a gather above"),
    })
}
