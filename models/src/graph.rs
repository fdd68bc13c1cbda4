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
    Linear(Linear),
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
}

impl Shape {
    pub fn numel(&self) -> usize {
        match *self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(f) => f,
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
    /// Multiply-accumulates for one image.
    pub macs: u64,
    /// Operations counted as the spec's BOPs: `2 * MACs` for conv, `2 * in * out` for linear.
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
}

impl Graph {
    /// Output shape of every value (index 0 is the input).
    pub fn shapes(&self) -> Result<Vec<Shape>, GraphError> {
        let mut shapes = vec![Shape::Chw(
            self.in_channels,
            self.input_size,
            self.input_size,
        )];
        for (i, node) in self.nodes.iter().enumerate() {
            let bad = |msg: String| GraphError::Invalid {
                node: i,
                name: node.name.clone(),
                msg,
            };
            let input = |k: usize| -> Result<Shape, GraphError> {
                let id = *node
                    .inputs
                    .get(k)
                    .ok_or_else(|| bad(format!("missing input {k}")))?;
                if id > i {
                    return Err(bad(format!("input {id} is not computed before this node")));
                }
                Ok(shapes[id])
            };
            let out = match &node.op {
                Op::Conv2d(c) => match input(0)? {
                    Shape::Chw(ch, h, w) if ch == c.in_channels => {
                        let o = |x: usize| (x + 2 * c.padding - c.kernel) / c.stride + 1;
                        Shape::Chw(c.out_channels, o(h), o(w))
                    }
                    s => {
                        return Err(bad(format!(
                            "conv expects {} channels, got {s:?}",
                            c.in_channels
                        )))
                    }
                },
                Op::BatchNorm2d { channels, .. } => match input(0)? {
                    s @ Shape::Chw(ch, _, _) if ch == *channels => s,
                    s => {
                        return Err(bad(format!(
                            "batch norm expects {channels} channels, got {s:?}"
                        )))
                    }
                },
                Op::Relu => input(0)?,
                Op::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => match input(0)? {
                    Shape::Chw(c, h, w) => {
                        let o = |x: usize| (x + 2 * padding - kernel) / stride + 1;
                        Shape::Chw(c, o(h), o(w))
                    }
                    s => return Err(bad(format!("max pool expects [C,H,W], got {s:?}"))),
                },
                Op::Add => {
                    let (a, b) = (input(0)?, input(1)?);
                    if a != b {
                        return Err(bad(format!("add of different shapes {a:?} and {b:?}")));
                    }
                    a
                }
                Op::GlobalAvgPool => match input(0)? {
                    Shape::Chw(c, _, _) => Shape::Flat(c),
                    s => return Err(bad(format!("global pool expects [C,H,W], got {s:?}"))),
                },
                Op::Linear(l) => {
                    let s = input(0)?;
                    if s.numel() != l.in_features {
                        return Err(bad(format!(
                            "linear expects {} features, got {s:?}",
                            l.in_features
                        )));
                    }
                    Shape::Flat(l.out_features)
                }
            };
            shapes.push(out);
        }
        Ok(shapes)
    }

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
                        Shape::Flat(_) => unreachable!("conv output is always [C,H,W]"),
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
                    let macs = (l.in_features * l.out_features) as u64;
                    out.push(QuantLayer {
                        name: node.name.clone(),
                        node: i,
                        weight_shape: vec![l.out_features, l.in_features],
                        out_channels: l.out_features,
                        params: macs,
                        macs,
                        bops: 2 * macs,
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Total multiply-accumulates of the Conv2d/Linear layers for one image.
    pub fn macs(&self) -> Result<u64, GraphError> {
        Ok(self.quant_layers()?.iter().map(|l| l.macs).sum())
    }
}
