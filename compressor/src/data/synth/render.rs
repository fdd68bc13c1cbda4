//! Composition of one image: skin + lesion + hair, illumination, supersampling, defocus, noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::SynthConfig;
use super::lesion::{self, LesionMaps, DERM, HB, MEL, WHITE};
use super::noise::{chance, normal, normal_pair, uniform, weighted_index};
use super::skin::{self, SkinLabels, MU_DERM, MU_HAIR, MU_HB, MU_MEL, MU_WHITE};

/// One rendered sample: its labels and its RGB8 pixels (row-major, `image_size`^2 x 3).
pub(crate) struct Rendered {
    pub labels: SkinLabels,
    pub class: usize,
    pub qc: &'static str,
    pub rgb: Vec<u8>,
}

/// The per-image random stream: ChaCha8 seeded with the run seed, stream = image index.
pub(crate) fn image_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// `qc` column: mostly empty, a few curator notes with roughly the real file's frequencies.
fn sample_qc(rng: &mut ChaCha8Rng) -> &'static str {
    let u = rng.random::<f32>();
    if u < 0.021 {
        "1 Diagnostic"
    } else if u < 0.027 {
        "5 Potentially"
    } else if u < 0.029 {
        "2 Characteristic"
    } else {
        ""
    }
}

/// Renders image `index` of the dataset described by `cfg` (a pure function of both).
pub(crate) fn render(cfg: &SynthConfig, index: usize) -> Rendered {
    let mut rng = image_rng(cfg.seed, index);
    let rng = &mut rng;
    let labels = skin::sample_labels(rng, &cfg.type_weights);
    let class = weighted_index(rng, &cfg.class_weights);
    let qc = sample_qc(rng);

    let t = usize::from(labels.rendered - 1);
    let darkness = t as f32 / 5.0;
    let size = cfg.image_size as usize;
    let ss = cfg.supersample as usize;
    let n = size * ss;
    let nf = n as f32;

    let skin = skin::Skin::new(rng, labels.rendered);
    let severity = uniform(rng, 0.45, 1.0);
    let mut maps = LesionMaps::new(n);
    lesion::draw(class, darkness, rng, &mut maps);
    let hair = draw_hair(cfg, rng, n);

    // Illumination: exposure, linear gradient, vignetting, white balance.
    let exposure = (0.12 * normal(rng)).exp();
    let ga = uniform(rng, 0.0, std::f32::consts::TAU);
    let gs = uniform(rng, 0.0, 0.25);
    let (gx, gy) = (gs * ga.cos(), gs * ga.sin());
    let vignette = uniform(rng, 0.0, 0.3);
    let wb = [0; 3].map(|_| (0.04 * normal(rng)).exp() * exposure);
    let blur_sigma = uniform(rng, 0.0, cfg.max_blur_sigma);
    let noise_sigma = cfg.noise_sigma * uniform(rng, 0.6, 1.4);

    let cc = cfg.coarse_contrast[t] * severity;
    let fc = cfg.fine_contrast[t] * severity;
    let ery = cfg.erythema_visibility[t];

    let lines = skin.line_table(n);
    let mut lin = vec![[0.0f32; 3]; n * n];
    for py in 0..n {
        let y = (py as f32 + 0.5) / nf;
        for px in 0..n {
            let x = (px as f32 + 0.5) / nf;
            let i = py * n + px;
            let c = &maps.coarse[i];
            let f = &maps.fine[i];
            let mel = cc * c[MEL] + fc * f[MEL];
            let hb = ery * (cc * c[HB] + fc * f[HB]);
            let derm = cc * c[DERM] + fc * f[DERM];
            let white = cc * c[WHITE] + fc * f[WHITE];
            let a = skin.density(&lines, px, py, x, y);
            let (dx, dy) = (x - 0.5, y - 0.5);
            let light =
                (1.0 + 2.0 * (gx * dx + gy * dy)) * (1.0 - 2.0 * vignette * (dx * dx + dy * dy));
            for ch in 0..3 {
                let dens = a[ch] + mel * MU_MEL[ch] + hb * MU_HB[ch] + derm * MU_DERM[ch]
                    - white * MU_WHITE[ch]
                    + hair[i] * MU_HAIR[ch];
                lin[i][ch] = (-dens).exp() * light * wb[ch];
            }
        }
    }

    let mut out = downsample(&lin, n, ss);
    if blur_sigma > 0.05 {
        out = gaussian_blur(&out, size, blur_sigma);
    }
    let mut rgb: Vec<f32> = Vec::with_capacity(size * size * 3);
    for px in &out {
        for &l in px {
            rgb.push(skin::linear_to_srgb(l));
        }
    }
    let mut rgb_u8 = Vec::with_capacity(rgb.len());
    for pair in rgb.chunks(2) {
        let (z0, z1) = normal_pair(rng);
        for (v, z) in pair.iter().zip([z0, z1]) {
            rgb_u8.push((v + noise_sigma * z).round_ties_even().clamp(0.0, 255.0) as u8);
        }
    }
    Rendered {
        labels,
        class,
        qc,
        rgb: rgb_u8,
    }
}

/// Hair strands as density amounts per canvas pixel.
fn draw_hair(cfg: &SynthConfig, rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut hair = vec![0.0f32; n * n];
    if !chance(rng, cfg.hair_probability) {
        return hair;
    }
    let strands = rng.random_range(1..=4);
    for _ in 0..strands {
        let p0 = (uniform(rng, -0.1, 1.1), uniform(rng, -0.1, 1.1));
        let a = uniform(rng, 0.0, std::f32::consts::TAU);
        let len = uniform(rng, 0.3, 0.9);
        let p2 = (p0.0 + len * a.cos(), p0.1 + len * a.sin());
        let bend = 0.25 * len * normal(rng);
        let p1 = (
            0.5 * (p0.0 + p2.0) - bend * a.sin(),
            0.5 * (p0.1 + p2.1) + bend * a.cos(),
        );
        let width = uniform(rng, 0.003, 0.007);
        let dark = uniform(rng, 1.0, 2.8);
        lesion::stamp_curve(n, [p0, p1, p2], width, |i, cov| {
            hair[i] = hair[i].max(dark * cov);
        });
    }
    hair
}

/// Box filter `ss x ss` from the `n x n` canvas to `n / ss`.
fn downsample(lin: &[[f32; 3]], n: usize, ss: usize) -> Vec<[f32; 3]> {
    if ss == 1 {
        return lin.to_vec();
    }
    let m = n / ss;
    let norm = 1.0 / (ss * ss) as f32;
    let mut out = vec![[0.0f32; 3]; m * m];
    for (oy, row) in out.chunks_mut(m).enumerate() {
        for (ox, o) in row.iter_mut().enumerate() {
            let mut acc = [0.0f32; 3];
            for sy in 0..ss {
                let base = (oy * ss + sy) * n + ox * ss;
                for p in &lin[base..base + ss] {
                    for ch in 0..3 {
                        acc[ch] += p[ch];
                    }
                }
            }
            *o = acc.map(|v| v * norm);
        }
    }
    out
}

/// Separable Gaussian blur (radius 2 taps, edge pixels repeated).
fn gaussian_blur(img: &[[f32; 3]], size: usize, sigma: f32) -> Vec<[f32; 3]> {
    let k: Vec<f32> = (-2i32..=2)
        .map(|d| (-((d * d) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let pass = |src: &[[f32; 3]], horizontal: bool| -> Vec<[f32; 3]> {
        let mut dst = vec![[0.0f32; 3]; size * size];
        for y in 0..size {
            for x in 0..size {
                let mut acc = [0.0f32; 3];
                for (j, w) in k.iter().enumerate() {
                    let o = j as isize - 2;
                    let (sx, sy) = if horizontal {
                        ((x as isize + o).clamp(0, size as isize - 1) as usize, y)
                    } else {
                        (x, (y as isize + o).clamp(0, size as isize - 1) as usize)
                    };
                    let p = src[sy * size + sx];
                    for ch in 0..3 {
                        acc[ch] += w * p[ch];
                    }
                }
                dst[y * size + x] = acc;
            }
        }
        dst
    };
    let h = pass(img, true);
    pass(&h, false)
}
