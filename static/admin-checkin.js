// Organiser admin, door check-in: devices (create: token shown once; revoke),
// checked-in counts per ticket type, double entries from offline gates, and
// check-in time, device and undo in the guest list.
'use strict';

(function () {
  const { api, h, formatDate, say, showError, withBusy, errorText } = window.NTS;

  const when = (iso) => (iso ? formatDate(iso) : '');
  const eventPath = (ev) => `/api/v1/admin/events/${encodeURIComponent(ev.id)}`;

  function table(caption, head, rows) {
    return h('div', { class: 'table-scroll' }, h('table', { class: 'sales' },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
  }

  // The check-in section of an event card. `auth()` answers the admin token,
  // `rejected(err)` handles a token that stopped working.
  function panel(ev, auth, rejected) {
    const el = h('div', { class: 'guests checkin-admin', id: `checkin-${ev.id}` });
    const tokenBox = h('div', { class: 'notice', hidden: true, 'data-role': 'new-token' });
    const body = h('div', {});
    const name = h('input', { id: `device-name-${ev.id}`, type: 'text', maxlength: 100, placeholder: 'Gate 1', autocomplete: 'off' });
    const create = h('button', { type: 'submit' }, 'Create device');
    const form = h('form', { novalidate: true },
      h('label', { for: name.id }, 'New check-in device'),
      h('div', { class: 'token-row' }, h('div', {}, name), create));

    async function load() {
      body.replaceChildren(h('p', { class: 'empty' }, 'Loading check-in…'));
      try {
        const [report, devices] = await Promise.all([
          api(`${eventPath(ev)}/checkins`, { token: auth() }),
          api(`${eventPath(ev)}/checkin-devices`, { token: auth() }),
        ]);
        render(report, devices);
      } catch (err) {
        if (!rejected(err)) body.replaceChildren(h('p', { class: 'notice error' }, `Check-in could not be loaded: ${errorText(err)}`));
      }
    }

    function render(report, devices) {
      const parts = [
        h('p', { class: 'state', 'data-role': 'checked-in' }, `${report.checked_in} of ${report.sold} tickets checked in`),
        table(`Check-in per ticket type for ${ev.name}`, ['Ticket type', 'Sold', 'Checked in'],
          report.ticket_types.map((t) => h('tr', { 'data-ticket-type-id': t.id },
            h('th', { scope: 'row' }, t.name), h('td', { class: 'num' }, t.sold), h('td', { class: 'num' }, t.checked_in)))),
        h('h5', {}, `Double entries (${report.double_entries.length})`),
      ];
      if (!report.double_entries.length) {
        parts.push(h('p', { class: 'empty' }, 'None: no ticket went in twice.'));
      } else {
        parts.push(h('p', { class: 'hint' },
          'Tickets that offline gates let in although they were already in (or no longer valid), found when the gates uploaded their scans.'));
        parts.push(table(`Double entries for ${ev.name}`, ['Ticket', 'Guest', 'Let in again', 'First in'],
          report.double_entries.map((d) => h('tr', { 'data-double-entry': d.ticket },
            h('td', { class: 'codes' }, d.ticket),
            h('td', {}, `${d.name} · ${d.ticket_type}`),
            h('td', {}, `${d.device}, ${when(d.scanned_at)} (offline)`),
            h('td', {}, d.kind === 'invalid_entry' ? 'ticket no longer valid'
              : d.first ? `${d.first.device}, ${when(d.first.checked_in_at)}${d.first.offline ? ' (offline)' : ''}` : '')))));
      }
      parts.push(h('h5', {}, 'Devices'));
      if (!devices.length) {
        parts.push(h('p', { class: 'empty' }, 'No devices yet. Create one per door or phone.'));
      } else {
        parts.push(table(`Check-in devices for ${ev.name}`, ['Device', 'Created', 'Let in', 'Last scan', ''],
          devices.map((d) => {
            const revoke = h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke ${d.name}` }, 'Revoke');
            revoke.addEventListener('click', () => withBusy(revoke, async () => {
              try {
                await api(`${eventPath(ev)}/checkin-devices/${encodeURIComponent(d.id)}`, { method: 'DELETE', token: auth() });
                say(`Revoked “${d.name}”: its token no longer checks tickets in (for 24 hours it may still upload the scans it made offline before now).`);
                if (tokenBox.dataset.deviceId === d.id) tokenBox.hidden = true;
                await load();
              } catch (err) {
                if (!rejected(err)) showError(errorText(err));
              }
            }));
            return h('tr', { 'data-device-id': d.id },
              h('th', { scope: 'row' }, d.name),
              h('td', {}, when(d.created_at)),
              h('td', { class: 'num' }, d.admitted),
              h('td', {}, when(d.last_scan_at)),
              h('td', {}, d.revoked_at ? `revoked ${when(d.revoked_at)}` : revoke));
          })));
      }
      body.replaceChildren(...parts);
    }

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      withBusy(create, async () => {
        const deviceName = name.value.trim();
        if (!deviceName) {
          name.setAttribute('aria-invalid', 'true');
          showError('Please name the device, e.g. “Gate 1”.');
          name.focus();
          return;
        }
        name.removeAttribute('aria-invalid');
        try {
          const d = await api(`${eventPath(ev)}/checkin-devices`, { method: 'POST', body: { name: deviceName }, token: auth() });
          name.value = '';
          const link = `${location.origin}/checkin.html#token=${d.token}`;
          const qr = h('img', { alt: `QR code of the token for ${d.name}`, width: 160, height: 160,
            src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(d.token_qr_svg)}` });
          tokenBox.replaceChildren(
            h('p', {}, h('strong', {}, `Token for “${d.name}” — shown only now. `),
              'Open the link on the phone at the door, or scan the QR code from its scanner page.'),
            h('p', {}, h('code', { 'data-role': 'token' }, d.token)),
            qr,
            h('p', {}, h('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, `Open the scanner as “${d.name}”`)));
          tokenBox.dataset.deviceId = d.id;
          tokenBox.hidden = false;
          say(`Created the device “${d.name}”.`);
          await load();
        } catch (err) {
          if (!rejected(err)) showError(errorText(err));
        }
      });
    });

    el.append(h('h4', {}, 'Door check-in'), body, form, tokenBox);
    load();
    return el;
  }

  // The guest list's tickets cell: each code, and for the ones in, when,
  // where, and a button to undo the check-in.
  function ticketsCell(ev, guest, auth, rejected, reload) {
    const cell = h('td', { class: 'codes' });
    const types = Array.isArray(guest.ticket_types) ? guest.ticket_types : [];
    const mixed = new Set(types).size > 1; // name each ticket's type when the order has several
    (guest.tickets || []).forEach((code, i) => {
      const c = (guest.checked_in || []).find((x) => x.ticket === code);
      const line = h('div', { 'data-ticket': code }, code,
        mixed && types[i] ? [' ', h('span', { class: 'ticket-type-name' }, types[i])] : null);
      if (c) {
        const undo = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Undo check-in of ${code}` }, 'Undo');
        undo.addEventListener('click', () => withBusy(undo, async () => {
          try {
            await api(`${eventPath(ev)}/checkins/${encodeURIComponent(code)}/undo`, { method: 'POST', body: {}, token: auth() });
            say(`Undid the check-in of ${code}.`);
            await reload();
          } catch (err) {
            if (!rejected(err)) showError(errorText(err));
          }
        }));
        line.append(h('span', { class: 'checked-in' }, ` — in ${when(c.checked_in_at)} at ${c.device} `), undo);
      }
      cell.append(line);
    });
    return cell;
  }

  window.NTS_CHECKIN = { panel, ticketsCell };
})();
