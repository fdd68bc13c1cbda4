//! Generator configuration. Every knob has a documented default; `docs/SYNTHETIC.md` explains why.

use serde::{Deserialize, Serialize};

use super::lesion::CLASSES;

/// Number of diagnosis classes the generator draws (see [`super::CLASSES`]).
pub const NUM_CLASSES: usize = 6;

/// Configuration of `fq-compress synth`. The output is a pure function of this value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Run seed; image `i` uses the ChaCha8 stream `i` of this seed. Default 0.
    pub seed: u64,
    /// Number of images (CSV rows). Default 3000.
    pub num_images: usize,
    /// Side of the square PNGs in pixels. Default 64.
    pub image_size: u32,
    /// Supersampling factor per axis (anti-aliasing of edges, hairs, papules). Default 2.
    pub supersample: u32,
    /// Relative frequency of the `fitzpatrick_scale` values; index 0 is unknown (`-1`), 1..6 the
    /// types. Default: the counts of the real Fitzpatrick17k CSV
    /// (565, 2947, 4808, 3308, 2781, 1533, 635).
    pub type_weights: [f64; 7],
    /// Relative frequency of the classes in [`super::CLASSES`] order. Default: the real order of
    /// frequency, compressed to a max/min ratio of about 1.7 (0.18, 0.13, 0.19, 0.15, 0.22, 0.13).
    pub class_weights: [f64; NUM_CLASSES],
    /// Multiplier on the coarse lesion cues (area colour, overall shape contrast) per skin type
    /// I..VI. Default (1.0, 0.95, 0.85, 0.65, 0.5, 0.4).
    pub coarse_contrast: [f32; 6],
    /// Multiplier on the fine lesion cues (small-scale texture and edge detail) per type I..VI.
    /// Default (1.0, 1.0, 0.95, 0.85, 0.8, 0.75).
    pub fine_contrast: [f32; 6],
    /// Visibility of haemoglobin (erythema, telangiectasia) through epidermal melanin per type
    /// I..VI. Default (1.0, 0.9, 0.75, 0.55, 0.4, 0.3).
    pub erythema_visibility: [f32; 6],
    /// Mean sensor noise, standard deviation in 8-bit sRGB levels (per image x U(0.6, 1.4)). Default 3.0.
    pub noise_sigma: f32,
    /// Probability that an image has hair strands (1..=4 of them). Default 0.4.
    pub hair_probability: f32,
    /// Largest Gaussian defocus blur, sigma in output pixels (per image U(0, max)). Default 0.7.
    pub max_blur_sigma: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            num_images: 3000,
            image_size: 64,
            supersample: 2,
            type_weights: [565.0, 2947.0, 4808.0, 3308.0, 2781.0, 1533.0, 635.0],
            class_weights: CLASSES.map(|c| c.default_weight),
            coarse_contrast: [1.0, 0.95, 0.85, 0.65, 0.5, 0.4],
            fine_contrast: [1.0, 1.0, 0.95, 0.85, 0.8, 0.75],
            erythema_visibility: [1.0, 0.9, 0.75, 0.55, 0.4, 0.3],
            noise_sigma: 3.0,
            hair_probability: 0.4,
            max_blur_sigma: 0.7,
        }
    }
}

impl SynthConfig {
    /// Checks the ranges; the error names the offending field.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.num_images > 0, "synth: num_images must be > 0");
        anyhow::ensure!(
            (8..=1024).contains(&self.image_size),
            "synth: image_size must be in 8..=1024, got {}",
            self.image_size
        );
        anyhow::ensure!(
            (1..=4).contains(&self.supersample),
            "synth: supersample must be in 1..=4, got {}",
            self.supersample
        );
        anyhow::ensure!(
            self.image_size * self.supersample <= 2048,
            "synth: image_size x supersample must be <= 2048 (memory per image), got {}",
            self.image_size * self.supersample
        );
        check_weights("type_weights", &self.type_weights)?;
        anyhow::ensure!(
            self.type_weights[1..].iter().any(|w| *w > 0.0),
            "synth: type_weights must give some weight to a known type (1..6)"
        );
        check_weights("class_weights", &self.class_weights)?;
        for (name, v) in [
            ("coarse_contrast", &self.coarse_contrast),
            ("fine_contrast", &self.fine_contrast),
            ("erythema_visibility", &self.erythema_visibility),
        ] {
            anyhow::ensure!(
                v.iter().all(|x| x.is_finite() && (0.0..=4.0).contains(x)),
                "synth: {name} values must be in [0, 4]"
            );
        }
        anyhow::ensure!(
            self.noise_sigma.is_finite() && (0.0..=64.0).contains(&self.noise_sigma),
            "synth: noise_sigma must be in [0, 64]"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.hair_probability),
            "synth: hair_probability must be in [0, 1]"
        );
        anyhow::ensure!(
            self.max_blur_sigma.is_finite() && (0.0..=3.0).contains(&self.max_blur_sigma),
            "synth: max_blur_sigma must be in [0, 3]"
        );
        Ok(())
    }
}

fn check_weights(name: &str, w: &[f64]) -> anyhow::Result<()> {
    anyhow::ensure!(
        w.iter().all(|x| x.is_finite() && *x >= 0.0) && w.iter().sum::<f64>() > 0.0,
        "synth: {name} must be finite, non-negative and not all zero"
    );
    Ok(())
}
