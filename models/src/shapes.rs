//! The graph's shape inference: the one implementation, used by the compressor (counts, ONNX
//! export, training) and by the runtime's validation of `.fqm` files. Graphs from files are
//! hostile input, so every size is computed with checked arithmetic and every inconsistency is an
//! error naming the node, never a panic or a wrapped-around size.

use crate::geometry::{padded, window_output};
use crate::graph::{windows, Graph, GraphError, Node, Op, Shape};

impl Shape {
    /// Number of elements, `None` if it overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        match *self {
            Shape::Chw(c, h, w) => c.checked_mul(h)?.checked_mul(w),
            Shape::Flat(f) => Some(f),
            Shape::Seq(l, d) => l.checked_mul(d),
        }
    }
}

/// Tokens after zero-padding a `height x width` grid to whole `window x window` windows.
fn window_tokens(height: usize, width: usize, window: usize) -> Option<usize> {
    if window == 0 {
        return None;
    }
    let side = |n: usize| windows(n, window).checked_mul(window);
    side(height)?.checked_mul(side(width)?)
}

impl Graph {
    /// Output shape of every value (index 0 is the input).
    pub fn shapes(&self) -> Result<Vec<Shape>, GraphError> {
        self.shapes_checked(|_, _, _| Ok(()))
    }

    /// [`Graph::shapes`] with an extra check after each node: `check(node, input, output)` may
    /// refuse it (the runtime's resource limits). A refusal is reported like a shape error, as
    /// `node i (name): message`, and stops the inference there, so no later node is sized from a
    /// refused value.
    pub fn shapes_checked(
        &self,
        mut check: impl FnMut(&Node, Shape, Shape) -> Result<(), String>,
    ) -> Result<Vec<Shape>, GraphError> {
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
            let arity = if matches!(node.op, Op::Add) { 2 } else { 1 };
            if node.inputs.len() != arity {
                return Err(bad(format!(
                    "{} inputs, the op takes {arity}",
                    node.inputs.len()
                )));
            }
            if let Some(&v) = node.inputs.iter().find(|&&v| v > i) {
                return Err(bad(format!("input {v} is not computed before this node")));
            }
            let x = shapes[node.inputs[0]];
            let out = infer(&node.op, x, node, &shapes).map_err(bad)?;
            if out.checked_numel().is_none() {
                return Err(bad(format!("output {out:?} overflows")));
            }
            check(node, x, out).map_err(bad)?;
            shapes.push(out);
        }
        if self.output > self.nodes.len() {
            return Err(GraphError::Output {
                output: self.output,
                nodes: self.nodes.len(),
            });
        }
        Ok(shapes)
    }
}

/// Output shape of one node whose input value `x` (and, for `Add`, second input) has a shape.
fn infer(op: &Op, x: Shape, node: &Node, shapes: &[Shape]) -> Result<Shape, String> {
    let window = |size: usize, k: usize, s: usize, p: usize| {
        window_output(size, k, s, p)
            .ok_or_else(|| format!("window {k} stride {s} padding {p} does not fit size {size}"))
    };
    let too_large = || format!("input {x:?} is too large for {op:?}");
    Ok(match (op, x) {
        (Op::Conv2d(c), Shape::Chw(ch, h, w)) => {
            if ch != c.in_channels {
                return Err(format!(
                    "conv takes {} input channels, its input has {ch}",
                    c.in_channels
                ));
            }
            if c.out_channels == 0
                || c.groups == 0
                || c.in_channels % c.groups != 0
                || c.out_channels % c.groups != 0
            {
                return Err(format!(
                    "channels {} -> {} cannot be split into {} groups",
                    c.in_channels, c.out_channels, c.groups
                ));
            }
            Shape::Chw(
                c.out_channels,
                window(h, c.kernel, c.stride, c.padding)?,
                window(w, c.kernel, c.stride, c.padding)?,
            )
        }
        (
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
            },
            Shape::Chw(ch, h, w),
        ) => {
            // As PyTorch: a window must overlap the input, so padding is at most half of it.
            if padded(0, *padding).is_none_or(|p| p > *kernel) {
                return Err(format!(
                    "max pool padding {padding} exceeds half the window {kernel}"
                ));
            }
            Shape::Chw(
                ch,
                window(h, *kernel, *stride, *padding)?,
                window(w, *kernel, *stride, *padding)?,
            )
        }
        (Op::BatchNorm2d { channels, .. }, s @ Shape::Chw(ch, _, _)) if ch == *channels => s,
        (Op::BatchNorm2d { channels, .. }, s) => {
            return Err(format!("batch norm expects {channels} channels, got {s:?}"))
        }
        (Op::Relu | Op::Gelu, s) => s,
        (Op::Add, a) => {
            let b = shapes[node.inputs[1]];
            if a != b {
                return Err(format!("add of different shapes {a:?} and {b:?}"));
            }
            a
        }
        (Op::GlobalAvgPool, Shape::Chw(c, h, w)) if h.checked_mul(w).is_some_and(|n| n > 0) => {
            Shape::Flat(c)
        }
        (Op::Linear(l), Shape::Seq(t, d)) if d == l.in_features && l.out_features > 0 => {
            Shape::Seq(t, l.out_features)
        }
        (Op::Linear(l), s)
            if !matches!(s, Shape::Seq(..))
                && s.checked_numel() == Some(l.in_features)
                && l.out_features > 0 =>
        {
            Shape::Flat(l.out_features)
        }
        (Op::Linear(l), s) => {
            return Err(format!(
                "linear expects {} features (and > 0 out), got {s:?}",
                l.in_features
            ))
        }
        (Op::LayerNorm { dim, eps }, s @ (Shape::Seq(_, d) | Shape::Flat(d)))
            if d == *dim && d > 0 && eps.is_finite() && *eps >= 0.0 =>
        {
            s
        }
        (Op::LayerNorm { dim, eps }, s) => {
            return Err(format!(
                "layer norm expects {dim} > 0 features per token and a finite eps >= 0 (got {eps}), got {s:?}"
            ))
        }
        (Op::ToTokens, Shape::Chw(c, h, w)) => {
            Shape::Seq(h.checked_mul(w).ok_or_else(too_large)?, c)
        }
        (Op::ToChw { height, width }, Shape::Seq(l, c))
            if height.checked_mul(*width) == Some(l) =>
        {
            Shape::Chw(c, *height, *width)
        }
        (Op::ToChw { height, width }, s) => {
            return Err(format!(
                "to-[C,H,W] expects {height}x{width} tokens, got {s:?}"
            ))
        }
        (Op::ClassToken { dim }, Shape::Seq(l, d)) if d == *dim => {
            Shape::Seq(l.checked_add(1).ok_or_else(too_large)?, d)
        }
        (Op::ClassToken { dim }, s) => {
            return Err(format!("class token expects [L, {dim}], got {s:?}"))
        }
        (Op::PosEmbed { tokens, dim }, s @ Shape::Seq(l, d)) if l == *tokens && d == *dim => s,
        (Op::PosEmbed { tokens, dim }, s) => {
            return Err(format!(
                "position embedding expects [{tokens}, {dim}], got {s:?}"
            ))
        }
        (Op::TakeToken { index }, Shape::Seq(l, d)) if *index < l => Shape::Flat(d),
        (Op::TakeToken { index }, s) => {
            return Err(format!("take-token {index} expects [L, D], got {s:?}"))
        }
        (
            Op::WindowPartition {
                height,
                width,
                window,
            },
            Shape::Seq(l, c),
        ) => {
            let padded = window_tokens(*height, *width, *window)
                .filter(|_| height.checked_mul(*width) == Some(l))
                .ok_or_else(|| format!("window {window} does not fit {height}x{width} tokens"))?;
            Shape::Seq(padded, c)
        }
        (
            Op::WindowReverse {
                height,
                width,
                window,
            },
            Shape::Seq(l, c),
        ) if window_tokens(*height, *width, *window) == Some(l) => {
            Shape::Seq(height.checked_mul(*width).ok_or_else(too_large)?, c)
        }
        (
            Op::WindowReverse {
                height,
                width,
                window,
            },
            s,
        ) => {
            return Err(format!(
                "window reverse expects the {window}x{window} windows of a {height}x{width} grid, got {s:?}"
            ))
        }
        (Op::Attention(a), Shape::Seq(l, f)) => {
            let dims = [a.heads, a.key_dim, a.val_dim];
            if dims.contains(&0) {
                return Err(format!("attention heads/dims {dims:?} out of range"));
            }
            let qkv = a
                .key_dim
                .checked_mul(2)
                .and_then(|k| k.checked_add(a.val_dim))
                .and_then(|k| k.checked_mul(a.heads));
            if qkv != Some(f) {
                let want = qkv.map_or_else(|| "too many".to_string(), |q| q.to_string());
                return Err(format!(
                    "attention reads {want} fused qkv features, its input has {f}"
                ));
            }
            let g = a.group.unwrap_or(l);
            if g == 0 || l % g != 0 {
                return Err(format!("{l} tokens are not groups of {g}"));
            }
            if let Some(w) = a.bias_window {
                if w.checked_mul(w) != Some(g) {
                    return Err(format!(
                        "attention biases for {w}x{w} windows need groups of {} tokens",
                        w.saturating_mul(w)
                    ));
                }
            }
            let out = a.heads.checked_mul(a.val_dim).ok_or_else(too_large)?;
            Shape::Seq(l, out)
        }
        (op, s) => return Err(format!("{op:?} cannot take an input of shape {s:?}")),
    })
}
