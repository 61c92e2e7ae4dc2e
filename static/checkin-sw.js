// The door scanner's service worker (registered by checkin.js for the scope
// /checkin): it keeps the scanner page, its script, style and QR decoder, so
// that a phone whose browser reloads the page with the network gone still
// opens a scanner. Each is fetched from the network first (so a new version
// arrives as soon as it is served) and the copy kept here answers when the
// network does not (or answers 5xx), or not in time. The gate's state (the event's public key,
// the revoked and admitted tickets) is kept by the page in localStorage and
// the queue of offline scans in IndexedDB; no API answer is kept here.
'use strict';

const CACHE = 'nts-checkin-v1';
const SHELL = ['/checkin.html', '/checkin.js', '/checkin.css', '/vendor/jsqr/jsQR.js', '/favicon.svg'];
// A door cannot wait for a network that is nearly gone.
const NETWORK_WAIT_MS = 4000;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((path) => new Request(path, { cache: 'reload' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith('nts-checkin-') && n !== CACHE).map((n) => caches.delete(n)));
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(networkFirst(req, url.pathname));
});

async function networkFirst(req, path) {
  const cache = await caches.open(CACHE);
  const network = fetch(req).then(async (res) => {
    if (res.ok) await cache.put(path, res.clone());
    return res;
  });
  network.catch(() => {}); // answered from the cache below
  const late = new Promise((resolve) => {
    setTimeout(resolve, NETWORK_WAIT_MS, null);
  });
  try {
    const res = await Promise.race([network, late]);
    if (res && res.status < 500) return res;
  } catch (e) {
    /* offline */
  }
  return (await cache.match(path)) || network;
}
