#!/bin/sh
# run-shard.sh INDEX TOTAL - run every TOTAL-th test file, starting at
# INDEX (from 1), against the server in PGHOST/DATABASE_URL (set by pgsnap
# exec).  Stands for your own runner: pytest --shard, go test -run, ...
set -eu
index=$1 total=$2 n=0 failed=0
for t in "$(dirname "$0")"/tests/*.sql; do
	n=$((n + 1))
	[ $(( (n - 1) % total + 1 )) -eq "$index" ] || continue
	if psql -X -q -v ON_ERROR_STOP=1 -f "$t" >/dev/null; then
		echo "ok $n $(basename "$t")"
	else
		echo "not ok $n $(basename "$t")"; failed=1
	fi
done
exit $failed
