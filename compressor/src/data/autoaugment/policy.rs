//! torchvision's AutoAugment ImageNet policy (`AutoAugmentPolicy.IMAGENET`, torchvision 0.29): the 25
//! sub-policies and the magnitude bins of `_augmentation_space(num_bins=10)`, reproduced to the bit
//! (torchvision builds the magnitudes with float32 `torch.linspace`, then widens them to a Python float).

use super::ops;
use image::RgbImage;

/// Number of magnitude bins AutoAugment uses.
pub const NUM_BINS: usize = 10;

/// The ops of the augmentation space that the ImageNet policy uses, plus ShearY and Brightness (same
/// space, same code paths; tested against torchvision too). TranslateX/Y are not implemented: no
/// ImageNet sub-policy uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    ShearX,
    ShearY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
    Invert,
}

impl Op {
    pub const ALL: [Op; 12] = [
        Op::ShearX,
        Op::ShearY,
        Op::Rotate,
        Op::Brightness,
        Op::Color,
        Op::Contrast,
        Op::Sharpness,
        Op::Posterize,
        Op::Solarize,
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
    ];

    /// torchvision's name for the op.
    pub fn name(self) -> &'static str {
        match self {
            Op::ShearX => "ShearX",
            Op::ShearY => "ShearY",
            Op::Rotate => "Rotate",
            Op::Brightness => "Brightness",
            Op::Color => "Color",
            Op::Contrast => "Contrast",
            Op::Sharpness => "Sharpness",
            Op::Posterize => "Posterize",
            Op::Solarize => "Solarize",
            Op::AutoContrast => "AutoContrast",
            Op::Equalize => "Equalize",
            Op::Invert => "Invert",
        }
    }

    /// The op with torchvision's name `name`, if implemented.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether AutoAugment flips the magnitude's sign at random.
    pub fn signed(self) -> bool {
        matches!(
            self,
            Op::ShearX
                | Op::ShearY
                | Op::Rotate
                | Op::Brightness
                | Op::Color
                | Op::Contrast
                | Op::Sharpness
        )
    }

    /// The magnitude of bin `bin` (0..10), negated when `negative` and the op is signed; ops without a
    /// magnitude (`bin` = `None`) get 0, as in `AutoAugment.forward`.
    pub fn magnitude(self, bin: Option<usize>, negative: bool) -> f64 {
        let Some(bin) = bin else { return 0.0 };
        let m = match self {
            Op::ShearX | Op::ShearY => linspace_f32(0.0, 0.3, bin),
            Op::Rotate => linspace_f32(0.0, 30.0, bin),
            Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => {
                linspace_f32(0.0, 0.9, bin)
            }
            // 8 - round_half_even(bin / 2.25).
            Op::Posterize => f64::from([8u8, 8, 7, 7, 6, 6, 5, 5, 4, 4][bin]),
            Op::Solarize => linspace_f32(255.0, 0.0, bin),
            Op::AutoContrast | Op::Equalize | Op::Invert => 0.0,
        };
        if self.signed() && negative {
            -m
        } else {
            m
        }
    }

    /// torchvision's `_apply_op` on a PIL RGB image (nearest interpolation, fill 0).
    pub fn apply(self, img: &RgbImage, magnitude: f64) -> RgbImage {
        match self {
            Op::ShearX => ops::shear(img, magnitude, 0.0),
            Op::ShearY => ops::shear(img, 0.0, magnitude),
            Op::Rotate => crate::data::geometry::rotate_nearest(img, magnitude),
            Op::Brightness => ops::brightness(img, 1.0 + magnitude),
            Op::Color => ops::color(img, 1.0 + magnitude),
            Op::Contrast => ops::contrast(img, 1.0 + magnitude),
            Op::Sharpness => ops::sharpness(img, 1.0 + magnitude),
            // torchvision's `int(magnitude)`: the table holds whole numbers 4..=8.
            Op::Posterize => ops::posterize(img, magnitude as u8),
            Op::Solarize => ops::solarize(img, magnitude),
            Op::AutoContrast => ops::autocontrast(img),
            Op::Equalize => ops::equalize(img),
            Op::Invert => ops::invert(img),
        }
    }
}

/// `float(torch.linspace(start, end, 10)[bin])`: float32, with torch's formula (step from the start in
/// the first half, from the end in the second).
fn linspace_f32(start: f32, end: f32, bin: usize) -> f64 {
    let step = (end - start) / (NUM_BINS - 1) as f32;
    let v = if bin < NUM_BINS / 2 {
        start + step * bin as f32
    } else {
        end - step * (NUM_BINS - 1 - bin) as f32
    };
    f64::from(v)
}

/// One op of a sub-policy: applied with probability `p`, at magnitude bin `bin`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub op: Op,
    pub p: f64,
    pub bin: Option<usize>,
}

const fn s(op: Op, p: f64, bin: Option<usize>) -> Step {
    Step { op, p, bin }
}

/// A sub-policy: two steps, applied in order.
pub type SubPolicy = [Step; 2];

use Op::*;

/// torchvision's `_get_policies(AutoAugmentPolicy.IMAGENET)`, in its order (duplicates included: they
/// weight the uniform choice).
#[rustfmt::skip]
pub const IMAGENET_POLICY: [SubPolicy; 25] = [
    [s(Posterize, 0.4, Some(8)), s(Rotate, 0.6, Some(9))],
    [s(Solarize, 0.6, Some(5)), s(AutoContrast, 0.6, None)],
    [s(Equalize, 0.8, None), s(Equalize, 0.6, None)],
    [s(Posterize, 0.6, Some(7)), s(Posterize, 0.6, Some(6))],
    [s(Equalize, 0.4, None), s(Solarize, 0.2, Some(4))],
    [s(Equalize, 0.4, None), s(Rotate, 0.8, Some(8))],
    [s(Solarize, 0.6, Some(3)), s(Equalize, 0.6, None)],
    [s(Posterize, 0.8, Some(5)), s(Equalize, 1.0, None)],
    [s(Rotate, 0.2, Some(3)), s(Solarize, 0.6, Some(8))],
    [s(Equalize, 0.6, None), s(Posterize, 0.4, Some(6))],
    [s(Rotate, 0.8, Some(8)), s(Color, 0.4, Some(0))],
    [s(Rotate, 0.4, Some(9)), s(Equalize, 0.6, None)],
    [s(Equalize, 0.0, None), s(Equalize, 0.8, None)],
    [s(Invert, 0.6, None), s(Equalize, 1.0, None)],
    [s(Color, 0.6, Some(4)), s(Contrast, 1.0, Some(8))],
    [s(Rotate, 0.8, Some(8)), s(Color, 1.0, Some(2))],
    [s(Color, 0.8, Some(8)), s(Solarize, 0.8, Some(7))],
    [s(Sharpness, 0.4, Some(7)), s(Invert, 0.6, None)],
    [s(ShearX, 0.6, Some(5)), s(Equalize, 1.0, None)],
    [s(Color, 0.4, Some(0)), s(Equalize, 0.6, None)],
    [s(Equalize, 0.4, None), s(Solarize, 0.2, Some(4))],
    [s(Solarize, 0.6, Some(5)), s(AutoContrast, 0.6, None)],
    [s(Invert, 0.6, None), s(Equalize, 1.0, None)],
    [s(Color, 0.6, Some(4)), s(Contrast, 1.0, Some(8))],
    [s(Equalize, 0.8, None), s(Equalize, 0.6, None)],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_signedness_matches_torchvision() {
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
        assert_eq!(Op::from_name("TranslateX"), None);
        assert!(Rotate.signed() && ShearX.signed() && Color.signed());
        assert!(!Posterize.signed() && !Solarize.signed() && !Equalize.signed());
    }

    #[test]
    fn magnitudes_hit_the_float32_grid() {
        assert_eq!(Rotate.magnitude(Some(9), false), 30.0);
        assert_eq!(Rotate.magnitude(Some(8), true), -f64::from(26.666_666_f32));
        assert_eq!(
            Solarize.magnitude(Some(5), true),
            f64::from(113.333_336_f32)
        );
        assert_eq!(Solarize.magnitude(Some(9), false), 0.0);
        assert_eq!(Color.magnitude(Some(0), true), 0.0);
        assert_eq!(Posterize.magnitude(Some(8), false), 4.0);
        assert_eq!(Equalize.magnitude(None, true), 0.0);
    }
}
