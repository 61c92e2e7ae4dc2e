// Organiser walk: token, create an event (exact price conversion), see it in
// the shop, see a buyer in the sales table and guest list, download the CSV.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { test, before, after } = require('node:test');
const h = require('./harness');

let server;
let browser;

before(async () => {
  server = await h.startServer('admin', { demo: false });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

// A datetime-local value 45 days ahead (the context runs in UTC).
function localDateTime(days) {
  const d = new Date(Date.now() + days * 86400000);
  return `${d.toISOString().slice(0, 10)}T19:30`;
}

test('admin creates an event, sees sales and the guest list, downloads the CSV', async () => {
  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  try {
    await page.goto(`${server.base}/admin.html`);
    await page.getByText('Simulated payments — no real money moves').waitFor();
    assert.equal(await page.locator('#admin-area').isVisible(), false);

    // A wrong token is refused in words.
    await page.getByLabel('Admin token').fill('not-the-right-token-but-long-enough-000');
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.locator('#error', { hasText: 'not accepted' }).waitFor();
    assert.equal(await page.locator('#admin-area').isVisible(), false);

    await page.getByLabel('Admin token').fill(server.adminToken);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.locator('#admin-area').waitFor();
    await page.getByText('No events yet').waitFor();
    assert.equal(await page.getByLabel('Admin token').inputValue(), '', 'the token is not left in the field');

    // Create an event with two ticket types (a third is added and removed again).
    await page.getByLabel('Event name').fill('Browser Fest');
    await page.getByLabel('Venue').fill('Old Tram Depot');
    await page.getByLabel(/Starts at/).fill(localDateTime(45));
    await page.getByLabel('Currency').fill('EUR');
    const row = (n) => page.locator('fieldset.type-row').nth(n);
    await row(0).getByLabel('Name').fill('Early bird');
    await row(0).getByLabel(/Price/).fill('4.35'); // 4.35 * 100 is 434.99999999999994 in floats
    await row(0).getByLabel('Capacity').fill('100');
    await row(0).getByLabel('Max per order').fill('4');
    await page.getByRole('button', { name: 'Add ticket type' }).click();
    await row(1).getByLabel('Name').fill('Standard');
    await row(1).getByLabel(/Price/).fill('1.15'); // 114.99999999999999 in floats
    await row(1).getByLabel('Capacity').fill('200');
    await row(1).getByLabel('Max per order').fill('6');
    await page.getByRole('button', { name: 'Add ticket type' }).click();
    assert.equal(await page.locator('fieldset.type-row').count(), 3);
    await page.getByRole('button', { name: 'Remove ticket type 3' }).click();
    assert.equal(await page.locator('fieldset.type-row').count(), 2);

    // A bad price is refused before anything is sent.
    await row(1).getByLabel(/Price/).fill('1.155');
    await page.getByRole('button', { name: 'Create event' }).click();
    await page.locator('#error', { hasText: 'at most 2 decimals' }).waitFor();
    assert.equal(h.posts(requests, /\/admin\/events$/).length, 0);
    await row(1).getByLabel(/Price/).fill('1.15');

    await page.getByRole('button', { name: 'Create event' }).dblclick();
    await page.locator('#status', { hasText: 'Created “Browser Fest”' }).waitFor();
    assert.equal(h.posts(requests, /\/admin\/events$/).length, 1, 'one create request');

    const events = await h.expectStatus(h.call(server, 'GET', '/api/v1/admin/events', { token: server.adminToken }), 200, 'admin events');
    const ev = events.find((e) => e.name === 'Browser Fest');
    assert.ok(ev, 'the event exists');
    assert.equal(ev.venue, 'Old Tram Depot');
    assert.equal(ev.currency, 'EUR');
    assert.equal(ev.starts_at.slice(0, 16), localDateTime(45), 'starts_at is the entered local time (UTC here)');
    const byName = Object.fromEntries(ev.ticket_types.map((t) => [t.name, t]));
    assert.equal(byName['Early bird'].price_minor, 435);
    assert.equal(byName.Standard.price_minor, 115);
    assert.equal(byName['Early bird'].capacity, 100);
    assert.equal(byName['Early bird'].max_per_order, 4);
    assert.equal(byName.Standard.capacity, 200);
    assert.equal(byName.Standard.max_per_order, 6);

    const adminCard = page.locator(`article[data-event-id="${ev.id}"]`);
    await adminCard.waitFor();
    assert.match(await adminCard.innerText(), /€4\.35/);

    // The event is in the shop.
    await page.goto(`${server.base}/`);
    const shopCard = page.locator(`article[data-event-id="${ev.id}"]`);
    await shopCard.waitFor();
    assert.match(await shopCard.innerText(), /Browser Fest[\s\S]*Old Tram Depot[\s\S]*€4\.35[\s\S]*€1\.15/);

    // A purchase through the API, then the admin sees it.
    const order = await h.buy(server, ev.id, byName['Early bird'].id, 2, { name: 'Ada Lovelace', email: 'ada@example.com' });
    const codes = order.tickets.map((t) => t.code);
    assert.equal(codes.length, 2);

    await page.goto(`${server.base}/admin.html`); // the token is remembered for this tab
    const card = page.locator(`article[data-event-id="${ev.id}"]`);
    await card.waitFor();
    const early = card.locator(`tr[data-ticket-type-id="${byName['Early bird'].id}"]`);
    assert.equal(await early.locator('[data-col="sold"]').innerText(), '2');
    assert.equal(await early.locator('[data-col="held"]').innerText(), '0');
    assert.equal(await early.locator('[data-col="available"]').innerText(), '98');
    assert.equal(await early.locator('[data-col="revenue"]').innerText(), '€8.70');
    assert.equal(await card.locator('[data-col="total-revenue"]').innerText(), '€8.70');

    await card.getByRole('button', { name: 'Show guest list for Browser Fest' }).click();
    const guest = card.locator('table.guest-list tbody tr');
    await guest.first().waitFor();
    assert.equal(await guest.count(), 1);
    const guestText = await guest.innerText();
    assert.match(guestText, /Ada Lovelace/);
    assert.match(guestText, /ada@example\.com/);
    assert.match(guestText, /Early bird/);
    for (const code of codes) assert.ok(guestText.includes(code), `guest list shows ${code}`);

    // CSV download through a blob, with the bearer header.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      card.getByRole('button', { name: 'Download CSV guest list for Browser Fest' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `guests-${ev.id}.csv`);
    const csv = fs.readFileSync(await download.path(), 'utf8');
    const lines = csv.trim().split(/\r?\n/);
    assert.equal(lines[0], 'order_id,name,email,ticket_type,ticket_code,checked_in_at,checkin_device');
    assert.equal(lines.length, 3, 'a header and one row per ticket');
    for (const code of codes) {
      assert.ok(lines.some((l) => l === `${order.id},Ada Lovelace,ada@example.com,Early bird,${code},,`), `CSV row for ${code}`);
    }
    const csvReq = requests.find((r) => r.url.includes('format=csv'));
    assert.equal(csvReq.headers.authorization, `Bearer ${server.adminToken}`);

    // The token only ever travels in the Authorization header, and is not kept beyond the tab.
    await s.assertNoSecretsInUrls();
    const local = await page.evaluate(() => JSON.stringify(localStorage));
    assert.ok(!local.includes(server.adminToken), 'the admin token is not in localStorage');
    s.assertNoProblems();
  } finally {
    await h.screenshot(page, 'admin');
    await s.context.close();
  }
});
