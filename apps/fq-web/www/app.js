// The page: picks a model and a photo, sends their bytes to the worker (worker.js, where the
// WebAssembly runtime runs) and shows what comes back. Nothing is uploaded: every byte stays in
// this tab. A failure shows a message and keeps the previous result on screen.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// `auto` (the default): WebGPU on a real GPU, else the CPU (never a software rasteriser), as
// the native apps choose; `?backend=gpu` forces WebGPU (SwiftShader included), `cpu` the CPU.
let backendWanted = params.get('backend') || 'auto';

let worker = null;
let nextId = 1;
const pending = new Map();
let lastModel = null; // {bytes, name}: reloaded into a fresh worker after a trap

function startWorker() {
  worker = new Worker('worker.js', { type: 'module' });
  worker.onmessage = (ev) => {
    if (ev.data.id === 0) {
      // Not an answer: the worker reports something that escaped its handlers.
      console.error(ev.data.error);
      showError(ev.data.error);
      return;
    }
    const p = pending.get(ev.data.id);
    if (!p) return;
    pending.delete(ev.data.id);
    p(ev.data);
  };
  worker.onerror = (ev) => {
    for (const [, p] of pending) p({ ok: false, error: `the worker failed: ${ev.message}`, fatal: true });
    pending.clear();
  };
}

function call(msg, transfer) {
  return new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    worker.postMessage({ ...msg, id }, transfer || []);
  });
}

async function callSafe(msg) {
  const r = await call(msg);
  if (!r.ok && r.fatal) {
    // The WebAssembly instance trapped: never reuse it. Start over and reload the model.
    worker.terminate();
    startWorker();
    if (lastModel) await call({ op: 'load', bytes: lastModel.bytes.slice(), name: lastModel.name, backend: backendWanted });
  }
  return r;
}

function showError(msg) {
  $('error').textContent = msg;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function pct(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function showCard(card) {
  $('card-section').hidden = false;
  const bits = Number.isFinite(card.avg_bits) ? card.avg_bits.toFixed(2) : '?';
  let s = `${card.method}, ${bits} bits per weight on average, ${card.classes.length} classes, ` +
    `${card.input[0]}×${card.input[1]} input.`;
  if (card.overall_acc != null) {
    s += ` Test accuracy ${pct(card.overall_acc)}, worst group ${pct(card.worst_acc)}, gap ${pct(card.gap)}.`;
  }
  $('card-summary').textContent = s;
  const body = $('card-groups').querySelector('tbody');
  body.replaceChildren();
  for (const g of card.groups_test || []) {
    const tr = document.createElement('tr');
    for (const v of [g.group, String(g.count), g.accuracy == null ? '—' : pct(g.accuracy)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $('notice').textContent = card.notice;
}

async function loadModel(bytes, name) {
  $('model-status').textContent = `Loading ${name}…`;
  const r = await callSafe({ op: 'load', bytes: bytes.slice(), name, backend: backendWanted });
  if (!r.ok) {
    showError(r.error);
    $('model-status').textContent = lastModel ? `Still using ${lastModel.name}.` : 'No model loaded.';
    return r;
  }
  clearError();
  lastModel = { bytes, name };
  $('model-status').textContent = `Loaded ${name} (${r.card.classes.length} classes) on ${r.backend} in ${r.load_ms.toFixed(0)} ms.`;
  $('model-status').title = r.reason;
  $('backend-reason').textContent = r.reason;
  $('model-status').dataset.backend = r.backend;
  $('photo').disabled = false;
  showCard(r.card);
  return r;
}

async function fetchBytes(url) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
  return new Uint8Array(await resp.arrayBuffer());
}

async function loadModelUrl(url) {
  let bytes;
  try {
    bytes = await fetchBytes(url);
  } catch (e) {
    showError(`cannot fetch the model ${url}: ${e.message}`);
    return { ok: false, error: e.message };
  }
  return loadModel(bytes, url.split('/').pop());
}

async function classify(bytes, name) {
  if (!lastModel) {
    showError('Load a model first.');
    return { ok: false, error: 'no model' };
  }
  let r = await callSafe({ op: 'classify', bytes, name, k: 3 });
  if (!r.ok && /^GPU run failed/.test(r.error) && backendWanted === 'auto') {
    // The GPU refused a command: the adapter-or-CPU rule says run on the CPU instead.
    backendWanted = 'cpu';
    const l = await call({ op: 'load', bytes: lastModel.bytes.slice(), name: lastModel.name, backend: 'cpu' });
    if (l.ok) {
      $('backend-reason').textContent = `the GPU failed (${r.error.split('\n')[0]}); running on the CPU`;
      r = await callSafe({ op: 'classify', bytes, name, k: 3 });
    }
  }
  if (!r.ok) {
    showError(r.error);
    return r;
  }
  clearError();
  const res = r.result;
  $('result').hidden = false;
  $('top-label').textContent = res.label;
  $('top-prob').textContent = pct(res.top[0][2]);
  const body = $('top').querySelector('tbody');
  body.replaceChildren();
  for (const [, label, p] of res.top) {
    const tr = document.createElement('tr');
    for (const v of [label, pct(p)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $('backend').textContent = r.backend;
  $('latency').textContent = r.latency_ms.toFixed(1);
  $('photo-name').textContent = name;
  return r;
}

$('demo-model').addEventListener('click', () => loadModelUrl('models/demo.fqm'));
$('model-file').addEventListener('change', async (ev) => {
  const f = ev.target.files[0];
  if (f) await loadModel(new Uint8Array(await f.arrayBuffer()), f.name);
});
$('model-url-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  loadModelUrl($('model-url').value || 'models/demo.fqm');
});
$('photo').addEventListener('change', async (ev) => {
  const f = ev.target.files[0];
  if (!f) return;
  const bytes = new Uint8Array(await f.arrayBuffer());
  const url = URL.createObjectURL(f);
  $('preview').src = url;
  $('preview').hidden = false;
  // Cleared so that choosing the same photo again classifies it again.
  ev.target.value = '';
  await classify(bytes, f.name);
});

startWorker();
// Offline after the first visit: the service worker caches the app, the runtime and the demo.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('sw.js').catch((e) => console.warn(`offline mode unavailable: ${e.message}`));
}
// For the browser test (tests/web/): the same calls the buttons make.
window.fq = { loadModelUrl, loadModel, classify, fetchBytes, roundtrip: () => call({ op: 'roundtrip' }) };
document.body.dataset.ready = '1';
