"""A proxy between nts and localstripe that behaves like Stripe's documented
API where localstripe does not, in its strictest reading, and misbehaves on
request like a network.

- Idempotency-Key (localstripe ignores it): the answer to a POST with a key
  is stored and replayed for every later request with that key for 24 hours
  (header `Idempotent-Replayed: true`), whatever its status, 500s included:
  Stripe saves the result of every request whose endpoint started executing.
  The same key with another request answers 400 `idempotency_error`; "the
  same request" means the same method, path and *raw bytes* of the body (the
  order of form parameters counts: whether Stripe tolerates a reordering is
  undocumented, so it is not tolerated here). The same key while the first
  request still runs answers 409 `idempotency_key_in_use`. Requests refused
  before the endpoint runs (401, 429) are not stored.
- Faults, armed with `POST /_proxy/faults`
  {"method": "POST", "path": "<regex>", "fault": ..., "times": 1, "seconds": 5}:
  `lose` forwards the call, stores its answer, then closes the connection
  without answering; `timeout` forwards it and answers only after `seconds`;
  `error` answers 500 without forwarding and stores that 500 under the key;
  `error_after` forwards (Stripe acted) but answers 500, stored under the key;
  `rate_limit` answers 429 `rate_limit`; `lock_timeout` answers 429
  `lock_timeout` (another request held the object); `auth` answers 401;
  `invalid` answers 400 `invalid_request_error` (these four are not stored
  and not forwarded).
- `Stripe-Should-Retry`, as Stripe sends it: `false` on a rate-limit 429 (the
  same request at once would only be limited again), `true` on a
  `lock_timeout` 429 (the object is free again in a moment, and nothing was
  done).
- The account's rate limit, `POST /_proxy/ratelimit` {"per_second": 25}
  (Stripe's test mode; 100 in live mode; 0 or null: off, the default): every
  call to /v1, from every client, counts; past the limit within any second
  the call is answered 429 `rate_limit`, not forwarded and not stored under
  its key.
- Random faults for torture runs, `POST /_proxy/chaos` {"lose": 0.05, ...}:
  each call to /v1 meets each named fault with that probability.
- `POST /_proxy/clock` {"advance": seconds} moves the proxy's clock (stored
  answers expire after 24 hours of it).
- `GET /_proxy/calls` lists the calls seen: method, path, key, body, status, how.
"""

import asyncio
import collections
import random
import re
import time

import aiohttp
from aiohttp import web

HOP_HEADERS = {'host', 'content-length', 'transfer-encoding', 'connection'}
KEY_LIFETIME = 24 * 3600
CHAOS_FAULTS = ('lose', 'timeout', 'error', 'error_after', 'rate_limit', 'lock_timeout')


def stripe_error(status, type_, message, code=None, should_retry=None):
    error = {'type': type_, 'message': message}
    if code:
        error['code'] = code
    headers = {'Content-Type': 'application/json'}
    if should_retry is not None:
        headers['Stripe-Should-Retry'] = 'true' if should_retry else 'false'
    return status, headers, web.json_response({'error': error}).body


# As Stripe answers them today: all are invalid_request_errors.
REFUSALS = {
    'rate_limit': (429, 'invalid_request_error', 'Too many requests hit the API too quickly. We recommend an '
                   'exponential backoff of your requests.', 'rate_limit', False),
    'lock_timeout': (429, 'invalid_request_error', 'This object cannot be accessed right now because another API '
                     'request or Stripe process is currently accessing it. If you see this error intermittently, '
                     'retry the request.', 'lock_timeout', True),
    'auth': (401, 'invalid_request_error', 'Invalid API Key provided: sk_live_****************nts', None, None),
    'invalid': (400, 'invalid_request_error', 'Invalid currency: injected by the test proxy',
                'parameter_invalid_empty', None),
}


def fingerprint(request, body):
    """What Stripe compares for a reused key: this very request, byte for byte."""
    return (request.method, request.path, request.query_string, bytes(body))


def make_app(upstream, extra_routes=()):
    faults = []
    chaos = {}
    calls = []
    clock = {'offset': 0.0}
    limit = {'per_second': 0}
    admitted = collections.deque()  # when (proxy clock) the calls within the last second were admitted
    # key -> {'fingerprint', 'at', 'done': Future of (status, headers, body)}
    keys = {}
    session = None

    def now():
        return time.time() + clock['offset']

    async def on_startup(app):
        nonlocal session
        session = aiohttp.ClientSession(auto_decompress=False)

    async def on_cleanup(app):
        await session.close()

    async def arm(request):
        spec = await request.json()
        faults.append({
            'method': spec.get('method', 'POST'),
            'path': re.compile(spec['path']),
            'fault': spec['fault'],
            'times': int(spec.get('times', 1)),
            'seconds': float(spec.get('seconds', 5)),
        })
        return web.json_response({'armed': len(faults)})

    async def set_chaos(request):
        spec = await request.json()
        unknown = set(spec) - set(CHAOS_FAULTS) - {'seconds'}
        if unknown:
            return web.json_response({'unknown': sorted(unknown)}, status=400)
        chaos.clear()
        chaos.update(spec)
        return web.json_response(chaos)

    async def set_ratelimit(request):
        spec = await request.json()
        per_second = spec.get('per_second') or 0
        if not isinstance(per_second, int) or per_second < 0:
            return web.json_response({'error': 'per_second: a whole number, 0 for off'}, status=400)
        limit['per_second'] = per_second
        admitted.clear()
        return web.json_response(limit)

    def over_limit(path):
        """Counts a call to /v1 against the account's limit; answers whether it is past it."""
        if not limit['per_second'] or not path.startswith('/v1/'):
            return False
        t = time.monotonic()
        while admitted and t - admitted[0] >= 1.0:
            admitted.popleft()
        if len(admitted) >= limit['per_second']:
            return True
        admitted.append(t)
        return False

    async def advance_clock(request):
        clock['offset'] += float((await request.json())['advance'])
        return web.json_response({'offset': clock['offset']})

    async def list_calls(request):
        return web.json_response(calls)

    def take_fault(method, path):
        for f in faults:
            if f['times'] > 0 and f['method'] == method and f['path'].fullmatch(path):
                f['times'] -= 1
                return f
        if path.startswith('/v1/'):
            for name in CHAOS_FAULTS:
                if random.random() < chaos.get(name, 0):
                    return {'fault': name, 'seconds': chaos.get('seconds', 3)}
        return None

    async def forward(request, body):
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with session.request(request.method, upstream + request.path_qs,
                                   headers=headers, data=body) as r:
            payload = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
            return r.status, out, payload

    async def execute(request, body, fault):
        """What Stripe's endpoint answers (and, with a key, stores)."""
        if fault == 'error':
            return stripe_error(500, 'api_error', 'injected by the test proxy before Stripe acted')
        answer = await forward(request, body)
        if fault == 'error_after':
            return stripe_error(500, 'api_error', 'injected by the test proxy after Stripe acted')
        return answer

    async def handle(request):
        body = await request.read()
        key = request.headers.get('Idempotency-Key') if request.method == 'POST' else None
        call = {'method': request.method, 'path': request.path, 'query': request.query_string, 'key': key,
                'body': body.decode('utf-8', 'replace')}
        calls.append(call)
        if over_limit(request.path):
            call.update(status=429, how='rate limited')
            status, headers, payload = stripe_error(*REFUSALS['rate_limit'])
            return web.Response(status=status, body=payload, headers=headers)
        fault = take_fault(request.method, request.path)
        kind = fault['fault'] if fault else None
        refused = REFUSALS.get(kind)
        if refused:
            call.update(status=refused[0], how=f'injected {kind}')
            status, headers, payload = stripe_error(*refused)
            return web.Response(status=status, body=payload, headers=headers)

        replayed = False
        if key is None:
            status, headers, payload = await execute(request, body, kind)
            how = 'forwarded' if kind != 'error' else 'injected error'
        else:
            entry = keys.get(key)
            if entry is not None and now() - entry['at'] > KEY_LIFETIME:
                del keys[key]
                entry = None
            if entry is not None and entry['fingerprint'] != fingerprint(request, body):
                call.update(status=400, how='idempotency mismatch')
                status, headers, payload = stripe_error(
                    400, 'idempotency_error',
                    f"Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    f"meant to execute a different request.")
                return web.Response(status=status, body=payload, headers=headers)
            if entry is not None and not entry['done'].done():
                call.update(status=409, how='key in use')
                status, headers, payload = stripe_error(
                    409, 'invalid_request_error',
                    'There is currently another in-progress request using this Idempotent Key '
                    '(that probably means you submitted twice, and the other request is still '
                    'going through).', code='idempotency_key_in_use')
                return web.Response(status=status, body=payload, headers=headers)
            if entry is None:
                entry = {'fingerprint': fingerprint(request, body), 'at': now(),
                         'done': asyncio.get_running_loop().create_future()}
                keys[key] = entry
                try:
                    entry['done'].set_result(await execute(request, body, kind))
                except BaseException:
                    del keys[key]
                    raise
                how = {'error': 'injected error, stored', 'error_after': 'forwarded, error stored'}.get(kind, 'forwarded')
            else:
                replayed = True
                how = 'replayed'
            status, headers, payload = entry['done'].result()

        call.update(status=status, how=how)
        if kind == 'lose':
            call['how'] += ', answer lost'
            if request.transport is not None:  # None: the client hung up first
                request.transport.close()
            raise asyncio.CancelledError()
        if kind == 'timeout':
            call['how'] += ', answer late'
            await asyncio.sleep(fault['seconds'])
        response = web.Response(status=status, body=payload, headers=headers)
        if replayed:
            response.headers['Idempotent-Replayed'] = 'true'
        return response

    app = web.Application(client_max_size=1024 * 1024)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post('/_proxy/faults', arm)
    app.router.add_post('/_proxy/chaos', set_chaos)
    app.router.add_post('/_proxy/clock', advance_clock)
    app.router.add_post('/_proxy/ratelimit', set_ratelimit)
    app.router.add_get('/_proxy/calls', list_calls)
    for method, path, handler in extra_routes:
        app.router.add_route(method, path, handler)
    app.router.add_route('*', '/{tail:.*}', handle)
    return app
