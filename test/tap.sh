# tap.sh - TAP for the system tests (bash).  Source it first thing:
#   . "$(dirname "$0")/tap.sh"
# Gives: ok, is, isnt, like, unlike, diag, skip, skip_all, done_testing,
# a private store in $PGSNAP_HOME removed at exit (kept on failure), a
# watchdog so that no test hangs, and $PGSNAP pointing at the binary
# under test (PGSNAP_BUILD selects the normal or the sanitizer build).
set -u

TEST_DIR=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$TEST_DIR/.." && pwd)
PGSNAP_BUILD=${PGSNAP_BUILD:-$TOP/build}
PGSNAP=$PGSNAP_BUILD/pgsnap
export PGSNAP PGSNAP_BUILD
PG_BINDIR=${PGSNAP_PG_BINDIR:-$(pg_config --bindir)}
PATH=$PG_BINDIR:$PATH

_tap_n=0
_tap_failed=0

ok() { # ok STATUS DESCRIPTION: pass when STATUS is 0
	_tap_n=$((_tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $_tap_n - $2"
	else
		echo "not ok $_tap_n - $2"
		_tap_failed=$((_tap_failed + 1))
	fi
}
is() { # is GOT WANT DESCRIPTION
	if [ "$1" = "$2" ]; then ok 0 "$3"; else
		ok 1 "$3"; diag "got:  '$1'"; diag "want: '$2'"; fi
}
isnt() {
	if [ "$1" != "$2" ]; then ok 0 "$3"; else
		ok 1 "$3"; diag "got '$1', wanted anything else"; fi
}
like() { # like GOT EXTENDED-REGEX DESCRIPTION
	if printf '%s' "$1" | grep -Eq -- "$2"; then ok 0 "$3"; else
		ok 1 "$3"; diag "got:  '$1'"; diag "want match: /$2/"; fi
}
unlike() {
	if printf '%s' "$1" | grep -Eq -- "$2"; then
		ok 1 "$3"; diag "got:  '$1'"; diag "want no match: /$2/"
	else ok 0 "$3"; fi
}
diag() { printf '# %s\n' "$*" >&2; }
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n # skip $*"; }
skip_all() { echo "1..0 # SKIP $*"; _tap_done=1; exit 0; }
# A sanitizer finding in any process of the test (the CLI, the service it
# forked, a helper) is written to $TEST_TMP/sanitizer and fails the test.
sanitizer_clean() {
	local f
	for f in "$TEST_TMP"/sanitizer/*; do
		[ -s "$f" ] || continue
		ok 1 "no sanitizer report (${f##*/})"
		diag "$(head -40 "$f")"
		rm -f "$f"
	done
}
done_testing() { sanitizer_clean; echo "1..$_tap_n"; _tap_done=1; }

# run CMD...: sets $out (stdout), $err (stderr) and $rc.
run() {
	local o e
	o=$(mktemp) e=$(mktemp)
	"$@" >"$o" 2>"$e"
	rc=$?
	out=$(cat "$o") err=$(cat "$e")
	rm -f "$o" "$e"
	if grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' <<<"$err"; then
		ok 1 "no sanitizer report from: $*"
		diag "$err"
	fi
}

# A private store, reachable by the server's user when we are root.
TEST_TMP=$(mktemp -d /tmp/pgsnap-test.XXXXXX)
chmod 755 "$TEST_TMP"
# Reports go to files, also those of processes that outlive the command
# (the service) or whose stderr is not ours; other users' processes of the
# test (620-access) write there too.
mkdir -p "$TEST_TMP/sanitizer" && chmod 1777 "$TEST_TMP/sanitizer"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99:log_path=$TEST_TMP/sanitizer/asan}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=99:log_path=$TEST_TMP/sanitizer/ubsan}
export PGSNAP_HOME=$TEST_TMP/home
# No warm pool unless a test asks for one (test/5xx): pooled servers would
# change the counts of servers and clones the other tests make.
export PGSNAP_POOL=${PGSNAP_POOL:-0}
# Share one snapshot cache across the suite: building it is the slow part.
# Tests that need a fresh store set PGSNAP_HOME themselves.

_tap_cleanup() {
	local status=$?
	# Only the test's own shell cleans up: a subshell that inherited this
	# trap (one signalled before it could reset its traps) must not.
	[ "$BASHPID" = "$$" ] || return 0
	[ -n "${_tap_watchdog:-}" ] && kill "$_tap_watchdog" 2>/dev/null
	# Remove every clone of every store this test made, then the files.
	for h in "$TEST_TMP"/*/; do
		[ -d "$h/run" ] && PGSNAP_HOME=${h%/} "$PGSNAP" rm --all >/dev/null 2>&1
	done
	# What the clean-up itself reported (a TAP line after the plan: prove
	# fails the test).
	for f in "$TEST_TMP"/sanitizer/*; do
		[ -s "$f" ] || continue
		echo "not ok - sanitizer report during clean-up (${f##*/})"
		diag "$(head -40 "$f")"
		_tap_failed=$((_tap_failed + 1))
	done
	if [ "$_tap_failed" -eq 0 ] && [ "${_tap_done:-0}" = 1 ]; then
		rm -rf "$TEST_TMP"
	else
		diag "kept for inspection: $TEST_TMP"
		[ "${_tap_done:-0}" = 1 ] || echo "not ok - test script died (status $status)"
	fi
}
trap _tap_cleanup EXIT
trap 'exit 130' INT TERM

# Watchdog: a hung test fails instead of stalling the suite.
# (sleep must not hold our stdout open, or prove waits for it)
# (an external sh, not a subshell: a subshell would inherit our traps)
sh -c 'sleep "$1" >/dev/null 2>&1; echo "not ok - timed out after $1s"; kill -TERM "$2"' \
	watchdog "${TEST_TIMEOUT:-300}" $$ 2>/dev/null &
_tap_watchdog=$!
# (disowned: a test's bare `wait` for its own jobs must not wait for it)
disown "$_tap_watchdog" 2>/dev/null || true

# Helpers for clones ---------------------------------------------------

# The socket directory from a socket URL (postgresql://user@%2F...:port/db).
url_sockdir() {
	local h=${1#*@}
	h=${h%%:*}
	printf '%b' "${h//%/\\x}"
}
# The postmaster pid of a clone, by URL, from pgsnap ls.
clone_pid() {
	"$PGSNAP" ls | awk -v u="$1" '$NF == u { print $4 }'
}
# psql with a URL, no psqlrc, tuples only.
q() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
# Is pid a live process (zombies, awaiting their reaper, are not)?
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
# How many live postgres servers run on data directories under $1?
servers_under() {
	pgrep -c -f -- "postgres -D $1" 2>/dev/null || true
}
# wait_for SECONDS CMD...: true once CMD succeeds, false at the deadline
# (a condition with a deadline, never a bare sleep).
wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.05
	done
}
# until_ok SECONDS CMD...: wait_for with CMD's output silenced.
until_ok() {
	local t=$1; shift
	wait_for "$t" "$@" >/dev/null 2>&1
}
# Is pid stopped (SIGSTOP, or at a PGSNAP_TEST_PAUSE point)?
stopped() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null)
	[ "${st#T}" != "$st" ]
}
# Is directory $1 empty (the trash, once its background deleter is done)?
dir_empty() { [ -z "$(ls -A "$1" 2>/dev/null)" ]; }
# The records of a store (default $PGSNAP_HOME), a line each, as pgsnap
# writes them (RUN/records/ID: a header line, then the record's line).
records() {
	local f
	for f in "${1:-$PGSNAP_HOME}"/run/records/*; do
		[ -f "$f" ] && tail -n +2 "$f"
	done
	return 0
}
# Field NAME of clone ID's record ($3: the store).
record_field() {
	tr '\t' '\n' <"${3:-$PGSNAP_HOME}/run/records/$1" 2>/dev/null | sed -n "s/^$2=//p"
}
# The pids of the service of a store (default $PGSNAP_HOME): whoever holds
# its lock file open.
service_pids() {
	fuser "${1:-$PGSNAP_HOME}/run/service.lock" 2>/dev/null | tr -s ' ' '\n' | grep . || true
}
# svc VERB [key=value...]: one request to the store's service, the JSON
# answer on stdout (test/svc.py); exit 3 when none runs.
svc() { /usr/bin/python3 "$TEST_DIR/svc.py" "$@"; }
# How many pool keepers the store's service runs (0 when none runs).
nkeepers() {
	svc status 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["keepers"]))' 2>/dev/null || echo 0
}
# Milliseconds since the epoch.
ms() { date +%s%3N; }
# A session held open (psql reading a FIFO) until release_session.
hold_session() {
	rm -f "$TEST_TMP/hold"
	mkfifo "$TEST_TMP/hold"
	PGAPPNAME=held psql -X -q -d "$1" <"$TEST_TMP/hold" >/dev/null 2>&1 &
	held=$!
	exec 7>"$TEST_TMP/hold"
	until_ok 10 test "$(q "$1" "select count(*) from pg_stat_activity where application_name = 'held'")" = 1
}
release_session() { exec 7>&-; wait "$held" 2>/dev/null; }
# Wait until the wall clock passes $1 (ms since the epoch).
past() { local t=$1; wait_for 30 eval '[ "$(ms)" -ge '"$t"' ]'; }
