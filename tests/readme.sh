#!/usr/bin/env bash
# The README's two commands, exactly as written, on a fresh clone:
#  1. the start command serves http://localhost:9000 on a database it creates
#     (a fresh name here), with the demo event on sale, Swagger UI at /docs/ and
#     simulated payments (because the command asks for them);
#  2. the test command is the one CI runs (.ci/run), so the suite it starts is
#     this very suite;
#  3. the purchase with curl (the second sh block), as written, against that
#     demo, ends with a paid order and its tickets; the bad request after it
#     (the third) is answered 422 with a code.
# Needs: git, curl, jq, cargo; PostgreSQL at DATABASE_URL's server; port 9000 free.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

# The README's n-th ```sh block, as written.
sh_block() {
    awk -v n="$1" '/^```sh$/ {k++; if (k == n) {on = 1; next}} on && /^```$/ {exit} on' README.md
}
# The first block's command lines, comments left out.
mapfile -t commands < <(sh_block 1 | grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$')
[ "${#commands[@]}" -eq 2 ] || { echo "readme: expected two commands in the README's first sh block, found ${#commands[@]}"; exit 1; }
start="${commands[0]}"
suite="${commands[1]}"
echo "readme: start command: $start"
echo "readme: test command:  $suite"
grep -qF "$suite" .ci/run || { echo "readme: .ci/run does not run the README's test command ($suite)"; exit 1; }

if curl -s -o /dev/null --max-time 2 http://localhost:9000/; then
    echo "readme: something already answers on port 9000; stop it first"
    exit 1
fi

work="$(mktemp -d)"
base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="nts_readme_$(date +%s)_$$"
url="${base%/*}/$db"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    psql "${base}" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# A fresh clone of what is committed, as a newcomer gets it.
git clone --quiet "$ROOT" "$work/nts"
cd "$work/nts"
log="$work/start.log"
# The command runs in a shell of its own (its process group is stopped at the end).
# Only DATABASE_URL is set from outside: a fresh database that does not exist yet.
DATABASE_URL="$url" setsid bash -c "$start" >"$log" 2>&1 &
pid=$!

# A cold build can take a while; the command must then serve.
for _ in $(seq 1 1800); do
    if curl -sf -o /dev/null --max-time 2 http://localhost:9000/healthz; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "readme: the start command exited before serving:"; tail -50 "$log"; exit 1
    fi
    sleep 1
done
curl -sf -o /dev/null http://localhost:9000/healthz || { echo "readme: nothing serves on :9000"; tail -50 "$log"; exit 1; }

fail() { echo "readme: $1"; tail -30 "$log"; exit 1; }
events="$(curl -sf http://localhost:9000/api/v1/events)" || fail "GET /api/v1/events failed"
python3 - "$events" <<'PY' || fail "the demo event is not on sale: $events"
import json, sys
events = json.loads(sys.argv[1])
demo = [e for e in events if e["name"] == "The best ever show"]
assert demo and demo[0]["ticket_types"][0]["available"] > 0
PY
config="$(curl -sf http://localhost:9000/api/v1/config)" || fail "GET /api/v1/config failed"
echo "$config" | grep -q '"gateway":"simulated"' || fail "not on simulated payments: $config"
curl -sf http://localhost:9000/docs/ | grep -qi "swagger" || fail "/docs/ does not serve Swagger UI"
curl -sf http://localhost:9000/ | grep -qi "<html" || fail "/ does not serve the shop page"
psql "${base%/*}/$db" -qtAc "SELECT count(*) FROM _sqlx_migrations" | grep -qv '^0$' || fail "database $db was not migrated"
grep -q "SIMULATED PAYMENTS" "$log" || fail "the log does not say that no real money moves"

# The purchase with curl, then the bad request, in one shell as a reader pastes them.
purchase="$(sh_block 2)"
bad="$(sh_block 3)"
[ -n "$purchase" ] && [ -n "$bad" ] || fail "the README has no purchase with curl (its second and third sh blocks)"
out="$(cd "$work" && bash -c "set -euo pipefail; $purchase"$'\n'"echo ---; $bad")" || fail "the purchase with curl failed: $out"
echo "$out"
paid="$(echo "$out" | sed -n '/^---$/q;p' | tail -n 8 | tr -d ' \n')"
echo "$paid" | grep -q '"status":"paid"' || fail "the purchase with curl did not end with a paid order"
echo "$paid" | grep -Eq '"tickets":\["[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{86}","[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{86}"\]' \
    || fail "the paid order does not show its two tickets' signed codes"
echo "$out" | sed -n '/^---$/,$p' | grep -q '"code":"' || fail "the bad request was not answered with a code"

kill -TERM -- "-$pid"
for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pid" 2>/dev/null || fail "the service did not stop on SIGTERM"
pid=""
echo "readme: the start command served the demo at http://localhost:9000 and stopped cleanly"
