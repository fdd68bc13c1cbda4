//! Contact sheet of a generated dataset, for looking at it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use super::lesion::CLASSES;
use super::writer::{self, CSV_NAME, IMAGES_DIR};

/// Writes a grid PNG: one row per class (in [`CLASSES`] order), one block of `per_cell` columns per
/// Fitzpatrick type I..VI (left to right), first images of each (class, type) in CSV order, tiles
/// upscaled (nearest) to at least 96 px, 4 px grey gaps between type blocks. Empty cells stay black.
pub fn contact_sheet(dataset_dir: &Path, out_png: &Path, per_cell: usize) -> anyhow::Result<()> {
    anyhow::ensure!(per_cell > 0, "contact_sheet: per_cell must be > 0");
    let csv_path = dataset_dir.join(CSV_NAME);
    let mut rdr = csv::Reader::from_path(&csv_path)
        .with_context(|| format!("opening {}", csv_path.display()))?;
    let mut cells: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", csv_path.display(), line + 2))?;
        let (Some(hash), Some(t), Some(label)) = (rec.get(0), rec.get(1), rec.get(3)) else {
            continue;
        };
        let (Ok(t), Some(c)) = (
            t.parse::<usize>(),
            CLASSES.iter().position(|c| c.label == label),
        ) else {
            continue;
        };
        if (1..=6).contains(&t) {
            let v = cells.entry((c, t)).or_default();
            if v.len() < per_cell {
                v.push(hash.to_string());
            }
        }
    }
    let mut size = 0u32;
    let mut tiles: HashMap<(usize, usize, usize), image::RgbImage> = HashMap::new();
    for ((c, t), hashes) in &cells {
        for (k, h) in hashes.iter().enumerate() {
            let p = dataset_dir.join(IMAGES_DIR).join(format!("{h}.png"));
            let img = image::open(&p)
                .with_context(|| format!("reading {}", p.display()))?
                .to_rgb8();
            size = size.max(img.width());
            tiles.insert((*c, *t, k), img);
        }
    }
    anyhow::ensure!(
        size > 0,
        "contact_sheet: no images found in {}",
        dataset_dir.display()
    );
    let scale = 96u32.div_ceil(size).max(1);
    let tile = size * scale;
    let gap = 4u32;
    let per = per_cell as u32;
    let width = 6 * per * tile + 5 * gap;
    let height = CLASSES.len() as u32 * (tile + gap) - gap;
    let mut sheet = image::RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
    for c in 0..CLASSES.len() {
        for t in 1..=6usize {
            for k in 0..per_cell {
                let x0 = (t as u32 - 1) * (per * tile + gap) + k as u32 * tile;
                let y0 = c as u32 * (tile + gap);
                let img = tiles.get(&(c, t, k));
                for y in 0..tile {
                    for x in 0..tile {
                        let px = match img {
                            Some(im) if x / scale < im.width() && y / scale < im.height() => {
                                *im.get_pixel(x / scale, y / scale)
                            }
                            _ => image::Rgb([0, 0, 0]),
                        };
                        sheet.put_pixel(x0 + x, y0 + y, px);
                    }
                }
            }
        }
    }
    let png = writer::encode_png_any(&sheet)?;
    fq_runtime::atomic::write_atomic(out_png, &png)
        .with_context(|| format!("writing contact sheet {}", out_png.display()))
}
