#!/usr/bin/env bash
# Benchmark pretix's REST API order creation (POST .../orders/) on this machine.
# See README.md beside this file. Everything it installs or writes lives outside
# the repository: the venv in $PRETIX_VENV, config/logs/results in $PRETIX_WORK.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PRETIX_VERSION=2026.8.0
GUNICORN_SPEC=${GUNICORN_SPEC:-gunicorn==27.0.1}
VENV=${PRETIX_VENV:-$HOME/.cache/pretix-venv}
WORK=${PRETIX_WORK:-$HOME/.cache/pretix-work}
PORT=${PORT:-9100}
WORKERS=${WORKERS:-4}
CLIENTS=${CLIENTS:-16}          # one level, or a space-separated list, e.g. "4 8 16 32"
DURATION=${DURATION:-20}        # measured seconds per level
WARMUP=${WARMUP:-10}            # unmeasured seconds before each window
PAYMENT_PROVIDER=${PAYMENT_PROVIDER:-manual}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DB=${PRETIX_DB:-pretix_bench}
TMPL_DB="${DB}_tmpl"            # migrated + seeded copy, cloned before each level
KEEP_DB=${KEEP_DB:-0}           # 1: leave $DB (and the template) in place at the end
REDIS_DB=${REDIS_DB:-}           # e.g. 15: use redis://127.0.0.1:6379/$REDIS_DB as pretix's cache
                                 # (must be empty; flushed at the end). Unset: no Redis (default)
VACUUM_EVERY=${VACUUM_EVERY:-10} # s between VACUUM ANALYZEs of $DB during the load (stands in for
                                 # autovacuum, which is off on this server); 0 = none
export PGHOST PGPORT PGUSER

log() { echo "[$(date '+%F %T')] $*"; }
psql_admin() { psql -v ON_ERROR_STOP=1 -X -q -d postgres "$@"; }

# The venv and the work dir must not live inside a git work tree.
for d in "$VENV" "$WORK"; do
    parent=$d
    while [ ! -d "$parent" ]; do parent=$(dirname "$parent"); done
    if git -C "$parent" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        echo "refusing: $d is inside a git work tree ($(git -C "$parent" rev-parse --show-toplevel))" >&2
        exit 2
    fi
done

# ---------------------------------------------------------------- install
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
fi
installed=$("$VENV/bin/python" - <<'EOF' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("pretix"), m.version("gunicorn"))
except m.PackageNotFoundError:
    pass
EOF
)
if [ "${installed%% *}" != "$PRETIX_VERSION" ] || [ "${installed#* }" != "${GUNICORN_SPEC#gunicorn==}" ]; then
    log "installing pretix==$PRETIX_VERSION $GUNICORN_SPEC into $VENV (found: '${installed}')"
    "$VENV/bin/pip" install -q --upgrade pip wheel
    "$VENV/bin/pip" install -q "pretix==$PRETIX_VERSION" "$GUNICORN_SPEC"
fi
log "settings: WORKERS=$WORKERS CLIENTS='$CLIENTS' DURATION=$DURATION WARMUP=$WARMUP VACUUM_EVERY=$VACUUM_EVERY REDIS_DB=${REDIS_DB:-none} PAYMENT_PROVIDER=$PAYMENT_PROVIDER"
log "venv: $("$VENV/bin/python" -c 'import importlib.metadata as m; print("pretix", m.version("pretix"), "gunicorn", m.version("gunicorn"), "Django", m.version("Django"))')"

# ---------------------------------------------------------------- config
mkdir -p "$WORK/data"
CFG="$WORK/pretix.cfg"
cat > "$CFG" <<EOF
; written by tests/bench/pretix/run.sh
[pretix]
instance_name=pretix-bench
url=http://127.0.0.1:$PORT
datadir=$WORK/data
currency=EUR
ecb_rates=off

[django]
debug=off

[database]
backend=postgresql
name=$DB
user=$PGUSER
host=$PGHOST
port=$PGPORT

[mail]
from=bench@localhost
host=127.0.0.1
port=1
EOF
if [ -n "$REDIS_DB" ]; then
    n=$(redis-cli -h 127.0.0.1 -p 6379 -n "$REDIS_DB" DBSIZE)
    if [ "$n" != 0 ]; then
        echo "refusing: Redis db $REDIS_DB holds $n keys; pick an empty one" >&2
        exit 2
    fi
    printf '\n[redis]\nlocation=redis://127.0.0.1:6379/%s\n' "$REDIS_DB" >> "$CFG"
fi
export PRETIX_CONFIG_FILE="$CFG"
: > "$WORK/results.jsonl"
: > "$WORK/gunicorn.log"
rm -f "$WORK"/load-*.out

VAC_PID=""
stop_vacuum_loop() {
    if [ -n "$VAC_PID" ]; then
        kill "$VAC_PID" 2>/dev/null || true
        wait "$VAC_PID" 2>/dev/null || true
    fi
    VAC_PID=""
}
GUNICORN_PID=""
stop_gunicorn() {
    if [ -n "$GUNICORN_PID" ] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
        kill -TERM "$GUNICORN_PID" 2>/dev/null || true
        for _ in $(seq 60); do
            kill -0 "$GUNICORN_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$GUNICORN_PID" 2>/dev/null && kill -KILL "$GUNICORN_PID" 2>/dev/null || true
        wait "$GUNICORN_PID" 2>/dev/null || true
    fi
    GUNICORN_PID=""
}
drop_dbs() {
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" \
               -c "DROP DATABASE IF EXISTS \"$TMPL_DB\" WITH (FORCE)" 2>&1 | grep -v NOTICE || true
}
cleanup() {
    stop_vacuum_loop
    stop_gunicorn
    if [ -n "$REDIS_DB" ]; then
        redis-cli -h 127.0.0.1 -p 6379 -n "$REDIS_DB" FLUSHDB >/dev/null || true
    fi
    if [ "$KEEP_DB" != 1 ]; then
        drop_dbs
        log "dropped $DB and $TMPL_DB"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- database + data
log "recreating database $DB"
drop_dbs
psql_admin -c "CREATE DATABASE \"$DB\""
log "python -m pretix migrate (log: $WORK/migrate.log)"
(cd "$WORK" && "$VENV/bin/python" -m pretix migrate --noinput > "$WORK/migrate.log" 2>&1) || {
    tail -30 "$WORK/migrate.log" >&2; exit 1; }

log "creating organizer, event, item, quota, team + API token via python -m pretix shell"
setup_out=$(cd "$WORK" && "$VENV/bin/python" -m pretix shell 2>&1 <<'EOF'
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import Event, Organizer

with scopes_disabled():
    o = Organizer.objects.create(name="Bench Organizer", slug="bench")  # also creates the default sales channels
    e = Event(
        organizer=o, name="Bench Event", slug="bench", currency="EUR",
        date_from=now() + timedelta(days=60), live=True,
        presale_start=now() - timedelta(days=1), presale_end=now() + timedelta(days=59),
    )
    e.save()
    # what the event-creation API does for a new event
    e.set_defaults()
    e.set_active_plugins(settings.PRETIX_PLUGINS_DEFAULT.split(","))
    e.save(update_fields=["plugins"])
    item = e.items.create(name="Admission", default_price=Decimal("35.00"), admission=True, active=True)
    q = e.quotas.create(name="Admission", size=1000000)
    q.items.add(item)
    team = o.teams.create(name="Bench API", all_events=True, all_event_permissions=True,
                          all_organizer_permissions=True)
    tok = team.tokens.create(name="bench")
    print("BENCH_SETUP", o.slug, e.slug, item.pk, tok.token)
EOF
) || { echo "$setup_out" >&2; exit 1; }
read -r _ ORG EVENT ITEM TOKEN < <(echo "$setup_out" | grep '^BENCH_SETUP ' || true) || true
[ -n "${TOKEN:-}" ] || { echo "setup failed:"; echo "$setup_out"; exit 1; } >&2
log "organizer=$ORG event=$EVENT item=$ITEM token=${TOKEN:0:6}..."

psql -X -q -d "$DB" -c 'VACUUM ANALYZE'
psql_admin -c "CREATE DATABASE \"$TMPL_DB\" TEMPLATE \"$DB\""

machine_busy() {  # % of all cores busy over $1 seconds
    python3 - "$1" <<'EOF'
import sys, time
def rd():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(v) - v[3] - v[4] - v[7], sum(v)  # not idle, iowait, steal
b0, t0 = rd(); time.sleep(float(sys.argv[1])); b1, t1 = rd()
print(f"{100.0 * (b1 - b0) / (t1 - t0):.1f}")
EOF
}

# ---------------------------------------------------------------- one level
LEVEL_NO=0
run_level() {
    local clients=$1
    LEVEL_NO=$((LEVEL_NO + 1))
    local out="$WORK/load-$LEVEL_NO-c$clients.out"
    log "---- level clients=$clients: fresh copy of $DB from $TMPL_DB"
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" 2>&1 | grep -v NOTICE || true
    psql_admin -c "CREATE DATABASE \"$DB\" TEMPLATE \"$TMPL_DB\""
    psql -X -q -d "$DB" -c 'VACUUM ANALYZE'

    log "machine busy before start (idle check, 3 s): $(machine_busy 3)% of $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

    (cd "$WORK" && exec "$VENV/bin/gunicorn" pretix.wsgi \
        --name pretix-bench --workers "$WORKERS" --worker-class sync \
        --bind "127.0.0.1:$PORT" --timeout 60 --no-control-socket \
        --error-logfile "$WORK/gunicorn.log" >> "$WORK/gunicorn.log" 2>&1) &
    GUNICORN_PID=$!
    local ready=0
    for _ in $(seq 120); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Token $TOKEN" \
            "http://127.0.0.1:$PORT/api/v1/organizers/$ORG/events/$EVENT/" || true)
        if [ "$code" = 200 ]; then ready=1; break; fi
        kill -0 "$GUNICORN_PID" 2>/dev/null || break
        sleep 0.5
    done
    if [ "$ready" != 1 ]; then
        echo "gunicorn did not become ready; tail of $WORK/gunicorn.log:" >&2
        tail -30 "$WORK/gunicorn.log" >&2
        exit 1
    fi
    log "gunicorn ready (pid $GUNICORN_PID, $WORKERS sync workers, port $PORT)"

    if [ "$VACUUM_EVERY" -gt 0 ]; then
        (
            n=0
            while :; do
                sleep 1; n=$((n + 1))
                if [ "$n" -ge "$VACUUM_EVERY" ]; then
                    n=0
                    psql -X -q -d "$DB" -c 'VACUUM ANALYZE' >/dev/null 2>&1 || true
                fi
            done
        ) &
        VAC_PID=$!
    fi
    log "START load clients=$clients duration=${DURATION}s warmup=${WARMUP}s   date: $(date)"
    python3 "$HERE/load.py" --host 127.0.0.1 --port "$PORT" --org "$ORG" --event "$EVENT" \
        --item "$ITEM" --token "$TOKEN" --payment-provider "$PAYMENT_PROVIDER" \
        --clients "$clients" --duration "$DURATION" --warmup "$WARMUP" \
        --gunicorn-pid "$GUNICORN_PID" --pg-db "$DB" --pg-host "$PGHOST" --pg-port "$PGPORT" \
        --pg-user "$PGUSER" --label "pretix-$PRETIX_VERSION-w$WORKERS${REDIS_DB:+-redis}" | tee "$out"
    log "END load clients=$clients   date: $(date)"
    stop_vacuum_loop
    grep '^RESULT ' "$out" | sed 's/^RESULT //' >> "$WORK/results.jsonl"

    stop_gunicorn
    local in_db
    in_db=$(psql -X -At -d "$DB" -c 'SELECT count(*) FROM pretixbase_order')
    log "orders in $DB after the level: $in_db (201 replies in the whole run incl. warmup: $(
        sed -n 's/.*"created_201_whole_run": \([0-9]*\).*/\1/p' "$out"))"
}

for c in $CLIENTS; do
    run_level "$c"
done

# ---------------------------------------------------------------- summary
echo
echo "clients  orders/s  p50ms  p95ms  p99ms  errors  machine-busy%  cpu-ms/order(machine)  cpu-ms/order(gunicorn+pg)  start..end"
python3 - "$WORK/results.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    c = r["cpu"]; g = c["group_ms_per_order"]; l = r["latency_ms"]
    errs = sum(r["errors_in_window"].values())
    pretix = (g.get("gunicorn") or 0) + (g.get("postgres") or 0)
    print(f"{r['clients']:>7}  {r['orders_per_s']:>8}  {l['p50']:>5}  {l['p95']:>5}  {l['p99']:>5}  {errs:>6}"
          f"  {c['machine_busy_pct_of_all_cores']:>13}  {c['machine_busy_ms_per_order']:>21}  {pretix:>25.2f}"
          f"  {r['started']}..{r['ended']}")
EOF
echo "(results: $WORK/results.jsonl)"
