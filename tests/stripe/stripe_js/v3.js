/*
 * Stripe.js v3 as the tests' Stripe emulator serves it at /js.stripe.com/v3/:
 * the part of the real library nts's pages use, with the same shapes, so a
 * page that works here works against https://js.stripe.com/v3/ unchanged.
 *
 * - Stripe(publishableKey)
 * - elements().create('card'): the card fields live in an iframe served by
 *   the emulator (as Stripe's do), so the page never sees the card number;
 *   mount(), unmount(), destroy(), on('change' | 'ready' | 'focus' | 'blur').
 * - createPaymentMethod({type: 'card', card, billing_details}): the frame
 *   posts the card to /v1/payment_methods with the publishable key and
 *   answers {paymentMethod} or {error}.
 * - handleNextAction({clientSecret}): reads the PaymentIntent with its client
 *   secret; rejects (as Stripe.js throws) unless it is `requires_action`;
 *   shows the 3-D Secure challenge, a page of the emulator in an iframe in a
 *   modal, where the buyer completes or fails authentication (closing the
 *   modal fails it, as at Stripe); then answers {paymentIntent} or {error}
 *   (code `payment_intent_authentication_failure`, with `payment_intent`).
 */
(function () {
  'use strict';

  const SCRIPT = document.currentScript;
  const ROOT = SCRIPT.src.replace(/\/js\.stripe\.com\/v3\/?(\?.*)?$/, '');
  const ORIGIN = new URL(SCRIPT.src).origin;
  const FRAMES = `${ROOT}/js.stripe.com/v3/`;
  let frameSeq = 0;

  function form(fields) {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined && v !== null) body.append(k, String(v));
    }
    return body;
  }

  class IntegrationError extends Error {
    constructor(message) {
      super(message);
      this.name = 'IntegrationError';
    }
  }

  // A frame of ours: messages from it are trusted only from its window and our origin.
  function listen(frame, handler) {
    const onMessage = (event) => {
      if (event.source !== frame.contentWindow || event.origin !== ORIGIN) return;
      if (!event.data || typeof event.data !== 'object') return;
      handler(event.data);
    };
    window.addEventListener('message', onMessage);
    return () => window.removeEventListener('message', onMessage);
  }

  function frameUrl(page, params) {
    const fragment = new URLSearchParams({ ...params, origin: window.location.origin });
    return `${FRAMES}${page}#${fragment}`;
  }

  class CardElement {
    constructor(key, elements) {
      this._key = key;
      this._elements = elements;
      this._handlers = {};
      this._frame = null;
      this._requests = new Map();
      this._ready = null;
      this._destroyed = false;
    }

    mount(target) {
      if (this._destroyed) throw new IntegrationError('This Element has already been destroyed. Please create a new one.');
      const parent = typeof target === 'string' ? document.querySelector(target) : target;
      if (!(parent instanceof window.Element)) {
        throw new IntegrationError('Invalid DOM element. Make sure to call mount() with a valid DOM element or selector.');
      }
      if (this._frame) {
        if (this._frame.parentElement === parent) return;
        throw new IntegrationError('This Element is already mounted. Use `unmount()` to unmount the Element before re-mounting.');
      }
      frameSeq += 1;
      const frame = document.createElement('iframe');
      frame.name = `__privateStripeFrame${frameSeq}`;
      frame.title = 'Secure card payment input frame';
      frame.setAttribute('frameborder', '0');
      frame.setAttribute('allowtransparency', 'true');
      frame.setAttribute('scrolling', 'no');
      Object.assign(frame.style, { border: 'none', width: '100%', height: '44px', display: 'block', background: 'transparent' });
      let readyResolve;
      this._ready = new Promise((resolve) => { readyResolve = resolve; });
      this._unlisten = listen(frame, (msg) => {
        if (msg.type === 'ready') {
          readyResolve();
          this._emit('ready', { elementType: 'card' });
        } else if (msg.type === 'change') {
          this._emit('change', {
            elementType: 'card',
            empty: Boolean(msg.empty),
            complete: Boolean(msg.complete),
            brand: msg.brand || 'unknown',
            value: {},
            error: msg.error || undefined,
          });
        } else if (msg.type === 'focus' || msg.type === 'blur') {
          this._emit(msg.type, { elementType: 'card' });
        } else if (msg.type === 'result' && this._requests.has(msg.id)) {
          this._requests.get(msg.id)(msg.result);
          this._requests.delete(msg.id);
        }
      });
      frame.src = frameUrl('elements-card.html', { key: this._key });
      parent.append(frame);
      this._frame = frame;
    }

    unmount() {
      if (!this._frame) return;
      this._unlisten();
      this._frame.remove();
      this._frame = null;
      for (const resolve of this._requests.values()) {
        resolve({ error: { type: 'validation_error', message: 'The card element was removed.' } });
      }
      this._requests.clear();
    }

    destroy() {
      this.unmount();
      this._destroyed = true;
    }

    focus() {
      if (this._frame) this._frame.contentWindow.postMessage({ type: 'focus' }, ORIGIN);
    }

    clear() {
      if (this._frame) this._frame.contentWindow.postMessage({ type: 'clear' }, ORIGIN);
    }

    update() {}

    on(event, handler) {
      (this._handlers[event] = this._handlers[event] || []).push(handler);
      return this;
    }

    off(event, handler) {
      this._handlers[event] = (this._handlers[event] || []).filter((h) => h !== handler);
      return this;
    }

    _emit(event, payload) {
      for (const handler of this._handlers[event] || []) handler(payload);
    }

    async _createPaymentMethod(data) {
      if (!this._frame) {
        throw new IntegrationError('We could not retrieve data from the specified Element. Please make sure the Element you are attempting to use is still mounted.');
      }
      await this._ready;
      frameSeq += 1;
      const id = frameSeq;
      const answer = new Promise((resolve) => this._requests.set(id, resolve));
      this._frame.contentWindow.postMessage({ type: 'createPaymentMethod', id, data }, ORIGIN);
      return answer;
    }
  }

  function Stripe(key, options) {
    if (typeof key !== 'string' || !key.startsWith('pk_')) {
      throw new IntegrationError('Invalid API Key provided. Stripe() takes your publishable key (pk_...).');
    }
    if (!(this instanceof Stripe)) return new Stripe(key, options);
    this._key = key;
  }

  Stripe.prototype.elements = function elements() {
    const key = this._key;
    const made = {};
    return {
      create(type) {
        if (type !== 'card') throw new IntegrationError(`The emulator's Stripe.js knows only the card Element, not ${type}.`);
        if (made.card) throw new IntegrationError('Can only create one Element of type card.');
        made.card = new CardElement(key, this);
        return made.card;
      },
      getElement(type) {
        return made[type] || null;
      },
    };
  };

  Stripe.prototype.createPaymentMethod = async function createPaymentMethod(options) {
    if (!options || options.type !== 'card' || !(options.card instanceof CardElement)) {
      throw new IntegrationError('createPaymentMethod: pass {type: "card", card: <a card Element>}.');
    }
    return options.card._createPaymentMethod({ billing_details: options.billing_details || null });
  };

  async function retrieveIntent(key, clientSecret) {
    const id = clientSecret.split('_secret_')[0];
    const res = await fetch(`${ROOT}/v1/payment_intents/${encodeURIComponent(id)}?${form({ key, client_secret: clientSecret })}`);
    const body = await res.json().catch(() => ({}));
    if (!res.ok || body.error) return { error: body.error || { type: 'api_error', message: `HTTP ${res.status}` } };
    return { paymentIntent: body };
  }

  // The 3-D Secure challenge: a modal over the page holding the emulator's
  // challenge page. Resolves once the frame says the buyer answered, or on
  // the close button (which, as at Stripe, fails the authentication).
  function challenge(key, intent) {
    return new Promise((resolve) => {
      frameSeq += 1;
      const backdrop = document.createElement('div');
      backdrop.setAttribute('data-stripe-emulator', 'three-d-secure');
      Object.assign(backdrop.style, {
        position: 'fixed', inset: '0', zIndex: '2147483647', background: 'rgba(0, 0, 0, 0.5)',
        display: 'flex', alignItems: 'center', justifyContent: 'center',
      });
      const box = document.createElement('div');
      box.setAttribute('role', 'dialog');
      box.setAttribute('aria-modal', 'true');
      box.setAttribute('aria-label', '3-D Secure authentication');
      Object.assign(box.style, {
        position: 'relative', background: '#fff', borderRadius: '8px', width: '420px', maxWidth: '95vw',
        boxShadow: '0 8px 30px rgba(0, 0, 0, 0.3)', overflow: 'hidden',
      });
      const close = document.createElement('button');
      close.type = 'button';
      close.textContent = '×';
      close.setAttribute('aria-label', 'Close');
      Object.assign(close.style, {
        position: 'absolute', top: '4px', right: '8px', border: 'none', background: 'transparent',
        fontSize: '24px', cursor: 'pointer', color: '#555', minWidth: '0', padding: '0 6px',
      });
      const frame = document.createElement('iframe');
      frame.name = `__privateStripeFrame${frameSeq}`;
      frame.title = '3-D Secure challenge';
      Object.assign(frame.style, { border: 'none', width: '100%', height: '400px', display: 'block' });
      box.append(frame, close);
      backdrop.append(box);

      let done = false;
      const finish = (answered) => {
        if (done) return;
        done = true;
        unlisten();
        backdrop.remove();
        resolve(answered);
      };
      const unlisten = listen(frame, (msg) => {
        if (msg.type === 'ready') {
          frame.contentWindow.postMessage({ type: 'challenge', clientSecret: intent.client_secret, key }, ORIGIN);
        } else if (msg.type === 'answered') {
          finish(msg.result);
        }
      });
      close.addEventListener('click', async () => {
        if (done) return;
        close.disabled = true;
        // Closing the challenge fails the authentication, as Stripe's modal does.
        const res = await fetch(`${ROOT}/v1/payment_intents/${encodeURIComponent(intent.id)}/_authenticate`, {
          method: 'POST',
          body: form({ key, client_secret: intent.client_secret, success: 'false' }),
        }).catch(() => null);
        finish({ canceled: true, ok: Boolean(res && res.ok) });
      });
      frame.src = frameUrl('three-d-secure.html', { key });
      document.body.append(backdrop);
    });
  }

  Stripe.prototype.handleNextAction = async function handleNextAction(options) {
    const clientSecret = options && options.clientSecret;
    if (typeof clientSecret !== 'string' || !/^pi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+$/.test(clientSecret)) {
      throw new IntegrationError('handleNextAction: expected the clientSecret of a PaymentIntent.');
    }
    const before = await retrieveIntent(this._key, clientSecret);
    if (before.error) return { error: before.error };
    if (before.paymentIntent.status !== 'requires_action') {
      throw new IntegrationError(
        `handleNextAction: The PaymentIntent has status ${before.paymentIntent.status}; it must be requires_action.`);
    }
    await challenge(this._key, before.paymentIntent);
    const after = await retrieveIntent(this._key, clientSecret);
    if (after.error) return { error: after.error };
    const pi = after.paymentIntent;
    if (pi.status === 'requires_payment_method' || pi.status === 'canceled' || pi.status === 'requires_action') {
      const failed = pi.last_payment_error && pi.last_payment_error.code === 'payment_intent_authentication_failure';
      return {
        error: {
          type: 'invalid_request_error',
          code: pi.status === 'canceled' ? 'payment_intent_unexpected_state' : 'payment_intent_authentication_failure',
          message: failed || pi.status === 'requires_action'
            ? 'We are unable to authenticate your payment method. Please choose a different payment method and try again.'
            : `This PaymentIntent's status is ${pi.status}.`,
          payment_intent: pi,
        },
      };
    }
    return { paymentIntent: pi };
  };

  window.Stripe = Stripe;
})();
