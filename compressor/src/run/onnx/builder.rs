//! A small typed front end over the generated ONNX protobuf types: initializers, nodes with
//! their attributes, unique value names. The lowering code ([`super::lower`]) speaks only this,
//! so it reads like the graph it writes rather than like protobuf plumbing.

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto, NodeProto, TensorProto,
};

/// One attribute of a node.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

/// The nodes and initializers of one ONNX graph, in the order they are added (which is a
/// topological order: a node only reads values added before it).
#[derive(Default)]
pub struct GraphBuilder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    counter: usize,
    /// Values built once and shared (e.g. the attention-bias index of a window size), by key.
    memo: std::collections::HashMap<String, String>,
}

impl GraphBuilder {
    /// A fresh value name `{base}_{n}`: module names repeat across ops (a Linear's weight, its
    /// reshapes, its Gemm), so every produced tensor gets a counter.
    fn fresh(&mut self, base: &str) -> String {
        self.counter += 1;
        let base = if base.is_empty() { "v" } else { base };
        format!("{base}_{}", self.counter)
    }

    fn tensor(&mut self, name: &str, dims: &[usize], data_type: DataType) -> TensorProto {
        TensorProto {
            name: Some(self.fresh(name)),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type as i32),
            ..Default::default()
        }
    }

    /// An f32 initializer (little-endian `raw_data`, the compact form onnxruntime reads directly).
    pub fn f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let mut t = self.tensor(name, dims, DataType::Float);
        t.raw_data = Some(data.iter().flat_map(|v| v.to_le_bytes()).collect());
        self.push_init(t)
    }

    /// An int8 initializer.
    pub fn i8(&mut self, name: &str, dims: &[usize], data: &[i8]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let mut t = self.tensor(name, dims, DataType::Int8);
        t.raw_data = Some(data.iter().map(|&v| v as u8).collect());
        self.push_init(t)
    }

    /// An int4 initializer (opset 21): two codes a byte, the first in the low nibble, as the
    /// ONNX IR specifies for 4-bit types.
    pub fn i4(&mut self, name: &str, dims: &[usize], data: &[i8]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let mut t = self.tensor(name, dims, DataType::Int4);
        let nib = |v: Option<&i8>| v.map_or(0u8, |&v| (v as u8) & 0x0f);
        t.raw_data = Some(
            data.chunks(2)
                .map(|p| nib(p.first()) | (nib(p.get(1)) << 4))
                .collect(),
        );
        self.push_init(t)
    }

    /// An int64 initializer (shapes, indices, pads).
    pub fn i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        let mut t = self.tensor(name, dims, DataType::Int64);
        t.raw_data = Some(data.iter().flat_map(|v| v.to_le_bytes()).collect());
        self.push_init(t)
    }

    /// A 1-D int64 constant (a shape for `Reshape`, `Expand`, `Pad`, `Slice`), one initializer
    /// per distinct value.
    pub fn shape(&mut self, dims: &[i64]) -> String {
        self.memo(&format!("shape{dims:?}"), |b| {
            b.i64("shape", &[dims.len()], dims)
        })
    }

    /// An f32 scalar constant, one initializer per distinct value.
    pub fn scalar(&mut self, name: &str, v: f32) -> String {
        self.memo(&format!("f32:{:08x}", v.to_bits()), |b| {
            b.f32(name, &[], &[v])
        })
    }

    /// The value `key` names, built by `make` on first use only.
    pub fn memo(&mut self, key: &str, make: impl FnOnce(&mut Self) -> String) -> String {
        if let Some(v) = self.memo.get(key) {
            return v.clone();
        }
        let v = make(self);
        self.memo.insert(key.to_string(), v.clone());
        v
    }

    fn push_init(&mut self, t: TensorProto) -> String {
        let name = t.name.clone().expect("named above");
        self.initializers.push(t);
        name
    }

    /// Adds `op_type(inputs)` with `attrs`; returns its single output's name.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.fresh(name);
        self.node_outputs(op, name, inputs, attrs, std::slice::from_ref(&out));
        out
    }

    fn node_outputs(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        outputs: &[String],
    ) {
        let node_name = self.fresh(&format!("{name}/{op}"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.to_vec(),
            name: Some(node_name),
            op_type: Some(op.to_string()),
            attribute: attrs.into_iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
    }
}

fn attribute(name: &str, a: Attr) -> AttributeProto {
    let mut p = AttributeProto {
        name: Some(name.to_string()),
        ..Default::default()
    };
    match a {
        Attr::Int(v) => {
            p.i = Some(v);
            p.r#type = Some(AttributeType::Int as i32);
        }
        Attr::Ints(v) => {
            p.ints = v;
            p.r#type = Some(AttributeType::Ints as i32);
        }
        Attr::Float(v) => {
            p.f = Some(v);
            p.r#type = Some(AttributeType::Float as i32);
        }
    }
    p
}
