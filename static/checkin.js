// The door scanner. Online, every scan asks the server, which admits a ticket
// exactly once. Offline, the page checks the code's Ed25519 signature with the
// event's public key, refuses tickets it knows to be revoked or already in,
// admits the rest and queues them in IndexedDB; back online it uploads the
// queue (each scan's scan_id makes the upload safe to repeat) and the server
// reports tickets that two offline gates both let in. Each queued scan keeps
// the device it was made by and goes up under that device's token, also after
// the phone forgot it or the organiser revoked it. A service worker
// (checkin-sw.js) keeps the page itself, so that it opens again offline.
'use strict';

(function () {
  const TOKEN_KEY = 'nts.checkin.token';
  const STATE_KEY = 'nts.checkin.state';
  const CLOCK_KEY = 'nts.checkin.clock';
  const SIGNED_DOMAIN = 'nts-ticket:v1:';
  const SAME_CODE_PAUSE_MS = 3000;
  const REFRESH_MS = 15000;
  const SYNC_MS = 5000;
  const UPLOAD_BATCH = 100;

  const $ = (id) => document.getElementById(id);
  let token = localStorage.getItem(TOKEN_KEY) || '';
  let gate = null; // GET /api/v1/checkin, kept for offline use
  let publicKey = null; // CryptoKey
  let revoked = new Set();
  let admitted = new Set();
  let queued = 0;
  let online = navigator.onLine;
  let lastCode = '';
  let lastCodeAt = 0;
  let busy = false;
  let setupScanning = false;
  let uploadNote = ''; // what the last upload found, until the next scan
  // The server's clock minus this phone's (from the Date of its answers), so
  // that offline scans carry the server's time even where the phone's is off.
  let clockOffset = Number(localStorage.getItem(CLOCK_KEY)) || 0;

  // ---------- server ----------

  class Unreachable extends Error {}

  // `as`: the device token to call with (the current device's by default).
  async function call(method, path, body, as = token) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: {
          Accept: 'application/json',
          Authorization: `Bearer ${as}`,
          ...(body ? { 'Content-Type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      throw new Unreachable('the server cannot be reached');
    }
    if (res.status >= 500) throw new Unreachable(`the server answered ${res.status}`);
    learnClock(res.headers.get('Date'));
    let json = null;
    try {
      json = await res.json();
    } catch (e) {
      /* no body */
    }
    return { status: res.status, json: json || {} };
  }

  function learnClock(date) {
    const server = Date.parse(date || '');
    if (Number.isNaN(server)) return;
    const offset = server - Date.now();
    // The header is in whole seconds: only a phone clock off by more is corrected.
    clockOffset = Math.abs(offset) > 2000 ? offset : 0;
    localStorage.setItem(CLOCK_KEY, String(clockOffset));
  }

  // ---------- offline store (IndexedDB) ----------

  let dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const req = indexedDB.open('nts-checkin', 1);
        req.onupgradeneeded = () => req.result.createObjectStore('queue', { keyPath: 'scan_id' });
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return dbPromise;
  }

  async function store(mode, fn) {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction('queue', mode);
      const req = fn(tx.objectStore('queue'));
      tx.oncomplete = () => resolve(req && req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  const queueAdd = (scan) => store('readwrite', (s) => s.put(scan));
  const queueAll = () => store('readonly', (s) => s.getAll());
  const queueRemove = (ids) => store('readwrite', (s) => {
    for (const id of ids) s.delete(id);
  });
  // Scans queued by an older page carry no device: they are the current device's.
  async function queueClaim() {
    const untagged = (await queueAll()).filter((s) => !s.token);
    if (!token || !gate || !untagged.length) return;
    await store('readwrite', (s) => {
      for (const scan of untagged) s.put({ ...scan, token, device_id: gate.device_id });
    });
  }

  // ---------- signatures ----------

  function base64url(text) {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function uuidBytes(uuid) {
    const hex = uuid.replace(/-/g, '');
    return Uint8Array.from(hex.match(/../g), (b) => parseInt(b, 16));
  }

  const TICKET = /^[A-Za-z0-9_-]{24}$/;

  // {ticket, signature} or {ticket} for a bare code, or null for anything else.
  function parseCode(raw) {
    const code = raw.trim();
    const dot = code.indexOf('.');
    if (dot < 0) return TICKET.test(code) ? { ticket: code, code } : null;
    const ticket = code.slice(0, dot);
    const sig = code.slice(dot + 1);
    if (!TICKET.test(ticket) || !/^[A-Za-z0-9_-]{86}$/.test(sig)) return null;
    return { ticket, signature: base64url(sig), code };
  }

  async function verifies(parsed) {
    const enc = new TextEncoder();
    const message = new Uint8Array([...enc.encode(SIGNED_DOMAIN), ...uuidBytes(gate.event_id), ...enc.encode(parsed.ticket)]);
    try {
      return await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, parsed.signature, message);
    } catch (e) {
      return false;
    }
  }

  // ---------- display ----------

  let resultTimer = null;
  function show(verdict, title, who, detail) {
    const el = $('result');
    el.dataset.verdict = verdict;
    $('verdict').textContent = title;
    $('who').textContent = who || '';
    $('detail').textContent = detail || '';
    clearTimeout(resultTimer);
    if (verdict !== 'busy') {
      resultTimer = setTimeout(() => show('idle', 'Ready', '', 'Point the camera at a ticket\'s QR code.'), 8000);
    }
  }

  function time(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function showCounts() {
    $('count-in').textContent = gate ? String(gate.checked_in) : '–';
    $('count-sold').textContent = gate ? String(gate.sold) : '–';
  }

  function showNet() {
    const el = $('net');
    const pending = (queued ? ` — ${queued} ${queued === 1 ? 'scan' : 'scans'} to upload` : '') + uploadNote;
    if (!gate) {
      el.dataset.state = 'starting';
      el.textContent = token ? 'Connecting…' : `Not set up${pending}`;
    } else if (online) {
      el.dataset.state = 'online';
      el.textContent = `Online${pending}`;
    } else {
      el.dataset.state = 'offline';
      el.textContent = `OFFLINE — checking signatures on this device${pending}`;
    }
  }

  function shortTicket(t) {
    return `Ticket …${t.slice(-6)}`;
  }

  // ---------- gate state ----------

  async function adoptState(state) {
    publicKey = await crypto.subtle.importKey('raw', base64url(state.public_key), { name: 'Ed25519' }, false, ['verify']);
    gate = state;
    revoked = new Set(state.revoked);
    admitted = new Set(state.admitted);
    for (const s of await queueAll()) admitted.add(s.ticket);
    $('event-name').textContent = state.event;
    $('device-name').textContent = `${state.device} · ${state.venue}`;
    showCounts();
  }

  async function refresh() {
    if (!token) return false;
    let r;
    try {
      r = await call('GET', '/api/v1/checkin');
    } catch (e) {
      setOnline(false);
      return Boolean(gate);
    }
    if (r.status === 401 || r.status === 403) {
      forget(r.json.code === 'device_revoked'
        ? 'The organiser revoked this device. Its offline scans are still uploaded. Ask the organiser for a new token.'
        : 'This device token is not accepted (revoked or mistyped). Ask the organiser for a new one.');
      return false;
    }
    if (r.status !== 200) return Boolean(gate);
    setOnline(true);
    localStorage.setItem(STATE_KEY, JSON.stringify(r.json));
    await adoptState(r.json);
    await queueClaim();
    showNet();
    return true;
  }

  function setOnline(value) {
    const was = online;
    online = value && navigator.onLine;
    showNet();
    if (online && !was) sync();
  }

  // ---------- scanning ----------

  async function check(raw, fromCamera) {
    const text = raw.trim();
    if (!text || !gate) return;
    if (fromCamera) {
      const now = Date.now();
      const same = text === lastCode && now - lastCodeAt < SAME_CODE_PAUSE_MS;
      lastCode = text;
      lastCodeAt = now;
      if (same) return;
    }
    if (text.startsWith('ntsdev_')) return; // a device token, not a ticket
    if (busy) return;
    busy = true;
    uploadNote = '';
    try {
      const scanId = crypto.randomUUID();
      if (online) {
        try {
          await checkOnline(text, scanId);
          return;
        } catch (e) {
          if (!(e instanceof Unreachable)) throw e;
          setOnline(false);
        }
      }
      await checkOffline(text, scanId);
    } finally {
      busy = false;
    }
  }

  async function checkOnline(code, scanId) {
    show('busy', 'Checking…');
    const r = await call('POST', '/api/v1/checkins', { code, scan_id: scanId });
    const b = r.json;
    if (r.status === 201) {
      admitted.add(b.ticket);
      gate.checked_in += 1;
      showCounts();
      show('ok', 'IN', `${b.name} · ${b.ticket_type}`, `Checked in ${time(b.checked_in_at)}`);
    } else if (r.status === 409 && b.code === 'already_checked_in') {
      const a = b.checked_in || {};
      show('bad', 'ALREADY IN', `${b.name} · ${b.ticket_type}`, `Checked in ${time(a.checked_in_at)} at ${a.device}`);
    } else if (r.status === 409 && b.code === 'ticket_not_valid') {
      show('bad', 'NOT VALID', `${b.name} · ${b.ticket_type}`, 'This ticket was refunded or canceled.');
    } else if (r.status === 422 && b.code === 'other_event') {
      show('bad', 'WRONG EVENT', '', 'This ticket is for another event.');
    } else if (r.status === 404) {
      show('bad', 'UNKNOWN', '', 'No ticket has this code — it may be forged or mistyped.');
    } else if (r.status === 401 || r.status === 403) {
      forget('This device token is no longer accepted. Ask the organiser for a new one.');
    } else {
      show('warn', 'TRY AGAIN', '', b.message || `The server answered ${r.status}.`);
    }
  }

  async function checkOffline(code, scanId) {
    const parsed = parseCode(code);
    if (!parsed) {
      show('bad', 'UNKNOWN', '', 'This is not an nts ticket code.');
      return;
    }
    if (!parsed.signature) {
      show('warn', 'CANNOT CHECK', shortTicket(parsed.ticket), 'An old code without signature: it can only be checked online.');
      return;
    }
    if (!(await verifies(parsed))) {
      show('bad', 'NOT VALID', '', 'The code\'s signature is wrong: forged, or for another event.');
      return;
    }
    if (revoked.has(parsed.ticket)) {
      show('bad', 'NOT VALID', shortTicket(parsed.ticket), 'This ticket was refunded or canceled.');
      return;
    }
    if (admitted.has(parsed.ticket)) {
      show('bad', 'ALREADY IN', shortTicket(parsed.ticket), 'This ticket was already checked in.');
      return;
    }
    await queueAdd({
      scan_id: scanId,
      code: parsed.code,
      ticket: parsed.ticket,
      scanned_at: new Date(Date.now() + clockOffset).toISOString(),
      // The device this scan is made by: it is uploaded under this token, whatever the phone is set up as then.
      device_id: gate.device_id,
      token,
    });
    admitted.add(parsed.ticket);
    queued += 1;
    gate.checked_in += 1;
    showCounts();
    showNet();
    show('ok', 'IN', shortTicket(parsed.ticket), 'Offline: valid signature. Saved, uploaded when back online.');
  }

  // ---------- upload ----------

  // Outcomes of scans the server will never record: they leave the queue.
  const REFUSED = new Set(['device_revoked', 'scanned_at_out_of_range']);

  let syncing = false;
  async function sync() {
    if (syncing || !online) return;
    syncing = true;
    try {
      const pending = await queueAll();
      queued = pending.length;
      showNet();
      // Each scan goes up under the device that made it.
      const byDevice = new Map();
      for (const s of pending) {
        const as = s.token || token;
        if (!as) continue;
        if (!byDevice.has(as)) byDevice.set(as, []);
        byDevice.get(as).push(s);
      }
      let doubled = 0;
      let refused = 0;
      for (const [as, scans] of byDevice) {
        for (let i = 0; i < scans.length; i += UPLOAD_BATCH) {
          const batch = scans.slice(i, i + UPLOAD_BATCH);
          let r;
          try {
            r = await call('POST', '/api/v1/checkins/offline', {
              scans: batch.map((s) => ({ code: s.code, scan_id: s.scan_id, scanned_at: s.scanned_at })),
            }, as);
          } catch (e) {
            setOnline(false);
            return;
          }
          if (r.status === 401 || r.status === 403) {
            // This device's token is unknown, or was revoked too long ago: its scans can never be uploaded.
            const lost = scans.slice(i);
            refused += lost.length;
            await queueRemove(lost.map((s) => s.scan_id));
            queued -= lost.length;
            if (as === token) forget('This device token is no longer accepted; its offline scans could not be uploaded.');
            break;
          }
          if (r.status !== 200) return;
          doubled += r.json.results.filter((x) => x.outcome === 'double_entry' || x.outcome === 'invalid_entry').length;
          refused += r.json.results.filter((x) => REFUSED.has(x.outcome)).length;
          await queueRemove(batch.map((s) => s.scan_id));
          queued -= batch.length;
          showNet();
        }
      }
      queued = (await queueAll()).length;
      const notes = [];
      if (doubled) notes.push(`${doubled} double ${doubled === 1 ? 'entry' : 'entries'} reported to the organiser`);
      if (refused) notes.push(`${refused} ${refused === 1 ? 'scan' : 'scans'} refused (device revoked or clock wrong)`);
      if (notes.length) uploadNote = ` — offline scans uploaded; ${notes.join('; ')}`;
      showNet();
      if (token) await refresh();
    } finally {
      syncing = false;
    }
  }

  // ---------- camera ----------

  let stream = null;
  let detector = null;

  async function startCamera() {
    if (stream) return;
    const note = $('camera-note');
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      note.textContent = 'No camera access here (the page must be served over HTTPS). Type codes below.';
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    } catch (e) {
      note.textContent = `The camera could not be started (${e.name}). Type codes below.`;
      return;
    }
    if ('BarcodeDetector' in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes('qr_code')) detector = new window.BarcodeDetector({ formats: ['qr_code'] });
      } catch (e) {
        detector = null;
      }
    }
    const video = $('video');
    video.hidden = false;
    video.srcObject = stream;
    await video.play().catch(() => {});
    $('camera-start').hidden = true;
    note.textContent = '';
    scanLoop();
  }

  async function decodeFrame(video) {
    if (detector) {
      const found = await detector.detect(video);
      return found.length ? found[0].rawValue : null;
    }
    if (!window.jsQR || !video.videoWidth) return null;
    const scale = Math.min(1, 800 / video.videoWidth);
    const w = Math.round(video.videoWidth * scale);
    const hgt = Math.round(video.videoHeight * scale);
    const canvas = $('frame');
    canvas.width = w;
    canvas.height = hgt;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, hgt);
    const found = window.jsQR(ctx.getImageData(0, 0, w, hgt).data, w, hgt, { inversionAttempts: 'attemptBoth' });
    return found ? found.data : null;
  }

  async function scanLoop() {
    const video = $('video');
    while (stream) {
      let text = null;
      if (video.readyState >= 2) {
        try {
          text = await decodeFrame(video);
        } catch (e) {
          text = null;
        }
      }
      if (text) {
        if (setupScanning) {
          const t = tokenFrom(text);
          if (t) {
            setupScanning = false;
            useToken(t);
          }
        } else {
          await check(text, true);
        }
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  // ---------- setup ----------

  function tokenFrom(text) {
    const m = /(?:^|#token=)(ntsdev_[A-Za-z0-9_-]+)/.exec(text.trim());
    return m ? m[1] : null;
  }

  async function useToken(candidate) {
    token = candidate;
    const ok = await refresh();
    if (!gate || !ok) {
      if (token) {
        // Unreachable with a token never accepted: keep asking.
        $('setup-error').textContent = 'The server cannot be reached to check this token.';
        token = '';
      }
      return;
    }
    localStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    $('setup').hidden = true;
    $('scanner').hidden = false;
    $('setup-error').textContent = '';
    show('idle', 'Ready', '', 'Point the camera at a ticket\'s QR code.');
    startCamera();
    sync();
  }

  function forget(reason) {
    token = '';
    gate = null;
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(STATE_KEY);
    $('scanner').hidden = true;
    $('setup').hidden = false;
    $('setup-error').textContent = reason || '';
    $('event-name').textContent = 'Door check-in';
    $('device-name').textContent = '';
    showCounts();
    showNet();
  }

  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = tokenFrom($('token').value) || '';
    if (!t) {
      $('setup-error').textContent = 'That is not a device token (they start with ntsdev_).';
      return;
    }
    useToken(t);
  });
  $('token-scan').addEventListener('click', () => {
    setupScanning = true;
    $('scanner').hidden = false;
    startCamera();
  });
  $('camera-start').addEventListener('click', startCamera);
  $('manual-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('manual-code');
    const code = input.value;
    input.value = '';
    check(code, false);
  });
  // The scans this device made offline stay queued under its own token:
  // uploaded first if the network is there, else whenever it is back.
  $('forget').addEventListener('click', async () => {
    if (online) await sync();
    const left = (await queueAll()).filter((s) => (s.token || token) === token).length;
    const them = left === 1 ? 'it' : 'them';
    if (left && !window.confirm(`${left} offline ${left === 1 ? 'scan is' : 'scans are'} not uploaded yet; this phone `
      + `keeps ${them} and uploads ${them} as this device's once online. Forget this device?`)) return;
    await queueClaim();
    forget('');
  });
  window.addEventListener('online', () => setOnline(true));
  window.addEventListener('offline', () => setOnline(false));
  setInterval(() => {
    if (online) refresh();
  }, REFRESH_MS);
  setInterval(() => {
    if (queued && navigator.onLine) {
      online = true;
      sync();
    }
  }, SYNC_MS);

  // ---------- start ----------

  if ('serviceWorker' in navigator) {
    // Keeps this page, so that it opens again without the network (checkin-sw.js).
    navigator.serviceWorker.register('/checkin-sw.js', { scope: '/checkin' }).catch(() => {});
  }

  (async function start() {
    const fromFragment = tokenFrom(location.hash.slice(1) ? `#${location.hash.slice(1)}` : '');
    if (fromFragment) {
      // The token never stays in the address bar or history.
      history.replaceState(null, '', location.pathname);
      token = fromFragment;
    }
    queued = (await queueAll().catch(() => [])).length;
    if (!token) {
      forget('');
      return;
    }
    $('setup').hidden = true;
    const saved = localStorage.getItem(STATE_KEY);
    if (saved) {
      try {
        await adoptState(JSON.parse(saved));
      } catch (e) {
        localStorage.removeItem(STATE_KEY);
      }
    }
    await useToken(token);
    if (!gate) forget('');
  })();
})();
