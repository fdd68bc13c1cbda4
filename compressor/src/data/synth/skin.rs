//! Skin: Fitzpatrick type sampling (rater 1 and the second "centaur" rater) and the skin optics.
//!
//! Colours are handled as optical densities (absorbance, `-ln` of linear reflectance) so that
//! skin pigment, lesion chromophores and hair add up, and the picture is `exp(-A)` times the
//! illumination. A density change gives the same *relative* change on every skin, hence a
//! smaller absolute change in the 8-bit image the darker the skin is.

use rand_chacha::ChaCha8Rng;

use super::noise::{chance, normal, uniform, weighted_index, ValueNoise};

/// Typical sRGB colour of clinically photographed skin per Fitzpatrick type I..VI.
pub(crate) const SKIN_SRGB: [[f32; 3]; 6] = [
    [236.0, 204.0, 186.0],
    [223.0, 181.0, 154.0],
    [198.0, 150.0, 116.0],
    [164.0, 114.0, 82.0],
    [120.0, 80.0, 56.0],
    [80.0, 54.0, 40.0],
];

/// Density spectra (R, G, B) of the chromophores, unit amounts.
/// Epidermal melanin: absorbs more towards blue.
pub(crate) const MU_MEL: [f32; 3] = [0.6, 0.85, 1.0];
/// Haemoglobin: strong in green (540-580 nm) and blue (Soret band), weak in red.
pub(crate) const MU_HB: [f32; 3] = [0.08, 1.0, 0.7];
/// Dermal melanin seen through the dermis (Tyndall effect): blue-grey, absorbs red most.
pub(crate) const MU_DERM: [f32; 3] = [0.9, 0.75, 0.5];
/// Whitening (scale, pearly sheen, milia): a negative, slightly bluish density.
pub(crate) const MU_WHITE: [f32; 3] = [0.7, 0.75, 0.85];
/// Hair shaft (dark brown to black).
pub(crate) const MU_HAIR: [f32; 3] = [1.0, 1.1, 1.2];

/// sRGB (0..255) to linear.
pub(crate) fn srgb_to_linear(v: f32) -> f32 {
    let c = v / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear to sRGB (0..255, not rounded or clamped above).
pub(crate) fn linear_to_srgb(l: f32) -> f32 {
    let l = l.max(0.0);
    let c = if l <= 0.003_130_8 {
        l * 12.92
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    };
    c * 255.0
}

/// The two raters' labels of one image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SkinLabels {
    /// `fitzpatrick_scale`: -1 (unknown) or 1..=6.
    pub scale: i8,
    /// `fitzpatrick_centaur`: -1 or 1..=6.
    pub centaur: i8,
    /// The type actually rendered, 1..=6 (for unknown rows drawn from the known-type weights).
    pub rendered: u8,
}

/// Draws the labels. `weights[0]` is unknown, `weights[1..]` types I..VI.
pub(crate) fn sample_labels(rng: &mut ChaCha8Rng, weights: &[f64; 7]) -> SkinLabels {
    let k = weighted_index(rng, weights);
    let rendered = if k == 0 {
        1 + weighted_index(rng, &weights[1..]) as u8
    } else {
        k as u8
    };
    let scale = if k == 0 { -1 } else { k as i8 };
    let centaur = if scale < 0 {
        // Real file: about half of the unknown rows are unknown for the second rater too.
        if chance(rng, 0.5) {
            -1
        } else {
            rendered as i8
        }
    } else {
        let u = uniform(rng, 0.0, 1.0);
        if u < 0.05 {
            -1
        } else if u < 0.62 {
            scale
        } else {
            // One step off; the second rater tends to call skin lighter (as in the real file).
            let step: i8 = if u < 0.85 { -1 } else { 1 };
            let c = scale + step;
            if (1..=6).contains(&c) {
                c
            } else {
                scale - step
            }
        }
    };
    SkinLabels {
        scale,
        centaur,
        rendered,
    }
}

/// Per-image skin: base density plus low-amplitude texture.
pub(crate) struct Skin {
    base: [f32; 3],
    mottle: ValueNoise,
    mottle_amp: f32,
    blotch: ValueNoise,
    blotch_amp: f32,
    pores: ValueNoise,
    pore_amp: f32,
    line_dir: (f32, f32),
    line_freq: f32,
    line_amp: f32,
}

/// Skin-line phase tables of one canvas: `sin`/`cos` of the per-column and per-row phase, so
/// that `sin(col + row)` costs two multiplications per pixel.
pub(crate) struct LineTable {
    col: Vec<(f32, f32)>,
    row: Vec<(f32, f32)>,
}

impl Skin {
    pub(crate) fn new(rng: &mut ChaCha8Rng, skin_type: u8) -> Self {
        let rgb = SKIN_SRGB[usize::from(skin_type - 1)];
        let mut base = rgb.map(|v| -srgb_to_linear(v).ln());
        // Within-type variation: melanin +-0.12 density, redness +-0.05.
        let dm = 0.12 * normal(rng);
        let dh = 0.05 * normal(rng);
        for (c, b) in base.iter_mut().enumerate() {
            *b += dm * MU_MEL[c] + dh * MU_HB[c];
        }
        let angle = uniform(rng, 0.0, std::f32::consts::PI);
        Skin {
            base,
            mottle: ValueNoise::new(rng, 5),
            mottle_amp: uniform(rng, 0.04, 0.12),
            blotch: ValueNoise::new(rng, 3),
            blotch_amp: uniform(rng, 0.0, 0.12),
            pores: ValueNoise::new(rng, 24),
            pore_amp: uniform(rng, 0.02, 0.06),
            line_dir: (angle.cos(), angle.sin()),
            line_freq: uniform(rng, 40.0, 70.0),
            line_amp: uniform(rng, 0.0, 0.025),
        }
    }

    /// Phase tables for an `n x n` canvas (pixel centres at `(i + 0.5) / n`).
    pub(crate) fn line_table(&self, n: usize) -> LineTable {
        let tab = |d: f32| {
            (0..n)
                .map(|i| {
                    let p = self.line_freq * d * (i as f32 + 0.5) / n as f32;
                    (p.sin(), p.cos())
                })
                .collect()
        };
        LineTable {
            col: tab(self.line_dir.0),
            row: tab(self.line_dir.1),
        }
    }

    /// Density at canvas pixel `(px, py)`, image coordinates `x, y`.
    #[inline]
    pub(crate) fn density(
        &self,
        lines: &LineTable,
        px: usize,
        py: usize,
        x: f32,
        y: f32,
    ) -> [f32; 3] {
        let m = self.mottle_amp * (self.mottle.at(x, y) - 0.5);
        let h = self.blotch_amp * (self.blotch.at(x, y) - 0.5);
        let (sc, cc) = lines.col[px];
        let (sr, cr) = lines.row[py];
        let p = self.pore_amp * (self.pores.at(x, y) - 0.5) + self.line_amp * (sc * cr + cc * sr);
        [
            self.base[0] + m * MU_MEL[0] + h * MU_HB[0] + p,
            self.base[1] + m * MU_MEL[1] + h * MU_HB[1] + p,
            self.base[2] + m * MU_MEL[2] + h * MU_HB[2] + p,
        ]
    }
}
