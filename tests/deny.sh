#!/usr/bin/env bash
# cargo deny over the workspace's dependency graph (deny.toml): licences on the
# allowed list only, no second version of a crate that is not listed with its
# reason, no source but crates.io. Installs cargo-deny from crates.io the first
# time (its build is cached outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
    echo "deny: installing cargo-deny from crates.io"
    CARGO_TARGET_DIR="$HOME/.cache/cargo-deny-target" cargo install --locked --quiet cargo-deny@0.20.2
fi
cargo deny --version
# Licences, bans and sources need no network: the advisory database (which would) is not asked.
cargo deny --locked --offline check licenses bans sources
