#!/bin/sh
# test.sh - plain shell: a fresh server for a script, two ways.
set -eu

# 1. pgsnap exec: the server lives as long as the command.
pgsnap exec -- sh -c 'psql -X -qAt -c "create table t (x int)" &&
                      psql -X -qAt -c "select count(*) from t"'

# 2. eval --env: PGHOST, PGPORT, ..., DATABASE_URL in this shell.  The
# server lives as long as this script (--owner), however long it idles
# between connections (-w 0), and the trap removes it at once.
eval "$(pgsnap new --env --owner $$ -w 0)"
trap 'pgsnap rm "$DATABASE_URL"' EXIT
psql -X -qAt -c "select 'hello from ' || current_database()"
