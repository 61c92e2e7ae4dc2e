// Shop page: upcoming events with live availability, and the reserve form.
'use strict';

(function () {
  const { api, h, $, formatMoney, formatDate, say, showError, clearMessages, withBusy, Action, loadConfig } = window.NTS;

  const REFRESH_MS = 4000;

  let events = [];
  let shapeKey = ''; // ids of events and ticket types currently rendered
  let rendered = false;
  const types = new Map(); // ticket type id -> {type, event}
  const reserve = new Action();

  const listEl = $('#events');
  const form = $('#reserve-form');
  const select = $('#ticket-type');
  const qty = $('#quantity');
  const qtyHint = $('#quantity-hint');
  const nameInput = $('#buyer-name');
  const emailInput = $('#buyer-email');
  const button = $('#reserve-button');

  function availabilityText(t) {
    if (t.available <= 0) return 'Sold out';
    return `${t.available} left`;
  }

  function availabilityClass(t) {
    if (t.available <= 0) return 'avail sold-out';
    if (t.available <= 5) return 'avail few-left';
    return 'avail';
  }

  function optionText(ev, t) {
    const price = formatMoney(t.price_minor, t.currency || ev.currency);
    return `${t.name} — ${price}${t.available <= 0 ? ' — Sold out' : ''}`;
  }

  function renderEvents() {
    listEl.replaceChildren();
    listEl.removeAttribute('aria-busy');
    if (events.length === 0) {
      listEl.append(h('p', { class: 'empty card' }, 'There are no upcoming events right now. Please check back soon.'));
      return;
    }
    for (const ev of events) {
      const headId = `ev-${ev.id}`;
      const rows = ev.ticket_types.map((t) =>
        h('tr', { 'data-ticket-type-id': t.id },
          h('th', { scope: 'row' }, t.name),
          h('td', { class: 'num' }, formatMoney(t.price_minor, t.currency || ev.currency)),
          h('td', { class: availabilityClass(t), 'data-role': 'availability' }, availabilityText(t)),
          h('td', { class: 'num' },
            h('button', {
              type: 'button',
              class: 'secondary small',
              'data-choose': t.id,
              disabled: t.available <= 0,
              'aria-label': `Choose ${t.name} for ${ev.name}`,
            }, 'Choose'))));
      listEl.append(
        h('article', { class: 'card event', 'aria-labelledby': headId, 'data-event-id': ev.id },
          h('h3', { id: headId }, ev.name),
          h('p', { class: 'meta' },
            h('time', { datetime: ev.starts_at }, formatDate(ev.starts_at)), ' · ', ev.venue),
          h('div', { class: 'table-scroll' },
            h('table', {},
              h('caption', { class: 'visually-hidden' }, `Tickets for ${ev.name}`),
              h('thead', {}, h('tr', {},
                h('th', { scope: 'col' }, 'Ticket'),
                h('th', { scope: 'col', class: 'num' }, 'Price'),
                h('th', { scope: 'col' }, 'Availability'),
                h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Choose')))),
              h('tbody', {}, rows)))));
    }
  }

  // Update availability in place so keyboard focus and form state survive the refresh.
  function updateAvailability() {
    for (const { type: t } of types.values()) {
      const row = listEl.querySelector(`tr[data-ticket-type-id="${CSS.escape(t.id)}"]`);
      if (!row) continue;
      const cell = row.querySelector('[data-role="availability"]');
      cell.textContent = availabilityText(t);
      cell.className = availabilityClass(t);
      row.querySelector('button[data-choose]').disabled = t.available <= 0;
    }
  }

  function renderSelect() {
    const current = select.value;
    select.replaceChildren(h('option', { value: '' }, 'Choose a ticket…'));
    for (const ev of events) {
      const group = h('optgroup', { label: `${ev.name} (${formatDate(ev.starts_at)})` });
      for (const t of ev.ticket_types) {
        group.append(h('option', { value: t.id, disabled: t.available <= 0 }, optionText(ev, t)));
      }
      select.append(group);
    }
    if (current && types.has(current)) select.value = current;
  }

  function updateSelect() {
    for (const opt of select.options) {
      const entry = types.get(opt.value);
      if (!entry) continue;
      opt.disabled = entry.type.available <= 0;
      opt.textContent = optionText(entry.event, entry.type);
    }
    updateQuantityLimits();
  }

  function updateQuantityLimits() {
    const entry = types.get(select.value);
    if (!entry) {
      qtyHint.textContent = 'Choose a ticket type first.';
      return;
    }
    const t = entry.type;
    if (t.available <= 0) {
      qtyHint.textContent = 'This ticket type is sold out.';
      return;
    }
    const max = Math.max(1, Math.min(t.max_per_order, t.available));
    qty.max = String(max);
    qtyHint.textContent = t.available < t.max_per_order
      ? `Only ${t.available} left.`
      : `Up to ${t.max_per_order} per order.`;
  }

  function applyEvents(fresh) {
    events = Array.isArray(fresh) ? fresh : [];
    types.clear();
    for (const ev of events) for (const t of ev.ticket_types) types.set(t.id, { type: t, event: ev });
    const key = events.map((ev) => `${ev.id}:${ev.ticket_types.map((t) => t.id).join(',')}`).join('|');
    if (!rendered || key !== shapeKey) {
      rendered = true;
      shapeKey = key;
      renderEvents();
      renderSelect();
    } else {
      updateAvailability();
    }
    updateSelect();
  }

  async function refresh() {
    try {
      applyEvents(await api('/api/v1/events'));
      if (loadFailed) {
        loadFailed = false;
        showError('');
      }
    } catch (err) {
      loadFailed = true;
      if (!rendered) {
        listEl.replaceChildren(h('p', { class: 'empty' }, 'Events could not be loaded.'));
        listEl.removeAttribute('aria-busy');
      }
      showError(`${NTS.errorText(err)} (Retrying automatically.)`);
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  // Refresh right away (after a failed reservation) without stacking timers.
  async function refreshNow() {
    try {
      applyEvents(await api('/api/v1/events'));
    } catch (e) {
      /* the regular refresh reports errors */
    }
  }

  let loadFailed = false;

  function invalid(field, message) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
    showError(message);
    return false;
  }

  function validate() {
    for (const f of [select, qty, nameInput, emailInput]) f.removeAttribute('aria-invalid');
    const entry = types.get(select.value);
    if (!entry) return invalid(select, 'Please choose a ticket type.');
    if (entry.type.available <= 0) return invalid(select, `${entry.type.name} is sold out. Please choose another ticket.`);
    const n = Number(qty.value);
    const max = entry.type.max_per_order;
    if (!Number.isInteger(n) || n < 1) return invalid(qty, 'Please enter a quantity of at least 1.');
    if (n > max) return invalid(qty, `You can buy at most ${max} ${entry.type.name} tickets per order.`);
    if (n > entry.type.available) return invalid(qty, `Only ${entry.type.available} ${entry.type.name} tickets are left.`);
    if (!nameInput.value.trim()) return invalid(nameInput, 'Please enter your name.');
    const email = emailInput.value.trim();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) return invalid(emailInput, 'Please enter a valid email address.');
    return true;
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    withBusy(button, async () => {
      clearMessages();
      if (!validate()) return;
      const entry = types.get(select.value);
      const body = {
        ticket_type_id: entry.type.id,
        quantity: Number(qty.value),
        name: nameInput.value.trim(),
        email: emailInput.value.trim(),
      };
      reserve.start(JSON.stringify(body));
      say('Reserving your tickets…');
      try {
        const hold = await api(`/api/v1/events/${encodeURIComponent(entry.event.id)}/holds`, {
          method: 'POST',
          body,
          key: reserve.key(),
        });
        reserve.finish();
        sessionStorage.setItem(`nts.hold.${hold.id}`, hold.secret);
        say('Tickets reserved. Taking you to your hold…');
        // The secret travels in the fragment, which browsers never send to the server.
        location.assign(`/hold.html#id=${encodeURIComponent(hold.id)}&secret=${encodeURIComponent(hold.secret)}`);
      } catch (err) {
        reserve.settle(err);
        say('');
        showError(err, {
          sold_out: `Sorry, there are not enough ${entry.type.name} tickets left for this order. The availability has been updated.`,
          not_found: 'That event is no longer on sale.',
        });
        refreshNow();
      }
    });
  });

  select.addEventListener('change', () => {
    select.removeAttribute('aria-invalid');
    updateQuantityLimits();
  });

  listEl.addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-choose]');
    if (!btn) return;
    select.value = btn.dataset.choose;
    updateQuantityLimits();
    qty.focus();
    qty.select();
  });

  loadConfig().catch((err) => showError(err));
  refresh();
})();
