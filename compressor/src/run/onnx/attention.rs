//! Multi-head attention from a fused qkv projection as standard ONNX ops: split heads with
//! Reshape/Transpose/Slice, `softmax(q k^T * kd^-1/2 + bias) v` with MatMul/Softmax, heads merged
//! back. Windows (TinyViT) are folded into the batch axis; TinyViT's attention-bias table is
//! stored as trained (`[heads, ws*ws]`) and expanded to `[heads, g, g]` in the graph by a
//! `Gather` with the index `|dy| * ws + |dx|` (the runtime's `Attention::bias_index`), itself
//! computed in the graph from the window's row and column numbers: stored as a constant it would
//! be `ws^4` int64s (307 KB for TinyViT's 14x14 windows), more than a narrow model's weights.

use fq_models::{Attention, QkvLayout, Shape};
use fq_runtime::format::NamedTensor;

use super::builder::{Attr, GraphBuilder};

/// `[N, L, heads*(2kd+vd)] -> [N, L, heads*vd]`, as `fq_runtime::exec::tokens::attention`.
pub fn attention(
    b: &mut GraphBuilder,
    name: &str,
    x: &str,
    shape: Shape,
    a: &Attention,
    table: Option<&NamedTensor>,
) -> Result<String, String> {
    let Shape::Seq(l, _) = shape else {
        unreachable!("validated: attention input is a token sequence")
    };
    let g = a.group.unwrap_or(l);
    let (h, kd, vd) = (a.heads as i64, a.key_dim as i64, a.val_dim as i64);
    // q, k: [B, heads, g, kd], v: [B, heads, g, vd] with B = N * L / g.
    let (q, k, v) = match a.layout {
        QkvLayout::QkvHeads => {
            if kd != vd {
                return Err(format!(
                    "the [3, heads, dim] qkv layout needs key_dim == val_dim, got {kd} and {vd}"
                ));
            }
            let s = b.shape(&[-1, g as i64, 3, h, kd]);
            let r = b.node("Reshape", name, &[x, &s], vec![]);
            let perm = Attr::Ints(vec![2, 0, 3, 1, 4]);
            let t = b.node("Transpose", name, &[&r], vec![("perm", perm)]);
            let part = |b: &mut GraphBuilder, p: i64| {
                let i = b.i64("part", &[], &[p]);
                b.node("Gather", name, &[&t, &i], vec![("axis", Attr::Int(0))])
            };
            (part(b, 0), part(b, 1), part(b, 2))
        }
        QkvLayout::HeadsQkv => {
            let s = b.shape(&[-1, g as i64, h, 2 * kd + vd]);
            let r = b.node("Reshape", name, &[x, &s], vec![]);
            let perm = Attr::Ints(vec![0, 2, 1, 3]);
            let t = b.node("Transpose", name, &[&r], vec![("perm", perm)]);
            let slice = |b: &mut GraphBuilder, from: i64, to: i64| {
                let (s0, s1, ax) = (b.shape(&[from]), b.shape(&[to]), b.shape(&[3]));
                b.node("Slice", name, &[&t, &s0, &s1, &ax], vec![])
            };
            let q = slice(b, 0, kd);
            let k = slice(b, kd, 2 * kd);
            let v = slice(b, 2 * kd, 2 * kd + vd);
            (q, k, v)
        }
    };
    let kt = b.node(
        "Transpose",
        name,
        &[&k],
        vec![("perm", Attr::Ints(vec![0, 1, 3, 2]))],
    );
    let s = b.node("MatMul", name, &[&q, &kt], vec![]);
    // The runtime's scale, computed the same way.
    let scale = b.scalar("scale", (a.key_dim as f32).powf(-0.5));
    let mut s = b.node("Mul", name, &[&s, &scale], vec![]);
    if let (Some(ws), Some(t)) = (a.bias_window, table) {
        if t.data.len() != a.heads * ws * ws {
            return Err(format!(
                "attention-bias table `{}` has {} values, {} heads of {ws}x{ws} need {}",
                t.name,
                t.data.len(),
                a.heads,
                a.heads * ws * ws
            ));
        }
        let tab = b.f32(&t.name, &[a.heads, ws * ws], &t.data);
        let idx = b.memo(&format!("bias_index_{ws}"), |b| bias_index(b, ws));
        let bias = b.node("Gather", name, &[&tab, &idx], vec![("axis", Attr::Int(1))]);
        s = b.node("Add", name, &[&s, &bias], vec![]);
    }
    let p = b.node("Softmax", name, &[&s], vec![("axis", Attr::Int(-1))]);
    let o = b.node("MatMul", name, &[&p, &v], vec![]);
    let perm = Attr::Ints(vec![0, 2, 1, 3]);
    let o = b.node("Transpose", name, &[&o], vec![("perm", perm)]);
    let s = b.shape(&[-1, l as i64, h * vd]);
    Ok(b.node("Reshape", name, &[&o, &s], vec![]))
}

/// `[ws*ws, ws*ws]` int64: `|dy| * ws + |dx|` between the positions of a `ws x ws` window, as
/// `|row_i - row_j| * ws + |col_i - col_j|` from the 1-D row and column numbers of each position.
fn bias_index(b: &mut GraphBuilder, ws: usize) -> String {
    let name = "bias_index";
    let g = ws * ws;
    let rows: Vec<i64> = (0..g).map(|p| (p / ws) as i64).collect();
    let cols: Vec<i64> = (0..g).map(|p| (p % ws) as i64).collect();
    let diff = |b: &mut GraphBuilder, v: &[i64]| {
        let (a, t) = (b.i64(name, &[g, 1], v), b.i64(name, &[1, g], v));
        let d = b.node("Sub", name, &[&a, &t], vec![]);
        b.node("Abs", name, &[&d], vec![])
    };
    let dy = diff(b, &rows);
    let dx = diff(b, &cols);
    let w = b.i64(name, &[], &[ws as i64]);
    let dyw = b.node("Mul", name, &[&dy, &w], vec![]);
    b.node("Add", name, &[&dyw, &dx], vec![])
}
