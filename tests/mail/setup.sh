#!/usr/bin/env bash
# Installs aiosmtpd (the SMTP server the e-mail tests send to) into
# tests/mail/.venv. Safe to run again: does nothing when it is there.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../pip_venv.sh"
ensure_venv "$HERE/.venv" aiosmtpd 1.4.6
