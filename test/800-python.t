#!/usr/bin/env bash
# lib/python: the pgsnap client and pytest plugin, installed with pip from
# the tree (offline), run by real pytest (xdist too) on generated test files
# against real servers: a fresh database per test, isolation, xdist workers
# as owners, markers and ini options (snapshot from a recipe, mock time, a
# server of its own over TCP), a failed test's database kept with its URL
# and log in the report (made with an owner all the same, let go of it by
# `keep`: it outlives the run and gc), a killed worker (with and without
# keep-failed) and a killed service, and nothing left behind.
. "$(dirname "$0")/tap.sh"

PY=/usr/bin/python3
if [ "${PGSNAP_SANITIZED:-0}" = 1 ]; then
	skip_all "the plugin drives the service through the same requests as the CLI's tests, which run under the sanitizers; pytest adds no C code (run in the normal pass)"
fi
if ! [ -x $PY ] || ! $PY -c 'import pytest, xdist, psycopg2' 2>/dev/null; then
	skip_all "$PY lacks pytest, xdist or psycopg2 (scripts/deps.sh test installs python3-pytest, python3-pytest-xdist, python3-psycopg2)"
fi
export PGSNAP_BIN=$PGSNAP PYTHONDONTWRITEBYTECODE=1
mkdir -p "$PGSNAP_HOME"
T=$TEST_TMP/py
mkdir -p "$T"
nclones() { "$PGSNAP" ls -q | wc -l; }
# A clone whose owner died ends at the service's next round (a request the
# service answered as it was killed may have made one that nobody got).
no_clones() {
	until_ok 10 test "$(nclones)" = 0
	is "$(nclones)" 0 "$1: nothing left (ls -q)"
}
# pyt DIR ARGS...: pytest in DIR, the plugin loaded by its entry point.
pyt() { local d=$1; shift; run sh -c 'cd "$1" && shift && exec "$@"' sh "$d" $PY -m pytest -p no:cacheprovider "$@"; }

# ---- install ---------------------------------------------------------------
run $PY -m pip install --no-index --no-build-isolation --target "$T/site" "$TOP/lib/python"
is "$rc" 0 "pip install (Debian's python3, offline, no build isolation)"
[ "$rc" = 0 ] || diag "$out$err"
export PYTHONPATH=$T/site
like "$($PY -c 'import importlib.metadata as m; print([e.value for e in m.entry_points(group="pytest11")])')" \
	"pgsnap.plugin" "the pytest11 entry point is installed"
other=$(command -v python3)
if [ -n "$other" ] && [ "$(readlink -f "$other")" != "$(readlink -f $PY)" ] &&
	env -u PYTHONPATH python3 -m pip --version >/dev/null 2>&1; then
	# pyenv's Python has no `wheel`: setuptools could not build it there.
	run env -u PYTHONPATH python3 -m pip install --no-index --target "$T/site-other" "$TOP/lib/python"
	is "$rc" 0 "pip install with the python3 on PATH ($other) too"
	[ "$rc" = 0 ] || diag "$out$err"
	run env PYTHONPATH="$T/site-other" python3 -c '
import os
from pgsnap import Client
with Client() as c:
    db = c.new(shared=4, owner=os.getpid())
    print(db.database, c.rm(db))'
	is "$out" "pgsnap_1 1" "the client works there without pytest: new, rm"
	[ "$out" = "pgsnap_1 1" ] || diag "$err"
else
	skip "python3 on PATH is $PY (or has no pip)"
	skip "python3 on PATH is $PY (or has no pip)"
fi

# ---- the client alone ---------------------------------------------------------
run $PY -c '
import os
from pgsnap import Client, PgsnapError
c = Client()
print(c.connect()["protocol"])
try:
    c.new(snapshot="no-such-800")
except PgsnapError as e:
    print(e.errno, e.status)
try:
    c.call("new", shared=1, bogus=1)
except PgsnapError as e:
    print(e.status)
print(c.ping()["ok"])'
is "$out" "1
ENOENT 1
2
True" "Client: hello, a refused request raises PgsnapError (errno, status), the connection lives on"
[ "$rc" = 0 ] || diag "$err"

# PGSNAP_SOCKET (pgsnap exec sets it) is used as it is: no program is run.
run "$PGSNAP" exec -- $PY -c '
import os
from pgsnap import Client
print(Client(pgsnap_bin="/nonexistent").ping()["ok"], os.environ["PGSNAP_SOCKET"])'
like "$out" "^True /" "Client: PGSNAP_SOCKET from pgsnap exec, without running pgsnap"
run env PGSNAP_BIN=/nonexistent $PY -c '
from pgsnap import Client, PgsnapError
try:
    Client().ping()
except PgsnapError as e:
    print(e)'
like "$out" "cannot run /nonexistent service start" "Client: a missing PGSNAP_BIN is named"

# ---- a fresh database per test, on 4 xdist workers ----------------------------
P=$T/fresh
mkdir -p "$P"
cat >"$P/test_fresh.py" <<'EOF'
import os

import psycopg2
import pytest

SEEN = os.environ["SEEN"]


@pytest.mark.parametrize("i", range(24))
def test_fresh(pgsnap_db, pgsnap_client, i):
    db = pgsnap_db
    assert db.url.startswith("postgresql://") and db.url.endswith("/" + db.database)
    assert "dbname='%s'" % db.database in db.conninfo and db["id"] == db.id == db.raw["id"]
    assert db.host and db.port and db.user and os.path.exists(db.log)
    c = psycopg2.connect(db.url)
    c.autocommit = True
    cur = c.cursor()
    # A fresh database: what an earlier test made is not here.
    cur.execute("select to_regclass('mark')")
    assert cur.fetchone()[0] is None
    cur.execute("create table mark (who text)")
    cur.execute("insert into mark values (%s)", (str(i),))
    c.close()
    # The worker's pid owns it; its xdist name is its worker.
    mine = [x for x in pgsnap_client.ls() if x.id == db.id][0]
    assert mine.owner == os.getpid()
    assert mine.worker == os.environ.get("PYTEST_XDIST_WORKER")
    with open(SEEN, "a") as f:
        f.write("%s %s %s %s %s\n" % (db.id, db.get("server", db.id), db.database,
                                      os.getpid(), mine.worker))
EOF
export SEEN=$T/seen
pyt "$P" -q -n 4 --pgsnap-shared 4 test_fresh.py
is "$rc" 0 "pytest -n 4: the 24 tests pass (each found no table of another)"
like "$out" "24 passed" "all 24 ran"
[ "$rc" = 0 ] || diag "$out$err"
is "$(awk '{ print $1 }' "$SEEN" | sort -u | wc -l)" 24 "each test got its own clone"
is "$(awk '{ print $2, $3 }' "$SEEN" | sort -u | wc -l)" 24 "and its own database (server, name): none handed out twice"
is "$(awk '$3 !~ /^pgsnap_[1-4]$/' "$SEEN")" "" "--pgsnap-shared 4: databases pgsnap_1..4 of shared servers"
like "$(awk '{ print $5 }' "$SEEN" | sort -u | tr '\n' ' ')" "^gw0 gw1 gw2 gw3 $" "the 4 workers each made clones, as their own owners"
no_clones "the fresh-database run"

# ---- ini options, markers, mock time, a server of its own --------------------------
P=$T/ini
mkdir -p "$P"
cat >"$P/schema.sql" <<'EOF'
create table widgets (name text primary key);
insert into widgets values ('sprocket');
EOF
printf 'sql schema.sql\n' >"$P/app.recipe"
cat >"$P/pytest.ini" <<'EOF'
[pytest]
pgsnap_snapshot = app800
pgsnap_recipe = app.recipe
pgsnap_now = 2021-06-06 12:00:00+00
pgsnap_shared = 3
EOF
cat >"$P/test_ini.py" <<'EOF'
import psycopg2
import pytest


def one(url, sql):
    c = psycopg2.connect(url)
    cur = c.cursor()
    cur.execute(sql)
    v = cur.fetchone()[0]
    c.close()
    return v


def test_snapshot_from_recipe(pgsnap_db):
    assert one(pgsnap_db.url, "select name from widgets") == "sprocket"
    assert pgsnap_db.database in ("pgsnap_1", "pgsnap_2", "pgsnap_3")


def test_mock_time_from_ini(pgsnap_db):
    assert one(pgsnap_db.url, "select now()::text") == "2021-06-06 12:00:00+00"


@pytest.mark.pgsnap(shared=0)
def test_marker_shared_0(pgsnap_db):
    # A server of its own: the snapshot's database, no shared server.
    assert pgsnap_db.database == "postgres" and pgsnap_db.server is None
    assert one(pgsnap_db.url, "select count(*) from widgets") == 1


@pytest.mark.pgsnap(tcp=True)
def test_server_tcp(pgsnap_server):
    s = pgsnap_server
    assert s.host == "127.0.0.1" and s.password and s.jdbc_url
    assert one(s.url, "select current_setting('port')::int") == s.port
    assert one(s.url, "select rolsuper from pg_roles where rolname = current_user")


@pytest.mark.pgsnap(nope=1)
def test_bad_marker(pgsnap_db):
    pass
EOF
pyt "$P" -v -n 2
is "$rc" 1 "ini run: one test errors (the bad marker), the others pass"
like "$out" "4 passed, 1 error" "4 passed"
like "$out" "pgsnap: snapshot app800, recipe .*/app.recipe, shared 3, now 2021-06-06" "the report header shows the settings"
like "$out" "mark.pgsnap has no key 'nope'" "a marker's unknown key is named"
[ "$rc" = 1 ] || diag "$out$err"
like "$("$PGSNAP" snapshot ls)" "app800 " "the recipe built snapshot app800 once for the run"
no_clones "the ini run"

# ---- a failed test keeps its database on request ------------------------------------
P=$T/keep
mkdir -p "$P"
cat >"$P/test_keep.py" <<'EOF'
import os

import psycopg2


def test_passes(pgsnap_db, pgsnap_client):
    # Keep-failed or not, a clone is owned by the process that made it.
    mine = [x for x in pgsnap_client.ls() if x.id == pgsnap_db.id][0]
    assert mine.owner == os.getpid()


def test_fails(pgsnap_db):
    c = psycopg2.connect(pgsnap_db.url)
    c.autocommit = True
    c.cursor().execute("create table evidence (x int); insert into evidence values (42)")
    c.close()
    assert False, "fails on purpose"


def test_server_fails(pgsnap_server):
    assert False, "fails on purpose"
EOF
pyt "$P" -q -n 2 --pgsnap-shared 4 --pgsnap-keep-failed --junitxml="$T/keep.xml" test_keep.py
is "$rc" 1 "keep-failed run: pytest exits 1"
like "$out" "2 failed, 1 passed" "two tests failed, one passed"
like "$out" "pgsnap: kept database -+
url: postgresql://" "the failure's report has a section with the kept database's URL"
kept_url=$(awk '/^test_keep.py::test_fails$/ { getline; print $2 }' <<<"$out")
kept_log=$(awk '/^test_keep.py::test_fails$/ { getline; getline; print $2 }' <<<"$out")
like "$kept_url" '^postgresql://' "the summary lists the failed test's URL"
ok "$([ -s "$kept_log" ]; echo $?)" "and its server log, a file that is there ($kept_log)"
is "$(q "$kept_url" 'select x from evidence' 2>&1)" 42 "the kept database holds what the failed test left"
is "$(nclones)" 2 "both failed tests' clones are kept after pytest left, the passing test's removed"
like "$(cat "$T/keep.xml")" 'property name="pgsnap_url" value="postgresql://' "the JUnit XML report carries the URL too"
is "$("$PGSNAP" ls --json | $PY -c 'import json, sys; print(sorted(set(str(c.get("owner")) for c in json.load(sys.stdin))))')" \
	"['None']" "the kept clones have no owner any more (keep)"
run "$PGSNAP" gc
is "$rc" 0 "pgsnap gc, their owners (the xdist workers) gone"
is "$(nclones)" 2 "the kept clones outlive gc"
is "$(q "$kept_url" 'select x from evidence' 2>&1)" 42 "and the kept database still answers after gc"
"$PGSNAP" rm --all >/dev/null
pyt "$P" -q --pgsnap-shared 4 test_keep.py -k test_fails
is "$rc" 1 "without --pgsnap-keep-failed the test fails as well"
unlike "$out" "kept database" "and no database is kept"
no_clones "a failed test without keep-failed"

# ---- a killed worker leaves nothing after gc -----------------------------------------
P=$T/kill
mkdir -p "$P"
cat >"$P/test_kill.py" <<'EOF'
import os
import signal


def test_killed(pgsnap_db, pgsnap_server):
    with open(os.environ["KILLED"], "w") as f:
        f.write("%s %s\n" % (pgsnap_db.id, pgsnap_server.id))
    os.kill(os.getpid(), signal.SIGKILL)


def test_other(pgsnap_db):
    pass
EOF
export KILLED=$T/killed
pyt "$P" -q -n 2 --pgsnap-shared 4 test_kill.py
like "$out" "crashed while running 'test_kill.py::test_killed'" "xdist saw its worker killed in a test"
is "$(wc -w <"$KILLED")" 2 "the killed test had a database and a server"
run "$PGSNAP" gc
is "$rc" 0 "pgsnap gc"
no_clones "a worker killed (kill -9) in a test, after gc"
# With keep-failed too: its clones were made with an owner, kept only by
# a test that fails and lives to say so.
rm -f "$KILLED"
pyt "$P" -q -n 2 --pgsnap-shared 4 --pgsnap-keep-failed test_kill.py
like "$out" "crashed while running 'test_kill.py::test_killed'" "--pgsnap-keep-failed: xdist saw its worker killed in a test"
is "$(wc -w <"$KILLED")" 2 "--pgsnap-keep-failed: the killed test had a database and a server"
run "$PGSNAP" gc
is "$rc" 0 "pgsnap gc"
no_clones "--pgsnap-keep-failed: a worker killed (kill -9) in a test, after gc"

# The old option, no longer needed, is accepted with a warning.
pyt "$T/keep" -q --pgsnap-keep-timeout 60 -k test_passes test_keep.py
is "$rc" 0 "--pgsnap-keep-timeout is still accepted"
like "$out" "PytestDeprecationWarning: pgsnap: --pgsnap-keep-timeout \(pgsnap_keep_timeout\) is ignored" "with a deprecation warning"
no_clones "the run with --pgsnap-keep-timeout"

# ---- a killed service is started again, transparently --------------------------------
P=$T/svc
mkdir -p "$P"
cat >"$P/test_svc.py" <<'EOF'
import os
import signal
import time

import psycopg2
import pytest

PIDS = os.environ["PIDS"]


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


def test_kill_service(pgsnap_db, pgsnap_client, pgsnap_new):
    old = pgsnap_client.hello["pid"]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not gone(old):
        assert time.monotonic() < deadline, "the service did not die"
        time.sleep(0.01)
    # The next request finds no service: the client starts one and retries.
    again = pgsnap_new()
    assert pgsnap_client.hello["pid"] != old
    for db in (pgsnap_db, again):
        psycopg2.connect(db.url).close()
    with open(PIDS, "a") as f:
        f.write("%d %d\n" % (old, pgsnap_client.hello["pid"]))


@pytest.mark.parametrize("i", range(12))
def test_others(pgsnap_db, i):
    psycopg2.connect(pgsnap_db.url).close()
EOF
export PIDS=$T/pids
pyt "$P" -q -n 2 --pgsnap-shared 4 test_svc.py
is "$rc" 0 "the service killed (kill -9) mid-run: all 13 tests pass"
like "$out" "13 passed" "13 ran"
[ "$rc" = 0 ] || diag "$out$err"
is "$(wc -l <"$PIDS" 2>/dev/null)" 1 "the test killed the service and saw another answer"
no_clones "the run with a killed service"

done_testing
