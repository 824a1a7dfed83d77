#!/usr/bin/env bash
# The registry: a corrupt, truncated, foreign or newer file is a clear
# error naming 'pgsnap gc --repair', which rebuilds it from what is on disk
# and running; the lock is free while a clone is made or started.
. "$(dirname "$0")/tap.sh"

reg=$PGSNAP_HOME/run/registry

run "$PGSNAP" new -w 0
is "$rc" 0 "new works"
u=$out
id=$("$PGSNAP" ls -q)
head -1 "$reg" | grep -q '^pgsnap-registry 1$'; ok $? "the registry starts with its header"
is "$(grep -c "^id=$id	" "$reg")" 1 "one line per clone, with its id"

# Garbage appended: a malformed line.
cp "$reg" "$TEST_TMP/good"
printf 'this is not a record\n' >>"$reg"
run "$PGSNAP" ls
is "$rc" 1 "ls on a corrupt registry fails (exit 1)"
like "$err" "corrupt.*pgsnap gc --repair" "the error names the way out"
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
n_dirs=$(ls "$PGSNAP_HOME/run/clones" | wc -l)
run "$PGSNAP" new -w 0
is "$rc" 1 "new refuses to work on a corrupt registry"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" "$n_dirs" "and leaves no clone directory"
is "$(servers_under "$PGSNAP_HOME/run")" 1 "nor a server"
run "$PGSNAP" gc
is "$rc" 1 "gc without --repair fails too"
run "$PGSNAP" gc --repair --dry-run
is "$rc" 0 "gc --repair --dry-run exits 0"
like "$out" "would rebuild" "and says it would rebuild the registry"
run "$PGSNAP" ls
is "$rc" 1 "the dry run changed nothing"
run "$PGSNAP" gc --repair
is "$rc" 0 "gc --repair exits 0"
like "$out" "rebuilt .*registry" "it says it rebuilt the registry"
run "$PGSNAP" ls -q
is "$out" "$id" "the readable record survived the repair"
is "$(q "$u" 'select 1')" 1 "and its clone still works"
ls "$PGSNAP_HOME"/run/registry.bad-* >/dev/null 2>&1; ok $? "the damaged file is kept aside"

# Truncated in the middle of a line (as a torn write would leave it).
head -c 100 "$TEST_TMP/good" >"$reg"
run "$PGSNAP" ls
is "$rc" 1 "a truncated registry is an error"
like "$err" "gc --repair" "naming gc --repair"

# A foreign file: nothing in it is trusted; the running clone is found on
# disk (its postmaster.pid) and recorded again.
printf 'hello\nworld\n' >"$reg"
run "$PGSNAP" ls
like "$err" "not a pgsnap registry" "a foreign file is named as such"
run "$PGSNAP" gc --repair
is "$rc" 0 "gc --repair of a foreign file exits 0"
like "$out" "recovered clone $id" "the live clone is recovered from disk"
run "$PGSNAP" ls
like "$out" "$id .* ready .*5432" "ls shows it again, ready, with its port"
is "$(q "$u" 'select 2')" 2 "the recovered clone is the same server"

# A file of a newer pgsnap.
cp "$reg" "$TEST_TMP/good"
sed -i '1s/.*/pgsnap-registry 9/' "$reg"
run "$PGSNAP" ls
like "$err" "newer pgsnap" "a newer format is named as such"
cp "$TEST_TMP/good" "$reg"

# A lost registry: gc alone records the running clone again rather than
# killing a server someone may use.
rm -f "$reg"
run "$PGSNAP" gc
like "$out" "recovered clone $id" "gc recovers a running clone with no record"
is "$("$PGSNAP" ls -q)" "$id" "and lists it"

# A writer that died mid-write leaves registry.tmp.PID; gc removes it.
echo junk >"$reg.tmp.999999"
run "$PGSNAP" gc
ok "$([ ! -e "$reg.tmp.999999" ]; echo $?)" "gc removes a stale registry temp file"

# The lock is not held while a clone is made or its server starts.
for pt in clone server; do
	PGSNAP_TEST_PAUSE=$pt "$PGSNAP" new -w 0 >/dev/null 2>&1 &
	p=$!
	until_ok 30 stopped $p
	flock -n "$PGSNAP_HOME/run/registry.lock" true
	ok $? "the registry lock is free while new is at '$pt'"
	kill -CONT $p
	wait $p
	is "$?" 0 "new at '$pt' then completes"
done
export PGSNAP_LOCK_TRACE=$TEST_TMP/locktrace
"$PGSNAP" new -w 0 >/dev/null
unset PGSNAP_LOCK_TRACE
n=$(wc -l <"$TEST_TMP/locktrace")
ok "$([ "$n" -ge 2 ] && [ "$n" -le 4 ]; echo $?)" "new takes the lock 2 to 4 times ($n)"
diag "lock hold times of one new (us): $(awk '{printf "%s ", $2}' "$TEST_TMP/locktrace")"

run "$PGSNAP" rm --all
is "$rc" 0 "rm --all"
is "$(servers_under "$PGSNAP_HOME/run")" 0 "no server left"
done_testing
