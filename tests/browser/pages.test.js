// Page hygiene and keyboard use: no inline script/handlers/styles (the server
// sends a strict Content-Security-Policy), every field labelled, and a
// keyboard-only reservation that is then released. Runs with the demo event on.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');
const h = require('./harness');

const STATIC = path.resolve(__dirname, '..', '..', 'static');
const PAGES = fs.readdirSync(STATIC).filter((f) => f.endsWith('.html'));

let server;
let browser;

before(async () => {
  server = await h.startServer('pages', { demo: true });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('pages carry no inline script, event handler or style attribute', () => {
  assert.ok(PAGES.includes('index.html') && PAGES.includes('admin.html'));
  for (const file of PAGES) {
    const html = fs.readFileSync(path.join(STATIC, file), 'utf8');
    for (const tag of html.match(/<script\b[^>]*>/gi) || []) {
      assert.match(tag, /\ssrc="\/[\w./-]+\.js"/, `${file}: every script is an external file: ${tag}`);
      assert.match(tag, /\sdefer\b/, `${file}: scripts are deferred: ${tag}`);
    }
    assert.doesNotMatch(html, /<script\b[^>]*>[^<\s]/i, `${file}: no inline script body`);
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, `${file}: no inline event handlers`);
    assert.doesNotMatch(html, /\sstyle\s*=/i, `${file}: no style attributes`);
    assert.doesNotMatch(html, /https?:\/\//i, `${file}: nothing loaded from elsewhere`);
  }
});

test('every field has a label, every page one h1, and the pages load cleanly', async () => {
  const s = await h.openPage(browser, server);
  const { page } = s;
  try {
    for (const file of PAGES.filter((f) => f !== '404.html')) {
      await page.goto(`${server.base}/${file === 'index.html' ? '' : file}`);
      await page.waitForLoadState('networkidle');
      const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
        .filter((el) => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label'))
        .map((el) => el.id || el.name || el.outerHTML));
      assert.deepEqual(unlabelled, [], `${file}: fields without a label`);
      assert.equal(await page.locator('h1').count(), 1, `${file}: one h1`);
      assert.equal(await page.locator('[aria-live], [role="status"], [role="alert"]').count() >= 2, true,
        `${file}: live regions for status and errors`);
    }
    s.assertNoProblems();
  } finally {
    await s.context.close();
  }
});

test('keyboard only: reserve the demo event, then release the hold', async () => {
  const s = await h.openPage(browser, server);
  const { page, requests } = s;
  try {
    const events = await h.expectStatus(h.call(server, 'GET', '/api/v1/events'), 200, 'events');
    assert.ok(events.length >= 1, 'the demo event is on sale');
    const demo = events[0];
    const type = demo.ticket_types.find((t) => t.available > 0);

    await page.goto(`${server.base}/`);
    const choose = page.locator(`tr[data-ticket-type-id="${type.id}"] button`);
    await choose.waitFor();
    // Tab from the top of the page until the "Choose" button has focus.
    for (let i = 0; i < 40 && !(await choose.evaluate((el) => el === document.activeElement)); i++) {
      await page.keyboard.press('Tab');
    }
    assert.equal(await choose.evaluate((el) => el === document.activeElement), true, 'Choose is reachable with Tab');
    await page.keyboard.press('Enter');
    const qty = page.locator(`input[data-line-type-id="${type.id}"]`);
    assert.equal(await qty.evaluate((el) => el === document.activeElement), true,
      'Choose moves focus to the quantity of that type');
    await page.keyboard.type('1');
    // On past the other types' quantities (if any) to the name.
    const name = page.getByLabel('Your name');
    for (let i = 0; i < 25 && !(await name.evaluate((el) => el === document.activeElement)); i++) {
      await page.keyboard.press('Tab');
    }
    await page.keyboard.type('Margaret Hamilton');
    await page.keyboard.press('Tab');
    await page.keyboard.type('margaret@example.com');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/hold\.html#id=/);
    await page.locator('#hold-card').waitFor();

    const release = page.getByRole('button', { name: 'Release' });
    await release.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Hold released' }).waitFor();
    assert.match(await page.locator('#ended').innerText(), /back on sale/);
    assert.equal(requests.filter((r) => r.method === 'DELETE').length, 1);
    assert.ok(requests.find((r) => r.method === 'DELETE').headers['idempotency-key']);

    const after = await h.expectStatus(h.call(server, 'GET', `/api/v1/events/${demo.id}`), 200, 'event');
    assert.equal(after.ticket_types.find((t) => t.id === type.id).available, type.available, 'the seat is back');
    await s.assertNoSecretsInUrls();
    s.assertNoProblems();
  } finally {
    await h.screenshot(page, 'keyboard-release');
    await s.context.close();
  }
});
