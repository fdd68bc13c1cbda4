//! The classification loop: one loaded engine, every photo decoded and classified in turn, a
//! failure on one photo recorded without stopping the others.

use std::path::Path;
use std::time::Instant;

use fq_runtime::preprocess;

use crate::backend::Engine;
use crate::output::{display, top_k, Latency, PhotoResult};

/// Decodes (EXIF orientation applied) and classifies one photo, keeping the `k` best classes.
pub fn classify_photo(engine: &Engine, path: &Path, k: usize) -> PhotoResult {
    let t0 = Instant::now();
    let img = match preprocess::decode_path(path) {
        Ok(img) => img,
        Err(e) => {
            return PhotoResult::Failed {
                file: display(path),
                error: e.to_string(),
            }
        }
    };
    let decode = t0.elapsed().as_secs_f64() * 1e3;
    let (prediction, timing) = match engine.classify_image(&img) {
        Ok(r) => r,
        Err(e) => {
            return PhotoResult::Failed {
                file: display(path),
                error: e.to_string(),
            }
        }
    };
    PhotoResult::Classified {
        file: display(path),
        top: top_k(&prediction.probabilities, engine.classifier().classes(), k),
        logits: prediction.logits,
        latency_ms: Latency {
            decode,
            preprocess: timing.preprocess_ms,
            inference: timing.inference_ms,
            total: t0.elapsed().as_secs_f64() * 1e3,
        },
    }
}
