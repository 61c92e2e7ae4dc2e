#!/usr/bin/env python3
"""Closed-loop load driver for pretix's REST order creation (stdlib only).

Each of --clients threads POSTs a new one-ticket order to
  /api/v1/organizers/{org}/events/{event}/orders/
again and again over its own http.client connection (kept alive where the
server allows it; gunicorn's sync workers answer "Connection: close", and
http.client then reconnects by itself). A reply of 201 is a success; any
other status, or a connection error, is counted as an error by kind.

Timeline: --warmup seconds (not counted; every gunicorn worker loads its code
on its first request), then the measured window of --duration seconds, then
the clients stop sending. Only requests that complete inside the window are
counted. Around the window it reads /proc/stat (whole machine) and
/proc/<pid>/stat of the gunicorn process tree, of the PostgreSQL backends of
--pg-db and of this driver, so CPU per order can be worked out.

Prints a human summary and one line "RESULT {json}".
"""
import argparse
import http.client
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def proc_stat_machine():
    """(busy, total, steal) in seconds summed over all CPUs, from /proc/stat.

    busy = user + nice + system + irq + softirq (not idle, iowait or steal);
    guest and guest_nice are already included in user and nice."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    assert parts[0] == "cpu"
    user, nice, system, idle, iowait, irq, softirq, steal = [int(x) for x in parts[1:9]]
    busy = user + nice + system + irq + softirq
    total = busy + idle + iowait + steal
    return busy / CLK_TCK, total / CLK_TCK, steal / CLK_TCK


def proc_cpu(pid):
    """utime+stime of one process in seconds, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_tree(root_pid):
    """root_pid and all its descendants (by scanning /proc)."""
    children = defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(")") + 2:].split()[1])
        children[ppid].append(int(name))
    out, todo = [], [root_pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pg_backend_pids(args):
    if not args.pg_db:
        return []
    try:
        out = subprocess.run(
            ["psql", "-h", args.pg_host, "-p", str(args.pg_port), "-U", args.pg_user, "-d", "postgres", "-Atc",
             f"SELECT pid FROM pg_stat_activity WHERE datname = '{args.pg_db}' AND pid <> pg_backend_pid()"],
            check=True, capture_output=True, text=True, timeout=10,
        ).stdout
    except Exception as e:  # noqa: BLE001 - CPU accounting is best effort
        print(f"warning: could not list PostgreSQL backends: {e}", file=sys.stderr)
        return []
    return [int(x) for x in out.split()]


def snapshot(args):
    """CPU counters of each process group we track."""
    groups = {"self": [os.getpid()]}
    if args.gunicorn_pid:
        groups["gunicorn"] = proc_tree(args.gunicorn_pid)
    if args.pg_db:
        groups["postgres"] = pg_backend_pids(args)
    per = {}
    for g, pids in groups.items():
        per[g] = {p: proc_cpu(p) for p in pids}
    busy, total, steal = proc_stat_machine()
    return {"t": time.monotonic(), "busy": busy, "total": total, "steal": steal, "procs": per}


def cpu_delta(a, b):
    out = {}
    for g in b["procs"]:
        s = 0.0
        for pid, v1 in b["procs"][g].items():
            if v1 is None:
                continue
            v0 = a["procs"].get(g, {}).get(pid)
            s += v1 - (v0 or 0.0)  # a process new in the window counts from 0
        out[g] = s
    return out


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.samples = []  # (end_monotonic, latency_s, status)
        self.error_bodies = defaultdict(list)
        self.total_201 = 0


def client(cid, args, stats, phase, path, headers):
    conn = None
    n = 0
    while not phase["stop"].is_set():
        n += 1
        body = json.dumps({
            "email": f"c{cid}-{n}@example.org",
            "locale": "en",
            "sales_channel": "web",
            "payment_provider": args.payment_provider,
            "send_email": False,
            "positions": [{"item": args.item, "attendee_name": f"Bench Client{cid} N{n}"}],
        }).encode()
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
        except Exception as e:  # noqa: BLE001 - every failure is an error to count
            status = f"conn:{type(e).__name__}"
            data = str(e).encode()
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
            conn = None
        t1 = time.monotonic()
        with stats.lock:
            stats.samples.append((t1, t1 - t0, status))
            if status == 201:
                stats.total_201 += 1
            elif len(stats.error_bodies[status]) < 2:
                stats.error_bodies[status].append(data[:600].decode("utf-8", "replace"))
    if conn is not None:
        conn.close()


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    # nearest-rank percentile
    i = min(len(sorted_vals) - 1, max(0, math.ceil(q / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--org", default="bench")
    ap.add_argument("--event", default="bench")
    ap.add_argument("--item", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--payment-provider", default="manual")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="per-request socket timeout (s)")
    ap.add_argument("--gunicorn-pid", type=int, help="gunicorn master pid; its process tree's CPU is reported")
    ap.add_argument("--pg-db", help="database whose PostgreSQL backends' CPU is reported")
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, default=5432)
    ap.add_argument("--pg-user", default="postgres")
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    path = f"/api/v1/organizers/{args.org}/events/{args.event}/orders/"
    headers = {
        "Authorization": f"Token {args.token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    stats = Stats()
    phase = {"stop": threading.Event()}
    threads = [threading.Thread(target=client, args=(i, args, stats, phase, path, headers), daemon=True)
               for i in range(args.clients)]
    wall_start = time.time()
    for t in threads:
        t.start()
    time.sleep(args.warmup)
    s0 = snapshot(args)
    w0 = s0["t"]
    time.sleep(max(0.0, w0 + args.duration - time.monotonic()))
    s1 = snapshot(args)
    w1 = s1["t"]
    phase["stop"].set()
    for t in threads:
        t.join(args.timeout + 5)
    wall_end = time.time()

    with stats.lock:
        window = [s for s in stats.samples if w0 <= s[0] < w1]
        total_201 = stats.total_201
        error_bodies = dict(stats.error_bodies)
        n_all = len(stats.samples)
    elapsed = w1 - w0
    ok = sorted(lat for _, lat, st in window if st == 201)
    errors = Counter(str(st) for _, _, st in window if st != 201)
    errors_all = Counter(str(st) for _, _, st in stats.samples if st != 201)
    busy = s1["busy"] - s0["busy"]
    total = s1["total"] - s0["total"]
    steal = s1["steal"] - s0["steal"]
    groups = cpu_delta(s0, s1)
    n_ok = len(ok)
    nb = max(1, int(round(elapsed / 5.0)))  # ~5 s buckets, to see whether the rate holds
    buckets = [0] * nb
    for end, _, st in window:
        if st == 201:
            buckets[min(nb - 1, int((end - w0) / elapsed * nb))] += 1
    slowest = sorted(((lat, end - w0) for end, lat, st in window if st == 201), reverse=True)[:3]
    res = {
        "label": args.label,
        "clients": args.clients,
        "window_s": round(elapsed, 3),
        "warmup_s": args.warmup,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall_start)),
        "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall_end)),
        "orders_ok": n_ok,
        "orders_per_s": round(n_ok / elapsed, 2),
        "latency_ms": {
            "p50": round(pct(ok, 50) * 1000, 1),
            "p95": round(pct(ok, 95) * 1000, 1),
            "p99": round(pct(ok, 99) * 1000, 1),
            "max": round(ok[-1] * 1000, 1) if ok else None,
            "mean": round(sum(ok) / n_ok * 1000, 1) if ok else None,
        },
        "orders_per_s_by_bucket": [round(b / (elapsed / nb), 1) for b in buckets],
        "over_1s_in_window": sum(1 for x in ok if x > 1.0),
        "slowest_ms_at_s": [[round(lat * 1000, 1), round(at, 2)] for lat, at in slowest],
        "errors_in_window": dict(errors),
        "errors_whole_run": dict(errors_all),
        "requests_whole_run": n_all,
        "created_201_whole_run": total_201,
        "cpu": {
            "ncpu": NCPU,
            "machine_busy_pct_of_all_cores": round(100.0 * busy / total, 1) if total else None,
            "machine_busy_cpu_s": round(busy, 2),
            "machine_steal_pct_of_all_cores": round(100.0 * steal / total, 1) if total else None,
            "machine_busy_ms_per_order": round(1000.0 * busy / n_ok, 2) if n_ok else None,
            "group_cpu_s": {g: round(v, 2) for g, v in groups.items()},
            "group_ms_per_order": {g: round(1000.0 * v / n_ok, 2) if n_ok else None for g, v in groups.items()},
            "other_cpu_s": round(busy - sum(groups.values()), 2),
        },
    }

    lat = res["latency_ms"]
    cpu = res["cpu"]
    print(f"== pretix order creation {args.label} clients={args.clients} window={elapsed:.1f}s "
          f"({res['started']} .. {res['ended']})")
    print(f"orders/s: {res['orders_per_s']}  (201s in window: {n_ok})")
    print(f"orders/s in {nb} consecutive parts of the window: {res['orders_per_s_by_bucket']}")
    print(f"latency ms: p50={lat['p50']} p95={lat['p95']} p99={lat['p99']} max={lat['max']} mean={lat['mean']}")
    print(f"slowest (ms @ s into window, by completion): {res['slowest_ms_at_s']}; over 1 s: {res['over_1s_in_window']}")
    print(f"errors in window by status: {dict(errors) or 'none'}; whole run: {dict(errors_all) or 'none'}")
    print(f"CPU: machine busy {cpu['machine_busy_pct_of_all_cores']}% of {NCPU} cores "
          f"= {cpu['machine_busy_cpu_s']} cpu-s -> {cpu['machine_busy_ms_per_order']} ms CPU/order (whole machine); "
          f"steal {cpu['machine_steal_pct_of_all_cores']}%")
    print("     by group (cpu-s / ms per order): " + ", ".join(
        f"{g}={groups[g]:.2f}/{cpu['group_ms_per_order'][g]}" for g in groups) +
          f", other={cpu['other_cpu_s']}")
    for st, bodies in error_bodies.items():
        for b in bodies:
            print(f"sample error body [{st}]: {b}")
    print("RESULT " + json.dumps(res, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
