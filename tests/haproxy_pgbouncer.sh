#!/usr/bin/env bash
# nts as it runs in production: three instances behind HAProxy (health checks
# on /healthz, X-Forwarded-For), PgBouncer in transaction pooling mode in
# front of PostgreSQL, with the configuration files of deploy/. Then, all
# through HAProxy (tests/haproxy_pgbouncer.py): 500 concurrent holds on 100
# seats hold exactly 100; a purchase is paid; the rate limit counts clients by
# their own address, and one that bypasses HAProxy cannot pose as others with
# a forged X-Forwarded-For; after one instance is SIGKILLed and HAProxy has noticed,
# nothing answers 5xx.
#
# Needs haproxy, pgbouncer (tests/setup.sh installs them), PostgreSQL at
# DATABASE_URL and the nts binary (NTS_BIN, else the debug build). Ports
# 28080-28103 and 26432 on 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin"

NTS_BIN="${NTS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/nts}"
[ -x "$NTS_BIN" ] || { echo "haproxy_pgbouncer: no nts binary at $NTS_BIN (cargo build first)"; exit 1; }
for tool in haproxy pgbouncer psql python3; do
    command -v "$tool" >/dev/null || { echo "haproxy_pgbouncer: $tool is missing (tests/setup.sh installs it)"; exit 1; }
done

LB_PORT=28080
STATS_PORT=28081
BOUNCER_PORT=26432
NTS_PORTS=(28101 28102 28103)
# HAProxy talks to nts from 127.0.0.2, the only proxy nts trusts; clients come from other loopback addresses.
LB_SOURCE=127.0.0.2
ADMIN_TOKEN="haproxy-pgbouncer-admin-token-0123456789"

# The server and credentials of DATABASE_URL (tests/setup.sh sets it).
BASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
creds_host="${BASE_URL#postgres://}"
creds_host="${creds_host#postgresql://}"
creds="${creds_host%@*}"
hostport="${creds_host##*@}"
hostport="${hostport%%/*}"
PG_USER="${creds%%:*}"
PG_PASSWORD=""
[ "$creds" != "$PG_USER" ] && PG_PASSWORD="${creds#*:}"
# PgBouncer checks clients against its own list; any password does for a trusting server.
BOUNCER_PASSWORD="${PG_PASSWORD:-bouncer-test}"
PG_HOST="${hostport%%:*}"
PG_PORT="${hostport##*:}"
[ "$PG_PORT" = "$hostport" ] && PG_PORT=5432

DB="nts_hapg_$(date +%s)_$$"
DIRECT_URL="postgres://${PG_USER}${PG_PASSWORD:+:$PG_PASSWORD}@${PG_HOST}:${PG_PORT}/${DB}"
POOLED_URL="postgres://${PG_USER}:${BOUNCER_PASSWORD}@127.0.0.1:${BOUNCER_PORT}/${DB}"
ADMIN_DB_URL="postgres://${PG_USER}${PG_PASSWORD:+:$PG_PASSWORD}@${PG_HOST}:${PG_PORT}/postgres"

WORK="$(mktemp -d /tmp/nts-hapg.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql "$ADMIN_DB_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    if [ "$status" -ne 0 ]; then
        echo "haproxy_pgbouncer: FAILED; logs:"
        for f in "$WORK"/*.log; do echo "--- $f"; tail -n 20 "$f" | cut -c1-300; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# PgBouncer: deploy/pgbouncer/pgbouncer.ini with this machine's addresses and paths.
sed -e "s|^nts = host=postgres port=5432 dbname=nts|* = host=${PG_HOST} port=${PG_PORT}|" \
    -e "s|^listen_addr = .*|listen_addr = 127.0.0.1|" \
    -e "s|^listen_port = .*|listen_port = ${BOUNCER_PORT}|" \
    -e "s|^auth_file = .*|auth_file = ${WORK}/userlist.txt|" \
    -e "s|^logfile =.*|logfile = ${WORK}/pgbouncer.log|" \
    -e "s|^pidfile =.*|pidfile = ${WORK}/pgbouncer.pid|" \
    deploy/pgbouncer/pgbouncer.ini >"$WORK/pgbouncer.ini"
grep -q "^pool_mode = transaction" "$WORK/pgbouncer.ini"
printf '"%s" "%s"\n' "$PG_USER" "$BOUNCER_PASSWORD" >"$WORK/userlist.txt"
touch "$WORK/pgbouncer.log"
chmod 644 "$WORK"/*
if [ "$(id -u)" = 0 ]; then
    # PgBouncer refuses to run as root.
    chown postgres "$WORK/pgbouncer.log" "$WORK"
    pgbouncer -u postgres "$WORK/pgbouncer.ini" >>"$WORK/pgbouncer.out.log" 2>&1 &
else
    pgbouncer "$WORK/pgbouncer.ini" >>"$WORK/pgbouncer.out.log" 2>&1 &
fi
PIDS+=($!)

# Three nts instances: the database through PgBouncer, migrations straight to PostgreSQL.
NTS_PIDS=()
for i in 0 1 2; do
    env -i PATH="$PATH" \
        NTS_ADDRESS="127.0.0.1:${NTS_PORTS[$i]}" \
        DATABASE_URL="$POOLED_URL" \
        NTS_DB_TRANSACTION_POOLING=true \
        NTS_MIGRATION_DATABASE_URL="$DIRECT_URL" \
        NTS_DB_POOL_SIZE=10 \
        NTS_PAYMENTS=simulated \
        NTS_ADMIN_TOKEN="$ADMIN_TOKEN" \
        NTS_TRUSTED_PROXIES="${LB_SOURCE}/32" \
        NTS_RATE_LIMIT_PER_MINUTE=60 \
        NTS_RATE_LIMIT_BURST=10 \
        NTS_LOG_FORMAT=json \
        RUST_LOG=warn \
        "$NTS_BIN" >"$WORK/nts$((i + 1)).log" 2>&1 &
    PIDS+=($!)
    NTS_PIDS[$i]=$!
done

# HAProxy: deploy/haproxy/haproxy.cfg as it is, addresses from the environment.
NTS_LB_BIND="127.0.0.1:${LB_PORT}" NTS_LB_STATS="127.0.0.1:${STATS_PORT}" NTS_LB_SOURCE="$LB_SOURCE" \
    NTS1_ADDR="127.0.0.1:${NTS_PORTS[0]}" NTS2_ADDR="127.0.0.1:${NTS_PORTS[1]}" NTS3_ADDR="127.0.0.1:${NTS_PORTS[2]}" \
    haproxy -db -f deploy/haproxy/haproxy.cfg >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)

python3 tests/haproxy_pgbouncer.py \
    --lb "http://127.0.0.1:${LB_PORT}" \
    --stats "http://127.0.0.1:${STATS_PORT}/stats;csv" \
    --admin-token "$ADMIN_TOKEN" \
    --database-url "$DIRECT_URL" \
    --direct "http://127.0.0.1:${NTS_PORTS[0]}" \
    --kill-pid "${NTS_PIDS[1]}" --kill-server nts2
# Every statement went through PgBouncer in transaction mode and none failed for it.
if grep -q "prepared statement" "$WORK"/nts*.log; then
    echo "haproxy_pgbouncer: prepared statement errors through PgBouncer:"
    grep "prepared statement" "$WORK"/nts*.log | head
    exit 1
fi
echo "haproxy_pgbouncer: ok"
