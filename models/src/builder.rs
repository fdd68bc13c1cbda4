//! Appends nodes to a graph in module registration order; shared by every architecture so the
//! layer conventions (conv without bias, batch norm eps, LayerNorm eps) live in one place.

use crate::graph::{Attention, Conv2d, Linear, Node, Op, ValueId};

pub(crate) struct Builder {
    pub nodes: Vec<Node>,
}

impl Builder {
    pub fn new() -> Self {
        Self { nodes: Vec::new() }
    }

    pub fn push(&mut self, name: &str, op: Op, inputs: Vec<ValueId>) -> ValueId {
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
        });
        self.nodes.len()
    }

    /// A square convolution without bias (every ResNet/TinyViT conv).
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        x: ValueId,
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
    ) -> ValueId {
        self.conv_g(name, x, cin, cout, k, s, p, 1, false)
    }

    /// A square convolution with groups and optional bias.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_g(
        &mut self,
        name: &str,
        x: ValueId,
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
        groups: usize,
        bias: bool,
    ) -> ValueId {
        let op = Op::Conv2d(Conv2d {
            in_channels: cin,
            out_channels: cout,
            kernel: k,
            stride: s,
            padding: p,
            groups,
            bias,
        });
        self.push(name, op, vec![x])
    }

    /// PyTorch's `BatchNorm2d` defaults (eps 1e-5, momentum 0.1).
    pub fn bn(&mut self, name: &str, x: ValueId, c: usize) -> ValueId {
        self.push(
            name,
            Op::BatchNorm2d {
                channels: c,
                eps: 1e-5,
                momentum: 0.1,
            },
            vec![x],
        )
    }

    pub fn relu(&mut self, name: &str, x: ValueId) -> ValueId {
        self.push(name, Op::Relu, vec![x])
    }

    pub fn gelu(&mut self, name: &str, x: ValueId) -> ValueId {
        self.push(name, Op::Gelu, vec![x])
    }

    pub fn layer_norm(&mut self, name: &str, x: ValueId, dim: usize, eps: f64) -> ValueId {
        self.push(name, Op::LayerNorm { dim, eps }, vec![x])
    }

    pub fn linear(&mut self, name: &str, x: ValueId, cin: usize, cout: usize) -> ValueId {
        self.push(
            name,
            Op::Linear(Linear {
                in_features: cin,
                out_features: cout,
                bias: true,
            }),
            vec![x],
        )
    }

    pub fn attention(&mut self, name: &str, qkv: ValueId, a: Attention) -> ValueId {
        self.push(name, Op::Attention(a), vec![qkv])
    }

    pub fn add(&mut self, name: &str, a: ValueId, b: ValueId) -> ValueId {
        self.push(name, Op::Add, vec![a, b])
    }
}
