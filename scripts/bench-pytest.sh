#!/bin/sh
# bench-pytest.sh - the suite from pytest (issue 12): BENCH_SUITE (500)
# generated tests, each a fresh database and the suite's 5 queries
# (test/bench/suite_sql.h), run by `pytest -n BENCH_SUITE_J` (4, xdist),
# the same test file three times, only the fixture that gives the database
# differs:
#   suite-N-pytest-pgsnap     the plugin's pgsnap_db (lib/python: shared 16,
#                             pool = the workers), installed with pip;
#   suite-N-pytest-template   CREATE DATABASE ... TEMPLATE ... STRATEGY
#                             FILE_COPY over a worker's admin connection, DROP
#                             DATABASE after, on a server with pgsnap's test
#                             settings (a `pgsnap new -w 0` of its own);
#   suite-N-pytest-floor      databases made (and connected to once)
#                             beforehand: the tests' own work and pytest's.
# Rows: val CASE wall_ms (the whole pytest run, its start included): the
# median of BENCH_PYTEST_ROUNDS (3) rounds, each running the three in turn.
# Called by scripts/bench.sh (make bench) with BENCH_RESULTS and BENCH_WORK;
# runs alone too: sh scripts/bench-pytest.sh.  Needs Debian's python3 with
# python3-pytest, python3-pytest-xdist and python3-psycopg2 (deps.sh test).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${PGSNAP_BUILD:-$TOP/build}
PGSNAP=${PGSNAP:-$B/pgsnap}
N=${BENCH_SUITE:-500}
J=${BENCH_SUITE_J:-4}
ROUNDS=${BENCH_PYTEST_ROUNDS:-3}
RESULTS=${BENCH_RESULTS:-/dev/null}
PY=/usr/bin/python3
PG_BINDIR=${PGSNAP_PG_BINDIR:-$(pg_config --bindir)}
own_work=0
if [ -z "${BENCH_WORK:-}" ]; then
	BENCH_WORK=$(mktemp -d /var/tmp/pgsnap-bench-pytest.XXXXXX)
	own_work=1
fi
W=$BENCH_WORK
mkdir -p "$W" && chmod 755 "$W"
say() { printf '%s\n' "$*" >&2; }
row() { (IFS='	'; printf '%s\n' "$*") >>"$RESULTS"; }
na_all() {
	for r in pgsnap template floor; do row na "suite-$N-pytest-$r" - - - - - - "$1"; done
	say "bench-pytest: $1"
	exit 0
}

if ! $PY -c 'import pytest, xdist, psycopg2' 2>/dev/null; then
	na_all "$PY lacks pytest, xdist or psycopg2 (scripts/deps.sh test installs them)"
fi

# A store of our own: snapshots under W, clones and registry on RAM (the
# layout pgsnap uses without PGSNAP_HOME), as scripts/bench.sh does.
export PGSNAP_HOME=$W/pytest-home PGSNAP_BIN=$PGSNAP
RUNDIR=$(mktemp -d /dev/shm/pgsnap-bench-pytest.XXXXXX) || exit 1
chmod 755 "$RUNDIR"
mkdir -p "$PGSNAP_HOME"
ln -s "$RUNDIR" "$PGSNAP_HOME/run"
cleanup() {
	"$PGSNAP" rm --all >/dev/null 2>&1
	rm -rf "$RUNDIR"
	[ "$own_work" = 1 ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The plugin, installed as a user would (its pytest11 entry point).
$PY -m pip install -q --no-index --no-build-isolation --target "$W/site" "$TOP/lib/python" \
	>"$W/pip.log" 2>&1 || na_all "pip install lib/python failed: $(tail -1 "$W/pip.log")"
export PYTHONPATH=$W/site PYTHONDONTWRITEBYTECODE=1

# The suite: one test file, the queries taken from test/bench/suite_sql.h.
S=$W/suite
mkdir -p "$S"
{
	echo "SQL = ["
	sed -n 's/^[[:space:]]*\("[^"]*"\),$/    \1,/p' "$TOP/test/bench/suite_sql.h"
	echo "]"
	cat <<EOF
import psycopg2
import pytest


@pytest.mark.parametrize("i", range($N))
def test_suite(db_url, i):
    c = psycopg2.connect(db_url)
    c.autocommit = True
    with c.cursor() as cur:
        for q in SQL:
            cur.execute(q)
    c.close()
EOF
} >"$S/test_suite.py"
[ "$(grep -c '^    "' "$S/test_suite.py")" = 5 ] || na_all "cannot read the 5 queries of test/bench/suite_sql.h"
cat >"$S/conftest.py" <<'EOF'
import os

import pytest

ROUTE = os.environ["BENCH_ROUTE"]

if ROUTE == "pgsnap":
    @pytest.fixture
    def db_url(pgsnap_db):
        return pgsnap_db.url

elif ROUTE == "template":
    import psycopg2
    from psycopg2.extensions import make_dsn

    @pytest.fixture(scope="session")
    def admin():
        c = psycopg2.connect(os.environ["BENCH_ADMIN"])
        c.autocommit = True
        yield c
        c.close()

    @pytest.fixture
    def db_url(admin, i):
        name = "t_%d_%d" % (os.getpid(), i)
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE %s TEMPLATE bench_tpl STRATEGY FILE_COPY" % name)
        yield make_dsn(os.environ["BENCH_ADMIN"], dbname=name)
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE %s" % name)

else:
    URLS = open(os.environ["BENCH_URLS"]).read().split()

    @pytest.fixture
    def db_url(i):
        return URLS[i]
EOF

ms() { date +%s%3N; }
# suite ROUTE: one timed pytest run; its wall ms appended to W/wall.ROUTE.
suite() {
	local route=$1 t0 t1 rc
	# What earlier cases left is gone before this one is timed.
	until [ -z "$(ls -A "$RUNDIR/trash" 2>/dev/null)" ]; do sleep 0.1; done
	sync
	t0=$(ms)
	(cd "$S" && BENCH_ROUTE=$route $PY -m pytest -q -n "$J" -p no:cacheprovider --durations=5 test_suite.py) \
		>"$W/out.$route" 2>&1
	rc=$?
	t1=$(ms)
	if [ "$rc" = 0 ] && grep -q "^$N passed" "$W/out.$route"; then
		echo $((t1 - t0)) >>"$W/wall.$route"
		say "    $route: $((t1 - t0)) ms"
	else
		echo "failed: $(grep -E 'Error|FAILED|passed|failed' "$W/out.$route" | tail -1)" >"$W/fail.$route"
		say "    $route failed: $(tail -5 "$W/out.$route")"
	fi
}
# floor_dbs: N databases made and connected to once (untimed), in W/urls.
# Ten a call: through the service, `new -n` fails once its answer passes
# 16384 bytes (the C client's line limit; reported as a service bug).
floor_dbs() {
	local k
	: >"$W/urls"
	for ((k = 0; k < N; k += 10)); do
		PGSNAP_POOL=0 "$PGSNAP" new --shared=50 -n $((N - k < 10 ? N - k : 10)) -w 0 >>"$W/urls" || return 1
	done
	$PY -c 'import sys, psycopg2
for u in open(sys.argv[1]).read().split(): psycopg2.connect(u).close()' "$W/urls"
}

# pgsnap: an untimed run first builds the derived snapshot (default.dbs-*)
# and fills the pool, as any earlier run of the suite would have.
(cd "$S" && BENCH_ROUTE=pgsnap $PY -m pytest -q -n "$J" -p no:cacheprovider \
	test_suite.py -k 'test_suite[0] or test_suite[1] or test_suite[2] or test_suite[3]') \
	>"$W/out.warm" 2>&1 || say "    warm-up failed: $(tail -3 "$W/out.warm")"
# template: a server of its own with pgsnap's test settings.
tpl=""
if tpl=$(PGSNAP_POOL=0 "$PGSNAP" new -w 0 -o "-c max_connections=100" 2>"$W/err") &&
	"$PG_BINDIR/psql" -X -q -d "$tpl" -c 'create database bench_tpl' >/dev/null 2>>"$W/err"; then
	:
else
	echo "no template server: $(tail -1 "$W/err")" >"$W/fail.template"
fi
# Rounds of the three in turn (the machine's load drifts: each route's
# median is compared, not runs made minutes apart).
for ((r = 1; r <= ROUNDS; r++)); do
	say "  round $r of $ROUNDS"
	suite pgsnap
	[ -e "$W/fail.template" ] || BENCH_ADMIN=$tpl suite template
	if floor_dbs 2>"$W/err"; then
		BENCH_URLS=$W/urls suite floor
		xargs "$PGSNAP" rm <"$W/urls" >/dev/null 2>&1
	else
		echo "no databases: $(tail -1 "$W/err")" >"$W/fail.floor"
	fi
done
[ -n "$tpl" ] && "$PGSNAP" rm "$tpl" >/dev/null 2>&1

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
note_pgsnap="pytest -n $J, $N tests: the plugin's pgsnap_db (shared 16, pool $J), 5 queries"
note_template="the same, CREATE DATABASE .. TEMPLATE .. STRATEGY FILE_COPY + DROP DATABASE per test (a pgsnap server with test settings)"
note_floor="the same on databases made and connected to beforehand: the tests and pytest alone"
for route in pgsnap template floor; do
	eval "note=\$note_$route"
	if [ -s "$W/wall.$route" ] && [ ! -e "$W/fail.$route" ]; then
		m=$(median "$W/wall.$route")
		eval "wall_$route=$m"
		row val "suite-$N-pytest-$route" wall_ms "$m" ms "$note; median of $ROUNDS runs ($(tr '\n' ' ' <"$W/wall.$route" | sed 's/ $//'))"
	else
		row na "suite-$N-pytest-$route" - - - - - - "$(cat "$W/fail.$route" 2>/dev/null || echo failed)"
	fi
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }'; }
say "  pytest-pgsnap ${wall_pgsnap:-?} ms, template ${wall_template:-?} ms, floor ${wall_floor:-?} ms (medians of $ROUNDS)"
say "  pgsnap / floor $(ratio "${wall_pgsnap:-0}" "${wall_floor:-0}") (target <= 1.15x); template / pgsnap $(ratio "${wall_template:-0}" "${wall_pgsnap:-0}") (target > 1x)"
