// Sold-out ticket types show "Sold out", cannot be chosen, and the form
// refuses them; availability refreshes live; the server's sold_out answer is
// shown in words.
'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const h = require('./harness');

let server;
let browser;

before(async () => {
  server = await h.startServer('soldout');
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('a sold-out type shows "Sold out" and the form refuses it', async () => {
  const event = await h.createEvent(server, {
    name: 'Tiny Venue Night',
    ticket_types: [
      { name: 'Front row', price_minor: 5000, capacity: 1, max_per_order: 1 },
      { name: 'Last seat', price_minor: 2000, capacity: 1, max_per_order: 1 },
      { name: 'Standing', price_minor: 1500, capacity: 40, max_per_order: 4 },
    ],
  });
  const type = (name) => event.ticket_types.find((t) => t.name === name);
  await h.buy(server, event.id, type('Front row').id, 1);

  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  // Lets the test keep the shop's event list stale for a moment.
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
    const frontRow = page.locator(`tr[data-ticket-type-id="${type('Front row').id}"]`);
    await frontRow.waitFor();
    assert.match(await frontRow.innerText(), /Sold out/);
    assert.equal(await frontRow.getByRole('button').isDisabled(), true, 'a sold-out type cannot be chosen');
    const frontQty = page.getByLabel('Quantity of Front row');
    assert.equal(await frontQty.isDisabled(), true, 'the sold-out quantity is disabled');
    assert.match(await page.locator(`#qty-info-${type('Front row').id}`).innerText(), /Sold out/);

    // Even if a sold-out type gets a quantity somehow, the form refuses it
    // without asking the server.
    const forceQuantity = (n) => page.evaluate(([id, value]) => {
      const input = document.querySelector(`input[data-line-type-id="${id}"]`);
      input.value = value;
      input.dispatchEvent(new Event('input', { bubbles: true }));
    }, [type('Front row').id, String(n)]);
    await forceQuantity(1);
    await page.getByLabel('Your name').fill('Rosalind Franklin');
    await page.getByLabel('Email').fill('rosalind@example.com');
    await page.getByRole('button', { name: 'Reserve' }).click();
    await page.locator('#error', { hasText: /sold out/i }).waitFor();
    assert.equal(h.posts(requests, /\/holds$/).length, 0, 'no hold request for a sold-out type');
    assert.match(page.url(), /\/$/, 'still on the shop');
    await forceQuantity(0);

    // The last seat sells out while the buyer fills in the form (the page's
    // list is held stale meanwhile): the server says sold_out, the page says
    // so in words and then shows the type as sold out.
    frozen = true;
    await page.locator(`tr[data-ticket-type-id="${type('Last seat').id}"]`).getByRole('button', { name: /Choose/ }).click();
    await h.createHold(server, event.id, type('Last seat').id, 1);
    await page.getByRole('button', { name: 'Reserve' }).click();
    await page.locator('#error', { hasText: /not enough Last seat tickets left/ }).waitFor();
    frozen = false;
    assert.equal(h.posts(requests, /\/holds$/).length, 1);
    assert.match(page.url(), /\/$/);
    const lastSeat = page.locator(`tr[data-ticket-type-id="${type('Last seat').id}"]`);
    await lastSeat.locator('text=Sold out').waitFor({ timeout: 10000 });

    // Live availability: a purchase elsewhere shows up without a reload.
    const standing = page.locator(`tr[data-ticket-type-id="${type('Standing').id}"]`);
    assert.match(await standing.innerText(), /40 left/);
    await h.buy(server, event.id, type('Standing').id, 3);
    await standing.locator('text=37 left').waitFor({ timeout: 10000 });
    s.assertNoProblems();
  } finally {
    await h.screenshot(page, 'soldout');
    await s.context.close();
  }
});
