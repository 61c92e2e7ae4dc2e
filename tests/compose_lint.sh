#!/usr/bin/env bash
# docker-compose.yml against the deployment rules (tests/compose_lint.py), with
# PyYAML from PyPI in tests/.venv-compose-lint. No Docker needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/tests/pip_venv.sh"
VENV="$ROOT/tests/.venv-compose-lint"
ensure_venv "$VENV" PyYAML 6.0.2
"$VENV/bin/python" "$ROOT/tests/compose_lint.py" "$@"
