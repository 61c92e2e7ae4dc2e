"""Starts localstripe (a Stripe emulator) and the fault-injecting proxy in
front of it, each on a free port of 127.0.0.1, for one test.

Prints one JSON line {"stripe": <port>, "proxy": <port>} once both listen,
then serves until standard input closes (the test process went away) or it
is killed. nts talks to the proxy; the test talks to either.

localstripe 1.15.10 is patched here where it differs from Stripe in ways that
matter to nts and to the async-stripe client (see each patch).
"""

import asyncio
import json
import sys

from aiohttp import web

import localstripe.resources as ls
from localstripe.errors import UserError
from localstripe.server import app as localstripe_app
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


def _init_payment_intent(self, allowed_payment_method_types=None, **kwargs):
    if allowed_payment_method_types is not None:
        kwargs['payment_method_types'] = allowed_payment_method_types
    _payment_intent_init(self, **kwargs)


ls.PaymentIntent.__init__ = _init_payment_intent


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

_refund_init = ls.Refund.__init__


def _refund_and_notify(self, *args, **kwargs):
    _refund_init(self, *args, **kwargs)
    schedule_webhook(ls.Event('charge.refunded', ls.Charge._api_retrieve(self.charge)))


ls.Refund.__init__ = _refund_and_notify


async def _serve(app):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def main():
    _, stripe_port = await _serve(localstripe_app)
    _, proxy_port = await _serve(proxy.make_app(f'http://127.0.0.1:{stripe_port}'))
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
