#!/bin/sh
# PgBouncer's user list from the environment (compose passes POSTGRES_PASSWORD
# from .env), so that no password is kept in the image or the repository.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set (cp .env.example .env)}"
umask 077
printf '"nts" "%s"\n' "$(printf '%s' "$POSTGRES_PASSWORD" | sed 's/"/""/g')" >/var/lib/pgbouncer/userlist.txt
exec /usr/sbin/pgbouncer /etc/pgbouncer/pgbouncer.ini
