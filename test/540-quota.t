#!/usr/bin/env bash
# What a store may hold: PGSNAP_MAX_CLONES servers and PGSNAP_MAX_BYTES of
# files, checked before a server is made (after a gc pass), one clear
# error at the limit; snapshots unused for PGSNAP_SNAPSHOT_TTL go with gc.
. "$(dirname "$0")/tap.sh"

export PGSNAP_POOL=0
"$PGSNAP" new -w 0 >/dev/null && "$PGSNAP" rm --all # the snapshot, first

export PGSNAP_MAX_CLONES=2
u1=$("$PGSNAP" new -w 0)
u2=$("$PGSNAP" new -w 0)
run "$PGSNAP" new -w 0
is "$rc" 1 "a third server past PGSNAP_MAX_CLONES=2: exit 1"
like "$err" 'holds 2 servers \(PGSNAP_MAX_CLONES=2\)' "saying how many and which limit"
like "$err" 'pgsnap rm' "and what to do"
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 2 "nothing half-made"
"$PGSNAP" rm "$u2"
run "$PGSNAP" new -w 0
is "$rc" 0 "below the limit again, new works"
"$PGSNAP" rm --all

# A database of a shared server is no server: the limit counts servers.
export PGSNAP_MAX_CLONES=1
run "$PGSNAP" new --shared=3 -w 0
is "$rc" 0 "a shared server under PGSNAP_MAX_CLONES=1"
run "$PGSNAP" new --shared=3 -w 0
is "$rc" 0 "a second database of it: no new server"
run "$PGSNAP" new -w 0
is "$rc" 1 "a server of its own is one too many"
"$PGSNAP" rm --all

# What is due goes first: an expired clone does not count.
export PGSNAP_SERVICE=0 # (no service: new's own gc pass must do it)
u=$("$PGSNAP" new -w 1)
id=$("$PGSNAP" ls -q)
past $(( $(record_field "$id" created_ms) + 1500 ))
run "$PGSNAP" new -w 0
is "$rc" 0 "at the limit with an expired clone, new makes room (a gc pass) and works"
unlike "$("$PGSNAP" ls -q)" "$id" "the expired clone is gone"
unset PGSNAP_SERVICE PGSNAP_MAX_CLONES
"$PGSNAP" rm --all

export PGSNAP_MAX_BYTES=1M
run "$PGSNAP" new -w 0
is "$rc" 1 "a store over PGSNAP_MAX_BYTES=1M (its snapshot alone is bigger): exit 1"
like "$err" 'PGSNAP_MAX_BYTES=1 MiB' "saying so"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 0 "nothing made"
export PGSNAP_MAX_BYTES=100G
run "$PGSNAP" new -w 0
is "$rc" 0 "under PGSNAP_MAX_BYTES=100G, new works"
unset PGSNAP_MAX_BYTES
"$PGSNAP" rm --all

for bad in "PGSNAP_MAX_CLONES=x" "PGSNAP_MAX_CLONES=0" "PGSNAP_MAX_BYTES=10Q" "PGSNAP_SNAPSHOT_TTL=-1"; do
	run env "$bad" "$PGSNAP" new
	is "$rc" 1 "$bad: exit 1"
	like "$err" "${bad%%=*} '${bad#*=}'" "$bad: named"
done

# Snapshots unused for PGSNAP_SNAPSHOT_TTL seconds: gc removes them,
# never one with a live clone.
echo 'select 1;' >"$TEST_TMP/a.sql"
"$PGSNAP" snapshot build idle -q -f "$TEST_TMP/a.sql" >/dev/null
"$PGSNAP" snapshot build busy -q -f "$TEST_TMP/a.sql" >/dev/null
u=$("$PGSNAP" new -s busy -w 0)
past $(( $(date +%s%3N) + 1500 ))
"$PGSNAP" snapshot build fresh -q -f "$TEST_TMP/a.sql" >/dev/null
run env PGSNAP_SNAPSHOT_TTL=1 "$PGSNAP" gc
is "$rc" 0 "gc with PGSNAP_SNAPSHOT_TTL=1"
run "$PGSNAP" snapshot ls
unlike "$out" '^idle ' "an unused snapshot is gone"
like "$out" 'busy' "one with a live clone stays"
like "$out" 'fresh' "and so does one made within its time"
"$PGSNAP" rm --all
done_testing
