//! Writes the seed corpora of the fuzz targets into `seeds/<target>/` (committed; rerun after a
//! format change): `.fqm` bodies of small models built through the real `assemble` (the runtime
//! tests' random-model helper), the CSV heads in `seeds/csv/` behind each target's flags byte, and
//! small images in every decoded format. Run from `runtime/fuzz`:
//! `cargo +nightly run --release --example gen_seeds`.

#[path = "../../tests/packed/mod.rs"]
mod packed;

use std::fs;
use std::io::Cursor;
use std::path::Path;

use fq_models::{Arch, ArchSpec};
use fq_runtime::format::HEADER_LEN;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use packed::{odd_graph, random_model, Bits};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
    println!("{}/{name}: {} bytes", dir.display(), bytes.len());
}

/// A model of any graph through `assemble_with`: 4-bit codes cycling through the grid, batch
/// norms near identity, every other tensor small values (random_model covers only ResNets).
fn token_model(graph: &fq_models::Graph) -> fq_runtime::format::PackedModel {
    use fq_runtime::format::{assemble_with, BatchNormParams, LayerParams, LayerSource};
    let layer = |_: &str, rows: usize, cols: usize| -> Result<LayerParams, String> {
        Ok(LayerParams {
            weights: LayerSource::Quantized {
                bits: vec![4; rows],
                codes: (0..rows * cols).map(|i| (i % 15) as i8 - 7).collect(),
                scales: vec![0.01; rows],
            },
            bias: None,
        })
    };
    let has_bias: std::collections::HashSet<String> = graph
        .params()
        .into_iter()
        .filter_map(|p| p.name.strip_suffix(".bias").map(str::to_string))
        .collect();
    let layer = |name: &str, rows: usize, cols: usize| -> Result<LayerParams, String> {
        let mut p: LayerParams = layer(name, rows, cols)?;
        if has_bias.contains(name) {
            p.bias = Some(vec![0.05; rows]);
        }
        Ok(p)
    };
    let bn = |_: &str| -> Result<BatchNormParams, String> { Err("sized below".into()) };
    let channels: std::collections::HashMap<String, usize> = graph
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            fq_models::Op::BatchNorm2d { channels, .. } => Some((n.name.clone(), channels)),
            _ => None,
        })
        .collect();
    let bn = |name: &str| -> Result<BatchNormParams, String> {
        let Some(&c) = channels.get(name) else {
            return bn(name);
        };
        Ok(BatchNormParams {
            weight: vec![1.0; c],
            bias: vec![0.0; c],
            running_mean: vec![0.0; c],
            running_var: vec![1.0; c],
        })
    };
    let tensor = |_: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        Ok((0..shape.iter().product::<usize>())
            .map(|i| ((i % 9) as f32 - 4.0) * 0.02)
            .collect())
    };
    assemble_with(graph, packed::meta(graph), layer, bn, tensor).unwrap()
}

fn main() {
    let seeds = Path::new("seeds");

    // .fqm bodies (the target adds the header).
    let dir = seeds.join("fqm_body");
    let models = [
        (
            "resnet18-w2-mixed",
            ArchSpec::new(Arch::ResNet18, 2, 32, 3).graph().unwrap(),
            Bits::RandomMix,
        ),
        (
            "resnet18-w2-f32",
            ArchSpec::new(Arch::ResNet18, 2, 32, 2).graph().unwrap(),
            Bits::F32,
        ),
        ("odd-u3", odd_graph(), Bits::Uniform(3)),
        (
            "deit-w8",
            ArchSpec::new(Arch::DeitTiny, 8, 32, 2).graph().unwrap(),
            Bits::Uniform(4),
        ),
        (
            "tinyvit-w8",
            ArchSpec::new(Arch::TinyVit5m, 8, 64, 2).graph().unwrap(),
            Bits::RandomMix,
        ),
    ];
    for (name, graph, bits) in models {
        let model = if name.starts_with("resnet") || name.starts_with("odd") {
            random_model(&graph, bits, 3).model
        } else {
            token_model(&graph)
        };
        let file = model.to_bytes().unwrap();
        write(&dir, &format!("{name}.bin"), &file[HEADER_LEN..]);
    }

    // CSVs behind a flags byte (see each target).
    let csv = |name: &str| fs::read(seeds.join("csv").join(name)).unwrap();
    let with_flags = |flags: u8, body: &[u8]| [&[flags][..], body].concat();
    let fitz = csv("fitzpatrick17k.csv");
    for flags in [0u8, 0b1_0011, 0b10_0101, 0b1_1000] {
        write(
            &seeds.join("dataset_fitzpatrick17k"),
            &format!("head-{flags:02x}.csv"),
            &with_flags(flags, &fitz),
        );
    }
    let gt = csv("ISIC_2019_Training_GroundTruth.csv");
    let meta = csv("ISIC_2019_Training_Metadata.csv");
    let isic = [&gt[..], &[0u8][..], &meta[..]].concat();
    for flags in [0u8, 3] {
        write(
            &seeds.join("dataset_isic2019"),
            &format!("head-{flags:02x}.bin"),
            &with_flags(flags, &isic),
        );
    }
    let folder = csv("folder.csv");
    for flags in [0u8, 7] {
        write(
            &seeds.join("dataset_folder"),
            &format!("rows-{flags:02x}.csv"),
            &with_flags(flags, &folder),
        );
    }

    // Images: a 12x9 gradient in each format the runtime decodes, one with an EXIF orientation.
    let img = RgbImage::from_fn(12, 9, |x, y| {
        Rgb([(x * 20) as u8, (y * 28) as u8, ((x + y) * 9) as u8])
    });
    let dir = seeds.join("image_preprocess");
    let encode = |img: &DynamicImage, f: ImageFormat| {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, f).unwrap();
        out.into_inner()
    };
    let rgb = DynamicImage::ImageRgb8(img);
    for (name, im, f) in [
        ("rgb.png", rgb.clone(), ImageFormat::Png),
        (
            "gray16.png",
            DynamicImage::ImageLuma16(rgb.to_luma16()),
            ImageFormat::Png,
        ),
        (
            "rgba.png",
            DynamicImage::ImageRgba8(rgb.to_rgba8()),
            ImageFormat::Png,
        ),
        ("rgb.jpg", rgb.clone(), ImageFormat::Jpeg),
        ("rgb.webp", rgb.clone(), ImageFormat::WebP),
    ] {
        write(&dir, name, &[&[31u8][..], &encode(&im, f)[..]].concat());
    }
    // The JPEG again with an APP1 EXIF segment: orientation 6 (rotate 90 degrees clockwise).
    let jpg = encode(&rgb, ImageFormat::Jpeg);
    let tiff: Vec<u8> = [
        &b"II*\0"[..],
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &0x0112u16.to_le_bytes(),
        &3u16.to_le_bytes(),
        &1u32.to_le_bytes(),
        &6u16.to_le_bytes(),
        &[0, 0],
        &0u32.to_le_bytes(),
    ]
    .concat();
    let payload = [&b"Exif\0\0"[..], &tiff].concat();
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    app1.extend_from_slice(&payload);
    let exif_jpg = [&jpg[..2], &app1[..], &jpg[2..]].concat();
    assert_eq!(
        fq_runtime::preprocess::exif_orientation(&exif_jpg).map(|o| o.to_exif()),
        Some(6)
    );
    write(&dir, "exif6.jpg", &[&[17u8][..], &exif_jpg[..]].concat());
}
