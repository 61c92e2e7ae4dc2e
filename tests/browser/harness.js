// Shared plumbing for the browser walks: start a real nts server on a free
// port with its own database, drive headless Chromium through playwright-core,
// call the API directly where a test needs setup, and record what the page sends.
'use strict';

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { chromium } = require('playwright-core');

const REPO = path.resolve(__dirname, '..', '..');
const ARTIFACTS = path.join(__dirname, 'artifacts');
const BIN = process.env.NTS_BIN
  || path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'debug', 'nts');
// Where PostgreSQL is: DATABASE_URL if set (tests/setup.sh may set one with a
// password), else the trust-auth server on 127.0.0.1:5432. Each server under
// test gets its own database on it.
const PG_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

function databaseUrl(db) {
  const url = new URL(PG_URL);
  url.pathname = `/${db}`;
  return url.href;
}
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// What the pages need: everything from the page's origin, plus blob: images
// (the QR codes are fetched with the bearer header and shown from a blob: URL).
const PAGE_CSP = "default-src 'self'; img-src 'self' blob:";

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

function dropDatabase(db) {
  const r = spawnSync('psql', [databaseUrl('postgres'), '-v', 'ON_ERROR_STOP=1', '-qc',
    `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`], { encoding: 'utf8' });
  if (r.status !== 0) console.error(`could not drop ${db}: ${r.stderr || r.error}`);
}

// ---------- Stripe emulator ----------

const STRIPE_DIR = path.join(REPO, 'tests', 'stripe');
const STRIPE_WEBHOOK_SECRET = 'whsec_nts_browser_test';

// localstripe and the strict proxy in front of it (tests/stripe/emulator.py),
// as the Rust Stripe tests start them; installs localstripe first if missing.
// nts talks to the proxy; the pages load the emulated Stripe.js from, and
// talk to, localstripe itself (as browsers talk to js.stripe.com and api.stripe.com).
async function startStripeEmulator(name) {
  const setup = spawnSync('bash', [path.join(STRIPE_DIR, 'setup.sh')], { encoding: 'utf8' });
  if (setup.status !== 0) {
    throw new Error(`tests/stripe/setup.sh failed (localstripe is needed):\n${setup.stdout}${setup.stderr}`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const logPath = path.join(ARTIFACTS, `${name}.stripe.log`);
  const log = fs.openSync(logPath, 'w');
  const child = spawn(path.join(STRIPE_DIR, '.venv', 'bin', 'python'), [path.join(STRIPE_DIR, 'emulator.py')], {
    cwd: STRIPE_DIR,
    stdio: ['pipe', 'pipe', log],
  });
  fs.closeSync(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  const ports = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the Stripe emulator did not start; see ${logPath}`)), 30000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(out.slice(0, nl)));
        } catch (e) {
          reject(new Error(`the Stripe emulator said ${JSON.stringify(out)}; see ${logPath}`));
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Stripe emulator exited (${code}); see ${logPath}`));
    });
  });
  const stripeUrl = `http://127.0.0.1:${ports.stripe}`;
  const proxyUrl = `http://127.0.0.1:${ports.proxy}`;
  const getJson = async (url) => {
    const res = await fetch(url, { headers: { Authorization: 'Bearer sk_test_browser' } });
    assert.equal(res.status, 200, `GET ${url}: HTTP ${res.status}`);
    return res.json();
  };
  return {
    stripeUrl,
    proxyUrl,
    webhookSecret: STRIPE_WEBHOOK_SECRET,
    // The calls nts made to "Stripe" (through the proxy): method, path, key, body, status.
    calls: () => getJson(`${proxyUrl}/_proxy/calls`),
    // The PaymentIntents Stripe holds for an order (nts names its orders in their metadata).
    async paymentIntentsOf(orderId) {
      const all = await getJson(`${stripeUrl}/v1/payment_intents?limit=100`);
      return all.data.filter((pi) => pi.metadata && pi.metadata.nts_order_id === orderId);
    },
    async registerWebhook(id, url) {
      const res = await fetch(`${stripeUrl}/_config/webhooks/${id}`, {
        method: 'POST',
        body: new URLSearchParams({ url, secret: STRIPE_WEBHOOK_SECRET }),
      });
      assert.equal(res.status, 200, 'register the webhook');
    },
    async stop() {
      child.stdin.end();
      child.kill('SIGTERM');
    },
  };
}

// Start `nts` with its own database. Options: holdSeconds, demo (default false), env;
// stripe: an emulator from startStripeEmulator, to take payments through it
// (nts's webhook is registered with it; NTS_PUBLIC_URL is the server's address).
async function startServer(name, opts = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`nts binary not found at ${BIN}: build it with \`cargo build --bin nts\` or set NTS_BIN`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const port = await freePort();
  const db = `nts_browser_${crypto.randomBytes(6).toString('hex')}`;
  const adminToken = crypto.randomBytes(24).toString('hex'); // 48 chars
  const base = `http://127.0.0.1:${port}`;
  const logPath = path.join(ARTIFACTS, `${name}.server.log`);
  const log = fs.openSync(logPath, 'w');
  // Settings come only from here, not from NTS_* variables of the caller's shell.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NTS_')));
  const env = {
    ...inherited,
    NTS_ADDRESS: `127.0.0.1:${port}`,
    DATABASE_URL: databaseUrl(db),
    NTS_ADMIN_TOKEN: adminToken,
    NTS_PAYMENTS: 'simulated',
    NTS_DEMO: opts.demo ? 'true' : 'false',
    // The pages under test, whichever checkout the binary was built from.
    NTS_STATIC_DIR: path.join(REPO, 'static'),
    RUST_LOG: process.env.RUST_LOG || 'info',
    ...(opts.holdSeconds ? { NTS_HOLD_SECONDS: String(opts.holdSeconds) } : {}),
    ...(opts.stripe ? {
      NTS_PAYMENTS: 'stripe',
      NTS_STRIPE_SECRET_KEY: 'sk_test_nts',
      NTS_TICKET_KEY: 'browser-test-ticket-key-0123456789abcdef',
      NTS_STRIPE_PUBLISHABLE_KEY: 'pk_test_nts',
      NTS_STRIPE_WEBHOOK_SECRET: opts.stripe.webhookSecret,
      NTS_STRIPE_API_BASE: opts.stripe.proxyUrl,
      NTS_STRIPE_JS_URL: `${opts.stripe.stripeUrl}/js.stripe.com/v3/`,
      NTS_PUBLIC_URL: base,
    } : {}),
    ...(opts.env || {}),
  };
  const child = spawn(BIN, [], { cwd: REPO, env, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  running.add(child);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      running.delete(child);
      resolve();
    });
  });

  const server = {
    base,
    adminToken,
    db,
    logPath,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exitPromise;
        clearTimeout(timer);
      }
      dropDatabase(db);
    },
  };

  const deadline = Date.now() + 90000;
  for (;;) {
    if (exited) {
      dropDatabase(db);
      const out = fs.readFileSync(logPath, 'utf8').slice(-3000);
      throw new Error(`nts exited early (${JSON.stringify(exited)}):\n${out}`);
    }
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.status === 200) break;
    } catch (e) {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`nts did not answer /healthz within 90 s; see ${logPath}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (opts.stripe) await opts.stripe.registerWebhook(name, `${base}/api/v1/payments/stripe/webhook`);
  return server;
}

// ---------- direct API calls (test setup) ----------

async function call(server, method, urlPath, { token, body, key } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['Idempotency-Key'] = key || crypto.randomUUID();
  const res = await fetch(server.base + urlPath, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

async function expectStatus(promise, status, what) {
  const r = await promise;
  assert.equal(r.status, status, `${what}: expected HTTP ${status}, got ${r.status} ${r.text.slice(0, 500)}`);
  return r.json;
}

function daysFromNow(days) {
  const d = new Date(Date.now() + days * 86400000);
  d.setUTCSeconds(0, 0);
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

let eventSeq = 0;

async function createEvent(server, overrides = {}) {
  eventSeq += 1;
  const body = {
    name: `Test event ${eventSeq} ${crypto.randomBytes(3).toString('hex')}`,
    venue: 'The Test Hall',
    starts_at: daysFromNow(20 + eventSeq),
    currency: 'EUR',
    ticket_types: [{ name: 'General', price_minor: 1250, capacity: 100, max_per_order: 6 }],
    ...overrides,
  };
  return expectStatus(call(server, 'POST', '/api/v1/admin/events', { token: server.adminToken, body }), 201, 'create event');
}

async function createHold(server, eventId, ticketTypeId, quantity = 1, who = {}) {
  return expectStatus(call(server, 'POST', `/api/v1/events/${eventId}/holds`, {
    body: {
      ticket_type_id: ticketTypeId,
      quantity,
      name: who.name || 'API Buyer',
      email: who.email || 'api.buyer@example.com',
    },
  }), 201, 'create hold');
}

async function checkout(server, hold) {
  return expectStatus(call(server, 'POST', `/api/v1/holds/${hold.id}/checkout`, { token: hold.secret, body: {} }),
    201, 'checkout');
}

// Hold -> order -> simulated payment succeeded -> order paid.
async function buy(server, eventId, ticketTypeId, quantity = 1, who = {}) {
  const hold = await createHold(server, eventId, ticketTypeId, quantity, who);
  const { order } = await checkout(server, hold);
  let { payment } = order;
  if (!payment || payment.status === 'failed' || payment.status === 'canceled') {
    payment = await expectStatus(call(server, 'POST', `/api/v1/orders/${order.id}/payments`, { token: order.secret, body: {} }),
      201, 'create payment');
  }
  await expectStatus(call(server, 'POST', `/api/v1/payments/simulated/${payment.id}/confirm`, {
    token: order.secret,
    body: { outcome: 'succeeded' },
  }), 200, 'confirm payment');
  const paid = await waitFor(async () => {
    const o = await expectStatus(call(server, 'GET', `/api/v1/orders/${order.id}`, { token: order.secret }), 200, 'get order');
    return o.status === 'paid' ? o : null;
  }, 15000, 'order paid');
  return { ...paid, secret: order.secret };
}

async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// ---------- browser ----------

// `extraArgs`: more Chromium switches (e.g. a fake camera).
async function launchBrowser(extraArgs = []) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install -y chromium\``);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', ...extraArgs],
  });
}

// A fresh context + page that records every request, the secrets the server
// handed out (hold and order secrets from the responses), and page problems
// (uncaught errors, CSP violations).
async function openPage(browser, server, options = {}) {
  const context = await browser.newContext({
    locale: 'en-US',
    timezoneId: 'UTC',
    viewport: { width: 1100, height: 900 },
    acceptDownloads: true,
    ...options,
  });
  const page = await context.newPage();
  const requests = [];
  const secrets = new Set([server.adminToken]);
  const problems = [];

  page.on('request', (req) => {
    requests.push({ method: req.method(), url: req.url(), headers: req.headers(), body: req.postData() });
  });
  // Read the secrets out of the hold and checkout answers (through a route, so
  // the body is still there even though the page navigates away at once).
  await context.route((url) => /^\/api\/v1\/(events\/[^/]+\/holds|holds\/[^/]+\/checkout)$/.test(url.pathname), async (route) => {
    if (route.request().method() !== 'POST') {
      await route.continue();
      return;
    }
    const res = await route.fetch();
    const body = await res.text();
    try {
      const j = JSON.parse(body);
      if (j && j.secret) secrets.add(j.secret);
      if (j && j.order && j.order.secret) secrets.add(j.order.secret);
    } catch (e) {
      /* an error answer */
    }
    await route.fulfill({ response: res, body });
  });
  let cspInjected = false;
  // The pages must work under the Content-Security-Policy the server is to
  // send. Where the server sends none (yet), the documents get this one.
  await context.route((url) => !url.pathname.startsWith('/api/'), async (route) => {
    if (route.request().resourceType() !== 'document') {
      await route.continue();
      return;
    }
    const res = await route.fetch();
    const headers = { ...res.headers() };
    if (!headers['content-security-policy']) {
      headers['content-security-policy'] = PAGE_CSP;
      cspInjected = true;
    }
    delete headers['content-encoding'];
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    await route.fulfill({ status: res.status(), headers, body: await res.body() });
  });

  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) {
      problems.push(`console error: ${text}`);
    }
  });

  return {
    context,
    page,
    requests,
    secrets,
    problems,
    // Secrets must never reach the server in a URL: check each request's URL
    // without its fragment (the fragment is never sent) and its Referer.
    async assertNoSecretsInUrls(extra = []) {
      const all = [...secrets, ...extra].filter(Boolean);
      assert.ok(all.length >= 1);
      for (const r of requests) {
        const sent = r.url.split('#')[0];
        for (const s of all) {
          assert.ok(!sent.includes(s), `secret leaked in request URL ${sent}`);
          assert.ok(!(r.headers.referer || '').includes(s), `secret leaked in Referer of ${sent}`);
        }
      }
      return all;
    },
    get cspInjected() {
      return cspInjected;
    },
    assertNoProblems() {
      assert.deepEqual(problems, [], `the page reported problems:\n${problems.join('\n')}`);
    },
  };
}

async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  try {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  } catch (e) {
    console.error(`screenshot ${name} failed: ${e.message}`);
  }
}

// POST requests the page sent to paths matching `re`.
function posts(requests, re) {
  return requests.filter((r) => r.method === 'POST' && re.test(new URL(r.url).pathname));
}

module.exports = {
  ARTIFACTS,
  startServer,
  startStripeEmulator,
  call,
  expectStatus,
  createEvent,
  createHold,
  checkout,
  buy,
  waitFor,
  daysFromNow,
  launchBrowser,
  openPage,
  screenshot,
  posts,
};
