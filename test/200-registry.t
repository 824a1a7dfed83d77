#!/usr/bin/env bash
# The registry: a record file per clone, written whole (temp + rename) under
# a lock that is held for a few small files only, never while a clone is
# made or started; a record of a newer pgsnap or a damaged one costs its
# clone only; a registry of pgsnap 0.1 (one file) is moved into records.
. "$(dirname "$0")/tap.sh"

run_dir=$PGSNAP_HOME/run
run "$PGSNAP" new -w 0
is "$rc" 0 "new works"
u=$out
id=$("$PGSNAP" ls -q)
rec=$run_dir/records/$id
ok "$([ -f "$rec" ]; echo $?)" "the clone has a record file named by its id"
head -1 "$rec" | grep -q '^pgsnap-registry 1$'; ok $? "it starts with the format's header"
is "$(tail -n +2 "$rec" | grep -c "^id=$id	")" 1 "then one line: the record"
is "$(stat -c %a "$rec")" 600 "mode 0600"

# A record of a newer pgsnap is not ours to read: that clone only.
run "$PGSNAP" new -w 0
u2=$out
id2=$("$PGSNAP" ls | awk -v u="$u2" '$NF == u { print $1 }')
"$PGSNAP" service stop
cp "$rec" "$TEST_TMP/good"
sed -i '1s/.*/pgsnap-registry 9/' "$rec"
run "$PGSNAP" ls -q
is "$rc" 0 "ls works with a record of a newer pgsnap in the store"
is "$out" "$id2" "and lists the other clone only"
run "$PGSNAP" gc --dry-run
like "$out" "would remove record $id: it is damaged" "gc names it"
cp "$TEST_TMP/good" "$rec"

# A lost record: gc records the running clone again rather than killing a
# server someone may use.
rm -f "$rec"
run "$PGSNAP" gc
like "$out" "recovered clone $id" "gc recovers a running clone with no record"
like "$("$PGSNAP" ls -q)" "$id" "and lists it"
is "$(q "$u" 'select 1')" 1 "the recovered clone is the same server"

# Blank record files (the service makes them ahead: creating a file costs
# ~200 us on this kind of disk) are written in place: one a writer left
# half-written, longer than a record, is truncated when taken.
"$PGSNAP" service stop
for b in 000 001 002 003 004 005 006 007; do
	head -c 8192 /dev/zero | tr '\0' x >"$run_dir/records/.blank-$b"
done
u3=$(PGSNAP_SERVICE=0 "$PGSNAP" new -w 0)
id3=$(PGSNAP_SERVICE=0 "$PGSNAP" ls | awk -v u="$u3" '$NF == u { print $1 }')
ok "$([ -n "$id3" ]; echo $?)" "a clone written through junk blanks is listed"
is "$(grep -c x "$run_dir/records/$id3")" 0 "its record holds nothing of the blank it was written in"
ok "$([ ! -e "$run_dir/records/.blank-000" ]; echo $?)" "the write took a blank"
run "$PGSNAP" gc --dry-run
unlike "$out" "damaged" "gc finds no damaged record"
"$PGSNAP" rm "$u3" >/dev/null
rm -f "$run_dir"/records/.blank-*

# A writer that died mid-write leaves records/.tmp-*; gc removes it.
echo junk >"$run_dir/records/.tmp-$id-deadbeef"
run "$PGSNAP" gc
ok "$([ ! -e "$run_dir/records/.tmp-$id-deadbeef" ]; echo $?)" "gc removes a stale record temp file"

# The lock is not held while a clone is made or its server starts.
for pt in clone server; do
	PGSNAP_TEST_PAUSE=$pt "$PGSNAP" new -w 0 >/dev/null 2>&1 &
	p=$!
	until_ok 30 stopped $p
	flock -n "$run_dir/registry.lock" true
	ok $? "the registry lock is free while new is at '$pt'"
	kill -CONT $p
	wait $p
	is "$?" 0 "new at '$pt' then completes"
done
export PGSNAP_LOCK_TRACE=$TEST_TMP/locktrace
PGSNAP_SERVICE=0 "$PGSNAP" new -w 0 >/dev/null
unset PGSNAP_LOCK_TRACE
n=$(wc -l <"$TEST_TMP/locktrace")
ok "$([ "$n" -ge 2 ] && [ "$n" -le 4 ]; echo $?)" "new takes the lock 2 to 4 times ($n)"
diag "lock hold times of one new (us): $(awk '{printf "%s ", $2}' "$TEST_TMP/locktrace")"
"$PGSNAP" rm --all

# The single registry file of pgsnap 0.1 becomes a record file per clone.
u=$("$PGSNAP" new -w 0)
id=$("$PGSNAP" ls -q)
"$PGSNAP" service stop
{ echo 'pgsnap-registry 1'; records; } >"$run_dir/registry"
rm -f "$run_dir/records/$id"
run "$PGSNAP" ls -q
is "$out" "$id" "a registry of pgsnap 0.1 is read (moved into records) on the next call"
ok "$([ ! -e "$run_dir/registry" ] && [ -f "$run_dir/records/$id" ]; echo $?)" "and is gone, its record a file"
ls "$run_dir"/registry.0.1-* >/dev/null 2>&1; ok $? "the old file is kept aside"

run "$PGSNAP" rm --all
is "$rc" 0 "rm --all"
is "$(servers_under "$run_dir")" 0 "no server left"
is "$(ls -A "$run_dir/records" | grep -v "^\.blank-")" "" "no record left"
done_testing
