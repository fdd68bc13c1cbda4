//! A step's tasks on the pool, each a job of its own that any idle thread may take.
//!
//! Why: on a shared host the two vCPUs often run at different speeds for seconds at a time (a
//! loop of dependent adds pinned to each, Zen 3 KVM: 2.85 against 2.02 GHz, then the other way),
//! and a phone's or tablet's big and little cores always do. rayon hands a range out in halves
//! and runs its last pieces two or more tasks at a time, so a layer waited for the slower
//! core's share; one task per job, the core that is done takes the next task of the other's.
//! Measured on that Zen 3 with 2 threads, fq's blocks of runs interleaved with onnxruntime's:
//! ResNet50's integer path median 33.9 -> 30.5 ms (36 rounds of 8 runs, with four tasks per
//! thread, `int8_gemm`'s `STEALABLE`), its f32 path 49.1 -> 47.5 and 67.1 -> 61.9 in a slow
//! stretch, ResNet18's f32 19.8 -> 17.2, TinyViT-5M's 25.2 -> 23.1 (20 rounds of 6); the
//! fastest runs within 1-2%.

use rayon::prelude::*;

/// `task(t)` for every `t < tasks`, in parallel on the current pool, each a job of its own.
pub(super) fn each(tasks: usize, task: impl Fn(usize) + Send + Sync) {
    (0..tasks).into_par_iter().with_max_len(1).for_each(task);
}
