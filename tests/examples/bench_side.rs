//! One fq-runtime measurement of `bench/compare.py`'s side-by-side run ("One benchmark run, side
//! by side", issue 16 item 7), one process per measurement so its peak memory is its own:
//!
//! - `bench_side export --model ARCH --out FILE [--bits LO-HI]` writes a packed model of the zoo
//!   architecture (224x224, 1000 classes, seed-0 random weights as `bench_zoo` builds them) with
//!   a random per-channel mix of `LO..=HI`-bit weight codes (default 3-5, about 4 bits), and
//!   prints one JSON line describing it.
//! - `bench_side time --model-file FILE --path f32|int8 --batch N [--threads T] [--budget S]
//!   [--min-reps N]` loads it, times `N` random images per run (best and median seconds over at
//!   least `min-reps` runs and about `S` seconds, after one warm-up run) and prints one JSON
//!   line with the figures, the kernel paths actually used (`FQ_MAX_ISA` lowers them) and the
//!   process's peak resident memory. `int8` is the integer path with static activation scales
//!   calibrated on 4 random images (`Executor::calibrate`), the counterpart of onnxruntime's
//!   static QDQ model.
//!
//! - `bench_side serve --model-file FILE --path f32|int8 --batch N [--threads T]` loads it as
//!   `time` does, prints `{"ready": ...}`, then answers each line `N` on stdin with one JSON
//!   line of `N` runs' milliseconds: the fq side of `compare.py`'s paired blocks.
//! - `bench_side paths` prints the kernel paths this process would use (under `FQ_MAX_ISA`).
//! - `bench_side handoff` prints how long a cache line written on CPU 0 takes to be seen on CPU
//!   1 (two pinned threads passing a counter back and forth, the median of 5 runs of 100,000
//!   one-way handoffs): about 20-50 ns where the two vCPUs share a cache, about 190-330 ns where
//!   the host has put them on cores that do not (other chiplets); null with fewer than two
//!   CPUs. The side-by-side run records it before every measurement, since that placement,
//!   which changes over minutes on a shared host, moves the 2-thread figures far more than the
//!   noise (see `bench/results.md`).
//!
//! Not part of `cargo test`.

mod bench_common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fq_compress::nn::params::ParamStore;
use fq_compress::run::export::pack_model;
use fq_models::ArchSpec;
use fq_runtime::classify::Classifier;
use fq_runtime::exec::{kernel, Activations};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const USAGE: &str = "bench_side paths\n\
                     bench_side handoff\n\
                     bench_side export --model ARCH --out FILE [--bits LO-HI]\n\
                     bench_side time --model-file FILE --path f32|int8 --batch N [--threads T] \
                     [--budget SECONDS] [--min-reps N]\n\
                     bench_side serve --model-file FILE --path f32|int8 --batch N [--threads T]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().context(USAGE)?;
    let opts = Opts::parse(rest)?;
    match cmd.as_str() {
        "export" => export(&opts),
        "time" => time(&opts),
        "serve" => serve(&opts),
        "paths" => {
            println!("{}", paths());
            Ok(())
        }
        "handoff" => {
            // null with fewer than two CPUs: there is no second core to hand a line to.
            println!("{}", json!({ "handoff_ns": handoff_ns() }));
            Ok(())
        }
        other => bail!("unknown command `{other}`\n{USAGE}"),
    }
}

/// The `--name value` options, each checked where it is used.
struct Opts(Vec<(String, String)>);

impl Opts {
    fn parse(rest: &[String]) -> Result<Self> {
        let mut v = Vec::new();
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let name = k
                .strip_prefix("--")
                .with_context(|| format!("expected --option, got `{k}`\n{USAGE}"))?;
            let value = it
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            v.push((name.to_string(), value.clone()));
        }
        Ok(Self(v))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn need(&self, name: &str) -> Result<&str> {
        self.get(name)
            .with_context(|| format!("--{name} is required\n{USAGE}"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name} {v}: not a number")),
        }
    }
}

/// Builds and writes the packed model (write to a temporary name, then rename: a reader never
/// sees half a file).
fn export(o: &Opts) -> Result<()> {
    let arch = o.need("model")?;
    let out = PathBuf::from(o.need("out")?);
    let (lo, hi) = match o.get("bits").unwrap_or("3-5").split_once('-') {
        Some((a, b)) => (a.parse::<u8>()?, b.parse::<u8>()?),
        None => bail!("--bits LO-HI, e.g. 3-5"),
    };
    if !(2..=8).contains(&lo) || !(lo..=8).contains(&hi) {
        bail!("--bits {lo}-{hi}: widths must satisfy 2 <= LO <= HI <= 8");
    }
    let start = Instant::now();
    let g = ArchSpec::new(arch.parse()?, 64, 224, 1000).graph()?;
    let params = ParamStore::init(&g, 0, &candle_core::Device::Cpu)?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let bits = bench_common::random_bits(&g, &mut rng, lo..=hi)?;
    let model = pack_model(&g, &params, Some(&bits), bench_common::imagenet_meta())?;
    // Atomic, as every model file the project writes.
    let bytes = model.save(&out)?;
    println!(
        "{}",
        json!({
            "model": arch,
            "file": out,
            "bytes": bytes,
            "params": g.param_count(),
            // Parameter-weighted, as the file's summary computes it (spec §8).
            "mean_weight_bits": model.summary.avg_bits,
            "bits": format!("{lo}-{hi}"),
            "seconds": start.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// A loaded model ready to time: the classifier (calibrated for the integer path) and one
/// batch of random images.
struct Loaded {
    classifier: Classifier,
    images: Vec<f32>,
    batch: usize,
    threads: usize,
    activations: Activations,
    load_s: f64,
}

impl Loaded {
    /// Reads `--model-file`, `--path`, `--batch` and `--threads`, builds the global pool and
    /// loads the model: what `time` and `serve` share.
    fn new(o: &Opts) -> Result<Self> {
        let file = PathBuf::from(o.need("model-file")?);
        let activations = match o.need("path")? {
            "f32" => Activations::F32,
            "int8" => Activations::Int8Static,
            other => bail!("--path {other}: expected f32 or int8"),
        };
        let batch: usize = o.num("batch", 1)?;
        let threads: usize = o.num("threads", 2)?;
        if batch == 0 || threads == 0 {
            bail!("--batch and --threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()?;
        let start = Instant::now();
        let mut classifier =
            Classifier::load(&file).with_context(|| format!("loading {}", file.display()))?;
        let per = classifier.executor().input_len();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n * per).map(|_| rng.random_range(-2.0..2.0)).collect() };
        if activations == Activations::Int8Static {
            let calib = random(4);
            let scales = classifier.executor().calibrate(calib.chunks_exact(per))?;
            classifier.executor_mut().set_activation_scales(scales);
        } else {
            classifier.set_activations(activations);
        }
        let images = random(batch);
        Ok(Self {
            classifier,
            images,
            batch,
            threads,
            activations,
            load_s: start.elapsed().as_secs_f64(),
        })
    }

    /// Seconds of one run over the batch.
    fn run(&self) -> Result<f64> {
        let exec = self.classifier.executor();
        let t = Instant::now();
        if self.batch == 1 {
            std::hint::black_box(exec.run(&self.images)?);
        } else {
            std::hint::black_box(exec.run_batch(&self.images, self.batch)?);
        }
        Ok(t.elapsed().as_secs_f64())
    }
}

/// Times one (model, path, batch) and prints one JSON line.
fn time(o: &Opts) -> Result<()> {
    let budget: f64 = o.num("budget", 2.0)?;
    let min_reps: usize = o.num("min-reps", 3)?;
    let m = Loaded::new(o)?;
    m.run()?;
    let mut times = Vec::new();
    let t0 = Instant::now();
    while times.len() < min_reps || (t0.elapsed().as_secs_f64() < budget && times.len() < 500) {
        times.push(m.run()?);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "runtime": format!("fq-{}", o.need("path")?),
            "activations": m.activations.name(),
            "model_file": o.need("model-file")?,
            "batch": m.batch,
            "threads": m.threads,
            "best_ms": times[0] * 1e3,
            "median_ms": times[times.len() / 2] * 1e3,
            "reps": times.len(),
            "kernels": paths(),
            "load_s": m.load_s,
            "peak_rss_kb": peak_rss_kb(),
        })
    );
    Ok(())
}

/// Loads once, then times blocks of runs on request: each line `N` on stdin runs the batch `N`
/// times and answers one JSON line with each run's milliseconds; end of input ends it. Why: the
/// paired phase of `compare.py` alternates blocks of every runtime in long-lived processes, so
/// that each sees the same stretches of a shared host (whose two vCPUs change speed for seconds
/// at a time), and compares medians, not only the fastest runs of separate processes.
fn serve(o: &Opts) -> Result<()> {
    use std::io::{BufRead, Write};
    let m = Loaded::new(o)?;
    m.run()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        json!({ "ready": true, "kernels": paths(), "load_s": m.load_s })
    )?;
    out.flush()?;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let n: usize = line
            .trim()
            .parse()
            .with_context(|| format!("stdin line {}: `{line}` is not a run count", i + 1))?;
        let ms = (0..n)
            .map(|_| m.run().map(|s| s * 1e3))
            .collect::<Result<Vec<f64>>>()?;
        writeln!(out, "{}", json!({ "ms": ms }))?;
        out.flush()?;
    }
    Ok(())
}

/// The f32 and integer micro-kernel paths chosen, and the `FQ_MAX_ISA` they were chosen under.
fn paths() -> serde_json::Value {
    json!({
        "f32": kernel::path().name(),
        "int8": kernel::int8_path().name(),
        "fq_max_isa": std::env::var(kernel::max_isa::VAR).unwrap_or_default(),
    })
}

/// The process's peak resident set (`VmHWM`, kB), where Linux reports it.
fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The one-way latency of a cache line between CPUs 0 and 1, in nanoseconds: the median of 5
/// runs of 100,000 handoffs of a counter that each thread increments when it sees the other's
/// value (`bench_side handoff`). Pinned: unpinned, the pair read 100 ns where pinned it read 21.
/// `None` with fewer than two CPUs: both spinning threads would share one, each handoff waiting
/// for the scheduler's time slice (minutes for a run).
fn handoff_ns() -> Option<f64> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    const N: u64 = 100_000;
    // A line of its own: on the stack beside the threads' other values it measured 40 ns where
    // a separate line measured 20.
    #[repr(align(128))]
    struct Line(AtomicU64);
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let line = Line(AtomicU64::new(0));
            let flag = &line.0;
            std::thread::scope(|s| {
                s.spawn(|| {
                    pin(1);
                    for i in 0..N {
                        while flag.load(Ordering::Acquire) != 2 * i + 1 {
                            std::hint::spin_loop();
                        }
                        flag.store(2 * i + 2, Ordering::Release);
                    }
                });
                pin(0);
                let start = Instant::now();
                for i in 0..N {
                    flag.store(2 * i + 1, Ordering::Release);
                    while flag.load(Ordering::Acquire) != 2 * i + 2 {
                        std::hint::spin_loop();
                    }
                }
                start.elapsed().as_secs_f64() * 1e9 / (2 * N) as f64
            })
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    Some(runs[runs.len() / 2])
}

/// Pins the calling thread to CPU `cpu` (Linux; elsewhere, and if it fails, it stays where the
/// scheduler puts it).
fn pin(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set; `CPU_SET` indexes within it (CPU 0 or
    // 1), and `sched_setaffinity` reads that many bytes of it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}
