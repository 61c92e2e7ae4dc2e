#!/usr/bin/env bash
# Installs and starts what the test suite needs, when it is missing:
# PostgreSQL, Chromium (Debian's), the browser tests' npm packages, promtool,
# HAProxy and PgBouncer (Debian's).
# Sourced by tests/run.sh; safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    if [ -z "${NTS_APT_UPDATED:-}" ]; then as_root apt-get update -qq; export NTS_APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL on 127.0.0.1:5432.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        echo "setup: installing PostgreSQL"
        apt_install postgresql postgresql-client
    fi
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    echo "setup: starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if [ -z "${DATABASE_URL:-}" ]; then
    if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -qtAc 'SELECT 1' >/dev/null 2>&1; then
        # A stock Debian cluster wants a password over TCP: give the test role one.
        as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
        export DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
    else
        export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    fi
fi

# Chromium for the browser tests (never a browser downloaded by a test tool).
if [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing Debian's chromium"
    apt_install chromium
fi
if [ -f "$ROOT/tests/browser/package.json" ] && [ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ]; then
    echo "setup: installing the browser tests' npm packages"
    (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

# pg_dump (a test dumps a database to look for secrets), curl and Python with
# venv for the schemathesis run (tests/schemathesis.sh installs schemathesis itself).
if ! command -v pg_dump >/dev/null; then
    echo "setup: installing the PostgreSQL client tools"
    apt_install postgresql-client
fi
if ! command -v curl >/dev/null; then
    apt_install curl
fi
# jq: the README's purchase with curl reads the answers with it (tests/readme.sh runs it).
if ! command -v jq >/dev/null; then
    apt_install jq
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "setup: installing Python with venv"
    apt_install python3 python3-venv
fi
# promtool (Debian's prometheus package) checks the /metrics exposition; HAProxy
# and PgBouncer run in front of nts and PostgreSQL in tests/haproxy_pgbouncer.sh.
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || missing+=(haproxy)
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || missing+=(pgbouncer)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt_install "${missing[@]}"
fi
# localstripe (Stripe emulator, PyPI) in tests/stripe/.venv for the Stripe tests.
bash "$ROOT/tests/stripe/setup.sh"
# aiosmtpd (SMTP server, PyPI) in tests/mail/.venv for the e-mail tests.
bash "$ROOT/tests/mail/setup.sh"
