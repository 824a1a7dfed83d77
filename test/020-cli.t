#!/usr/bin/env bash
# The CLI contract: help, version, bad options and arguments, exit codes.
. "$(dirname "$0")/tap.sh"

run "$PGSNAP" --help
is "$rc" 0 "--help exits 0"
like "$out" 'Usage: pgsnap COMMAND' "--help prints usage on stdout"
is "$err" "" "--help prints nothing on stderr"
run "$PGSNAP" --version
like "$out" '^pgsnap [0-9]+\.[0-9]+' "--version"
for c in new ls rm; do
	run "$PGSNAP" $c --help
	is "$rc" 0 "$c --help exits 0"
	like "$out" "Usage: pgsnap $c" "$c --help prints its usage"
done

run "$PGSNAP" frobnicate
is "$rc" 2 "unknown command: exit 2"
like "$err" "unknown command 'frobnicate'" "named in the error"
run "$PGSNAP"
is "$rc" 2 "no command: exit 2"

run "$PGSNAP" new --no-such-option
is "$rc" 2 "unknown long option: exit 2"
is "$err" "pgsnap new: unknown option '--no-such-option' (see 'pgsnap new --help')" "one line naming it"
run "$PGSNAP" new -Z
is "$rc" 2 "unknown short option: exit 2"
like "$err" "unknown option '-Z'" "named in the error"
run "$PGSNAP" new -o
is "$rc" 2 "missing option value: exit 2"
like "$err" "'-o' needs a value" "named in the error"
for w in 10x -1 '' ' 5' 99999999999999999999; do
	run "$PGSNAP" new -w "$w"
	is "$rc" 2 "-w '$w' is refused (exit 2)"
done
run "$PGSNAP" new --clone-method teleport
is "$rc" 2 "unknown clone method: exit 2"
run "$PGSNAP" new extra-arg
is "$rc" 2 "stray argument: exit 2"
run "$PGSNAP" rm
is "$rc" 2 "rm without a clone: exit 2"
run "$PGSNAP" rm --all someid
is "$rc" 2 "rm --all with a name: exit 2"

run "$PGSNAP" rm deadbeef
is "$rc" 1 "unknown clone id: exit 1"
is "$err" "pgsnap: no clone 'deadbeef' in this store (see 'pgsnap ls')" "one clear line"

PGSNAP_PG_BINDIR=/nonexistent/bin run "$PGSNAP" new
is "$rc" 1 "missing PostgreSQL binaries: exit 1"
like "$err" "/nonexistent/bin" "the error names the directory"
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"

run "$PGSNAP" new -s no_such_snapshot
is "$rc" 1 "unknown snapshot: exit 1"
like "$err" "no snapshot named 'no_such_snapshot'" "named in the error"
run "$PGSNAP" new -s ../etc
is "$rc" 1 "a snapshot name with a path is refused"
like "$err" "invalid" "as invalid"

if [ "$(id -u)" = 0 ]; then
	run "$PGSNAP" new --user no_such_user_here
	is "$rc" 1 "as root, an unknown --user fails"
	like "$err" "no_such_user_here" "naming the user"
	run "$PGSNAP" new --user root
	is "$rc" 1 "as root, --user root is refused"
	# A store the server user cannot reach.
	mkdir -p "$TEST_TMP/closed" && chmod 700 "$TEST_TMP/closed"
	PGSNAP_HOME=$TEST_TMP/closed/home run "$PGSNAP" new
	is "$rc" 1 "an unreachable store fails"
	like "$err" "not reachable by the server's user 'postgres'" "naming the directory's problem and the user"
else
	skip "root-only checks (running as $(id -un))"
fi

done_testing
