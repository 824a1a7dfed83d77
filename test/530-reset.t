#!/usr/bin/env bash
# pgsnap reset: the same URL (port, socket, password), the data as the
# snapshot has it (pg_dump of both compared), open sessions ended, limits
# carried over; a database of a shared server replaced by a fresh one; a
# reset cut short (its server killed, its process killed) is one clear
# error, and a second reset or gc recovers; pgsnap logs.
. "$(dirname "$0")/tap.sh"

export PGSNAP_POOL=0
id_of() { "$PGSNAP" ls -a | awk -v u="$1" '$NF == u { print $1 }'; }
# (pg_dump's \restrict lines carry a random key: not data)
dump() {
	{ pg_dump --no-owner -s -d "$1"; pg_dump -a -d "$1"; } 2>/dev/null |
		grep -v '^--\|^\\restrict \|^\\unrestrict '
}
state_of() { "$PGSNAP" ls -a | awk -v i="$1" '$1 == i { print $3 }'; }

# A snapshot with a table, to see the data come back.
cat >"$TEST_TMP/schema.sql" <<'SQL'
create table items (id int primary key, name text);
insert into items values (1, 'one'), (2, 'two');
SQL
run "$PGSNAP" snapshot build app -q -f "$TEST_TMP/schema.sql"
is "$rc" 0 "a snapshot with a table"
pristine=$(dump "$(PGSNAP_POOL=0 "$PGSNAP" new -s app -w 0)")
"$PGSNAP" rm --all

for kind in socket tcp; do
	opt=; [ $kind = tcp ] && opt=-t
	run "$PGSNAP" new -s app $opt -w 30
	u=$out
	id=$(id_of "$u")
	pid=$(clone_pid "$u")
	q "$u" "insert into items values (3, 'three'); create table junk (x int); update items set name = 'x'" >/dev/null
	isnt "$(dump "$u")" "$pristine" "$kind: the test changed the data"
	hold_session "$u"
	run "$PGSNAP" reset "$u"
	is "$rc" 0 "$kind: reset exits 0"
	is "$out$err" "" "$kind: and prints nothing"
	release_session
	is "$(dump "$u")" "$pristine" "$kind: the same URL now holds the snapshot's data (pg_dump compared)"
	isnt "$(clone_pid "$u")" "$pid" "$kind: served by a new server"
	ok "$(! alive "$pid"; echo $?)" "$kind: the old one is gone"
	is "$(record_field "$id" timeout_s)" 30 "$kind: its -w carried over"
	is "$(state_of "$id")" ready "$kind: ready again"
done
is "$(q "$u" 'select 1')" 1 "the TCP clone answers at its old URL, password and all"

# Sessions: ended, with the server's own reason.
u=$("$PGSNAP" new -s app -w 0)
psql -X -d "$u" -c 'select pg_sleep(60)' >"$TEST_TMP/s.out" 2>"$TEST_TMP/s.err" &
sess=$!
until_ok 10 test "$(q "$u" "select count(*) from pg_stat_activity where state = 'active' and query like '%pg_sleep(60)%'")" = 1
"$PGSNAP" reset "$u"
wait "$sess"
isnt "$?" 0 "a session open during reset is ended"
like "$(cat "$TEST_TMP/s.err")" "terminat" "and is told so: $(head -1 "$TEST_TMP/s.err")"

# --owner carries over: the reset clone still dies with its owner.
sh -c 'exec tail -f /dev/null' &
owner=$!
u=$("$PGSNAP" new -s app -w 0 --owner "$owner")
oid=$(id_of "$u")
"$PGSNAP" reset "$u"
is "$(record_field "$oid" owner)" "$owner" "--owner carried over"
kill "$owner"; wait "$owner" 2>/dev/null
ok "$(wait_for 10 eval '[ -z "$(id_of "$u")" ]'; echo $?)" "and the reset clone ends with its owner"

# A database of a shared server: dropped, and a fresh one under its name.
run "$PGSNAP" new -s app --shared=4
ul=$out
lid=$(id_of "$ul")
q "$ul" "delete from items; create table junk (x int)" >/dev/null
srv_pid=$(clone_pid "$ul")
run "$PGSNAP" reset "$ul"
is "$rc" 0 "reset of a shared server's database exits 0"
is "$(dump "$ul")" "$pristine" "the database under that name is the snapshot's again"
is "$(clone_pid "$ul")" "$srv_pid" "in the same server"
is "$(id_of "$ul")" "$lid" "the lease keeps its id"
sid=$(record_field "$lid" parent)
is "$(record_field "$sid" dbs)" 3 "one spare database of the server was used for it"
u2=$("$PGSNAP" new -s app --shared=4)
u3=$("$PGSNAP" new -s app --shared=4)
is "$(q "$u3" 'select current_database()')" pgsnap_3 "handouts go on with the next database"
"$PGSNAP" reset "$ul"
is "$(dump "$ul")" "$pristine" "with no spare left, a new copy is made"
"$PGSNAP" rm --all

# Killed mid-reset: its server (one clear error; a second reset recovers),
# then the reset itself (a second reset takes over; gc finishes one nobody
# takes over).
u=$("$PGSNAP" new -s app -t -w 0)
id=$(id_of "$u")
PGSNAP_TEST_PAUSE=reset "$PGSNAP" reset "$u" >"$TEST_TMP/r.out" 2>"$TEST_TMP/r.err" &
rp=$!
until_ok 30 stopped "$rp"
np=$(head -1 "$PGSNAP_HOME/run/clones/$id/data/postmaster.pid")
kill -9 "$np"
until_ok 10 eval '! alive '"$np"
kill -CONT "$rp"
wait "$rp"
is "$?" 1 "a reset whose new server is killed fails (exit 1)"
is "$(wc -l <"$TEST_TMP/r.err")" 1 "with one line"
like "$(cat "$TEST_TMP/r.err")" "died during its reset" "saying what happened"
run "$PGSNAP" reset "$u"
is "$rc" 0 "a second reset recovers it"
[ "$rc" = 0 ] || diag "$err"
is "$(dump "$u")" "$pristine" "same URL, the snapshot's data"
# (No service here: it would finish the interrupted reset by itself first.)
"$PGSNAP" service stop
export PGSNAP_SERVICE=0
PGSNAP_TEST_PAUSE=reset "$PGSNAP" reset "$u" >/dev/null 2>&1 &
rp=$!
until_ok 30 stopped "$rp"
kill -9 "$rp"; wait "$rp" 2>/dev/null
is "$(state_of "$id")" resetting "a reset killed itself leaves the clone resetting"
run "$PGSNAP" reset "$u"
is "$rc" 0 "another reset takes it over"
[ "$rc" = 0 ] || diag "$err"
is "$(q "$u" 'select count(*) from items')" 2 "and it works"
PGSNAP_TEST_PAUSE=reset "$PGSNAP" reset "$u" >/dev/null 2>&1 &
rp=$!
until_ok 30 stopped "$rp"
kill -9 "$rp"; wait "$rp" 2>/dev/null
run "$PGSNAP" gc
like "$out" "removed clone $id: its reset was interrupted" "gc removes one nobody takes over"
unset PGSNAP_SERVICE

# Bad input.
run "$PGSNAP" reset nosuchclone
is "$rc" 1 "reset of an unknown clone: exit 1"
like "$err" "no clone 'nosuchclone'" "naming it"
run "$PGSNAP" reset
is "$rc" 2 "reset without a clone: exit 2"

# logs: the server's log, by id or URL; -p its path; of a kept clone too.
u=$("$PGSNAP" new -s app -w 1 -k)
id=$(id_of "$u")
q "$u" 'select 1' >/dev/null
run "$PGSNAP" logs "$u"
is "$rc" 0 "logs exits 0"
like "$out" "database system is ready to accept connections" "and prints the server's log"
run "$PGSNAP" logs -p "$id"
is "$out" "$PGSNAP_HOME/run/clones/$id/log" "logs -p prints its path"
until_ok 10 eval '[ "$(state_of "$id")" = kept ]'
run "$PGSNAP" logs "$id"
like "$out" "shutting down|shut down" "a kept clone's log, its server gone"
"$PGSNAP" rm "$id"
run "$PGSNAP" logs "$id"
is "$rc" 1 "logs of a removed clone: exit 1"
u=$("$PGSNAP" new -s app -w 0)
id=$(id_of "$u")
"$PGSNAP" logs -f "$id" >"$TEST_TMP/follow" &
fp=$!
until_ok 10 grep -q 'ready to accept' "$TEST_TMP/follow"
q "$u" 'select 1' >/dev/null
until_ok 10 grep -q 'disconnection' "$TEST_TMP/follow"; ok $? "logs -f shows what is added"
"$PGSNAP" rm "$id"
ok "$(wait_for 10 eval '! alive '"$fp"; echo $?)" "and stops when the clone goes"
"$PGSNAP" rm --all
done_testing
