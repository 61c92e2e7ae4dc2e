#!/usr/bin/env bash
# Installs localstripe (the Stripe emulator the Stripe tests run against) into
# tests/stripe/.venv. Safe to run again: does nothing when it is there.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../pip_venv.sh"
ensure_venv "$HERE/.venv" localstripe 1.15.10
