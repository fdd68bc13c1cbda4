//! Small deterministic random helpers: uniform/normal draws and a value-noise lattice.
//!
//! Everything takes the per-image `ChaCha8Rng`, so an image is a pure function of `(seed, index)`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Uniform draw in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Standard normal draw (Box–Muller, one value per call).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1 = rng.random::<f32>().max(1e-7);
    let u2 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Two independent standard normal draws (Box–Muller).
pub(crate) fn normal_pair(rng: &mut ChaCha8Rng) -> (f32, f32) {
    let u1 = rng.random::<f32>().max(1e-7);
    let u2 = rng.random::<f32>();
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// `true` with probability `p`.
pub(crate) fn chance(rng: &mut ChaCha8Rng, p: f32) -> bool {
    rng.random::<f32>() < p
}

/// Index drawn with probability proportional to `weights` (all finite, non-negative, sum > 0).
pub(crate) fn weighted_index(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    // Rounding at the very top: the last index with a positive weight.
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

/// Hermite smoothstep from `e0` to `e1` (either order): 0 at `e0`, 1 at `e1`.
#[inline]
pub(crate) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Value noise, values in `[0, 1]`, smoothstep-interpolated on a randomly rotated lattice (so no
/// image shows axis-aligned blocks). Feature size is `1 / cells` of the image width, so the same
/// picture content is produced at every output resolution.
pub(crate) struct ValueNoise {
    cells: usize,
    stride: usize,
    cos: f32,
    sin: f32,
    lattice: Vec<f32>,
}

impl ValueNoise {
    pub(crate) fn new(rng: &mut ChaCha8Rng, cells: usize) -> Self {
        // The rotated unit square is shrunk by 1/sqrt(2) to fit the lattice square, hence
        // sqrt(2) more cells for the same feature size.
        let cells = ((cells.max(1) as f32) * std::f32::consts::SQRT_2).round() as usize;
        let stride = cells + 2;
        let angle = uniform(rng, 0.0, std::f32::consts::TAU);
        let k = std::f32::consts::FRAC_1_SQRT_2;
        let lattice = (0..stride * stride).map(|_| rng.random::<f32>()).collect();
        ValueNoise {
            cells,
            stride,
            cos: angle.cos() * k,
            sin: angle.sin() * k,
            lattice,
        }
    }

    /// Noise value at image coordinates `x, y` (unit square; outside values are clamped).
    #[inline]
    pub(crate) fn at(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - 0.5, y - 0.5);
        let x = 0.5 + dx * self.cos - dy * self.sin;
        let y = 0.5 + dx * self.sin + dy * self.cos;
        let c = self.cells as f32;
        let gx = (x * c).clamp(0.0, c);
        let gy = (y * c).clamp(0.0, c);
        let ix = (gx as usize).min(self.cells);
        let iy = (gy as usize).min(self.cells);
        let fx = gx - ix as f32;
        let fy = gy - iy as f32;
        let sx = fx * fx * (3.0 - 2.0 * fx);
        let sy = fy * fy * (3.0 - 2.0 * fy);
        let i = iy * self.stride + ix;
        let a = self.lattice[i];
        let b = self.lattice[i + 1];
        let c0 = self.lattice[i + self.stride];
        let d = self.lattice[i + self.stride + 1];
        let top = a + (b - a) * sx;
        let bottom = c0 + (d - c0) * sx;
        top + (bottom - top) * sy
    }
}
