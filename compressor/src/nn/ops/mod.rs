//! CPU training ops that candle 0.11 runs slowly (see `bench/results.md`, "Training
//! throughput"): convolution through im2col + gemm, fused train-mode batch norm, max pooling
//! with a recorded argmax, the straight-through fake-quantizer as one op, and the ReLUs after a
//! batch norm or a residual add inside those ops. Each falls back to candle's own ops off the CPU,
//! so the `cuda` build is unaffected; each is checked against those ops in `tests/ops_*.rs`.

pub mod add_relu;
pub mod batch_norm;
pub mod conv;
pub mod conv_direct;
pub mod depthwise;
pub mod fake_quant;
pub mod gemm;
pub mod im2col;
pub mod max_pool;

use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Storage, Tensor};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switch the fast ops on or off process-wide (on by default). Off, the model runs candle's own
/// ops everywhere: the training benchmark times both in one run.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the fast ops apply to `t`: enabled, an f32 tensor, on the CPU.
pub fn applies(t: &Tensor) -> bool {
    ENABLED.load(Ordering::Relaxed) && t.device().is_cpu() && t.dtype() == DType::F32
}

/// The f32 elements of a contiguous CPU tensor (the ops make their inputs contiguous first).
fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("fq op: expected a contiguous f32 tensor, got {l:?}"),
    }
}

/// Run `f` on the f32 elements of a contiguous CPU tensor without copying them.
pub(crate) fn with_cpu_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => Ok(f(cpu_slice(s, layout)?)),
        _ => candle_core::bail!("fq op: expected a CPU tensor"),
    }
}

/// Run `f` on the f32 elements of a contiguous CPU tensor, changing them in place (a candle
/// in-place op: the tensor's storage is write-locked meanwhile, so `f` must not read this
/// tensor any other way). Every tensor sharing the storage sees the change.
pub(crate) fn with_cpu_slice_mut<R>(
    t: &Tensor,
    f: impl FnOnce(&mut [f32]) -> R,
) -> candle_core::Result<R> {
    struct InPlace<F, R> {
        f: Cell<Option<F>>,
        out: Cell<Option<R>>,
    }
    impl<F: FnOnce(&mut [f32]) -> R, R> InplaceOp1 for InPlace<F, R> {
        fn name(&self) -> &'static str {
            "fq-in-place"
        }
        fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
            let Some((a, b)) = l.contiguous_offsets() else {
                candle_core::bail!("fq op: expected a contiguous tensor, got {l:?}");
            };
            let CpuStorage::F32(v) = s else {
                candle_core::bail!("fq op: expected an f32 tensor");
            };
            if let Some(f) = self.f.take() {
                self.out.set(Some(f(&mut v[a..b])));
            }
            Ok(())
        }
    }
    let op = InPlace {
        f: Cell::new(Some(f)),
        out: Cell::new(None),
    };
    t.inplace_op1(&op)?;
    op.out
        .take()
        .ok_or_else(|| candle_core::Error::Msg("fq op: the in-place op did not run".into()))
}

thread_local! {
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Two per-thread scratch buffers, reused across calls so the large im2col matrices are not
/// allocated (and page-faulted in) at every layer of every step. They are moved out for the
/// call, so a nested call on the same thread (rayon work stealing) just gets fresh ones.
fn scratch<R>(f: impl FnOnce(&mut Vec<f32>, &mut Vec<f32>) -> R) -> R {
    let (mut a, mut b) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let r = f(&mut a, &mut b);
    SCRATCH.with(|s| *s.borrow_mut() = (a, b));
    r
}
