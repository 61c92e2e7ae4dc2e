"""Starts localstripe (a Stripe emulator) and the fault-injecting proxy in
front of it, each on a free port of 127.0.0.1, for one test.

Prints one JSON line {"stripe": <port>, "proxy": <port>} once both listen,
then serves until standard input closes (the test process went away) or it
is killed. nts talks to the proxy; the test talks to either.

localstripe 1.15.10 is patched here where it differs from Stripe in ways that
matter to nts and to the async-stripe client (see each patch).
"""

import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import sys
import time

import aiohttp

from aiohttp import web

import localstripe.resources as ls
from localstripe.errors import UserError
from localstripe.server import app as localstripe_app, get_api_key, get_post_data, json_response
import localstripe.webhooks as ls_webhooks
from localstripe.webhooks import schedule_webhook

import proxy


# Every write pickles the whole store to one fixed file, /tmp/localstripe.pickle.
# Parallel tests run one emulator each and would all rewrite that file;
# nothing reads it (each emulator starts empty), so skip the write.
ls.Store.dump_to_disk = lambda self: None


# async-stripe deserialises a PaymentIntent strictly and fails on
# localstripe's ("error deserializing request data"): Stripe always sends
# amount_capturable, amount_received, confirmation_method and
# payment_method_types, gives latest_charge as an id unless expanded, and a
# last_payment_error always has a `type`. Add them as Stripe does.
_payment_intent_export = ls.PaymentIntent._export


def _export_payment_intent(self, expand=None):
    obj = _payment_intent_export(self, expand=expand)
    status = obj['status']
    obj['amount_capturable'] = self.amount if status == 'requires_capture' else 0
    obj['amount_received'] = self.amount if status == 'succeeded' else 0
    obj['confirmation_method'] = 'automatic'
    obj['payment_method_types'] = ['card']
    if isinstance(obj.get('latest_charge'), dict) and 'latest_charge' not in (expand or []):
        obj['latest_charge'] = obj['latest_charge']['id']
    obj.pop('charges', None)  # removed from the API in 2022-11-15
    if obj.get('last_payment_error'):
        obj['last_payment_error'] = dict(obj['last_payment_error'], type='card_error')
    return obj


ls.PaymentIntent._export = _export_payment_intent


# Stripe API 2026-09-30 (the version async-stripe 1.0.0-rc.10 speaks) names
# the creation parameter allowed_payment_method_types; localstripe knows only
# the older payment_method_types and refuses unknown parameters.
_payment_intent_init = ls.PaymentIntent.__init__

# Stripe refuses a PaymentIntent under the currency's minimum charge
# (amount_too_small) or over eight digits (amount_too_large), with a 400
# invalid_request_error; localstripe takes any positive amount. Minimums in
# Stripe's units, from "Minimum and maximum charge amounts" of Stripe's
# currencies page (Stripe converts to the settlement currency first; this
# account settles in each presentment currency).
STRIPE_MINIMUMS = {
    'usd': 50, 'aed': 200, 'aud': 50, 'bgn': 100, 'brl': 50, 'cad': 50, 'chf': 50, 'czk': 1500, 'dkk': 250,
    'eur': 50, 'gbp': 30, 'hkd': 400, 'huf': 17500, 'inr': 50, 'jpy': 50, 'mxn': 1000, 'myr': 200, 'nok': 300,
    'nzd': 50, 'pln': 200, 'ron': 200, 'sek': 300, 'sgd': 50, 'thb': 1000,
}


def _check_charge_limits(amount, currency):
    try:
        amount = int(amount)
    except (TypeError, ValueError):
        return  # localstripe refuses it itself
    minimum = STRIPE_MINIMUMS.get(str(currency).lower(), 1)
    if amount < minimum:
        raise UserError(400, f'Amount must be at least {minimum} {currency} (in minor units)',
                        {'code': 'amount_too_small', 'param': 'amount'})
    if amount > 99999999:
        raise UserError(400, 'Amount must be no more than 99999999 (in minor units)',
                        {'code': 'amount_too_large', 'param': 'amount'})



def _init_payment_intent(self, allowed_payment_method_types=None, use_stripe_sdk=None, return_url=None, **kwargs):
    if allowed_payment_method_types is not None:
        kwargs['payment_method_types'] = allowed_payment_method_types
    # Stripe takes both on a confirming create; a return_url must be a URL.
    if return_url is not None and not re.fullmatch(r'https?://\S+', return_url):
        raise UserError(400, 'Invalid URL: return_url', {'code': 'url_invalid', 'param': 'return_url'})
    if use_stripe_sdk not in (None, 'true', 'false'):
        raise UserError(400, 'Invalid boolean: use_stripe_sdk', {'param': 'use_stripe_sdk'})
    _check_charge_limits(kwargs.get('amount'), kwargs.get('currency'))
    _payment_intent_init(self, **kwargs)
    self.__dict__['_return_url'] = return_url


ls.PaymentIntent.__init__ = _init_payment_intent


# PaymentMethods are single-use unless attached to a Customer: Stripe refuses
# to confirm a PaymentIntent with one already used with another PaymentIntent
# (localstripe lets it pay any number of times). Stripe's test tokens
# (pm_card_visa, ...) make a fresh PaymentMethod at each use, whose own id the
# PaymentIntent carries (localstripe keeps the token there), so they stay
# reusable; PaymentMethods made with `POST /v1/payment_methods` are single-use.
PM_REUSED = ('The provided PaymentMethod was previously used with a PaymentIntent without Customer '
             'attachment, shared with a connected account without Customer attachment, or was detached '
             'from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must '
             'attach it to a Customer first.')
_payment_method_create = ls.PaymentMethod._api_create.__func__


def _create_single_use_payment_method(cls, **data):
    pm = _payment_method_create(cls, **data)
    pm.__dict__['_single_use'] = True
    return pm


ls.PaymentMethod._api_create = classmethod(_create_single_use_payment_method)


def _fresh_payment_method(payment_method):
    """A test token's own PaymentMethod, made now (any other id: itself)."""
    if isinstance(payment_method, str) and ls.PaymentMethod._try_get_canonical_test_article(payment_method):
        return ls.PaymentMethod._api_retrieve(payment_method).id
    return payment_method


def _refuse_used_payment_method(payment_method, payment_intent=None):
    if not (isinstance(payment_method, str) and payment_method.startswith('pm_')):
        return
    pm = ls.store.get('payment_method:' + payment_method)
    if pm is None or not pm.__dict__.get('_single_use') or pm.customer is not None:
        return
    used_by = pm.__dict__.get('_used_by')
    if used_by is not None and used_by != payment_intent:
        raise UserError(400, PM_REUSED, {'code': 'payment_method_unexpected_state', 'param': 'payment_method'})


_payment_intent_create = ls.PaymentIntent._api_create.__func__


def _create_payment_intent(cls, confirm=None, **data):
    if 'payment_method' in data:
        data['payment_method'] = _fresh_payment_method(data['payment_method'])
        if ls.try_convert_to_bool(confirm) is True:
            _refuse_used_payment_method(data['payment_method'])
    return _payment_intent_create(cls, confirm=confirm, **data)


ls.PaymentIntent._api_create = classmethod(_create_payment_intent)
_payment_intent_confirm = ls.PaymentIntent._confirm


def _confirm_payment_intent(self, on_failure_now):
    _refuse_used_payment_method(self.payment_method, self.id)
    pm = ls.store.get('payment_method:' + str(self.payment_method))
    if pm is not None:
        pm.__dict__['_used_by'] = self.id
    _payment_intent_confirm(self, on_failure_now)


ls.PaymentIntent._confirm = _confirm_payment_intent


# Stripe lists newest first and filters by `created` (gt, gte, lt, lte);
# localstripe's PaymentIntent list knows neither.
def _list_payment_intents(cls, url, limit=None, starting_after=None, created=None, **kwargs):
    if kwargs:
        raise UserError(400, 'Unexpected ' + ', '.join(kwargs.keys()))
    li = ls.List(url, limit=limit, starting_after=starting_after)
    found = [v for k, v in ls.store.items() if k.startswith('payment_intent:')]
    bounds = {'gt': lambda c, b: c > b, 'gte': lambda c, b: c >= b, 'lt': lambda c, b: c < b,
              'lte': lambda c, b: c <= b}
    for op, bound in (created or {}).items():
        if op not in bounds:
            raise UserError(400, f'Invalid created[{op}]')
        found = [pi for pi in found if bounds[op](pi.created, int(bound))]
    found.sort(key=lambda pi: (pi.created, pi.id), reverse=True)
    li._list = found
    return li


ls.PaymentIntent._api_list_all = classmethod(_list_payment_intents)

_list_refunds = ls.Refund._api_list_all.__func__


def _list_refunds_created(cls, url, created=None, **kwargs):
    li = _list_refunds(cls, url, **kwargs)
    bounds = {'gt': lambda c, b: c > b, 'gte': lambda c, b: c >= b, 'lt': lambda c, b: c < b,
              'lte': lambda c, b: c <= b}
    for op, bound in (created or {}).items():
        if op not in bounds:
            raise UserError(400, f'Invalid created[{op}]')
        li._list = [r for r in li._list if bounds[op](r.created, int(bound))]
    return li


ls.Refund._api_list_all = classmethod(_list_refunds_created)


# A declined confirmation: Stripe answers 402 with type card_error and the
# PaymentIntent in the error (so the caller learns its id and status);
# localstripe answers a bare invalid_request_error.
def _report_failure(self):
    schedule_webhook(ls.Event('payment_intent.payment_failed', self))
    charge = self.latest_charge
    error = UserError(402, charge.failure_message,
                      {'code': charge.failure_code, 'decline_code': 'generic_decline',
                       'charge': charge.id, 'payment_intent': self._export()})
    error.body['error']['type'] = 'card_error'
    raise error


ls.PaymentIntent._report_failure = _report_failure


# Stripe sends payment_intent.canceled and charge.refunded; localstripe does
# not, and nts's webhook handler must be tested with them. (The cancel route
# holds localstripe's own function, so the event hooks the flag it sets.)
def _get_canceled(self):
    return self.__dict__.get('_canceled_flag', False)


def _set_canceled(self, value):
    was = _get_canceled(self)
    self.__dict__['_canceled_flag'] = value
    if value and not was:
        schedule_webhook(ls.Event('payment_intent.canceled', self))


ls.PaymentIntent._canceled = property(_get_canceled, _set_canceled)


# A failed 3-D Secure authentication: Stripe sends payment_intent.payment_failed
# (the intent goes back to requires_payment_method); localstripe sends nothing.
# Its route holds its own function, so the event hooks the flag it sets; the
# event is made once the call has finished changing the intent.
def _get_auth_failed(self):
    return self.__dict__.get('_auth_failed_flag', False)


def _set_auth_failed(self, value):
    was = _get_auth_failed(self)
    self.__dict__['_auth_failed_flag'] = value
    if value and not was:
        asyncio.get_running_loop().call_soon(
            lambda: schedule_webhook(ls.Event('payment_intent.payment_failed', self)))


ls.PaymentIntent._authentication_failed = property(_get_auth_failed, _set_auth_failed)

# Refunds, as Stripe makes them: `pending` when created (charge.refunded and
# refund.created are sent then), and only later `succeeded` (refund.updated)
# or `failed` (refund.failed, refund.updated; the money stays with the
# merchant). A charge refunded in full (pending refunds count) refuses another
# refund with `charge_already_refunded`. `POST /_proxy/refunds`
# {"settle_ms": 300, "fail": 0} sets how long refunds stay pending and makes
# the next `fail` refunds fail.
refund_settings = {'settle_ms': 300, 'fail': 0}
_refund_init = ls.Refund.__init__


def _charge_of(charge=None, payment_intent=None, **_):
    if charge is None and isinstance(payment_intent, str) and payment_intent.startswith('pi_'):
        pi = ls.PaymentIntent._api_retrieve(payment_intent)
        charge = pi.latest_charge.id if pi.latest_charge else None
    return ls.Charge._api_retrieve(charge) if isinstance(charge, str) and charge.startswith('ch_') else None


def _refund_pending_first(self, *args, **kwargs):
    charge = _charge_of(**kwargs)
    if charge is not None and charge.id in disputes_by_charge:
        raise UserError(400, f'Charge {charge.id} has been charged back; cannot issue a refund.',
                        {'code': 'charge_disputed'})
    if charge is not None and charge.amount_refunded >= charge.amount:
        raise UserError(400, f'Charge {charge.id} has already been refunded.', {'code': 'charge_already_refunded'})
    _refund_init(self, *args, **kwargs)
    self.status = 'pending'
    self.failure_reason = None
    schedule_webhook(ls.Event('charge.refunded', ls.Charge._api_retrieve(self.charge)))
    schedule_webhook(ls.Event('refund.created', self))
    fails = refund_settings['fail'] > 0
    if fails:
        refund_settings['fail'] -= 1
    asyncio.get_running_loop().call_later(refund_settings['settle_ms'] / 1000, _settle_refund, self, fails)


def _settle_refund(refund, fails):
    if fails:
        refund.status = 'failed'
        refund.failure_reason = 'expired_or_canceled_card'
        schedule_webhook(ls.Event('refund.failed', refund))
    else:
        refund.status = 'succeeded'
    schedule_webhook(ls.Event('refund.updated', refund))


ls.Refund.__init__ = _refund_pending_first
ls.Charge.amount_refunded = property(
    lambda self: sum(r.amount for r in self.refunds._list if r.status != 'failed'))


async def _configure_refunds(request):
    refund_settings.update(await request.json())
    return web.json_response(refund_settings)


# Disputes, which localstripe does not know: `POST /_proxy/disputes`
# {"payment_intent": "pi_…", "status": "needs_response", "reason": "fraudulent",
#  "type": "charge.dispute.created"} makes (or, with the same payment_intent,
# moves) the charge's dispute and sends the event, with the dispute as Stripe
# renders it. Stripe refuses to refund a disputed charge (`charge_disputed`).
disputes_by_charge = {}


class _Dispute(ls.StripeObject):
    object = 'dispute'
    _id_prefix = 'du_'

    def __init__(self, charge, payment_intent, reason):
        super().__init__()
        self.charge = charge.id
        self.payment_intent = payment_intent
        self.amount = charge.amount
        self.currency = charge.currency
        self.reason = reason
        self.status = 'warning_needs_response'
        self.metadata = {}
        self.livemode = False


async def _dispute(request):
    spec = await request.json()
    pi = ls.PaymentIntent._api_retrieve(spec['payment_intent'])
    charge = pi.latest_charge
    dispute = disputes_by_charge.get(charge.id)
    if dispute is None:
        dispute = _Dispute(charge, pi.id, spec.get('reason', 'fraudulent'))
        disputes_by_charge[charge.id] = dispute
    dispute.status = spec.get('status', 'needs_response')
    schedule_webhook(ls.Event(spec.get('type', 'charge.dispute.created'), dispute))
    return web.json_response(dispute._export())


# Webhooks, as Stripe delivers them: each delivery signed at its own time,
# retried with backoff until answered 2xx (Stripe retries for days), and on
# request `POST /_proxy/webhooks` {"duplicate": true, "max_delay_ms": 2000}
# delivered twice and each after a random delay, so out of order; with
# "min_delay_ms" too, every delivery waits at least that long before its
# first try (minutes-late webhooks). `GET /_proxy/webhooks` answers the
# settings and how many deliveries are still under way ("pending").
webhook_settings = {'duplicate': False, 'min_delay_ms': 0, 'max_delay_ms': 0, 'retries': 8}
webhook_state = {'pending': 0}


async def _send_webhook(event):
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode('utf-8')
    await asyncio.sleep(1)
    for hook in list(ls_webhooks._webhooks.values()):
        if hook.events is not None and event.type not in hook.events:
            continue
        for _ in range(2 if webhook_settings['duplicate'] else 1):
            asyncio.ensure_future(_deliver(hook, payload))


async def _deliver(hook, payload):
    webhook_state['pending'] += 1
    try:
        low, high = webhook_settings['min_delay_ms'], max(webhook_settings['max_delay_ms'], webhook_settings['min_delay_ms'])
        if high:
            await asyncio.sleep(random.uniform(low, high) / 1000)
        for attempt in range(webhook_settings['retries'] + 1):
            t = int(time.time())
            signature = hmac.new(hook.secret.encode(), b'%d.%s' % (t, payload), hashlib.sha256).hexdigest()
            headers = {'Content-Type': 'application/json; charset=utf-8', 'Stripe-Signature': f't={t},v1={signature}'}
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.post(hook.url, data=payload, headers=headers) as r:
                        if 200 <= r.status < 300:
                            return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(min(0.5 * 2 ** attempt, 5))
    finally:
        webhook_state['pending'] -= 1


ls_webhooks._send_webhook = _send_webhook


async def _configure_webhooks(request):
    if request.method == 'POST':
        webhook_settings.update(await request.json())
    return web.json_response(dict(webhook_settings, **webhook_state))


# Stripe.js, for the browser tests: localstripe's own has no createPaymentMethod
# and no handleNextAction. stripe_js/v3.js is served in its place at
# /js.stripe.com/v3/, with the frames it opens (the card fields, the 3-D Secure
# challenge) beside it. What Stripe.js asks with the publishable key, Stripe
# answers: creating a PaymentMethod, and reading a PaymentIntent given its
# client secret; localstripe wants the secret key for both.
STRIPE_JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'stripe_js')
STRIPE_JS_FILES = {
    'v3.js': 'application/javascript',
    'elements-card.html': 'text/html',
    'elements-card.js': 'application/javascript',
    'three-d-secure.html': 'text/html',
    'three-d-secure.js': 'application/javascript',
    'frames.css': 'text/css',
}
# What a publishable key may read of a PaymentIntent.
PUBLISHABLE_INTENT_FIELDS = (
    'id', 'object', 'amount', 'currency', 'status', 'client_secret', 'next_action', 'last_payment_error',
    'payment_method', 'payment_method_types', 'capture_method', 'confirmation_method', 'created', 'livemode',
    'canceled_at', 'cancellation_reason', 'description')


def _stripe_js_file(name):
    with open(os.path.join(STRIPE_JS_DIR, name), 'rb') as f:
        return web.Response(body=f.read(), content_type=STRIPE_JS_FILES[name], headers={'Cache-Control': 'no-store'})


def _publishable(key):
    return isinstance(key, str) and key.startswith('pk_') and len(key) > 3


@web.middleware
async def _stripe_js(request, handler):
    path = request.path
    if request.method == 'GET' and path == '/js.stripe.com/v3/':
        return _stripe_js_file('v3.js')
    if request.method == 'GET' and path.startswith('/js.stripe.com/v3/') and path[18:] in STRIPE_JS_FILES:
        return _stripe_js_file(path[18:])
    if get_api_key(request) is not None:
        return await handler(request)
    if request.method == 'POST' and path == '/v1/payment_methods':
        data = await get_post_data(request, remove_auth=False) or {}
        if not _publishable(data.pop('key', None)):
            raise UserError(401, 'Unauthorized')
        data.pop('payment_user_agent', None)
        return json_response(ls.PaymentMethod._api_create(**data)._export())
    match = re.fullmatch(r'/v1/payment_intents/(pi_\w+)', path)
    if request.method == 'GET' and match:
        if not _publishable(request.query.get('key')):
            raise UserError(401, 'Unauthorized')
        intent = ls.PaymentIntent._api_retrieve(match.group(1))
        if request.query.get('client_secret') != intent.client_secret:
            raise UserError(400, 'The client_secret provided does not match the client_secret associated with '
                                 'the PaymentIntent.', {'code': 'payment_intent_invalid_parameter'})
        obj = intent._export()
        return json_response({k: obj.get(k) for k in PUBLISHABLE_INTENT_FIELDS})
    return await handler(request)


# Inside localstripe's error middleware (which turns a UserError into Stripe's
# error answer), before its authentication.
localstripe_app.middlewares.insert(1, _stripe_js)


async def _serve(app):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def main():
    _, stripe_port = await _serve(localstripe_app)
    _, proxy_port = await _serve(proxy.make_app(
        f'http://127.0.0.1:{stripe_port}',
        [('POST', '/_proxy/refunds', _configure_refunds), ('POST', '/_proxy/webhooks', _configure_webhooks),
         ('GET', '/_proxy/webhooks', _configure_webhooks), ('POST', '/_proxy/disputes', _dispute)]))
    print(json.dumps({'stripe': stripe_port, 'proxy': proxy_port}), flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def on_stdin():
        if not sys.stdin.buffer.read1(4096):
            loop.remove_reader(sys.stdin.fileno())
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    await stdin_closed


if __name__ == '__main__':
    asyncio.run(main())
