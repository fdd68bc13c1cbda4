// Browser benchmark of the clinic web app (issue 20), run by bench/web.sh: per-photo latency of
// the demo model and of ResNet18-224 in headless Chromium on the wasm CPU path (?backend=cpu)
// and on WebGPU (?backend=gpu: Chromium's SwiftShader, a CPU emulation of a GPU, here), the
// first page load, and onnxruntime-web on the ONNX export of the same ResNet18 — in one run,
// beside the native CPU figures bench/web.sh measured just before (fq-classify, one thread).
//
// Usage: node tests/web/bench.mjs --site DIR --native-demo demo.json --native-resnet resnet.json
//        --demo-photos list.txt --resnet-photo photo.png --out result.json [--md bench/results.md]
//        [--n 30] [--gpu-n 4] [--gpu-resnet-n 1]
// DIR is served on loopback and holds app/ (apps/fq-web/www), models/resnet18-u4.{fqm,onnx},
// ort/ (onnxruntime-web's dist) and ort.html. Latencies are medians after a warm-up.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const N = Number(args.n || 30);
const GPU_N = Number(args['gpu-n'] || 4);
const GPU_RESNET_N = Number(args['gpu-resnet-n'] || 1);
const WARMUP = 2;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stats = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startServer(port, dir) {
  const proc = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', String(port)], {
    cwd: dir, stdio: ['ignore', 'ignore', 'pipe'],
  });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/app/index.html`)).ok) return proc;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('the local server did not start');
}

// The same flags as tests/web/test.mjs: WebGPU on SwiftShader (Vulkan in software).
const chromiumArgs = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader', '--use-angle=vulkan', '--disable-vulkan-surface',
];
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const port = await freePort();
const base = `http://127.0.0.1:${port}/`;
const server = await startServer(port, args.site);
const browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs });
const chromiumVersion = browser.version();

// Classifies `photos` (file paths) in the page and returns the worker's per-photo latencies
// (decode + preprocess + model) of all but the first `warm` (the warm-up, as natively).
async function classifyAll(page, photos, warm, label) {
  const lat = [];
  for (const [i, file] of photos.entries()) {
    const b64 = fs.readFileSync(file).toString('base64');
    const r = await page.evaluate(async ({ b64, name }) => {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let j = 0; j < bin.length; j++) bytes[j] = bin.charCodeAt(j);
      const r = await window.fq.classify(bytes, name);
      return r.ok ? { ok: true, ms: r.latency_ms, backend: r.backend } : { ok: false, error: r.error };
    }, { b64, name: path.basename(file) });
    if (!r.ok) throw new Error(`${label}: ${file}: ${r.error}`);
    if (i >= warm) lat.push(r.ms);
  }
  return lat;
}

async function appRun(backend) {
  const out = { backend };
  // A fresh context: empty HTTP cache and no service worker, as on a first visit.
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(600000);
  const t0 = Date.now();
  await page.goto(`${base}app/index.html?backend=${backend}`);
  await page.waitForSelector('body[data-ready="1"]');
  await page.click('#demo-model');
  await page.waitForFunction(() => document.getElementById('model-status').textContent.startsWith('Loaded')
    || !document.getElementById('error').hidden);
  out.first_load_ms = Date.now() - t0;
  const status = (await page.textContent('#model-status')).trim();
  if (!status.startsWith('Loaded')) throw new Error(`${backend}: ${await page.textContent('#error')}`);
  out.label = await page.evaluate(() => document.getElementById('model-status').dataset.backend);
  out.reason = await page.textContent('#backend-reason');
  const photos = fs.readFileSync(args['demo-photos'], 'utf8').split('\n').filter(Boolean);
  const n = backend === 'gpu' ? GPU_N : N;
  out.demo = stats(await classifyAll(page, photos.slice(0, n + WARMUP), WARMUP, `${backend} demo`));
  console.log(`[${backend}] first load ${out.first_load_ms} ms (${out.label}); demo median ${out.demo.median.toFixed(2)} ms`);
  const l = await page.evaluate(() => window.fq.loadModelUrl('../models/resnet18-u4.fqm'));
  if (!l.ok) throw new Error(`${backend}: ResNet18: ${l.error}`);
  out.resnet_load_ms = l.load_ms;
  const rn = backend === 'gpu' ? GPU_RESNET_N : N;
  const warm = backend === 'gpu' ? 1 : WARMUP;
  out.resnet = stats(await classifyAll(page, Array(rn + warm).fill(args['resnet-photo']), warm, `${backend} resnet18`));
  console.log(`[${backend}] ResNet18 load ${l.load_ms.toFixed(0)} ms; median ${out.resnet.median.toFixed(1)} ms`);
  await context.close();
  return out;
}

async function ortRun() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(600000);
  await page.goto(`${base}ort.html`);
  const r = await page.evaluate(async ({ n, warm }) => window.ortBench(n, warm), { n: N, warm: WARMUP });
  await context.close();
  if (!r.ok) throw new Error(`onnxruntime-web: ${r.error}`);
  const out = { version: r.version, load_ms: r.load_ms, resnet: stats(r.ms), threads: r.threads };
  console.log(`[ort] onnxruntime-web ${r.version}: load ${r.load_ms.toFixed(0)} ms; median ${out.resnet.median.toFixed(1)} ms`);
  return out;
}

const result = { chromium: chromiumVersion, date: new Date().toISOString() };
// --only cpu: the wasm CPU path alone (a quick check while tuning a kernel; no results.md).
const only = args.only || 'all';
try {
  result.cpu = await appRun('cpu');
  if (only === 'all') {
    result.gpu = await appRun('gpu').catch((e) => ({ error: e.message }));
    result.ort = await ortRun().catch((e) => ({ error: e.message }));
  }
} finally {
  await browser.close();
  server.kill();
}

// Native CPU, one thread, same files, measured by bench/web.sh just before this script.
const nativeStats = (file) => {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  const xs = j.photos.map((p) => p.latency_ms.total);
  return stats(xs.slice(WARMUP));
};
result.native_demo = nativeStats(args['native-demo']);
result.native_resnet = nativeStats(args['native-resnet']);
fs.writeFileSync(args.out, JSON.stringify(result, null, 2));

if (args.md && only === 'all') {
  const cpuInfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (cpuInfo.match(/^model name\s*:\s*(.*)$/m) || [])[1] || 'unknown CPU';
  const flags = ((cpuInfo.match(/^flags\s*:\s*(.*)$/m) || [])[1] || '').split(' ');
  const simd = ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8'].filter((f) => flags.includes(f));
  const f = (x, d = 1) => (x == null ? '–' : x.toFixed(d));
  const cell = (s, d = 1) => (s && s.median != null ? `${f(s.median, d)} (${f(s.min, d)}–${f(s.max, d)}, n=${s.n})` : '–');
  const g = result.gpu.error ? null : result.gpu;
  const ratio = result.cpu.resnet.median / result.native_resnet.median;
  const md = [
    '## Browser (headless Chromium)',
    '',
    `Generated by \`bench/web.sh\` (\`tests/web/bench.mjs\`), ${result.date.slice(0, 16).replace('T', ' ')} UTC. ` +
      `Chromium ${chromiumVersion} headless on ${model} (${os.cpus().length} cores shared with other jobs; ` +
      `flags: ${simd.join(', ')}). Median per photo after ${WARMUP} warm-up photos, (min–max, n), ms. ` +
      'In the page: the worker\'s time for one photo (PNG decode + preprocess + model), one thread, ' +
      `${result.cpu.label}. Native: \`RAYON_NUM_THREADS=1 fq-classify --backend cpu\` on the same files in the same run ` +
      '(its total per photo, decode included). **WebGPU here is Chromium\'s SwiftShader, a CPU emulation of a GPU ' +
      '(no GPU on this machine): its figures say the WebGPU path works, not how fast a GPU is.**',
    '',
    '| model | wasm CPU (page) | WebGPU, SwiftShader (page) | native CPU, 1 thread | onnxruntime-web (wasm, 1 thread) | wasm ÷ native |',
    '|---|---|---|---|---|---|',
    `| demo U4 (64×64) | ${cell(result.cpu.demo, 2)} | ${g ? cell(g.demo, 0) : '–'} | ${cell(result.native_demo, 2)} | – | ` +
      `${(result.cpu.demo.median / result.native_demo.median).toFixed(2)}× |`,
    `| ResNet18-224 U4 (random weights) | ${cell(result.cpu.resnet)} | ${g ? cell(g.resnet, 0) : '–'} | ${cell(result.native_resnet)} | ` +
      `${result.ort.error ? '–' : `${cell(result.ort.resnet)} (session.run only)`} | ${ratio.toFixed(2)}× |`,
    '',
    `First load (fresh browser context, local server; navigation → demo model loaded: wasm, model${g ? ', shaders' : ''}): ` +
      `wasm CPU ${result.cpu.first_load_ms} ms${g ? `, WebGPU ${g.first_load_ms} ms` : ''}. ` +
      `ResNet18 model load in the page: ${f(result.cpu.resnet_load_ms, 0)} ms (CPU)${g ? `, ${f(g.resnet_load_ms, 0)} ms (WebGPU)` : ''}` +
      `${result.ort.error ? '' : `; onnxruntime-web ${result.ort.version} session creation ${f(result.ort.load_ms, 0)} ms`}.`,
    '',
    'Targets: demo photo ≤ 100 ms on wasm CPU → ' +
      `${f(result.cpu.demo.median, 2)} ms (${result.cpu.demo.median <= 100 ? 'met' : 'NOT met'}); ` +
      `ResNet18-224 wasm CPU within 3× of native 1 thread → ${ratio.toFixed(2)}× (${ratio <= 3 ? 'met' : 'NOT met'}); ` +
      `first load ≤ 3 s → ${result.cpu.first_load_ms} ms CPU${g ? `, ${g.first_load_ms} ms WebGPU` : ''} ` +
      `(${Math.max(result.cpu.first_load_ms, g ? g.first_load_ms : 0) <= 3000 ? 'met' : 'NOT met'}).`,
    result.gpu.error ? `\nWebGPU run failed: ${result.gpu.error}` : '',
    result.ort.error ? `\nonnxruntime-web run failed: ${result.ort.error}` : '',
    '',
    'onnxruntime-web runs the ONNX export of the same packed model (`fq-compress` ONNX writer: int8 codes, ' +
      '`DequantizeLinear` per channel, f32 activations) on a prepared input tensor, so its figure excludes ' +
      'the PNG decode and preprocessing the page\'s figure includes.',
    '',
  ].filter((l, i, all) => !(l === '' && all[i - 1] === '')).join('\n');
  let text = fs.existsSync(args.md) ? fs.readFileSync(args.md, 'utf8') : '';
  const start = text.indexOf('## Browser (headless Chromium)');
  if (start >= 0) {
    const next = text.indexOf('\n## ', start + 1);
    // `md` ends in one newline: a blank line before the next section.
    text = text.slice(0, start) + md + (next >= 0 ? `\n${text.slice(next + 1)}` : '');
  } else {
    text = `${text.trimEnd()}\n\n${md}`;
  }
  fs.writeFileSync(`${args.md}.tmp`, text);
  fs.renameSync(`${args.md}.tmp`, args.md);
  console.log(`bench: wrote the browser section of ${args.md}`);
}
