// Organiser admin, e-mail outbox: counts per status, the latest e-mails, a
// retry for failed ones, and a warning when no SMTP server is configured.
'use strict';

(function () {
  const { api, h, $, formatDate, say, showError, withBusy, errorText } = window.NTS;

  const STATUS = { pending: 'Waiting', sending: 'Sending', sent: 'Sent', failed: 'Failed' };
  const KIND = { order_paid: 'Tickets', order_refunded: 'Refund notice', resend: 'Tickets (again)' };
  let auth = () => '';
  let rejected = () => false;

  async function refresh(tokenFn, rejectedFn) {
    if (tokenFn) auth = tokenFn;
    if (rejectedFn) rejected = rejectedFn;
    const el = $('#admin-mail');
    try {
      render(el, await api('/api/v1/admin/mail?limit=50', { token: auth() }));
    } catch (err) {
      if (!rejected(err)) el.replaceChildren(h('p', { class: 'notice error' }, `The outbox could not be loaded: ${errorText(err)}`));
    }
  }

  function render(el, outbox) {
    const parts = [];
    if (!outbox.smtp_configured) {
      parts.push(h('p', { class: 'notice error', 'data-role': 'smtp-missing' },
        'No SMTP server is configured (NTS_SMTP_URL): e-mails are kept in the outbox and not sent.'));
    }
    const c = outbox.counts;
    parts.push(h('p', { class: 'state', 'data-role': 'mail-counts' },
      `${c.pending + c.sending} waiting · ${c.sent} sent · ${c.failed} failed`));
    if (!outbox.rows.length) {
      parts.push(h('p', { class: 'empty' }, 'No e-mails yet.'));
    } else {
      parts.push(h('div', { class: 'table-scroll' }, h('table', { class: 'sales' },
        h('caption', { class: 'visually-hidden' }, 'Latest e-mails'),
        h('thead', {}, h('tr', {}, ['To', 'What', 'Order', 'Status', 'Attempts', 'Created', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, outbox.rows.map(row)))));
    }
    el.replaceChildren(...parts);
  }

  function row(m) {
    let action = '';
    if (m.status === 'failed') {
      const retry = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Send again to ${m.recipient}` }, 'Send again');
      retry.addEventListener('click', () => withBusy(retry, async () => {
        try {
          await api(`/api/v1/admin/mail/${encodeURIComponent(m.id)}/retry`, { method: 'POST', token: auth(), body: {} });
          say(`The e-mail to ${m.recipient} will be sent again.`);
          await refresh();
        } catch (err) {
          if (!rejected(err)) showError(errorText(err));
        }
      }));
      action = retry;
    }
    const status = m.status === 'sent' && m.sent_at ? `Sent ${formatDate(m.sent_at)}`
      : m.last_error ? `${STATUS[m.status] || m.status}: ${m.last_error}` : STATUS[m.status] || m.status;
    return h('tr', { 'data-mail-id': m.id, 'data-status': m.status },
      h('td', {}, m.recipient),
      h('td', {}, KIND[m.kind] || m.kind),
      h('td', { class: 'codes' }, m.order_id),
      h('td', {}, status),
      h('td', { class: 'num' }, m.attempts),
      h('td', {}, formatDate(m.created_at)),
      h('td', {}, action));
  }

  $('#refresh-mail').addEventListener('click', (e) => withBusy(e.currentTarget, async () => {
    await refresh();
    say('E-mails updated.');
  }));

  window.NTS_MAIL = { refresh };
})();
