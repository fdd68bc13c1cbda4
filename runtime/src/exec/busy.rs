//! Keeps the pool's other threads awake while one image runs.
//!
//! Why: a run is a chain of parallel loops of 50–250 µs each (ResNet18's integer path: 20 of
//! them in 4 ms). Between two loops rayon's idle worker spins a little, then sleeps; the next
//! loop wakes it again through the kernel, and on a virtual machine a sleeping vCPU takes tens
//! of microseconds to run again. Measured on a 2-vCPU Zen 5 VM: ResNet18's steps ran 1.6–1.8x
//! faster on 2 threads than on 1, and the run switched contexts 14 times per image.
//!
//! So, for the length of one run, every other worker of the pool takes a job that keeps asking
//! the pool for work (`rayon::yield_now`, which runs a pending job if there is one) until the
//! run ends. The run waits (about a millisecond at most) until each job has started on a
//! worker of its own before it starts its steps: a job still queued could otherwise be taken by
//! the run's own thread while it waits for a loop, and never return. Jobs that have not
//! started by then are cancelled: they end at once whenever a thread takes them.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// A keeper's state.
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

/// How long a run waits for its keepers to start.
const START_WAIT: Duration = Duration::from_millis(1);

/// `f()` inside a rayon scope on the current pool, the pool's other threads kept awake
/// meanwhile (see the module doc). Called from a thread outside the pool only: from inside
/// (images of a batch in parallel) the pool's threads have work of their own, and `f` runs as
/// is.
pub fn while_busy<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let others = rayon::current_num_threads().saturating_sub(1);
    if others == 0 || rayon::current_thread_index().is_some() {
        return rayon::scope(|_| f());
    }
    let done = AtomicBool::new(false);
    let states: Vec<AtomicU8> = (0..others).map(|_| AtomicU8::new(QUEUED)).collect();
    rayon::scope(|s| {
        for state in &states {
            let done = &done;
            s.spawn(move |_| keep_busy(state, done));
        }
        // Every keeper on a thread of its own, or cancelled.
        let start = Instant::now();
        while states.iter().any(|s| s.load(Ordering::Acquire) == QUEUED) {
            if start.elapsed() > START_WAIT {
                for s in &states {
                    let _ =
                        s.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire);
                }
                break;
            }
            std::hint::spin_loop();
        }
        // The keepers stop when `f` returns or unwinds: a panic in a step reaches the caller
        // instead of leaving them spinning and the scope waiting on them forever.
        let _stop = Stop(&done);
        f()
    })
}

/// Sets its flag when dropped (when `f` ends, returning or unwinding).
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// `PAUSE`s a keeper spins between two looks for work that found none.
///
/// Why not one: each look reads the pool's queues, whose cache lines the run's own thread
/// writes as it hands out a loop's jobs; looked at back to back, they travel between the two
/// cores all the time, the farther on a host that has put the vCPUs on different chiplets.
/// ResNet50's integer path, fq's blocks of 8 runs interleaved with onnxruntime's (40 and 50
/// rounds, Zen 3 KVM, 2 threads): median 36.8 -> 35.3 ms with 64 (256: 35.9; onnxruntime 30.4)
/// and 36.2 -> 34.9 with 256, the fastest runs unchanged (25.6 -> 24.9, 24.6 -> 24.8);
/// ResNet18's 14.9 -> 14.2 (256). A job may wait one round of them more before a keeper takes
/// it: about 1.6 µs on that Zen 3 (25 ns a `PAUSE`), at most some 0.2 ms of a ResNet50 run's
/// 110 loops, which its fastest runs do not show.
const IDLE_PAUSES: usize = 64;

/// One keeper: runs the pool's pending jobs, spinning between them, until `done`.
fn keep_busy(state: &AtomicU8, done: &AtomicBool) {
    if state
        .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {}
            _ => (0..IDLE_PAUSES).for_each(|_| std::hint::spin_loop()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// A panic inside a busy run reaches its caller (the keepers stop): it used to leave them
    /// spinning and the run's scope waiting on them forever. From a thread outside the pool,
    /// as `Executor::run`'s caller (the global pool: keepers wherever it has 2+ threads), and on
    /// a thread of its own, so a hang fails the test after a while instead of stalling the suite.
    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "no threads under WASI")]
    fn a_panic_in_a_busy_run_reaches_its_caller() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = std::panic::catch_unwind(|| {
                while_busy(|| {
                    let _ = (0..8).into_par_iter().map(|i| i * 2).sum::<i32>();
                    panic!("a step failed");
                })
            });
            let _ = tx.send(caught.is_err());
        });
        let got = rx.recv_timeout(Duration::from_secs(30));
        assert_eq!(got, Ok(true), "the panic did not come back within 30 s");
    }

    /// Parallel loops inside busy runs give the loops' results: from outside the pool (with
    /// keepers), from two outside threads at once (keepers that may find the other run's
    /// threads busy, and are cancelled), and from inside pools of 1 to 4 threads (no keepers);
    /// many times over, so a keeper stuck in a run's own thread would hang the test.
    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "no threads under WASI")]
    fn loops_run_and_return_with_keepers() {
        let job = |round: u64| (0..1000u64).into_par_iter().map(|i| i * round).sum::<u64>();
        let want = |round: u64| (0..1000u64).map(|i| i * round).sum::<u64>();
        for round in 0..300u64 {
            assert_eq!(while_busy(|| job(round)), want(round));
        }
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for round in 0..300u64 {
                        assert_eq!(while_busy(|| job(round)), want(round));
                    }
                });
            }
        });
        for threads in 1..=4 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool");
            for round in 0..50u64 {
                assert_eq!(pool.install(|| while_busy(|| job(round))), want(round));
            }
        }
    }
}
