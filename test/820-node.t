#!/usr/bin/env bash
# lib/node, the pgsnap npm package: its unit tests (a fake service), then
# the real runners, node --test, Jest and Vitest, on the suites of
# lib/node/test/fixtures against real servers with npm's pg: every test a
# fresh database, parallel workers, a failed test's database kept when
# asked (its URL and server log shown; made with an owner all the same and
# let go of it by the service's keep: it outlives its process and gc),
# nothing left behind, a killed test process cleaned by gc (keeping failed
# tests' databases or not), a service killed mid-run (kill -9) restarted
# without a test noticing.
. "$(dirname "$0")/tap.sh"

NM=$TOP/test/node/node_modules
PKG=$TOP/lib/node
if [ "${PGSNAP_SANITIZED:-0}" = 1 ]; then
	skip_all "the Node package reaches pgsnap only through the CLI and the service, whose C code the other tests run under the sanitizers (run in the normal pass)"
fi
command -v node >/dev/null || skip_all "node missing (scripts/deps.sh test installs nodejs)"
export NO_COLOR=1 FORCE_COLOR=0
unset PGSNAP_SOCKET JEST_WORKER_ID VITEST_POOL_ID PGSNAP_KEEP_FAILED
mkdir -p "$PGSNAP_HOME"

# The client alone, against a fake service: no npm package needed.
run node --test "$PKG/test/unit/"
is "$rc" 0 "the client's unit tests pass"
like "$out" '# fail 0' "none failed"
[ "$rc" = 0 ] || diag "$out$err"

missing=""
for p in pg jest vitest; do [ -d "$NM/$p" ] || missing="$missing $p"; done
if [ -n "$missing" ]; then
	skip "node --test, Jest and Vitest suites:$missing missing in test/node/node_modules (make check installs them from npm's registry with npm install --prefix test/node; without npm or the registry they are missing)"
	done_testing
	exit 0
fi

# A project as npm would lay it out: the runners and pg from test/node,
# pgsnap a copy of the files its package.json ships.
PROJ=$TEST_TMP/proj
mkdir -p "$PROJ/node_modules"
for e in "$NM"/* "$NM"/.bin; do ln -s "$e" "$PROJ/node_modules/"; done
node -e '
const fs = require("fs"), path = require("path");
const [src, dst] = process.argv.slice(1);
const pkg = JSON.parse(fs.readFileSync(path.join(src, "package.json"), "utf8"));
for (const f of ["package.json", ...pkg.files])
	fs.cpSync(path.join(src, f), path.join(dst, f), { recursive: true });' "$PKG" "$PROJ/node_modules/pgsnap"
ok $? "every file lib/node/package.json ships is there"
cp -r "$PKG/test/fixtures/." "$PROJ/"
export PGSNAP_BIN=$PGSNAP

# Each fixture test records its database (one JSON line): rec EXPR
# evaluates a JavaScript expression over them (r, an array).
REC=$TEST_TMP/record.jsonl
export PGSNAP_FIXTURE_RECORD=$REC
rec() {
	node -e '
const fs = require("fs");
const r = fs.existsSync(process.argv[1]) ? fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
console.log(new Function("r", "return (" + process.argv[2] + ");")(r));' "$REC" "$1"
}
clones() { "$PGSNAP" ls -q | tr '\n' ' ' | sed 's/ $//'; }

# The snapshots (default, and its databases for shared servers) are built
# once here: a build takes longer than a test runner's default timeout.
"$PGSNAP" new --shared >/dev/null && "$PGSNAP" rm --all >/dev/null
is "$(clones)" "" "the store starts empty"

# A run of all passing tests: service.test kills the service (kill -9)
# while the other files run beside it.
check_run() { # RUNNER TESTS: rc, output and records of the run just made
	local runner=$1 n=$2
	is "$rc" 0 "$runner: the suite passes"
	[ "$rc" = 0 ] || diag "$out$err"
	is "$(rec 'r.filter((x) => x.id).length')" "$n" "$runner: its $n tests each got a database"
	is "$(rec 'new Set(r.filter((x) => x.id).map((x) => x.id)).size')" "$n" \
		"$runner: $n different databases (each test found none of the table the others made)"
	is "$(rec 'r.filter((x) => x.id && x.owner !== x.pid).length')" 0 "$runner: each owned by its test process"
	ok "$([ "$(rec 'new Set(r.map((x) => x.pid)).size')" -ge 2 ]; echo $?)" \
		"$runner: tests ran in parallel processes ($(rec 'new Set(r.map((x) => x.pid)).size'))"
	local killed after
	killed=$(rec 'r.find((x) => x.killedService).killedService')
	after=$(rec 'r.find((x) => x.servicePid).servicePid')
	ok "$([ -n "$killed" ] && [ -n "$after" ] && [ "$killed" != "$after" ]; echo $?)" \
		"$runner: the service killed mid-run (pid $killed) was started again (pid $after), no test failed"
	is "$(clones)" "" "$runner: nothing left behind"
}

# A run of fail.test (one test passes, one fails) with PGSNAP_KEEP_FAILED=1.
check_kept() { # RUNNER
	local runner=$1 url log id
	isnt "$rc" 0 "$runner: the failing test fails the run"
	url=$(rec 'r.find((x) => x.name === "fails").url')
	log=$(rec 'r.find((x) => x.name === "fails").log')
	id=$(rec 'r.find((x) => x.name === "fails").id')
	like "$out$err" "kept the failed test's database: $url" "$runner: prints the kept database's URL"
	like "$out$err" "server log: $log" "$runner: and its server log"
	ok "$([ -s "$log" ]; echo $?)" "$runner: the log is there"
	is "$(clones)" "$id" "$runner: the failed test's database is kept, the passing one's removed"
	is "$(rec 'r.filter((x) => x.id && x.owner !== x.pid).length')" 0 \
		"$runner: both databases were made owned by their test process, keeping or not"
	is "$(q "$url" 'select test from mark')" fails "$runner: the kept database holds what the test wrote, its process gone"
	unlike "$("$PGSNAP" ls --json)" '"owner"' "$runner: it has no owner any more (keep)"
	run "$PGSNAP" gc
	is "$rc" 0 "$runner: pgsnap gc"
	is "$(clones)" "$id" "$runner: the kept database outlives gc"
	is "$(q "$url" 'select test from mark')" fails "$runner: and still answers after gc"
	"$PGSNAP" rm "$id" >/dev/null
	is "$(clones)" "" "$runner: removed by pgsnap rm"
}

# A run whose test process is killed (kill -9) holding a database.
check_killed() { # RUNNER
	local runner=$1 id
	isnt "$rc" 0 "$runner: the killed test fails the run"
	id=$(rec 'r.find((x) => x.name === "killed").id')
	like "$id" '^[0-9a-f]+$' "$runner: the killed test had a database"
	is "$(rec 'r.find((x) => x.name === "killed").owner === r.find((x) => x.name === "killed").pid')" true \
		"$runner: owned by the killed process"
	run "$PGSNAP" gc
	is "$rc" 0 "$runner: pgsnap gc"
	is "$(clones)" "" "$runner: nothing left after gc"
}

# node --test ------------------------------------------------------------
cd "$PROJ/node-test" || exit 1
rm -f "$REC"
run node --test --test-concurrency=2 service.test.js a.test.js b.test.mjs
check_run "node --test" 8
like "$out" '# pass 8' "node --test: 8 tests passed"
is "$(rec 'r.filter((x) => x.id && (x.socket !== null || x.worker !== null)).length')" 0 \
	"node --test: no PGSNAP_SOCKET nor worker: the package ran pgsnap service start itself"

rm -f "$REC"
run node --test fail.test.js
isnt "$rc" 0 "node --test: a failing test fails the run"
unlike "$out$err" "kept the failed" "node --test: without PGSNAP_KEEP_FAILED nothing is kept"
is "$(clones)" "" "node --test: and both databases are removed"

rm -f "$REC"
run env PGSNAP_KEEP_FAILED=1 node --test fail.test.js
check_kept "node --test"

rm -f "$REC"
run node --test kill.test.js
check_killed "node --test"

# Keeping failed tests' databases, a killed test process's go all the
# same: they are let go of their owner only once a test has failed.
rm -f "$REC"
run env PGSNAP_KEEP_FAILED=1 node --test kill.test.js
check_killed "node --test, PGSNAP_KEEP_FAILED=1"

# Jest -------------------------------------------------------------------
cd "$PROJ/jest" || exit 1
JEST="node $PROJ/node_modules/jest/bin/jest.js --ci"
rm -f "$REC"
run $JEST --maxWorkers=2 '/(service|a|b)\.test\.js$'
check_run Jest 8
like "$err" 'Tests: +8 passed, 8 total' "Jest: 8 tests passed"
is "$(rec 'r.filter((x) => x.id && !/^jest-[0-9]+$/.test(x.worker)).length')" 0 "Jest: each database names its worker (JEST_WORKER_ID)"
is "$(rec 'new Set(r.filter((x) => x.id).map((x) => x.socket)).size')" 1 "Jest: the workers share one socket"
like "$(rec 'r[0].socket')" '/' "Jest: globalSetup gave it to them (PGSNAP_SOCKET)"

rm -f "$REC"
run env PGSNAP_KEEP_FAILED=1 $JEST '/fail\.test\.js$'
check_kept Jest

# Two files on two workers, a fresh timing cache: Jest would run a single
# file, or files its cache says are quick, in its own process.
rm -f "$REC"
run $JEST --maxWorkers=2 --cacheDirectory="$TEST_TMP/jest-kill-cache" '/(kill|a)\.test\.js$'
like "$err" 'PASS \./a\.test\.js' "Jest: the other worker's file passed"
check_killed Jest

# Vitest -----------------------------------------------------------------
cd "$PROJ/vitest" || exit 1
VITEST="node $PROJ/node_modules/vitest/vitest.mjs run"
rm -f "$REC"
run $VITEST service.test a.test b.test
check_run Vitest 8
like "$out" 'Tests +8 passed \(8\)' "Vitest: 8 tests passed"
is "$(rec 'r.filter((x) => x.id && !/^vitest-[0-9]+$/.test(x.worker)).length')" 0 "Vitest: each database names its worker (VITEST_POOL_ID)"
is "$(rec 'new Set(r.filter((x) => x.id).map((x) => x.socket)).size')" 1 "Vitest: the workers share one socket"
like "$(rec 'r[0].socket')" '/' "Vitest: globalSetup gave it to them (PGSNAP_SOCKET)"

rm -f "$REC"
run env PGSNAP_KEEP_FAILED=1 $VITEST fail.test
check_kept Vitest

done_testing
