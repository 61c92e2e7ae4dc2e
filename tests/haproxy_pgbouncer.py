"""Traffic for tests/haproxy_pgbouncer.sh, all through HAProxy (standard library only).

Clients connect from their own loopback addresses (127.1.x.y and up), so that
nts, which trusts only HAProxy's address, must take each client's address
from X-Forwarded-For for its rate limit and hoarding caps.
"""

import argparse
import csv
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

ARGS = None


def fail(message):
    print(f"haproxy_pgbouncer: FAIL: {message}", flush=True)
    sys.exit(1)


def call(method, path, body=None, bearer=None, source="127.9.0.1", headers=None, timeout=60, base=None):
    """One request through HAProxy (or `base`) from `source`; answers (status, JSON body or text)."""
    url = urllib.parse.urlsplit(base or ARGS.lb)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout, source_address=(source, 0))
    all_headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if bearer:
        all_headers["Authorization"] = f"Bearer {bearer}"
    try:
        conn.request(method, path, body=data, headers=all_headers)
        res = conn.getresponse()
        text = res.read().decode()
        try:
            return res.status, json.loads(text) if text else None
        except ValueError:
            return res.status, text
    finally:
        conn.close()


def wait_for(what, check, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    fail(f"{what} did not happen within {seconds} s")


def server_states():
    """HAProxy's view of each nts instance: {'nts1': 'UP', ...}."""
    url = urllib.parse.urlsplit(ARGS.stats)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", url.path)
    text = conn.getresponse().read().decode()
    rows = list(csv.reader(io.StringIO(text.lstrip("# "))))
    header = rows[0]
    px, sv, st = header.index("pxname"), header.index("svname"), header.index("status")
    return {r[sv]: r[st] for r in rows[1:] if len(r) > st and r[px] == "nts" and r[sv].startswith("nts")}


def sql(query):
    out = subprocess.run(["psql", ARGS.database_url, "-qtAc", query], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def create_event(name, capacity, max_per_order):
    status, event = call(
        "POST",
        "/api/v1/admin/events",
        {
            "name": name,
            "venue": "The Hall",
            "currency": "EUR",
            "starts_at": "2099-01-01T20:00:00Z",
            "ticket_types": [{"name": "GA", "price_minor": 2500, "capacity": capacity, "max_per_order": max_per_order}],
        },
        bearer=ARGS.admin_token,
    )
    if status != 201:
        fail(f"creating an event answered {status}: {event}")
    return event["id"], event["ticket_types"][0]["id"]


def source_address(i):
    return f"127.1.{i // 200}.{i % 200 + 10}"


def race():
    event, tt = create_event("Flash sale", 100, 1)
    statuses = [None] * 500
    barrier = threading.Barrier(500)

    def buyer(i):
        body = {"ticket_type_id": tt, "quantity": 1, "name": f"Buyer {i}", "email": f"buyer{i}@example.com"}
        barrier.wait()
        try:
            statuses[i] = call("POST", f"/api/v1/events/{event}/holds", body, source=source_address(i), timeout=120)
        except Exception as e:  # a dropped connection is a failure too
            statuses[i] = (0, repr(e))

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(500)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [s for s, _ in statuses if s == 201]
    sold_out = [b for s, b in statuses if s == 409 and isinstance(b, dict) and b.get("code") == "sold_out"]
    others = [(s, b) for s, b in statuses if s not in (201, 409)]
    if others:
        fail(f"{len(others)} holds answered neither 201 nor 409, e.g. {others[:3]}")
    if len(held) != 100 or len(sold_out) != 400:
        fail(f"500 holds on 100 seats: {len(held)} held, {len(sold_out)} sold_out")
    counters = sql(f"SELECT held, sold FROM ticket_types WHERE id = '{tt}'")
    if counters != "100|0":
        fail(f"the database counts held|sold = {counters}, not 100|0")
    stored = sql(f"SELECT count(*) FROM holds h JOIN hold_lines l ON l.hold_id = h.id WHERE l.ticket_type_id = '{tt}' AND h.status = 'active'")
    if stored != "100":
        fail(f"{stored} active holds stored, not 100")
    status, page = call("GET", f"/api/v1/events/{event}")
    if status != 200 or page["ticket_types"][0]["available"] != 0:
        fail(f"the event page after the race: {status} {page}")
    print("haproxy_pgbouncer: 500 concurrent holds on 100 seats: exactly 100 held, 400 sold_out", flush=True)
    return event, tt


def purchase(source):
    event, tt = create_event(f"Concert from {source}", 10, 4)
    status, hold = call(
        "POST",
        f"/api/v1/events/{event}/holds",
        {"ticket_type_id": tt, "quantity": 2, "name": "Ada Lovelace", "email": "ada@example.com"},
        source=source,
        headers={"Idempotency-Key": f"hold-{source}"},
    )
    if status != 201:
        fail(f"hold answered {status}: {hold}")
    status, checkout = call("POST", f"/api/v1/holds/{hold['id']}/checkout", {}, bearer=hold["secret"], source=source)
    if status != 201:
        fail(f"checkout answered {status}: {checkout}")
    order, payment = checkout["order"], checkout["payment"]
    status, confirmed = call(
        "POST",
        f"/api/v1/payments/simulated/{payment['id']}/confirm",
        {"outcome": "succeeded"},
        bearer=order["secret"],
        source=source,
    )
    if status != 200:
        fail(f"confirm answered {status}: {confirmed}")
    status, seen = call("GET", f"/api/v1/orders/{order['id']}", bearer=order["secret"], source=source)
    if status != 200 or seen["status"] != "paid" or len(seen["tickets"]) != 2:
        fail(f"the order after paying: {status} {seen}")
    print(f"haproxy_pgbouncer: a purchase from {source} is paid, 2 tickets", flush=True)


def rate_limit_by_client_address(event, tt):
    """Client A exceeds its rate limit; client B, behind the same HAProxy, is not limited for it."""
    body = {"ticket_type_id": tt, "quantity": 0, "name": "A", "email": "a@example.com"}
    path = f"/api/v1/events/{event}/holds"
    answers = [call("POST", path, body, source="127.4.0.1")[0] for _ in range(60)]
    if 429 not in answers:
        fail(f"client A sent 60 POSTs (burst 10 per instance) and was never limited: {answers}")
    # Writing its own X-Forwarded-For does not make A someone else.
    spoofed = call("POST", path, body, source="127.4.0.1", headers={"X-Forwarded-For": "203.0.113.7"})[0]
    if spoofed != 429:
        fail(f"client A with a forged X-Forwarded-For answered {spoofed}, not 429")
    for i in range(3):
        status, answer = call("POST", path, body, source=f"127.4.0.{i + 2}")
        if status != 422:
            fail(f"client B ({i}) is limited for client A's requests: {status} {answer}")
    print("haproxy_pgbouncer: the rate limit counts clients by their X-Forwarded-For address", flush=True)


def forged_forwarding_from_a_non_proxy(event, tt):
    """A client that reaches an instance without HAProxy and writes a new X-Forwarded-For
    each time is still one client: its address, not a trusted proxy's, is what counts."""
    body = {"ticket_type_id": tt, "quantity": 0, "name": "M", "email": "m@example.com"}
    path = f"/api/v1/events/{event}/holds"
    answers = [
        call("POST", path, body, source="127.6.0.1", base=ARGS.direct, headers={"X-Forwarded-For": f"198.51.100.{i}"})[0]
        for i in range(1, 31)
    ]
    if 429 not in answers:
        fail(f"30 POSTs straight to an instance, each with a new forged X-Forwarded-For, were never limited: {answers}")
    print("haproxy_pgbouncer: a forged X-Forwarded-For from a non-proxy address buys no extra budget", flush=True)


def survive_a_killed_instance(event, tt):
    os.kill(ARGS.kill_pid, signal.SIGKILL)
    wait_for(f"HAProxy marking {ARGS.kill_server} down", lambda: server_states()[ARGS.kill_server].startswith("DOWN"))
    statuses = []
    lock = threading.Lock()

    def client(n):
        for j in range(15):
            source = f"127.5.{n}.{j + 1}"
            for method, path, body in [
                ("GET", f"/api/v1/events/{event}", None),
                ("GET", "/healthz", None),
                ("POST", f"/api/v1/events/{event}/holds",
                 {"ticket_type_id": tt, "quantity": 1, "name": "Late", "email": f"late{n}-{j}@example.com"}),
            ]:
                try:
                    status = call(method, path, body, source=source)[0]
                except Exception as e:
                    status = repr(e)
                with lock:
                    statuses.append((status, method, path))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [s for s in statuses if not isinstance(s[0], int) or s[0] >= 500]
    if bad:
        fail(f"{len(bad)} of {len(statuses)} requests failed after HAProxy noticed the dead instance: {bad[:5]}")
    if any(s[0] not in (200, 409) for s in statuses):
        fail(f"unexpected answers after the kill: {[s for s in statuses if s[0] not in (200, 409)][:5]}")
    print(f"haproxy_pgbouncer: {ARGS.kill_server} SIGKILLed; HAProxy noticed; {len(statuses)} requests, no 5xx", flush=True)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--lb", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--direct", required=True, help="one instance, bypassing HAProxy")
    parser.add_argument("--kill-pid", type=int, required=True)
    parser.add_argument("--kill-server", required=True)
    ARGS = parser.parse_args()

    wait_for("three nts instances up behind HAProxy", lambda: list(server_states().values()) == ["UP"] * 3, 180)
    event, tt = race()
    purchase("127.3.0.1")
    rate_limit_by_client_address(event, tt)
    forged_forwarding_from_a_non_proxy(event, tt)
    survive_a_killed_instance(event, tt)
    purchase("127.3.0.2")


if __name__ == "__main__":
    main()
