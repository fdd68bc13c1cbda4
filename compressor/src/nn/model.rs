//! The trainable model: interprets an `fq_models::Graph` with candle ops, with train-mode batch
//! norm (candle-transformers' ResNet always runs batch norm in eval mode) and optional
//! fake-quantized Conv2d/Linear weights.

use crate::nn::fake_quant::fake_quant;
use crate::nn::ops;
use crate::nn::params::ParamStore;
use crate::nn::quant::{BitAssignment, Granularity};
use crate::nn::transform::WeightTransform;
use crate::nn::transformer as tf;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use fq_models::{Graph, Op};

/// Batch norm uses batch statistics and updates its running statistics in `Train` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// How Conv2d/Linear weights are quantized in a forward pass.
#[derive(Clone, Copy)]
pub enum Quant<'a> {
    /// Full-precision weights.
    Fp32,
    /// Fixed per-channel bit-widths with the spec §1 quantizer (PTQ, QAT).
    Fixed(&'a BitAssignment),
    /// Weights a method transforms (FQ-BAQ's learnable bit-widths, spec §4; FairGRAPE's pruning
    /// masks), through the trait that keeps this interpreter free of the methods.
    Transform(&'a dyn WeightTransform),
}

impl<'a> From<Option<&'a BitAssignment>> for Quant<'a> {
    fn from(b: Option<&'a BitAssignment>) -> Self {
        b.map_or(Quant::Fp32, Quant::Fixed)
    }
}

/// A graph with its parameters on a device.
pub struct Model {
    pub graph: Graph,
    pub params: ParamStore,
    pub device: Device,
}

impl Model {
    pub fn new(graph: Graph, params: ParamStore, device: Device) -> Self {
        Self {
            graph,
            params,
            device,
        }
    }

    /// Logits `[N, K]` for a batch `[N, C, H, W]`. With `bits`, every Conv2d/Linear weight is
    /// fake-quantized (STE) with its layer's per-channel bit-widths.
    pub fn forward(&self, x: &Tensor, mode: Mode, bits: Option<&BitAssignment>) -> Result<Tensor> {
        self.forward_q(x, mode, bits.into())
    }

    /// Logits with any weight quantization.
    pub fn forward_q(&self, x: &Tensor, mode: Mode, quant: Quant) -> Result<Tensor> {
        let mut values: Vec<Option<Tensor>> = vec![None; self.graph.nodes.len() + 1];
        // Count the remaining uses of each value, so intermediate tensors are dropped early.
        let mut uses = vec![0usize; values.len()];
        for n in &self.graph.nodes {
            for &i in &n.inputs {
                uses[i] += 1;
            }
        }
        uses[self.graph.output] += 1;
        let relu_inside = relus_to_fuse(&self.graph, &uses);
        values[0] = Some(x.clone());
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let arg = |k: usize| -> Result<&Tensor> {
                values[node.inputs[k]]
                    .as_ref()
                    .context("graph input used after it was dropped")
            };
            let name = &node.name;
            let out = match &node.op {
                Op::Conv2d(c) => {
                    let w = self.weight(name, quant)?;
                    let train = mode == Mode::Train;
                    let y = ops::conv::conv2d(arg(0)?, &w, c.padding, c.stride, c.groups, train)?;
                    if c.bias {
                        let b = self.params.get(&format!("{name}.bias"))?.as_tensor();
                        y.broadcast_add(&b.reshape((1, c.out_channels, 1, 1))?)?
                    } else {
                        y
                    }
                }
                Op::BatchNorm2d {
                    channels,
                    eps,
                    momentum,
                } => {
                    let relu = relu_inside[i];
                    self.batch_norm(name, arg(0)?, *channels, *eps, *momentum, mode, relu)?
                }
                // Its producer applied it already.
                Op::Relu if fused_into_producer(node, &relu_inside) => arg(0)?.clone(),
                Op::Relu => arg(0)?.relu()?,
                Op::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => match ops::max_pool::max_pool2d(arg(0)?, *kernel, *stride, *padding)? {
                    Some(y) => y,
                    None => max_pool(arg(0)?, *kernel, *stride, *padding)?,
                },
                Op::Add if relu_inside[i] => ops::add_relu::add_relu(arg(0)?, arg(1)?)?,
                Op::Add => (arg(0)? + arg(1)?)?,
                Op::GlobalAvgPool => arg(0)?.mean(D::Minus1)?.mean(D::Minus1)?,
                Op::Linear(l) => {
                    let w = self.weight(name, quant)?;
                    let x = arg(0)?;
                    // Tokens `[N, L, D]` go through per token; anything else is flattened.
                    let y = if x.rank() == 3 {
                        let (n, t, d) = x.dims3()?;
                        x.reshape((n * t, d))?
                            .matmul(&w.t()?)?
                            .reshape((n, t, l.out_features))?
                    } else {
                        x.flatten_from(1)?.matmul(&w.t()?)?
                    };
                    if l.bias {
                        y.broadcast_add(self.params.get(&format!("{name}.bias"))?.as_tensor())?
                    } else {
                        y
                    }
                }
                Op::LayerNorm { eps, .. } => {
                    let g = self.params.get(&format!("{name}.weight"))?.as_tensor();
                    let b = self.params.get(&format!("{name}.bias"))?.as_tensor();
                    tf::layer_norm(arg(0)?, g, b, *eps)?
                }
                Op::Gelu => arg(0)?.gelu_erf()?,
                Op::ToTokens => tf::to_tokens(arg(0)?)?,
                Op::ToChw { height, width } => tf::to_chw(arg(0)?, *height, *width)?,
                Op::ClassToken { .. } => {
                    tf::class_token(arg(0)?, self.params.get(name)?.as_tensor())?
                }
                Op::PosEmbed { .. } => arg(0)?.broadcast_add(self.params.get(name)?.as_tensor())?,
                Op::TakeToken { index } => arg(0)?.narrow(1, *index, 1)?.squeeze(1)?,
                Op::WindowPartition {
                    height,
                    width,
                    window,
                } => tf::window_partition(arg(0)?, *height, *width, *window)?,
                Op::WindowReverse {
                    height,
                    width,
                    window,
                } => tf::window_reverse(arg(0)?, *height, *width, *window)?,
                Op::Attention(a) => {
                    let biases = match a.bias_window {
                        Some(_) => Some(
                            self.params
                                .get(&format!("{name}.attention_biases"))?
                                .as_tensor(),
                        ),
                        None => None,
                    };
                    tf::attention(arg(0)?, a, biases)?
                }
            };
            for &inp in &node.inputs {
                uses[inp] -= 1;
                if uses[inp] == 0 {
                    values[inp] = None;
                }
            }
            values[i + 1] = Some(out);
        }
        values[self.graph.output]
            .take()
            .context("graph produced no output")
    }

    fn weight(&self, name: &str, quant: Quant) -> Result<Tensor> {
        let w = self
            .params
            .get(&format!("{name}.weight"))?
            .as_tensor()
            .clone();
        match quant {
            Quant::Fp32 => Ok(w),
            Quant::Fixed(a) => match a.layers.get(name) {
                Some(b) => fake_quant(&w, b, a.granularity.unwrap_or(Granularity::PerChannel)),
                None => bail!("the bit assignment has no entry for layer `{name}`"),
            },
            Quant::Transform(t) => t.weight(name, &w),
        }
    }

    /// Batch norm in `mode`, followed by a ReLU with `relu`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm(
        &self,
        name: &str,
        x: &Tensor,
        c: usize,
        eps: f64,
        momentum: f64,
        mode: Mode,
        relu: bool,
    ) -> Result<Tensor> {
        let gamma = self.params.get(&format!("{name}.weight"))?.as_tensor();
        let beta = self.params.get(&format!("{name}.bias"))?.as_tensor();
        let rm = self.params.get(&format!("{name}.running_mean"))?;
        let rv = self.params.get(&format!("{name}.running_var"))?;
        // Running statistics use the unbiased variance, as PyTorch does.
        let update_running = |mean: &Tensor, var: &Tensor, count: f64| -> Result<()> {
            let unbiased = (var.detach() * (count / (count - 1.0).max(1.0)))?.flatten_all()?;
            rm.set(
                &((rm.as_tensor() * (1.0 - momentum))?
                    + (mean.detach().flatten_all()? * momentum)?)?,
            )?;
            rv.set(&((rv.as_tensor() * (1.0 - momentum))? + (unbiased * momentum)?)?)?;
            Ok(())
        };
        if mode == Mode::Train {
            if let Some(out) = ops::batch_norm::train(x, gamma, beta, eps, relu)? {
                let (n, _, h, w) = x.dims4()?;
                update_running(&out.mean, &out.var, (n * h * w) as f64)?;
                return Ok(out.y);
            }
        }
        let weight = gamma.reshape((1, c, 1, 1))?;
        let bias = beta.reshape((1, c, 1, 1))?;
        let (mean, var) = match mode {
            Mode::Train => {
                let (n, _, h, w) = x.dims4()?;
                let mean = x.mean_keepdim((0, 2, 3))?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
                update_running(&mean, &var, (n * h * w) as f64)?;
                (mean, var)
            }
            Mode::Eval => (
                rm.as_tensor().reshape((1, c, 1, 1))?,
                rv.as_tensor().reshape((1, c, 1, 1))?,
            ),
        };
        let inv = (var + eps)?.sqrt()?.recip()?;
        let y = x
            .broadcast_sub(&mean)?
            .broadcast_mul(&(inv * weight)?)?
            .broadcast_add(&bias)?;
        Ok(if relu { y.relu()? } else { y })
    }
}

/// Whether a ReLU node's producer already applied it ([`relus_to_fuse`]).
fn fused_into_producer(relu: &fq_models::Node, fuse: &[bool]) -> bool {
    let producer = relu.inputs.first().and_then(|v| v.checked_sub(1));
    producer.is_some_and(|p| fuse[p])
}

/// Per node: whether the ReLU that reads its output runs inside it, which a batch norm or a
/// residual add does when that ReLU is the output's only reader (`uses`, per value: its
/// readers). One op instead of two is one pass and one autograd node fewer per block (the
/// training step's ReLUs cost candle four single-threaded passes each backward).
fn relus_to_fuse(graph: &Graph, uses: &[usize]) -> Vec<bool> {
    let mut fuse = vec![false; graph.nodes.len()];
    for node in &graph.nodes {
        let Op::Relu = node.op else { continue };
        // Value `v` is node `v - 1`'s output (value 0 is the network input).
        let Some((v, p)) = node
            .inputs
            .first()
            .and_then(|&v| Some((v, v.checked_sub(1)?)))
        else {
            continue;
        };
        let fusable = matches!(graph.nodes[p].op, Op::BatchNorm2d { .. } | Op::Add);
        // The network's output counts as a reader too (`uses`), so it is never fused away.
        if fusable && uses[v] == 1 {
            fuse[p] = true;
        }
    }
    fuse
}

/// Max pooling built from shifted maxima, because candle's own max pool has no backward pass for
/// overlapping windows (ResNet's 3x3 stride-2 pool). Zero padding equals -inf padding here since
/// the input is non-negative (the pool follows a ReLU in every supported architecture).
pub fn max_pool(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let x = x
        .pad_with_zeros(2, padding, padding)?
        .pad_with_zeros(3, padding, padding)?;
    let (_, _, h, w) = x.dims4()?;
    let (ho, wo) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    // Stride-1 window maxima over the rows and columns the strided windows start at.
    let (hs, ws) = ((ho - 1) * stride + 1, (wo - 1) * stride + 1);
    let mut m: Option<Tensor> = None;
    for dy in 0..kernel {
        for dx in 0..kernel {
            let s = x.narrow(2, dy, hs)?.narrow(3, dx, ws)?;
            m = Some(match m {
                None => s,
                Some(m) => m.maximum(&s)?,
            });
        }
    }
    let m = m.context("max pool with an empty window")?;
    if stride == 1 {
        return Ok(m);
    }
    // Keep every `stride`-th row and column: pad to a multiple of the stride, fold, take index 0.
    let (n, c, _, _) = m.dims4()?;
    let m = m
        .pad_with_zeros(2, 0, ho * stride - hs)?
        .pad_with_zeros(3, 0, wo * stride - ws)?;
    Ok(m.reshape((n, c, ho, stride, wo, stride))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((n, c, ho, wo))?)
}
