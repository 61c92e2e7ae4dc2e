// Organiser walk through money: refund an order from its guest list (seats
// kept), release those seats later, refund another by id (seats released),
// see a refund the provider could not make, ask for it again, and read the payments audit.
'use strict';

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { test, before, after } = require('node:test');
const h = require('./harness');

let server;
let browser;

before(async () => {
  server = await h.startServer('admin_payments', { demo: false, env: { NTS_PAYMENTS: 'simulated' } });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

function sql(query) {
  const url = new URL(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres');
  url.pathname = `/${server.db}`;
  const r = spawnSync('psql', [url.href, '-v', 'ON_ERROR_STOP=1', '-qAtc', query], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('admin refunds orders, releases seats, sees a failed refund and the audit', async () => {
  const ev = await h.createEvent(server, {
    name: 'Refund Night',
    ticket_types: [{ name: 'Seat', price_minor: 2500, capacity: 50, max_per_order: 4 }],
  });
  const tt = ev.ticket_types[0].id;
  const ada = await h.buy(server, ev.id, tt, 2, { name: 'Ada Lovelace', email: 'ada@example.com' });
  const bob = await h.buy(server, ev.id, tt, 1, { name: 'Bob Byte', email: 'bob@example.com' });
  const cy = await h.buy(server, ev.id, tt, 1, { name: 'Cy Cipher', email: 'cy@example.com' });

  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  try {
    await page.goto(`${server.base}/admin.html`);
    await page.getByLabel('Admin token').fill(server.adminToken);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.locator('#admin-area').waitFor();
    await page.locator('#admin-refunds', { hasText: 'No refunds.' }).waitFor();
    const card = page.locator(`article[data-event-id="${ev.id}"]`);
    const sold = () => card.locator(`tr[data-ticket-type-id="${tt}"] [data-col="sold"]`).innerText();
    // The sales table is refreshed after the outcome is announced.
    const soldBecomes = (n) => card.locator(`tr[data-ticket-type-id="${tt}"] [data-col="sold"]`, { hasText: new RegExp(`^${n}$`) }).waitFor();
    assert.equal(await sold(), '4');

    // The audit first: the books agree.
    await page.getByRole('button', { name: 'Run the audit' }).click();
    await page.locator('[data-audit="clean"]', { hasText: 'The books agree. 3 payments checked' }).waitFor();

    // From the guest list: refund Ada's order, keeping the seats sold.
    await card.getByRole('button', { name: 'Show guest list for Refund Night' }).click();
    await card.locator(`table.guest-list tr[data-order-id="${ada.id}"]`).waitFor();
    await card.getByRole('button', { name: 'Refund the order of Ada Lovelace (ada@example.com)' }).click();
    const confirm = card.getByRole('group', { name: 'Refund the order of Ada Lovelace (ada@example.com)' });
    await confirm.getByRole('button', { name: 'Keep' }).click(); // changed their mind once
    await card.getByRole('button', { name: 'Refund the order of Ada Lovelace (ada@example.com)' }).click();
    await confirm.getByRole('button', { name: 'Refund in full' }).dblclick();
    await page.locator('#status', { hasText: 'The order was refunded. The seats stay sold.' }).waitFor();
    assert.equal(h.posts(requests, new RegExp(`/admin/orders/${ada.id}/refund$`)).length, 1, 'one refund request');
    await card.locator(`table.guest-list tr[data-order-id="${ada.id}"]`).waitFor({ state: 'detached' });
    assert.equal(await sold(), '4', 'the seats stay sold');

    const adaRow = page.locator(`table.refunds tr[data-order-id="${ada.id}"]`);
    await adaRow.waitFor();
    assert.match(await adaRow.innerText(), /Refund Night[\s\S]*ada@example\.com[\s\S]*€50\.00[\s\S]*Refunded[\s\S]*Still sold/);
    await h.screenshot(page, 'admin_payments_refunded');

    // Later the organiser puts those seats back on sale.
    await adaRow.getByRole('button', { name: `Release the seats of order ${ada.id}` }).click();
    await page.locator('#status', { hasText: 'The seats are back on sale.' }).waitFor();
    await adaRow.getByText('Back on sale').waitFor();
    await soldBecomes(2);

    // By order id, releasing the seats at once; an unknown id is refused in words.
    await page.getByLabel('Order id').fill('not an id');
    await page.getByRole('button', { name: 'Refund order' }).click();
    await page.locator('#error', { hasText: 'Enter the order id' }).waitFor();
    await page.getByLabel('Order id').fill('00000000-0000-4000-8000-000000000000');
    await page.getByRole('button', { name: 'Refund order' }).click();
    await page.locator('#error', { hasText: 'There is no order with that id.' }).waitFor();
    await page.getByLabel('Order id').fill(bob.id);
    await page.getByLabel('Put the seats back on sale').first().check();
    await page.getByRole('button', { name: 'Refund order' }).click();
    await page.locator('#status', { hasText: 'The order was refunded. The seats are back on sale.' }).waitFor();
    await soldBecomes(1);
    await page.getByLabel('Order id').fill(bob.id);
    await page.getByRole('button', { name: 'Refund order' }).click();
    await page.locator('#error', { hasText: 'This order has been refunded already.' }).waitFor();

    // A refund the provider could not make (the buyer's card was closed):
    // recorded as Stripe reports it, shown to the organiser and in the audit.
    sql(`UPDATE orders SET status = 'refunded' WHERE id = '${cy.id}';
         UPDATE payments SET status = 'refund_failed'
         WHERE order_id = '${cy.id}' AND status = 'succeeded';
         INSERT INTO refunds (event_id, id, payment_id, idempotency_key, amount_minor, currency, status, reason, failure)
         SELECT o.event_id, gen_random_uuid(), p.id, 'nts-refund-' || p.id, p.amount_minor, p.currency, 'failed',
                'requested_by_organiser', 'expired_or_canceled_card'
         FROM payments p JOIN orders o ON o.id = p.order_id
         WHERE p.order_id = '${cy.id}' AND p.status = 'refund_failed'`);
    await page.getByRole('button', { name: 'Refresh' }).last().click();
    const cyRow = page.locator(`table.refunds tr[data-order-id="${cy.id}"]`);
    await cyRow.waitFor();
    assert.match(await cyRow.innerText(), /Failed — the buyer is still owed the money[\s\S]*expired_or_canceled_card/);
    await page.getByRole('button', { name: 'Run the audit' }).click();
    await page.locator('[data-audit="mismatches"]', { hasText: '1 to look at.' }).waitFor();
    const finding = page.locator('table.audit tr[data-kind="refund_failed"]');
    assert.match(await finding.innerText(), new RegExp(`Refund failed[\\s\\S]*${cy.id}[\\s\\S]*expired_or_canceled_card`));
    await h.screenshot(page, 'admin_payments_audit');

    // The organiser asks the provider again; this time the money goes back.
    await cyRow.getByRole('button', { name: `Ask the provider again to refund order ${cy.id}` }).click();
    await page.locator('#status', { hasText: 'The order was refunded.' }).waitFor();
    await cyRow.locator('td', { hasText: /^Refunded$/ }).waitFor();
    assert.equal(h.posts(requests, new RegExp(`/admin/orders/${cy.id}/refund/retry$`)).length, 1, 'one retry request');
    await page.getByRole('button', { name: 'Run the audit' }).click();
    await page.locator('[data-audit="clean"]', { hasText: 'The books agree.' }).waitFor();
    s.assertNoProblems();
  } finally {
    await s.context.close();
  }
});
