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
q "$u" 'create table junk (x int)' >/dev/null 2>&1
run "$PGSNAP" gc
is "$rc" 0 "gc exits 0"
is "$(state_of "$id")" ready "gc finishes a reset nobody takes over: the clone stays"
is "$(q "$u" 'select count(*) from items')" 2 "and works, the snapshot's data"
# A reset asked for while another runs joins it.
PGSNAP_TEST_PAUSE=reset "$PGSNAP" reset "$u" >/dev/null 2>&1 &
rp=$!
until_ok 30 stopped "$rp"
"$PGSNAP" reset "$u" >"$TEST_TMP/j.out" 2>"$TEST_TMP/j.err" &
jp=$!
sleep 0.2
ok "$(alive "$jp" && echo 0 || echo 1)" "a second reset waits for the one under way"
kill -CONT "$rp"; wait "$rp"
is "$?" 0 "the first finishes"
wait "$jp"
is "$?" 0 "the second returns when it has"
[ -s "$TEST_TMP/j.err" ] && diag "$(cat "$TEST_TMP/j.err")"
is "$(q "$u" 'select count(*) from items')" 2 "the clone works"
# Its owner ended meanwhile: gc removes it instead.
u0=$u
sleep 30 & op=$!
u=$("$PGSNAP" new -s app -w 0 --owner "$op")
oid=$(id_of "$u")
PGSNAP_TEST_PAUSE=reset "$PGSNAP" reset "$u" >/dev/null 2>&1 &
rp=$!
until_ok 30 stopped "$rp"
kill -9 "$rp" "$op"; wait "$rp" "$op" 2>/dev/null
run "$PGSNAP" gc
like "$out" "removed clone $oid: its owner process ended" "an interrupted reset whose owner ended: removed"
unset PGSNAP_SERVICE
# The service finishes one too (the reset of a client whose service died).
"$PGSNAP" service start >/dev/null
PGSNAP_TEST_PAUSE=reset "$PGSNAP" reset "$id" >/dev/null 2>&1 &
rp=$!
until_ok 30 stopped "$rp"
kill -9 "$rp"; wait "$rp" 2>/dev/null
until_ok 30 eval '[ "$(state_of "$id")" = ready ]'
ok $? "the service finishes a reset whose process died"
until_ok 10 q "$u0" 'select 1'
is "$(q "$u0" 'select count(*) from items')" 2 "and the clone works"
"$PGSNAP" rm --all

# keep: a failed test's clone outlives its owner and its time limit.
sleep 30 & op=$!
u=$("$PGSNAP" new -s app -w 1 --owner "$op")
kid=$(id_of "$u")
run "$PGSNAP" keep "$kid"
is "$rc" 0 "keep exits 0"
is "$out" "$u" "and prints the clone's URL"
is "$(record_field "$kid" owner)" 0 "its owner is dropped"
is "$(record_field "$kid" timeout_s)" 0 "and its time limit"
kill "$op"; wait "$op" 2>/dev/null
sleep 1.5
"$PGSNAP" gc >/dev/null
is "$(state_of "$kid")" ready "its owner gone and idle past -w, it stays"
is "$(q "$u" 'select count(*) from items')" 2 "and works"
"$PGSNAP" rm "$kid"
run "$PGSNAP" keep nosuchclone
is "$rc" 1 "keep of an unknown clone: exit 1"
like "$err" "no clone 'nosuchclone'" "naming it"

# With the pool on, a socket clone's reset takes a pooled server (its
# directory renamed to the clone's): the same URL, the snapshot's data,
# sessions ended, the pool refilled, nothing left behind.
pooled() { "$PGSNAP" ls -a | awk '$3 == "pooled" { print $4 }'; }
export PGSNAP_POOL=2
u=$("$PGSNAP" new -s app -w 0)
id=$(id_of "$u")
until_ok 60 eval '[ "$(pooled | wc -l)" = 2 ]'
before=$(pooled)
old_pid=$(clone_pid "$u")
is "$(sed -n 5p "$PGSNAP_HOME/run/clones/$id/data/postmaster.pid")" "../sock" "pool: a server is told its socket directory relative to its data"
q "$u" 'create table junk (x int)' >/dev/null
# A session open across the reset (an application's pooled connection):
# what it sends after the reset has returned gets an error, never the
# old data.
rm -f "$TEST_TMP/app"; mkfifo "$TEST_TMP/app"
psql -X -At -d "$u" <"$TEST_TMP/app" >"$TEST_TMP/app.out" 2>&1 &
app=$!
exec 8>"$TEST_TMP/app"
echo "select 'before', count(*) from junk;" >&8
until_ok 10 grep -q '^before|0$' "$TEST_TMP/app.out"
run "$PGSNAP" reset "$u"
is "$rc" 0 "pool: reset exits 0"
echo "select 'after', count(*) from junk;" >&8
exec 8>&-
wait "$app" 2>/dev/null
ok "$(grep -q '^after' "$TEST_TMP/app.out"; echo $((!$?)))" "pool: a session open across the reset answers nothing after it"
like "$(cat "$TEST_TMP/app.out")" "terminating connection|closed the connection" "pool: it is told its connection ended"
ok "$(grep -qx "$(clone_pid "$u")" <<<"$before"; echo $?)" "pool: the clone is served by a server that was pooled"
ok "$(until_ok 30 eval '! kill -0 '"$old_pid"' 2>/dev/null'; echo $?)" "pool: its old server stops (after the answer)"
is "$(dump "$u")" "$pristine" "pool: the same URL holds the snapshot's data"
is "$(state_of "$id")" ready "pool: ready"
ok "$(until_ok 60 eval '[ "$(pooled | wc -l)" = 2 ]'; echo $?)" "pool: the pool refills"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 3 "pool: one directory per server (the clone, 2 pooled)"
# Killed mid-swap (the pooled server moved in, the records not yet
# written): the service ends the taken server and finishes the reset.
PGSNAP_SERVICE=0 PGSNAP_TEST_PAUSE=reset-swap "$PGSNAP" reset "$u" >/dev/null 2>&1 &
rp=$!
until_ok 30 stopped "$rp"
kill -9 "$rp"; wait "$rp" 2>/dev/null
ok "$(until_ok 30 eval '[ "$(state_of "$id")" = ready ] && q "$u" "select 1"'; echo $?)" \
	"pool: a reset killed mid-swap is finished by the service"
is "$(dump "$u")" "$pristine" "pool: with the snapshot's data"
"$PGSNAP" rm --all
"$PGSNAP" service stop
ok "$(until_ok 30 eval '[ -z "$(ls "$PGSNAP_HOME/run/clones")" ]'; echo $?)" "pool: nothing left in the store"
is "$(servers_under "$PGSNAP_HOME")" 0 "pool: no server left"
export PGSNAP_POOL=0

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
