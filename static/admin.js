// Organiser admin: token, create events, sales per event, guest lists and CSV.
'use strict';

(function () {
  const { api, h, $, formatMoney, formatDate, parseMajor, say, showError, clearMessages,
    withBusy, Action, loadConfig, errorText } = window.NTS;

  const TOKEN_KEY = 'nts.adminToken';
  const ADMIN_ERRORS = {
    unauthorized: 'Please enter the admin token.',
    forbidden: 'That admin token is not accepted. Check it and try again.',
  };

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let rowSeq = 0;
  const openGuestLists = new Set();
  const openCheckins = new Set();
  const createAction = new Action();

  const area = $('#admin-area');
  const typesEl = $('#types');
  const currencyInput = $('#ev-currency');

  const adminError = (err) => errorText(err, ADMIN_ERRORS);

  function showTokenState() {
    $('#token-hint').textContent = token
      ? 'A token is in use in this tab. It stays in this tab only and is sent to the server in a request header.'
      : 'The token stays in this browser tab only and is sent to the server in a request header.';
    $('#token-forget').hidden = !token;
  }

  // ---------- token ----------

  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const btn = $('#token-save');
    withBusy(btn, async () => {
      clearMessages();
      const input = $('#admin-token');
      const candidate = input.value.trim();
      if (!candidate) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        showError('Please enter the admin token.');
        return;
      }
      input.removeAttribute('aria-invalid');
      say('Checking the token…');
      try {
        const events = await api('/api/v1/admin/events', { token: candidate });
        token = candidate;
        sessionStorage.setItem(TOKEN_KEY, token);
        input.value = '';
        showTokenState();
        area.hidden = false;
        renderEvents(events);
        refreshRefunds();
        refreshMail();
        say('Token accepted. You are managing events.');
      } catch (err) {
        say('');
        showError(adminError(err));
        input.focus();
      }
    });
  });

  $('#token-forget').addEventListener('click', () => {
    clearMessages();
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    $('#admin-token').value = '';
    area.hidden = true;
    $('#admin-events').replaceChildren();
    showTokenState();
    say('The admin token was forgotten in this tab.');
    $('#admin-token').focus();
  });

  // ---------- ticket type rows ----------

  function field(n, key, labelText, attrs) {
    const id = `tt-${key}-${n}`;
    return h('div', {},
      h('label', { for: id, 'data-label': key }, labelText),
      h('input', { id, 'data-field': key, ...attrs }));
  }

  function priceLabel() {
    const c = currencyInput.value.trim().toUpperCase();
    return /^[A-Z]{3}$/.test(c) ? `Price (${c})` : 'Price';
  }

  function addTypeRow() {
    const n = ++rowSeq;
    const row = h('fieldset', { class: 'type-row', 'data-row': n },
      h('legend', {}, 'Ticket type'),
      h('div', { class: 'row' },
        field(n, 'name', 'Name', { type: 'text', required: true, maxlength: 100, placeholder: 'General admission' }),
        field(n, 'price', priceLabel(), { type: 'text', inputmode: 'decimal', required: true, placeholder: '9.99', autocomplete: 'off' }),
        field(n, 'capacity', 'Capacity', { type: 'number', inputmode: 'numeric', min: 1, step: 1, required: true }),
        field(n, 'max', 'Max per order', { type: 'number', inputmode: 'numeric', min: 1, step: 1, value: 10, required: true })),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'danger small', 'data-remove': n }, 'Remove')));
    typesEl.append(row);
    renumberRows();
    return row;
  }

  function renumberRows() {
    const rows = [...typesEl.querySelectorAll('fieldset.type-row')];
    rows.forEach((row, i) => {
      row.querySelector('legend').textContent = `Ticket type ${i + 1}`;
      const btn = row.querySelector('button[data-remove]');
      btn.setAttribute('aria-label', `Remove ticket type ${i + 1}`);
      btn.hidden = rows.length === 1;
    });
  }

  $('#add-type').addEventListener('click', () => {
    const row = addTypeRow();
    row.querySelector('input').focus();
  });

  typesEl.addEventListener('click', (e) => {
    const btn = e.target.closest('button[data-remove]');
    if (!btn || typesEl.querySelectorAll('fieldset.type-row').length <= 1) return;
    btn.closest('fieldset').remove();
    renumberRows();
    $('#add-type').focus();
  });

  currencyInput.addEventListener('input', () => {
    for (const l of typesEl.querySelectorAll('label[data-label="price"]')) l.textContent = priceLabel();
  });

  // ---------- create event ----------

  class Invalid extends Error {
    constructor(input, message) {
      super(message);
      this.input = input;
    }
  }

  function wholeNumber(input, what) {
    const v = input.value.trim();
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new Invalid(input, `${what} must be a whole number of at least 1.`);
    return Number(v);
  }

  function readEventForm() {
    const form = $('#event-form');
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    const name = $('#ev-name');
    const venue = $('#ev-venue');
    const starts = $('#ev-starts');
    if (!name.value.trim()) throw new Invalid(name, 'Please enter the event name.');
    if (!venue.value.trim()) throw new Invalid(venue, 'Please enter the venue.');
    const when = new Date(starts.value);
    if (!starts.value || Number.isNaN(when.getTime())) throw new Invalid(starts, 'Please enter when the event starts.');
    const currency = currencyInput.value.trim().toUpperCase();
    if (!/^[A-Z]{3}$/.test(currency)) throw new Invalid(currencyInput, 'The currency must be a three-letter code like EUR.');
    try {
      new Intl.NumberFormat('en', { style: 'currency', currency }); // eslint-disable-line no-new
    } catch (e) {
      throw new Invalid(currencyInput, `${currency} is not a currency this browser knows.`);
    }

    const rows = [...typesEl.querySelectorAll('fieldset.type-row')];
    const ticketTypes = rows.map((row, i) => {
      const get = (k) => row.querySelector(`[data-field="${k}"]`);
      const label = `Ticket type ${i + 1}`;
      const tName = get('name');
      if (!tName.value.trim()) throw new Invalid(tName, `${label}: please enter a name.`);
      let priceMinor;
      try {
        priceMinor = parseMajor(get('price').value, currency);
      } catch (e) {
        throw new Invalid(get('price'), `${label}: ${e.message}`);
      }
      return {
        name: tName.value.trim(),
        price_minor: priceMinor,
        capacity: wholeNumber(get('capacity'), `${label}: capacity`),
        max_per_order: wholeNumber(get('max'), `${label}: max per order`),
      };
    });

    const body = {
      name: name.value.trim(),
      venue: venue.value.trim(),
      starts_at: when.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      currency,
      ticket_types: ticketTypes,
    };
    const maxTickets = $('#ev-max-tickets');
    if (maxTickets.value.trim()) body.max_tickets_per_order = wholeNumber(maxTickets, 'Max tickets per order');
    body.dispute_policy = $('#ev-dispute-policy').value;
    return body;
  }

  function resetEventForm() {
    $('#ev-name').value = '';
    $('#ev-venue').value = '';
    $('#ev-starts').value = '';
    $('#ev-max-tickets').value = '';
    $('#ev-dispute-policy').value = 'admit';
    typesEl.replaceChildren();
    addTypeRow();
  }

  $('#event-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const btn = $('#create-button');
    withBusy(btn, async () => {
      clearMessages();
      let body;
      try {
        body = readEventForm();
      } catch (err) {
        if (err instanceof Invalid) {
          err.input.setAttribute('aria-invalid', 'true');
          err.input.focus();
        }
        showError(err.message);
        return;
      }
      createAction.start(JSON.stringify(body));
      say('Creating the event…');
      try {
        const ev = await api('/api/v1/admin/events', {
          method: 'POST',
          body,
          token,
          key: createAction.key(),
        });
        createAction.finish();
        resetEventForm();
        say(`Created “${ev.name}”. It is on sale in the shop now.`);
        await refreshEvents();
      } catch (err) {
        createAction.settle(err);
        say('');
        if (!tokenRejected(err)) showError(adminError(err));
      }
    });
  });

  // ---------- sales table ----------

  function sum(list, key) {
    return list.reduce((acc, t) => acc + (Number(t[key]) || 0), 0);
  }

  function renderEvents(events) {
    const container = $('#admin-events');
    container.replaceChildren();
    if (!events.length) {
      container.append(h('p', { class: 'empty card' }, 'No events yet. Create one above.'));
      return;
    }
    for (const ev of events) {
      const headId = `admin-ev-${ev.id}`;
      const guestsId = `guests-${ev.id}`;
      const types = ev.ticket_types || [];
      const revenue = ev.revenue_minor !== undefined ? ev.revenue_minor : sum(types, 'revenue_minor');
      const guestsBtn = h('button', {
        type: 'button', class: 'secondary small', 'aria-expanded': 'false', 'aria-controls': guestsId,
        'aria-label': `Show guest list for ${ev.name}`,
      }, 'Show guest list');
      const csvBtn = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Download CSV guest list for ${ev.name}` }, 'Download CSV');
      const guestsEl = h('div', { class: 'guests', id: guestsId, hidden: true });
      const checkinBtn = h('button', {
        type: 'button', class: 'secondary small', 'aria-expanded': 'false', 'aria-label': `Door check-in for ${ev.name}`,
      }, 'Door check-in');
      const checkinEl = h('div', {});
      const toggleCheckin = (open) => {
        if (open) openCheckins.add(ev.id); else openCheckins.delete(ev.id);
        checkinEl.replaceChildren(...(open ? [window.NTS_CHECKIN.panel(ev, () => token, tokenRejected)] : []));
        checkinBtn.setAttribute('aria-expanded', String(open));
      };
      checkinBtn.addEventListener('click', () => toggleCheckin(!openCheckins.has(ev.id)));

      guestsBtn.addEventListener('click', () => withBusy(guestsBtn, async () => {
        if (openGuestLists.has(ev.id)) {
          openGuestLists.delete(ev.id);
          guestsEl.hidden = true;
          setGuestsButton(guestsBtn, ev, false);
          return;
        }
        openGuestLists.add(ev.id);
        await loadGuests(ev, guestsEl);
        setGuestsButton(guestsBtn, ev, true);
      }));
      csvBtn.addEventListener('click', () => withBusy(csvBtn, () => downloadCsv(ev)));

      container.append(h('article', { class: 'card', 'aria-labelledby': headId, 'data-event-id': ev.id },
        h('div', { class: 'event-head' },
          h('div', {},
            h('h3', { id: headId }, ev.name),
            h('p', { class: 'meta' }, formatDate(ev.starts_at), ' · ', ev.venue, ' · ', ev.currency,
              ev.max_tickets_per_order ? ` · at most ${ev.max_tickets_per_order} tickets per order` : '',
              ev.dispute_policy === 'refuse_while_disputed' ? ' · charged-back tickets refused at the door' : '')),
          h('div', { class: 'actions' }, guestsBtn, csvBtn, checkinBtn)),
        h('div', { class: 'table-scroll' },
          h('table', { class: 'sales' },
            h('caption', { class: 'visually-hidden' }, `Sales for ${ev.name}`),
            h('thead', {}, h('tr', {},
              h('th', { scope: 'col' }, 'Ticket type'),
              h('th', { scope: 'col', class: 'num' }, 'Price'),
              h('th', { scope: 'col', class: 'num' }, 'Capacity'),
              h('th', { scope: 'col', class: 'num' }, 'Sold'),
              h('th', { scope: 'col', class: 'num' }, 'Held'),
              h('th', { scope: 'col', class: 'num' }, 'Available'),
              h('th', { scope: 'col', class: 'num' }, 'Revenue'))),
            h('tbody', {}, types.map((t) => h('tr', { 'data-ticket-type-id': t.id },
              h('th', { scope: 'row' }, t.name),
              h('td', { class: 'num' }, formatMoney(t.price_minor, t.currency || ev.currency)),
              h('td', { class: 'num' }, t.capacity),
              h('td', { class: 'num', 'data-col': 'sold' }, t.sold),
              h('td', { class: 'num', 'data-col': 'held' }, t.held),
              h('td', { class: 'num', 'data-col': 'available' }, t.available),
              h('td', { class: 'num', 'data-col': 'revenue' }, formatMoney(t.revenue_minor || 0, t.currency || ev.currency))))),
            h('tfoot', {}, h('tr', {},
              h('td', {}, 'Total'),
              h('td', {}),
              h('td', { class: 'num' }, sum(types, 'capacity')),
              h('td', { class: 'num' }, sum(types, 'sold')),
              h('td', { class: 'num' }, sum(types, 'held')),
              h('td', { class: 'num' }, sum(types, 'available')),
              h('td', { class: 'num', 'data-col': 'total-revenue' }, formatMoney(revenue, ev.currency)))))),
        guestsEl,
        checkinEl));

      if (openCheckins.has(ev.id)) toggleCheckin(true);
      if (openGuestLists.has(ev.id)) {
        setGuestsButton(guestsBtn, ev, true);
        loadGuests(ev, guestsEl);
      }
    }
  }

  function setGuestsButton(btn, ev, open) {
    btn.textContent = open ? 'Hide guest list' : 'Show guest list';
    btn.setAttribute('aria-expanded', String(open));
    btn.setAttribute('aria-label', `${open ? 'Hide' : 'Show'} guest list for ${ev.name}`);
  }

  // The ticket types of a guest's order: "Standing" when all its tickets are
  // of one type, else "2 × Standing, 1 × Balcony" (ticket_types has one entry
  // per ticket; an older server sent one ticket_type_name per order).
  function guestTypes(g) {
    const perTicket = Array.isArray(g.ticket_types) ? g.ticket_types : [];
    if (!perTicket.length) return g.ticket_type_name || '';
    const counts = new Map();
    for (const t of perTicket) counts.set(t, (counts.get(t) || 0) + 1);
    if (counts.size === 1) return perTicket[0];
    return [...counts].map(([t, n]) => `${n} × ${t}`).join(', ');
  }

  async function loadGuests(ev, el) {
    el.hidden = false;
    el.replaceChildren(h('p', { class: 'empty' }, 'Loading the guest list…'));
    try {
      const guests = await api(`/api/v1/admin/events/${encodeURIComponent(ev.id)}/guests`, { token });
      el.replaceChildren(h('h4', {}, `Guest list (${guests.length} ${guests.length === 1 ? 'order' : 'orders'})`));
      if (!guests.length) {
        el.append(h('p', { class: 'empty' }, 'No paid orders yet.'));
        return;
      }
      el.append(h('div', { class: 'table-scroll' }, h('table', { class: 'guest-list' },
        h('caption', { class: 'visually-hidden' }, `Guests for ${ev.name}`),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Name'),
          h('th', { scope: 'col' }, 'Email'),
          h('th', { scope: 'col' }, 'Ticket type'),
          h('th', { scope: 'col' }, 'Tickets'),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Refund')))),
        h('tbody', {}, guests.map((g) => h('tr', { 'data-order-id': g.order_id },
          h('td', {}, g.name),
          h('td', {}, g.email),
          h('td', { 'data-col': 'ticket-types' }, guestTypes(g)),
          window.NTS_CHECKIN.ticketsCell(ev, g, () => token, tokenRejected, () => loadGuests(ev, el)),
          h('td', {}, refundButton(g.order_id, `${g.name} (${g.email})`))))))));
    } catch (err) {
      el.replaceChildren(h('p', { class: 'notice error' }, `The guest list could not be loaded: ${adminError(err)}`));
    }
  }

  async function downloadCsv(ev) {
    clearMessages();
    try {
      const res = await api(`/api/v1/admin/events/${encodeURIComponent(ev.id)}/guests?format=csv`, {
        token,
        raw: true,
        accept: 'text/csv',
      });
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `guests-${ev.id}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
      say(`Downloaded the guest list for “${ev.name}”.`);
    } catch (err) {
      showError(`The guest list could not be downloaded: ${adminError(err)}`);
    }
  }

  // A stored token that stops working (e.g. it was rotated) is dropped, so
  // the organiser is asked for the new one instead of seeing failures.
  function tokenRejected(err) {
    if (err.status !== 401 && err.status !== 403) return false;
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    area.hidden = true;
    showTokenState();
    showError('The admin token is no longer accepted. Please enter it again.');
    $('#admin-token').focus();
    return true;
  }

  // The e-mail outbox section lives in admin-mail.js.
  function refreshMail() {
    if (window.NTS_MAIL) window.NTS_MAIL.refresh(() => token, tokenRejected);
  }

  async function refreshEvents() {
    try {
      renderEvents(await api('/api/v1/admin/events', { token }));
    } catch (err) {
      if (!tokenRejected(err)) showError(adminError(err));
    }
  }

  $('#refresh-events').addEventListener('click', (e) => withBusy(e.currentTarget, async () => {
    clearMessages();
    await refreshEvents();
    say('Sales figures updated.');
  }));

  // ---------- refunds and the payments audit ----------

  const REFUND_STATUS = {
    pending: 'Pending at the provider',
    failed: 'Failed — the buyer is still owed the money',
    canceled: 'Canceled at the provider',
    succeeded: 'Refunded',
  };
  const REFUND_REASON = {
    requested_by_organiser: '',
    order_cannot_take_payment: 'money the order could not take',
    outside_nts: 'made outside nts (the provider\'s dashboard)',
  };
  const refundActions = new Map();

  // Refunds an order; the same order keeps its Idempotency-Key until the
  // answer arrives, so a retry after a lost answer cannot refund twice.
  async function refundOrder(orderId, releaseSeats) {
    const body = { release_seats: releaseSeats };
    let action = refundActions.get(orderId);
    if (!action) {
      action = new Action();
      refundActions.set(orderId, action);
    }
    action.start(JSON.stringify(body));
    const done = await api(`/api/v1/admin/orders/${encodeURIComponent(orderId)}/refund`, {
      method: 'POST', body, token, key: action.key(),
    }).catch((err) => {
      action.settle(err);
      throw err;
    });
    action.finish();
    refundActions.delete(orderId);
    return done;
  }

  function refundOutcome(done) {
    const seats = done.seats_released ? ' The seats are back on sale.' : ' The seats stay sold.';
    if (!done.payment_id) return `The free order was refunded; no payment was involved.${seats}`;
    if (done.payment_status === 'refunded') return `The order was refunded.${seats}`;
    if (done.payment_status === 'refund_failed') return `The provider could not refund the order; see Refunds below.${seats}`;
    return `The refund is pending at the payment provider; it shows under Refunds until the provider confirms it.${seats}`;
  }

  const REFUND_ERRORS = {
    ...ADMIN_ERRORS,
    order_already_refunded: 'This order has been refunded already.',
    order_not_paid: 'Only a paid order can be refunded.',
    not_found: 'There is no order with that id.',
  };

  function refundButton(orderId, who) {
    const btn = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Refund the order of ${who}` }, 'Refund…');
    btn.addEventListener('click', () => {
      const cell = btn.parentElement;
      const release = h('input', { type: 'checkbox', id: `release-${orderId}` });
      const confirmBtn = h('button', { type: 'button', class: 'small danger' }, 'Refund in full');
      const cancelBtn = h('button', { type: 'button', class: 'secondary small' }, 'Keep');
      const box = h('div', { class: 'confirm', role: 'group', 'aria-label': `Refund the order of ${who}` },
        h('span', { class: 'check' }, release, h('label', { for: `release-${orderId}` }, 'Put the seats back on sale')),
        confirmBtn, cancelBtn);
      cell.replaceChildren(box);
      confirmBtn.focus();
      cancelBtn.addEventListener('click', () => { cell.replaceChildren(btn); btn.focus(); });
      confirmBtn.addEventListener('click', () => withBusy(confirmBtn, async () => {
        clearMessages();
        try {
          const done = await refundOrder(orderId, release.checked);
          say(refundOutcome(done));
          await Promise.all([refreshEvents(), refreshRefunds()]);
        } catch (err) {
          if (!tokenRejected(err)) showError(errorText(err, REFUND_ERRORS));
        }
      }));
    });
    return btn;
  }

  $('#refund-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const btn = $('#refund-button');
    withBusy(btn, async () => {
      clearMessages();
      const input = $('#refund-order');
      const orderId = input.value.trim();
      if (!/^[0-9a-fA-F-]{36}$/.test(orderId)) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        showError('Enter the order id, as shown in the buyer\'s order page or the refunds list.');
        return;
      }
      input.removeAttribute('aria-invalid');
      try {
        const done = await refundOrder(orderId, $('#refund-release').checked);
        input.value = '';
        say(refundOutcome(done));
        await Promise.all([refreshEvents(), refreshRefunds()]);
      } catch (err) {
        if (!tokenRejected(err)) showError(errorText(err, REFUND_ERRORS));
      }
    });
  });

  // Refunds and disputes: a row per order with its event, buyer, an amount, a status and one more column.
  function renderOrderRows(el, { cls, caption, last }, rows, rowAttrs, cells) {
    if (!rows.length) {
      el.replaceChildren(h('p', { class: 'empty' }, `No ${caption.toLowerCase()}.`));
      return;
    }
    el.replaceChildren(h('div', { class: 'table-scroll' }, h('table', { class: cls },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Order'),
        h('th', { scope: 'col' }, 'Event'),
        h('th', { scope: 'col' }, 'Buyer'),
        h('th', { scope: 'col', class: 'num' }, 'Amount'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, last))),
      h('tbody', {}, rows.map((r) => h('tr', rowAttrs(r),
        h('td', { class: 'codes' }, r.order_id),
        h('td', {}, r.event_name),
        h('td', {}, r.buyer_email),
        ...cells(r)))))));
  }

  function renderRefunds(rows) {
    renderOrderRows($('#admin-refunds'), { cls: 'refunds', caption: 'Refunds', last: 'Seats' }, rows,
      (r) => ({ 'data-order-id': r.order_id, 'data-refund-id': r.refund_id, 'data-status': r.status }),
      (r) => [
        h('td', { class: 'num' }, formatMoney(r.amount_minor, r.currency),
          r.amount_minor !== r.payment_amount_minor ? ` of ${formatMoney(r.payment_amount_minor, r.currency)}` : ''),
        h('td', {}, REFUND_STATUS[r.status] || r.status,
          REFUND_REASON[r.reason] ? h('span', { class: 'hint' }, ` (${REFUND_REASON[r.reason]})`) : '',
          r.refund_failure && r.status !== 'succeeded' ? h('span', { class: 'hint' }, ` (${r.refund_failure})`) : '',
          r.payment_status === 'refund_failed' && r.status === 'failed' ? retryRefundButton(r.order_id) : ''),
        h('td', {}, seatsCell(r)),
      ]);
  }

  // A failed refund asked for again goes out under a new key at the provider;
  // asking twice is harmless (the second answers refund_not_failed).
  function retryRefundButton(orderId) {
    const btn = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Ask the provider again to refund order ${orderId}` },
      'Ask again');
    btn.addEventListener('click', () => withBusy(btn, async () => {
      clearMessages();
      try {
        const done = await api(`/api/v1/admin/orders/${encodeURIComponent(orderId)}/refund/retry`, { method: 'POST', body: {}, token });
        say(refundOutcome(done));
        await refreshRefunds();
      } catch (err) {
        if (!tokenRejected(err)) showError(errorText(err, { ...REFUND_ERRORS, refund_not_failed: 'This refund has not failed (it may have been asked again already).' }));
      }
    }));
    return h('span', {}, ' ', btn);
  }

  function seatsCell(r) {
    if (r.seats_released) return 'Back on sale';
    if (r.order_status !== 'refunded') return 'Sold';
    const btn = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Release the seats of order ${r.order_id}` },
      'Release seats');
    btn.addEventListener('click', () => withBusy(btn, async () => {
      clearMessages();
      try {
        await api(`/api/v1/admin/orders/${encodeURIComponent(r.order_id)}/release-seats`, { method: 'POST', body: {}, token });
        say('The seats are back on sale.');
        await Promise.all([refreshEvents(), refreshRefunds()]);
      } catch (err) {
        if (!tokenRejected(err)) showError(adminError(err));
      }
    }));
    return h('span', {}, 'Still sold ', btn);
  }

  async function refreshRefunds() {
    try {
      renderRefunds(await api('/api/v1/admin/refunds', { token }));
    } catch (err) {
      if (!tokenRejected(err)) $('#admin-refunds').replaceChildren(h('p', { class: 'notice error' }, `Refunds could not be loaded: ${adminError(err)}`));
    }
    await refreshDisputes();
  }

  const DISPUTE_STATUS = {
    warning_needs_response: 'Inquiry — needs a response',
    warning_under_review: 'Inquiry — under review',
    warning_closed: 'Inquiry closed',
    needs_response: 'Charged back — needs a response',
    under_review: 'Charged back — under review',
    won: 'Won',
    lost: 'Lost',
  };

  function renderDisputes(rows) {
    renderOrderRows($('#admin-disputes'), { cls: 'disputes', caption: 'Disputes', last: 'Reason' }, rows,
      (d) => ({ 'data-order-id': d.order_id, 'data-status': d.status }),
      (d) => [
        h('td', { class: 'num' }, formatMoney(d.amount_minor, d.currency)),
        h('td', {}, DISPUTE_STATUS[d.status] || d.status,
          d.funds_withdrawn ? h('span', { class: 'hint' }, ' (funds withdrawn)') : ''),
        h('td', {}, d.reason),
      ]);
  }

  async function refreshDisputes() {
    try {
      renderDisputes(await api('/api/v1/admin/disputes', { token }));
    } catch (err) {
      if (!tokenRejected(err)) $('#admin-disputes').replaceChildren(h('p', { class: 'notice error' }, `Disputes could not be loaded: ${adminError(err)}`));
    }
  }

  const MISMATCH = {
    money_without_paid_order: 'Money held without a paid order',
    paid_order_without_money: 'Paid order without money',
    extra_charge: 'Charged more than once',
    refund_not_reflected: 'Refund on one side only',
    amount_mismatch: 'Different amount',
    refund_failed: 'Refund failed',
    partial_refund: 'Partly refunded outside nts',
  };

  $('#run-audit').addEventListener('click', (e) => withBusy(e.currentTarget, async () => {
    clearMessages();
    const el = $('#admin-audit');
    el.replaceChildren(h('p', { class: 'empty' }, 'Comparing with the payment provider…'));
    try {
      const report = await api('/api/v1/admin/payments/audit', { token });
      const summary = `${report.checked_payments} payments checked against ${report.provider_objects} provider records.`;
      if (!report.mismatches.length) {
        el.replaceChildren(h('p', { class: 'notice ok', 'data-audit': 'clean' }, `The books agree. ${summary}`));
        return;
      }
      el.replaceChildren(
        h('p', { class: 'notice error', 'data-audit': 'mismatches' }, `${report.mismatches.length} to look at. ${summary}`),
        h('div', { class: 'table-scroll' }, h('table', { class: 'audit' },
          h('caption', { class: 'visually-hidden' }, 'Payments audit'),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'What'),
            h('th', { scope: 'col' }, 'Order'),
            h('th', { scope: 'col' }, 'Provider record'),
            h('th', { scope: 'col' }, 'Detail'))),
          h('tbody', {}, report.mismatches.map((m) => h('tr', { 'data-kind': m.kind },
            h('td', {}, MISMATCH[m.kind] || m.kind),
            h('td', { class: 'codes' }, m.order_id || '—'),
            h('td', { class: 'codes' }, m.provider_ref || '—'),
            h('td', {}, m.detail)))))));
    } catch (err) {
      el.replaceChildren();
      if (!tokenRejected(err)) showError(`The audit could not run: ${adminError(err)}`);
    }
  }));

  $('#refresh-refunds').addEventListener('click', (e) => withBusy(e.currentTarget, async () => {
    clearMessages();
    await refreshRefunds();
    say('Refunds updated.');
  }));

  // ---------- start ----------

  addTypeRow();
  showTokenState();
  loadConfig().catch((err) => showError(err));
  if (token) {
    area.hidden = false;
    refreshEvents();
    refreshRefunds();
    refreshMail();
  }
})();
