//! Nearest-neighbour rotation and affine warps exactly as Pillow does them (16.16 fixed point,
//! pixel centres, black outside), shared by the random rotation (`augment`) and AutoAugment's
//! geometric ops (`autoaugment`), so that neither augmentation module imports the other's
//! internals.

use image::imageops;
use image::{Rgb, RgbImage};

/// Rotates by `degrees` counter-clockwise about the image centre, nearest neighbour, same canvas, black
/// outside, exactly as PIL's `Image.rotate(degrees, NEAREST, expand=False, fillcolor=0)`.
pub fn rotate_nearest(img: &RgbImage, degrees: f64) -> RgbImage {
    let (w, h) = img.dimensions();
    let angle = degrees.rem_euclid(360.0);
    // PIL's exact fast paths.
    if angle == 0.0 || !angle.is_finite() {
        return img.clone();
    }
    if angle == 180.0 {
        return imageops::rotate180(img);
    }
    if w == h && angle == 90.0 {
        return imageops::rotate270(img);
    }
    if w == h && angle == 270.0 {
        return imageops::rotate90(img);
    }

    // PIL's inverse matrix (output coordinates to input coordinates).
    let theta = -angle.to_radians();
    let round15 = |v: f64| (v * 1e15).round_ties_even() / 1e15;
    let (a, b) = (round15(theta.cos()), round15(theta.sin()));
    let (d, e) = (round15(-theta.sin()), round15(theta.cos()));
    let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
    let c = a * -cx + b * -cy + cx;
    let f = d * -cx + e * -cy + cy;
    affine_nearest(img, [a, b, c, d, e, f])
}

/// PIL's `Image.transform(size, AFFINE, m, NEAREST)` onto a black canvas of the same size: output pixel
/// (x, y) takes the input pixel at `(m0 x + m1 y + m2, m3 x + m4 y + m5)` sampled at pixel centres, in
/// PIL's 16.16 fixed point (`affine_fixed` in Geometry.c), so results match Pillow bit for bit. Every
/// image that fits in memory is within its +-32768 range check for the matrices used here (rotations and
/// shears of at most 0.3). PIL sends matrices with `m1 == m3 == 0` to a separate scaling routine; the only
/// such matrix that reaches this function (a zero shear) is the identity, which both paths copy.
pub(crate) fn affine_nearest(img: &RgbImage, m: [f64; 6]) -> RgbImage {
    let (w, h) = img.dimensions();
    let [a, b, c, d, e, f] = m;
    let fix = |v: f64| (v * 65536.0 + 0.5).floor() as i64;
    let (a0, a1, a3, a4) = (fix(a), fix(b), fix(d), fix(e));
    let mut row_x = fix(c + a * 0.5 + b * 0.5);
    let mut row_y = fix(f + d * 0.5 + e * 0.5);
    let (wi, hi) = (i64::from(w), i64::from(h));
    let mut out = RgbImage::from_pixel(w, h, Rgb([0, 0, 0]));
    for y in 0..h {
        let (mut xx, mut yy) = (row_x, row_y);
        for x in 0..w {
            let (xin, yin) = (xx >> 16, yy >> 16);
            if (0..wi).contains(&xin) && (0..hi).contains(&yin) {
                out.put_pixel(x, y, *img.get_pixel(xin as u32, yin as u32));
            }
            xx += a0;
            yy += a3;
        }
        row_x += a1;
        row_y += a4;
    }
    out
}
