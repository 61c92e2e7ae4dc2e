// The card fields of the emulated Stripe.js: inside the emulator's origin, so
// the shop's page never reads the card. Talks to the page that framed it (and
// only to it) with postMessage; creates PaymentMethods with the publishable key.
'use strict';

(function () {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const PARENT = params.get('origin');
  const KEY = params.get('key');
  const number = document.getElementById('number');
  const expiry = document.getElementById('expiry');
  const cvc = document.getElementById('cvc');

  function tell(message) {
    window.parent.postMessage(message, PARENT);
  }

  const digits = (s) => s.replace(/\D/g, '');

  function luhn(n) {
    let sum = 0;
    for (let i = 0; i < n.length; i += 1) {
      let d = Number(n[n.length - 1 - i]);
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return sum % 10 === 0;
  }

  function read() {
    const n = digits(number.value);
    const e = digits(expiry.value);
    const c = digits(cvc.value);
    const month = Number(e.slice(0, 2));
    const year = 2000 + Number(e.slice(2, 4));
    return { n, e, c, month, year };
  }

  // Stripe's own messages and codes for what the buyer typed.
  function problem(v, final) {
    const now = new Date();
    if (v.n.length === 16 && !luhn(v.n)) return { code: 'invalid_number', message: 'Your card number is invalid.' };
    if (v.e.length === 4 && (v.month < 1 || v.month > 12)) {
      return { code: 'invalid_expiry_month', message: "Your card's expiration month is invalid." };
    }
    if (v.e.length === 4 && (v.year < now.getFullYear() || (v.year === now.getFullYear() && v.month < now.getMonth() + 1))) {
      return { code: 'invalid_expiry_year_past', message: "Your card's expiration year is in the past." };
    }
    if (!final) return null;
    if (v.n.length < 16) return { code: 'incomplete_number', message: 'Your card number is incomplete.' };
    if (v.e.length < 4) return { code: 'incomplete_expiry', message: "Your card's expiration date is incomplete." };
    if (v.c.length < 3) return { code: 'incomplete_cvc', message: "Your card's security code is incomplete." };
    return null;
  }

  function changed() {
    const v = read();
    if (digits(expiry.value).length >= 3 && !expiry.value.includes('/')) {
      expiry.value = `${v.e.slice(0, 2)} / ${v.e.slice(2, 4)}`;
    }
    const err = problem(v, false);
    number.setAttribute('aria-invalid', String(Boolean(err && err.code === 'invalid_number')));
    expiry.setAttribute('aria-invalid', String(Boolean(err && err.code.startsWith('invalid_expiry'))));
    tell({
      type: 'change',
      empty: !v.n && !v.e && !v.c,
      complete: !problem(v, true),
      brand: v.n.startsWith('4') ? 'visa' : v.n.startsWith('5') ? 'mastercard' : 'unknown',
      error: err ? { type: 'validation_error', code: err.code, message: err.message } : null,
    });
  }

  async function createPaymentMethod(id, data) {
    const v = read();
    const err = problem(v, true);
    if (err) {
      tell({ type: 'result', id, result: { error: { type: 'validation_error', ...err } } });
      return;
    }
    const body = new URLSearchParams({
      type: 'card',
      'card[number]': v.n,
      'card[cvc]': v.c,
      'card[exp_month]': String(v.month),
      'card[exp_year]': String(v.year % 100),
      key: KEY,
      payment_user_agent: 'stripe.js/emulated; stripe-js-v3/emulated; card-element',
    });
    const address = data && data.billing_details && data.billing_details.address;
    if (address && address.postal_code) body.append('billing_details[address][postal_code]', address.postal_code);
    let result;
    try {
      const res = await fetch('/v1/payment_methods', { method: 'POST', body });
      const json = await res.json().catch(() => ({}));
      result = res.ok && !json.error ? { paymentMethod: json }
        : { error: json.error || { type: 'api_error', message: `HTTP ${res.status}` } };
    } catch (e) {
      result = { error: { type: 'api_connection_error', message: 'We could not reach Stripe. Please try again.' } };
    }
    tell({ type: 'result', id, result });
  }

  for (const input of [number, expiry, cvc]) {
    input.addEventListener('input', changed);
    input.addEventListener('focus', () => tell({ type: 'focus' }));
    input.addEventListener('blur', () => tell({ type: 'blur' }));
  }

  window.addEventListener('message', (event) => {
    if (event.source !== window.parent || event.origin !== PARENT || !event.data) return;
    const msg = event.data;
    if (msg.type === 'createPaymentMethod') createPaymentMethod(msg.id, msg.data);
    else if (msg.type === 'focus') number.focus();
    else if (msg.type === 'clear') {
      number.value = '';
      expiry.value = '';
      cvc.value = '';
      changed();
    }
  });

  tell({ type: 'ready' });
})();
