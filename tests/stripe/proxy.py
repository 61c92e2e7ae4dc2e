"""A proxy between nts and localstripe that behaves like Stripe where
localstripe does not, and misbehaves on request like a network.

- Idempotency-Key (localstripe ignores it): the first answer to a POST with a
  key is stored and replayed for every later request with that key (header
  `Idempotent-Replayed: true`); the same key with another request answers 400
  `idempotency_error`; the same key while the first is still running answers
  409. Only answers localstripe produced are stored, as Stripe stores only
  requests that reached it.
- Faults, armed with `POST /_proxy/faults`
  {"method": "POST", "path": "<regex>", "fault": "lose" | "timeout" | "error",
   "times": 1, "seconds": 5}:
  `lose` forwards the call, stores its answer, then closes the connection
  without answering; `timeout` forwards it and answers only after `seconds`;
  `error` answers 500 without forwarding.
- `GET /_proxy/calls` lists the calls seen: method, path, key, status, how.
"""

import asyncio
import re
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

HOP_HEADERS = {'host', 'content-length', 'transfer-encoding', 'connection'}


def stripe_error(status, type_, message, code=None):
    error = {'type': type_, 'message': message}
    if code:
        error['code'] = code
    return web.json_response({'error': error}, status=status)


def parameters(request, body):
    """What Stripe compares for a key: the parameters, in any order (a
    client may encode a map's entries differently from one try to the next)."""
    form = parse_qsl(body.decode('utf-8', 'replace'), keep_blank_values=True)
    return (request.method, request.path, tuple(sorted(parse_qsl(request.query_string) + form)))


def make_app(upstream):
    faults = []
    calls = []
    # key -> {'fingerprint', 'done': Future of (status, headers, body)}
    keys = {}
    session = None

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

    async def list_calls(request):
        return web.json_response(calls)

    def take_fault(method, path):
        for f in faults:
            if f['times'] > 0 and f['method'] == method and f['path'].fullmatch(path):
                f['times'] -= 1
                return f
        return None

    async def forward(request, body):
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with session.request(request.method, upstream + request.path_qs,
                                   headers=headers, data=body) as r:
            payload = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
            return r.status, out, payload

    async def handle(request):
        body = await request.read()
        key = request.headers.get('Idempotency-Key') if request.method == 'POST' else None
        call = {'method': request.method, 'path': request.path, 'key': key}
        calls.append(call)
        fault = take_fault(request.method, request.path)
        if fault and fault['fault'] == 'error':
            call.update(status=500, how='injected error')
            return stripe_error(500, 'api_error', 'injected by the test proxy')

        replayed = False
        if key is None:
            status, headers, payload = await forward(request, body)
        else:
            fingerprint = parameters(request, body)
            entry = keys.get(key)
            if entry is not None and entry['fingerprint'] != fingerprint:
                call.update(status=400, how='idempotency mismatch')
                return stripe_error(
                    400, 'idempotency_error',
                    f"Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    f"meant to execute a different request.")
            if entry is not None and not entry['done'].done():
                call.update(status=409, how='key in use')
                return stripe_error(
                    409, 'invalid_request_error',
                    'There is currently another in-progress request using this Idempotent Key '
                    '(that probably means you submitted twice, and the other request is still '
                    'going through).', code='idempotency_key_in_use')
            if entry is None:
                entry = {'fingerprint': fingerprint, 'done': asyncio.get_running_loop().create_future()}
                keys[key] = entry
                try:
                    entry['done'].set_result(await forward(request, body))
                except Exception:
                    del keys[key]
                    raise
            else:
                replayed = True
            status, headers, payload = entry['done'].result()

        call.update(status=status, how='replayed' if replayed else 'forwarded')
        if fault and fault['fault'] == 'lose':
            call['how'] += ', answer lost'
            request.transport.close()
            raise asyncio.CancelledError()
        if fault and fault['fault'] == 'timeout':
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
    app.router.add_get('/_proxy/calls', list_calls)
    app.router.add_route('*', '/{tail:.*}', handle)
    return app
