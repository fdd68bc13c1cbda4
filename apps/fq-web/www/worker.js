// The model runs here, off the page's main thread, so a large photo or model never freezes the
// tab. Messages in: {id, op: 'load', bytes, name, backend} | {id, op: 'classify', bytes, name, k}.
// Messages out: {id, ok: true, ...} or {id, ok: false, error, fatal}. `fatal` means the
// WebAssembly instance trapped (a Rust panic) and the page must start a fresh worker.
import init, { WebModel, version } from './pkg/fq_web.js';

const ready = init();

// Anything that escapes a handler (a trap inside a WebGPU callback, say) is reported to the
// page, which shows it, instead of vanishing inside the worker.
self.addEventListener('unhandledrejection', (ev) => {
  postMessage({ id: 0, ok: false, error: `worker: ${ev.reason && ev.reason.message ? ev.reason.message : ev.reason}`, fatal: true });
});
self.addEventListener('error', (ev) => {
  postMessage({ id: 0, ok: false, error: `worker: ${ev.message}`, fatal: true });
});
let model = null;

function fail(id, e) {
  // A JsError from Rust is a plain Error with the message we built; a trap is a
  // WebAssembly.RuntimeError, after which this instance must not be used again.
  const fatal = e instanceof WebAssembly.RuntimeError;
  postMessage({ id, ok: false, error: String(e && e.message ? e.message : e), fatal });
}

// One message at a time, in order: a model has one set of GPU buffers.
let queue = Promise.resolve();
onmessage = (ev) => {
  queue = queue.then(() => handle(ev.data));
};

async function handle(data) {
  const { id, op } = data;
  try {
    await ready;
    if (op === 'load') {
      const t0 = performance.now();
      const m = await WebModel.load(data.bytes, data.name, data.backend || 'auto');
      if (model) model.free();
      model = m;
      postMessage({
        id, ok: true, card: JSON.parse(model.card()), backend: model.backend(), reason: model.reason(),
        load_ms: performance.now() - t0, version: version(),
      });
    } else if (op === 'roundtrip') {
      if (!model) throw new Error('load a model first');
      postMessage({ id, ok: true, value: await model.gpu_roundtrip() });
    } else if (op === 'classify') {
      if (!model) throw new Error('load a model first');
      const t0 = performance.now();
      const json = await model.classify(data.bytes, data.name, data.k || 3);
      const ms = performance.now() - t0;
      postMessage({ id, ok: true, result: JSON.parse(json), latency_ms: ms, backend: model.backend() });
    } else {
      throw new Error(`unknown operation ${op}`);
    }
  } catch (e) {
    fail(id, e);
  }
}
