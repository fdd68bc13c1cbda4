//! `fq-compress synth`: a deterministic synthetic dermatology-like dataset in the real
//! Fitzpatrick17k format (PNG images + `fitzpatrick17k.csv` with the real header), so the real
//! loader reads it. No real dermatology images can be downloaded; this is the embedded default
//! dataset. Design and rationale: `docs/SYNTHETIC.md`.
//!
//! Layout of `out_dir`: `fitzpatrick17k.csv`, `images/<md5hash>.png`, `synth.json` (config and
//! summary; its presence marks a complete dataset).

mod config;
mod lesion;
mod noise;
mod render;
mod sheet;
mod skin;
mod writer;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use config::{SynthConfig, NUM_CLASSES};
pub use lesion::{SynthClass, CLASSES};
pub use sheet::contact_sheet;
pub use writer::{md5hash, CSV_HEADER, CSV_NAME, GENERATOR, IMAGES_DIR, MARKER_NAME};

/// What [`generate`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSummary {
    /// Number of images (= CSV rows).
    pub num_images: usize,
    /// Rows per `fitzpatrick_scale`: index 0 = unknown (`-1`), 1..=6 = types I..VI.
    pub per_type: [usize; 7],
    /// Rows per class label, in [`CLASSES`] order.
    pub per_class: Vec<(String, usize)>,
    /// The dataset directory.
    pub out_dir: PathBuf,
}

/// Generates the dataset described by `cfg` into `out_dir` (byte-identical for the same config,
/// whatever the thread count). Renders in parallel into `<out_dir>.partial`, then renames it over
/// `out_dir`. If `out_dir` already holds a complete dataset of the same config and generator
/// version, nothing is written and its summary is returned. An existing `out_dir` is only replaced
/// if it is empty or a synthetic dataset (has `synth.json`). Shows a progress bar if `progress`.
pub fn generate(cfg: &SynthConfig, out_dir: &Path, progress: bool) -> anyhow::Result<SynthSummary> {
    cfg.validate()?;
    if let Some(summary) = writer::existing_complete(cfg, out_dir) {
        return Ok(summary);
    }
    writer::check_replaceable(out_dir)?;
    let partial = writer::partial_path(out_dir)?;
    if partial.exists() {
        fs::remove_dir_all(&partial)
            .with_context(|| format!("removing stale {}", partial.display()))?;
    }
    let images = partial.join(IMAGES_DIR);
    fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;

    let pb = crate::support::progress::bar(
        progress,
        cfg.num_images as u64,
        "synth {bar:40.cyan/blue} {pos}/{len} images [{elapsed_precise} < {eta}]",
    );

    // Rendering is CPU bound (rayon, one thread per core); creating and fsyncing thousands of
    // small files is I/O bound, so a few writer threads do it concurrently.
    let rows = writer::with_file_writers(16, |sink| {
        (0..cfg.num_images)
            .into_par_iter()
            .map(|index| -> anyhow::Result<writer::Row> {
                let r = render::render(cfg, index);
                let hash = md5hash(cfg.seed, index);
                let png = writer::encode_png(&r.rgb, cfg.image_size)?;
                sink.write(images.join(format!("{hash}.png")), png)?;
                pb.inc(1);
                Ok(writer::Row {
                    hash,
                    scale: r.labels.scale,
                    centaur: r.labels.centaur,
                    class: r.class,
                    qc: r.qc,
                    index,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    pb.finish_and_clear();

    let mut per_type = [0usize; 7];
    let mut per_class_n = [0usize; NUM_CLASSES];
    for r in &rows {
        per_type[r.scale.max(0) as usize] += 1;
        per_class_n[r.class] += 1;
    }
    let summary = SynthSummary {
        num_images: rows.len(),
        per_type,
        per_class: CLASSES
            .iter()
            .zip(per_class_n)
            .map(|(c, k)| (c.label.to_string(), k))
            .collect(),
        out_dir: out_dir.to_path_buf(),
    };

    writer::write_synced(
        &partial.join(CSV_NAME),
        &writer::csv_bytes(cfg.seed, &rows)?,
    )?;
    let marker = writer::Marker {
        generator: GENERATOR.to_string(),
        config: cfg.clone(),
        summary: summary.clone(),
    };
    let json = serde_json::to_vec_pretty(&marker)?;
    writer::write_synced(&partial.join(MARKER_NAME), &json)?;
    writer::commit(&partial, out_dir)?;
    Ok(summary)
}
