//! What the benchmark binaries share: round-robin timing of the variants of one table.

use std::time::Instant;

/// Best and median seconds of each closure, run in turn round after round (after one warm-up
/// round) for at least `min_rounds` rounds and about `budget` seconds, at most `max_rounds`.
/// The best is the figure compared: on a shared VM whose CPU time fluctuates it is the one that
/// repeats; running the variants in turn makes drift hit them alike.
pub fn time_rounds(
    fs: &mut [Box<dyn FnMut() + '_>],
    min_rounds: usize,
    max_rounds: usize,
    budget: f64,
) -> Vec<(f64, f64)> {
    fs.iter_mut().for_each(|f| f());
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); fs.len()];
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < min_rounds || (start.elapsed().as_secs_f64() < budget && rounds < max_rounds) {
        for (f, ti) in fs.iter_mut().zip(&mut t) {
            let s = Instant::now();
            f();
            ti.push(s.elapsed().as_secs_f64());
        }
        rounds += 1;
    }
    t.into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2])
        })
        .collect()
}
