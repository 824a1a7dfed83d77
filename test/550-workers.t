#!/usr/bin/env bash
# Worker identity: new records the test runner's worker and CI shard (from
# PGSNAP_WORKER or the runners' own variables); ls shows it, ls --json and
# the service's answers carry it, rm --worker ends one worker's clones only.
. "$(dirname "$0")/tap.sh"

export PGSNAP_POOL=0
worker_of() { "$PGSNAP" ls --json | /usr/bin/python3 -c 'import json,sys; print(" ".join(sorted(c.get("worker", "-") for c in json.load(sys.stdin))))'; }
unset PGSNAP_WORKER PYTEST_XDIST_WORKER JEST_WORKER_ID VITEST_POOL_ID TEST_SHARD_INDEX CI_NODE_INDEX BUILDKITE_PARALLEL_JOB CIRCLE_NODE_INDEX

w() { # w EXPECTED VAR=VALUE...: the worker a new made with these records
	local want=$1; shift
	run env "$@" "$PGSNAP" new -w 0 --json
	is "$(printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("worker", "-"))')" "$want" "$* -> $want"
	"$PGSNAP" rm --all >/dev/null
}
w w7 PGSNAP_WORKER=w7
w gw3 PYTEST_XDIST_WORKER=gw3
w jest-2 JEST_WORKER_ID=2
w vitest-5 VITEST_POOL_ID=5
w shard-1/gw0 TEST_SHARD_INDEX=1 PYTEST_XDIST_WORKER=gw0
w shard-3 CI_NODE_INDEX=3
w shard-4/jest-1 BUILDKITE_PARALLEL_JOB=4 JEST_WORKER_ID=1
w shard-0 CIRCLE_NODE_INDEX=0
w mine PGSNAP_WORKER=mine PYTEST_XDIST_WORKER=gw9
w - PGSNAP_WORKER=

# ls shows it; rm --worker ends one worker's clones, servers and leases.
PGSNAP_WORKER=a "$PGSNAP" new -w 0 >/dev/null
PGSNAP_WORKER=a "$PGSNAP" new -w 0 --shared=4 >/dev/null
PGSNAP_WORKER=b "$PGSNAP" new -w 0 >/dev/null
ub=$(PGSNAP_WORKER=b "$PGSNAP" new -w 0 --shared=4)
"$PGSNAP" new -w 0 >/dev/null
is "$(worker_of)" "- a a b b" "ls --json: each clone's worker (none for one made outside a runner)"
like "$("$PGSNAP" ls | head -1)" "WORKER +URL" "ls has a WORKER column when a clone has one"
like "$("$PGSNAP" ls)" " b +postgresql" "with the worker's name"
is "$("$PGSNAP" ls --worker b -q | wc -l)" 2 "ls --worker b: b's clones only"
run "$PGSNAP" rm --worker a
is "$rc" 0 "rm --worker a exits 0"
is "$(worker_of)" "- b b" "a's clones are gone, the others stay"
is "$(q "$ub" 'select 1')" 1 "b's database in the shared server a's lease was in still answers"
run "$PGSNAP" rm --worker a x
is "$rc" 2 "rm --worker takes no names"
run "$PGSNAP" rm --all --worker b
is "$rc" 2 "--all and --worker: a usage error"
run env PGSNAP_WORKER=$'a\tb' "$PGSNAP" new
is "$rc" 1 "a worker name with a tab is refused"
"$PGSNAP" rm --all
done_testing
