#!/usr/bin/env bash
# Limits on a clone's life: -w (ends once no client has been on for that
# long), -k (keep the data), --owner (dies with a process), enforced by the
# store's service, a detached process that does not hold the caller's pipe
# and comes back when killed.
. "$(dirname "$0")/tap.sh"

run_dir=$PGSNAP_HOME/run
listed() { "$PGSNAP" ls -q | grep -qx "$1"; }
unlisted() { ! listed "$1"; }
id_of() { echo "$1" | grep -o 'clones%2F[0-9a-f]*' | sed 's/clones%2F//'; }

"$PGSNAP" new -w 0 >/dev/null # the snapshot, outside the timings
"$PGSNAP" rm --all

# url=$(pgsnap new) returns at once although the service stays behind.
t0=$(ms)
u=$("$PGSNAP" new -w 3)
t1=$(ms)
id=$(id_of "$u")
sup=$(service_pids)
alive "$sup"; ok $? "new -w starts the store's service ($sup)"
ok "$([ $((t1 - t0)) -lt 10000 ]; echo $?)" "url=\$(pgsnap new -w 3) returns at once ($((t1 - t0)) ms)"
fds=$(ls -l /proc/"$sup"/fd 2>/dev/null | awk 'NR > 1 { print $NF }' | grep -v '^socket:\|^anon_inode:\|^pipe:' | sort -u | tr '\n' ' ')
is "$fds" "/dev/null $run_dir/service.lock " "the service holds only /dev/null, its lock, sockets and its sentinel's pipe"
is "$(cat /proc/"$(cat /proc/"$sup"/task/*/children | tr ' ' '\n' | grep . | head -1)"/comm 2>/dev/null)" pgsnap-sentinel \
	"it has a sentinel child"
is "$(ps -o tty= -p "$sup" | tr -d " ")" "?" "it has no terminal"
isnt "$(ps -o sid= -p "$sup" | tr -d " ")" "$(ps -o sid= -p $$ | tr -d " ")" "it is in a session of its own"
is "$(cat /proc/"$sup"/comm)" pgsnap-service "it is named pgsnap-service"

# Never used: goes on time (not before its 3 s, counted from its creation;
# 3 s: new itself may take a second or two on a loaded machine).
created=$(record_field "$id" created_ms)
like "$created" '^[0-9]+$' "the record holds its creation time"
listed "$id"; ok $? "an unused -w 3 clone is there at first"
until_ok 8 unlisted "$id"; ok $? "and goes after its 3 s"
t2=$(ms)
ok "$([ "$t2" -ge $((created + 3000)) ]; echo $?)" "not before its time ($((t2 - created)) ms after creation)"
diag "unused -w 3 clone removed $((t2 - created)) ms after its creation"
until_ok 5 test ! -e "$run_dir/clones/$id"; ok $? "with its files (ls stops listing it once its end begins)"

# A connected client keeps it past its time; it goes W seconds after the
# client leaves, not at once.  (-w 4: under the sanitizers on a loaded
# machine, new and a psql connecting may take more than 2 s, and a clone
# nobody connected to in its first W seconds rightly goes.)
u=$("$PGSNAP" new -w 4)
id=$(id_of "$u")
pid=$(clone_pid "$u")
created=$(record_field "$id" created_ms)
hold_session "$u"
past $((created + 4500))
"$PGSNAP" gc >/dev/null
listed "$id"; ok $? "a -w 4 clone with a connected client is kept past 4 s (gc too)"
release_session
t_disc=$(ms)
until_ok 15 unlisted "$id"; ok $? "it goes once the client has been gone for 4 s"
t_gone=$(ms)
ok "$([ $((t_gone - t_disc)) -ge 3000 ]; echo $?)" "not at once: $((t_gone - t_disc)) ms after the client left"
diag "removed $((t_gone - t_disc)) ms after the client disconnected"
ok "$(! alive "$pid"; echo $?)" "its server is stopped"

# Idle means idle: a suite that connects every second, for much longer than
# -w, keeps its server between two of its connections.  (-w 4 against a
# second between connections: a loaded machine under the sanitizers
# stretches a "second" of this loop past 2 s.)
u=$("$PGSNAP" new -w 4)
id=$(id_of "$u")
created=$(record_field "$id" created_ms)
lost=0
while [ "$(ms)" -lt $((created + 10000)) ]; do
	[ "$(q "$u" 'select 1' 2>/dev/null)" = 1 ] || lost=$((lost + 1))
	past $(( $(ms) + 900 ))
done
is "$lost" 0 "a client connecting every second for 10 s never finds a -w 4 clone gone"
listed "$id"; ok $? "and it is still listed"
until_ok 20 unlisted "$id"; ok $? "once the suite stops, it goes"

# A paused server (snapshot save stops one with SIGSTOP while it copies)
# is in use: it outlives its time until it runs again.
u=$("$PGSNAP" new -w 2)
id=$(id_of "$u")
pid=$(clone_pid "$u")
created=$(record_field "$id" created_ms)
kill -STOP "$pid"
past $((created + 2500))
"$PGSNAP" gc >/dev/null
"$PGSNAP" ls | grep -q "^$id .* ready "; ok $? "a -w 2 clone whose server is stopped (SIGSTOP) stays ready past its time"
kill -CONT "$pid"
until_ok 8 unlisted "$id"; ok $? "and goes once it runs again"

# -k: the data directory stays for inspection, no server, shown as kept.
u=$("$PGSNAP" new -w 1 -k)
id=$(id_of "$u")
pid=$(clone_pid "$u")
kept() { "$PGSNAP" ls | grep -q "^$id .* kept "; }
until_ok 8 kept; ok $? "-k: after its time the clone is listed as kept"
ok "$([ -f "$run_dir/clones/$id/data/PG_VERSION" ]; echo $?)" "-k: its data directory is still there"
ok "$(! alive "$pid"; echo $?)" "-k: its server is stopped"
ok "$([ ! -e "$run_dir/clones/$id/data/postmaster.pid" ]; echo $?)" "-k: no stale postmaster.pid"
"$PGSNAP" gc >/dev/null
kept; ok $? "gc leaves a kept clone alone"
run "$PGSNAP" rm "$id"
is "$rc" 0 "rm removes a kept clone"
ok "$([ ! -e "$run_dir/clones/$id" ]; echo $?)" "and its directory"

# --owner: the clone dies with that process.
sh -c 'exec tail -f /dev/null' &
owner=$!
u=$("$PGSNAP" new -w 0 --owner $owner)
id=$(id_of "$u")
is "$(q "$u" 'select 1')" 1 "a clone with --owner works"
kill $owner; wait $owner 2>/dev/null
until_ok 5 unlisted "$id"; ok $? "--owner: the clone goes when its owner ends"
run "$PGSNAP" new --owner 4000000
is "$rc" 1 "--owner of no process fails"
like "$err" "no such process" "saying so"

# Time limits hold after the service is killed: it comes back by itself.
u=$("$PGSNAP" new -w 2)
id=$(id_of "$u")
sup=$(service_pids)
kill -9 "$sup"
other() { new_sup=$(service_pids); [ -n "$new_sup" ] && [ "$new_sup" != "$sup" ]; }
until_ok 5 other; ok $? "killed (kill -9), the service is replaced at once by its sentinel ($new_sup)"
until_ok 10 unlisted "$id"; ok $? "and a -w 2 clone still goes on time"

# -w 0: never stopped; the service leaves when nothing is left to watch.
u=$("$PGSNAP" new -w 0)
id=$(id_of "$u")
until_ok 30 eval '[ -z "$(service_pids)" ]'
ok $? "the service exits when only -w 0 clones are left"
listed "$id"; ok $? "a -w 0 clone stays"
"$PGSNAP" rm --all
done_testing
