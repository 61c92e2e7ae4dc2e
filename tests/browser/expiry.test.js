// A hold that expires while the hold page is open: the countdown runs out, the
// page says the hold expired and offers to start again.
'use strict';

const assert = require('node:assert/strict');
const { test, before, after } = require('node:test');
const h = require('./harness');

const HOLD_SECONDS = 4;

let server;
let browser;

before(async () => {
  server = await h.startServer('expiry', { holdSeconds: HOLD_SECONDS });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('a hold expires while the hold page is open', async () => {
  const event = await h.createEvent(server, {
    name: 'Short Hold Gig',
    ticket_types: [{ name: 'Entry', price_minor: 900, capacity: 10, max_per_order: 3 }],
  });
  const entry = event.ticket_types[0];
  const config = await h.expectStatus(h.call(server, 'GET', '/api/v1/config'), 200, 'config');
  assert.equal(config.hold_seconds, HOLD_SECONDS);

  const s = await h.openPage(browser, server);
  const { page } = s;
  try {
    await page.goto(`${server.base}/`);
    await page.locator('#event').selectOption(event.id);
    await page.getByLabel('Quantity of Entry').fill('3');
    await page.getByLabel('Your name').fill('Katherine Johnson');
    await page.getByLabel('Email').fill('katherine@example.com');
    await page.getByRole('button', { name: 'Reserve' }).click();
    await page.waitForURL(/\/hold\.html#id=/);

    // The countdown is visible and short.
    await page.waitForFunction(() => /^00:0[0-4]$/.test(document.querySelector('#countdown').textContent));
    assert.equal(await page.locator('#countdown-line').isVisible(), true);
    assert.equal(await page.locator('#h-total').innerText(), '€27.00');

    // Expiry: the page says so and offers to start again; Pay is gone.
    await page.getByRole('heading', { level: 1, name: /expired/i }).waitFor({ timeout: HOLD_SECONDS * 1000 + 5000 });
    assert.match(await page.locator('#ended').innerText(), /expired/i);
    assert.equal(await page.getByRole('button', { name: /^Pay/ }).isVisible(), false);
    assert.equal(await page.getByRole('button', { name: 'Release' }).isVisible(), false);
    assert.equal(await page.locator('#countdown-line').isVisible(), false);
    const again = page.getByRole('link', { name: 'Start again' });
    assert.equal(await again.getAttribute('href'), '/');

    // The server agrees: the hold is expired and its tickets are available again.
    const secrets = await s.assertNoSecretsInUrls();
    const holdId = new URL(page.url()).hash.match(/id=([^&]+)/)[1];
    const holdSecret = secrets.find((x) => x !== server.adminToken);
    await h.waitFor(async () => {
      const r = await h.call(server, 'GET', `/api/v1/holds/${holdId}`, { token: holdSecret });
      return r.status === 200 && r.json.status === 'expired';
    }, 10000, 'the server to report the hold as expired');
    await h.waitFor(async () => {
      const ev = await h.expectStatus(h.call(server, 'GET', `/api/v1/events/${event.id}`), 200, 'event');
      return ev.ticket_types[0].available === 10;
    }, 10000, 'the tickets to be available again');

    await h.screenshot(page, 'expiry');
    s.assertNoProblems();

    // Start again leads back to the shop.
    await again.click();
    await page.waitForURL(`${server.base}/`);
    await page.locator(`tr[data-ticket-type-id="${entry.id}"]`, { hasText: '10 left' }).waitFor();
  } catch (err) {
    await h.screenshot(page, 'expiry');
    throw err;
  } finally {
    await s.context.close();
  }
});
