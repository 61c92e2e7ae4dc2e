// The emulator's 3-D Secure challenge, framed by the emulated Stripe.js's
// handleNextAction. The page that framed it hands over the client secret by
// postMessage (never in a URL); the buyer's answer goes to the emulator
// (/v1/payment_intents/{id}/_authenticate) from here, as a bank's page answers
// Stripe, and the page is told only that the buyer answered.
'use strict';

(function () {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const PARENT = params.get('origin');
  const complete = document.getElementById('complete');
  const fail = document.getElementById('fail');
  const note = document.getElementById('note');
  let intent = null;

  function tell(message) {
    window.parent.postMessage(message, PARENT);
  }

  async function answer(success) {
    complete.disabled = true;
    fail.disabled = true;
    note.textContent = 'Sending your answer…';
    let ok = false;
    try {
      const res = await fetch(`/v1/payment_intents/${encodeURIComponent(intent.id)}/_authenticate`, {
        method: 'POST',
        body: new URLSearchParams({ client_secret: intent.clientSecret, success: String(success), key: intent.key }),
      });
      ok = res.ok;
    } catch (e) {
      ok = false;
    }
    tell({ type: 'answered', result: { success, ok } });
  }

  complete.addEventListener('click', () => answer(true));
  fail.addEventListener('click', () => answer(false));

  window.addEventListener('message', async (event) => {
    if (event.source !== window.parent || event.origin !== PARENT || !event.data) return;
    const msg = event.data;
    if (msg.type !== 'challenge' || intent) return;
    intent = { id: msg.clientSecret.split('_secret_')[0], clientSecret: msg.clientSecret, key: msg.key };
    document.getElementById('intent').textContent = intent.id;
    try {
      const q = new URLSearchParams({ key: intent.key, client_secret: intent.clientSecret });
      const res = await fetch(`/v1/payment_intents/${encodeURIComponent(intent.id)}?${q}`);
      const pi = await res.json();
      const exponent = ['jpy', 'krw'].includes(pi.currency) ? 0 : 2;
      document.getElementById('amount').textContent =
        `${(pi.amount / 10 ** exponent).toFixed(exponent)} ${String(pi.currency).toUpperCase()}`;
    } catch (e) {
      document.getElementById('amount').textContent = '(unknown)';
    }
    complete.disabled = false;
    fail.disabled = false;
    complete.focus();
  });

  tell({ type: 'ready' });
})();
