#!/bin/sh
# tests/bench/bench_pg.sh: runs tests/bench/bench_pg.py (issue 15; not part of
# make check) against a PostgreSQL server set up as a user would run it in
# production on this machine: initdb's defaults (fsync on,
# synchronous_commit on, shared_buffers 128MB, the WAL on the same disk),
# only the port, socket directory and listen address set; unlike
# tests/with-postgres, which turns fsync off for tests. The server's data
# directory and the SQLite baseline's file are on the same filesystem
# (BENCH_DIR, default /var/tmp). As root the server runs as user postgres.
set -e
cd "$(dirname "$0")/../.."
bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir=$d; done
[ -n "$bindir" ] || bindir=$(dirname "$(command -v initdb)")
base=${BENCH_DIR:-/var/tmp}
dir=$(mktemp -d "$base/rg-bench-pg-XXXXXX")
as=""
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; as="runuser -u postgres --"; fi
port=$(python3 -c 'import sys; sys.path.insert(0, "tests/integration"); import harness; print(harness.free_port())')
cleanup() { $as "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
$as "$bindir/initdb" -D "$dir/data" -U rolegate --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
printf "port = %s\nunix_socket_directories = '%s'\nlisten_addresses = '127.0.0.1'\n" "$port" "$dir" \
  | $as sh -c "cat >> '$dir/data/postgresql.conf'"
$as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null
echo "postgresql: $("$bindir/postgres" --version), initdb defaults + port/listen/socket;" \
  "$(psql -X -A -t "postgresql://rolegate@127.0.0.1:$port/postgres" -c \
  "SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings WHERE name IN
   ('fsync','synchronous_commit','shared_buffers','wal_level','max_connections','full_page_writes')")"
ROLEGATE_TEST_PG="postgresql://rolegate@127.0.0.1:$port" BENCH_DIR="$dir" \
  /usr/bin/python3 tests/bench/bench_pg.py
