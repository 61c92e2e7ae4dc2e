#!/usr/bin/env bash
# The whole test suite. Each suite runs even if an earlier one failed; the
# last line counts suites, and the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
set -e
source tests/setup.sh
set +e
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nts-target}"
export SQLX_OFFLINE=true
export NTS_BIN="$CARGO_TARGET_DIR/debug/nts"

passed=0
failed=0
failures=()
suite() {
    local name="$1"
    shift
    echo
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

# docker-compose.yml: no literal secrets, one trusted proxy address, admin ports on localhost, one public port.
suite "compose lint" bash tests/compose_lint.sh
# Dependencies: allowed licences, no unlisted duplicate versions, crates.io only (deny.toml).
suite "cargo deny" bash tests/deny.sh
# The service binary (the tests that need a process, and every suite below, run $NTS_BIN),
# then every crate's unit tests and the integration test binary (real PostgreSQL, real HTTP).
suite "cargo test" bash -c 'cargo build --locked -p nts --bin nts && cargo test --locked --workspace'
# The README's two commands, exactly as written, on a fresh clone (serves on port 9000).
suite "readme" bash tests/readme.sh
# The pages in headless Chromium.
suite "browser" node --test --test-concurrency=1 tests/browser/
# schemathesis fuzzes a live nts against its OpenAPI document (short deterministic run).
suite "schemathesis" bash tests/schemathesis.sh
# Three instances behind HAProxy, PostgreSQL behind PgBouncer (transaction pooling): race, purchase, SIGKILL.
suite "haproxy + pgbouncer" bash tests/haproxy_pgbouncer.sh
# A client generated from openapi.yaml (openapi-python-client) buys and refunds.
suite "openapi client" bash tests/openapi_client.sh
# A few seconds of each flash-sale benchmark mode: checks seats, never timings.
suite "bench smoke" bash tests/bench_smoke.sh
# Several nts processes under SIGKILLs, a PostgreSQL restart and a flaky provider (last: it restarts PostgreSQL).
suite "torture" bash tests/torture.sh

echo
[ "$failed" -eq 0 ] || echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
