//! Per-step times of one packed model on the integer or the f32 path: the fastest of `reps`
//! runs of each step of `Executor::run_stepped` and their median, with the pool's other threads
//! kept busy between steps (as `Executor::run` keeps them), one line per step and their sums.
//! The medians show the steps a host's slow state hits (the two vCPUs on cores that share no
//! cache: `bench_side handoff`), which the fastest runs hide. How the
//! integer path's layers are compared with onnxruntime's per-node profile (`bench/results.md`,
//! "Update, stop 40" onwards).
//!   cargo run --release -p fq-e2e --example step_times -- MODEL.fqm int8|f32 [REPS] [THREADS]
//! e.g. `... -- target/bench-compare/resnet18.fqm int8 150 2` (`bench/compare.sh` writes the
//! `.fqm` files there). The integer path's activation scales come from 4 random images, as in
//! `bench_side`. With `FQ_NO_WINO` set in the environment, the f32 path runs its 3x3 stride-1
//! convolutions directly instead of by Winograd (`Executor::set_winograd`), to compare the two;
//! with `FQ_NO_LANES`, its convolutions with the channels along the lanes run by the direct
//! convolution instead (`Executor::set_conv_lanes`); with `FQ_NO_BLOCKS`, the values between
//! those convolutions stay in channel planes (`Executor::set_blocked_values`); with
//! `FQ_NO_BANDS`, the integer GEMM's large tasks run as one block (`Executor::set_int8_bands`);
//! with `FQ_NO_STEM_POOL`, the stem and its max pooling run as two steps
//! (`Executor::set_stem_pool_fusion`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fq_runtime::classify::Classifier;
use fq_runtime::exec::{Activations, Step};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: step_times MODEL.fqm int8|f32 [REPS] [THREADS]";
    let (Some(file), Some(path)) = (args.first(), args.get(1)) else {
        bail!("{usage}");
    };
    let int8 = match path.as_str() {
        "int8" => true,
        "f32" => false,
        other => bail!("path {other:?}: int8 or f32 ({usage})"),
    };
    let number = |i: usize, name: &str, default: usize| -> Result<usize> {
        args.get(i).map_or(Ok(default), |v| {
            v.parse()
                .with_context(|| format!("{name} {v:?}: a number ({usage})"))
        })
    };
    let (reps, threads) = (number(2, "REPS", 30)?, number(3, "THREADS", 2)?);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;
    let file = PathBuf::from(file);
    let mut c = Classifier::load(&file).with_context(|| format!("loading {}", file.display()))?;
    let per = c.executor().input_len();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut random =
        |n: usize| -> Vec<f32> { (0..n * per).map(|_| rng.random_range(-2.0..2.0)).collect() };
    if int8 {
        let calib = random(4);
        let scales = c.executor().calibrate(calib.chunks_exact(per))?;
        c.executor_mut().set_activation_scales(scales);
    } else {
        c.set_activations(Activations::F32);
        if std::env::var_os("FQ_NO_WINO").is_some() {
            c.executor_mut().set_winograd(false);
        }
        if std::env::var_os("FQ_NO_LANES").is_some() {
            c.executor_mut().set_conv_lanes(false);
        }
        if std::env::var_os("FQ_NO_BLOCKS").is_some() {
            c.executor_mut().set_blocked_values(false);
        }
    }
    if std::env::var_os("FQ_NO_BANDS").is_some() {
        c.executor_mut().set_int8_bands(false);
    }
    if std::env::var_os("FQ_NO_STEM_POOL").is_some() {
        c.executor_mut().set_stem_pool_fusion(false);
    }
    let x = random(1);
    let exec = c.executor();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(reps.max(1)); exec.steps().len()];
    let mut runs = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let done = AtomicBool::new(false);
        rayon::scope(|scope| {
            // The other threads stay awake between the steps, as in `Executor::run`.
            if rayon::current_num_threads() > 1 {
                let done = &done;
                scope.spawn(move |_| {
                    while !done.load(Ordering::Acquire) {
                        if rayon::yield_now() != Some(rayon::Yield::Executed) {
                            std::hint::spin_loop();
                        }
                    }
                });
                std::thread::sleep(Duration::from_micros(200));
            }
            let mut last = Instant::now();
            let start = last;
            let run = exec.run_stepped(&x, |s| {
                let now = Instant::now();
                times[s].push((now - last).as_secs_f64() * 1e3);
                last = now;
            });
            runs.push(start.elapsed().as_secs_f64() * 1e3);
            done.store(true, Ordering::Release);
            run
        })?;
    }
    runs.sort_by(f64::total_cmp);
    let (mut total, mut total_median) = (0.0, 0.0);
    for (s, (step, ms)) in exec.steps().iter().zip(&mut times).enumerate() {
        if ms.is_empty() {
            continue;
        }
        ms.sort_by(f64::total_cmp);
        let (best, median) = (ms[0], ms[ms.len() / 2]);
        total += best;
        total_median += median;
        let what = match step {
            Step::Conv { conv, residual, .. } => format!(
                "conv {}->{} k{} s{}{}",
                conv.in_channels,
                conv.out_channels,
                conv.kernel,
                conv.stride,
                if residual.is_some() { " +res" } else { "" }
            ),
            other => other.kind().to_string(),
        };
        println!("{s:3} {what:32} {best:7.3} ms {median:7.3} ms");
    }
    println!("total {total:.2} ms (medians {total_median:.2} ms)");
    // The sum of each step's fastest run is below the fastest whole run (a step's slow runs
    // are not all the same run's): the gap is the variance between runs, not time between steps.
    println!(
        "whole runs {:.2} ms fastest, {:.2} ms median",
        runs[0],
        runs[runs.len() / 2]
    );
    Ok(())
}
