#!/usr/bin/env bash
# The torture test (issue 6), small profile, as run in CI:
#  1. `nts-torture --profile small` must pass: 3 nts processes, 300 buyers,
#     SIGKILLed instances, a PostgreSQL restart, a misbehaving provider, and
#     every invariant checked from the database afterwards; e-mails go to a
#     real SMTP server (--smtp, tests/mail) and every paid order's must arrive;
#  2. the same through Stripe (`--gateway stripe`): localstripe behind the
#     strict proxy, stored 500s, 429s and 429 storms, Stripe's account rate
#     limit, duplicate webhooks; the payments audit must be empty at the end;
#  3. the same with no webhook at all (`--webhooks off`): nts learns every
#     outcome by asking Stripe;
#  4. the same tool against a deliberately broken inventory guard must fail
#     with oversold seats, or the checker proves nothing.
#
# Needs: cargo; a PostgreSQL server (NTS_TORTURE_POSTGRES, else DATABASE_URL's
# server, else postgres://postgres@127.0.0.1:5432) whose user may create databases; for the
# PostgreSQL restart, a local cluster managed by pg_ctlcluster and root (it is
# skipped otherwise, with a note; NTS_TORTURE_PG_CLUSTER=15/other restarts another
# cluster, e.g. a private one that NTS_TORTURE_POSTGRES points at). The broken mode
# exists only in an nts built with `--features broken-oversell`: this script builds
# one aside for run 3 (every other run uses the normal build). Set NTS_TORTURE_SEED to
# repeat a run, NTS_TORTURE_BIN to a directory holding prebuilt nts, nts-broken-oversell
# and nts-torture to skip the builds.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${NTS_TORTURE_BIN:-}" ]; then
    bin="$NTS_TORTURE_BIN" # prebuilt nts, nts-broken-oversell and nts-torture, e.g. when the target dir is shared
    broken="$bin/nts-broken-oversell"
else
    bin="${CARGO_TARGET_DIR:-target}/debug"
    # The broken build first, copied aside: the normal build then leaves the usual nts in place.
    cargo build -p nts --features broken-oversell
    broken_dir="$(mktemp -d)"
    trap 'rm -rf "$broken_dir"' EXIT
    broken="$broken_dir/nts-broken-oversell"
    cp "$bin/nts" "$broken"
    cargo build -p nts -p nts-torture
fi
common=(${NTS_TORTURE_POSTGRES:+--postgres "$NTS_TORTURE_POSTGRES"})
restart=(${NTS_TORTURE_PG_CLUSTER:+--pg-cluster "$NTS_TORTURE_PG_CLUSTER"})
if ! command -v pg_ctlcluster >/dev/null || [ "$(id -u)" -ne 0 ]; then
    echo "torture: pg_ctlcluster is missing or we are not root: running without the PostgreSQL restart"
    restart=(--no-pg-restart)
fi

echo "== torture: small profile (with e-mail to a real SMTP server) =="
bash tests/mail/setup.sh
"$bin/nts-torture" --profile small --smtp "${common[@]}" "${restart[@]}" ${NTS_TORTURE_SEED:+--seed "$NTS_TORTURE_SEED"}

echo "== torture: small profile through Stripe (localstripe behind the strict proxy) =="
bash tests/stripe/setup.sh
"$bin/nts-torture" --profile small --gateway stripe --buyers 150 --duration 20 "${common[@]}" "${restart[@]}" \
    ${NTS_TORTURE_SEED:+--seed "$NTS_TORTURE_SEED"}

echo "== torture: small profile through Stripe without webhooks =="
"$bin/nts-torture" --profile small --gateway stripe --webhooks off --buyers 100 --duration 15 "${common[@]}" \
    "${restart[@]}" ${NTS_TORTURE_SEED:+--seed "$NTS_TORTURE_SEED"}

echo "== torture: a deliberately broken inventory guard must be caught =="
set +e
out=$("$bin/nts-torture" --profile small --break-inventory-guard --nts "$broken" --no-pg-restart --kill-every 0 \
    --buyers 200 --duration 5 "${common[@]}" 2>&1)
status=$?
set -e
tail -n 22 <<<"$out"
if [ "$status" -ne 1 ] || ! grep -Eq '^\| oversold seats +\| +[1-9][0-9]* \| FAIL' <<<"$out"; then
    echo "torture: FAILED: the broken build was not reported as overselling (exit $status); the checker cannot be trusted"
    exit 1
fi
echo "torture: ok: the broken build was caught (oversold seats reported, exit 1)"
