//! What the page shows, as JSON built in plain Rust (tested natively, no browser needed): the
//! model card and one photo's diagnoses. Errors are single-line messages for the page; they
//! name the model or photo (its file name) and what is wrong with it.

use fq_runtime::{Backend, BackendChoice, Classifier, Prediction};
use serde::Serialize;

/// Largest `.fqm` accepted (bytes). The demo is ~0.5 MB and ResNet18 at 4 bits ~6 MB; a file
/// far larger is not a model for a tablet, and refusing it early keeps the tab responsive.
pub const MAX_MODEL_BYTES: usize = 256 << 20;
/// Largest photo file accepted (bytes), checked before decoding; the decoder's own limits
/// (`fq_runtime::preprocess::MAX_IMAGE_SIDE`, `MAX_IMAGE_ALLOC`) bound what a small file
/// declaring a huge canvas can cost.
pub const MAX_PHOTO_BYTES: usize = 64 << 20;

/// Verifies and compiles a model on the CPU; the message names the file.
pub fn load(bytes: &[u8], name: &str) -> Result<Classifier, String> {
    check_model_size(bytes, name)?;
    Classifier::from_bytes(bytes).map_err(|e| format!("{name}: not a usable .fqm model: {e}"))
}

/// [`load`] onto the backend `choice` selects, without blocking (WebGPU in a browser); also
/// returns why that backend.
pub async fn load_async(
    bytes: &[u8],
    name: &str,
    choice: BackendChoice,
) -> Result<(Classifier, String), String> {
    check_model_size(bytes, name)?;
    Classifier::from_bytes_async(bytes, choice)
        .await
        .map_err(|e| format!("{name}: not a usable .fqm model: {e}"))
}

fn check_model_size(bytes: &[u8], name: &str) -> Result<(), String> {
    if bytes.is_empty() {
        return Err(format!("{name}: the model file is empty"));
    }
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(format!(
            "{name}: {} MB is larger than the {} MB a model may have",
            bytes.len() >> 20,
            MAX_MODEL_BYTES >> 20
        ));
    }
    Ok(())
}

/// The backend as the page shows it, for people. The CPU names its micro-kernel and threads
/// (`wasm CPU, simd128 kernel, 1 thread`), so a build without SIMD128 is visible at a glance;
/// WebGPU names the adapter, and says when the browser gave an unnamed software fallback
/// adapter (headless Chromium's SwiftShader reports an empty name and a CPU device type).
pub fn backend_label(backend: &Backend) -> String {
    match backend {
        Backend::Cpu => {
            let threads = rayon::current_num_threads();
            format!(
                "{} CPU, {} kernel, {threads} thread{}",
                if cfg!(target_arch = "wasm32") {
                    "wasm"
                } else {
                    "native"
                },
                fq_runtime::exec::kernel::path().name(),
                if threads == 1 { "" } else { "s" }
            )
        }
        #[allow(unreachable_patterns)]
        _ => gpu_label(backend),
    }
}

#[cfg(target_arch = "wasm32")]
fn gpu_label(backend: &Backend) -> String {
    match backend {
        Backend::Wgpu(dev) => adapter_label(dev.name(), dev.is_software()),
        Backend::Cpu => unreachable!("handled by backend_label"),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn gpu_label(backend: &Backend) -> String {
    backend.label()
}

/// `WebGPU (name)`, `WebGPU (name, software)` or, for an adapter without a name,
/// `WebGPU (software fallback adapter, e.g. SwiftShader)` / `WebGPU (unnamed adapter)`.
pub fn adapter_label(name: &str, software: bool) -> String {
    match (name.trim(), software) {
        ("", true) => "WebGPU (software fallback adapter, e.g. SwiftShader)".into(),
        ("", false) => "WebGPU (unnamed adapter)".into(),
        (n, true) => format!("WebGPU ({n}, software)"),
        (n, false) => format!("WebGPU ({n})"),
    }
}

/// The model card the page shows under the result.
#[derive(Serialize)]
pub struct Card<'a> {
    pub classes: &'a [String],
    pub groups: &'a [String],
    pub method: &'a str,
    pub avg_bits: f64,
    pub input: [u32; 2],
    /// Per-group accuracy on the compressor's test split; absent if its run had none.
    pub groups_test: Option<Vec<GroupFigure<'a>>>,
    pub overall_acc: Option<f64>,
    pub worst_acc: Option<f64>,
    pub gap: Option<f64>,
    pub notice: &'static str,
}

#[derive(Serialize)]
pub struct GroupFigure<'a> {
    pub group: &'a str,
    pub count: usize,
    pub accuracy: Option<f64>,
}

/// Shown with every result, as the model card says.
pub const NOTICE: &str = "Decision support, not a diagnosis: a clinician makes the diagnosis.";

pub fn card(c: &Classifier) -> Card<'_> {
    let s = c.summary();
    let m = s.test_metrics.as_ref();
    let p = c.preprocess();
    Card {
        classes: c.classes(),
        groups: c.groups(),
        method: &s.method_label,
        avg_bits: s.avg_bits,
        input: [p.width, p.height],
        groups_test: m.map(|m| {
            m.group_names
                .iter()
                .zip(&m.group_count)
                .zip(&m.group_accuracy)
                .map(|((g, &count), &accuracy)| GroupFigure {
                    group: g,
                    count,
                    accuracy,
                })
                .collect()
        }),
        overall_acc: m.map(|m| m.overall_acc),
        worst_acc: m.map(|m| m.worst_acc),
        gap: m.map(|m| m.gap),
        notice: NOTICE,
    }
}

pub fn card_json(c: &Classifier) -> String {
    serde_json::to_string(&card(c)).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// One photo's result.
#[derive(Serialize, Debug)]
pub struct Diagnosis {
    pub class: usize,
    pub label: String,
    pub probabilities: Vec<f32>,
    /// The `k` most probable classes, most probable first: `(index, label, probability)`.
    pub top: Vec<(usize, String, f32)>,
}

pub fn diagnosis(c: &Classifier, p: &Prediction, k: usize) -> Diagnosis {
    let name = |i: usize| c.classes().get(i).cloned().unwrap_or_else(|| i.to_string());
    Diagnosis {
        class: p.class,
        label: name(p.class),
        probabilities: p.probabilities.clone(),
        top: top_k(&p.probabilities, k)
            .into_iter()
            .map(|i| (i, name(i), p.probabilities[i]))
            .collect(),
    }
}

/// Indices of the `k` (at least one) largest probabilities, largest first; a stable sort, so
/// ties keep class order as the argmax does.
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    order.truncate(k.max(1));
    order
}

/// Decodes and classifies one photo; the message names it.
pub fn classify(c: &Classifier, bytes: &[u8], name: &str, k: usize) -> Result<Diagnosis, String> {
    check_photo_size(bytes, name)?;
    let p = c.classify_bytes(bytes, name).map_err(|e| e.to_string())?;
    Ok(diagnosis(c, &p, k))
}

/// [`classify_json`] without blocking (on WebGPU the read-back is awaited).
pub async fn classify_json_async(
    c: &Classifier,
    bytes: &[u8],
    name: &str,
    k: usize,
) -> Result<String, String> {
    check_photo_size(bytes, name)?;
    let p = c
        .classify_bytes_async(bytes, name)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::to_string(&diagnosis(c, &p, k)).map_err(|e| e.to_string())
}

fn check_photo_size(bytes: &[u8], name: &str) -> Result<(), String> {
    if bytes.is_empty() {
        return Err(format!("{name}: the photo file is empty"));
    }
    if bytes.len() > MAX_PHOTO_BYTES {
        return Err(format!(
            "{name}: {} MB is larger than the {} MB a photo may have",
            bytes.len() >> 20,
            MAX_PHOTO_BYTES >> 20
        ));
    }
    Ok(())
}

pub fn classify_json(c: &Classifier, bytes: &[u8], name: &str, k: usize) -> Result<String, String> {
    let d = classify(c, bytes, name, k)?;
    serde_json::to_string(&d).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_labels_name_the_kernel_and_the_adapter() {
        let cpu = backend_label(&Backend::Cpu);
        let kernel = fq_runtime::exec::kernel::path().name();
        assert!(
            cpu.starts_with("native CPU, ") && cpu.contains(&format!("{kernel} kernel")),
            "{cpu}"
        );
        assert_eq!(
            adapter_label("", true),
            "WebGPU (software fallback adapter, e.g. SwiftShader)"
        );
        assert_eq!(adapter_label(" ", false), "WebGPU (unnamed adapter)");
        assert_eq!(adapter_label("Apple M2", false), "WebGPU (Apple M2)");
        assert_eq!(
            adapter_label("llvmpipe", true),
            "WebGPU (llvmpipe, software)"
        );
    }

    #[test]
    fn damaged_or_empty_models_are_messages_naming_the_file() {
        let e = load(b"", "empty.fqm").err().unwrap();
        assert!(e.starts_with("empty.fqm: ") && e.contains("empty"), "{e}");
        let e = load(b"FQM-not-really-a-model", "bad.fqm").err().unwrap();
        assert!(e.starts_with("bad.fqm: not a usable .fqm model"), "{e}");
        let huge = vec![0u8; MAX_MODEL_BYTES + 1];
        let e = load(&huge, "huge.fqm").err().unwrap();
        assert!(e.contains("larger than"), "{e}");
    }

    #[test]
    fn the_top_list_is_sorted_and_ties_keep_class_order() {
        let p = Prediction::from_logits(vec![1.0, 3.0, 3.0, 0.0]);
        assert_eq!(top_k(&p.probabilities, 10), vec![1, 2, 0, 3]);
        assert_eq!(top_k(&p.probabilities, 2), vec![1, 2]);
        assert_eq!(top_k(&p.probabilities, 0), vec![1]);
        assert_eq!(p.class, top_k(&p.probabilities, 1)[0]);
    }
}
