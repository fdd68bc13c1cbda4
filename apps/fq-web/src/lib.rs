//! FairQuant in a browser tab (issue 20): the device runtime (`fq-runtime` without default
//! features: no files, threads or plotting) compiled to WebAssembly, behind a small
//! wasm-bindgen API that the static page in `www/` calls.
//!
//! Why a separate crate: the runtime stays free of any JavaScript glue, so native apps link
//! exactly the same code; this crate only turns bytes in into JSON out. Everything runs in the
//! page's own memory: no photo, model or result is sent anywhere.
//!
//! The JSON documents are built by [`report`] (plain Rust, tested natively); the
//! `#[wasm_bindgen]` layer here only converts errors into JavaScript exceptions.

pub mod report;

use fq_runtime::Classifier;
use wasm_bindgen::prelude::*;

/// A model loaded in the page: verified and compiled once, then classifies photos.
#[wasm_bindgen]
pub struct WebModel {
    inner: Classifier,
}

#[wasm_bindgen]
impl WebModel {
    /// Verifies and compiles `.fqm` bytes (from the bundled demo, a file picker or a URL) on
    /// the CPU path. A damaged file is an exception whose message names what is wrong.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], name: &str) -> Result<WebModel, JsError> {
        report::load(bytes, name)
            .map(|inner| WebModel { inner })
            .map_err(|e| JsError::new(&e))
    }

    /// The model card as JSON: classes, groups, method, bits and per-group test figures.
    pub fn card(&self) -> String {
        report::card_json(&self.inner)
    }

    /// The backend this model runs on (`cpu` today; the label the page shows).
    pub fn backend(&self) -> String {
        self.inner.backend().label()
    }

    /// Classifies encoded image bytes (PNG, JPEG, WebP); `name` identifies them in errors.
    /// Returns JSON: the class, every class's probability and the top `k` diagnoses.
    pub fn classify(&self, bytes: &[u8], name: &str, k: usize) -> Result<String, JsError> {
        report::classify_json(&self.inner, bytes, name, k).map_err(|e| JsError::new(&e))
    }
}

/// The crate's version, so the page can show which build it runs.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
