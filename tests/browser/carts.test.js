// Several ticket types in one order (issue #15): the buyer picks 2 of one type
// and 1 of another on the shop page, sees the total, reserves, checks out,
// pays (simulated) and gets 3 tickets, each with its type. And an order where
// one type no longer fits: the page names that type, and nothing is held.
'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const h = require('./harness');

let server;
let browser;

before(async () => {
  server = await h.startServer('carts');
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const holdPosts = (requests) => h.posts(requests, /^\/api\/v1\/events\/[^/]+\/holds$/);

async function publicEvent(id) {
  return h.expectStatus(h.call(server, 'GET', `/api/v1/events/${id}`), 200, 'public event');
}

async function available(eventId) {
  const ev = await publicEvent(eventId);
  return Object.fromEntries(ev.ticket_types.map((t) => [t.name, t.available]));
}

test('2 Standing + 1 Balcony in one order: total, hold, checkout, payment, 3 tickets with their types', async () => {
  const event = await h.createEvent(server, {
    name: 'Two Stages Festival',
    venue: 'Riverside Park',
    max_tickets_per_order: 4,
    ticket_types: [
      { name: 'Standing', price_minor: 1250, capacity: 50, max_per_order: 4 },
      { name: 'Balcony', price_minor: 3999, capacity: 20, max_per_order: 2 },
    ],
  });
  const type = (name) => event.ticket_types.find((t) => t.name === name);
  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  try {
    await page.goto(`${server.base}/`);
    await page.locator(`article[data-event-id="${event.id}"]`).waitFor();
    await page.locator('#event').selectOption(event.id);

    // Every type of the event in one form, with its price and availability.
    const standing = page.getByLabel('Quantity of Standing');
    const balcony = page.getByLabel('Quantity of Balcony');
    await standing.waitFor();
    assert.match(await page.locator(`#qty-info-${type('Standing').id}`).innerText(), /€12\.50 each · 50 left · up to 4 per order/);
    assert.match(await page.locator(`#qty-info-${type('Balcony').id}`).innerText(), /€39\.99 each · 20 left · up to 2 per order/);
    assert.equal(await standing.getAttribute('max'), '4');
    assert.equal(await balcony.getAttribute('max'), '2');
    assert.match(await page.locator('#order-limit').innerText(), /At most 4 tickets per order/);
    assert.equal(await page.locator('#reserve-button').isDisabled(), true, 'nothing chosen: Reserve is disabled');
    await h.screenshot(page, 'carts-1-shop');

    // The total follows the quantities.
    await standing.fill('2');
    assert.equal(await page.locator('#total').innerText(), '€25.00');
    await balcony.fill('1');
    assert.equal(await page.locator('#total-tickets').innerText(), 'Total for 3 tickets');
    assert.equal(await page.locator('#total').innerText(), '€64.99');
    assert.equal(await page.locator('#reserve-button').isDisabled(), false);

    await page.getByLabel('Your name').fill('Hedy Lamarr');
    await page.getByLabel('Email').fill('hedy@example.com');

    // More than the event allows in one order: stopped before anything is sent.
    await standing.fill('4');
    await page.locator('#limit-warning', { hasText: 'more than the 4 tickets one order can have' }).waitFor();
    await h.screenshot(page, 'carts-2-over-limit');
    await page.getByRole('button', { name: 'Reserve' }).click();
    await page.locator('#error', { hasText: 'at most 4 tickets; you chose 5' }).waitFor();
    assert.equal(holdPosts(requests).length, 0, 'no hold request over the order limit');
    await standing.fill('2');
    assert.equal(await page.locator('#limit-warning').isVisible(), false);
    assert.equal(await page.locator('#total').innerText(), '€64.99');
    await h.screenshot(page, 'carts-3-chosen');

    await page.locator('#reserve-button').dblclick();
    await page.waitForURL(/\/hold\.html#id=/);
    const sent = holdPosts(requests);
    assert.equal(sent.length, 1, 'exactly one hold request');
    assert.ok(sent[0].headers['idempotency-key'], 'the hold request has an Idempotency-Key');
    assert.deepEqual(JSON.parse(sent[0].body), {
      lines: [
        { ticket_type_id: type('Standing').id, quantity: 2 },
        { ticket_type_id: type('Balcony').id, quantity: 1 },
      ],
      name: 'Hedy Lamarr',
      email: 'hedy@example.com',
    });

    // The hold page: both lines and the total.
    await page.locator('#hold-card').waitFor();
    const lineTexts = async (table) => {
      const rows = page.locator(`${table} tbody tr`);
      await rows.first().waitFor();
      const out = [];
      for (let i = 0; i < await rows.count(); i++) out.push(await rows.nth(i).locator('th, td').allInnerTexts());
      return out;
    };
    assert.deepEqual(await lineTexts('#h-lines'), [
      ['Standing', '2', '€12.50', '€25.00'],
      ['Balcony', '1', '€39.99', '€39.99'],
    ]);
    assert.equal(await page.locator('#h-lines [data-role="total-quantity"]').innerText(), '3');
    assert.equal(await page.locator('#h-total').innerText(), '€64.99');
    assert.deepEqual(await available(event.id), { Standing: 48, Balcony: 19 }, 'both lines are held');
    await h.screenshot(page, 'carts-4-hold');

    await page.getByRole('button', { name: 'Pay €64.99' }).click();
    await page.waitForURL(/\/order\.html#id=/);
    await page.locator('#pay-simulated').waitFor();
    assert.deepEqual(await lineTexts('#o-lines'), [
      ['Standing', '2', '€12.50', '€25.00'],
      ['Balcony', '1', '€39.99', '€39.99'],
    ]);
    assert.equal(await page.locator('#o-total').innerText(), '€64.99');
    await h.screenshot(page, 'carts-5-payment');

    await page.getByRole('button', { name: 'Pay €64.99 (simulated)' }).click();
    await page.locator('#o-status', { hasText: 'Paid' }).waitFor({ timeout: 15000 });
    await page.locator('#tickets-section').waitFor();
    const tickets = page.locator('#tickets li');
    assert.equal(await tickets.count(), 3);
    const typeNames = await page.locator('#tickets li .ticket-type').allInnerTexts();
    assert.deepEqual([...typeNames].sort(), ['Balcony', 'Standing', 'Standing']);
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll('#tickets img')];
      return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    }, null, { timeout: 10000 });
    assert.deepEqual(await lineTexts('#o-lines'), [
      ['Standing', '2', '€12.50', '€25.00'],
      ['Balcony', '1', '€39.99', '€39.99'],
    ]);
    await h.screenshot(page, 'carts-6-paid');

    // The server's order agrees with the page, ticket by ticket.
    const secrets = await s.assertNoSecretsInUrls();
    const orderId = new URL(page.url()).hash.match(/id=([^&]+)/)[1];
    let order = null;
    for (const secret of secrets) {
      const r = await h.call(server, 'GET', `/api/v1/orders/${orderId}`, { token: secret });
      if (r.status === 200) order = r.json;
    }
    assert.ok(order, 'a recorded secret opens the order');
    assert.equal(order.status, 'paid');
    assert.equal(order.amount_minor, 6499);
    for (const t of order.tickets) {
      const li = page.locator(`#tickets li[data-ticket-code="${t.code}"]`);
      assert.equal(await li.locator('.ticket-type').innerText(), t.ticket_type_name);
    }
    assert.deepEqual(await available(event.id), { Standing: 48, Balcony: 19 });

    // The organiser sees the sales per type and the order in the guest list, each ticket with its type.
    await page.goto(`${server.base}/admin.html`);
    await page.getByLabel('Admin token').fill(server.adminToken);
    await page.getByRole('button', { name: 'Use token' }).click();
    const card = page.locator(`#admin-events article[data-event-id="${event.id}"]`);
    await card.waitFor();
    assert.match(await card.locator('.meta').innerText(), /at most 4 tickets per order/);
    const sales = async (name) => card.locator(`tr[data-ticket-type-id="${type(name).id}"] td`).allInnerTexts();
    assert.deepEqual(await sales('Standing'), ['€12.50', '50', '2', '0', '48', '€25.00']);
    assert.deepEqual(await sales('Balcony'), ['€39.99', '20', '1', '0', '19', '€39.99']);
    assert.equal(await card.locator('[data-col="total-revenue"]').innerText(), '€64.99');
    await card.getByRole('button', { name: 'Show guest list for Two Stages Festival' }).click();
    const guest = card.locator(`table.guest-list tr[data-order-id="${orderId}"]`);
    await guest.waitFor();
    assert.equal(await guest.locator('[data-col="ticket-types"]').innerText(), '2 × Standing, 1 × Balcony');
    for (const t of order.tickets) {
      assert.equal(await guest.locator(`[data-ticket="${t.code}"]`).innerText(), `${t.code} ${t.ticket_type_name}`);
    }
    await h.screenshot(page, 'carts-7-admin');
    s.assertNoProblems();
  } finally {
    await h.screenshot(page, 'carts-end');
    await s.context.close();
  }
});

test('one type no longer fits: the page names it, says how many are left, and nothing is held', async () => {
  const event = await h.createEvent(server, {
    name: 'Small Club Double Bill',
    venue: 'Cellar Bar',
    ticket_types: [
      { name: 'Front row', price_minor: 4500, capacity: 2, max_per_order: 4 },
      { name: 'Standing', price_minor: 1500, capacity: 40, max_per_order: 4 },
    ],
  });
  const type = (name) => event.ticket_types.find((t) => t.name === name);
  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  // Lets the test keep the shop's event list stale while someone else buys.
  let frozen = false;
  let snapshot = null;
  await page.route('**/api/v1/events', async (route) => {
    if (frozen && snapshot) {
      await route.fulfill({ status: 200, contentType: 'application/json', body: snapshot });
      return;
    }
    const res = await route.fetch();
    snapshot = await res.text();
    await route.fulfill({ response: res, body: snapshot });
  });
  try {
    await page.goto(`${server.base}/`);
    await page.locator('#event').selectOption(event.id);
    const front = page.getByLabel('Quantity of Front row');
    const standing = page.getByLabel('Quantity of Standing');
    await page.locator(`#qty-info-${type('Front row').id}`, { hasText: '2 left' }).waitFor();

    // The page still shows 2 Front row seats; another buyer holds one of them.
    frozen = true;
    await h.createHold(server, event.id, type('Front row').id, 1, { name: 'Someone Else', email: 'else@example.com' });

    await front.fill('2');
    await standing.fill('1');
    assert.equal(await page.locator('#total').innerText(), '€105.00');
    await page.getByLabel('Your name').fill('Emmy Noether');
    await page.getByLabel('Email').fill('emmy@example.com');
    await h.screenshot(page, 'carts-soldout-1-chosen');
    await page.getByRole('button', { name: 'Reserve' }).click();

    const error = page.locator('#error', { hasText: 'not enough Front row tickets left' });
    await error.waitFor();
    const text = await error.innerText();
    assert.match(text, /you asked for 2, only 1 left/);
    assert.match(text, /Nothing was reserved/);
    assert.doesNotMatch(text, /Standing/, 'only the type that did not fit is named');
    assert.equal(await front.getAttribute('aria-invalid'), 'true');
    assert.equal(await standing.getAttribute('aria-invalid'), null);
    assert.equal(holdPosts(requests).length, 1);
    assert.match(page.url(), /\/$/, 'still on the shop');
    await h.screenshot(page, 'carts-soldout-2-refused');

    // Nothing of the order is held: Standing is untouched, Front row has only the other buyer's hold.
    assert.deepEqual(await available(event.id), { 'Front row': 1, Standing: 40 });

    // The fresh availability reaches the page, and the form now stops 2 Front row itself.
    frozen = false;
    await page.locator(`#qty-info-${type('Front row').id}`, { hasText: '1 left' }).waitFor({ timeout: 10000 });
    await page.locator(`tr[data-ticket-type-id="${type('Front row').id}"]`, { hasText: '1 left' }).waitFor();
    assert.equal(await front.getAttribute('max'), '1');
    await page.getByRole('button', { name: 'Reserve' }).click();
    await page.locator('#error', { hasText: 'Only 1 Front row ticket is left' }).waitFor();
    assert.equal(holdPosts(requests).length, 1, 'no second hold request');
    await h.screenshot(page, 'carts-soldout-3-refreshed');
    assert.deepEqual(await available(event.id), { 'Front row': 1, Standing: 40 });
    s.assertNoProblems();
  } finally {
    await h.screenshot(page, 'carts-soldout-end');
    await s.context.close();
  }
});
