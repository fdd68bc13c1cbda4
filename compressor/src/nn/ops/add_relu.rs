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

/// The output gradient where `y > 0`, zero elsewhere: the backward of a ReLU whose output is
/// `y`, in parallel (used by the fused batch norm too). At an input of exactly zero the
/// gradient is zero, as in PyTorch (candle's own ReLU passes it there).
pub(crate) fn mask_by_output(dy: &[f32], y: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; dy.len()];
    out.par_chunks_mut(GRAIN)
        .zip(dy.par_chunks(GRAIN).zip(y.par_chunks(GRAIN)))
        .for_each(|(o, (d, y))| {
            for ((o, &d), &y) in o.iter_mut().zip(d).zip(y) {
                *o = if y > 0.0 { d } else { 0.0 };
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
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let res = res.contiguous()?;
        let g = with_cpu_slice(&grad, |dy| with_cpu_slice(&res, |y| mask_by_output(dy, y)))??;
        let g = Tensor::from_vec(g, a.shape(), a.device())?;
        let gb = b.track_op().then(|| g.clone());
        Ok((a.track_op().then_some(g), gb))
    }
}
