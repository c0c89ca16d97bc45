#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages and starts a private throw-away
# server for the store suite: its own data directory, loopback only, port
# 55432, trust authentication. The system's own cluster (if any) is untouched.
# Prints the TEST_POSTGRES_URL to use on its last line.
set -euo pipefail

port=${MAAS_TEST_PG_PORT:-55432}
data=${MAAS_TEST_PG_DATA:-/tmp/maas-test-pg-$(id -u)}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "postgres.sh: PostgreSQL is not installed; run as root or: sudo apt-get install postgresql" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
fi
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")

# The server refuses to run as root: use the postgres account when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
  as_owner "$bin/initdb" -D "$data" -A trust -U maas >/dev/null
fi
if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_owner "$bin/pg_ctl" -D "$data" -w -l "$data/server.log" \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >&2
fi
echo "postgres://maas@127.0.0.1:$port/postgres"
