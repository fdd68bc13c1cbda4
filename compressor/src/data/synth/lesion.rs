//! The six diagnosis classes and their lesion appearance.
//!
//! A lesion is drawn into two sets of density maps (see [`LesionMaps`]): *coarse* cues (the colour
//! of the lesion area and its overall shape) and *fine* cues (small-scale texture and edge detail:
//! scale flecks, papule granularity and highlights, beaded ring, rolled border, telangiectasia,
//! atypical dots, cerebriform sulci, milia). The renderer scales the two sets separately per skin
//! type, which is the mechanism the dataset exists for (docs/SYNTHETIC.md).

use std::f32::consts::{PI, TAU};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::noise::{chance, normal, smoothstep, uniform, ValueNoise};

/// One diagnosis class: its real Fitzpatrick17k label strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthClass {
    /// `label` column (lower case, as in the real file).
    pub label: &'static str,
    /// `nine_partition_label` of that label in the real file.
    pub nine_partition: &'static str,
    /// `three_partition_label` of that label in the real file.
    pub three_partition: &'static str,
    /// Default relative frequency ([`super::SynthConfig::class_weights`]).
    pub default_weight: f64,
}

/// The classes, in sorted label order (so the index equals the loader's class index).
pub const CLASSES: [SynthClass; 6] = [
    SynthClass {
        label: "basal cell carcinoma",
        nine_partition: "malignant epidermal",
        three_partition: "malignant",
        default_weight: 0.18,
    },
    SynthClass {
        label: "granuloma annulare",
        nine_partition: "inflammatory",
        three_partition: "non-neoplastic",
        default_weight: 0.13,
    },
    SynthClass {
        label: "lichen planus",
        nine_partition: "inflammatory",
        three_partition: "non-neoplastic",
        default_weight: 0.19,
    },
    SynthClass {
        label: "melanoma",
        nine_partition: "malignant melanoma",
        three_partition: "malignant",
        default_weight: 0.15,
    },
    SynthClass {
        label: "psoriasis",
        nine_partition: "inflammatory",
        three_partition: "non-neoplastic",
        default_weight: 0.22,
    },
    SynthClass {
        label: "seborrheic keratosis",
        nine_partition: "benign epidermal",
        three_partition: "benign",
        default_weight: 0.13,
    },
];

/// Channel indices of a density map cell.
pub(crate) const MEL: usize = 0;
pub(crate) const HB: usize = 1;
pub(crate) const DERM: usize = 2;
pub(crate) const WHITE: usize = 3;

/// Lattice size of the fine textures: features of 1/22 of the image width (about 3 px at 64x64).
const FINE_CELLS: usize = 22;

/// Chromophore amounts per canvas pixel: `[melanin, haemoglobin, dermal melanin, whitening]`.
pub(crate) struct LesionMaps {
    pub n: usize,
    pub coarse: Vec<[f32; 4]>,
    pub fine: Vec<[f32; 4]>,
}

impl LesionMaps {
    pub(crate) fn new(n: usize) -> Self {
        LesionMaps {
            n,
            coarse: vec![[0.0; 4]; n * n],
            fine: vec![[0.0; 4]; n * n],
        }
    }
}

/// Draws a lesion of class `class` (index into [`CLASSES`]) on skin of `darkness` in [0, 1]
/// (type I = 0, type VI = 1).
pub(crate) fn draw(class: usize, darkness: f32, rng: &mut ChaCha8Rng, maps: &mut LesionMaps) {
    match class {
        0 => basal_cell_carcinoma(darkness, rng, maps),
        1 => granuloma_annulare(darkness, rng, maps),
        2 => lichen_planus(darkness, rng, maps),
        3 => melanoma(rng, maps),
        4 => psoriasis(darkness, rng, maps),
        _ => seborrheic_keratosis(rng, maps),
    }
}

#[inline]
fn put_max(cell: &mut [f32; 4], ch: usize, v: f32) {
    if v > cell[ch] {
        cell[ch] = v;
    }
}

/// Calls `f(index, x, y)` for every canvas pixel whose centre lies in the square of half-side
/// `ext` around `(cx, cy)` (image coordinates, unit square).
fn for_box(n: usize, cx: f32, cy: f32, ext: f32, mut f: impl FnMut(usize, f32, f32)) {
    let nf = n as f32;
    let lo = |c: f32| ((c - ext) * nf).floor().clamp(0.0, nf) as usize;
    let hi = |c: f32| ((c + ext) * nf).ceil().clamp(0.0, nf) as usize;
    for py in lo(cy)..hi(cy) {
        let y = (py as f32 + 0.5) / nf;
        for px in lo(cx)..hi(cx) {
            f(py * n + px, (px as f32 + 0.5) / nf, y);
        }
    }
}

/// Stamps a soft disc of radius `r` (image units, at least half a canvas pixel): `f(index, coverage)`.
pub(crate) fn stamp_disc(n: usize, cx: f32, cy: f32, r: f32, mut f: impl FnMut(usize, f32)) {
    let nf = n as f32;
    let r_px = (r * nf).max(0.5);
    for_box(n, cx, cy, (r_px + 1.0) / nf, |i, x, y| {
        let d_px = ((x - cx).hypot(y - cy)) * nf;
        let cov = (r_px + 0.5 - d_px).clamp(0.0, 1.0);
        if cov > 0.0 {
            f(i, cov);
        }
    });
}

/// Stamps a quadratic Bézier stroke through `p` of half-width `w` (image units): `f(index, coverage)`
/// (a pixel may be reported several times; callers take the maximum).
pub(crate) fn stamp_curve(n: usize, p: [(f32, f32); 3], w: f32, mut f: impl FnMut(usize, f32)) {
    let len = (p[1].0 - p[0].0).hypot(p[1].1 - p[0].1) + (p[2].0 - p[1].0).hypot(p[2].1 - p[1].1);
    let steps = ((len * n as f32 * 2.0).ceil() as usize).max(2);
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let a = (1.0 - t) * (1.0 - t);
        let b = 2.0 * (1.0 - t) * t;
        let c = t * t;
        let x = a * p[0].0 + b * p[1].0 + c * p[2].0;
        let y = a * p[0].1 + b * p[1].1 + c * p[2].1;
        stamp_disc(n, x, y, w, &mut f);
    }
}

/// Position, size, orientation and elongation of a lesion.
struct Frame {
    cx: f32,
    cy: f32,
    r: f32,
    cos: f32,
    sin: f32,
    inv_aspect: f32,
}

impl Frame {
    /// Radius in `[r_lo, r_hi)` of the image width, centre near the middle (sd `centre_sd`).
    fn random(rng: &mut ChaCha8Rng, r_lo: f32, r_hi: f32, aspect_lo: f32, centre_sd: f32) -> Self {
        let cx = (0.5 + centre_sd * normal(rng)).clamp(0.28, 0.72);
        let cy = (0.5 + centre_sd * normal(rng)).clamp(0.28, 0.72);
        let r = uniform(rng, r_lo, r_hi);
        Self::at(rng, cx, cy, r, aspect_lo)
    }

    fn at(rng: &mut ChaCha8Rng, cx: f32, cy: f32, r: f32, aspect_lo: f32) -> Self {
        let angle = uniform(rng, 0.0, TAU);
        let aspect = uniform(rng, aspect_lo, 1.0);
        Frame {
            cx,
            cy,
            r,
            cos: angle.cos(),
            sin: angle.sin(),
            inv_aspect: 1.0 / aspect,
        }
    }

    /// Lesion-frame coordinates (units of `r`, minor axis stretched to a circle).
    #[inline]
    fn local(&self, x: f32, y: f32) -> (f32, f32) {
        let dx = (x - self.cx) / self.r;
        let dy = (y - self.cy) / self.r;
        (
            dx * self.cos + dy * self.sin,
            (-dx * self.sin + dy * self.cos) * self.inv_aspect,
        )
    }

    /// Inverse of [`Frame::local`].
    fn to_image(&self, u: f32, v: f32) -> (f32, f32) {
        let v = v / self.inv_aspect;
        (
            self.cx + (u * self.cos - v * self.sin) * self.r,
            self.cy + (u * self.sin + v * self.cos) * self.r,
        )
    }
}

/// Border radius as a function of angle: 1 + harmonics + spatial noise.
struct Border {
    harmonics: Vec<(f32, f32, f32)>,
    noise: ValueNoise,
    noise_amp: f32,
}

impl Border {
    /// Harmonics 2..=`kmax`, each with amplitude U(0.5, 1) x `amp`; noise of `noise_amp` on a
    /// `cells` lattice.
    fn random(rng: &mut ChaCha8Rng, kmax: u32, amp: f32, noise_amp: f32, cells: usize) -> Self {
        let harmonics = (2..=kmax)
            .map(|k| {
                (
                    k as f32,
                    amp * uniform(rng, 0.5, 1.0),
                    uniform(rng, 0.0, TAU),
                )
            })
            .collect();
        Border {
            harmonics,
            noise: ValueNoise::new(rng, cells),
            noise_amp,
        }
    }

    #[inline]
    fn radius(&self, phi: f32, x: f32, y: f32) -> f32 {
        let mut r = 1.0 + self.noise_amp * (self.noise.at(x, y) - 0.5) * 2.0;
        for &(k, a, p) in &self.harmonics {
            r += a * (k * phi + p).cos();
        }
        r.max(0.2)
    }

    fn max_radius(&self) -> f32 {
        1.0 + self.noise_amp + self.harmonics.iter().map(|h| h.1).sum::<f32>()
    }
}

/// Well-demarcated erythematous plaques (1-3) with silvery scale: coarse = red area with a light
/// sheen (post-inflammatory hyperpigmentation on dark skin); fine = scale flecks and red cracks.
fn psoriasis(d: f32, rng: &mut ChaCha8Rng, maps: &mut LesionMaps) {
    let n = maps.n;
    let fleck = ValueNoise::new(rng, FINE_CELLS);
    let fleck2 = ValueNoise::new(rng, 2 * FINE_CELLS);
    let crack = ValueNoise::new(rng, 12);
    let plaques = 1 + usize::from(chance(rng, 0.45)) + usize::from(chance(rng, 0.2));
    let LesionMaps { coarse, fine, .. } = maps;
    for p in 0..plaques {
        let frame = if p == 0 {
            Frame::random(rng, 0.2, 0.32, 0.65, 0.07)
        } else {
            let (cx, cy) = (uniform(rng, 0.15, 0.85), uniform(rng, 0.15, 0.85));
            let r = uniform(rng, 0.06, 0.12);
            Frame::at(rng, cx, cy, r, 0.65)
        };
        let border = Border::random(rng, 5, 0.06, 0.12, 6);
        let rmax = border.max_radius() * 1.1;
        for_box(n, frame.cx, frame.cy, frame.r * rmax, |i, x, y| {
            let (u, v) = frame.local(x, y);
            let rho = u.hypot(v);
            if rho > rmax {
                return;
            }
            let t = rho / border.radius(v.atan2(u), x, y);
            let m = smoothstep(1.06, 0.94, t);
            if m <= 0.0 {
                return;
            }
            let c = &mut coarse[i];
            put_max(c, HB, 0.85 * m);
            put_max(c, MEL, 0.35 * d * m);
            put_max(c, WHITE, 0.1 * m);
            let fl = smoothstep(0.5, 0.7, 0.6 * fleck.at(x, y) + 0.4 * fleck2.at(x, y));
            let cr = smoothstep(0.06, 0.0, (crack.at(x, y) - 0.5).abs());
            let f = &mut fine[i];
            put_max(f, WHITE, 0.7 * fl * m);
            put_max(f, HB, 0.5 * cr * m * (1.0 - fl));
        });
    }
}

/// A cluster of many small flat-topped polygonal violaceous papules (hyperpigmented on dark skin):
/// coarse = violaceous haze of the area and half of the papule colour; fine = papule granularity
/// (the other half) and the shiny highlight on each papule.
fn lichen_planus(d: f32, rng: &mut ChaCha8Rng, maps: &mut LesionMaps) {
    let n = maps.n;
    let cluster = Frame::random(rng, 0.2, 0.34, 0.6, 0.07);
    let col = [0.3 + 0.6 * d, 0.7, 0.35, 0.0];
    let LesionMaps { coarse, fine, .. } = maps;
    for_box(n, cluster.cx, cluster.cy, cluster.r * 1.8, |i, x, y| {
        let (u, v) = cluster.local(x, y);
        let h = (-1.5 * (u * u + v * v)).exp();
        let c = &mut coarse[i];
        put_max(c, HB, 0.25 * h);
        put_max(c, DERM, 0.12 * h);
        put_max(c, MEL, (0.1 + 0.3 * d) * h);
    });
    let count = rng.random_range(14..=30);
    for _ in 0..count {
        let a = uniform(rng, 0.0, TAU);
        let rr = rng.random::<f32>().sqrt();
        let (px, py) = cluster.to_image(rr * a.cos(), rr * a.sin());
        let pr = uniform(rng, 0.016, 0.03);
        let rot = uniform(rng, 0.0, PI);
        let (cs, sn) = (rot.cos(), rot.sin());
        // Highlight towards the light (upper left, jittered).
        let (hx, hy) = (-0.35 + 0.1 * normal(rng), -0.35 + 0.1 * normal(rng));
        for_box(n, px, py, pr * 1.5, |i, x, y| {
            let dx = (x - px) / pr;
            let dy = (y - py) / pr;
            let du = dx * cs + dy * sn;
            let dv = -dx * sn + dy * cs;
            let dist = (du.abs().powi(3) + dv.abs().powi(3)).cbrt();
            let m = smoothstep(1.15, 0.85, dist);
            if m <= 0.0 {
                return;
            }
            let c = &mut coarse[i];
            let f = &mut fine[i];
            for ch in [MEL, HB, DERM] {
                put_max(c, ch, 0.5 * col[ch] * m);
                put_max(f, ch, 0.5 * col[ch] * m);
            }
            let hl = (-((dx - hx).powi(2) + (dy - hy).powi(2)) / 0.12).exp();
            put_max(f, WHITE, 0.45 * hl * m);
        });
    }
}

/// An annular ring of small coalescing papules with normal-looking centre, sometimes incomplete:
/// coarse = the ring's colour envelope; fine = the beading along the ring and bead highlights.
fn granuloma_annulare(d: f32, rng: &mut ChaCha8Rng, maps: &mut LesionMaps) {
    let n = maps.n;
    let frame = Frame::random(rng, 0.15, 0.28, 0.7, 0.07);
    let w = uniform(rng, 0.02, 0.034);
    let beads = rng.random_range(9..=16) as f32;
    let bead_phase = uniform(rng, 0.0, TAU);
    let gap = if chance(rng, 0.35) {
        Some((uniform(rng, -PI, PI), uniform(rng, 0.3, 0.7)))
    } else {
        None
    };
    let border = Border::random(rng, 3, 0.04, 0.08, 5);
    let col = [0.2 + 0.45 * d, 0.6, 0.05, 0.05];
    let ext = frame.r * border.max_radius() + 3.0 * w;
    let LesionMaps { coarse, fine, .. } = maps;
    for_box(n, frame.cx, frame.cy, ext, |i, x, y| {
        let (u, v) = frame.local(x, y);
        let rho = u.hypot(v);
        let phi = v.atan2(u);
        let rb = border.radius(phi, x, y);
        let dist = (rho - rb) * frame.r / w;
        let mut env = (-dist * dist).exp();
        if let Some((g, hw)) = gap {
            let mut da = (phi - g).abs();
            if da > PI {
                da = TAU - da;
            }
            env *= smoothstep(0.6 * hw, hw, da);
        }
        let bead = 0.5 + 0.5 * (beads * phi + bead_phase).cos();
        let inside = smoothstep(1.0, 0.9, rho / rb);
        let c = &mut coarse[i];
        let f = &mut fine[i];
        for ch in [MEL, HB, DERM, WHITE] {
            put_max(c, ch, 0.55 * col[ch] * env);
            put_max(f, ch, 0.45 * col[ch] * env * bead);
        }
        put_max(c, HB, 0.1 * inside);
        put_max(c, MEL, (0.05 + 0.1 * d) * inside);
        put_max(f, WHITE, 0.25 * env * bead * bead);
    });
}

/// A round pearly nodule (pigmented variant common on dark skin), sometimes centrally ulcerated:
/// coarse = pink translucent (or patchy brown) dome and crust; fine = rolled pearly border,
/// specular highlight and telangiectatic vessels.
fn basal_cell_carcinoma(d: f32, rng: &mut ChaCha8Rng, maps: &mut LesionMaps) {
    let n = maps.n;
    let frame = Frame::random(rng, 0.11, 0.19, 0.82, 0.06);
    let border = Border::random(rng, 3, 0.025, 0.05, 5);
    let pigmented = chance(rng, 0.1 + 0.6 * d);
    let ulcer = chance(rng, 0.35);
    let patch = ValueNoise::new(rng, 7);
    let ulcer_noise = ValueNoise::new(rng, 8);
    let la = uniform(rng, 0.0, TAU);
    let (hx, hy) = (0.35 * la.cos(), 0.35 * la.sin());
    let rmax = border.max_radius() * 1.2;
    let LesionMaps { coarse, fine, .. } = maps;
    for_box(n, frame.cx, frame.cy, frame.r * rmax, |i, x, y| {
        let (u, v) = frame.local(x, y);
        let rho = u.hypot(v);
        if rho > rmax {
            return;
        }
        let t = rho / border.radius(v.atan2(u), x, y);
        let m = smoothstep(1.08, 0.92, t);
        let c = &mut coarse[i];
        if pigmented {
            put_max(c, MEL, 0.85 * m * (0.55 + 0.45 * patch.at(x, y)));
            put_max(c, HB, 0.15 * m);
            put_max(c, DERM, 0.3 * m);
            put_max(c, WHITE, 0.06 * m);
        } else {
            put_max(c, MEL, 0.05 * m);
            put_max(c, HB, 0.45 * m);
            put_max(c, WHITE, 0.18 * m * (1.0 - 0.5 * t * t).max(0.0));
        }
        if ulcer {
            let uc = smoothstep(0.38, 0.28, t + 0.15 * (ulcer_noise.at(x, y) - 0.5));
            put_max(c, HB, 1.1 * uc);
            put_max(c, MEL, 0.8 * uc);
        }
        let f = &mut fine[i];
        let roll = (-((t - 0.86) / 0.09).powi(2)).exp();
        put_max(f, WHITE, 0.5 * roll);
        let hl = (-((u - hx).powi(2) + (v - hy).powi(2)) / 0.03).exp();
        put_max(f, WHITE, 0.45 * hl * m);
    });
    let vessels = rng.random_range(2..=5);
    for _ in 0..vessels {
        let mut pts = [(0.0f32, 0.0f32); 3];
        for p in &mut pts {
            let a = uniform(rng, 0.0, TAU);
            let rr = 0.75 * rng.random::<f32>().sqrt();
            *p = frame.to_image(rr * a.cos(), rr * a.sin());
        }
        let fine = &mut maps.fine;
        stamp_curve(n, pts, 0.0055, |i, cov| {
            put_max(&mut fine[i], HB, 1.3 * cov)
        });
    }
}

/// An asymmetric pigmented lesion with an irregular, partly blurred border and variegated colour
/// (brown, black, blue-grey, red, white regression): coarse = the variegated pigment;
/// fine = atypical dots and globules, denser towards the periphery.
fn melanoma(rng: &mut ChaCha8Rng, maps: &mut LesionMaps) {
    let n = maps.n;
    let frame = Frame::random(rng, 0.11, 0.22, 0.65, 0.07);
    let amp = uniform(rng, 0.06, 0.11);
    let border = Border::random(rng, 7, amp, 0.3, 8);
    let s = uniform(rng, 0.04, 0.15);
    let var = ValueNoise::new(rng, 5);
    let blue = ValueNoise::new(rng, 4);
    let red = ValueNoise::new(rng, 4);
    let reg = ValueNoise::new(rng, 6);
    let dots = ValueNoise::new(rng, FINE_CELLS);
    let beta = uniform(rng, 0.0, TAU);
    let (bc, bs) = (beta.cos(), beta.sin());
    let rmax = border.max_radius() * (1.0 + s);
    let LesionMaps { coarse, fine, .. } = maps;
    for_box(n, frame.cx, frame.cy, frame.r * rmax, |i, x, y| {
        let (u, v) = frame.local(x, y);
        let rho = u.hypot(v);
        if rho > rmax {
            return;
        }
        let t = rho / border.radius(v.atan2(u), x, y);
        let m = smoothstep(1.0 + s, 1.0 - s, t);
        if m <= 0.0 {
            return;
        }
        let g = 0.75 + 0.25 * (u * bc + v * bs).clamp(-1.0, 1.0);
        let c = &mut coarse[i];
        put_max(c, MEL, m * (0.8 + 0.7 * var.at(x, y)) * g);
        put_max(c, DERM, m * 0.7 * smoothstep(0.55, 0.75, blue.at(x, y)));
        put_max(c, HB, m * 0.35 * smoothstep(0.6, 0.8, red.at(x, y)));
        put_max(c, WHITE, m * 0.35 * smoothstep(0.72, 0.85, reg.at(x, y)));
        let dt = m * smoothstep(0.56, 0.76, dots.at(x, y)) * (0.5 + 0.5 * t.min(1.0));
        let f = &mut fine[i];
        put_max(f, MEL, 0.9 * dt);
        put_max(f, DERM, 0.3 * dt);
    });
}

/// A sharply demarcated, oval, "stuck-on" uniformly tan-brown lesion: coarse = the uniform brown;
/// fine = cerebriform sulci, the raised rim, milia-like cysts (white) and comedo-like openings
/// (dark dots).
fn seborrheic_keratosis(rng: &mut ChaCha8Rng, maps: &mut LesionMaps) {
    let n = maps.n;
    let frame = Frame::random(rng, 0.1, 0.19, 0.6, 0.07);
    let border = Border::random(rng, 3, 0.03, 0.06, 5);
    let ridge = ValueNoise::new(rng, 14);
    let low = ValueNoise::new(rng, 4);
    let rmax = border.max_radius() * 1.1;
    let LesionMaps { coarse, fine, .. } = maps;
    for_box(n, frame.cx, frame.cy, frame.r * rmax, |i, x, y| {
        let (u, v) = frame.local(x, y);
        let rho = u.hypot(v);
        if rho > rmax {
            return;
        }
        let t = rho / border.radius(v.atan2(u), x, y);
        let m = smoothstep(1.04, 0.96, t);
        if m <= 0.0 {
            return;
        }
        let c = &mut coarse[i];
        put_max(c, MEL, 0.9 * m * (0.8 + 0.4 * low.at(x, y)));
        put_max(c, HB, 0.05 * m);
        let sulci = smoothstep(0.07, 0.0, (ridge.at(x, y) - 0.5).abs());
        let rim = (-((t - 0.95) / 0.05).powi(2)).exp();
        let f = &mut fine[i];
        put_max(f, MEL, 0.6 * m * sulci);
        put_max(f, MEL, 0.35 * rim * m);
    });
    let milia = rng.random_range(2..=7);
    let comedos = rng.random_range(2..=6);
    for k in 0..milia + comedos {
        let a = uniform(rng, 0.0, TAU);
        let rr = 0.75 * rng.random::<f32>().sqrt();
        let (px, py) = frame.to_image(rr * a.cos(), rr * a.sin());
        let fine = &mut maps.fine;
        if k < milia {
            stamp_disc(n, px, py, 0.011, |i, cov| {
                put_max(&mut fine[i], WHITE, 0.6 * cov)
            });
        } else {
            stamp_disc(n, px, py, 0.012, |i, cov| {
                put_max(&mut fine[i], MEL, 1.1 * cov)
            });
        }
    }
}
