// Shared helpers for the nts pages: API wrapper, error wording, money and time
// formatting, idempotency keys, busy buttons and the status/error regions.
// Loaded with <script defer> before each page's own script; exposes window.NTS.
'use strict';

(function () {
  // ---------- idempotency keys ----------

  function newKey() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // Fallback for non-secure contexts: RFC 4122 version 4 from getRandomValues.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // One user action (e.g. "reserve these tickets"). Each request step of the
  // action gets its own Idempotency-Key; the keys are kept while the outcome is
  // unknown (network error, 5xx) so that retrying the *same* action (same
  // fingerprint) sends the same keys, and are dropped once the server gave a
  // definite answer, so the next action is a fresh one.
  class Action {
    constructor() {
      this.fingerprint = null;
      this.keys = new Map();
    }
    start(fingerprint = '') {
      if (fingerprint !== this.fingerprint) {
        this.fingerprint = fingerprint;
        this.keys = new Map();
      }
      return this;
    }
    key(step = 'main') {
      if (!this.keys.has(step)) this.keys.set(step, newKey());
      return this.keys.get(step);
    }
    finish() {
      this.fingerprint = null;
      this.keys = new Map();
    }
    // Call from a catch block: keeps the keys only if the outcome is unknown.
    settle(err) {
      if (!isUncertain(err)) this.finish();
    }
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, code, message, retryAfter, body) {
      super(message || code || `HTTP ${status}`);
      this.name = 'ApiError';
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
      this.serverMessage = message || ''; // the server's own words, if any
      this.body = body || null; // the whole error answer (e.g. sold_out's `lines`)
    }
  }

  // True when we cannot know whether the server acted, or it is still acting
  // (so a retry must reuse the key).
  function isUncertain(err) {
    return !(err instanceof ApiError) || err.status === 0 || err.status >= 500 || err.status === 429
      || err.code === 'idempotency_key_in_use';
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // Estimated server clock minus client clock (ms), from the Date header.
  let clockSkew = 0;

  function noteServerDate(res) {
    const d = Date.parse(res.headers.get('Date') || '');
    if (!Number.isNaN(d)) {
      const skew = d - Date.now();
      // Date has 1 s resolution: only correct for clocks that really differ.
      clockSkew = Math.abs(skew) > 3000 ? skew : 0;
    }
  }

  // fetch wrapper. Returns parsed JSON (or the Response itself with raw: true).
  // Throws ApiError with the server's {code, message} on any non-2xx answer and
  // code "network" when the server could not be reached.
  async function api(path, opts = {}) {
    const method = opts.method || 'GET';
    const headers = { Accept: opts.accept || 'application/json' };
    let body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (method !== 'GET') headers['Idempotency-Key'] = opts.key || newKey();

    // Network failures are retried a couple of times; for writes this is safe
    // because the retry carries the same Idempotency-Key.
    let res;
    for (let attempt = 0; ; attempt++) {
      try {
        res = await fetch(path, {
          method,
          headers,
          body,
          cache: 'no-store',
          credentials: 'same-origin',
          referrerPolicy: 'no-referrer',
        });
        break;
      } catch (e) {
        if (attempt >= 2) {
          throw new ApiError(0, 'network', 'Could not reach the server.');
        }
        await sleep(400 * (attempt + 1));
      }
    }
    noteServerDate(res);

    if (res.ok) {
      if (opts.raw) return res;
      if (res.status === 204) return null;
      const text = await res.text();
      if (!text) return null;
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new ApiError(res.status, 'bad_response', 'The server sent an answer this page does not understand.');
      }
    }

    let code = '';
    let message = '';
    let errBody = null;
    try {
      const data = JSON.parse(await res.text());
      if (data && typeof data === 'object') {
        errBody = data;
        code = typeof data.code === 'string' ? data.code : '';
        message = typeof data.message === 'string' ? data.message : '';
      }
    } catch (e) {
      /* not JSON: leave code/message empty, errorText() words it */
    }
    const ra = parseInt(res.headers.get('Retry-After') || '', 10);
    throw new ApiError(res.status, code, message, Number.isFinite(ra) ? ra : undefined, errBody);
  }

  // ---------- error wording ----------

  const MESSAGES = {
    network: 'Could not reach the server. Check your connection and try again.',
    sold_out: 'Sorry, there are not enough tickets of that type left.',
    hold_expired: 'Your hold has expired and the tickets went back on sale.',
    hold_released: 'This hold was released and the tickets went back on sale.',
    hold_checked_out: 'These tickets have already gone to checkout.',
    hold_not_active: 'This hold is no longer active.',
    card_declined: 'Your card was declined. No money was taken.',
    amount_too_small: 'The payment provider cannot take an amount this small, so this order cannot be paid online. No money was taken; the organiser has been told.',
    amount_too_large: 'The payment provider cannot take an amount this large in one payment. No money was taken; try an order with fewer tickets.',
    not_found: 'We could not find that. The link may be incomplete or out of date.',
    unauthorized: 'Please enter the admin token.',
    forbidden: 'That admin token is not accepted.',
    order_not_awaiting_payment: 'This order is no longer waiting for payment.',
    order_expired: 'The time to pay for this order is over, so the tickets went back on sale.',
    order_already_paid: 'This order has already been paid.',
    payment_not_open: 'That payment attempt is no longer open. Please try again.',
    payment_canceled: 'That payment attempt was canceled. Please try again.',
    payment_in_progress: 'Another payment attempt for this order is still in progress. Please wait a moment.',
    payment_provider_unavailable: 'The payment provider did not answer. Nothing was charged twice — please try again.',
    sales_closed: 'Tickets for this event are no longer on sale.',
    idempotency_key_in_use: 'Your previous request is still being processed. Please wait a moment and try again.',
    idempotency_key_reused: 'Something changed since your last try. Please try again.',
    database_unavailable: 'The service is briefly unavailable. Please try again in a moment.',
    rate_limited: 'Too many requests. Please wait a moment and try again.',
    too_many_requests: 'Too many requests. Please wait a moment and try again.',
    bad_response: 'The server sent an answer this page does not understand.',
  };

  // "quantity must be 1..4" -> "Quantity must be 1..4."
  function sentence(text) {
    const t = String(text || '').trim();
    if (!t) return '';
    const s = t[0].toUpperCase() + t.slice(1);
    return /[.!?]$/.test(s) ? s : `${s}.`;
  }

  // Turn any error into a sentence for a person. `overrides` maps codes to
  // page-specific wording.
  function errorText(err, overrides = {}) {
    if (!(err instanceof ApiError)) {
      return (err && err.message) || 'Something went wrong. Please try again.';
    }
    const code = err.code || '';
    if (overrides[code]) return overrides[code];
    if (code === 'validation_failed') {
      return sentence(err.serverMessage) || 'Some of the details are not valid. Please check them.';
    }
    if (err.status === 429 || code.startsWith('rate_limit') || MESSAGES[code] === MESSAGES.rate_limited) {
      const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : '';
      return `Too many requests. Please wait a moment.${wait}`;
    }
    if (MESSAGES[code]) return MESSAGES[code];
    if (err.status === 401) return overrides.unauthorized || MESSAGES.unauthorized;
    if (err.status === 403) return overrides.forbidden || MESSAGES.forbidden;
    if (err.status === 404) return overrides.not_found || MESSAGES.not_found;
    if (err.serverMessage) return sentence(err.serverMessage);
    if (err.status >= 500) return 'Something went wrong on our side. Please try again in a moment.';
    return `The request failed (HTTP ${err.status}). Please try again.`;
  }

  // ---------- money ----------

  const digitsCache = new Map();

  function currencyDigits(currency) {
    if (!digitsCache.has(currency)) {
      let d = 2;
      try {
        d = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
      } catch (e) {
        /* unknown code: assume 2 */
      }
      digitsCache.set(currency, d);
    }
    return digitsCache.get(currency);
  }

  // Integer minor units -> localized price, without going through a float.
  function formatMoney(minor, currency) {
    const d = currencyDigits(currency);
    const neg = minor < 0;
    let s = String(Math.abs(Math.trunc(minor)));
    if (d > 0) {
      s = s.padStart(d + 1, '0');
      s = `${s.slice(0, -d)}.${s.slice(-d)}`;
    }
    try {
      const fmt = new Intl.NumberFormat(undefined, {
        style: 'currency',
        currency,
        minimumFractionDigits: d,
        maximumFractionDigits: d,
      });
      // A numeric string is formatted as an exact decimal.
      return fmt.format(`${neg ? '-' : ''}${s}`);
    } catch (e) {
      return `${neg ? '-' : ''}${s} ${currency}`;
    }
  }

  // "9.99" (major units, as typed) -> 999 minor units, exactly (string maths,
  // no floats). Throws Error with a readable message.
  function parseMajor(input, currency) {
    const d = currencyDigits(currency);
    const s = String(input).trim();
    const m = /^(\d+)(?:[.,](\d*))?$/.exec(s);
    if (!m) {
      throw new Error(d === 0 ? 'Enter the price as a whole number, like 1500.' : 'Enter the price like 9.99 (no currency sign).');
    }
    const frac = m[2] || '';
    if (frac.length > d) {
      throw new Error(d === 0 ? `${currency} prices have no decimals.` : `Use at most ${d} decimals for ${currency}.`);
    }
    const digits = (m[1] + frac.padEnd(d, '0')).replace(/^0+(?=\d)/, '');
    const n = Number(digits);
    if (!Number.isSafeInteger(n)) throw new Error('That price is too large.');
    return n;
  }

  // ---------- time ----------

  function formatDate(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' }).format(d);
  }

  // Milliseconds until an RFC 3339 instant, on the server's clock.
  function msUntil(iso) {
    return Date.parse(iso) - (Date.now() + clockSkew);
  }

  // mm:ss, rounded up so "00:00" means really over.
  function formatRemaining(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const m = Math.floor(total / 60);
    const s = total % 60;
    return `${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  }

  // ---------- DOM ----------

  const $ = (sel, root = document) => root.querySelector(sel);

  // Tiny element builder: h('p', {class: 'x'}, 'text', child...). Text is
  // always set as text, never parsed as HTML.
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function say(text) {
    const el = $('#status');
    if (el) el.textContent = text || '';
  }

  function showError(errOrText, overrides) {
    const el = $('#error');
    if (!el) return;
    el.textContent = typeof errOrText === 'string' ? errOrText : errorText(errOrText, overrides);
  }

  function clearMessages() {
    say('');
    showError('');
  }

  // Run an async action with the given buttons disabled; a second click (or
  // submit) while it runs is ignored, so a double click sends one request.
  async function withBusy(buttons, fn) {
    const list = (Array.isArray(buttons) ? buttons : [buttons]).filter(Boolean);
    if (list.some((b) => b.dataset.busy === '1')) return undefined;
    for (const b of list) {
      b.dataset.busy = '1';
      b.disabled = true;
      b.setAttribute('aria-busy', 'true');
    }
    try {
      return await fn();
    } finally {
      for (const b of list) {
        delete b.dataset.busy;
        b.disabled = false;
        b.removeAttribute('aria-busy');
      }
    }
  }

  // ---------- hold and order lines ----------

  // The lines of a hold or order view: [{ticket_type_id, ticket_type_name,
  // quantity, unit_price_minor, amount_minor}]. A view without `lines` (an
  // older server) is one line made from its top-level fields.
  function viewLines(view) {
    if (Array.isArray(view.lines) && view.lines.length) return view.lines;
    const quantity = view.quantity || 0;
    return [{
      ticket_type_id: view.ticket_type_id,
      ticket_type_name: view.ticket_type_name || 'Tickets',
      quantity,
      unit_price_minor: quantity ? Math.round(view.amount_minor / quantity) : view.amount_minor,
      amount_minor: view.amount_minor,
    }];
  }

  // Fills a lines table (see hold.html / order.html: a tbody, a tfoot with
  // [data-role="total-quantity"] and [data-role="total-amount"]).
  function renderLines(table, view) {
    const lines = viewLines(view);
    table.tBodies[0].replaceChildren(...lines.map((l) => h('tr', { 'data-line-type-id': l.ticket_type_id },
      h('th', { scope: 'row' }, l.ticket_type_name),
      h('td', { class: 'num', 'data-col': 'quantity' }, l.quantity),
      h('td', { class: 'num', 'data-col': 'unit-price' }, formatMoney(l.unit_price_minor, view.currency)),
      h('td', { class: 'num', 'data-col': 'amount' }, formatMoney(l.amount_minor, view.currency)))));
    const count = lines.reduce((n, l) => n + l.quantity, 0);
    $('[data-role="total-quantity"]', table).textContent = String(view.quantity || count);
    $('[data-role="total-amount"]', table).textContent = formatMoney(view.amount_minor, view.currency);
    return lines;
  }

  // "3 tickets", "1 ticket"
  function ticketCount(n) {
    return `${n} ${n === 1 ? 'ticket' : 'tickets'}`;
  }

  // ---------- page plumbing ----------

  // Parameters handed over in the URL fragment (never sent to the server).
  function fragmentParams() {
    return new URLSearchParams(location.hash.replace(/^#/, ''));
  }

  // Drop secrets from the address bar / history, keeping only the id.
  function scrubFragment(id) {
    history.replaceState(null, '', `${location.pathname}#id=${encodeURIComponent(id)}`);
  }

  let configPromise = null;

  function loadConfig() {
    if (!configPromise) {
      configPromise = api('/api/v1/config').then((cfg) => {
        const banner = $('#sim-banner');
        if (banner) banner.hidden = cfg.gateway !== 'simulated';
        return cfg;
      });
      configPromise.catch(() => {
        configPromise = null;
      });
    }
    return configPromise;
  }

  window.NTS = {
    Action,
    ApiError,
    api,
    errorText,
    sentence,
    isUncertain,
    newKey,
    currencyDigits,
    formatMoney,
    parseMajor,
    formatDate,
    msUntil,
    formatRemaining,
    viewLines,
    renderLines,
    ticketCount,
    $,
    h,
    say,
    showError,
    clearMessages,
    withBusy,
    fragmentParams,
    scrubFragment,
    loadConfig,
    sleep,
  };
})();
