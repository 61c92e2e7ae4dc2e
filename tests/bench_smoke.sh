#!/usr/bin/env bash
# A few seconds of nts-bench in every mode (holds, holds+keys, purchase,
# purchase+keys, mixed, mixed-lines: holds of 2-3 ticket types at once) with
# tiny numbers, plus one-second pgbench baselines; then keyed holds that
# expire within a second, so that every batch sweeps expired holds while it
# takes seats.
# Fails only when a correctness check fails (seats taken != holds
# acknowledged, per ticket type; oversold; unexpected errors; a keyed request
# that does not replay its first answer); no timing is ever pass/fail.
#
# Needs: PostgreSQL reachable at $DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres,
# a role that may create databases) and pgbench on PATH (Debian: in the server package, postgresql-15).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# The committed query data (.sqlx/) checks the SQL; DATABASE_URL is only where the bench makes its databases.
SQLX_OFFLINE=true cargo build -p nts -p nts-bench
bench="${CARGO_TARGET_DIR:-target}/debug/nts-bench"
"$bench" --smoke "$@"
"$bench" --mode holds+keys --hold-secs 1 --clients 8 --capacity 100000 --max-secs 4 --no-baseline "$@"
