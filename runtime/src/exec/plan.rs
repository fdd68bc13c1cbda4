//! From a folded graph to a list of steps, with the cheap ops fused into the convolution that
//! feeds them: ReLU after a convolution, and a residual add (plus its ReLU) into the later of the
//! two branches, so a ResNet block's tail costs no extra pass over memory. The CPU executor also
//! fuses a GELU into the Linear or convolution before it ([`fuse_gelu`]).

use fq_models::{Attention, Conv2d, Graph, Op, Shape, ValueId};

use crate::format::{FormatError, Layer, NamedTensor, PackedModel};

/// A model compiled once: its validated value shapes, its fused steps, and the layers and extra
/// tensors the steps read. The CPU [`Executor`](super::Executor) and the GPU executor are both
/// built from a `Plan` (`from_plan`), so the two cannot validate or fuse a graph differently,
/// and one validated model can feed both. The constructors of both executors mirror this one's:
/// `from_model`, `from_graph`, `from_parts`.
#[derive(Clone, Debug)]
pub struct Plan {
    steps: Vec<Step>,
    shapes: Vec<Shape>,
    output: ValueId,
    layers: Vec<Layer>,
    tensors: Vec<NamedTensor>,
}

impl Plan {
    /// Validates a whole model (as a file is) and compiles it, taking its layers and tensors.
    pub fn from_model(model: &mut PackedModel) -> Result<Self, FormatError> {
        let shapes = model.validated_shapes()?;
        let layers = std::mem::take(&mut model.layers);
        let tensors = std::mem::take(&mut model.tensors);
        Self::compile(&model.graph, shapes, layers, tensors)
    }

    /// Compiles a bare graph with its layers (in node order), checked like a model's but with
    /// any output shape: how tests and benchmarks run single kernels. For graphs without extra
    /// parameter tensors; see [`Plan::from_parts`].
    pub fn from_graph(graph: &Graph, layers: Vec<Layer>) -> Result<Self, FormatError> {
        Self::from_parts(graph, layers, Vec::new())
    }

    /// [`Plan::from_graph`] with the graph's extra parameter tensors (layer norms, class token,
    /// position embedding, attention biases; in node order).
    pub fn from_parts(
        graph: &Graph,
        layers: Vec<Layer>,
        tensors: Vec<NamedTensor>,
    ) -> Result<Self, FormatError> {
        let shapes = crate::format::validate_shapes(graph).map_err(FormatError::Invalid)?;
        crate::format::validate_layers(graph, &layers).map_err(FormatError::Invalid)?;
        crate::format::validate_tensors(graph, &tensors).map_err(FormatError::Invalid)?;
        Self::compile(graph, shapes, layers, tensors)
    }

    fn compile(
        graph: &Graph,
        shapes: Vec<Shape>,
        layers: Vec<Layer>,
        tensors: Vec<NamedTensor>,
    ) -> Result<Self, FormatError> {
        let steps = plan(graph);
        check_layer_count(&steps, layers.len()).map_err(FormatError::Invalid)?;
        Ok(Self {
            steps,
            shapes,
            output: graph.output,
            layers,
            tensors,
        })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Shape of every graph value, the input first.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// The value holding the logits.
    pub fn output(&self) -> ValueId {
        self.output
    }

    /// The Conv2d/Linear layers, in step order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The extra parameter tensors the steps index.
    pub fn tensors(&self) -> &[NamedTensor] {
        &self.tensors
    }

    /// Floats of one input image.
    pub fn input_len(&self) -> usize {
        self.shapes[0].numel()
    }

    /// Floats of one image's output.
    pub fn output_len(&self) -> usize {
        self.shapes[self.output].numel()
    }

    /// Steps, shapes, output, layers and tensors, for an executor that takes ownership.
    pub(crate) fn into_parts(
        self,
    ) -> (Vec<Step>, Vec<Shape>, ValueId, Vec<Layer>, Vec<NamedTensor>) {
        (
            self.steps,
            self.shapes,
            self.output,
            self.layers,
            self.tensors,
        )
    }
}

/// One executable step; values are the graph's value ids.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Conv {
        layer: usize,
        conv: Conv2d,
        input: ValueId,
        /// Added to the convolution's output before the ReLU.
        residual: Option<ValueId>,
        relu: bool,
        /// GELU on the output (after the residual) in the epilogue: set only by [`fuse_gelu`]
        /// (the CPU executor's pass), never in a [`Plan`], whose GPU executor has no GELU
        /// epilogue.
        gelu: bool,
        output: ValueId,
    },
    /// On a vector, or on every token of a sequence (`tokens > 1` or a `[L, D]` input).
    Linear {
        layer: usize,
        input: ValueId,
        relu: bool,
        /// GELU on the output in the epilogue: set only by [`fuse_gelu`] (the CPU executor's
        /// pass), never in a [`Plan`], whose GPU executor has no GELU epilogue.
        gelu: bool,
        output: ValueId,
    },
    /// `tensor` indexes [`PackedModel::tensors`](crate::format::PackedModel::tensors): the
    /// weight, then the bias at `tensor + 1`.
    LayerNorm {
        tensor: usize,
        eps: f64,
        input: ValueId,
        output: ValueId,
    },
    Gelu {
        input: ValueId,
        output: ValueId,
    },
    /// `[C, H, W] -> [H*W, C]`.
    ToTokens {
        input: ValueId,
        output: ValueId,
    },
    /// `[H*W, C] -> [C, H, W]`.
    ToChw {
        input: ValueId,
        output: ValueId,
    },
    ClassToken {
        tensor: usize,
        input: ValueId,
        output: ValueId,
    },
    PosEmbed {
        tensor: usize,
        input: ValueId,
        output: ValueId,
    },
    TakeToken {
        index: usize,
        input: ValueId,
        output: ValueId,
    },
    WindowPartition {
        height: usize,
        width: usize,
        window: usize,
        input: ValueId,
        output: ValueId,
    },
    WindowReverse {
        height: usize,
        width: usize,
        window: usize,
        input: ValueId,
        output: ValueId,
    },
    Attention {
        attention: Attention,
        /// The attention-bias table's tensor, if the op has one.
        bias: Option<usize>,
        input: ValueId,
        output: ValueId,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
        padding: usize,
        input: ValueId,
        output: ValueId,
    },
    GlobalAvgPool {
        input: ValueId,
        output: ValueId,
    },
    Add {
        a: ValueId,
        b: ValueId,
        relu: bool,
        output: ValueId,
    },
    Relu {
        input: ValueId,
        output: ValueId,
    },
}

impl Step {
    /// What kind of work the step is, for profiles: "conv", "linear", "attention", "layer-norm",
    /// "gelu", "layout" (token/window reshuffles), "pool", "add", "relu" or "token".
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Conv { .. } => "conv",
            Step::Linear { .. } => "linear",
            Step::Attention { .. } => "attention",
            Step::LayerNorm { .. } => "layer-norm",
            Step::Gelu { .. } => "gelu",
            Step::ToTokens { .. }
            | Step::ToChw { .. }
            | Step::WindowPartition { .. }
            | Step::WindowReverse { .. } => "layout",
            Step::MaxPool { .. } | Step::GlobalAvgPool { .. } => "pool",
            Step::Add { .. } => "add",
            Step::Relu { .. } => "relu",
            Step::ClassToken { .. } | Step::PosEmbed { .. } | Step::TakeToken { .. } => "token",
        }
    }

    /// The value this step writes.
    pub fn output(&self) -> ValueId {
        match self {
            Step::Conv { output, .. }
            | Step::Linear { output, .. }
            | Step::MaxPool { output, .. }
            | Step::GlobalAvgPool { output, .. }
            | Step::Add { output, .. }
            | Step::Relu { output, .. }
            | Step::LayerNorm { output, .. }
            | Step::Gelu { output, .. }
            | Step::ToTokens { output, .. }
            | Step::ToChw { output, .. }
            | Step::ClassToken { output, .. }
            | Step::PosEmbed { output, .. }
            | Step::TakeToken { output, .. }
            | Step::WindowPartition { output, .. }
            | Step::WindowReverse { output, .. }
            | Step::Attention { output, .. } => *output,
        }
    }

    pub fn inputs(&self) -> Vec<ValueId> {
        match self {
            Step::Conv {
                input, residual, ..
            } => std::iter::once(*input).chain(*residual).collect(),
            Step::Linear { input, .. }
            | Step::MaxPool { input, .. }
            | Step::GlobalAvgPool { input, .. }
            | Step::Relu { input, .. }
            | Step::LayerNorm { input, .. }
            | Step::Gelu { input, .. }
            | Step::ToTokens { input, .. }
            | Step::ToChw { input, .. }
            | Step::ClassToken { input, .. }
            | Step::PosEmbed { input, .. }
            | Step::TakeToken { input, .. }
            | Step::WindowPartition { input, .. }
            | Step::WindowReverse { input, .. }
            | Step::Attention { input, .. } => vec![*input],
            Step::Add { a, b, .. } => vec![*a, *b],
        }
    }
}

/// That a plan's Conv/Linear steps and the model's layers pair up one to one.
fn check_layer_count(steps: &[Step], layers: usize) -> Result<(), String> {
    let n = steps
        .iter()
        .filter(|s| matches!(s, Step::Conv { .. } | Step::Linear { .. }))
        .count();
    if n != layers {
        return Err(format!("{layers} layers for {n} Conv2d/Linear nodes"));
    }
    Ok(())
}

/// The steps of a validated, folded graph (no batch norm) in execution order. Extra parameter
/// tensors are numbered in node order, as [`crate::format::tensor_specs`] lists them.
fn plan(g: &Graph) -> Vec<Step> {
    let n = g.nodes.len();
    // Consumers of each value; the graph output counts as one so it is never fused away.
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    for (i, node) in g.nodes.iter().enumerate() {
        for &v in &node.inputs {
            consumers[v].push(i);
        }
    }
    consumers[g.output].push(usize::MAX);
    let only_consumer = |v: ValueId, pred: &dyn Fn(&Op) -> bool| -> Option<usize> {
        match consumers[v][..] {
            [c] if c != usize::MAX && pred(&g.nodes[c].op) => Some(c),
            _ => None,
        }
    };
    let is_relu = |op: &Op| matches!(op, Op::Relu);
    let mut fused = vec![false; n];
    // Fuses a following ReLU into the step producing `v`; returns the value the step now writes.
    let fuse_relu = |v: ValueId, fused: &mut Vec<bool>| -> (ValueId, bool) {
        match only_consumer(v, &is_relu) {
            Some(r) => {
                fused[r] = true;
                (r + 1, true)
            }
            None => (v, false),
        }
    };
    let mut steps = Vec::with_capacity(n);
    let mut layer = 0;
    let mut tensor = 0;
    // Takes the next `k` extra tensors; returns the first one's index.
    let mut take = |k: usize| {
        tensor += k;
        tensor - k
    };
    for (i, node) in g.nodes.iter().enumerate() {
        if fused[i] {
            continue;
        }
        let v = i + 1;
        let input = node.inputs[0];
        match &node.op {
            Op::Conv2d(c) => {
                let mut out = v;
                let mut residual = None;
                // The add may run here if its other operand is already computed (`<= i`).
                if let Some(a) = only_consumer(v, &|op| matches!(op, Op::Add)) {
                    let ins = &g.nodes[a].inputs;
                    let other = if ins[0] == v { ins[1] } else { ins[0] };
                    if other != v && other <= i {
                        fused[a] = true;
                        residual = Some(other);
                        out = a + 1;
                    }
                }
                let (output, relu) = fuse_relu(out, &mut fused);
                steps.push(Step::Conv {
                    layer,
                    conv: c.clone(),
                    input,
                    residual,
                    relu,
                    gelu: false,
                    output,
                });
                layer += 1;
            }
            Op::Linear(_) => {
                let (output, relu) = fuse_relu(v, &mut fused);
                steps.push(Step::Linear {
                    layer,
                    input,
                    relu,
                    gelu: false,
                    output,
                });
                layer += 1;
            }
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
            } => steps.push(Step::MaxPool {
                kernel: *kernel,
                stride: *stride,
                padding: *padding,
                input,
                output: v,
            }),
            Op::GlobalAvgPool => steps.push(Step::GlobalAvgPool { input, output: v }),
            Op::Add => {
                let (output, relu) = fuse_relu(v, &mut fused);
                steps.push(Step::Add {
                    a: input,
                    b: node.inputs[1],
                    relu,
                    output,
                });
            }
            Op::Relu => steps.push(Step::Relu { input, output: v }),
            Op::BatchNorm2d { .. } => unreachable!("validated graphs are folded"),
            Op::LayerNorm { eps, .. } => steps.push(Step::LayerNorm {
                tensor: take(2),
                eps: *eps,
                input,
                output: v,
            }),
            Op::Gelu => steps.push(Step::Gelu { input, output: v }),
            Op::ToTokens => steps.push(Step::ToTokens { input, output: v }),
            Op::ToChw { .. } => steps.push(Step::ToChw { input, output: v }),
            Op::ClassToken { .. } => steps.push(Step::ClassToken {
                tensor: take(1),
                input,
                output: v,
            }),
            Op::PosEmbed { .. } => steps.push(Step::PosEmbed {
                tensor: take(1),
                input,
                output: v,
            }),
            Op::TakeToken { index } => steps.push(Step::TakeToken {
                index: *index,
                input,
                output: v,
            }),
            Op::WindowPartition {
                height,
                width,
                window,
            } => steps.push(Step::WindowPartition {
                height: *height,
                width: *width,
                window: *window,
                input,
                output: v,
            }),
            Op::WindowReverse {
                height,
                width,
                window,
            } => steps.push(Step::WindowReverse {
                height: *height,
                width: *width,
                window: *window,
                input,
                output: v,
            }),
            Op::Attention(a) => steps.push(Step::Attention {
                attention: a.clone(),
                bias: a.bias_window.map(|_| take(1)),
                input,
                output: v,
            }),
        }
    }
    steps
}

/// `steps` with each `Gelu` whose input a Linear or convolution step (without ReLU) writes and
/// nothing else reads folded into that step's epilogue (`gelu: true`, writing the GELU's output
/// value): a transformer MLP's hidden activations (each block's largest tensor) and TinyViT's
/// MBConv activations are then written once, finished in cache, instead of written, copied and
/// passed over again. `output` (the graph's) is never folded away. A pass over steps rather than
/// part of [`plan`] because only the CPU GEMMs have the epilogue: the [`Plan`] the GPU executor
/// shares keeps its `Gelu` steps.
pub(crate) fn fuse_gelu(steps: Vec<Step>, output: ValueId) -> Vec<Step> {
    let mut readers = std::collections::HashMap::<ValueId, usize>::new();
    for step in &steps {
        for v in step.inputs() {
            *readers.entry(v).or_default() += 1;
        }
    }
    // Per value that a GELU alone reads: that GELU's output, which the producer may write.
    let mut into = std::collections::HashMap::<ValueId, ValueId>::new();
    for step in &steps {
        if let Step::Gelu { input, output: o } = step {
            if *input != output && readers.get(input) == Some(&1) {
                into.insert(*input, *o);
            }
        }
    }
    let fusable = |step: &Step| match step {
        Step::Linear {
            relu: false,
            gelu: false,
            output,
            ..
        }
        | Step::Conv {
            relu: false,
            gelu: false,
            output,
            ..
        } => into.get(output).copied(),
        _ => None,
    };
    let fused: std::collections::HashSet<ValueId> = steps
        .iter()
        .filter_map(|s| fusable(s).map(|_| s.output()))
        .collect();
    steps
        .iter()
        .filter_map(|step| match step {
            Step::Gelu { input, .. } if fused.contains(input) => None,
            _ => Some(match (fusable(step), step.clone()) {
                (Some(gelu_out), Step::Linear { layer, input, .. }) => Step::Linear {
                    layer,
                    input,
                    relu: false,
                    gelu: true,
                    output: gelu_out,
                },
                (
                    Some(gelu_out),
                    Step::Conv {
                        layer,
                        conv,
                        input,
                        residual,
                        ..
                    },
                ) => Step::Conv {
                    layer,
                    conv,
                    input,
                    residual,
                    relu: false,
                    gelu: true,
                    output: gelu_out,
                },
                (_, step) => step,
            }),
        })
        .collect()
}
