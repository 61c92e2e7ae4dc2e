// Order page: the payment step (simulated or Stripe), live order status, and
// once paid the ticket codes with their QR codes.
'use strict';

(function () {
  const { api, h, $, formatMoney, msUntil, formatRemaining, say, showError, clearMessages, withBusy, Action,
    fragmentParams, scrubFragment, loadConfig, errorText, renderLines, ticketCount } = window.NTS;

  const POLL_MS = 1500;
  const FINAL = new Set(['paid', 'expired', 'canceled', 'refunded']);
  const OPEN_PAYMENT = new Set(['created', 'processing', 'requires_action']);
  const STATUS_TEXT = {
    awaiting_payment: 'Awaiting payment',
    paid: 'Paid',
    expired: 'Expired',
    canceled: 'Canceled',
    refunded: 'Refunded',
  };

  const params = fragmentParams();
  const id = params.get('id') || '';
  const storeKey = `nts.order.${id}`;
  const secret = params.get('secret') || (id ? localStorage.getItem(storeKey) : null);
  if (id && params.get('secret')) {
    localStorage.setItem(storeKey, secret); // so the buyer can come back to the tickets
    scrubFragment(id);
  } else if (id && location.search) {
    // Back from the bank through Stripe's return_url, which adds the
    // PaymentIntent's client secret to the query: keep it out of the history.
    scrubFragment(id);
  }

  const simPay = $('#sim-pay');
  const simDecline = $('#sim-decline');
  const countdownLine = $('#countdown-line');
  const countdown = $('#countdown');

  let config = null;
  let order = null;
  let pollTimer = null;
  let pollError = false;
  let clock = null;
  let ticketsShown = false;
  let windowClosed = false;
  let stripeReady = null;
  // 3-D Secure: the attempt whose challenge is open ({id, done}), and how each
  // challenge this page showed ended ('passed' or 'failed'), by payment id.
  let challenge = null;
  const challenged = new Map();
  const simAction = new Action();
  const stripeAction = new Action();

  const orderPath = () => `/api/v1/orders/${encodeURIComponent(id)}`;

  // ---------- polling ----------

  function schedulePoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  async function poll() {
    try {
      order = await api(orderPath(), { token: secret });
      if (pollError) {
        pollError = false;
        showError('');
      }
      render();
    } catch (err) {
      if (err.status === 404) {
        notFound();
        return;
      }
      pollError = true;
      showError(`${errorText(err)} (Still trying to check your order.)`);
    }
    if (!order || !FINAL.has(order.status)) schedulePoll(POLL_MS);
  }

  // ---------- rendering ----------

  function notFound() {
    clearTimeout(pollTimer);
    $('#order-card').hidden = true;
    showEnded('Order not found', 'We could not find this order in this browser. The link may be incomplete.');
  }

  function showEnded(title, text) {
    say('');
    $('#title').textContent = title;
    $('#ended-text').textContent = text;
    $('#ended').hidden = false;
    $('#announce').textContent = `${title}. ${text}`;
  }

  function tick() {
    if (!order || order.status !== 'awaiting_payment' || !order.expires_at) {
      countdownLine.hidden = true;
      return;
    }
    const ms = msUntil(order.expires_at);
    countdownLine.hidden = false;
    countdown.textContent = formatRemaining(ms);
    countdownLine.classList.toggle('urgent', ms < 60000);
    if (ms <= 0 && !windowClosed) {
      // Out of time: stop offering payment and let the server confirm the expiry.
      windowClosed = true;
      render();
      say('The time to pay for this order is over. Checking with the server…');
      schedulePoll(0);
    }
  }

  function render() {
    $('#order-card').hidden = false;
    $('#o-event').textContent = order.event_name;
    renderLines($('#o-lines'), order);
    $('#o-name').textContent = order.name;
    $('#o-email').textContent = order.email;
    const total = formatMoney(order.amount_minor, order.currency);

    const awaiting = order.status === 'awaiting_payment';
    const p = order.payment;
    const gateway = config ? config.gateway : null;
    // The buyer's bank wants the buyer to confirm the latest attempt (3-D
    // Secure): show that challenge again (after a reload, a redirect back, a
    // trip to the banking app) rather than the card form, which would start a
    // second payment. Once the challenge failed here, the buyer may use another card.
    const action = awaiting && p && p.status === 'requires_action' && p.client_secret && gateway === 'stripe'
      ? challenged.get(p.id) || 'pending' : null;

    const pill = $('#o-status');
    let label = STATUS_TEXT[order.status] || order.status;
    if (awaiting && p && (p.status === 'processing' || p.status === 'succeeded' || action === 'passed')) {
      label = 'Payment processing';
    } else if (action === 'pending') {
      label = 'Confirm with your bank';
    }
    pill.textContent = label;
    pill.className = `pill${order.status === 'paid' ? ' paid' : ''}${['expired', 'canceled', 'refunded'].includes(order.status) ? ' bad' : ''}`;

    // No second attempt while the provider is still working on one, or the buyer's bank on it.
    const inFlight = Boolean(p && (p.status === 'processing' || p.status === 'succeeded')) || action === 'passed';
    const canPay = awaiting && !windowClosed && !inFlight && action !== 'pending';
    $('#pay-simulated').hidden = !(canPay && gateway === 'simulated');
    $('#pay-stripe').hidden = !(canPay && gateway === 'stripe');
    simPay.textContent = `Pay ${total} (simulated)`;
    if (canPay && gateway === 'stripe') setUpStripe();
    if (action === 'pending' && !windowClosed) authenticate(p);

    if (awaiting) {
      $('#title').textContent = 'Pay for your tickets';
      tick();
      if (!clock) clock = setInterval(tick, 250);
    } else {
      clearInterval(clock);
      clock = null;
      countdownLine.hidden = true;
    }

    if (order.status === 'paid') {
      $('#title').textContent = 'Your tickets';
      showTickets();
    } else if (order.status === 'expired') {
      showEnded('Order expired', 'This order was not paid in time, so the tickets went back on sale. Nothing was charged.');
    } else if (order.status === 'canceled') {
      showEnded('Order canceled', 'This order was canceled. Nothing was charged.');
    } else if (order.status === 'refunded') {
      showEnded('Order refunded', 'This order was refunded and its tickets are no longer valid.');
    }
  }

  function showTickets() {
    if (ticketsShown) return;
    ticketsShown = true;
    clearMessages();
    $('#announce').textContent = `Payment received. You have ${ticketCount(order.tickets.length)}.`;
    say('Payment received — thank you! Your tickets are below.');
    const list = $('#tickets');
    list.replaceChildren();
    for (const t of order.tickets) {
      const typeName = t.ticket_type_name || order.ticket_type_name || '';
      const img = h('img', { alt: `QR code for ticket ${t.code}${typeName ? ` (${typeName})` : ''}`, width: 168, height: 168 });
      const li = h('li', { 'data-ticket-code': t.code, 'data-ticket-type-id': t.ticket_type_id || order.ticket_type_id || null },
        typeName ? h('p', { class: 'ticket-type' }, typeName) : null,
        img, h('code', {}, t.code));
      list.append(li);
      loadQr(t.code, img, li);
    }
    $('#tickets-section').hidden = false;
  }

  async function loadQr(code, img, li) {
    try {
      const res = await api(`${orderPath()}/tickets/${encodeURIComponent(code)}/qr`, {
        token: secret,
        accept: 'image/svg+xml',
        raw: true,
      });
      const blob = await res.blob();
      // An <img> only renders SVG from a blob typed as SVG.
      const svg = blob.type === 'image/svg+xml' ? blob : new Blob([blob], { type: 'image/svg+xml' });
      const url = URL.createObjectURL(svg);
      img.addEventListener('load', () => URL.revokeObjectURL(url), { once: true });
      img.addEventListener('error', () => {
        img.replaceWith(h('p', { class: 'hint' }, 'The QR code could not be shown; the code below still works.'));
      }, { once: true });
      img.src = url;
    } catch (err) {
      img.replaceWith(h('p', { class: 'hint' }, `QR code could not be loaded: ${errorText(err)}`));
      li.dataset.qrError = '1';
    }
  }

  // ---------- simulated gateway ----------

  async function simulated(outcome) {
    clearMessages();
    simAction.start(outcome);
    say(outcome === 'succeeded' ? 'Processing the simulated payment…' : 'Sending a simulated decline…');
    try {
      let payment = order.payment;
      if (!payment || payment.status === 'failed' || payment.status === 'canceled') {
        payment = await api(`${orderPath()}/payments`, {
          method: 'POST',
          body: {},
          token: secret,
          key: simAction.key('create'),
        });
      }
      if (OPEN_PAYMENT.has(payment.status)) {
        await api(`/api/v1/payments/simulated/${encodeURIComponent(payment.id)}/confirm`, {
          method: 'POST',
          body: { outcome },
          token: secret,
          key: simAction.key(`confirm:${payment.id}`),
        });
      }
      simAction.finish();
      say('Payment accepted. Issuing your tickets…');
      await poll();
    } catch (err) {
      simAction.settle(err);
      say('');
      if (err.code === 'card_declined') {
        showError('Your card was declined. No money was taken — you can try again.');
      } else {
        showError(err);
      }
      // Pick up the new state (failed attempt, expired order, …) before the next try.
      try {
        order = await api(orderPath(), { token: secret });
        render();
      } catch (e) {
        /* polling keeps trying */
      }
    }
  }

  simPay.addEventListener('click', () => withBusy([simPay, simDecline], () => simulated('succeeded')));
  simDecline.addEventListener('click', () => withBusy([simPay, simDecline], () => simulated('declined')));

  // ---------- Stripe gateway ----------

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      if (window.Stripe) {
        resolve();
        return;
      }
      const s = document.createElement('script');
      s.src = src;
      s.async = true;
      s.addEventListener('load', () => resolve());
      s.addEventListener('error', () => reject(new Error('The card form could not be loaded. Please reload the page.')));
      document.head.append(s);
    });
  }

  function setUpStripe() {
    if (stripeReady) return stripeReady;
    stripeReady = (async () => {
      await loadScript(config.stripe_js_url);
      const stripe = window.Stripe(config.stripe_publishable_key);
      const card = stripe.elements().create('card');
      card.mount('#card-element');
      card.on('change', (e) => {
        stripeAction.finish(); // new card details: a new action
        stripeAction.pm = null;
        showError(e.error ? e.error.message : '');
      });
      $('#stripe-pay').disabled = false;
      $('#stripe-pay').textContent = `Pay ${formatMoney(order.amount_minor, order.currency)}`;
      return { stripe, card };
    })();
    stripeReady.catch((err) => {
      stripeReady = null;
      showError(err);
    });
    return stripeReady;
  }

  // 3-D Secure for attempt `payment` (requires_action): Stripe.js shows the
  // bank's challenge; then the order tells how the payment ended. One
  // challenge at a time: a poll that sees the same attempt joins it.
  function authenticate(payment) {
    if (challenge) return challenge.done;
    const run = (async () => {
      say('Your bank asks you to confirm this payment. Follow the steps in the window that opened.');
      let outcome;
      try {
        const { stripe } = await setUpStripe();
        outcome = await stripe.handleNextAction({ clientSecret: payment.client_secret });
      } catch (err) {
        // Stripe.js did not load, or the attempt no longer waits for the bank
        // (it ended meanwhile): the order says what happened.
        outcome = { thrown: err };
      }
      challenged.set(payment.id, outcome.paymentIntent ? 'passed' : 'failed');
      challenge = null;
      if (outcome.paymentIntent) {
        showError('');
        say('Confirmed by your bank. Waiting for the payment to complete…');
      } else if (outcome.error) {
        say('');
        showError(`${NTS.sentence(outcome.error.message) || 'Your bank did not confirm the payment.'} `
          + 'No money was taken.');
      } else {
        say('');
        showError('Your bank\'s confirmation could not be shown. Checking the payment…');
      }
      if (order) render();
      schedulePoll(0);
    })();
    challenge = { id: payment.id, done: run };
    return run;
  }

  $('#stripe-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const btn = $('#stripe-pay');
    withBusy(btn, async () => {
      clearMessages();
      let stripe;
      let card;
      try {
        ({ stripe, card } = await setUpStripe());
      } catch (err) {
        return;
      }
      say('Processing your card…');
      // Reuse the payment method (and keys) if the last try's outcome is unknown.
      if (!stripeAction.pm) {
        const { paymentMethod, error } = await stripe.createPaymentMethod({ type: 'card', card });
        if (error) {
          say('');
          showError(error.message || 'Please check your card details.');
          return;
        }
        stripeAction.finish();
        stripeAction.start(paymentMethod.id);
        stripeAction.pm = paymentMethod.id;
      }
      try {
        const payment = await api(`${orderPath()}/payments`, {
          method: 'POST',
          body: { payment_method: stripeAction.pm },
          token: secret,
          key: stripeAction.key('create'),
        });
        stripeAction.finish();
        stripeAction.pm = null;
        if (payment.status === 'requires_action' && payment.client_secret) {
          order = { ...order, payment };
          render(); // hides the card form and opens the challenge
          await authenticate(payment);
          return;
        }
        say('Payment sent. Waiting for confirmation…');
        schedulePoll(0);
      } catch (err) {
        stripeAction.settle(err);
        if (!NTS.isUncertain(err)) stripeAction.pm = null;
        say('');
        showError(err.code === 'card_declined'
          ? `Your card was declined.${err.serverMessage ? ` ${NTS.sentence(err.serverMessage)}` : ''} You can try another card.`
          : errorText(err));
        schedulePoll(0);
      }
    });
  });

  // ---------- start ----------

  async function start() {
    if (!id || !secret) {
      showEnded('Order not found', 'We could not find this order in this browser. Please start again from the list of events.');
      return;
    }
    try {
      [config, order] = await Promise.all([
        loadConfig(),
        api(orderPath(), { token: secret }),
      ]);
    } catch (err) {
      if (err.status === 404) {
        notFound();
      } else {
        showError(`${errorText(err)} Please reload the page.`);
      }
      return;
    }
    render();
    if (!FINAL.has(order.status)) schedulePoll(POLL_MS);
  }

  start();
})();
