//! From a folded graph to a list of steps, with the cheap ops fused into the convolution that
//! feeds them: ReLU after a convolution, and a residual add (plus its ReLU) into the later of the
//! two branches, so a ResNet block's tail costs no extra pass over memory.

use fq_models::{Conv2d, Graph, Op, ValueId};

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
        output: ValueId,
    },
    Linear {
        layer: usize,
        input: ValueId,
        relu: bool,
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
    /// The value this step writes.
    pub fn output(&self) -> ValueId {
        match self {
            Step::Conv { output, .. }
            | Step::Linear { output, .. }
            | Step::MaxPool { output, .. }
            | Step::GlobalAvgPool { output, .. }
            | Step::Add { output, .. }
            | Step::Relu { output, .. } => *output,
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
            | Step::Relu { input, .. } => vec![*input],
            Step::Add { a, b, .. } => vec![*a, *b],
        }
    }
}

/// The steps of a validated, folded graph (no batch norm) in execution order.
pub fn plan(g: &Graph) -> Vec<Step> {
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
            op => unreachable!("validation rejects {op:?}"),
        }
    }
    steps
}
