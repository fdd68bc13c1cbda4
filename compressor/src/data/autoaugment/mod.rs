//! Spec §6.2 step 5: AutoAugment with torchvision's ImageNet policy, on u8 RGB images.
//!
//! Per image (torchvision's `AutoAugment.forward`): one of the 25 sub-policies is chosen uniformly; each of
//! its two ops runs when its uniform draw is at most the op's probability, at the magnitude of its bin,
//! negated for signed ops when its sign draw says so. The ops reproduce Pillow's arithmetic, so a given
//! op and magnitude gives torchvision's pixels exactly (checked in `tests/reference_autoaugment.rs`);
//! the random draws come from our own stream, not torch's.

pub mod ops;
pub mod policy;

pub use policy::{Op, Step, SubPolicy, IMAGENET_POLICY, NUM_BINS};

use image::RgbImage;
use rand::Rng;

/// One image's random choices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    /// Index into [`IMAGENET_POLICY`].
    pub sub_policy: usize,
    /// Uniform draws in [0, 1) compared with each step's probability (applied when `<= p`).
    pub probs: [f64; 2],
    /// Whether each step's magnitude is negated (signed ops only).
    pub negative: [bool; 2],
}

impl Draw {
    /// Number of values drawn from the stream per image, whatever they turn out to be.
    pub const DRAWS: usize = 5;

    /// Draws exactly [`Draw::DRAWS`] uniform f64 values (sub-policy, two probabilities, two signs), so the
    /// stream of later images does not depend on the outcomes.
    pub fn sample(rng: &mut impl Rng) -> Draw {
        let n = IMAGENET_POLICY.len();
        let sub_policy = ((rng.random::<f64>() * n as f64) as usize).min(n - 1);
        let probs = [rng.random::<f64>(), rng.random::<f64>()];
        let negative = [rng.random::<f64>() < 0.5, rng.random::<f64>() < 0.5];
        Draw {
            sub_policy,
            probs,
            negative,
        }
    }
}

/// Applies the sub-policy and outcomes of `draw`.
pub fn apply(img: &RgbImage, draw: &Draw) -> RgbImage {
    let mut out = img.clone();
    for (i, step) in IMAGENET_POLICY[draw.sub_policy].iter().enumerate() {
        if draw.probs[i] <= step.p {
            out = step
                .op
                .apply(&out, step.op.magnitude(step.bin, draw.negative[i]));
        }
    }
    out
}

/// AutoAugment (ImageNet policy) of one image with a fresh [`Draw`] from `rng`.
pub fn auto_augment(img: &RgbImage, rng: &mut impl Rng) -> RgbImage {
    apply(img, &Draw::sample(rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn noise(seed: u64) -> RgbImage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        RgbImage::from_fn(16, 12, |_, _| image::Rgb(rng.random()))
    }

    #[test]
    fn sub_policies_are_drawn_uniformly() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 50_000;
        let mut counts = [0usize; 25];
        let mut negatives = 0usize;
        for _ in 0..n {
            let d = Draw::sample(&mut rng);
            counts[d.sub_policy] += 1;
            negatives += usize::from(d.negative[0]);
            assert!(d.probs.iter().all(|p| (0.0..1.0).contains(p)));
        }
        // Each count is Binomial(50000, 1/25): mean 2000, sd ~43.8; allow 5 sd.
        for (i, c) in counts.iter().enumerate() {
            assert!(
                (1780..=2220).contains(c),
                "sub-policy {i}: {c} ({counts:?})"
            );
        }
        assert!((24_440..=25_560).contains(&negatives), "{negatives}");
    }

    #[test]
    fn draws_a_fixed_count_per_image() {
        let img = noise(1);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut reference = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..40 {
            auto_augment(&img, &mut rng);
            for _ in 0..Draw::DRAWS {
                reference.random::<f64>();
            }
            assert_eq!(rng.random::<u64>(), reference.random::<u64>());
        }
    }

    #[test]
    fn same_seed_same_images_and_outcomes_vary() {
        let img = noise(2);
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..30)
                .map(|_| auto_augment(&img, &mut rng))
                .collect::<Vec<_>>()
        };
        let a = run(5);
        assert_eq!(a, run(5));
        assert_ne!(a, run(6));
        let distinct: std::collections::HashSet<_> = a.iter().map(|i| i.as_raw().clone()).collect();
        assert!(distinct.len() > 10, "only {} distinct", distinct.len());
        assert!(a.contains(&img), "some draws leave the image unchanged");
    }

    #[test]
    fn probabilities_gate_each_step() {
        let img = noise(4);
        // Sub-policy 13: Invert (p 0.6) then Equalize (p 1.0).
        let draw = |p0, p1| Draw {
            sub_policy: 13,
            probs: [p0, p1],
            negative: [false, false],
        };
        assert_eq!(apply(&img, &draw(0.61, 0.99)), ops::equalize(&img));
        assert_eq!(
            apply(&img, &draw(0.6, 0.5)),
            ops::equalize(&ops::invert(&img))
        );
        // Sub-policy 12's first step has p = 0: only an exact zero draw applies it.
        let d = Draw {
            sub_policy: 12,
            probs: [1e-9, 0.9],
            negative: [false, false],
        };
        assert_eq!(apply(&img, &d), img);
    }
}
