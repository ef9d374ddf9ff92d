#!/usr/bin/env bash
# Runs every test: `cargo test --workspace`, with a PostgreSQL server for the store suite and a
# headless Chromium for the web chat's browser test.
#
# With DATABASE_URL set, that server is used (the role needs CREATEDB: each test makes its own
# database). Otherwise a throwaway server is started on 127.0.0.1 in a temporary folder, and
# stopped at the end. PostgreSQL's server binaries are installed from Debian's packages if this
# machine has none (either way: the readiness test runs a server of its own).
# Chromium and chromedriver (with CJK fonts) are installed from Debian's packages likewise when
# chromedriver or /usr/bin/chromium is missing; the test starts chromedriver itself, on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"

APT_UPDATED=
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v chromedriver >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then
  echo "== installing Chromium and chromedriver from Debian's packages"
  apt_install chromium chromium-driver fonts-noto-cjk
fi

# The server's binaries are needed even with DATABASE_URL: the readiness test starts and stops a
# server of its own.
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
PGBIN=$(pgbin)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/postgres" ]; then
  echo "== installing PostgreSQL from Debian's packages"
  apt_install postgresql
  PGBIN=$(pgbin)
fi

if [ -z "${DATABASE_URL:-}" ]; then
  PGDIR=$(mktemp -d)
  PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The server refuses to run as root: run it as the postgres user then.
  as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
  [ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"
  echo flowbot > "$PGDIR/pw"
  as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U flowbot --pwfile="$PGDIR/pw" -A scram-sha-256 --no-sync >/dev/null
  stop_pg() { as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w -s stop || true; rm -rf "$PGDIR"; }
  trap stop_pg EXIT
  as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -s start -o \
    "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
  export DATABASE_URL="postgres://flowbot:flowbot@127.0.0.1:$PGPORT/postgres"
  echo "== throwaway PostgreSQL on 127.0.0.1:$PGPORT"
fi

cargo test --workspace --locked "$@"
