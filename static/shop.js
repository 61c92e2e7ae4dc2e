// Shop page: upcoming events with live availability, and the reserve form:
// for the chosen event, a quantity for each ticket type, a running total, and
// one reservation (a hold with one line per chosen type).
'use strict';

(function () {
  const { api, h, $, formatMoney, formatDate, say, showError, clearMessages, withBusy, Action, loadConfig,
    ticketCount } = window.NTS;

  const REFRESH_MS = 4000;
  const MAX_LINES = 20; // the server takes at most 20 lines per hold

  let events = [];
  let shapeKey = ''; // ids of events and ticket types currently rendered
  let rendered = false;
  let formEventId = ''; // the event whose ticket types the form lists
  const types = new Map(); // ticket type id -> {type, event}
  const reserve = new Action();

  const listEl = $('#events');
  const form = $('#reserve-form');
  const eventSelect = $('#event');
  const linesField = $('#lines-field');
  const linesEl = $('#lines');
  const orderLimit = $('#order-limit');
  const totalTickets = $('#total-tickets');
  const totalAmount = $('#total');
  const limitWarning = $('#limit-warning');
  const nameInput = $('#buyer-name');
  const emailInput = $('#buyer-email');
  const button = $('#reserve-button');

  const money = (minor, t, ev) => formatMoney(minor, (t && t.currency) || ev.currency);

  function availabilityText(t) {
    if (t.available <= 0) return 'Sold out';
    return `${t.available} left`;
  }

  function availabilityClass(t) {
    if (t.available <= 0) return 'avail sold-out';
    if (t.available <= 5) return 'avail few-left';
    return 'avail';
  }

  // The most of one type this order can take (0 when sold out).
  function lineMax(t) {
    return Math.max(0, Math.min(t.max_per_order, t.available));
  }

  const eventById = (id) => events.find((ev) => ev.id === id) || null;

  const shortDateFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
  function shortDate(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : shortDateFormat.format(d);
  }

  // ---------- the list of events ----------

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
          h('td', { class: 'num' }, money(t.price_minor, t, ev)),
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
          ev.max_tickets_per_order
            ? h('p', { class: 'hint', 'data-role': 'order-limit' }, `At most ${ticketCount(ev.max_tickets_per_order)} per order.`)
            : null,
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

  // ---------- the form: event, one quantity per ticket type, total ----------

  function renderEventSelect() {
    const current = eventSelect.value || formEventId;
    eventSelect.replaceChildren();
    if (events.length !== 1) eventSelect.append(h('option', { value: '' }, events.length ? 'Choose an event…' : 'No events on sale'));
    for (const ev of events) {
      eventSelect.append(h('option', { value: ev.id }, `${ev.name} (${shortDate(ev.starts_at)})`));
    }
    if (events.length === 1) eventSelect.value = events[0].id;
    else if (current && eventById(current)) eventSelect.value = current;
    else eventSelect.value = '';
  }

  const qtyInputs = () => [...linesEl.querySelectorAll('input[data-line-type-id]')];
  const qtyInput = (typeId) => linesEl.querySelector(`input[data-line-type-id="${CSS.escape(typeId)}"]`);

  function lineInfoText(t, ev) {
    const parts = [`${money(t.price_minor, t, ev)} each`, availabilityText(t)];
    if (t.available > 0) parts.push(`up to ${t.max_per_order} per order`);
    return parts.join(' · ');
  }

  function updateLineRow(t, ev) {
    const input = qtyInput(t.id);
    if (!input) return;
    const info = $(`#qty-info-${CSS.escape(t.id)}`);
    info.textContent = lineInfoText(t, ev);
    info.className = `hint line-info${t.available <= 0 ? ' sold-out' : ''}`;
    const max = lineMax(t);
    input.max = String(max);
    if (max === 0) {
      // Sold out (meanwhile): nothing of it can be in the order.
      input.value = '0';
      input.disabled = true;
      input.removeAttribute('aria-invalid');
    } else {
      input.disabled = false;
    }
    input.closest('tr').classList.toggle('is-sold-out', max === 0);
  }

  // (Re)builds the quantity rows for the chosen event, keeping the quantities
  // already entered for the same ticket types.
  function renderLines() {
    const keep = new Map(qtyInputs().map((i) => [i.dataset.lineTypeId, i.value]));
    const ev = eventById(eventSelect.value);
    formEventId = ev ? ev.id : '';
    linesField.disabled = !ev;
    if (!ev) {
      linesEl.replaceChildren(h('p', { class: 'empty' }, events.length ? 'Choose an event first.' : 'There is nothing on sale right now.'));
      orderLimit.hidden = true;
      updateTotal();
      return;
    }
    const rows = ev.ticket_types.map((t) => {
      const id = `qty-${t.id}`;
      return h('tr', { 'data-line-row': t.id },
        h('th', { scope: 'row' },
          h('label', { for: id }, h('span', { class: 'visually-hidden' }, 'Quantity of '), t.name),
          h('span', { id: `qty-info-${t.id}`, class: 'hint line-info' })),
        h('td', { class: 'num' },
          h('input', {
            id,
            class: 'qty',
            type: 'number',
            inputmode: 'numeric',
            min: 0,
            step: 1,
            value: keep.get(t.id) || '0',
            'data-line-type-id': t.id,
            'aria-describedby': `qty-info-${t.id}`,
          })));
    });
    linesEl.replaceChildren(h('div', { class: 'table-scroll' },
      h('table', { class: 'line-choice' },
        h('caption', { class: 'visually-hidden' }, `How many tickets for ${ev.name}`),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Ticket'),
          h('th', { scope: 'col', class: 'num' }, 'Quantity'))),
        h('tbody', {}, rows))));
    for (const t of ev.ticket_types) updateLineRow(t, ev);
    showSoldOutHint(ev);
    if (ev.max_tickets_per_order) {
      orderLimit.textContent = `At most ${ticketCount(ev.max_tickets_per_order)} per order, of all types together.`;
      orderLimit.hidden = false;
    } else {
      orderLimit.hidden = true;
    }
    updateTotal();
  }

  function updateLines() {
    const ev = eventById(formEventId);
    if (!ev) return;
    for (const t of ev.ticket_types) updateLineRow(t, ev);
    showSoldOutHint(ev);
    updateTotal();
  }

  function showSoldOutHint(ev) {
    $('#lines-hint').hidden = !ev.ticket_types.some((t) => lineMax(t) === 0);
  }

  // The quantity typed for one line: an integer >= 0, or NaN when it is not one.
  function quantityOf(input) {
    const v = input.value.trim();
    if (v === '') return 0;
    return /^\d+$/.test(v) ? Number(v) : NaN;
  }

  // The chosen lines (quantity > 0) as far as they can be read.
  function chosenLines() {
    const lines = [];
    for (const input of qtyInputs()) {
      const n = quantityOf(input);
      if (Number.isInteger(n) && n > 0) lines.push({ input, entry: types.get(input.dataset.lineTypeId), quantity: n });
    }
    return lines.filter((l) => l.entry);
  }

  function updateTotal() {
    const ev = eventById(formEventId);
    const lines = ev ? chosenLines() : [];
    const count = lines.reduce((n, l) => n + l.quantity, 0);
    if (!ev || count === 0) {
      totalTickets.textContent = 'No tickets chosen yet';
      totalAmount.textContent = '';
    } else {
      const sum = lines.reduce((acc, l) => acc + l.entry.type.price_minor * l.quantity, 0);
      totalTickets.textContent = `Total for ${ticketCount(count)}`;
      totalAmount.textContent = formatMoney(sum, ev.currency);
    }
    const limit = ev && ev.max_tickets_per_order;
    if (limit && count > limit) {
      limitWarning.textContent = `That is more than the ${ticketCount(limit)} one order can have. Please choose fewer.`;
      limitWarning.hidden = false;
    } else {
      limitWarning.textContent = '';
      limitWarning.hidden = true;
    }
    if (button.dataset.busy !== '1') button.disabled = count === 0;
  }

  // ---------- availability ----------

  function applyEvents(fresh) {
    events = Array.isArray(fresh) ? fresh : [];
    types.clear();
    for (const ev of events) for (const t of ev.ticket_types) types.set(t.id, { type: t, event: ev });
    const key = events.map((ev) => `${ev.id}:${ev.max_tickets_per_order || ''}:${ev.ticket_types.map((t) => t.id).join(',')}`).join('|');
    if (!rendered || key !== shapeKey) {
      rendered = true;
      shapeKey = key;
      renderEvents();
      renderEventSelect();
      renderLines();
    } else {
      updateAvailability();
      updateLines();
    }
  }

  let loadFailed = false;

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

  // ---------- reserve ----------

  function invalid(field, message) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
    showError(message);
    return null;
  }

  // The request's lines, or null (after saying what is wrong).
  function validate() {
    for (const f of form.querySelectorAll('[aria-invalid]')) f.removeAttribute('aria-invalid');
    const ev = eventById(eventSelect.value);
    if (!ev) return invalid(eventSelect, 'Please choose an event.');
    const lines = [];
    let count = 0;
    for (const input of qtyInputs()) {
      const entry = types.get(input.dataset.lineTypeId);
      if (!entry) continue;
      const t = entry.type;
      const n = quantityOf(input);
      if (!Number.isInteger(n)) return invalid(input, `Please enter a whole number of ${t.name} tickets (0 for none).`);
      if (n === 0) continue;
      if (t.available <= 0) return invalid(input, `${t.name} is sold out. Please choose another ticket.`);
      if (n > t.max_per_order) return invalid(input, `You can buy at most ${t.max_per_order} ${t.name} tickets per order.`);
      if (n > t.available) return invalid(input, `Only ${t.available} ${t.name} ${t.available === 1 ? 'ticket is' : 'tickets are'} left.`);
      lines.push({ input, ticket_type_id: t.id, quantity: n });
      count += n;
    }
    if (lines.length === 0) {
      const first = qtyInputs().find((i) => !i.disabled) || eventSelect;
      return invalid(first, 'Please choose at least one ticket.');
    }
    if (ev.max_tickets_per_order && count > ev.max_tickets_per_order) {
      return invalid(lines[0].input,
        `One order can have at most ${ticketCount(ev.max_tickets_per_order)}; you chose ${count}. Please choose fewer.`);
    }
    if (lines.length > MAX_LINES) return invalid(lines[0].input, `One order can have at most ${MAX_LINES} ticket types.`);
    if (!nameInput.value.trim()) return invalid(nameInput, 'Please enter your name.');
    const email = emailInput.value.trim();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) return invalid(emailInput, 'Please enter a valid email address.');
    return { ev, lines };
  }

  // The words for a sold_out answer: which types did not fit, and how many are left.
  function soldOutText(err, asked) {
    const nameOf = (id) => (types.get(id) ? types.get(id).type.name : 'some tickets');
    const refused = err.body && Array.isArray(err.body.lines) ? err.body.lines : [];
    const left = (l) => (l.available > 0 ? `only ${l.available} left` : 'none are left');
    const tail = 'Nothing was reserved; the availability has been updated.';
    if (refused.length === 1) {
      const l = refused[0];
      return `Sorry, there are not enough ${nameOf(l.ticket_type_id)} tickets left: you asked for ${l.requested}, ${left(l)}. ${tail}`;
    }
    if (refused.length > 1) {
      const parts = refused.map((l) => `${nameOf(l.ticket_type_id)} (you asked for ${l.requested}, ${left(l)})`);
      return `Sorry, there are not enough tickets left for this order: ${parts.join('; ')}. ${tail}`;
    }
    // An answer without lines: name the type if only one was asked for.
    if (asked.length === 1) {
      return `Sorry, there are not enough ${nameOf(asked[0].ticket_type_id)} tickets left for this order. ${tail}`;
    }
    return `Sorry, there are not enough tickets left for this order. ${tail}`;
  }

  function markRefused(err) {
    const refused = err.body && Array.isArray(err.body.lines) ? err.body.lines : [];
    for (const l of refused) {
      const input = qtyInput(l.ticket_type_id);
      if (input) input.setAttribute('aria-invalid', 'true');
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    withBusy(button, async () => {
      clearMessages();
      const checked = validate();
      if (!checked) return;
      const { ev, lines } = checked;
      const body = {
        lines: lines.map((l) => ({ ticket_type_id: l.ticket_type_id, quantity: l.quantity })),
        name: nameInput.value.trim(),
        email: emailInput.value.trim(),
      };
      reserve.start(JSON.stringify({ event: ev.id, ...body }));
      say('Reserving your tickets…');
      try {
        const hold = await api(`/api/v1/events/${encodeURIComponent(ev.id)}/holds`, {
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
          sold_out: err.code === 'sold_out' ? soldOutText(err, body.lines) : '',
          not_found: 'That event is no longer on sale.',
        });
        if (err.code === 'sold_out') markRefused(err);
        await refreshNow();
      }
    }).finally(updateTotal); // withBusy re-enables the button: disable it again if nothing is chosen
  });

  eventSelect.addEventListener('change', () => {
    eventSelect.removeAttribute('aria-invalid');
    renderLines();
  });

  // While typing, a quantity out of range is marked (the words come on Reserve).
  linesEl.addEventListener('input', (e) => {
    const input = e.target;
    if (!input.matches('input[data-line-type-id]')) return;
    const entry = types.get(input.dataset.lineTypeId);
    const n = quantityOf(input);
    const bad = !Number.isInteger(n) || (entry && n > lineMax(entry.type));
    if (bad) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
    // What was said about the earlier quantities no longer applies.
    clearMessages();
    updateTotal();
  });

  // "Choose" in the list: that event in the form, one of that type (if none
  // yet), and the focus on its quantity.
  listEl.addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-choose]');
    if (!btn) return;
    const entry = types.get(btn.dataset.choose);
    if (!entry) return;
    if (eventSelect.value !== entry.event.id) {
      eventSelect.value = entry.event.id;
      eventSelect.removeAttribute('aria-invalid');
      renderLines();
    }
    const input = qtyInput(entry.type.id);
    if (!input || input.disabled) return;
    if (quantityOf(input) === 0) input.value = '1';
    updateTotal();
    input.focus();
    input.select();
  });

  loadConfig().catch((err) => showError(err));
  refresh();
})();
