//! AutoAugment's image ops on u8 RGB images, as Pillow 13 computes them (torchvision applies them to PIL
//! images): the ImageOps lookup tables, ImageEnhance's `Image.blend` against a degenerate image (float32,
//! truncating, as Blend.c), the SMOOTH 3x3 filter (float32 kernel, as Filter.c) and the affine shear.
//! Reproducing Pillow's arithmetic makes every op bit-exact against torchvision.

use image::{Rgb, RgbImage};

/// Applies a per-channel lookup table.
fn map_channels(img: &RgbImage, luts: &[[u8; 256]; 3]) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for (c, v) in p.0.iter_mut().enumerate() {
            *v = luts[c][usize::from(*v)];
        }
    }
    out
}

fn map_all(img: &RgbImage, f: impl Fn(u8) -> u8) -> RgbImage {
    let lut: [u8; 256] = std::array::from_fn(|i| f(i as u8));
    map_channels(img, &[lut; 3])
}

/// Per-channel 256-bin histograms.
fn histograms(img: &RgbImage) -> [[u64; 256]; 3] {
    let mut h = [[0u64; 256]; 3];
    for p in img.pixels() {
        for c in 0..3 {
            h[c][usize::from(p.0[c])] += 1;
        }
    }
    h
}

/// `ImageOps.posterize`: keep the top `bits` bits (1..=8; other values are clamped into that range).
pub fn posterize(img: &RgbImage, bits: u8) -> RgbImage {
    let mask = !((1u16 << (8 - bits.clamp(1, 8))) - 1) as u8;
    map_all(img, |v| v & mask)
}

/// `ImageOps.solarize`: values at or above `threshold` are inverted.
pub fn solarize(img: &RgbImage, threshold: f64) -> RgbImage {
    map_all(img, |v| if f64::from(v) < threshold { v } else { 255 - v })
}

/// `ImageOps.invert`.
pub fn invert(img: &RgbImage) -> RgbImage {
    map_all(img, |v| 255 - v)
}

/// `ImageOps.autocontrast` (no cutoff): each channel's range is stretched to 0..=255; a channel with a
/// single value is left alone.
pub fn autocontrast(img: &RgbImage) -> RgbImage {
    let luts = histograms(img).map(|h| {
        let lo = h.iter().position(|&n| n > 0).unwrap_or(0);
        let hi = h.iter().rposition(|&n| n > 0).unwrap_or(0);
        if hi <= lo {
            return std::array::from_fn(|i| i as u8);
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        std::array::from_fn(|i| (i as f64 * scale + offset).clamp(0.0, 255.0) as u8)
    });
    map_channels(img, &luts)
}

/// `ImageOps.equalize`: per channel, Pillow's cumulative-histogram table (step = (count minus the last
/// non-empty bin) / 255, integer division).
pub fn equalize(img: &RgbImage) -> RgbImage {
    let luts = histograms(img).map(|h| {
        let nonzero: Vec<u64> = h.iter().copied().filter(|&n| n > 0).collect();
        let identity = std::array::from_fn(|i| i as u8);
        if nonzero.len() <= 1 {
            return identity;
        }
        let step = (nonzero.iter().sum::<u64>() - nonzero[nonzero.len() - 1]) / 255;
        if step == 0 {
            return identity;
        }
        let mut n = step / 2;
        let mut lut = [0u8; 256];
        for (i, v) in lut.iter_mut().enumerate() {
            // Pillow's `point` clips table entries to 0..=255.
            *v = (n / step).min(255) as u8;
            n += h[i];
        }
        lut
    });
    map_channels(img, &luts)
}

/// Pillow's `Image.blend(degenerate, img, factor)`: `d + alpha (i - d)` in float32 with `alpha` = the
/// factor as float32, truncated; clipped to 0..=255 only when extrapolating (alpha outside [0, 1]).
fn blend(degenerate: &RgbImage, img: &RgbImage, factor: f64) -> RgbImage {
    let alpha = factor as f32;
    if alpha == 0.0 {
        return degenerate.clone();
    }
    if alpha == 1.0 {
        return img.clone();
    }
    let interpolate = (0.0..=1.0).contains(&alpha);
    let mut out = img.clone();
    for (o, (&d, &i)) in out.iter_mut().zip(degenerate.iter().zip(img.iter())) {
        let v = f32::from(d) + alpha * (i32::from(i) - i32::from(d)) as f32;
        *o = if interpolate || (0.0 < v && v < 255.0) {
            v as u8
        } else if v <= 0.0 {
            0
        } else {
            255
        };
    }
    out
}

/// Pillow's RGB to L conversion (ITU-R 601-2 luma in 16-bit fixed point, rounded).
fn luma(p: &Rgb<u8>) -> u8 {
    let [r, g, b] = p.0.map(u32::from);
    ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
}

/// `ImageEnhance.Brightness`: blend with black.
pub fn brightness(img: &RgbImage, factor: f64) -> RgbImage {
    let (w, h) = img.dimensions();
    blend(&RgbImage::new(w, h), img, factor)
}

/// `ImageEnhance.Color`: blend with the grayscale image.
pub fn color(img: &RgbImage, factor: f64) -> RgbImage {
    let mut gray = img.clone();
    for p in gray.pixels_mut() {
        let l = luma(p);
        *p = Rgb([l, l, l]);
    }
    blend(&gray, img, factor)
}

/// `ImageEnhance.Contrast`: blend with a flat image at the grayscale mean (rounded half up).
pub fn contrast(img: &RgbImage, factor: f64) -> RgbImage {
    let (w, h) = img.dimensions();
    let sum: u64 = img.pixels().map(|p| u64::from(luma(p))).sum();
    let count = u64::from(w) * u64::from(h);
    let mean = if count == 0 {
        0
    } else {
        (sum as f64 / count as f64 + 0.5) as u8
    };
    blend(&RgbImage::from_pixel(w, h, Rgb([mean; 3])), img, factor)
}

/// `ImageEnhance.Sharpness`: blend with the image under `ImageFilter.SMOOTH`.
pub fn sharpness(img: &RgbImage, factor: f64) -> RgbImage {
    blend(&smooth(img), img, factor)
}

/// `ImageFilter.SMOOTH` ([[1,1,1],[1,5,1],[1,1,1]] / 13) as Filter.c computes it: float32 kernel
/// weights, each kernel row summed left to right starting from the row below, +0.5 then truncation. The
/// one-pixel border is copied unchanged; images smaller than 3x3 are returned as they are.
fn smooth(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    if w < 3 || h < 3 {
        return out;
    }
    let (edge, centre) = (1.0f32 / 13.0, 5.0f32 / 13.0);
    let (w, stride) = (w as usize, w as usize * 3);
    let src = img.as_raw();
    let dst: &mut [u8] = &mut out;
    for y in 1..h as usize - 1 {
        let row_start = y * stride + 3;
        let inner = &mut dst[row_start..y * stride + (w - 1) * 3];
        for (i, o) in (row_start..).zip(inner.iter_mut()) {
            let px = |j: usize| f32::from(src[j]);
            let row = |j: usize, mid: f32| px(j - 3) * edge + px(j) * mid + px(j + 3) * edge;
            let mut ss = 0.5f32;
            ss += row(i + stride, edge);
            ss += row(i, centre);
            ss += row(i - stride, edge);
            *o = ss.clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// torchvision's ShearX/ShearY: `F.affine(angle=0, translate=0, scale=1, shear=[deg(atan(mx)),
/// deg(atan(my))], center=[0, 0])`, i.e. Pillow's affine transform with torchvision's inverse matrix.
pub fn shear(img: &RgbImage, mx: f64, my: f64) -> RgbImage {
    let m = inverse_affine_matrix(
        (0.0, 0.0),
        0.0,
        (0.0, 0.0),
        1.0,
        (mx.atan().to_degrees(), my.atan().to_degrees()),
    );
    if m[1] == 0.0 && m[3] == 0.0 {
        // A zero shear: Pillow's scaling path with the identity matrix, a copy.
        return img.clone();
    }
    crate::data::geometry::affine_nearest(img, m)
}

/// torchvision's `_get_inverse_affine_matrix` (angles and shears in degrees), term for term so that the
/// doubles match.
fn inverse_affine_matrix(
    (cx, cy): (f64, f64),
    angle: f64,
    (tx, ty): (f64, f64),
    scale: f64,
    (shear_x, shear_y): (f64, f64),
) -> [f64; 6] {
    let rot = angle.to_radians();
    let (sx, sy) = (shear_x.to_radians(), shear_y.to_radians());
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / scale);
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> RgbImage {
        RgbImage::from_fn(8, 6, |x, y| {
            Rgb([(x * 30) as u8, (y * 40 + 10) as u8, (x * y * 5) as u8])
        })
    }

    #[test]
    fn lookup_ops_follow_their_definitions() {
        let img = ramp();
        let p = posterize(&img, 4);
        let s = solarize(&img, 128.0);
        let i = invert(&img);
        for ((a, b), (c, d)) in img.pixels().zip(p.pixels()).zip(s.pixels().zip(i.pixels())) {
            for k in 0..3 {
                assert_eq!(b.0[k], a.0[k] & 0xF0);
                let sol = if a.0[k] < 128 { a.0[k] } else { 255 - a.0[k] };
                assert_eq!(c.0[k], sol);
                assert_eq!(d.0[k], 255 - a.0[k]);
            }
        }
        assert_eq!(posterize(&img, 8), img);
    }

    #[test]
    fn autocontrast_stretches_each_channel_and_skips_flat_ones() {
        let img = RgbImage::from_fn(4, 1, |x, _| Rgb([50 + x as u8 * 10, 7, 0]));
        let out = autocontrast(&img);
        let red: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(red, [0, 85, 170, 255]);
        assert!(out.pixels().all(|p| p.0[1] == 7 && p.0[2] == 0));
    }

    #[test]
    fn blend_factors_zero_and_one_are_exact_copies() {
        let img = ramp();
        assert_eq!(color(&img, 1.0), img);
        assert_eq!(contrast(&img, 1.0), img);
        assert!(brightness(&img, 0.0).pixels().all(|p| p.0 == [0, 0, 0]));
        // Extrapolation (factor 10) clips at 255 instead of wrapping.
        let bright = brightness(&img, 10.0);
        assert!(bright.pixels().zip(img.pixels()).all(|(b, a)| a
            .0
            .iter()
            .zip(b.0)
            .all(|(&a, b)| u32::from(b) == (u32::from(a) * 10).min(255))));
    }

    #[test]
    fn smooth_keeps_the_border_and_flat_regions() {
        let img = ramp();
        let s = smooth(&img);
        let (w, h) = img.dimensions();
        for (x, y, p) in s.enumerate_pixels() {
            if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
                assert_eq!(p, img.get_pixel(x, y));
            }
        }
        let flat = RgbImage::from_pixel(5, 5, Rgb([77, 0, 255]));
        assert_eq!(smooth(&flat), flat);
    }

    #[test]
    fn zero_shear_is_identity() {
        let img = ramp();
        assert_eq!(shear(&img, 0.0, 0.0), img);
        assert_eq!(shear(&img, -0.0, 0.0), img);
    }
}
