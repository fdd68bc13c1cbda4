//! What `fq-classify` reports: the result types (serialised as the `--json` document) and their
//! text rendering.

use std::path::Path;

use serde::Serialize;

/// One diagnosis of a photo.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnosis {
    pub class: String,
    pub probability: f64,
}

/// Where the time for one photo went, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Reading and decoding the file, EXIF orientation included.
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub total: f64,
}

/// The outcome for one photo: its top-k diagnoses, or why it could not be classified.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PhotoResult {
    Classified {
        file: String,
        top: Vec<Diagnosis>,
        /// The model's raw outputs, one per class in the model's order (for comparing runs across
        /// machines and kernels: the aarch64 parity check reads them).
        logits: Vec<f32>,
        latency_ms: Latency,
    },
    Failed {
        file: String,
        error: String,
    },
}

/// The model as the report names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    pub path: String,
    pub method: String,
    pub method_label: String,
    pub avg_bits: f64,
    pub classes: Vec<String>,
}

/// The CPU micro-kernels this build chose on this machine (`fq_runtime::exec::kernel`), so a
/// latency figure can be read against the code that produced it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kernels {
    /// The CPU architecture of the build (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// The f32 GEMM micro-kernel: `avx512f`, `avx2+fma`, `neon`, `simd128` or `portable`.
    pub f32: String,
    /// The integer micro-kernel this CPU uses (`avx512-vnni`, `avx-vnni`, `avx2`,
    /// `neon-sdot`, `neon-smlal`, `simd128`, `portable`) with `--activations int8`; reported either way, so a device's capability is known.
    pub int8: String,
    /// The CPU path's activations in this run: `f32`, `int8-static` (the file's calibrated scales,
    /// what `auto` picks for a file that has them) or `int8-dynamic`.
    pub activations: String,
}

impl Kernels {
    /// The paths detected on this CPU, and the run's activations.
    pub fn detect(activations: fq_runtime::Activations) -> Kernels {
        use fq_runtime::exec::kernel;
        Kernels {
            arch: std::env::consts::ARCH.to_string(),
            f32: kernel::path().name().to_string(),
            int8: kernel::int8_path().name().to_string(),
            activations: activations.name().to_string(),
        }
    }

    /// One line for the text header.
    pub fn text(&self) -> String {
        format!(
            "cpu kernels: f32 {} ({}); int8 {}; activations {}",
            self.f32, self.arch, self.int8, self.activations
        )
    }
}

/// The whole run: the `--json` document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub model: ModelInfo,
    /// What runs the model: `CPU (2 threads)` or `wgpu (<adapter>)`.
    pub backend: String,
    /// Why that backend: `auto: only a software GPU adapter (llvmpipe …), …`.
    pub backend_reason: String,
    /// The CPU micro-kernels of this machine.
    pub kernels: Kernels,
    pub load_ms: f64,
    pub photos: Vec<PhotoResult>,
    pub classified: usize,
    pub failed: usize,
}

/// Display form of a path.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

/// The header printed once, before the photos.
pub fn header_text(model: &ModelInfo, backend: &str, kernels: &Kernels, load_ms: f64) -> String {
    format!(
        "model: {} ({}, {:.2} bits/weight, {} classes), loaded in {:.1} ms\nbackend: {backend}\n{}\n",
        model.path,
        model.method_label,
        model.avg_bits,
        model.classes.len(),
        load_ms,
        kernels.text()
    )
}

/// One classified photo as text (errors go to stderr, see [`error_line`]).
pub fn photo_text(result: &PhotoResult) -> String {
    match result {
        PhotoResult::Classified {
            file,
            top,
            latency_ms: l,
            ..
        } => {
            let width = top
                .iter()
                .map(|d| d.class.chars().count())
                .max()
                .unwrap_or(0);
            let mut s = format!("\n{file}\n");
            for (i, d) in top.iter().enumerate() {
                s += &format!(
                    "  {}. {:<width$}  {:5.1}%\n",
                    i + 1,
                    d.class,
                    100.0 * d.probability
                );
            }
            s += &format!(
                "  latency {:.1} ms (decode {:.1}, preprocess {:.1}, inference {:.1})\n",
                l.total, l.decode, l.preprocess, l.inference
            );
            s
        }
        PhotoResult::Failed { .. } => String::new(),
    }
}

/// The stderr line for a photo that could not be classified.
pub fn error_line(result: &PhotoResult) -> Option<String> {
    match result {
        PhotoResult::Failed { error, .. } => Some(format!("error: {error}")),
        PhotoResult::Classified { .. } => None,
    }
}

/// The closing summary line.
pub fn summary_text(report: &Report) -> String {
    let classified: Vec<f64> = report
        .photos
        .iter()
        .filter_map(|p| match p {
            PhotoResult::Classified { latency_ms, .. } => Some(latency_ms.total),
            PhotoResult::Failed { .. } => None,
        })
        .collect();
    let mean = classified.iter().sum::<f64>() / classified.len().max(1) as f64;
    format!(
        "\n{} photo(s) classified, {} failed; mean latency {:.1} ms per photo on {}\n",
        report.classified, report.failed, mean, report.backend
    )
}

/// The `k` most probable classes, most probable first (ties: lower class index first).
pub fn top_k(probabilities: &[f32], classes: &[String], k: usize) -> Vec<Diagnosis> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|i| Diagnosis {
            class: classes
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}")),
            probability: f64::from(probabilities[i]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_probability_and_breaks_ties_by_index() {
        let classes: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let top = top_k(&[0.1, 0.4, 0.1, 0.4], &classes, 3);
        let names: Vec<&str> = top.iter().map(|d| d.class.as_str()).collect();
        assert_eq!(names, ["b", "d", "a"]);
        assert_eq!(top[0].probability, f64::from(0.4f32));
        assert_eq!(top_k(&[1.0], &classes[..1], 5).len(), 1);
    }

    #[test]
    fn json_has_a_top_list_or_an_error_per_photo() {
        let ok = PhotoResult::Classified {
            file: "a.jpg".into(),
            top: vec![Diagnosis {
                class: "nevus".into(),
                probability: 0.75,
            }],
            logits: vec![1.5],
            latency_ms: Latency::default(),
        };
        let bad = PhotoResult::Failed {
            file: "b.jpg".into(),
            error: "b.jpg: cannot decode image".into(),
        };
        let v = serde_json::to_value([&ok, &bad]).unwrap();
        assert_eq!(v[0]["top"][0]["class"], "nevus");
        assert_eq!(v[0]["top"][0]["probability"], 0.75);
        assert_eq!(v[0]["logits"][0], 1.5);
        assert_eq!(v[1]["error"], "b.jpg: cannot decode image");
        assert!(v[1].get("top").is_none());
        assert!(
            photo_text(&ok).contains("1. nevus   75.0%"),
            "{}",
            photo_text(&ok)
        );
        assert_eq!(
            error_line(&bad).unwrap(),
            "error: b.jpg: cannot decode image"
        );
        assert_eq!(error_line(&ok), None);
    }
}
