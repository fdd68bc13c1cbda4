//! `relu(a + b)`, a residual block's last two ops, as one op. candle runs the add and the ReLU
//! as two nodes, and a ReLU's backward as four single-threaded passes (a zeros tensor, a
//! comparison, a cast, a product) before adding the result into the add's gradient. Here the
//! forward is one parallel pass and the backward one mask of the output gradient, shared by
//! both inputs.

use super::{applies, cpu_slice, with_cpu_slice};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel task: enough to amortise the task, few enough to split a layer.
const GRAIN: usize = 1 << 14;

/// `relu(a + b)` for tensors of one shape, through the fused op where it applies (CPU, f32,
/// enabled), else candle's add and ReLU.
pub fn add_relu(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if !applies(a) || !applies(b) || a.shape() != b.shape() {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// The output gradient where `a + b >= 0`, zero elsewhere: the backward of the ReLU, which
/// passes the gradient where its input is at least zero, as candle's does (PyTorch's stops it at
/// exactly zero; matching candle keeps training bit for bit what it was with the two ops: the
/// synthetic demo images' flat regions do reach exact zeros).
fn mask_by_input(dy: &[f32], a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; dy.len()];
    out.par_chunks_mut(GRAIN)
        .zip(
            dy.par_chunks(GRAIN)
                .zip(a.par_chunks(GRAIN).zip(b.par_chunks(GRAIN))),
        )
        .for_each(|(o, (d, (a, b)))| {
            for (((o, &d), &a), &b) in o.iter_mut().zip(d).zip(a).zip(b) {
                *o = if a + b >= 0.0 { d } else { 0.0 };
            }
        });
    out
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "fq-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = (cpu_slice(s1, l1)?, cpu_slice(s2, l2)?);
        if a.len() != b.len() {
            candle_core::bail!("add_relu: {:?} and {:?} differ", l1.shape(), l2.shape());
        }
        let mut y = vec![0f32; a.len()];
        y.par_chunks_mut(GRAIN)
            .zip(a.par_chunks(GRAIN).zip(b.par_chunks(GRAIN)))
            .for_each(|(y, (a, b))| {
                for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                    *y = (a + b).max(0.0);
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let g = with_cpu_slice(&grad, |dy| {
            with_cpu_slice(a, |av| with_cpu_slice(b, |bv| mask_by_input(dy, av, bv)))
        })???;
        let g = Tensor::from_vec(g, a.shape(), a.device())?;
        let gb = b.track_op().then(|| g.clone());
        Ok((a.track_op().then_some(g), gb))
    }
}
