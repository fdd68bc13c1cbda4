//! TEMPORARY: time FloatConv on one layer shape. args: c h w kernel stride pad m
use std::time::Instant;
fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (c, h, w, k, s, p, m) = (a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    let threads = std::env::var("T")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let wts: Vec<f32> = (0..m * c * k * k)
        .map(|i| ((i * 11) % 17) as f32 - 8.0)
        .collect();
    let conv = fq_runtime::exec::FloatConv::new((c, h, w), (k, s, p), &wts, m).expect("kernel");
    let mut x: Vec<f32> = (0..conv.input_len())
        .map(|i| ((i * 37) % 23) as f32 * 0.1 - 1.1)
        .collect();
    let mut outs: Vec<Vec<f32>> = (0..4).map(|_| vec![0f32; conv.output_len()]).collect();
    let nb: usize = std::env::var("NB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut times = Vec::new();
    let jmb: usize = std::env::var("JMB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let mut junk = vec![0f32; jmb << 18];
    for i in 0..300 {
        if std::env::var("TOUCH").is_ok() {
            use rayon::prelude::*;
            let half = x.len() / 2 + 1;
            x.par_chunks_mut(half)
                .for_each(|c| c.iter_mut().for_each(|v| *v = std::hint::black_box(*v)));
        }
        if std::env::var("EVICT").is_ok() {
            use rayon::prelude::*;
            junk.par_chunks_mut(1 << 18).for_each(|c| {
                c.iter_mut()
                    .for_each(|v| *v = std::hint::black_box(*v) + 1.0)
            });
        }
        if std::env::var("SPIN").is_ok() {
            use std::sync::atomic::{AtomicBool, Ordering};
            let done = AtomicBool::new(false);
            let out = &mut outs[i % nb];
            let (x, conv, times) = (&x, &conv, &mut times);
            rayon::scope(|scope| {
                let done = &done;
                scope.spawn(move |_| {
                    while !done.load(Ordering::Acquire) {
                        if rayon::yield_now() != Some(rayon::Yield::Executed) {
                            std::hint::spin_loop();
                        }
                    }
                });
                std::thread::sleep(std::time::Duration::from_micros(200));
                let t = Instant::now();
                conv.run(x, out);
                times.push(t.elapsed().as_secs_f64() * 1e3);
                done.store(true, Ordering::Release);
            });
            continue;
        }
        if std::env::var("WARMX").is_ok() {
            use rayon::prelude::*;
            let s: f32 = x.par_iter().sum();
            std::hint::black_box(s);
        }
        let t0 = Instant::now();
        if std::env::var("WARMO").is_ok() {
            use rayon::prelude::*;
            outs[i % nb]
                .par_chunks_mut(1 << 16)
                .for_each(|v| v.fill(0.0));
        }
        let t = if std::env::var("INCL").is_ok() {
            t0
        } else {
            Instant::now()
        };
        conv.run(&x, &mut outs[i % nb]);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let ho = (h + 2 * p - k) / s + 1;
    let wo = (w + 2 * p - k) / s + 1;
    let flops = 2.0 * (m * c * k * k * ho * wo) as f64;
    println!(
        "best {:.3} ms median {:.3} ms  {:.0} GFLOP/s best",
        times[0],
        times[150],
        flops / times[0] / 1e6
    );
}
