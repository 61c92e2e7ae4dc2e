#!/usr/bin/env bash
# Fuzzes a live nts with schemathesis, driven by nts's own OpenAPI document:
# no 5xx, only documented statuses, content types and bodies, and invalid input
# refused. Exits non-zero on any failure.
#
#   tests/schemathesis.sh           short deterministic run (CI, about a minute)
#   tests/schemathesis.sh --long    a long run: 300 cases per operation, all phases
#   NTS_FUZZ_ARGS="--report har"     extra schemathesis options
#
# Needs python3 (with venv), PostgreSQL (DATABASE_URL or the local default) and cargo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCHEMATHESIS_VERSION=4.32.5
VENV="$ROOT/tests/.venv-schemathesis"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nts-target}"

if [ "${1:-}" = "--long" ]; then
    RUN=(--max-examples 300 --phases examples,coverage,fuzzing,stateful --seed 8 --generation-database none)
else
    RUN=(--max-examples 25 --phases examples,coverage,fuzzing,stateful --seed 8 --generation-deterministic)
fi

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q " $SCHEMATHESIS_VERSION\$"; then
    echo "schemathesis.sh: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p nts --bin nts
# A private copy: the shared target directory may be rebuilt by others while we fuzz.
BIN_DIR="$(mktemp -d -t nts-fuzz-bin.XXXXXX)"
cp "$CARGO_TARGET_DIR/debug/nts" "$BIN_DIR/nts"
BASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB_NAME="nts_fuzz_$(date +%s)_$$"
DB_URL="${BASE_URL%/*}/$DB_NAME"
case "$BASE_URL" in *\?*) DB_URL="$DB_URL?${BASE_URL#*\?}" ;; esac
ADMIN_DB_URL="${BASE_URL%/*}/postgres"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export NTS_ADMIN_TOKEN="fuzz-admin-$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
LOG="$(mktemp -t nts-fuzz.XXXXXX.log)"

NTS_PID=
cleanup() {
    if [ -n "$NTS_PID" ]; then kill "$NTS_PID" 2>/dev/null || true; wait "$NTS_PID" 2>/dev/null || true; fi
    psql "$ADMIN_DB_URL" -qc "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$BIN_DIR"
}
trap cleanup EXIT

# The fuzzer sends thousands of requests from one address: the rate limits
# (tested on their own in tests/api/abuse.rs) are off here so every case reaches the handlers.
DATABASE_URL="$DB_URL" NTS_ADDRESS="127.0.0.1:$PORT" NTS_PAYMENTS=simulated NTS_DEMO=true \
    NTS_RATE_LIMIT_PER_MINUTE=0 NTS_READ_RATE_LIMIT_PER_MINUTE=0 NTS_MAX_UNPAID_PER_ADDRESS=0 \
    NTS_RECONCILE_MS=500 RUST_LOG=warn "$BIN_DIR/nts" >"$LOG" 2>&1 &
NTS_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$NTS_PID" 2>/dev/null || { cat "$LOG"; echo "schemathesis.sh: nts did not start"; exit 1; }
    sleep 0.2
done

# An event that cannot sell out (the demo event is reset by the fuzzer itself),
# and its ids, so generated holds often reach the seat logic instead of a 404.
read -r FUZZ_EVENT FUZZ_TICKET_TYPE < <(curl -sf "http://127.0.0.1:$PORT/api/v1/admin/events" \
    -H "Authorization: Bearer $NTS_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "Fuzz arena", "venue": "Everywhere", "starts_at": "2099-01-01T20:00:00Z", "currency": "EUR",
         "ticket_types": [{"name": "Floor", "price_minor": 500, "capacity": 1000000, "max_per_order": 100}]}' |
    python3 -c 'import json, sys; e = json.load(sys.stdin); print(e["id"], e["ticket_types"][0]["id"])')
CONFIG="$(mktemp -t schemathesis.XXXXXX.toml)"
cat >"$CONFIG" <<EOF
# The organiser's token for operations secured by the admin scheme. Buyer
# secrets cannot be known to a fuzzer: buyer calls answer 404, as documented.
[auth.openapi.admin]
bearer = "$NTS_ADMIN_TOKEN"

[dictionaries.event]
values = ["$FUZZ_EVENT"]

[dictionaries.ticket_type]
values = ["$FUZZ_TICKET_TYPE"]

[dictionaries.email]
values = ["ada@example.com", "grace.hopper+tickets@navy.example.org"]

[parameters]
"path.event_id" = { dictionary = "event", probability = 0.7 }
"body.ticket_type_id" = { dictionary = "ticket_type", probability = 0.7 }
"body.email" = { dictionary = "email", probability = 0.7 }
EOF

status=0
"$VENV/bin/schemathesis" --config-file "$CONFIG" run "http://127.0.0.1:$PORT/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    --workers 2 --request-timeout 20 --no-color \
    --report junit --report-dir "$ROOT/tests/artifacts/schemathesis" "${RUN[@]}" ${NTS_FUZZ_ARGS:-} || status=$?
rm -f "$CONFIG"
if grep -qiE "panicked|internal error" "$LOG"; then
    echo "schemathesis.sh: the server log shows an internal error:"
    grep -iE -A3 "panicked|internal error" "$LOG" | head -40
    status=1
fi
rm -f "$LOG"
exit $status
