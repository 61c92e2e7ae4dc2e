#!/usr/bin/env bash
# Integrators generate clients from openapi.yaml: generate one with
# openapi-python-client (PyPI, into tests/.venv-openapi-client) into a
# temporary folder (never committed) and run a purchase and an admin refund
# through it against a live nts (simulated payments). The generator's
# warnings about operations it had to skip fail the run.
#
# Needs python3 (with venv), PostgreSQL (DATABASE_URL or the local default)
# and the nts binary (NTS_BIN, else the debug build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GENERATOR_VERSION=0.29.1
VENV="$ROOT/tests/.venv-openapi-client"
NTS_BIN="${NTS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/nts}"
[ -x "$NTS_BIN" ] || { echo "openapi_client: no nts binary at $NTS_BIN (cargo build first)"; exit 1; }

if ! "$VENV/bin/openapi-python-client" --version 2>/dev/null | grep -q " $GENERATOR_VERSION\$"; then
    echo "openapi_client: installing openapi-python-client $GENERATOR_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "openapi-python-client==$GENERATOR_VERSION"
fi

WORK="$(mktemp -d -t nts-openapi-client.XXXXXX)"
BASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB_NAME="nts_openapi_client_$(date +%s)_$$"
DB_URL="${BASE_URL%/*}/$DB_NAME"
case "$BASE_URL" in *\?*) DB_URL="$DB_URL?${BASE_URL#*\?}" ;; esac
ADMIN_DB_URL="${BASE_URL%/*}/postgres"
NTS_PID=
cleanup() {
    if [ -n "$NTS_PID" ]; then kill "$NTS_PID" 2>/dev/null || true; wait "$NTS_PID" 2>/dev/null || true; fi
    psql "$ADMIN_DB_URL" -qc "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$VENV/bin/openapi-python-client" generate --path openapi.yaml --output-path "$WORK/nts_client" --meta none \
    >"$WORK/generate.log" 2>&1 || { cat "$WORK/generate.log"; exit 1; }
# An operation the generator cannot read is left out of the client with a warning.
if grep -q "will not be generated" "$WORK/generate.log"; then
    echo "openapi_client: the generator skipped operations:"
    grep -B2 -A4 "will not be generated" "$WORK/generate.log"
    exit 1
fi

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ADMIN_TOKEN="openapi-client-admin-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
env -i PATH="$PATH" DATABASE_URL="$DB_URL" NTS_ADDRESS="127.0.0.1:$PORT" NTS_PAYMENTS=simulated \
    NTS_ADMIN_TOKEN="$ADMIN_TOKEN" RUST_LOG=warn "$NTS_BIN" >"$WORK/nts.log" 2>&1 &
NTS_PID=$!
for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    kill -0 "$NTS_PID" 2>/dev/null || { cat "$WORK/nts.log"; echo "openapi_client: nts did not start"; exit 1; }
    sleep 0.2
done

PYTHONPATH="$WORK" "$VENV/bin/python" tests/openapi_client/purchase_and_refund.py "http://127.0.0.1:$PORT" "$ADMIN_TOKEN"
