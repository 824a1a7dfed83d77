#!/usr/bin/env bash
# Mock time (new --now, snapshot build --now) and the snapshot list:
# ls, rm (refused while clones live), gc --keep.
. "$(dirname "$0")/tap.sh"

cd "$TEST_TMP"
printf 'create table t(v int);\ninsert into t values (1);\n' >base.sql
"$PGSNAP" snapshot build base -f base.sql >/dev/null 2>&1 || diag "build base failed"

# Mock time.
run "$PGSNAP" new -s base --now '2021-06-06 12:00:00+00'
is "$rc" 0 "new --now TIME exits 0"
un=$out
is "$(q "$un" "select now() at time zone 'UTC'")" "2021-06-06 12:00:00" "now() returns the fixed time"
is "$(q "$un" "select pg_typeof(now())")" "timestamp with time zone" "as timestamptz"
is "$(q "$un" "select count(*) from t")" 1 "on the data of the base"
is "$(q "$un" "select now() = pg_catalog.now()")" f "pg_catalog.now() is the real one"
u2=$("$PGSNAP" new -s base --now '2021-06-06 12:00:00+00')
is "$(q "$u2" "select now() at time zone 'UTC'")" "2021-06-06 12:00:00" "a second clone reuses the mocked snapshot"
is "$(ls "$PGSNAP_HOME/snapshots" | grep -c '^base\.now-')" 1 "(built once)"
uc=$("$PGSNAP" new -s base --now clock)
t=$(psql -X -qAt -d "$uc" -c 'begin' -c 'select now()' -c 'select pg_sleep(0.05)' -c 'select now()' -c 'commit' | grep -v '^$')
isnt "$(sed -n 1p <<<"$t")" "$(sed -n 2p <<<"$t")" "--now clock: now() moves inside a transaction"
bkey=$(sed -n 's/^key=//p' "$PGSNAP_HOME/snapshots/base/meta")
echo 'insert into t values (5);' >>base.sql
run "$PGSNAP" new -s base --now '2021-06-06 12:00:00+00'
is "$(sed -n 's/^key=//p' "$PGSNAP_HOME/snapshots/base/meta")" "$bkey" \
	"--now alone does not rebuild a stale base"
run "$PGSNAP" new -s base --now '2021-06-06 12:00:00+00' --build-if-stale
like "$err" "snapshot 'base' built" "with --build-if-stale the base is rebuilt"
like "$err" "snapshot 'base.now-[0-9a-f]+' built" "and the mocked one after it"
is "$(q "$out" "select count(*) || ' ' || (now() at time zone 'UTC') from t")" "2 2021-06-06 12:00:00" \
	"its clone has the new row and the fixed time"
run "$PGSNAP" new -s base --now 'not a time'
is "$rc" 1 "a bad --now fails"
like "$err" "not a time" "naming the value"
"$PGSNAP" snapshot build fixedtime -f base.sql --now '2000-01-01 00:00:00+00' >/dev/null 2>&1
is "$(q "$("$PGSNAP" new -s fixedtime)" "select now()::date")" 2000-01-01 "snapshot build --now bakes it in"

# ls, rm, gc
"$PGSNAP" snapshot build listed -f base.sql -c work_mem=3MB >/dev/null 2>&1
"$PGSNAP" new -s listed >/dev/null
"$PGSNAP" new -s listed >/dev/null
run "$PGSNAP" snapshot ls
like "$out" '^NAME +KEY +PG +SIZE +CREATED +LAST USED +CLONES' "ls has a header"
like "$(grep '^listed ' <<<"$out")" '^listed +[0-9a-f]{12} +[0-9.]+ +[0-9]+[KMG] +[0-9-]+ [0-9:]+ +[0-9-]+ [0-9:]+ +2$' \
	"ls shows key, version, size, created, last used and the 2 live clones"
run "$PGSNAP" snapshot rm listed
is "$rc" 1 "rm of a snapshot with live clones is refused"
like "$err" "2 clones alive" "saying how many"
ok "$([ -e "$PGSNAP_HOME/snapshots/listed/meta" ]; echo $?)" "and leaves it"
run "$PGSNAP" snapshot rm listed --force
is "$rc" 0 "rm --force removes it"
ok "$([ ! -e "$PGSNAP_HOME/snapshots/listed" ]; echo $?)" "its directory is gone"
is "$("$PGSNAP" ls | grep -c ' listed ')" 0 "and its clones with it"
run "$PGSNAP" snapshot rm listed
like "$err" "no snapshot named 'listed'" "rm of a missing snapshot says so"
"$PGSNAP" rm --all >/dev/null
"$PGSNAP" snapshot build extra1 -f base.sql -c work_mem=5MB >/dev/null 2>&1
n0=$("$PGSNAP" snapshot ls -q | wc -l)
run "$PGSNAP" gc --keep-snapshots 3
is "$rc" 0 "pgsnap gc --keep-snapshots 3 exits 0"
is "$("$PGSNAP" snapshot ls -q | wc -l)" 3 "and bounds the snapshots to 3 (of $n0)"
like "$("$PGSNAP" snapshot ls -q | tr '\n' ' ')" "extra1" "keeping the most recently used"
"$PGSNAP" new -s extra1 >/dev/null
run "$PGSNAP" snapshot gc --keep 0
is "$("$PGSNAP" snapshot ls -q)" extra1 "snapshot gc --keep 0 keeps only one with a live clone"
run "$PGSNAP" snapshot gc --keep x
is "$rc" 2 "gc --keep x is a usage error"

done_testing
