// The e-mail a buyer gets, as a mail client shows it: the HTML part received
// by a real SMTP server (aiosmtpd, tests/mail/server.py) rendered in Chromium
// with its inline QR codes (screenshot kept: artifacts/mail-html.png), and the
// outbox section of the admin page, with and without an SMTP server.
'use strict';

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const { test, before, after } = require('node:test');
const h = require('./harness');

const MAIL_DIR = path.resolve(__dirname, '..', 'mail');
let smtp;
let smtpChild;
let server;
let bare;
let browser;

async function startSmtp() {
  const setup = spawnSync('bash', [path.join(MAIL_DIR, 'setup.sh')], { stdio: 'inherit' });
  assert.equal(setup.status, 0, 'tests/mail/setup.sh failed');
  smtpChild = spawn(path.join(MAIL_DIR, '.venv', 'bin', 'python'), [path.join(MAIL_DIR, 'server.py')],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: smtpChild.stdout }).once('line', resolve);
    smtpChild.once('exit', (code) => reject(new Error(`mail server exited with ${code}`)));
  });
  const ports = JSON.parse(line);
  return { smtpPort: ports.smtp, http: `http://127.0.0.1:${ports.http}` };
}

before(async () => {
  smtp = await startSmtp();
  server = await h.startServer('mail', {
    env: {
      NTS_SMTP_URL: `smtp://127.0.0.1:${smtp.smtpPort}?tls=none`,
      NTS_MAIL_FROM: 'Test Tickets <tickets@nts.test>',
      NTS_PUBLIC_URL: 'http://shop.nts.test',
      NTS_MAIL_KEY: 'test-mail-key-0123456789abcdef0123',
      NTS_MAIL_POLL_MS: '100',
    },
  });
  bare = await h.startServer('mail_bare');
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (bare) await bare.stop();
  if (smtpChild) smtpChild.kill();
});

test('the HTML e-mail shows the order, its link and a QR code per ticket', async () => {
  const ev = await h.createEvent(server, {
    name: 'Mail Night',
    venue: 'The Post Office',
    ticket_types: [{ name: 'Standing', price_minor: 1750, capacity: 50, max_per_order: 4 }],
  });
  const order = await h.buy(server, ev.id, ev.ticket_types[0].id, 2, { name: 'Ada Lovelace', email: 'ada@example.com' });
  const messages = await h.waitFor(async () => {
    const list = await (await fetch(`${smtp.http}/messages`)).json();
    return list.length ? list : null;
  }, 60000, 'the e-mail');
  assert.equal(messages.length, 1);

  const context = await browser.newContext({ viewport: { width: 700, height: 900 } });
  const page = await context.newPage();
  try {
    await page.goto(`${smtp.http}/messages/0/html`);
    await page.getByRole('heading', { name: 'Mail Night' }).waitFor();
    for (const text of ['Hello Ada Lovelace', 'The Post Office', '2 × Standing', 'EUR 35.00']) {
      assert.ok((await page.locator('body').innerText()).includes(text), `the e-mail says ${text}`);
    }
    const link = page.getByRole('link', { name: 'Open your order' });
    assert.equal(await link.getAttribute('href'), `http://shop.nts.test/order.html#id=${order.id}&secret=${order.secret}`);
    const images = page.getByRole('img', { name: /QR code of ticket/ });
    assert.equal(await images.count(), 2);
    for (let i = 0; i < 2; i += 1) {
      const width = await images.nth(i).evaluate((img) => img.complete && img.naturalWidth);
      assert.ok(width > 100, `QR ${i + 1} is shown (${width} px)`);
      assert.ok((await page.locator('body').innerText()).includes(order.tickets[i].signed_code), 'the code under its QR');
    }
    await h.screenshot(page, 'mail-html');
  } finally {
    await context.close();
  }
});

test('the admin page lists the outbox, and says when no SMTP server is configured', async () => {
  for (const [srv, name] of [[server, 'mail-admin'], [bare, 'mail-admin-no-smtp']]) {
    if (srv === bare) {
      const ev = await h.createEvent(bare);
      await h.buy(bare, ev.id, ev.ticket_types[0].id, 1, { name: 'Bob Byte', email: 'bob@example.com' });
    }
    const s = await h.openPage(browser, srv);
    const { page } = s;
    try {
      await page.goto(`${srv.base}/admin.html`);
      await page.getByLabel('Admin token').fill(srv.adminToken);
      await page.getByRole('button', { name: 'Use token' }).click();
      const section = page.locator('#admin-mail');
      if (srv === server) {
        await section.locator('tr[data-status="sent"]', { hasText: 'ada@example.com' }).waitFor();
        assert.equal(await section.locator('[data-role="smtp-missing"]').count(), 0);
        await section.locator('[data-role="mail-counts"]', { hasText: '1 sent' }).waitFor();
      } else {
        await section.locator('[data-role="smtp-missing"]').waitFor();
        await section.locator('tr[data-status="pending"]', { hasText: 'bob@example.com' }).waitFor();
      }
      await page.locator('#mail-heading').scrollIntoViewIfNeeded();
      await h.screenshot(page, name);
      s.assertNoProblems();
    } finally {
      await s.context.close();
    }
  }
});
