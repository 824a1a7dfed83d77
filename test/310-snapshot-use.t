#!/usr/bin/env bash
# Using snapshots: save a live clone, export/import, a snapshot of
# another major version.
. "$(dirname "$0")/tap.sh"

cd "$TEST_TMP"
printf 'create table t(v int);\ninsert into t values (1);\n' >base.sql
"$PGSNAP" snapshot build base -f base.sql >/dev/null 2>&1 || diag "build base failed"

# save: a change made by hand in a live clone becomes a snapshot.
u=$("$PGSNAP" new -s base)
q "$u" 'insert into t values (2); create table by_hand(x text); insert into by_hand values ($$kept$$)'
pid=$(clone_pid "$u")
# A session that stays open across the save, with work in flight.
coproc PSQL { psql -X -qAt -d "$u" 2>&1; }
echo "begin; insert into t values (99); select 'in-flight';" >&"${PSQL[1]}"
read -r -t 10 line <&"${PSQL[0]}"
is "$line" in-flight "a session has an open transaction"
run "$PGSNAP" snapshot save "$u" saved
is "$rc" 0 "snapshot save CLONE NAME exits 0"
is "$err" "" "quietly"
echo "commit; select count(*) from t;" >&"${PSQL[1]}"
read -r -t 10 line <&"${PSQL[0]}"
is "$line" 3 "the open session survived the save and commits"
exec {PSQL[1]}>&-
is "$(clone_pid "$u")" "$pid" "the clone kept its server process"
us=$("$PGSNAP" new -s saved)
is "$(q "$us" 'select x from by_hand')" kept "a clone of the saved snapshot has the change"
is "$(q "$us" 'select string_agg(v::text, $$,$$ order by v) from t')" 1,2 \
	"committed rows only (the open transaction is not in it)"
is "$(pg_controldata "$PGSNAP_HOME/snapshots/saved/data" | sed -n 's/^Database cluster state: *//p')" \
	"shut down" "the saved golden is cleanly shut down"
run "$PGSNAP" snapshot save "$u" saved
is "$rc" 1 "saving over an existing snapshot is refused"
run "$PGSNAP" snapshot save "$u" saved --force
is "$rc" 0 "unless --force"
run "$PGSNAP" snapshot save nosuchclone x
like "$err" "no clone 'nosuchclone'" "save of an unknown clone says so"

# export / import
run "$PGSNAP" snapshot export saved "$TEST_TMP/saved.tar.gz"
is "$rc" 0 "export exits 0"
like "$(tar -tzf "$TEST_TMP/saved.tar.gz" | head -1)" '^meta$' "the archive starts with its meta"
like "$(tar -xzOf "$TEST_TMP/saved.tar.gz" meta)" "pg_major=$(pg_config --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')" \
	"which holds the PostgreSQL major"
ls "$TEST_TMP"/saved.tar.gz.tmp-* >/dev/null 2>&1
isnt "$?" 0 "no temporary file is left"
key=$(sed -n 's/^key=//p' "$PGSNAP_HOME/snapshots/saved/meta")
mkdir -p "$TEST_TMP/other"
run env PGSNAP_HOME="$TEST_TMP/other" "$PGSNAP" snapshot import "$TEST_TMP/saved.tar.gz"
is "$rc.$out" "0.saved" "import into another store installs it under its name"
is "$(sed -n 's/^key=//p' "$TEST_TMP/other/snapshots/saved/meta")" "$key" "with its key"
ui=$(PGSNAP_HOME="$TEST_TMP/other" "$PGSNAP" new -s saved)
is "$(q "$ui" 'select x from by_hand')" kept "a clone of the imported snapshot has the data"
run env PGSNAP_HOME="$TEST_TMP/other" "$PGSNAP" snapshot import "$TEST_TMP/saved.tar.gz"
like "$err" "up to date" "importing the same key again does nothing"

# An archive from another major or machine is refused.
mkdir -p fake && tar -xzf saved.tar.gz -C fake
sed -i 's/^pg_major=.*/pg_major=11/' fake/meta && echo 11 >fake/data/PG_VERSION
tar -cf major.tar -C fake meta data
run "$PGSNAP" snapshot import major.tar m11
is "$rc" 1 "an archive of another major is refused"
like "$err" "made by PostgreSQL 11, this is PostgreSQL" "with a clear error"
ok "$([ ! -e "$PGSNAP_HOME/snapshots/m11" ]; echo $?)" "and nothing is installed"
tar -xzf saved.tar.gz -C fake
sed -i 's/^arch=.*/arch=sparc64/' fake/meta
tar -cf arch.tar -C fake meta data
run "$PGSNAP" snapshot import arch.tar a1
like "$err" "made on sparc64" "an archive of another machine is refused"
is "$(ls -a "$PGSNAP_HOME/snapshots" | grep -c '^\.build-')" 0 "refused imports leave nothing"

# A snapshot made by another major (a faked copy) is refused, not started.
before=$(servers_under "$PGSNAP_HOME/run")
cp -a "$PGSNAP_HOME/snapshots/saved" "$PGSNAP_HOME/snapshots/old"
sed -i 's/^pg_major=.*/pg_major=11/' "$PGSNAP_HOME/snapshots/old/meta"
echo 11 >"$PGSNAP_HOME/snapshots/old/data/PG_VERSION"
run "$PGSNAP" new -s old
is "$rc" 1 "new -s of a snapshot of another major fails"
like "$err" "snapshot 'old' was made by PostgreSQL 11, this is PostgreSQL" "with a clear error"
is "$(servers_under "$PGSNAP_HOME/run")" "$before" "and no server was started for it"
# With its recipe known, --build-if-stale rebuilds it instead.
cp -a "$PGSNAP_HOME/snapshots/base" "$PGSNAP_HOME/snapshots/base11"
sed -i 's/^pg_major=.*/pg_major=11/' "$PGSNAP_HOME/snapshots/base11/meta"
echo 11 >"$PGSNAP_HOME/snapshots/base11/data/PG_VERSION"
run "$PGSNAP" new -s base11
like "$err" "rebuild it with" "without --build-if-stale: refused, saying how to rebuild"
run "$PGSNAP" new -s base11 --build-if-stale
is "$rc" 0 "with --build-if-stale a known recipe is rebuilt"
like "$err" "snapshot 'base11' built" "(it says so)"
is "$(q "$out" 'select count(*) from t')" 1 "and the clone works"

done_testing
