//! Semantic checks of a decoded model, so that the executor can trust every size it reads.
//!
//! The checksum catches accidental damage; these checks catch files that are well-formed but
//! inconsistent (a hand-edited graph, a layer whose tensors do not fit its node), which would
//! otherwise surface as index panics or absurd allocations deep inside the executor.

use fq_models::geometry::padded;
use fq_models::{Graph, Op, Shape};

use super::limits::{
    MAX_ACTIVATION_ELEMS, MAX_CLASSES, MAX_GROUPS, MAX_INPUT_SIZE, MAX_MACS, MAX_NAME_LEN,
    MAX_NODES, MAX_VALUE_ELEMS, MAX_WEIGHT_ELEMS, MAX_WINDOW,
};
use super::{pack, LayerWeights, PackedModel};

/// `field = value exceeds NAME = max`: the error of every global limit, naming both.
fn over(
    field: &str,
    value: impl std::fmt::Display,
    limit: &str,
    max: impl std::fmt::Display,
) -> String {
    format!("{field} = {value} exceeds the limit {limit} = {max}")
}

/// The class and group counts within their limits, and every name within [`MAX_NAME_LEN`]:
/// checked first, so that nothing later sizes a per-class or per-group table from an absurd
/// count. (The node count is checked by [`shapes`], which every caller runs.)
fn names_and_counts(m: &PackedModel) -> Result<(), String> {
    let g = &m.graph;
    if m.classes.len() > MAX_CLASSES || g.num_classes > MAX_CLASSES {
        let n = m.classes.len().max(g.num_classes);
        return Err(over("number of classes", n, "MAX_CLASSES", MAX_CLASSES));
    }
    if m.groups.len() > MAX_GROUPS {
        return Err(over(
            "number of groups",
            m.groups.len(),
            "MAX_GROUPS",
            MAX_GROUPS,
        ));
    }
    if m.summary.folded.len() > g.nodes.len() {
        return Err(format!(
            "summary.folded lists {} batch norms for a graph of {} nodes",
            m.summary.folded.len(),
            g.nodes.len()
        ));
    }
    let fixed = [
        ("graph.arch", &g.arch),
        ("summary.method", &m.summary.method),
        ("summary.method_label", &m.summary.method_label),
    ];
    let metrics_groups = m.summary.test_metrics.iter().flat_map(|t| &t.group_names);
    let mut names = fixed
        .into_iter()
        .chain(g.nodes.iter().map(|n| ("node name", &n.name)))
        .chain(m.classes.iter().map(|c| ("class name", c)))
        .chain(m.groups.iter().map(|c| ("group name", c)))
        .chain(m.layers.iter().map(|l| ("layer name", &l.name)))
        .chain(m.tensors.iter().map(|t| ("parameter name", &t.name)))
        .chain(
            m.summary
                .folded
                .iter()
                .flat_map(|(b, c)| [("summary.folded name", b), ("summary.folded name", c)]),
        )
        .chain(metrics_groups.map(|c| ("test_metrics group name", c)))
        .chain(
            m.activations
                .iter()
                .map(|a| ("activations.calibration", &a.calibration)),
        );
    if let Some((field, name)) = names.find(|(_, n)| n.len() > MAX_NAME_LEN) {
        let head: String = name.chars().take(40).collect();
        return Err(format!(
            "{} (`{head}...`)",
            over(
                &format!("length of a {field}"),
                name.len(),
                "MAX_NAME_LEN",
                MAX_NAME_LEN
            )
        ));
    }
    Ok(())
}

/// Every check of a model; returns the graph's value shapes.
pub(super) fn validate(m: &PackedModel) -> Result<Vec<Shape>, String> {
    names_and_counts(m)?;
    let g = &m.graph;
    if g.in_channels != 3 {
        return Err(format!(
            "the graph takes {} input channels; images have 3",
            g.in_channels
        ));
    }
    let shapes = shapes(g)?;
    if m.classes.is_empty() || m.classes.len() != g.num_classes {
        return Err(format!(
            "{} class names for a graph with {} classes",
            m.classes.len(),
            g.num_classes
        ));
    }
    if shapes[g.output] != Shape::Flat(m.classes.len()) {
        return Err(format!(
            "the graph's output is {:?}, expected {} logits",
            shapes[g.output],
            m.classes.len()
        ));
    }
    if m.groups.is_empty() {
        return Err("no group names".into());
    }
    m.preprocess.validate().map_err(|e| e.to_string())?;
    if (m.preprocess.width as usize, m.preprocess.height as usize) != (g.input_size, g.input_size) {
        return Err(format!(
            "preprocessing makes {}x{} images, the graph takes {}x{}",
            m.preprocess.width, m.preprocess.height, g.input_size, g.input_size
        ));
    }
    if !m.summary.avg_bits.is_finite() {
        return Err("the summary's average bit-width is not finite".into());
    }
    if let Some(t) = &m.summary.test_metrics {
        if t.group_names != m.groups {
            return Err(format!(
                "test metrics are over groups {:?}, the model's groups are {:?}",
                t.group_names, m.groups
            ));
        }
        let n = m.groups.len();
        let lens = [
            t.group_count.len(),
            t.group_correct.len(),
            t.group_accuracy.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(format!(
                "test metrics have {lens:?} group counts/correct/accuracies for {n} groups"
            ));
        }
        if t.group_correct
            .iter()
            .zip(&t.group_count)
            .any(|(c, n)| c > n)
        {
            return Err(
                "test metrics count more correct predictions than samples in a group".into(),
            );
        }
    }
    layers(g, &m.layers)?;
    activation_scales(m)?;
    tensors(g, &m.tensors)?;
    Ok(shapes)
}

/// The graph's parameters that are neither Conv2d/Linear weights/biases nor batch norms: what
/// [`PackedModel::tensors`](super::PackedModel::tensors) holds, in node order.
pub(crate) fn tensor_specs(g: &Graph) -> Vec<fq_models::ParamSpec> {
    let mut skip = std::collections::HashSet::new();
    for n in &g.nodes {
        if matches!(n.op, Op::Conv2d(_) | Op::Linear(_) | Op::BatchNorm2d { .. }) {
            skip.insert(n.name.as_str());
        }
    }
    g.params()
        .into_iter()
        .filter(|p| {
            let module = p.name.rsplit_once('.').map_or("", |(m, _)| m);
            !skip.contains(module)
        })
        .collect()
}

/// Every extra tensor against the graph: same names, order and shapes, finite values.
pub(crate) fn tensors(g: &Graph, tensors: &[super::NamedTensor]) -> Result<(), String> {
    let specs = tensor_specs(g);
    if specs.len() != tensors.len() {
        return Err(format!(
            "{} parameter tensors for a graph that needs {}",
            tensors.len(),
            specs.len()
        ));
    }
    for (spec, t) in specs.iter().zip(tensors) {
        if t.name != spec.name || t.shape != spec.shape {
            return Err(format!(
                "parameter `{}` {:?} where the graph needs `{}` {:?}",
                t.name, t.shape, spec.name, spec.shape
            ));
        }
        if t.data.len() != spec.shape.iter().product::<usize>() {
            return Err(format!(
                "parameter `{}` has {} values for shape {:?}",
                t.name,
                t.data.len(),
                t.shape
            ));
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(format!("parameter `{}`: value {i} is not finite", t.name));
        }
    }
    Ok(())
}

/// Every layer against its Conv2d/Linear node (in node order): name, dimensions, widths, scales,
/// byte count, bias.
pub(crate) fn layers(g: &Graph, layers: &[crate::format::Layer]) -> Result<(), String> {
    let weighted: Vec<(usize, &fq_models::Node)> = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Conv2d(_) | Op::Linear(_)))
        .collect();
    if weighted.len() != layers.len() {
        return Err(format!(
            "{} layers for {} Conv2d/Linear nodes",
            layers.len(),
            weighted.len()
        ));
    }
    for ((_, node), layer) in weighted.iter().zip(layers) {
        let bad = |msg: String| Err(format!("layer `{}`: {msg}", layer.name));
        if layer.name != node.name {
            return Err(format!(
                "layer `{}` is stored where node `{}` expects its weights",
                layer.name, node.name
            ));
        }
        let (rows, cols, has_bias) = match &node.op {
            Op::Conv2d(c) => (
                c.out_channels,
                c.in_channels / c.groups * c.kernel * c.kernel,
                c.bias,
            ),
            Op::Linear(l) => (l.out_features, l.in_features, l.bias),
            _ => unreachable!("filtered to Conv2d/Linear"),
        };
        if rows
            .checked_mul(cols)
            .is_none_or(|n| n as u64 > MAX_WEIGHT_ELEMS)
        {
            return bad(format!("a {rows}x{cols} weight matrix is too large"));
        }
        if layer.weights.dims() != (rows, cols) {
            return bad(format!(
                "weights are {:?}, the node needs ({rows}, {cols})",
                layer.weights.dims()
            ));
        }
        match &layer.weights {
            LayerWeights::Packed(p) => {
                if p.bits.len() != rows || p.scales.len() != rows {
                    return bad(format!(
                        "{} bit-widths and {} scales for {rows} output channels",
                        p.bits.len(),
                        p.scales.len()
                    ));
                }
                if let Some((r, b)) = p
                    .bits
                    .iter()
                    .enumerate()
                    .find(|(_, b)| !(pack::MIN_BITS..=pack::MAX_BITS).contains(*b))
                {
                    return bad(format!("channel {r} has bit-width {b}, outside 2..=8"));
                }
                if let Some(r) = p.scales.iter().position(|s| !s.is_finite()) {
                    return bad(format!("channel {r} has a non-finite scale"));
                }
                let expected: usize = p.bits.iter().map(|&b| pack::row_bytes(cols, b)).sum();
                if p.data.len() != expected {
                    return bad(format!(
                        "{} bytes of packed weights, the bit-widths need {expected}",
                        p.data.len()
                    ));
                }
            }
            LayerWeights::F32 { data, .. } => {
                if data.len() != rows * cols {
                    return bad(format!("{} weights, expected {}", data.len(), rows * cols));
                }
                if data.iter().any(|v| !v.is_finite()) {
                    return bad("non-finite weights".into());
                }
            }
        }
        match (&layer.bias, has_bias) {
            (None, false) => {}
            (Some(b), true) if b.len() == rows && b.iter().all(|v| v.is_finite()) => {}
            (Some(b), true) => {
                return bad(format!(
                    "bias has {} values (all must be finite), expected {rows}",
                    b.len()
                ))
            }
            (b, _) => {
                return bad(format!(
                    "the node {} a bias but the layer {} one",
                    if has_bias { "has" } else { "has no" },
                    if b.is_some() { "stores" } else { "lacks" }
                ))
            }
        }
    }
    Ok(())
}

/// Shape of every value (index 0 is the input), with every size checked so that no arithmetic
/// can overflow and every op gets inputs it can execute; batch norm must have been folded.
/// Any input channel count: a bare graph (one kernel in a test) may take feature maps; a model
/// file must take RGB images ([`validate`]).
pub(crate) fn shapes(g: &Graph) -> Result<Vec<Shape>, String> {
    if g.input_size > MAX_INPUT_SIZE {
        return Err(over(
            "graph.input_size",
            g.input_size,
            "MAX_INPUT_SIZE",
            MAX_INPUT_SIZE,
        ));
    }
    if g.nodes.len() > MAX_NODES {
        return Err(over(
            "number of graph nodes",
            g.nodes.len(),
            "MAX_NODES",
            MAX_NODES,
        ));
    }
    let first = Shape::Chw(g.in_channels, g.input_size, g.input_size);
    check_size(first, "the input")?;
    // Running totals over the nodes, against MAX_ACTIVATION_ELEMS and MAX_MACS.
    let mut activations = first.numel();
    let mut macs: u128 = 0;
    // The structure is checked by the models crate's shape inference (the one the compressor
    // uses); this closure adds the runtime's resource limits after each node.
    let shapes = g
        .shapes_checked(|node, x, out| {
            op_limits(&node.op)?;
            if let (Op::Conv2d(c), Shape::Chw(ch, h, w)) = (&node.op, x) {
                // The executor materialises the zero-padded input.
                let pad = |n: usize| padded(n, c.padding).unwrap_or(usize::MAX);
                check_size(Shape::Chw(ch, pad(h), pad(w)), "its zero-padded input")?;
            }
            check_size(out, "its output")?;
            activations += out.numel();
            if activations > MAX_ACTIVATION_ELEMS {
                return Err(over(
                    "activations up to this node (f32 elements)",
                    activations,
                    "MAX_ACTIVATION_ELEMS",
                    MAX_ACTIVATION_ELEMS,
                ));
            }
            macs += cost(&node.op, x, out)?;
            if macs > MAX_MACS as u128 {
                return Err(over(
                    "multiply-accumulates up to this node",
                    macs,
                    "MAX_MACS",
                    MAX_MACS,
                ));
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    if g.output == 0 || g.output > g.nodes.len() {
        return Err(format!("output value {} is not a node's output", g.output));
    }
    Ok(shapes)
}

/// The runtime's bounds on an op's own parameters (window sizes, attention dimensions), and
/// that batch norm was folded: the executor has no batch-norm step.
fn op_limits(op: &Op) -> Result<(), String> {
    let window = |k: usize, s: usize, p: usize| {
        if [k, s, p].iter().any(|&v| v > MAX_WINDOW) {
            return Err(format!(
                "window {k} stride {s} padding {p} exceeds the limit MAX_WINDOW = {MAX_WINDOW}"
            ));
        }
        Ok(())
    };
    match op {
        Op::Conv2d(c) => window(c.kernel, c.stride, c.padding),
        Op::MaxPool2d {
            kernel,
            stride,
            padding,
        } => window(*kernel, *stride, *padding),
        Op::WindowPartition {
            height,
            width,
            window,
        }
        | Op::WindowReverse {
            height,
            width,
            window,
        } if [*height, *width, *window].iter().any(|&v| v > MAX_WINDOW) => Err(format!(
            "window {window} over {height}x{width} tokens exceeds the limit MAX_WINDOW = {MAX_WINDOW}"
        )),
        Op::Attention(a) => {
            let dims = [a.heads, a.key_dim, a.val_dim];
            if dims.iter().any(|&d| d > MAX_WINDOW) {
                return Err(format!("attention heads/dims {dims:?} out of range"));
            }
            Ok(())
        }
        Op::BatchNorm2d { .. } => Err(
            "batch norm was not folded into its convolution; the runtime executes folded graphs"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// Multiply-accumulates (window reads for max pooling) of one node with input `x` and output
/// `out`, both already checked; errors on an im2col matrix above [`MAX_VALUE_ELEMS`]. Elementwise
/// ops cost O(output), which [`MAX_ACTIVATION_ELEMS`] bounds.
fn cost(op: &Op, x: Shape, out: Shape) -> Result<u128, String> {
    let n = |v: usize| v as u128;
    Ok(match (op, x, out) {
        (Op::Conv2d(c), _, Shape::Chw(co, ho, wo)) => {
            let k = n(c.in_channels / c.groups) * n(c.kernel) * n(c.kernel);
            let im2col = k * n(ho) * n(wo);
            if im2col > n(MAX_VALUE_ELEMS) {
                return Err(over(
                    "im2col matrix (f32 elements)",
                    im2col,
                    "MAX_VALUE_ELEMS",
                    MAX_VALUE_ELEMS,
                ));
            }
            n(co) * n(ho) * n(wo) * k
        }
        (Op::Linear(l), Shape::Seq(t, _), _) => n(t) * n(l.in_features) * n(l.out_features),
        (Op::Linear(l), _, _) => n(l.in_features) * n(l.out_features),
        (Op::MaxPool2d { kernel, .. }, _, o) => n(o.numel()) * n(*kernel) * n(*kernel),
        (Op::Attention(a), Shape::Seq(l, _), _) => {
            let g = a.group.unwrap_or(l);
            n(l) * n(g) * n(a.heads) * n(a.key_dim + a.val_dim)
        }
        _ => 0,
    })
}

fn check_size(s: Shape, what: &str) -> Result<(), String> {
    match s.checked_numel() {
        Some(n) if n <= MAX_VALUE_ELEMS => Ok(()),
        _ => Err(format!(
            "{what}: {s:?} is larger than the limit MAX_VALUE_ELEMS = {MAX_VALUE_ELEMS} elements"
        )),
    }
}

/// One input scale per layer, each positive and finite: a zero, negative or NaN scale would
/// turn every activation of its layer into garbage (or a division by zero) on the device.
fn activation_scales(m: &PackedModel) -> Result<(), String> {
    let Some(a) = &m.activations else {
        return Ok(());
    };
    if a.input_scales.len() != m.layers.len() {
        return Err(format!(
            "activations.input_scales has {} entries for {} layers",
            a.input_scales.len(),
            m.layers.len()
        ));
    }
    for (layer, scale) in m.layers.iter().zip(&a.input_scales) {
        if let Some(s) = scale {
            if !(s.is_finite() && *s > 0.0) {
                return Err(format!(
                    "activations.input_scales of layer `{}` is {s}; a scale must be positive and finite",
                    layer.name
                ));
            }
        }
    }
    Ok(())
}
