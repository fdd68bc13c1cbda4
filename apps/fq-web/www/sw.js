// Service worker: makes the app work offline after the first visit (issue 20). It precaches
// the app shell, the WebAssembly runtime and the demo model, then answers every same-origin GET
// network-first (so a rebuilt app is picked up while online) and from the cache when the
// network is gone. It never sends anything anywhere else: photos never go through fetch at all.
const CACHE = 'fq-web-v2';
const SHELL = [
  './', 'index.html', 'app.js', 'worker.js', 'style.css', 'icon.svg', 'icon-192.png', 'icon-512.png',
  'manifest.webmanifest',
  'pkg/fq_web.js', 'pkg/fq_web_bg.wasm', 'models/demo.fqm',
];

self.addEventListener('install', (ev) => {
  ev.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // One by one: a missing demo model must not keep the rest from being cached.
    await Promise.all(SHELL.map((u) => cache.add(u).catch(() => {})));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (ev) => {
  const req = ev.request;
  if (req.method !== 'GET' || new URL(req.url).origin !== location.origin) return;
  ev.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const resp = await fetch(req);
      if (resp.ok) await cache.put(req, resp.clone());
      return resp;
    } catch (e) {
      const hit = await cache.match(req, { ignoreSearch: true });
      if (hit) return hit;
      throw e;
    }
  })());
});
