#!/usr/bin/env bash
# The whole test suite: Rust unit + integration tests (real PostgreSQL, real
# HTTP servers), then the browser tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nts-target}"
export SQLX_OFFLINE=true

echo "== cargo test"
cargo test --locked

echo "== browser tests"
export NTS_BIN="$CARGO_TARGET_DIR/debug/nts"
node --test --test-concurrency=1 tests/browser/
