//! Training-time augmentation of spec §6.2, steps 2–5, on the resized u8 images: random horizontal flip,
//! random vertical flip, random rotation (uniform angle, nearest neighbour, fill 0, same canvas), then
//! AutoAugment with torchvision's ImageNet policy (`crate::data::autoaugment`).
//!
//! The rotation reproduces what torchvision's `RandomRotation` does on a PIL image (`Image.rotate` about
//! `(w/2, h/2)`, positive angles counter-clockwise), including PIL's 16.16 fixed-point nearest-neighbour
//! sampling at pixel centres, so that the same angle gives the same pixels as the reference pipeline.
//! Pure Rust (no candle), so it runs in the data-loading threads.

pub use crate::data::geometry::rotate_nearest;
use image::imageops;
use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which augmentations run, and how strongly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Master switch: `false` returns the image unchanged and draws no random numbers.
    pub enabled: bool,
    /// Probability of a horizontal flip (spec: 0.5; 0 disables).
    pub hflip_p: f64,
    /// Probability of a vertical flip (spec: 0.5; 0 disables).
    pub vflip_p: f64,
    /// Rotation angle drawn uniformly from `[-max, max]` degrees (spec: 15; 0 disables).
    pub max_rotation_deg: f64,
    /// AutoAugment, ImageNet policy, after the rotation (spec: on). Configs saved before this field
    /// existed read as `false`, so they keep augmenting exactly as they did.
    #[serde(default)]
    pub autoaugment: bool,
}

impl Default for AugmentConfig {
    /// The spec's training augmentation.
    fn default() -> Self {
        AugmentConfig {
            enabled: true,
            hflip_p: 0.5,
            vflip_p: 0.5,
            max_rotation_deg: 15.0,
            autoaugment: true,
        }
    }
}

impl AugmentConfig {
    /// No augmentation (evaluation, calibration ablations).
    pub fn off() -> Self {
        AugmentConfig {
            enabled: false,
            autoaugment: false,
            ..Self::default()
        }
    }
}

/// Applies the configured augmentations in spec order. When enabled, exactly three numbers are drawn from
/// `rng` per image (h-flip, v-flip, angle), plus AutoAugment's five when it is on (sub-policy, two
/// probabilities, two signs: [`crate::data::autoaugment::Draw::sample`]), whatever the probabilities and
/// outcomes, so the random stream of later images does not depend on the outcomes.
pub fn augment(img: &RgbImage, cfg: &AugmentConfig, rng: &mut impl Rng) -> RgbImage {
    if !cfg.enabled {
        return img.clone();
    }
    let hflip = rng.random::<f64>() < cfg.hflip_p;
    let vflip = rng.random::<f64>() < cfg.vflip_p;
    let max = if cfg.max_rotation_deg.is_finite() {
        cfg.max_rotation_deg.abs()
    } else {
        0.0
    };
    let angle = -max + 2.0 * max * rng.random::<f64>();

    let mut out = img.clone();
    if hflip {
        imageops::flip_horizontal_in_place(&mut out);
    }
    if vflip {
        imageops::flip_vertical_in_place(&mut out);
    }
    if max > 0.0 {
        out = rotate_nearest(&out, angle);
    }
    if cfg.autoaugment {
        out = crate::data::autoaugment::auto_augment(&out, rng);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// An image whose every pixel is distinct, so any geometric change is visible.
    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, (x * 7 + y * 13) as u8]))
    }

    #[test]
    fn off_is_identity_and_draws_nothing() {
        let img = ramp(9, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut untouched = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(augment(&img, &AugmentConfig::off(), &mut rng), img);
        assert_eq!(rng.random::<u64>(), untouched.random::<u64>());
    }

    #[test]
    fn off_turns_autoaugment_off_and_default_turns_it_on() {
        assert!(!AugmentConfig::off().autoaugment);
        assert!(AugmentConfig::default().autoaugment);
        // Even with its flag set, a disabled config is the identity and draws nothing.
        let cfg = AugmentConfig {
            autoaugment: true,
            ..AugmentConfig::off()
        };
        let img = ramp(12, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(augment(&img, &cfg, &mut rng), img);
        assert_eq!(
            rng.random::<u64>(),
            ChaCha8Rng::seed_from_u64(2).random::<u64>()
        );
    }

    #[test]
    fn configs_saved_without_the_autoaugment_field_still_load_with_it_off() {
        let old = r#"{"enabled":true,"hflip_p":0.5,"vflip_p":0.5,"max_rotation_deg":15.0}"#;
        let cfg: AugmentConfig = serde_json::from_str(old).unwrap();
        assert_eq!(
            cfg,
            AugmentConfig {
                autoaugment: false,
                ..AugmentConfig::default()
            }
        );
        let round: AugmentConfig =
            serde_json::from_str(&serde_json::to_string(&AugmentConfig::default()).unwrap())
                .unwrap();
        assert_eq!(round, AugmentConfig::default());
    }

    #[test]
    fn fixed_draw_count_per_image_with_autoaugment() {
        // 3 draws (flips, angle) + 5 (AutoAugment), whatever the outcomes.
        let img = ramp(16, 16);
        let cfg = AugmentConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let mut reference = ChaCha8Rng::seed_from_u64(21);
        for _ in 0..50 {
            augment(&img, &cfg, &mut rng);
            for _ in 0..3 + crate::data::autoaugment::Draw::DRAWS {
                reference.random::<f64>();
            }
            assert_eq!(
                rng.clone().random::<u64>(),
                reference.clone().random::<u64>()
            );
        }
    }

    #[test]
    fn autoaugment_runs_after_the_rotation() {
        let img = ramp(16, 12);
        let cfg = AugmentConfig::default();
        for seed in 0..30 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let got = augment(&img, &cfg, &mut rng);
            // Replay the same stream by hand: flips, angle, then AutoAugment's draw.
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            let (h, v) = (r.random::<f64>() < 0.5, r.random::<f64>() < 0.5);
            let angle = -15.0 + 30.0 * r.random::<f64>();
            let mut want = img.clone();
            if h {
                imageops::flip_horizontal_in_place(&mut want);
            }
            if v {
                imageops::flip_vertical_in_place(&mut want);
            }
            let want = crate::data::autoaugment::apply(
                &rotate_nearest(&want, angle),
                &crate::data::autoaugment::Draw::sample(&mut r),
            );
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn flips_happen_about_half_the_time_and_are_exact() {
        let img = ramp(6, 5);
        let cfg = AugmentConfig {
            max_rotation_deg: 0.0,
            autoaugment: false,
            ..AugmentConfig::default()
        };
        let h = imageops::flip_horizontal(&img);
        let v = imageops::flip_vertical(&img);
        let hv = imageops::flip_vertical(&h);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0usize; 4];
        let n = 4000;
        for _ in 0..n {
            let out = augment(&img, &cfg, &mut rng);
            let k = [&img, &h, &v, &hv]
                .iter()
                .position(|c| **c == out)
                .expect("output is one of the four flips");
            counts[k] += 1;
        }
        for c in counts {
            // Each combination has probability 1/4: 1000 +- 5 sigma (~137).
            assert!((860..1140).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn only_hflip_when_vflip_disabled() {
        let img = ramp(4, 4);
        let cfg = AugmentConfig {
            vflip_p: 0.0,
            max_rotation_deg: 0.0,
            autoaugment: false,
            ..AugmentConfig::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let h = imageops::flip_horizontal(&img);
        for _ in 0..50 {
            let out = augment(&img, &cfg, &mut rng);
            assert!(out == img || out == h);
        }
    }

    #[test]
    fn quarter_turns_match_exact_rotations() {
        // Square: PIL's transpose fast path. Counter-clockwise 90 = image's rotate270.
        let sq = ramp(5, 5);
        assert_eq!(rotate_nearest(&sq, 90.0), imageops::rotate270(&sq));
        assert_eq!(rotate_nearest(&sq, -90.0), imageops::rotate90(&sq));
        assert_eq!(rotate_nearest(&sq, 180.0), imageops::rotate180(&sq));
        assert_eq!(rotate_nearest(&sq, 360.0), sq);
        // The general (fixed-point) path gives the same pixels for a quarter turn of a square.
        let general = rotate_nearest(&sq, 90.0 + 1e-12);
        assert_eq!(general, imageops::rotate270(&sq));
    }

    #[test]
    fn small_rotation_keeps_canvas_fills_corners_and_centre() {
        let img = RgbImage::from_pixel(32, 24, Rgb([200, 100, 50]));
        let out = rotate_nearest(&img, 15.0);
        assert_eq!(out.dimensions(), (32, 24));
        // Corners come from outside the source: black.
        for (x, y) in [(0, 0), (31, 0), (0, 23), (31, 23)] {
            assert_eq!(out.get_pixel(x, y).0, [0, 0, 0], "corner ({x},{y})");
        }
        assert_eq!(out.get_pixel(16, 12).0, [200, 100, 50]);
    }

    #[test]
    fn rotation_direction_is_counter_clockwise() {
        // A bright dot right of the centre moves up (smaller y) for a positive angle.
        let mut img = RgbImage::new(41, 41);
        img.put_pixel(35, 20, Rgb([255, 255, 255]));
        let out = rotate_nearest(&img, 30.0);
        let (x, y) = out
            .enumerate_pixels()
            .find(|(_, _, p)| p.0[0] == 255)
            .map(|(x, y, _)| (x, y))
            .expect("the dot survives");
        // Expected near (20.5 + 15 cos 30, 20.5 - 15 sin 30) = (33.5, 13.0).
        assert!(
            (32..=34).contains(&x) && (12..=14).contains(&y),
            "({x},{y})"
        );
    }

    #[test]
    fn matches_pillow_exactly() {
        // Reference: Pillow 13.0.0,
        //   a = (np.arange(7*9*3).reshape(7, 9, 3) * 5 % 251).astype(np.uint8)
        //   np.asarray(Image.fromarray(a).rotate(angle, Image.NEAREST, fillcolor=(0, 0, 0)))[:, :, 0]
        let src = RgbImage::from_fn(9, 7, |x, y| {
            let v = |c: u32| (((y * 9 + x) * 3 + c) * 5 % 251) as u8;
            Rgb([v(0), v(1), v(2)])
        });
        let cases: [(f64, [u8; 63]); 4] = [
            (
                10.0,
                [
                    0, 30, 45, 60, 75, 90, 90, 240, 4, 0, 150, 165, 180, 195, 210, 225, 124, 139,
                    135, 150, 49, 64, 79, 94, 109, 8, 23, 19, 34, 184, 199, 214, 229, 244, 143,
                    158, 154, 169, 68, 83, 98, 113, 128, 27, 42, 38, 53, 203, 218, 233, 248, 12,
                    27, 177, 173, 188, 87, 87, 102, 117, 132, 147, 0,
                ],
            ),
            (
                -13.7,
                [
                    0, 135, 150, 30, 45, 60, 75, 0, 0, 19, 34, 49, 180, 195, 195, 210, 90, 105,
                    154, 169, 184, 64, 79, 94, 109, 240, 4, 38, 53, 184, 199, 214, 229, 244, 124,
                    139, 173, 188, 68, 83, 98, 113, 244, 8, 23, 72, 87, 218, 233, 233, 248, 128,
                    143, 158, 0, 0, 102, 117, 132, 147, 27, 42, 0,
                ],
            ),
            (
                15.0,
                [
                    0, 0, 45, 60, 75, 90, 240, 4, 0, 15, 30, 180, 195, 210, 210, 109, 124, 139,
                    135, 150, 49, 64, 79, 94, 244, 8, 23, 19, 34, 49, 199, 214, 229, 128, 143, 158,
                    154, 169, 184, 83, 98, 113, 128, 27, 42, 38, 53, 68, 218, 218, 233, 248, 147,
                    162, 0, 173, 188, 87, 102, 117, 132, 0, 0,
                ],
            ),
            // Not square: no transpose fast path, the affine path with a quarter turn.
            (
                90.0,
                [
                    0, 105, 240, 124, 8, 143, 27, 162, 0, 0, 90, 225, 109, 244, 128, 12, 147, 0, 0,
                    75, 210, 94, 229, 113, 248, 132, 0, 0, 60, 195, 79, 214, 98, 233, 117, 0, 0,
                    45, 180, 64, 199, 83, 218, 102, 0, 0, 30, 165, 49, 184, 68, 203, 87, 0, 0, 15,
                    150, 34, 169, 53, 188, 72, 0,
                ],
            ),
        ];
        for (angle, expected) in cases {
            let out = rotate_nearest(&src, angle);
            let got: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
            assert_eq!(got, expected, "angle {angle}");
        }
    }

    #[test]
    fn same_seed_same_result_and_angles_cover_the_range() {
        let img = ramp(16, 16);
        let cfg = AugmentConfig::default();
        let a = augment(&img, &cfg, &mut ChaCha8Rng::seed_from_u64(11));
        let b = augment(&img, &cfg, &mut ChaCha8Rng::seed_from_u64(11));
        assert_eq!(a, b);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..20 {
            distinct.insert(augment(&img, &cfg, &mut rng).into_raw());
        }
        assert!(distinct.len() > 10, "augmentations should vary");
    }
}
