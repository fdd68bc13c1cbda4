//! Output files: PNG encoding, the Fitzpatrick17k-schema CSV, the `synth.json` completion marker,
//! and the `<out>.partial` -> `<out>` directory swap.
//!
//! A dataset directory is complete iff it contains `synth.json`: the marker is written last into
//! `<out>.partial`, which is then renamed into place, so an interrupted run never leaves a
//! directory that looks complete.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::SynthConfig;
use super::SynthSummary;

/// Header of the real `fitzpatrick17k.csv` (github.com/mattgroh/fitzpatrick17k), byte for byte.
pub const CSV_HEADER: [&str; 9] = [
    "md5hash",
    "fitzpatrick_scale",
    "fitzpatrick_centaur",
    "label",
    "nine_partition_label",
    "three_partition_label",
    "qc",
    "url",
    "url_alphanum",
];

/// Name of the CSV inside the dataset directory.
pub const CSV_NAME: &str = "fitzpatrick17k.csv";
/// Name of the image folder inside the dataset directory.
pub const IMAGES_DIR: &str = "images";
/// Name of the completion marker inside the dataset directory.
pub const MARKER_NAME: &str = "synth.json";
/// Identifies the generator; bump when the images for a given config change.
pub const GENERATOR: &str = "fq-compress synth v1";

/// 32 lower-case hex characters: the first 16 bytes of SHA-256 of `fairquant-synth:<seed>:<index>`.
pub fn md5hash(seed: u64, index: usize) -> String {
    let digest = Sha256::digest(format!("fairquant-synth:{seed}:{index}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// One CSV row.
pub(crate) struct Row {
    pub hash: String,
    pub scale: i8,
    pub centaur: i8,
    pub class: usize,
    pub qc: &'static str,
    pub index: usize,
}

/// PNG bytes of an RGB8 square image.
pub(crate) fn encode_png(rgb: &[u8], size: u32) -> anyhow::Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut buf = Vec::new();
    image::codecs::png::PngEncoder::new(&mut buf)
        .write_image(rgb, size, size, image::ExtendedColorType::Rgb8)
        .context("synth: PNG encoding failed")?;
    Ok(buf)
}

/// Writes `bytes` to `path` and fsyncs it (used inside the `.partial` directory, whose rename
/// provides the atomicity).
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Hands files to the writer threads of [`with_file_writers`].
pub(crate) struct FileSink {
    tx: std::sync::mpsc::SyncSender<(PathBuf, Vec<u8>)>,
}

impl FileSink {
    /// Queues `bytes` to be written to `path` and fsynced.
    pub(crate) fn write(&self, path: PathBuf, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.tx
            .send((path, bytes))
            .map_err(|e| anyhow::anyhow!("synth: file writers stopped before {}", e.0 .0.display()))
    }
}

/// Runs `f` with a [`FileSink`] served by `threads` writer threads; returns `f`'s result once
/// every queued file is written and synced, or the first write error.
pub(crate) fn with_file_writers<T: Send>(
    threads: usize,
    f: impl FnOnce(&FileSink) -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, Vec<u8>)>(256);
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let rx = &rx;
                s.spawn(move || -> anyhow::Result<()> {
                    loop {
                        let job = rx.lock().expect("writer queue poisoned").recv();
                        match job {
                            Ok((path, bytes)) => write_synced(&path, &bytes)?,
                            Err(_) => return Ok(()),
                        }
                    }
                })
            })
            .collect();
        let sink = FileSink { tx };
        let result = f(&sink);
        drop(sink);
        let mut write_result = Ok(());
        for w in writers {
            let r = w.join().expect("writer thread panicked");
            if write_result.is_ok() {
                write_result = r;
            }
        }
        // A write error also makes `f` fail (its sends fail); report the root cause.
        write_result?;
        result
    })
}

fn sync_dir(dir: Option<&Path>) {
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Best effort: directory fsync is not supported everywhere.
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// CSV bytes in the real schema, rows in index order, LF line endings.
pub(crate) fn csv_bytes(seed: u64, rows: &[Row]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for r in rows {
        let class = &super::CLASSES[r.class];
        let slug: String = class.label.replace(' ', "-");
        let url = format!(
            "https://synthetic.invalid/fairquant/seed-{seed}/{slug}/{slug}{}.png",
            r.index
        );
        let alnum: String = url.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        w.write_record([
            r.hash.as_str(),
            &r.scale.to_string(),
            &r.centaur.to_string(),
            class.label,
            class.nine_partition,
            class.three_partition,
            r.qc,
            &url,
            &format!("{alnum}.png"),
        ])?;
    }
    w.into_inner().context("synth: CSV buffer")
}

/// Content of `synth.json`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Marker {
    pub generator: String,
    pub config: SynthConfig,
    pub summary: SynthSummary,
}

/// `<out>.partial`.
pub(crate) fn partial_path(out: &Path) -> anyhow::Result<PathBuf> {
    let name = out.file_name().with_context(|| {
        format!(
            "synth: output path {} has no final component",
            out.display()
        )
    })?;
    Ok(out.with_file_name(format!("{}.partial", name.to_string_lossy())))
}

/// The summary of a complete dataset at `out` generated with exactly `cfg`, if there is one.
pub(crate) fn existing_complete(cfg: &SynthConfig, out: &Path) -> Option<SynthSummary> {
    let text = fs::read_to_string(out.join(MARKER_NAME)).ok()?;
    let marker: Marker = serde_json::from_str(&text).ok()?;
    if marker.generator != GENERATOR || &marker.config != cfg || !out.join(CSV_NAME).is_file() {
        return None;
    }
    let images = fs::read_dir(out.join(IMAGES_DIR)).ok()?.count();
    if images != cfg.num_images {
        return None;
    }
    let mut summary = marker.summary;
    summary.out_dir = out.to_path_buf();
    Some(summary)
}

/// Refuses to replace an existing `out` unless it is empty or a synth output (has `synth.json`).
pub(crate) fn check_replaceable(out: &Path) -> anyhow::Result<()> {
    if !out.exists() {
        return Ok(());
    }
    anyhow::ensure!(
        out.is_dir(),
        "synth: {} exists and is not a directory",
        out.display()
    );
    let empty = fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .next()
        .is_none();
    anyhow::ensure!(
        empty || out.join(MARKER_NAME).is_file(),
        "synth: refusing to replace {}: it is not empty and has no {MARKER_NAME} (not a synthetic dataset)",
        out.display()
    );
    Ok(())
}

/// Moves the finished `partial` directory to `out`, replacing a previous output.
pub(crate) fn commit(partial: &Path, out: &Path) -> anyhow::Result<()> {
    sync_dir(Some(partial));
    sync_dir(Some(&partial.join(IMAGES_DIR)));
    if out.exists() {
        let old = partial.with_extension("old");
        if old.exists() {
            fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        fs::rename(out, &old).with_context(|| format!("moving {} aside", out.display()))?;
        fs::rename(partial, out).with_context(|| format!("renaming into {}", out.display()))?;
        fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    } else {
        fs::rename(partial, out).with_context(|| format!("renaming into {}", out.display()))?;
    }
    sync_dir(out.parent());
    Ok(())
}

/// PNG bytes of any RGB8 image.
pub(crate) fn encode_png_any(img: &image::RgbImage) -> anyhow::Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut buf = Vec::new();
    image::codecs::png::PngEncoder::new(&mut buf)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .context("synth: PNG encoding failed")?;
    Ok(buf)
}
