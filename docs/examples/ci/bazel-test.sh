#!/bin/sh
# bazel-test.sh ARCHIVE - one shard of the suite under `bazel test`
# (BUILD.bazel): a store of its own in TEST_TMPDIR, the snapshot imported
# from the genrule's archive, the test files of shard TEST_SHARD_INDEX of
# TEST_TOTAL_SHARDS.  When a test fails, the server's log goes to
# TEST_UNDECLARED_OUTPUTS_DIR (bazel-testlogs/.../test.outputs/).
set -eu
if [ -n "${TEST_SHARD_STATUS_FILE:-}" ]; then
	touch "$TEST_SHARD_STATUS_FILE"   # this test runs its shard only
fi
export PGSNAP_HOME="$TEST_TMPDIR/pgsnap"
pgsnap snapshot import "$1" >/dev/null
status=0
pgsnap exec --keep-on-failure -s app -- "$(dirname "$0")/run-shard.sh" \
	$((${TEST_SHARD_INDEX:-0} + 1)) "${TEST_TOTAL_SHARDS:-1}" || status=$?
if [ "$status" -ne 0 ]; then
	# --keep-on-failure kept the clone: its log, then the clone, go.
	for d in "$PGSNAP_HOME"/run/clones/*/; do
		[ -f "$d/log" ] && cp "$d/log" "$TEST_UNDECLARED_OUTPUTS_DIR/postgres-$(basename "$d").log"
	done
	pgsnap rm --all >/dev/null
fi
exit "$status"
