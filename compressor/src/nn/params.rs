//! Named model parameters (candle `Var`s) and batch-norm buffers, in torchvision/timm naming, so
//! their safetensors files load and save directly.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use fq_models::{Graph, Op};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// The model's tensors: trainable parameters and running-statistics buffers.
pub struct ParamStore {
    /// Trainable parameters in module registration order.
    pub vars: Vec<(String, Var)>,
    /// Batch-norm running statistics (updated in train mode, never by the optimizer).
    pub buffers: Vec<(String, Var)>,
    index: HashMap<String, (bool, usize)>,
}

/// A standard normal sample (Box–Muller), so initialisation depends only on our seeded RNG.
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

impl ParamStore {
    fn from_parts(vars: Vec<(String, Var)>, buffers: Vec<(String, Var)>) -> Self {
        let mut index = HashMap::new();
        for (i, (n, _)) in vars.iter().enumerate() {
            index.insert(n.clone(), (true, i));
        }
        for (i, (n, _)) in buffers.iter().enumerate() {
            index.insert(n.clone(), (false, i));
        }
        Self {
            vars,
            buffers,
            index,
        }
    }

    /// torchvision's initialisation: conv weights Kaiming-normal (fan-out, ReLU), batch norm
    /// weight 1 / bias 0 / mean 0 / var 1, linear `U(-1/sqrt(in), 1/sqrt(in))` for weight and bias.
    pub fn init(graph: &Graph, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Token models (any attention) follow timm's transformer initialisation for Linears.
        let vit = graph.nodes.iter().any(|n| matches!(n.op, Op::Attention(_)));
        let mut vars = Vec::new();
        let mut buffers = Vec::new();
        for node in &graph.nodes {
            let n = &node.name;
            match &node.op {
                Op::Conv2d(c) => {
                    let fan_out = (c.out_channels * c.kernel * c.kernel) as f32;
                    let std = (2.0 / fan_out).sqrt();
                    let shape = (c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel);
                    let numel = shape.0 * shape.1 * shape.2 * shape.3;
                    let w: Vec<f32> = (0..numel).map(|_| normal(&mut rng) * std).collect();
                    vars.push((
                        format!("{n}.weight"),
                        Var::from_tensor(&Tensor::from_vec(w, shape, device)?)?,
                    ));
                    if c.bias {
                        vars.push((
                            format!("{n}.bias"),
                            Var::zeros(c.out_channels, DType::F32, device)?,
                        ));
                    }
                }
                Op::BatchNorm2d { channels, .. } => {
                    let c = *channels;
                    vars.push((format!("{n}.weight"), Var::ones(c, DType::F32, device)?));
                    vars.push((format!("{n}.bias"), Var::zeros(c, DType::F32, device)?));
                    buffers.push((
                        format!("{n}.running_mean"),
                        Var::zeros(c, DType::F32, device)?,
                    ));
                    buffers.push((
                        format!("{n}.running_var"),
                        Var::ones(c, DType::F32, device)?,
                    ));
                }
                Op::Linear(l) if vit => {
                    // timm's ViT/TinyViT init: trunc_normal(std=0.02) (truncated at +-2, so
                    // effectively untruncated), zero bias.
                    let w: Vec<f32> = (0..l.out_features * l.in_features)
                        .map(|_| normal(&mut rng) * 0.02)
                        .collect();
                    let shape = (l.out_features, l.in_features);
                    vars.push((
                        format!("{n}.weight"),
                        Var::from_tensor(&Tensor::from_vec(w, shape, device)?)?,
                    ));
                    if l.bias {
                        vars.push((
                            format!("{n}.bias"),
                            Var::zeros(l.out_features, DType::F32, device)?,
                        ));
                    }
                }
                Op::LayerNorm { dim, .. } => {
                    vars.push((format!("{n}.weight"), Var::ones(*dim, DType::F32, device)?));
                    vars.push((format!("{n}.bias"), Var::zeros(*dim, DType::F32, device)?));
                }
                Op::ClassToken { dim } => {
                    // timm: normal(std=1e-6).
                    let t: Vec<f32> = (0..*dim).map(|_| normal(&mut rng) * 1e-6).collect();
                    vars.push((
                        n.clone(),
                        Var::from_tensor(&Tensor::from_vec(t, (1, 1, *dim), device)?)?,
                    ));
                }
                Op::PosEmbed { tokens, dim } => {
                    // timm: trunc_normal(std=0.02).
                    let t: Vec<f32> = (0..tokens * dim).map(|_| normal(&mut rng) * 0.02).collect();
                    vars.push((
                        n.clone(),
                        Var::from_tensor(&Tensor::from_vec(t, (1, *tokens, *dim), device)?)?,
                    ));
                }
                Op::Attention(a) => {
                    if let Some(w) = a.bias_window {
                        // timm: zeros.
                        vars.push((
                            format!("{n}.attention_biases"),
                            Var::zeros((a.heads, w * w), DType::F32, device)?,
                        ));
                    }
                }
                Op::Linear(l) => {
                    let bound = 1.0 / (l.in_features as f32).sqrt();
                    let mut u = |k: usize| -> Vec<f32> {
                        (0..k).map(|_| rng.random_range(-bound..bound)).collect()
                    };
                    let w = u(l.out_features * l.in_features);
                    vars.push((
                        format!("{n}.weight"),
                        Var::from_tensor(&Tensor::from_vec(
                            w,
                            (l.out_features, l.in_features),
                            device,
                        )?)?,
                    ));
                    if l.bias {
                        let b = u(l.out_features);
                        vars.push((
                            format!("{n}.bias"),
                            Var::from_tensor(&Tensor::from_vec(b, l.out_features, device)?)?,
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(Self::from_parts(vars, buffers))
    }

    /// Load a torchvision/timm state dict. Every tensor the graph needs must be present with the
    /// right shape; `num_batches_tracked` (int64) is ignored. With `replace_head`, a classifier
    /// (`fc`) of another class count keeps the fresh initialisation instead (a new head).
    pub fn load_safetensors(
        graph: &Graph,
        path: &Path,
        seed: u64,
        device: &Device,
        replace_head: bool,
    ) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, device)
            .with_context(|| format!("{}: cannot read safetensors", path.display()))?;
        let store = Self::init(graph, seed, device)?;
        let head = graph
            .nodes
            .last()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let mut problems = Vec::new();
        let expected: Vec<(String, Var)> = store
            .vars
            .iter()
            .chain(store.buffers.iter())
            .cloned()
            .collect();
        for (name, var) in &expected {
            let is_head = name.starts_with(&format!("{head}."));
            match tensors.get(name) {
                None if is_head && replace_head => {}
                None => problems.push(format!(
                    "missing tensor `{name}` (expected shape {:?})",
                    var.dims()
                )),
                Some(t) if t.dims() != var.dims() => {
                    if is_head && replace_head {
                        continue;
                    }
                    problems.push(format!(
                        "tensor `{name}` has shape {:?}, the model needs {:?}",
                        t.dims(),
                        var.dims()
                    ))
                }
                Some(t) => var.set(&t.to_dtype(DType::F32)?)?,
            }
        }
        for name in tensors.keys() {
            if !store.index.contains_key(name) && !name.ends_with("num_batches_tracked") {
                problems.push(format!("unexpected tensor `{name}`"));
            }
        }
        if !problems.is_empty() {
            problems.sort();
            bail!(
                "{}: does not fit {}:\n  {}",
                path.display(),
                graph.arch,
                problems.join("\n  ")
            );
        }
        Ok(store)
    }

    pub fn get(&self, name: &str) -> Result<&Var> {
        match self.index.get(name) {
            Some(&(true, i)) => Ok(&self.vars[i].1),
            Some(&(false, i)) => Ok(&self.buffers[i].1),
            None => bail!("no parameter named `{name}`"),
        }
    }

    /// Every tensor by name (parameters and buffers), e.g. for saving.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .chain(self.buffers.iter())
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Overwrite every tensor from a map with the same names and shapes (checkpoint restore).
    pub fn assign(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.vars.iter().chain(self.buffers.iter()) {
            let t = tensors
                .get(name)
                .with_context(|| format!("missing tensor `{name}`"))?;
            var.set(t)?;
        }
        Ok(())
    }

    /// A deep copy (new storage), e.g. to keep the best weights seen during training.
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .chain(self.buffers.iter())
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// An independent store with copies of every tensor (a quantized variant starts from one).
    pub fn duplicate(&self) -> Result<Self> {
        let copy = |list: &Vec<(String, Var)>| -> Result<Vec<(String, Var)>> {
            list.iter()
                .map(|(n, v)| Ok((n.clone(), Var::from_tensor(&v.as_tensor().copy()?)?)))
                .collect()
        };
        Ok(Self::from_parts(copy(&self.vars)?, copy(&self.buffers)?))
    }

    /// An independent store with every tensor converted to `dtype` (diagnostics run in f64).
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let conv = |list: &Vec<(String, Var)>| -> Result<Vec<(String, Var)>> {
            list.iter()
                .map(|(n, v)| {
                    Ok((
                        n.clone(),
                        Var::from_tensor(&v.as_tensor().to_dtype(dtype)?)?,
                    ))
                })
                .collect()
        };
        Ok(Self::from_parts(conv(&self.vars)?, conv(&self.buffers)?))
    }

    /// Save all tensors as safetensors, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::support::io::save_tensors_atomic(&self.tensors(), path)
    }
}
