//! FairQuant in a browser tab (issue 20): the device runtime (`fq-runtime` without default
//! features: no files, threads or plotting; with its `webgpu` feature on wasm32) compiled to
//! WebAssembly, behind a small wasm-bindgen API that the static page in `www/` calls.
//!
//! Why a separate crate: the runtime stays free of any JavaScript glue, so native apps link
//! exactly the same code; this crate only turns bytes in into JSON out. Everything runs in the
//! page's own memory: no photo, model or result is sent anywhere.
//!
//! The JSON documents are built by [`report`] (plain Rust, tested natively); the
//! `#[wasm_bindgen]` layer here only converts errors into JavaScript exceptions and futures
//! into promises (WebGPU cannot be waited for synchronously in a browser).

pub mod report;

use std::rc::Rc;

use fq_runtime::{BackendChoice, Classifier};
use wasm_bindgen::prelude::*;

/// A model loaded in the page: verified and compiled once, then classifies photos.
#[wasm_bindgen]
pub struct WebModel {
    inner: Rc<Classifier>,
    reason: String,
}

#[wasm_bindgen]
impl WebModel {
    /// Verifies and compiles `.fqm` bytes (from the bundled demo, a file picker or a URL) on the
    /// CPU path, synchronously. A damaged file is an exception whose message names what is wrong.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], name: &str) -> Result<WebModel, JsError> {
        report::load(bytes, name)
            .map(|inner| WebModel {
                inner: Rc::new(inner),
                reason: "cpu asked for".into(),
            })
            .map_err(|e| JsError::new(&e))
    }

    /// Loads onto the backend `backend` asks for (`auto`, `cpu` or `gpu`): a promise of a
    /// `WebModel`. `auto` takes WebGPU on a real GPU and the CPU otherwise (never a software
    /// rasteriser), as the native apps do; `gpu` takes any WebGPU adapter and falls back to the
    /// CPU, with the reason, when there is none.
    pub async fn load(bytes: Vec<u8>, name: String, backend: String) -> Result<WebModel, JsError> {
        let choice = BackendChoice::parse(&backend).map_err(|e| JsError::new(&e.to_string()))?;
        let (inner, reason) = report::load_async(&bytes, &name, choice)
            .await
            .map_err(|e| JsError::new(&e))?;
        Ok(WebModel {
            inner: Rc::new(inner),
            reason,
        })
    }

    /// The model card as JSON: classes, groups, method, bits and per-group test figures.
    pub fn card(&self) -> String {
        report::card_json(&self.inner)
    }

    /// The backend this model runs on, as the page shows it.
    pub fn backend(&self) -> String {
        report::backend_label(self.inner.backend())
    }

    /// Why that backend (`auto: only a software GPU adapter …`).
    pub fn reason(&self) -> String {
        self.reason.clone()
    }

    /// Classifies encoded image bytes (PNG, JPEG, WebP); `name` identifies them in errors.
    /// A promise of JSON: the class, every class's probability and the top `k` diagnoses.
    /// One at a time per model (the page's worker awaits each before the next).
    pub fn classify(&self, bytes: Vec<u8>, name: String, k: usize) -> js_sys::Promise {
        let model = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            report::classify_json_async(&model, &bytes, &name, k)
                .await
                .map(|json| JsValue::from_str(&json))
                .map_err(|e| JsError::new(&e).into())
        })
    }
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
impl WebModel {
    /// A promise of the GPU's answer to a four-float copy-and-read-back (`[1,2,3,4]`), or of
    /// `null` on the CPU: the page's check that WebGPU answers before it trusts it.
    pub fn gpu_roundtrip(&self) -> js_sys::Promise {
        let model = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            match model.backend() {
                fq_runtime::Backend::Wgpu(dev) => fq_runtime::gpu::roundtrip(dev)
                    .await
                    .map(|v| JsValue::from_str(&format!("{v:?}")))
                    .map_err(|e| JsError::new(&e.to_string()).into()),
                _ => Ok(JsValue::NULL),
            }
        })
    }
}

/// A promise of `fq_runtime::gpu::compile_and_roundtrip(kernel)`: which WGSL kernel a browser's
/// WebGPU fails to compile in time (a diagnostic for new browsers and drivers).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
pub fn gpu_compile_probe(kernel: String) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        fq_runtime::gpu::compile_and_roundtrip(&kernel)
            .await
            .map(|v| JsValue::from_str(&format!("{v:?}")))
            .map_err(|e| JsError::new(&e.to_string()).into())
    })
}

/// The crate's version, so the page can show which build it runs.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
