// Browser test of the clinic web app (issue 20), driven by playwright-core on the system
// Chromium. Serves apps/fq-web/www with `python3 -m http.server` on loopback, loads the demo
// model through the page's button, classifies the demo's test images (the first through the
// photo picker, the rest through the same code path via window.fq.classify), and compares every
// prediction with the native CPU path's (`fq-classify --json`, written by run.sh).
//
// Usage: node test.mjs --www DIR --native native.json --backend cpu|gpu [--screenshot PNG]
//        [--out result.json] [--tol 1e-4] [--limit N] [--offline 1] [--badinput 1]
// Exits non-zero on any mismatch, on a network request after the model loaded, or when the
// page fails. Prints one line per check and `N passed, N failed` at the end.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const www = args.www;
const native = JSON.parse(fs.readFileSync(args.native, 'utf8'));
const backend = args.backend || 'cpu';
const tol = Number(args.tol || '1e-4');

let passed = 0;
let failed = 0;
function check(ok, what) {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} [${backend}] ${what}`);
}

// A PNG whose header declares a width x height canvas (valid signature, IHDR and CRC), with no
// pixel data: what a hostile or broken upload looks like to the decoder.
function hugePng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', Buffer.alloc(16)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startServer(port) {
  const proc = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', String(port)], {
    cwd: www, stdio: ['ignore', 'ignore', 'pipe'],
  });
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/index.html`);
      if (r.ok) return proc;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('the local server did not start');
}

function stopServer(proc) {
  return new Promise((resolve) => {
    proc.once('exit', resolve);
    proc.kill();
  });
}

const chromiumArgs = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--use-angle=vulkan',
  '--disable-vulkan-surface',
];

const port = await freePort();
const base = `http://127.0.0.1:${port}/`;
let server = await startServer(port);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: chromiumArgs,
});
const context = await browser.newContext({ viewport: { width: 900, height: 1100 } });
const requests = [];
let phase = 'load';
context.on('request', (r) => requests.push({ phase, url: r.url() }));
const page = await context.newPage();
const consoleLines = [];
page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));

let exitCode = 0;
try {
  const t0 = Date.now();
  await page.goto(`${base}index.html?backend=${backend}`);
  await page.waitForSelector('body[data-ready="1"]');
  await page.click('#demo-model');
  await page.waitForFunction(() => document.getElementById('model-status').textContent.startsWith('Loaded')
    || !document.getElementById('error').hidden, null, { timeout: 60000 });
  const status = await page.textContent('#model-status');
  const firstLoadMs = Date.now() - t0;
  check(status.startsWith('Loaded'), `demo model loads through the button (${status.trim()}; page + model in ${firstLoadMs} ms)`);
  const usedBackend = await page.evaluate(() => document.getElementById('model-status').dataset.backend);
  console.log(`backend on the page: ${usedBackend}`);
  // The build must carry the hand-written SIMD128 kernel (web-build.sh's +simd128), and the
  // page must say which path runs.
  if (backend === 'cpu') check(/^wasm CPU, simd128 kernel, 1 thread$/.test(usedBackend), `CPU label names the simd128 kernel (${usedBackend})`);
  else check(/^WebGPU \(/.test(usedBackend), `GPU label names the adapter (${usedBackend})`);
  phase = 'after-load';

  // The first photo through the picker, as a person would.
  // --limit N: the first N photos only (SwiftShader's WebGPU takes ~2 s a photo).
  const photos = args.limit ? native.photos.slice(0, Number(args.limit)) : native.photos;
  const first = photos[0];
  await page.setInputFiles('#photo', first.file);
  const firstName = path.basename(first.file);
  await page.waitForFunction((n) => document.getElementById('photo-name').textContent === n, firstName);

  // Every photo (the first again) through the page's classify, the code the picker calls.
  const results = [];
  const chunk = 40;
  for (let i = 0; i < photos.length; i += chunk) {
    const batch = photos.slice(i, i + chunk).map((p) => ({
      name: path.basename(p.file), b64: fs.readFileSync(p.file).toString('base64'),
    }));
    const out = await page.evaluate(async (batch) => {
      const res = [];
      for (const { name, b64 } of batch) {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let j = 0; j < bin.length; j++) bytes[j] = bin.charCodeAt(j);
        const r = await window.fq.classify(bytes, name);
        res.push(r.ok ? { ok: true, result: r.result, latency_ms: r.latency_ms, backend: r.backend } : { ok: false, error: r.error });
      }
      return res;
    }, batch);
    results.push(...out);
  }

  // Compare with the native CPU path.
  let sameClass = 0;
  let maxDiff = 0;
  let errors = 0;
  const classes = native.model.classes;
  photos.forEach((p, i) => {
    const w = results[i];
    if (!w.ok) {
      errors++;
      console.log(`  ${p.file}: ${w.error}`);
      return;
    }
    const nativeProb = classes.map((c) => p.top.find((d) => d.class === c).probability);
    const nativeClass = nativeProb.indexOf(Math.max(...nativeProb));
    if (nativeClass === w.result.class) sameClass++;
    else console.log(`  ${p.file}: native ${classes[nativeClass]}, web ${w.result.label}`);
    nativeProb.forEach((q, c) => { maxDiff = Math.max(maxDiff, Math.abs(q - w.result.probabilities[c])); });
  });
  check(errors === 0, `${photos.length} photos classified in the page (${errors} errors)`);
  check(sameClass === photos.length, `same class as native CPU for ${sameClass}/${photos.length} photos`);
  check(maxDiff <= tol, `probabilities within ${tol} of native (max |diff| ${maxDiff.toExponential(2)})`);
  const lat = results.filter((r) => r.ok).map((r) => r.latency_ms).sort((a, b) => a - b);
  const median = lat[Math.floor(lat.length / 2)];
  console.log(`latency per photo in the page (decode + preprocess + model, in the worker): median ${median.toFixed(2)} ms, ` +
    `min ${lat[0].toFixed(2)}, max ${lat[lat.length - 1].toFixed(2)} (${lat.length} photos)`);
  const nat = photos.map((p) => p.latency_ms.total).sort((a, b) => a - b);
  const nativeMedian = nat[Math.floor(nat.length / 2)];
  console.log(`native CPU (fq-classify, ${native.backend}) in the same run: median ${nativeMedian.toFixed(2)} ms per photo`);

  // blob: and data: URLs are the page's own memory (the photo preview), not the network.
  const leaked = requests.filter((r) => r.phase !== 'load' && !/^(blob|data):/.test(r.url));
  check(leaked.length === 0, `no network request after the model loaded (${leaked.length}: ${leaked.slice(0, 3).map((r) => r.url).join(', ')})`);

  if (args.screenshot) {
    await page.setInputFiles('#photo', first.file);
    await page.waitForFunction((n) => document.getElementById('photo-name').textContent === n, firstName);
    await page.screenshot({ path: args.screenshot, fullPage: true });
    console.log(`screenshot: ${args.screenshot}`);
  }
  // Bad input: a clear message naming the file, the previous result kept, the tab alive.
  if (args.badinput) {
    const shown = async () => page.evaluate(() => ({
      error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
      photo: document.getElementById('photo-name').textContent,
      resultShown: !document.getElementById('result').hidden,
      status: document.getElementById('model-status').textContent,
    }));
    const before = await shown();
    const model = fs.readFileSync(path.join(www, 'models/demo.fqm'));
    const cases = [
      ['damaged.fqm', 'model', model.subarray(0, Math.floor(model.length / 2))],
      ['flipped.fqm', 'model', Buffer.from(model).fill(0x55, 100, 200)],
      ['notes.txt', 'photo', Buffer.from('not an image at all')],
      ['huge.png', 'photo', hugePng(100000, 100000)],
    ];
    for (const [name, kind, bytes] of cases) {
      const t = Date.now();
      await page.evaluate(async ({ name, kind, b64 }) => {
        const bin = atob(b64);
        const u = new Uint8Array(bin.length);
        for (let j = 0; j < bin.length; j++) u[j] = bin.charCodeAt(j);
        return kind === 'model' ? window.fq.loadModel(u, name) : window.fq.classify(u, name);
      }, { name, kind, b64: bytes.toString('base64') });
      const now = await shown();
      check(now.error.includes(name) && now.resultShown && now.photo === before.photo
        && (kind === 'photo' || now.status.startsWith('Still using')),
      `bad ${kind} ${name}: message "${now.error.slice(0, 140)}", previous result kept (${Date.now() - t} ms)`);
    }
    const again = await page.evaluate(async (b64) => {
      const bin = atob(b64);
      const u = new Uint8Array(bin.length);
      for (let j = 0; j < bin.length; j++) u[j] = bin.charCodeAt(j);
      return window.fq.classify(u, 'again.png');
    }, fs.readFileSync(first.file).toString('base64'));
    check(again.ok && again.result.class === results[0].result.class, 'after the bad input the model still classifies');
  }

  // Offline: once the service worker has cached the app, the runtime and the demo model, the
  // page must reload, load the model and classify with the server stopped.
  if (args.offline) {
    const swReady = await page.evaluate(() => Promise.race([
      navigator.serviceWorker.ready.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 20000)),
    ]));
    check(swReady, 'the service worker is active (offline cache filled)');
    // The first visit's page is not controlled yet; a reload puts it under the worker.
    await page.reload();
    await page.waitForSelector('body[data-ready="1"]');
    await stopServer(server);
    server = null;
    let down = false;
    try { await fetch(`${base}index.html`); } catch { down = true; }
    check(down, 'the local server is stopped');
    await page.reload();
    await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
    await page.click('#demo-model');
    await page.waitForFunction(() => document.getElementById('model-status').textContent.startsWith('Loaded')
      || !document.getElementById('error').hidden, null, { timeout: 60000 });
    const offStatus = await page.textContent('#model-status');
    check(offStatus.startsWith('Loaded'), `offline: the demo model loads from the cache (${offStatus.trim()})`);
    const r = await page.evaluate(async (b64) => {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let j = 0; j < bin.length; j++) bytes[j] = bin.charCodeAt(j);
      return window.fq.classify(bytes, 'offline.png');
    }, fs.readFileSync(first.file).toString('base64'));
    check(r.ok && r.result.class === results[0].result.class,
      `offline: a photo classifies as online (${r.ok ? r.result.label : r.error})`);
  }

  if (args.out) {
    fs.writeFileSync(args.out, JSON.stringify({
      backend, page_backend: usedBackend, first_load_ms: firstLoadMs, median_ms: median, latencies_ms: lat,
      native_backend: native.backend, native_median_ms: nativeMedian,
      photos: photos.length, same_class: sameClass, max_prob_diff: maxDiff,
    }, null, 1));
  }
} catch (e) {
  check(false, `the page failed: ${e.stack || e}`);
} finally {
  if (failed) console.log(consoleLines.join('\n'));
  await browser.close();
  if (server) await stopServer(server);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : exitCode);
