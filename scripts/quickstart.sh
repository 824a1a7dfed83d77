#!/bin/sh
# quickstart.sh - what `make quickstart` runs after building: one fresh
# server, its URL, and how to reach it.
set -eu
cd "$(dirname "$0")/.."
url=$(build/pgsnap new)
echo "$url"
echo >&2
echo "A fresh PostgreSQL is up. Connect with:  psql '$url'" >&2
echo "Remove it with:  build/pgsnap rm '$url'   (or: build/pgsnap rm --all)" >&2
echo >&2
psql -X -qAt -d "$url" -c "select 'server says: ' || version()" >&2
