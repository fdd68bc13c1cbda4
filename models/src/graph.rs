//! The architecture as data: a DAG of operations with torchvision/timm parameter names.
//!
//! Both the candle trainer (compressor) and the packed-model executor (runtime) interpret the
//! same `Graph`, so a layer cannot exist on one side and not on the other.

use serde::{Deserialize, Serialize};

/// Index of a value (tensor) in the graph: 0 is the input image, node `i` produces value `i + 1`.
pub type ValueId = usize;

/// A 2-D convolution; the weight is `{name}.weight` with shape `[out, in/groups, k, k]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub bias: bool,
}

/// A fully connected layer; the weight is `{name}.weight` with shape `[out, in]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
}

/// How a fused `qkv` projection lays out its output features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QkvLayout {
    /// timm's ViT: `[3, heads, head_dim]` (all queries, then all keys, then all values).
    QkvHeads,
    /// timm's TinyViT/LeViT: `[heads, key_dim + key_dim + val_dim]` (each head's q, k, v together).
    HeadsQkv,
}

/// Multi-head scaled dot-product attention over a token sequence, reading the output of a fused
/// `qkv` Linear and writing `heads * val_dim` features per token (before the `proj` Linear).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attention {
    pub heads: usize,
    pub key_dim: usize,
    pub val_dim: usize,
    pub layout: QkvLayout,
    /// Tokens attend only within consecutive groups of this many (TinyViT's windows, already
    /// partitioned by [`Op::WindowPartition`]); `None`: the whole sequence.
    pub group: Option<usize>,
    /// TinyViT's learned attention biases for a `window x window` group: parameter
    /// `{name}.attention_biases` of shape `[heads, window * window]`, indexed by `|dy| * window + |dx|`.
    pub bias_window: Option<usize>,
}

impl Attention {
    /// Features per token the `qkv` Linear must produce.
    pub fn qkv_features(&self) -> usize {
        self.heads * (2 * self.key_dim + self.val_dim)
    }

    /// Features per token written.
    pub fn out_features(&self) -> usize {
        self.heads * self.val_dim
    }

    /// Column of the bias table for query position `i` and key position `j` of a `ws x ws`
    /// window: `|dy| * ws + |dx|`, the order in which timm's TinyViT enumerates offsets.
    pub fn bias_index(i: usize, j: usize, ws: usize) -> usize {
        (i / ws).abs_diff(j / ws) * ws + (i % ws).abs_diff(j % ws)
    }
}

/// The operations a graph may contain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Conv2d(Conv2d),
    /// Batch norm over channels: `{name}.weight/bias/running_mean/running_var`.
    BatchNorm2d {
        channels: usize,
        eps: f64,
        momentum: f64,
    },
    Relu,
    MaxPool2d {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    /// Elementwise sum of two values (residual connection).
    Add,
    /// Mean over the spatial axes: `[N, C, H, W] -> [N, C]`.
    GlobalAvgPool,
    /// Applied per token on `[L, in]` (or to a flattened `[C, H, W]`).
    Linear(Linear),
    /// Layer norm over the last axis (features of each token, or a pooled vector):
    /// `{name}.weight/bias`.
    LayerNorm {
        dim: usize,
        eps: f64,
    },
    /// The exact (erf) GELU, PyTorch's `nn.GELU()` default.
    Gelu,
    /// `[C, H, W] -> [H*W, C]` (timm's `flatten(2).transpose(1, 2)`).
    ToTokens,
    /// `[H*W, C] -> [C, H, W]`.
    ToChw {
        height: usize,
        width: usize,
    },
    /// Prepends the learned class token, parameter `{name}` of shape `[1, 1, dim]`.
    ClassToken {
        dim: usize,
    },
    /// Adds the learned position embedding, parameter `{name}` of shape `[1, tokens, dim]`.
    PosEmbed {
        tokens: usize,
        dim: usize,
    },
    /// `[L, D] -> [D]`: the token at `index` (the class token for ViT's head).
    TakeToken {
        index: usize,
    },
    /// `[H*W, C]` (row-major grid) `-> [nh*nw*window*window, C]`: zero-pads the grid to multiples
    /// of `window` and orders tokens window by window, as TinyViT does before attention.
    WindowPartition {
        height: usize,
        width: usize,
        window: usize,
    },
    /// The inverse of [`Op::WindowPartition`], dropping the padding.
    WindowReverse {
        height: usize,
        width: usize,
        window: usize,
    },
    Attention(Attention),
}

/// Windows per axis after padding `n` up to a multiple of `window`.
pub fn windows(n: usize, window: usize) -> usize {
    n.div_ceil(window)
}

/// One operation applied to earlier values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Module name in torchvision/timm naming (`layer1.0.conv1`); empty for parameter-free ops.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
}

/// Shape of one value without the batch axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// `[C, H, W]`
    Chw(usize, usize, usize),
    /// `[F]`
    Flat(usize),
    /// `[L, D]`: `L` tokens of `D` features.
    Seq(usize, usize),
}

impl Shape {
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(f) => f,
            Shape::Seq(l, d) => l * d,
        }
    }
}

/// A model graph with its input geometry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Architecture name, e.g. `resnet18` or `resnet18-w16`.
    pub arch: String,
    pub in_channels: usize,
    pub input_size: usize,
    pub num_classes: usize,
    pub nodes: Vec<Node>,
    /// The value holding the logits.
    pub output: ValueId,
}

/// A parameter tensor the graph needs, in module registration order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    /// Whether it is a Conv2d/Linear weight (the tensors FairQuant quantizes).
    pub quantizable: bool,
    /// Batch-norm running statistics are buffers, not trainable parameters.
    pub buffer: bool,
}

/// A Conv2d or Linear layer as FairQuant sees it: one bit-width per output channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantLayer {
    /// Module name; its weight is `{name}.weight`.
    pub name: String,
    pub node: usize,
    pub weight_shape: Vec<usize>,
    pub out_channels: usize,
    pub params: u64,
    /// Multiply-accumulates for one image (a Linear on tokens: once per token).
    pub macs: u64,
    /// Operations counted as the spec's BOPs: `2 * MACs` for conv, `2 * in * out` for linear
    /// (once per layer, whatever the number of tokens).
    pub bops: u64,
}

/// Errors in a graph's structure.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("node {node} (`{name}`): {msg}")]
    Invalid {
        node: usize,
        name: String,
        msg: String,
    },
    #[error("output value {output} is not a node's output (the graph has {nodes} nodes)")]
    Output { output: usize, nodes: usize },
}

impl Graph {
    /// Every parameter and buffer, in module registration order, with torchvision names.
    pub fn params(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, quantizable: bool, buffer: bool| {
            out.push(ParamSpec {
                name,
                shape,
                quantizable,
                buffer,
            })
        };
        for node in &self.nodes {
            let n = &node.name;
            match &node.op {
                Op::Conv2d(c) => {
                    push(
                        format!("{n}.weight"),
                        vec![c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel],
                        true,
                        false,
                    );
                    if c.bias {
                        push(format!("{n}.bias"), vec![c.out_channels], false, false);
                    }
                }
                Op::BatchNorm2d { channels, .. } => {
                    push(format!("{n}.weight"), vec![*channels], false, false);
                    push(format!("{n}.bias"), vec![*channels], false, false);
                    push(format!("{n}.running_mean"), vec![*channels], false, true);
                    push(format!("{n}.running_var"), vec![*channels], false, true);
                }
                Op::Linear(l) => {
                    push(
                        format!("{n}.weight"),
                        vec![l.out_features, l.in_features],
                        true,
                        false,
                    );
                    if l.bias {
                        push(format!("{n}.bias"), vec![l.out_features], false, false);
                    }
                }
                Op::LayerNorm { dim, .. } => {
                    push(format!("{n}.weight"), vec![*dim], false, false);
                    push(format!("{n}.bias"), vec![*dim], false, false);
                }
                Op::ClassToken { dim } => push(n.clone(), vec![1, 1, *dim], false, false),
                Op::PosEmbed { tokens, dim } => {
                    push(n.clone(), vec![1, *tokens, *dim], false, false)
                }
                Op::Attention(a) => {
                    if let Some(w) = a.bias_window {
                        push(
                            format!("{n}.attention_biases"),
                            vec![a.heads, w * w],
                            false,
                            false,
                        );
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Number of trainable parameters (what torchvision's `sum(p.numel())` counts; buffers excluded).
    pub fn param_count(&self) -> u64 {
        self.params()
            .iter()
            .filter(|p| !p.buffer)
            .map(|p| p.shape.iter().product::<usize>() as u64)
            .sum()
    }

    /// The Conv2d/Linear layers in registration order, with parameter, MAC and BOP counts.
    pub fn quant_layers(&self) -> Result<Vec<QuantLayer>, GraphError> {
        let shapes = self.shapes()?;
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            match &node.op {
                Op::Conv2d(c) => {
                    let (ho, wo) = match shapes[i + 1] {
                        Shape::Chw(_, h, w) => (h, w),
                        _ => unreachable!("conv output is always [C,H,W]"),
                    };
                    let per_out = (c.in_channels / c.groups) * c.kernel * c.kernel;
                    let macs = (ho * wo * c.out_channels * per_out) as u64;
                    out.push(QuantLayer {
                        name: node.name.clone(),
                        node: i,
                        weight_shape: vec![
                            c.out_channels,
                            c.in_channels / c.groups,
                            c.kernel,
                            c.kernel,
                        ],
                        out_channels: c.out_channels,
                        params: (c.out_channels * per_out) as u64,
                        macs,
                        bops: 2 * macs,
                    });
                }
                Op::Linear(l) => {
                    let params = (l.in_features * l.out_features) as u64;
                    let tokens = match shapes[i + 1] {
                        Shape::Seq(t, _) => t as u64,
                        _ => 1,
                    };
                    out.push(QuantLayer {
                        name: node.name.clone(),
                        node: i,
                        weight_shape: vec![l.out_features, l.in_features],
                        out_channels: l.out_features,
                        params,
                        macs: tokens * params,
                        // Spec §8: a Linear counts once, not once per token.
                        bops: 2 * params,
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Total multiply-accumulates of the Conv2d/Linear layers for one image (attention matmuls
    /// excluded, as in the spec's counts).
    pub fn macs(&self) -> Result<u64, GraphError> {
        Ok(self.quant_layers()?.iter().map(|l| l.macs).sum())
    }

    /// Multiply-accumulates of the attention matmuls (`q k^T` and `attn v`) for one image.
    pub fn attention_macs(&self) -> Result<u64, GraphError> {
        let shapes = self.shapes()?;
        let mut total = 0u64;
        for node in &self.nodes {
            if let Op::Attention(a) = &node.op {
                let Shape::Seq(l, _) = shapes[node.inputs[0]] else {
                    continue;
                };
                let g = a.group.unwrap_or(l);
                total += (l * g * a.heads * (a.key_dim + a.val_dim)) as u64;
            }
        }
        Ok(total)
    }

    /// The model's total of the spec's BOPs at 32 bits (`2 * MACs` of convs, `2 * in * out` per
    /// Linear), in giga-operations: the FP32 GBOPs column of the paper's table.
    pub fn fp32_gbops(&self) -> Result<f64, GraphError> {
        Ok(self.quant_layers()?.iter().map(|l| l.bops).sum::<u64>() as f64 / 1e9)
    }
}
