// Hold page: what is held, a live countdown, Release and Pay.
'use strict';

(function () {
  const { api, $, formatMoney, msUntil, formatRemaining, say, showError, clearMessages, withBusy, Action,
    fragmentParams, scrubFragment, loadConfig, renderLines } = window.NTS;

  const params = fragmentParams();
  const id = params.get('id') || '';
  const storeKey = `nts.hold.${id}`;
  let secret = params.get('secret') || (id ? sessionStorage.getItem(storeKey) : null);
  if (id && params.get('secret')) {
    sessionStorage.setItem(storeKey, secret);
    scrubFragment(id); // keep the secret out of the address bar and history
  }

  const payBtn = $('#pay-button');
  const releaseBtn = $('#release-button');
  const countdownLine = $('#countdown-line');
  const countdown = $('#countdown');
  const payAction = new Action();
  const releaseAction = new Action();

  let hold = null;
  let timer = null;
  let ended = false;
  let warned = false;

  function stopTimer() {
    if (timer) clearInterval(timer);
    timer = null;
  }

  // Show the final state of this hold, with a way to start again.
  function end(title, text) {
    ended = true;
    stopTimer();
    countdownLine.hidden = true;
    $('#hold-actions').hidden = true;
    $('#title').textContent = title;
    $('#hold-heading').textContent = 'What was held';
    $('#ended-text').textContent = text;
    $('#ended').hidden = false;
    $('#announce').textContent = `${title}. ${text}`;
    say('');
    sessionStorage.removeItem(storeKey);
  }

  function expired() {
    end('Your hold has expired',
      'Your hold expired before it was paid, so the tickets went back on sale. You can start again and reserve new tickets.');
  }

  function released() {
    end('Hold released', 'You released these tickets, so they are back on sale. Nothing was charged.');
  }

  function tick() {
    const ms = msUntil(hold.expires_at);
    countdown.textContent = formatRemaining(ms);
    countdownLine.classList.toggle('urgent', ms < 60000);
    if (!warned && ms <= 60000 && ms > 50000) {
      warned = true;
      say('One minute left to pay for these tickets.');
    }
    if (ms <= 0) expired();
  }

  function render() {
    $('#hold-card').hidden = false;
    $('#h-event').textContent = hold.event_name;
    renderLines($('#h-lines'), hold);
    $('#h-name').textContent = hold.name;
    $('#h-email').textContent = hold.email;

    if (hold.status === 'active') {
      countdownLine.hidden = false;
      $('#hold-actions').hidden = false;
      payBtn.textContent = `Pay ${formatMoney(hold.amount_minor, hold.currency)}`;
      tick();
      if (!ended && !timer) timer = setInterval(tick, 250);
    } else if (hold.status === 'expired') {
      expired();
    } else if (hold.status === 'released') {
      released();
    } else if (hold.status === 'checked_out') {
      const orderSecret = hold.order_id ? localStorage.getItem(`nts.order.${hold.order_id}`) : null;
      if (orderSecret) {
        location.replace(`/order.html#id=${encodeURIComponent(hold.order_id)}`);
      } else {
        end('Already checked out', 'These tickets already went to checkout, but this browser does not have the order. Please start again.');
      }
    }
  }

  async function load() {
    try {
      hold = await api(`/api/v1/holds/${encodeURIComponent(id)}`, { token: secret });
      render();
    } catch (err) {
      if (err.status === 404) {
        end('Hold not found', 'We could not find this hold. It may belong to another browser, or the link is incomplete.');
      } else {
        showError(err);
      }
    }
  }

  function handleError(err) {
    switch (err.code) {
      case 'hold_expired':
        expired();
        break;
      case 'hold_released':
        released();
        break;
      case 'hold_checked_out':
      case 'hold_not_active':
        load();
        break;
      default:
        if (err.status === 404) {
          end('Hold not found', 'We could not find this hold anymore. Please start again.');
        } else {
          showError(err);
        }
    }
  }

  payBtn.addEventListener('click', () => withBusy([payBtn, releaseBtn], async () => {
    clearMessages();
    say('Starting checkout…');
    payAction.start(id);
    try {
      const res = await api(`/api/v1/holds/${encodeURIComponent(id)}/checkout`, {
        method: 'POST',
        body: {},
        token: secret,
        key: payAction.key(),
      });
      payAction.finish();
      const order = res.order;
      localStorage.setItem(`nts.order.${order.id}`, order.secret);
      sessionStorage.removeItem(storeKey);
      stopTimer();
      say('Taking you to payment…');
      location.assign(`/order.html#id=${encodeURIComponent(order.id)}&secret=${encodeURIComponent(order.secret)}`);
    } catch (err) {
      payAction.settle(err);
      say('');
      handleError(err);
    }
  }));

  releaseBtn.addEventListener('click', () => withBusy([payBtn, releaseBtn], async () => {
    clearMessages();
    say('Releasing your tickets…');
    releaseAction.start(id);
    try {
      hold = await api(`/api/v1/holds/${encodeURIComponent(id)}`, {
        method: 'DELETE',
        token: secret,
        key: releaseAction.key(),
      });
      releaseAction.finish();
      released();
    } catch (err) {
      releaseAction.settle(err);
      say('');
      handleError(err);
    }
  }));

  loadConfig().catch((err) => showError(err));
  if (!id || !secret) {
    end('Hold not found', 'We could not find your hold in this browser. Please start again from the list of events.');
  } else {
    load();
  }
})();
