//! Decoding with EXIF orientation (all 8 values), resizing and normalization (the whole-set image
//! cache is fq-eval's: eval/tests/images.rs).

use std::io::Cursor;

use fq_runtime::preprocess::{
    decode_bytes, decode_path, exif_orientation, resize_exact, to_chw, to_nchw, DecodeError,
    PreprocessConfig, IMAGENET_MEAN, IMAGENET_STD,
};
use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, Rgb, RgbImage};

const RED: [u8; 3] = [230, 20, 20];
const GREEN: [u8; 3] = [20, 230, 20];
const BLUE: [u8; 3] = [20, 20, 230];
const WHITE: [u8; 3] = [240, 240, 240];

/// 32x16 with four 16x8 blocks: red top-left, green top-right, blue bottom-left, white bottom-right.
fn quadrants() -> RgbImage {
    RgbImage::from_fn(32, 16, |x, y| {
        Rgb(match (x < 16, y < 8) {
            (true, true) => RED,
            (false, true) => GREEN,
            (true, false) => BLUE,
            (false, false) => WHITE,
        })
    })
}

/// An APP1 segment holding a big-endian TIFF header and one IFD entry: Orientation (0x0112), SHORT.
fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2a\x00\x00\x00\x08"); // byte order, magic, IFD0 at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // tag
    tiff.extend_from_slice(&3u16.to_be_bytes()); // type SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\x00\x00".to_vec();
    payload.extend_from_slice(&tiff);
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    seg.extend_from_slice(&payload);
    seg
}

/// A JPEG of `img` with the EXIF segment inserted right after SOI.
fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
    let mut plain = Vec::new();
    JpegEncoder::new_with_quality(&mut plain, 95)
        .encode_image(img)
        .unwrap();
    assert_eq!(&plain[..2], &[0xFF, 0xD8]);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&exif_app1(orientation));
    out.extend_from_slice(&plain[2..]);
    out
}

/// Where displayed pixel (x, y) comes from in the stored W x H image, per the EXIF definition of each
/// orientation (written independently of the implementation).
fn stored_coords(orientation: u16, x: u32, y: u32, w: u32, h: u32) -> (u32, u32) {
    match orientation {
        1 => (x, y),
        2 => (w - 1 - x, y),         // mirrored horizontally
        3 => (w - 1 - x, h - 1 - y), // rotated 180
        4 => (x, h - 1 - y),         // mirrored vertically
        5 => (y, x),                 // transposed
        6 => (y, h - 1 - x),         // rotate 90 clockwise to display
        7 => (w - 1 - y, h - 1 - x), // transversed
        8 => (w - 1 - y, x),         // rotate 90 counter-clockwise to display
        _ => unreachable!(),
    }
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(&p, q)| p.abs_diff(q) <= 40)
}

#[test]
fn exif_orientation_all_eight() {
    let src = quadrants();
    let (w, h) = src.dimensions();
    for o in 1..=8u16 {
        let bytes = jpeg_with_orientation(&src, o);
        assert_eq!(
            exif_orientation(&bytes).map(|x| x.to_exif()),
            Some(o as u8),
            "tag read back"
        );
        let img = decode_bytes(&bytes, "test.jpg").unwrap();
        let expected_dims = if o >= 5 { (h, w) } else { (w, h) };
        assert_eq!(img.dimensions(), expected_dims, "orientation {o}");
        // Sample the centre of each displayed 8x8 cell (block centres survive JPEG compression).
        let (dw, dh) = img.dimensions();
        for cy in (4..dh).step_by(8) {
            for cx in (4..dw).step_by(8) {
                let (sx, sy) = stored_coords(o, cx, cy, w, h);
                let want = src.get_pixel(sx, sy).0;
                let got = img.get_pixel(cx, cy).0;
                assert!(
                    close(got, want),
                    "orientation {o}: displayed ({cx},{cy}) is {got:?}, expected {want:?}"
                );
            }
        }
    }
}

#[test]
fn no_or_bad_exif_means_as_stored() {
    let src = quadrants();
    let mut png = Cursor::new(Vec::new());
    src.write_to(&mut png, ImageFormat::Png).unwrap();
    let png = png.into_inner();
    assert!(exif_orientation(&png).is_none());
    assert_eq!(decode_bytes(&png, "q.png").unwrap(), src);
    // Orientation 0 and 9 are invalid: ignored.
    for o in [0, 9] {
        let img = decode_bytes(&jpeg_with_orientation(&src, o), "q.jpg").unwrap();
        assert_eq!(img.dimensions(), (32, 16));
    }
}

#[test]
fn png_jpeg_webp_decode_from_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = quadrants();
    for (name, format) in [
        ("q.png", ImageFormat::Png),
        ("q.jpg", ImageFormat::Jpeg),
        ("q.webp", ImageFormat::WebP),
    ] {
        let path = dir.path().join(name);
        src.save_with_format(&path, format).unwrap();
        let img = decode_path(&path).unwrap();
        assert_eq!(img.dimensions(), (32, 16), "{name}");
        assert!(close(img.get_pixel(4, 4).0, RED), "{name}");
        if format != ImageFormat::Jpeg {
            assert_eq!(img, src, "{name} is lossless");
        }
    }
}

#[test]
fn decode_errors_name_the_file() {
    let err = decode_bytes(b"definitely not an image", "upload-17.jpg").unwrap_err();
    assert!(matches!(err, DecodeError::Image { .. }));
    assert!(err.to_string().contains("upload-17.jpg"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.png");
    let err = decode_path(&missing).unwrap_err();
    assert!(matches!(err, DecodeError::Io { .. }));
    assert_eq!(err.path(), missing);
    assert!(err.to_string().contains("gone.png"), "{err}");
}

/// CRC-32 (IEEE) of PNG chunks, bitwise: a crafted header must carry a valid checksum, or the
/// decoder would stop at the CRC and the size limit would never be reached.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

#[test]
fn empty_truncated_and_huge_photos_are_errors_naming_the_file() {
    let err = decode_bytes(b"", "empty.jpg").unwrap_err();
    assert!(err.to_string().contains("empty.jpg"), "{err}");

    let png = png_bytes(&quadrants());
    let err = decode_bytes(&png[..png.len() / 2], "cut.png").unwrap_err();
    assert!(err.to_string().contains("cut.png"), "{err}");

    // A valid 1x1 PNG whose header claims 60000x60000 pixels (10.8 GB of RGB): the decoder's
    // allocation limit refuses it before allocating, instead of the process running out of memory.
    let mut huge = png_bytes(&RgbImage::new(1, 1));
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    huge[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = decode_bytes(&huge, "huge.png").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("huge.png"), "{msg}");
    assert!(msg.to_lowercase().contains("limit"), "{msg}");
}

#[test]
fn resize_to_exact_size_without_keeping_aspect() {
    let src = quadrants();
    let out = resize_exact(src.clone(), 10, 24);
    assert_eq!(out.dimensions(), (10, 24));
    // Left column stays red on top, blue at the bottom.
    assert!(close(out.get_pixel(1, 2).0, RED));
    assert!(close(out.get_pixel(1, 21).0, BLUE));
    assert!(close(out.get_pixel(8, 21).0, WHITE));
    // Same size: untouched.
    assert_eq!(resize_exact(src.clone(), 32, 16), src);
    // A constant image stays constant under bilinear resizing.
    let flat = RgbImage::from_pixel(37, 23, Rgb([10, 20, 30]));
    let r = resize_exact(flat, 224, 224);
    assert!(r.pixels().all(|p| p.0 == [10, 20, 30]));
}

#[test]
fn normalization_values_and_chw_layout() {
    let cfg = PreprocessConfig {
        width: 2,
        height: 1,
        ..PreprocessConfig::default()
    };
    assert_eq!(cfg.mean, [0.485, 0.456, 0.406]);
    assert_eq!(cfg.std, [0.229, 0.224, 0.225]);
    let mut img = RgbImage::new(2, 1);
    img.put_pixel(0, 0, Rgb([0, 128, 255]));
    img.put_pixel(1, 0, Rgb([255, 0, 51]));
    let t = to_chw(&img, &cfg);
    assert_eq!(t.len(), 6);
    let norm = |v: u8, c: usize| (f32::from(v) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
    // Channel planes: R = [0, 255], G = [128, 0], B = [255, 51].
    assert_eq!(
        t,
        vec![
            norm(0, 0),
            norm(255, 0),
            norm(128, 1),
            norm(0, 1),
            norm(255, 2),
            norm(51, 2)
        ]
    );
    // Known values (torchvision gives the same in f32).
    assert!((t[0] - (-2.117_904)).abs() < 1e-6, "{}", t[0]);
    assert!((t[1] - 2.248_908).abs() < 1e-6, "{}", t[1]);
    assert!((t[4] - 2.64).abs() < 1e-5, "{}", t[4]);
}

#[test]
fn to_chw_resizes_other_sizes_and_batches_are_nchw() {
    let cfg = PreprocessConfig {
        width: 8,
        height: 4,
        ..PreprocessConfig::default()
    };
    let big = quadrants();
    let t = to_chw(&big, &cfg);
    assert_eq!(t.len(), 3 * 8 * 4);
    assert_eq!(t, to_chw(&resize_exact(big.clone(), 8, 4), &cfg));
    let other = RgbImage::from_pixel(8, 4, Rgb([255, 255, 255]));
    let batch = to_nchw(&[big, other.clone()], &cfg);
    assert_eq!(batch.len(), 2 * 96);
    assert_eq!(&batch[..96], &t[..]);
    assert_eq!(&batch[96..], &to_chw(&other, &cfg)[..]);
}
