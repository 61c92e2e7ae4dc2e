// The door scanner page: a real QR code read from Chromium's fake camera
// (a video made from the ticket's QR image) shows green at one gate, then
// red at another; offline gates check signatures themselves, queue their
// scans and upload them when the network is back, and a ticket that two
// offline gates both let in shows up as a double entry for the organiser.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, before, after } = require('node:test');
const h = require('./harness');

let server;
let browser;

before(async () => {
  server = await h.startServer('checkin', { demo: false });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function device(ev, name) {
  const d = await h.expectStatus(h.call(server, 'POST', `/api/v1/admin/events/${ev.id}/checkin-devices`, {
    token: server.adminToken,
    body: { name },
  }), 201, 'create device');
  return d.token;
}

async function report(ev) {
  return h.expectStatus(h.call(server, 'GET', `/api/v1/admin/events/${ev.id}/checkins`, { token: server.adminToken }),
    200, 'check-in report');
}

// A YUV4MPEG2 video (the format Chromium's fake camera plays in a loop) of
// the ticket's QR code as the buyer's page gets it (SVG), drawn in the browser.
async function qrVideo(order, ticket, file) {
  const res = await fetch(`${server.base}/api/v1/orders/${order.id}/tickets/${ticket.code}/qr`, {
    headers: { Authorization: `Bearer ${order.secret}` },
  });
  assert.equal(res.status, 200);
  const svg = await res.text();
  const [W, H] = [640, 480];
  const page = await browser.newPage();
  const luma = await page.evaluate(async ({ svg: markup, W: w, H: hgt }) => {
    const img = new Image();
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(markup)}`;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = hgt;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, w, hgt);
    const side = Math.round(hgt * 0.9);
    ctx.drawImage(img, Math.round((w - side) / 2), Math.round((hgt - side) / 2), side, side);
    const px = ctx.getImageData(0, 0, w, hgt).data;
    const y = new Array(w * hgt);
    for (let i = 0; i < w * hgt; i++) y[i] = Math.round(0.299 * px[4 * i] + 0.587 * px[4 * i + 1] + 0.114 * px[4 * i + 2]);
    return y;
  }, { svg, W, H });
  await page.close();
  const frame = Buffer.concat([
    Buffer.from('FRAME\n'),
    Buffer.from(luma),
    Buffer.alloc((W / 2) * (H / 2) * 2, 128), // no colour
  ]);
  fs.writeFileSync(file, Buffer.concat([Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`), frame, frame]));
}

async function verdict(page, expected) {
  await page.locator(`#result[data-verdict="${expected}"]`).waitFor({ timeout: 20000 });
  return {
    verdict: await page.locator('#verdict').innerText(),
    who: await page.locator('#who').innerText(),
    detail: await page.locator('#detail').innerText(),
  };
}

async function enter(page, code) {
  await page.getByLabel(/Ticket code/).fill(code);
  await page.getByRole('button', { name: 'Check' }).click();
}

test('the camera reads a ticket: green at the first gate, red at the second', async () => {
  const ev = await h.createEvent(server);
  const order = await h.buy(server, ev.id, ev.ticket_types[0].id, 1, { name: 'Grace Hopper' });
  const [ticket] = order.tickets;
  const video = path.join(h.ARTIFACTS, 'checkin-ticket-qr.y4m');
  await qrVideo(order, ticket, video);
  const gate1 = await device(ev, 'Gate 1');
  const gate2 = await device(ev, 'Gate 2');

  const camera = await h.launchBrowser(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-video-capture=${video}`]);
  try {
    const first = await h.openPage(camera, server, { viewport: { width: 412, height: 915 }, permissions: ['camera'] });
    await first.page.goto(`${server.base}/checkin.html#token=${gate1}`);
    const green = await verdict(first.page, 'ok');
    assert.equal(green.verdict, 'IN');
    assert.equal(green.who, 'Grace Hopper · General');
    await h.screenshot(first.page, 'checkin-camera-green');
    assert.ok(!first.page.url().includes(gate1), 'the token leaves the address bar');
    assert.equal(await first.page.locator('#count-in').innerText(), '1');
    assert.equal(await first.page.locator('#count-sold').innerText(), '1');
    // The ticket stays in front of the camera: it is not scanned again and again.
    await first.page.waitForTimeout(1500);
    assert.equal(h.posts(first.requests, /^\/api\/v1\/checkins$/).length, 1);

    const second = await h.openPage(camera, server, { viewport: { width: 412, height: 915 }, permissions: ['camera'] });
    await second.page.goto(`${server.base}/checkin.html#token=${gate2}`);
    const red = await verdict(second.page, 'bad');
    assert.equal(red.verdict, 'ALREADY IN');
    assert.equal(red.who, 'Grace Hopper · General');
    assert.match(red.detail, /at Gate 1/);
    await h.screenshot(second.page, 'checkin-camera-red');

    const r = await report(ev);
    assert.equal(r.checked_in, 1);
    first.assertNoProblems();
    second.assertNoProblems();
    await first.context.close();
    await second.context.close();
  } finally {
    await camera.close();
  }
});

test('offline gates admit, queue, upload when back, and a ticket let in twice is reported', async () => {
  const ev = await h.createEvent(server, { name: 'Offline Night' });
  const order = await h.buy(server, ev.id, ev.ticket_types[0].id, 2, { name: 'Ada Offline' });
  const [ticket, other] = order.tickets;
  const north = await h.openPage(browser, server, { viewport: { width: 412, height: 915 } });
  const south = await h.openPage(browser, server, { viewport: { width: 412, height: 915 } });
  await north.page.goto(`${server.base}/checkin.html#token=${await device(ev, 'North door')}`);
  await south.page.goto(`${server.base}/checkin.html#token=${await device(ev, 'South door')}`);
  for (const gate of [north, south]) {
    await gate.page.locator('#net[data-state="online"]').waitFor();
    await gate.context.setOffline(true);
    await gate.page.locator('#net[data-state="offline"]').waitFor();
  }

  await enter(north.page, ticket.signed_code);
  assert.equal((await verdict(north.page, 'ok')).verdict, 'IN');
  await north.page.locator('#net', { hasText: '1 scan to upload' }).waitFor();
  await enter(north.page, ticket.signed_code);
  assert.equal((await verdict(north.page, 'bad')).verdict, 'ALREADY IN');
  // A forged signature, a bare (unsigned) code, junk: refused without the server.
  const forged = `${other.code}.${ticket.signed_code.split('.')[1]}`;
  await enter(north.page, forged);
  assert.match((await verdict(north.page, 'bad')).detail, /signature is wrong/);
  await enter(north.page, other.code);
  assert.equal((await verdict(north.page, 'warn')).verdict, 'CANNOT CHECK');
  await enter(north.page, 'not a ticket');
  assert.equal((await verdict(north.page, 'bad')).verdict, 'UNKNOWN');
  await enter(north.page, other.signed_code);
  assert.equal((await verdict(north.page, 'ok')).verdict, 'IN');
  await north.page.locator('#net', { hasText: '2 scans to upload' }).waitFor();

  // The south door has not heard of the north door's scan.
  await enter(south.page, ticket.signed_code);
  assert.equal((await verdict(south.page, 'ok')).verdict, 'IN');
  await south.page.locator('#net', { hasText: '1 scan to upload' }).waitFor();
  await h.screenshot(north.page, 'checkin-offline-north');
  await h.screenshot(south.page, 'checkin-offline-south');
  assert.equal((await report(ev)).checked_in, 0, 'nothing reached the server while offline');

  for (const gate of [north, south]) {
    await gate.context.setOffline(false);
    await gate.page.locator('#net[data-state="online"]', { hasText: /^Online/ }).waitFor({ timeout: 20000 });
    await gate.page.waitForFunction(() => !document.getElementById('net').textContent.includes('to upload'), null,
      { timeout: 20000 });
  }
  await south.page.locator('#net', { hasText: '1 double entry reported' }).waitFor();
  await h.screenshot(south.page, 'checkin-offline-south-synced');

  const r = await report(ev);
  assert.equal(r.checked_in, 2);
  assert.equal(r.double_entries.length, 1);
  assert.equal(r.double_entries[0].ticket, ticket.code);
  assert.equal(r.double_entries[0].device, 'South door');
  assert.equal(r.double_entries[0].first.device, 'North door');

  // Online again, a forged code is refused by the server too.
  await enter(north.page, forged);
  assert.equal((await verdict(north.page, 'bad')).verdict, 'UNKNOWN');
  for (const gate of [north, south]) {
    // Chromium logs the requests that failed while the network was cut; the page expects them.
    const expected = (p) => /ERR_INTERNET_DISCONNECTED/.test(p);
    gate.problems.splice(0, gate.problems.length, ...gate.problems.filter((p) => !expected(p)));
    gate.assertNoProblems();
  }

  // The organiser sees the double entry, the counts, the devices; undoes a check-in.
  const admin = await h.openPage(browser, server);
  await admin.page.goto(`${server.base}/admin.html`);
  await admin.page.getByLabel('Admin token').fill(server.adminToken);
  await admin.page.getByRole('button', { name: 'Use token' }).click();
  const card = admin.page.locator(`article[data-event-id="${ev.id}"]`);
  await card.getByRole('button', { name: 'Door check-in for Offline Night' }).click();
  await card.getByText('2 of 2 tickets checked in').waitFor();
  await card.getByText('Double entries (1)').waitFor();
  const row = card.locator(`tr[data-double-entry="${ticket.code}"]`);
  assert.match(await row.innerText(), /South door.*North door/s);
  await card.getByLabel('New check-in device').fill('Side door');
  await card.getByRole('button', { name: 'Create device' }).click();
  await card.locator('[data-role="token"]').waitFor();
  assert.match(await card.locator('[data-role="token"]').innerText(), /^ntsdev_/);
  await card.getByRole('button', { name: 'Revoke Side door' }).click();
  await card.locator('tr', { hasText: 'Side door' }).getByText(/^revoked/).waitFor();
  await card.getByRole('button', { name: 'Show guest list for Offline Night' }).click();
  await card.locator(`[data-ticket="${other.code}"]`, { hasText: 'North door' }).waitFor();
  await h.screenshot(admin.page, 'checkin-admin');
  await card.getByRole('button', { name: `Undo check-in of ${other.code}` }).click();
  await card.locator(`[data-ticket="${other.code}"]:not(:has(.checked-in))`).waitFor();
  assert.equal((await report(ev)).checked_in, 1);
  admin.assertNoProblems();
});

// Chromium logs the requests that failed while the network was cut; the page expects them.
function assertNoProblemsButOffline(gate) {
  const expected = (p) => /ERR_INTERNET_DISCONNECTED/.test(p);
  gate.problems.splice(0, gate.problems.length, ...gate.problems.filter((p) => !expected(p)));
  gate.assertNoProblems();
}

async function devices(ev) {
  return h.expectStatus(h.call(server, 'GET', `/api/v1/admin/events/${ev.id}/checkin-devices`, { token: server.adminToken }),
    200, 'devices');
}

test('a forgotten device\'s offline scans go up as that device\'s, not as the next device\'s', async () => {
  const ev = await h.createEvent(server, { name: 'Handover Night' });
  const order = await h.buy(server, ev.id, ev.ticket_types[0].id, 1, { name: 'Hal Handover' });
  const [ticket] = order.tickets;
  const morning = await device(ev, 'Morning phone');
  const evening = await device(ev, 'Evening phone');
  const gate = await h.openPage(browser, server, { viewport: { width: 412, height: 915 } });
  const dialogs = [];
  gate.page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.accept();
  });
  await gate.page.goto(`${server.base}/checkin.html#token=${morning}`);
  await gate.page.locator('#net[data-state="online"]').waitFor();
  await gate.context.setOffline(true);
  await gate.page.locator('#net[data-state="offline"]').waitFor();
  await enter(gate.page, ticket.signed_code);
  assert.equal((await verdict(gate.page, 'ok')).verdict, 'IN');
  await gate.page.locator('#net', { hasText: '1 scan to upload' }).waitFor();

  // The phone is handed over and set up as another device while the scan is still queued.
  await gate.page.getByRole('button', { name: 'Forget this device' }).click();
  await gate.page.locator('#setup').waitFor();
  const forgotten = await gate.page.locator('#net').innerText();
  await h.screenshot(gate.page, 'checkin-forgotten-with-queue');
  await gate.context.setOffline(false);
  await gate.page.getByLabel('Device token').fill(evening);
  await gate.page.getByRole('button', { name: 'Use token' }).click();
  await gate.page.locator('#device-name', { hasText: 'Evening phone' }).waitFor();
  await gate.page.waitForFunction(() => !document.getElementById('net').textContent.includes('to upload'), null,
    { timeout: 20000 });

  // The scan is the morning phone's, uploaded with its token; the evening phone let nobody in.
  const byName = Object.fromEntries((await devices(ev)).map((d) => [d.name, d.admitted]));
  assert.deepEqual(byName, { 'Morning phone': 1, 'Evening phone': 0 });
  const uploads = h.posts(gate.requests, /^\/api\/v1\/checkins\/offline$/);
  assert.ok(uploads.length >= 1);
  for (const u of uploads) assert.equal(u.headers.authorization, `Bearer ${morning}`);
  const guests = await h.expectStatus(h.call(server, 'GET', `/api/v1/admin/events/${ev.id}/guests`, { token: server.adminToken }),
    200, 'guests');
  assert.equal(guests[0].checked_in[0].device, 'Morning phone');
  // Forgetting the device offline asked first, said what becomes of the scan, and showed it waiting.
  assert.equal(forgotten, 'Not set up — 1 scan to upload');
  assert.equal(dialogs.length, 1);
  assert.match(dialogs[0], /^1 offline scan is not uploaded yet; this phone keeps it and uploads it as this device's/);
  await h.screenshot(gate.page, 'checkin-handed-over');
  assertNoProblemsButOffline(gate);
  await gate.context.close();
});

test('a door phone that reloads the scanner offline still checks signed codes, and uploads when back', async () => {
  const ev = await h.createEvent(server, { name: 'Reload Night' });
  const order = await h.buy(server, ev.id, ev.ticket_types[0].id, 2, { name: 'Rita Reload' });
  const [ticket, other] = order.tickets;
  // A refunded ticket: on the gate's list of revoked tickets.
  const refunded = await h.buy(server, ev.id, ev.ticket_types[0].id, 1, { name: 'Ron Refunded' });
  await h.expectStatus(h.call(server, 'POST', `/api/v1/admin/orders/${refunded.id}/refund`, {
    token: server.adminToken,
    body: { release_seats: false },
  }), 200, 'refund');
  const gate = await h.openPage(browser, server, { viewport: { width: 412, height: 915 } });
  await gate.page.goto(`${server.base}/checkin.html#token=${await device(ev, 'Reload door')}`);
  await gate.page.locator('#net[data-state="online"]').waitFor();
  // The service worker controls the page once it has kept the page's files.
  await gate.page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 20000 })
    .catch(() => assert.fail('no service worker controls the scanner page'));

  await gate.context.setOffline(true);
  await gate.page.reload();
  await gate.page.locator('#net[data-state="offline"]').waitFor();
  assert.equal(await gate.page.locator('#event-name').innerText(), 'Reload Night');
  assert.ok(await gate.page.locator('#scanner').isVisible());
  await enter(gate.page, ticket.signed_code);
  assert.equal((await verdict(gate.page, 'ok')).verdict, 'IN');
  await gate.page.locator('#net', { hasText: '1 scan to upload' }).waitFor();
  await h.screenshot(gate.page, 'checkin-reloaded-offline');
  // The public key and the revoked tickets came back with the page: a forged code and a refunded ticket are refused.
  await enter(gate.page, `${other.code}.${ticket.signed_code.split('.')[1]}`);
  assert.match((await verdict(gate.page, 'bad')).detail, /signature is wrong/);
  await enter(gate.page, refunded.tickets[0].signed_code);
  assert.match((await verdict(gate.page, 'bad')).detail, /refunded or canceled/);
  assert.equal((await report(ev)).checked_in, 0, 'nothing reached the server while offline');

  await gate.context.setOffline(false);
  await gate.page.locator('#net[data-state="online"]', { hasText: /^Online/ }).waitFor({ timeout: 20000 });
  await gate.page.waitForFunction(() => !document.getElementById('net').textContent.includes('to upload'), null,
    { timeout: 20000 });
  const r = await report(ev);
  assert.equal(r.checked_in, 1);
  await h.screenshot(gate.page, 'checkin-reloaded-synced');
  assertNoProblemsButOffline(gate);
  await gate.context.close();
});
