//! Process-wide settings for CPU training, applied once at the start of `main`, before any
//! other thread exists (both are read by code that other threads run).
//!
//! Why they matter (perf on the embedded model's training step, 2 cores):
//! - candle 0.11 runs its CPU elementwise ops (ReLU, adds, the optimizer) on a barrier pool of
//!   its own, whose workers spin 25,000 `pause`s after every op before they park. The
//!   convolutions, batch norm and pooling of `nn::ops` run on rayon's pool, on the same cores, so
//!   that spinning took a quarter of the step's samples. A short spin lets the worker park.
//! - glibc's malloc serves blocks above its mmap threshold (128 KiB, rising to at most 32 MiB)
//!   with fresh mappings and unmaps them on free, so every step page-faulted its activations and
//!   gradients in anew (9% of the samples, plus TLB shootdowns). Keeping freed memory in the
//!   heap makes the next step reuse it.

/// Spin limit handed to candle's barrier pool unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set.
const CANDLE_SPIN_LIMIT: &str = "1000";

/// Apply both settings; a user's own `CANDLE_BARRIER_POOL_SPIN_LIMIT` is kept. Call it first
/// thing in `main` (it sets an environment variable, which is only sound single-threaded).
pub fn tune_for_training() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
    }
    keep_freed_memory();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // glibc's <malloc.h>; the values are part of its ABI.
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_MAX: i32 = -4;
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only changes glibc's allocation policy; it is called before other threads
    // start. Its return value (1 on success) needs no handling: the default policy is correct,
    // only slower.
    unsafe {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
