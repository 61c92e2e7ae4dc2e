// Paying by card through Stripe with 3-D Secure, in Chromium: nts on the
// Stripe emulator (localstripe behind the strict proxy, tests/stripe/), whose
// emulated Stripe.js (tests/stripe/stripe_js/) shows the card fields and the
// bank's challenge in frames of the emulator's origin, under the page's real
// Content-Security-Policy. 4000 0027 6000 3184 is Stripe's test card that
// always asks for authentication; 4242 4242 4242 4242 never does.
'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const h = require('./harness');

const THREE_D_SECURE = '4000002760003184';
const PLAIN = '4242424242424242';

let stripe;
let server;
let browser;
let event;

before(async () => {
  stripe = await h.startStripeEmulator('stripe-3ds');
  server = await h.startServer('stripe-3ds', { stripe });
  browser = await h.launchBrowser();
  event = await h.createEvent(server, {
    name: 'Card Night',
    venue: 'Vault Hall',
    ticket_types: [{ name: 'Entry', price_minor: 2400, capacity: 50, max_per_order: 4 }],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (stripe) await stripe.stop();
});

// An order awaiting payment, made through the API; under Stripe it has no attempt yet.
async function newOrder(quantity = 1) {
  const hold = await h.createHold(server, event.id, event.ticket_types[0].id, quantity, { email: `buyer.${Date.now()}@example.com` });
  const { order } = await h.checkout(server, hold);
  assert.equal(order.payment, null, 'under Stripe the first attempt comes with the card');
  return order;
}

async function openOrder(order) {
  // The harness hands Chromium the pages through a route (to check their CSP),
  // and a page that came from a route counts as public: reaching the emulator
  // on 127.0.0.1 from it needs Chromium's local-network permission. (A shop and
  // Stripe on public addresses need none.)
  const s = await h.openPage(browser, server, { permissions: ['local-network-access'] });
  const res = await s.page.goto(`${server.base}/order.html#id=${order.id}&secret=${encodeURIComponent(order.secret)}`);
  // nts's own policy lets the page frame and call the emulator's origin, as it does js.stripe.com.
  const csp = res.headers()['content-security-policy'] || '';
  for (const directive of ['script-src', 'frame-src', 'connect-src']) {
    assert.match(csp, new RegExp(`${directive} 'self'[^;]* ${stripe.stripeUrl}[ ;]`), csp);
  }
  await s.page.locator('#pay-stripe').waitFor();
  return s;
}

async function enterCard(page, number) {
  const card = page.frameLocator('#card-element iframe');
  await card.getByLabel('Card number').fill(number);
  await card.getByLabel('Expiration date (MM / YY)').fill('12 / 40');
  await card.getByLabel('CVC').fill('123');
}

// The emulator's challenge, open over the page; answers the PaymentIntent it is for.
async function challengeShown(page) {
  await page.locator('[data-stripe-emulator="three-d-secure"]').waitFor({ timeout: 15000 });
  const frame = page.frameLocator('iframe[title="3-D Secure challenge"]');
  await frame.locator('#complete:enabled').waitFor();
  assert.equal(await page.locator('#pay-stripe').isHidden(), true, 'no card form while the bank waits');
  return { frame, intent: await frame.locator('#intent').innerText() };
}

async function paidWithTickets(page, count) {
  await page.locator('#tickets-section').waitFor({ timeout: 20000 });
  await page.locator('#o-status', { hasText: 'Paid' }).waitFor();
  assert.equal((await page.locator('#tickets code').allInnerTexts()).length, count);
}

// The PaymentIntents nts created for the order (one POST per attempt; a retry would reuse its key).
async function createdIntents(orderId) {
  const calls = await stripe.calls();
  const creates = calls.filter((c) => c.method === 'POST' && c.path === '/v1/payment_intents'
    && new URLSearchParams(c.body).get('metadata[nts_order_id]') === orderId);
  return new Set(creates.map((c) => c.key)).size;
}

test('a card that needs 3-D Secure: the challenge is completed and the order is paid with its tickets', async () => {
  const order = await newOrder(2);
  const s = await openOrder(order);
  const { page, requests } = s;
  try {
    await enterCard(page, THREE_D_SECURE);
    await h.screenshot(page, 'stripe-3ds-card-form');
    await page.getByRole('button', { name: /^Pay €48\.00/ }).click();

    const { frame, intent } = await challengeShown(page);
    const [pi] = await stripe.paymentIntentsOf(order.id);
    assert.equal(intent, pi.id);
    assert.equal(pi.status, 'requires_action');
    assert.match(await frame.locator('#amount').innerText(), /48\.00 EUR/);
    assert.match(await page.locator('#status').innerText(), /Your bank asks you to confirm this payment/);
    await h.screenshot(page, 'stripe-3ds-challenge');
    await frame.getByRole('button', { name: 'Complete authentication' }).click();

    await paidWithTickets(page, 2);
    await h.screenshot(page, 'stripe-3ds-paid');
    const intents = await stripe.paymentIntentsOf(order.id);
    assert.deepEqual(intents.map((p) => p.status), ['succeeded']);
    assert.equal(h.posts(requests, /\/payments$/).length, 1, 'one payment request');
    await s.assertNoSecretsInUrls([order.secret]);
    s.assertNoProblems();
  } finally {
    await s.context.close();
  }
});

test('a reload or a redirect back mid-challenge shows the challenge of the same PaymentIntent again, not the card form', async () => {
  const order = await newOrder(1);
  const s = await openOrder(order);
  const { page, requests } = s;
  try {
    await enterCard(page, THREE_D_SECURE);
    await page.getByRole('button', { name: /^Pay €24\.00/ }).click();
    const first = await challengeShown(page);

    // The buyer went to the banking app, or the page was reloaded: the order
    // page opens the same challenge, from the order's latest attempt.
    await page.reload();
    const again = await challengeShown(page);
    assert.equal(again.intent, first.intent, 'the same PaymentIntent');
    assert.match(await page.locator('#o-status').innerText(), /Confirm with your bank/);
    await h.screenshot(page, 'stripe-3ds-reloaded-challenge');

    // Back through Stripe's redirect to the return_url, which adds the intent
    // and its client secret to the query: the same challenge again, and the
    // client secret leaves the address bar.
    const [pi] = await stripe.paymentIntentsOf(order.id);
    const query = new URLSearchParams({ payment_intent: pi.id, payment_intent_client_secret: pi.client_secret });
    await page.goto(`${server.base}/order.html?${query}#id=${order.id}`);
    const redirected = await challengeShown(page);
    assert.equal(redirected.intent, first.intent, 'the same PaymentIntent after the redirect');
    assert.equal(new URL(page.url()).search, '', 'no client secret left in the address');
    await redirected.frame.getByRole('button', { name: 'Complete authentication' }).click();

    await paidWithTickets(page, 1);
    const intents = await stripe.paymentIntentsOf(order.id);
    assert.deepEqual(intents.map((p) => [p.id, p.status]), [[first.intent, 'succeeded']]);
    assert.equal(await createdIntents(order.id), 1, 'one PaymentIntent created for the order');
    assert.equal(h.posts(requests, /\/payments$/).length, 1, 'one payment request, before the reload');
    s.assertNoProblems();
  } finally {
    await s.context.close();
  }
});

test('a failed and a closed challenge leave the order payable: another card pays it, the old intents are canceled', async () => {
  const order = await newOrder(1);
  const s = await openOrder(order);
  const { page } = s;
  try {
    // The bank refuses.
    await enterCard(page, THREE_D_SECURE);
    await page.getByRole('button', { name: /^Pay €24\.00/ }).click();
    const failed = await challengeShown(page);
    await failed.frame.getByRole('button', { name: 'Fail authentication' }).click();
    await page.locator('#pay-stripe').waitFor();
    assert.match(await page.locator('#error').innerText(), /unable to authenticate.*No money was taken/s);
    await h.screenshot(page, 'stripe-3ds-failed');

    // The buyer tries again and closes the challenge: that fails it too.
    await page.getByRole('button', { name: /^Pay €24\.00/ }).click();
    const closed = await challengeShown(page);
    assert.notEqual(closed.intent, failed.intent, 'a new attempt');
    await page.locator('[data-stripe-emulator="three-d-secure"]').getByRole('button', { name: 'Close' }).click();
    await page.locator('#pay-stripe').waitFor();
    assert.match(await page.locator('#error').innerText(), /No money was taken/);

    // Another card, which needs no authentication.
    await enterCard(page, PLAIN);
    assert.equal(await page.locator('#error').innerText(), '', 'new card details clear the error');
    await page.getByRole('button', { name: /^Pay €24\.00/ }).click();
    await paidWithTickets(page, 1);
    await h.screenshot(page, 'stripe-3ds-paid-with-another-card');

    const statuses = await h.waitFor(async () => {
      const intents = await stripe.paymentIntentsOf(order.id);
      const byId = Object.fromEntries(intents.map((p) => [p.id, p.status]));
      return byId[failed.intent] === 'canceled' && byId[closed.intent] === 'canceled' ? intents : null;
    }, 20000, 'the failed attempts canceled at Stripe');
    assert.deepEqual(statuses.map((p) => p.status).sort(), ['canceled', 'canceled', 'succeeded']);
    assert.equal(await createdIntents(order.id), 3);
    s.assertNoProblems();
  } finally {
    await s.context.close();
  }
});
