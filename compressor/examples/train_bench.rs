//! Training throughput of the compressor: images/s of one training step (forward, cross-entropy,
//! backward, AdamW update) at batch 32 in f32, fake-quant off (FP32) and on (U4 per-channel, the
//! spec §1 quantizer), with candle 0.11's own ops ("before") and with `fq_compress::nn::ops`
//! ("after"), for ResNet18 at 224x224 and the embedded default (ResNet18 at width 16, 64x64,
//! 9 classes); then the per-part breakdown of a step (conv forward, backward-data,
//! backward-weight, batch norm, quantizer, max pool) summed over the model's layers. PyTorch figures for
//! the same shapes come from `bench/train_reference.json` (`bench/train_reference.py`).
//!
//! Variants are timed round-robin, one step each per round, so a shared machine's drift hits
//! them alike; with `--python CMD` (a Python with torch), PyTorch's FP32 and U4 steps join each
//! round through `bench/train_reference.py --serve`, and the table's PyTorch column and ratios
//! come from them. Run through `bench/train.sh`, which replaces the "Training throughput" section of
//! `bench/results.md` and keeps the others. Not part of `cargo test`.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use fq_compress::nn::fake_quant::fake_quant;
use fq_compress::nn::model::{max_pool, Mode, Model, Quant};
use fq_compress::nn::ops;
use fq_compress::nn::optim::{AdamW, AdamWConfig};
use fq_compress::nn::params::ParamStore;
use fq_compress::nn::quant::{BitAssignment, Granularity};
use fq_models::{Arch, ArchSpec, Graph, Op, Shape};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

const BATCH: usize = 32;
const SECTION: &str = "## Training throughput";

/// One benchmarked model: its key in the reference JSON, a title and the timed steps per variant.
struct Subject {
    key: &'static str,
    title: &'static str,
    spec: ArchSpec,
    /// Timed steps of the fq-ops variants.
    steps: usize,
    /// Timed steps of the candle-ops variants (at 224x224 one takes over a minute on 2 cores).
    candle_steps: usize,
    /// Run an untimed warm-up round first (pointless where a step takes a minute).
    warmup: bool,
}

/// A step variant: candle's ops or ours, fake-quant off or on.
#[derive(Clone, Copy)]
struct Variant {
    fast: bool,
    quant: bool,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        fast: false,
        quant: false,
    },
    Variant {
        fast: true,
        quant: false,
    },
    Variant {
        fast: false,
        quant: true,
    },
    Variant {
        fast: true,
        quant: true,
    },
];

fn random(rng: &mut ChaCha8Rng, dims: &[usize]) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
}

/// Best and median of a list of seconds.
fn best_median(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (t[0], t[t.len() / 2])
}

fn bar(len: usize, label: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_prefix(label.to_string());
    b
}

/// Seconds of one training step.
fn step(
    model: &Model,
    opt: &mut AdamW,
    x: &Tensor,
    y: &Tensor,
    bits: Option<&BitAssignment>,
) -> Result<f64> {
    let t = Instant::now();
    let logits = model.forward_q(x, Mode::Train, Quant::from(bits))?;
    let loss = candle_nn::loss::cross_entropy(&logits, y)?;
    let grads = loss.backward()?;
    opt.step(&grads, None)?;
    let l = loss.to_scalar::<f32>()?;
    if !l.is_finite() {
        bail!("non-finite loss {l} in the benchmark step");
    }
    Ok(t.elapsed().as_secs_f64())
}

/// PyTorch's training steps, timed one at a time by `bench/train_reference.py --serve` (a
/// child process) between this benchmark's own: run one after the other, a shared machine's
/// slow and fast spells fell on one side only (a ratio moved from 0.75 to 0.84 between runs).
/// While PyTorch steps, this process waits on the pipe, so the two never share the cores.
struct Torch {
    child: std::process::Child,
    /// `None` once closed, which ends the server's loop.
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Torch {
    fn start(python: &str) -> Result<Self> {
        use std::process::{Command, Stdio};
        let mut child = Command::new(python)
            .args(["-W", "ignore", "bench/train_reference.py", "--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {python} bench/train_reference.py --serve"))?;
        let stdin = child.stdin.take().context("the server's stdin")?;
        let stdout = std::io::BufReader::new(child.stdout.take().context("the server's stdout")?);
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout,
        })
    }

    /// Seconds of one PyTorch step of model `key`, fake-quant on or off.
    fn step(&mut self, key: &str, quant: bool) -> Result<f64> {
        use std::io::{BufRead, Write};
        let mode = if quant { "u4" } else { "fp32" };
        let stdin = self
            .stdin
            .as_mut()
            .context("the PyTorch server was closed")?;
        writeln!(stdin, "{key} {mode}")
            .and_then(|()| stdin.flush())
            .context("writing to the PyTorch server")?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the PyTorch server exited (stderr above says why)");
        }
        line.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("PyTorch server, step {key} {mode}: {}", line.trim()))
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        // Closing stdin ends the server's loop; wait so no process outlives the benchmark.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `[(best, median) seconds]` per variant, in `VARIANTS` order, then PyTorch's FP32 and U4
/// steps when `torch` is given (one step each per round, after the variants').
fn time_steps(s: &Subject, mut torch: Option<&mut Torch>) -> Result<Vec<(f64, f64)>> {
    let graph = s.spec.graph()?;
    let dev = Device::Cpu;
    let model = Model::new(graph.clone(), ParamStore::init(&graph, 0, &dev)?, dev);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let size = s.spec.input_size;
    let x = random(&mut rng, &[BATCH, 3, size, size])?;
    let labels: Vec<u32> = (0..BATCH)
        .map(|_| rng.random_range(0..s.spec.num_classes as u32))
        .collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu)?;
    let bits = BitAssignment::uniform(&graph.quant_layers()?, 4);
    let mut opt = AdamW::new(
        vec![model.params.vars.clone()],
        vec![1e-4],
        AdamWConfig::default(),
    )?;
    let mut times = vec![Vec::new(); VARIANTS.len() + if torch.is_some() { 2 } else { 0 }];
    let warm = usize::from(s.warmup);
    let torch_steps = if torch.is_some() {
        2 * (warm + s.steps)
    } else {
        0
    };
    let pb = bar(
        (warm + s.steps) * 2 + (warm + s.candle_steps) * 2 + torch_steps,
        s.key,
    );
    for round in 0..warm + s.steps.max(s.candle_steps) {
        for (v, t) in VARIANTS.iter().zip(&mut times) {
            if round >= warm + if v.fast { s.steps } else { s.candle_steps } {
                continue;
            }
            ops::set_enabled(v.fast);
            let secs = step(&model, &mut opt, &x, &y, v.quant.then_some(&bits))?;
            if round >= warm {
                t.push(secs);
            }
            pb.inc(1);
        }
        if let Some(torch) = torch.as_deref_mut().filter(|_| round < warm + s.steps) {
            for (i, quant) in [false, true].into_iter().enumerate() {
                let secs = torch.step(s.key, quant)?;
                if round >= warm {
                    times[VARIANTS.len() + i].push(secs);
                }
                pb.inc(1);
            }
        }
    }
    ops::set_enabled(true);
    pb.finish_and_clear();
    Ok(times.into_iter().map(best_median).collect())
}

/// Best seconds of `reps` runs of `f` (the first run included: the slow candle parts at 224x224
/// take seconds each, so a separate warm-up would double the bench).
fn best_of(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Seconds per step of each part, summed over the layers: `[conv fwd, bwd-data, bwd-weight,
/// batch norm fwd+bwd, quantizer fwd+bwd, max pool fwd+bwd]`, with candle's ops (`fast = false`) or ours.
fn breakdown(graph: &Graph, fast: bool, reps: usize) -> Result<[f64; 6]> {
    let shapes = graph.shapes()?;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut out = [0.0; 6];
    // Layers of the same kind and shape are timed once (ResNet18 repeats most of its convs).
    let mut seen: HashMap<String, [f64; 6]> = HashMap::new();
    ops::set_enabled(fast);
    for node in &graph.nodes {
        let Shape::Chw(c, h, w) = shapes[node.inputs[0]] else {
            continue;
        };
        let key = format!("{:?} {c} {h} {w}", node.op);
        if let Some(t) = seen.get(&key) {
            out.iter_mut().zip(t).for_each(|(o, t)| *o += t);
            continue;
        }
        let before = out;
        match &node.op {
            Op::Conv2d(cv) => {
                let x = random(&mut rng, &[BATCH, c, h, w])?;
                let wt = random(&mut rng, &[cv.out_channels, c, cv.kernel, cv.kernel])?;
                let (p, s) = (cv.padding, cv.stride);
                let y = x.conv2d(&wt, p, s, 1, 1)?;
                let gy = random(&mut rng, y.dims())?;
                if fast {
                    let g = ops::im2col::ConvGeom::new((c, h, w), (cv.kernel, cv.kernel), s, p)
                        .context("conv geometry")?;
                    let (xs, ws) = (
                        x.flatten_all()?.to_vec1::<f32>()?,
                        wt.flatten_all()?.to_vec1::<f32>()?,
                    );
                    let gys = gy.flatten_all()?.to_vec1::<f32>()?;
                    let o = cv.out_channels;
                    // As a training step runs them: the forward keeps its columns for the
                    // weight gradient where they are small enough.
                    let keep = ops::conv::keeps_columns(&g, BATCH);
                    let mut kept = None;
                    out[0] += best_of(reps, || {
                        kept = ops::conv::forward(&g, BATCH, &xs, &ws, o, keep).1;
                        Ok(())
                    })?;
                    out[1] += best_of(reps, || {
                        ops::conv::backward_data(&g, BATCH, &gys, &ws, o);
                        Ok(())
                    })?;
                    out[2] += best_of(reps, || {
                        ops::conv::backward_weight(&g, BATCH, &xs, &gys, o, kept.as_ref());
                        Ok(())
                    })?;
                } else {
                    // The passes candle's backprop runs for a Conv2D node (candle-core 0.11.1
                    // backprop.rs).
                    out[0] += best_of(reps, || {
                        x.conv2d(&wt, p, s, 1, 1)?;
                        Ok(())
                    })?;
                    let out_size = (gy.dim(2)? - 1) * s + cv.kernel - 2 * p;
                    let out_pad = h - out_size;
                    out[1] += best_of(reps, || {
                        gy.conv_transpose2d(&wt, p, out_pad, s, 1)?;
                        Ok(())
                    })?;
                    out[2] += best_of(reps, || {
                        let gk = x
                            .transpose(0, 1)?
                            .conv2d(&gy.transpose(0, 1)?, p, 1, s, 1)?
                            .transpose(0, 1)?;
                        gk.narrow(2, 0, cv.kernel)?
                            .narrow(3, 0, cv.kernel)?
                            .contiguous()?;
                        Ok(())
                    })?;
                }
                // The quantizer on this layer's weight, forward and backward.
                out[4] += quantizer_time(&wt, reps, &mut rng)?;
            }
            Op::BatchNorm2d { channels, eps, .. } => {
                let x = Var::from_tensor(&random(&mut rng, &[BATCH, c, h, w])?)?;
                let g = Var::from_tensor(&Tensor::ones(
                    *channels,
                    candle_core::DType::F32,
                    &Device::Cpu,
                )?)?;
                let b = Var::from_tensor(&Tensor::zeros(
                    *channels,
                    candle_core::DType::F32,
                    &Device::Cpu,
                )?)?;
                let r = random(&mut rng, x.dims())?;
                out[3] += best_of(reps, || {
                    let y = match ops::batch_norm::train(&x, &g, &b, *eps, false)? {
                        Some(o) => o.y,
                        None => candle_bn(&x, &g, &b, *eps)?,
                    };
                    drop((y * &r)?.sum_all()?.backward()?);
                    Ok(())
                })?;
            }
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
            } => {
                let x = Var::from_tensor(&random(&mut rng, &[BATCH, c, h, w])?.relu()?)?;
                let (k, st, p) = (*kernel, *stride, *padding);
                let y = max_pool(&x, k, st, p)?;
                let r = random(&mut rng, y.dims())?;
                out[5] += best_of(reps, || {
                    let y = match ops::max_pool::max_pool2d(&x, k, st, p)? {
                        Some(y) => y,
                        None => max_pool(&x, k, st, p)?,
                    };
                    drop((y * &r)?.sum_all()?.backward()?);
                    Ok(())
                })?;
            }
            Op::Linear(l) => {
                let wt = random(&mut rng, &[l.out_features, l.in_features])?;
                out[4] += quantizer_time(&wt, reps, &mut rng)?;
            }
            _ => {}
        }
        let mut t = [0.0; 6];
        for i in 0..6 {
            t[i] = out[i] - before[i];
        }
        seen.insert(key, t);
    }
    ops::set_enabled(true);
    Ok(out)
}

/// The batch norm the model runs with the fast ops disabled.
fn candle_bn(x: &Tensor, g: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let c = g.dim(0)?;
    let mean = x.mean_keepdim((0, 2, 3))?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    Ok(centered
        .broadcast_mul(&(inv * g.reshape((1, c, 1, 1))?)?)?
        .broadcast_add(&b.reshape((1, c, 1, 1))?)?)
}

/// Seconds of `fake_quant` (U4 per channel) forward and backward on one weight.
fn quantizer_time(w: &Tensor, reps: usize, rng: &mut ChaCha8Rng) -> Result<f64> {
    let w = Var::from_tensor(w)?;
    let r = random(rng, w.dims())?;
    let bits = vec![4u8; w.dim(0)?];
    best_of(reps, || {
        let q = fake_quant(&w, &bits, Granularity::PerChannel)?;
        drop((q * &r)?.sum_all()?.backward()?);
        Ok(())
    })
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The CPU model, its SIMD flags and the micro-kernel family the `gemm` crate dispatches to
/// (it checks `avx512f` first, compiled in by our `x86-v4` feature, then `fma`), so a figure
/// always says which kernels produced it.
fn cpu_and_gemm_kernel() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let all_flags = field("flags");
    let flags: Vec<&str> = all_flags
        .split_whitespace()
        .filter(|f| f.starts_with("avx") || f.starts_with("amx") || *f == "fma")
        .collect();
    #[cfg(target_arch = "x86_64")]
    let gemm = if std::arch::is_x86_feature_detected!("avx512f") {
        "gemm's AVX-512F kernels"
    } else if std::arch::is_x86_feature_detected!("fma") {
        "gemm's AVX2+FMA kernels"
    } else {
        "gemm's scalar kernels"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let gemm = "gemm's kernels for this architecture";
    let model = field("model name");
    let model = if model.is_empty() {
        "unknown CPU".to_string()
    } else {
        model
    };
    format!("{model} (flags: {}); {gemm}", flags.join(", "))
}

fn main() -> Result<()> {
    fq_compress::support::process::tune_for_training();
    let mut out = PathBuf::from("bench/results.md");
    let mut reference = PathBuf::from("bench/train_reference.json");
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut python: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().context("--out needs a path")?.into(),
            "--reference" => reference = args.next().context("--reference needs a path")?.into(),
            "--quick" => quick = true,
            "--only" => only = Some(args.next().context("--only needs a model key")?),
            "--python" => python = Some(args.next().context("--python needs a command")?),
            other => bail!(
                "unknown argument `{other}` (expected --out, --reference, --quick, --only KEY, \
                 --python CMD)"
            ),
        }
    }
    let refs: Value = match std::fs::read_to_string(&reference) {
        Ok(s) => serde_json::from_str(&s)
            .with_context(|| format!("{}: not valid JSON", reference.display()))?,
        Err(_) => {
            eprintln!("{} not found: no PyTorch column", reference.display());
            Value::Null
        }
    };
    let subjects = [
        Subject {
            key: "embedded_64",
            title: "embedded default (ResNet18 at width 16, 64×64, 9 classes)",
            spec: ArchSpec::new(Arch::ResNet18, 16, 64, 9),
            steps: if quick { 2 } else { 8 },
            candle_steps: if quick { 2 } else { 8 },
            warmup: true,
        },
        Subject {
            key: "resnet18_224",
            title: "ResNet18 (width 64, 224×224, 1000 classes)",
            spec: ArchSpec::new(Arch::ResNet18, 64, 224, 1000),
            steps: if quick { 1 } else { 3 },
            candle_steps: 1,
            warmup: false,
        },
    ];
    let mut torch = python.as_deref().map(Torch::start).transpose()?;
    let torch_steps = if torch.is_some() {
        "its steps timed in this run, one FP32 and one U4 step after each round of the four \
         Rust variants (`bench/train_reference.py --serve`, a child process; this one waits \
         meanwhile); its part breakdown from `bench/train_reference.py`, run just before"
    } else {
        "`bench/train_reference.py`, run just before"
    };
    let threads = rayon::current_num_threads();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let mut md = format!(
        "{SECTION}\n\nOne training step (forward, cross-entropy, backward, AdamW update) at batch {BATCH}, \
         f32, {threads} threads; images/s, best of the timed steps (median in parentheses; at 224×224, 3 timed steps of the fq \
         ops, one of the candle ops, no warm-up; the embedded model: a warm-up round and 8 steps each). \
         \"candle ops\" is the compressor before `fq_compress::nn::ops` (candle 0.11's conv2d, batch \
         norm from broadcast ops, max pool from shifted maxima, the fake-quantizer as \
         `Q(w) + (w - stopgrad(w))`); \"fq ops\" is im2col + gemm convolutions, fused batch \
         norm, the argmax max pool and the fake-quant op. Fake-quant on = U4 per-channel on \
         every Conv2d/Linear weight (spec §1, straight-through). PyTorch: {} with \
         `torch.set_num_threads({})`, the same architecture, the same quantizer \
         ({torch_steps}). Generated by `bench/train.sh`; the four Rust variants are timed \
         round-robin, one step each per round. 1-minute load average (`/proc/loadavg`; \
         2 cores shared with other jobs) at the start of the Rust run: {load}. CPU: {}.\n\n",
        refs["versions"].as_str().unwrap_or("not measured"),
        refs["threads"].as_u64().map_or("–".into(), |t| t.to_string()),
        cpu_and_gemm_kernel(),
    );
    md += "| model | fake-quant | candle ops | fq ops | PyTorch | fq ÷ candle (img/s) | fq ÷ PyTorch (img/s) |\n|---|---|---|---|---|---|---|\n";
    let mut parts_md = String::new();
    for s in subjects
        .iter()
        .filter(|s| only.as_deref().is_none_or(|k| k == s.key))
    {
        eprintln!("timing {} ({} steps per variant)", s.title, s.steps);
        let t = time_steps(s, torch.as_mut())?;
        eprintln!("  step seconds (best, median) per variant: {t:?}");
        for (qi, (q, qkey)) in [("off (FP32)", "fp32"), ("on (U4)", "u4")]
            .iter()
            .enumerate()
        {
            let (cb, cm) = t[2 * qi];
            let (fb, fm) = t[2 * qi + 1];
            let ips = |secs: f64| BATCH as f64 / secs;
            // PyTorch's steps timed in this run, else those of the reference file.
            let (torch, torch_med) = match t.get(VARIANTS.len() + qi) {
                Some(&(b, m)) => (Some(ips(b)), Some(ips(m))),
                None => (
                    refs[s.key]["step_img_s"][qkey][0].as_f64(),
                    refs[s.key]["step_img_s"][qkey][1].as_f64(),
                ),
            };
            md += &format!(
                "| {} | {q} | {:.1} ({:.1}) | {:.1} ({:.1}) | {} ({}) | {:.2}× | {} |\n",
                s.title,
                ips(cb),
                ips(cm),
                ips(fb),
                ips(fm),
                fmt(torch, 1),
                fmt(torch_med, 1),
                cb / fb,
                fmt(torch.map(|t| ips(fb) / t), 2),
            );
        }
        let reps = if quick { 1 } else { 3 };
        let candle_reps = if s.warmup { reps } else { 1 };
        let graph = s.spec.graph()?;
        eprintln!("breakdown of {}", s.title);
        let cand = breakdown(&graph, false, candle_reps)?;
        let fast = breakdown(&graph, true, reps)?;
        eprintln!("  parts, candle ops: {cand:?}\n  parts, fq ops: {fast:?}");
        let names = [
            ("conv forward", "conv_fwd"),
            ("conv backward-data", "conv_bwd_data"),
            ("conv backward-weight", "conv_bwd_weight"),
            ("batch norm forward+backward", "batch_norm"),
            ("quantizer forward+backward (U4)", "quantizer"),
            ("max pool forward+backward", "max_pool"),
        ];
        parts_md += &format!(
            "\n**{}**, ms per step (summed over the layers; best of {candle_reps} runs for candle \
             ops, {reps} for fq ops):\n\n\
             | part | candle ops | fq ops | PyTorch | fq ÷ PyTorch (time) |\n|---|---|---|---|---|\n",
            s.title
        );
        for (i, (name, key)) in names.iter().enumerate() {
            let torch = refs[s.key]["breakdown_ms"][key].as_f64();
            parts_md += &format!(
                "| {name} | {:.1} | {:.1} | {} | {} |\n",
                cand[i] * 1e3,
                fast[i] * 1e3,
                fmt(torch, 1),
                fmt(torch.map(|t| fast[i] * 1e3 / t), 2),
            );
        }
        let step_ms = |i: usize| t[i].0 * 1e3;
        let torch_step = match t.get(VARIANTS.len() + 1) {
            Some(&(b, _)) => Some(b * 1e3),
            None => refs[s.key]["step_img_s"]["u4"][0]
                .as_f64()
                .map(|ips| BATCH as f64 / ips * 1e3),
        };
        // Parts timed alone can add up to more than a step on a loaded machine: no figure then.
        let torch_rest = torch_step
            .map(|st| {
                st - names
                    .iter()
                    .filter_map(|(_, k)| refs[s.key]["breakdown_ms"][k].as_f64())
                    .sum::<f64>()
            })
            .filter(|r| *r > 0.0);
        // The same for ours: the fq step fuses the ReLUs into batch norm and the residual
        // adds, which the parts (timed as separate ops) do not, so they can exceed it.
        let rest = |step: f64, parts: &[f64; 6]| {
            Some(step - parts.iter().sum::<f64>() * 1e3).filter(|r| *r > 0.0)
        };
        let fast_rest = rest(step_ms(3), &fast);
        parts_md += &format!(
            "| everything else (U4 step − the parts) | {} | {} | {} | {} |\n",
            fmt(rest(step_ms(2), &cand), 1),
            fmt(fast_rest, 1),
            fmt(torch_rest, 1),
            fmt(fast_rest.zip(torch_rest).map(|(f, t)| f / t), 2),
        );
    }
    md +=
        "\nPer-part breakdown: each part timed alone on the model's layer shapes at batch 32 and \
           summed over the layers. Batch norm, quantizer and max pool include the `sum(y·r)` \
           used to start their backward pass (the same on every side); \"everything else\" is \
           the rest of a U4 step: ReLU, residual adds, global pooling, the linear layer, loss \
           and AdamW (PyTorch: its U4 step minus its parts); \"–\" where the parts add up to \
           more than the step (the fq step runs each ReLU inside the batch norm or residual add \
           before it, which the parts time as separate ops; a loaded machine does the same).\n";
    md += &parts_md;
    fq_eval::sections::write_keeping_sections(&out, &md, &[])?;
    eprintln!("wrote the training section of {}", out.display());
    Ok(())
}
