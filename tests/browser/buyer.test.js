// Buyer walks: reserve -> hold countdown -> simulated payment -> tickets with
// QR codes; and a declined payment followed by a successful retry.
'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const h = require('./harness');

let server;
let browser;
let event;
let jpyEvent;

before(async () => {
  server = await h.startServer('buyer');
  browser = await h.launchBrowser();
  event = await h.createEvent(server, {
    name: 'Browser Walk Live',
    venue: 'Harbour Hall',
    ticket_types: [
      { name: 'Standing', price_minor: 1250, capacity: 50, max_per_order: 4 },
      { name: 'Balcony', price_minor: 3999, capacity: 20, max_per_order: 2 },
    ],
  });
  jpyEvent = await h.createEvent(server, {
    name: 'Tokyo Night',
    venue: 'Shibuya Club',
    currency: 'JPY',
    starts_at: h.daysFromNow(40),
    ticket_types: [{ name: 'Entry', price_minor: 1500, capacity: 30, max_per_order: 5 }],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('buyer reserves 2 tickets, sees the countdown, pays (simulated) and gets 2 tickets with QR codes', async () => {
  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  try {
    await page.goto(`${server.base}/`);
    await page.getByText('Simulated payments — no real money moves').waitFor();

    // The event with its ticket types, prices in the event's currency and availability.
    const card = page.locator(`article[data-event-id="${event.id}"]`);
    await card.waitFor();
    const cardText = await card.innerText();
    assert.match(cardText, /Browser Walk Live/);
    assert.match(cardText, /Harbour Hall/);
    assert.match(cardText, /€12\.50/);
    assert.match(cardText, /€39\.99/);
    assert.match(cardText, /50 left/);
    // JPY has no minor digits: 1500 minor units are ¥1,500, not ¥15.00.
    const jpyText = await page.locator(`article[data-event-id="${jpyEvent.id}"]`).innerText();
    assert.match(jpyText, /¥1,500/);
    assert.doesNotMatch(jpyText, /¥15\b/);

    await h.screenshot(page, 'buyer-shop');
    const standing = event.ticket_types.find((t) => t.name === 'Standing');
    // Nothing chosen yet: Reserve waits.
    assert.equal(await page.locator('#reserve-button').isDisabled(), true, 'Reserve is disabled while nothing is chosen');
    // "Choose" picks the event in the form and one ticket of the type.
    await card.getByRole('button', { name: /Choose Standing/ }).click();
    assert.equal(await page.locator('#event').inputValue(), event.id);
    const standingQty = page.getByLabel('Quantity of Standing');
    assert.equal(await standingQty.inputValue(), '1');
    assert.equal(await standingQty.evaluate((el) => el === document.activeElement), true, 'Choose focuses the quantity');
    await standingQty.fill('2');
    assert.equal(await page.locator('#total-tickets').innerText(), 'Total for 2 tickets');
    assert.equal(await page.locator('#total').innerText(), '€25.00');
    await page.getByLabel('Your name').fill('Grace Hopper');
    await page.getByLabel('Email').fill('grace@example.com');

    // A double click must send one reservation.
    await page.locator('#reserve-button').dblclick();
    await page.waitForURL(/\/hold\.html#id=/);
    assert.equal(h.posts(requests, /\/holds$/).length, 1, 'exactly one hold request');
    assert.doesNotMatch(page.url(), /secret/, 'the hold secret is scrubbed from the address bar');

    // The hold page: what is held, total, countdown.
    await page.locator('#hold-card').waitFor();
    const line = page.locator(`#h-lines tbody tr[data-line-type-id="${standing.id}"]`);
    assert.deepEqual(await line.locator('th, td').allInnerTexts(), ['Standing', '2', '€12.50', '€25.00']);
    assert.equal(await page.locator('#h-lines tbody tr').count(), 1);
    assert.equal(await page.locator('#h-total').innerText(), '€25.00');
    await page.waitForFunction(() => /^\d\d:\d\d$/.test(document.querySelector('#countdown').textContent));
    const first = await page.locator('#countdown').innerText();
    await page.waitForTimeout(1300);
    const second = await page.locator('#countdown').innerText();
    assert.notEqual(first, second, 'the countdown ticks');
    await h.screenshot(page, 'buyer-hold');

    const holdGet = requests.find((r) => r.method === 'GET' && /\/api\/v1\/holds\/[^/]+$/.test(new URL(r.url).pathname));
    assert.ok(holdGet, 'the hold page fetched the hold');
    assert.match(holdGet.headers.authorization || '', /^Bearer \S{8,}$/, 'the hold secret goes in the Authorization header');

    await page.getByRole('button', { name: /^Pay/ }).dblclick();
    await page.waitForURL(/\/order\.html#id=/);
    assert.equal(h.posts(requests, /\/checkout$/).length, 1, 'exactly one checkout request');
    assert.doesNotMatch(page.url(), /secret/);

    // Simulated payment step.
    const sim = page.locator('#pay-simulated');
    await sim.waitFor();
    assert.match(await sim.innerText(), /SIMULATED/);
    await h.screenshot(page, 'buyer-payment-step');
    await page.getByRole('button', { name: /^Pay €25\.00 \(simulated\)/ }).dblclick();

    // Paid: 2 ticket codes, 2 QR images that actually rendered.
    await page.locator('#tickets-section').waitFor({ timeout: 15000 });
    await page.locator('#o-status', { hasText: 'Paid' }).waitFor();
    const codes = await page.locator('#tickets code').allInnerTexts();
    assert.equal(codes.length, 2);
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll('#tickets img')];
      return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    }, null, { timeout: 10000 });
    for (const code of codes) {
      const img = page.getByAltText(`QR code for ticket ${code}`);
      assert.equal(await img.count(), 1);
      assert.match(await img.getAttribute('src'), /^blob:/);
    }
    assert.equal(h.posts(requests, /\/confirm$/).length, 1, 'exactly one confirm request');

    // The codes are the order's codes.
    const secrets = await s.assertNoSecretsInUrls();
    const orderId = new URL(page.url()).hash.match(/id=([^&]+)/)[1];
    assert.equal(secrets.length, 3, 'admin token, hold secret and order secret were recorded');
    const order = await findOrder(orderId, secrets);
    assert.deepEqual(order.tickets.map((t) => t.code).sort(), [...codes].sort());

    // Every write carried its own Idempotency-Key.
    const writes = requests.filter((r) => r.method === 'POST');
    const keys = writes.map((r) => r.headers['idempotency-key']);
    assert.ok(keys.every(Boolean), 'every POST has an Idempotency-Key');
    assert.equal(new Set(keys).size, keys.length, 'each action has a fresh key');
    s.assertNoProblems();
  } finally {
    await h.screenshot(page, 'buyer-pays');
    await s.context.close();
  }
});

test('a declined payment, then a successful retry', async () => {
  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  try {
    const balcony = event.ticket_types.find((t) => t.name === 'Balcony');
    const hold = await h.createHold(server, event.id, balcony.id, 1, { name: 'Alan Turing', email: 'alan@example.com' });
    const { order } = await h.checkout(server, hold);

    // The order page gets id + secret in the fragment, as the hold page hands them over.
    await page.goto(`${server.base}/order.html#id=${order.id}&secret=${encodeURIComponent(order.secret)}`);
    await page.locator('#pay-simulated').waitFor();
    assert.doesNotMatch(page.url(), /secret/);

    await page.getByRole('button', { name: /^Decline/ }).click();
    await page.locator('#error', { hasText: 'Your card was declined' }).waitFor();
    assert.equal(await page.locator('#o-status').innerText(), 'Awaiting payment');
    await page.waitForFunction(() => !document.querySelector('#sim-pay').disabled);
    await h.screenshot(page, 'buyer-declined');

    await page.getByRole('button', { name: /^Pay €39\.99 \(simulated\)/ }).click();
    await page.locator('#o-status', { hasText: 'Paid' }).waitFor({ timeout: 15000 });
    assert.equal(await page.locator('#tickets code').count(), 1);
    assert.equal(await page.locator('#error').innerText(), '', 'the decline message is gone once paid');

    // The retry used a new payment attempt, confirmed with a fresh key.
    const confirms = h.posts(requests, /\/confirm$/);
    assert.equal(confirms.length, 2);
    const paymentIds = confirms.map((r) => new URL(r.url).pathname.split('/')[5]);
    assert.notEqual(paymentIds[0], paymentIds[1], 'the retry confirms a new payment attempt');
    assert.ok(h.posts(requests, new RegExp(`/orders/${order.id}/payments$`)).length >= 1, 'a new attempt was created');
    assert.notEqual(confirms[0].headers['idempotency-key'], confirms[1].headers['idempotency-key']);

    const paid = await h.expectStatus(h.call(server, 'GET', `/api/v1/orders/${order.id}`, { token: order.secret }), 200, 'order');
    assert.equal(paid.status, 'paid');
    await page.waitForFunction(() => [...document.querySelectorAll('#tickets img')].every((i) => i.complete && i.naturalWidth > 0));
    await s.assertNoSecretsInUrls([hold.secret, order.secret]);
    s.assertNoProblems();
  } finally {
    await h.screenshot(page, 'buyer-decline-retry');
    await s.context.close();
  }
});

async function findOrder(orderId, secrets) {
  for (const secret of secrets) {
    const r = await h.call(server, 'GET', `/api/v1/orders/${orderId}`, { token: secret });
    if (r.status === 200) return r.json;
  }
  throw new Error('no recorded secret opens the order');
}
