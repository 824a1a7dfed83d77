#!/usr/bin/env bash
# Limits on a clone's life: -w (time, then no client), -k (keep the data),
# --owner (dies with a process), enforced by a detached supervisor that
# does not hold the caller's pipe.
. "$(dirname "$0")/tap.sh"

run_dir=$PGSNAP_HOME/run
listed() { "$PGSNAP" ls -q | grep -qx "$1"; }
unlisted() { ! listed "$1"; }
id_of() { echo "$1" | grep -o 'clones%2F[0-9a-f]*' | sed 's/clones%2F//'; }
ms() { date +%s%3N; }

"$PGSNAP" new -w 0 >/dev/null # the snapshot, outside the timings
"$PGSNAP" rm --all

# url=$(pgsnap new) returns at once although a supervisor stays behind.
t0=$(ms)
u=$("$PGSNAP" new -w 3)
t1=$(ms)
id=$(id_of "$u")
sup=$(cat "$run_dir/supervisor.lock")
alive "$sup"; ok $? "new -w starts a supervisor ($sup)"
ok "$([ $((t1 - t0)) -lt 10000 ]; echo $?)" "url=\$(pgsnap new -w 3) returns at once ($((t1 - t0)) ms)"
fds=$(ls -l /proc/"$sup"/fd 2>/dev/null | awk 'NR > 1 { print $NF }' | sort -u | tr '\n' ' ')
is "$fds" "/dev/null $run_dir/supervisor.lock " "the supervisor holds only /dev/null and its lock"
is "$(ps -o tty= -p "$sup" | tr -d " ")" "?" "it has no terminal"
isnt "$(ps -o sid= -p "$sup" | tr -d " ")" "$(ps -o sid= -p $$ | tr -d " ")" "it is in a session of its own"
like "$(ps -o args= -p "$sup")" '__supervise' "it is pgsnap __supervise"

# Never used: goes on time (not before its 3 s, counted from its creation;
# 3 s: new itself may take a second or two on a loaded machine).
created=$(grep "^id=$id	" "$run_dir/registry" | tr '\t' '\n' | sed -n 's/^created_ms=//p')
like "$created" '^[0-9]+$' "the record holds its creation time"
listed "$id"; ok $? "an unused -w 3 clone is there at first"
until_ok 8 unlisted "$id"; ok $? "and goes after its 3 s"
t2=$(ms)
ok "$([ "$t2" -ge $((created + 3000)) ]; echo $?)" "not before its time ($((t2 - created)) ms after creation)"
diag "unused -w 3 clone removed $((t2 - created)) ms after its creation"
ok "$([ ! -e "$run_dir/clones/$id" ]; echo $?)" "with its files"

# A connected client keeps it past its time; it goes once the client leaves.
u=$("$PGSNAP" new -w 3)
id=$(id_of "$u")
pid=$(clone_pid "$u")
psql -X -qAt -d "$u" -c 'select pg_sleep(4.5)' >/dev/null 2>&1 &
client=$!
sleep 4
listed "$id"; ok $? "a -w 3 clone with a connected client survives past 3 s"
wait $client
t_disc=$(ms)
until_ok 5 unlisted "$id"; ok $? "it goes once the client disconnects (timed by make bench)"
t_gone=$(ms)
diag "removed $((t_gone - t_disc)) ms after the client disconnected"
ok "$(! alive "$pid"; echo $?)" "its server is stopped"

# A paused server (snapshot save stops one with SIGSTOP while it copies)
# is in use: it outlives its time until it runs again.
u=$("$PGSNAP" new -w 3)
id=$(id_of "$u")
pid=$(clone_pid "$u")
created=$(grep "^id=$id	" "$run_dir/registry" | tr '\t' '\n' | sed -n 's/^created_ms=//p')
if kill -STOP "$pid" 2>/dev/null && [ $(($(ms) - created)) -lt 3000 ]; then
	until [ $(($(ms) - created)) -ge 4000 ]; do sleep 0.1; done
	"$PGSNAP" ls | grep -q "^$id .* ready "; ok $? "a -w 3 clone whose server is stopped (SIGSTOP) stays ready past its time"
	kill -CONT "$pid"
	until_ok 5 unlisted "$id"; ok $? "and goes once it runs again"
else
	kill -CONT "$pid" 2>/dev/null
	skip "new took 3 s or more here: no time left to stop its server"
	skip "(same)"
fi

# -k: the data directory stays for inspection, no server, shown as kept.
u=$("$PGSNAP" new -w 1 -k)
id=$(id_of "$u")
pid=$(clone_pid "$u")
kept() { "$PGSNAP" ls | grep -q "^$id .* kept "; }
until_ok 6 kept; ok $? "-k: after its time the clone is listed as kept"
ok "$([ -f "$run_dir/clones/$id/data/PG_VERSION" ]; echo $?)" "-k: its data directory is still there"
ok "$(! alive "$pid"; echo $?)" "-k: its server is stopped"
ok "$([ ! -e "$run_dir/clones/$id/data/postmaster.pid" ]; echo $?)" "-k: no stale postmaster.pid"
"$PGSNAP" gc >/dev/null
kept; ok $? "gc leaves a kept clone alone"
run "$PGSNAP" rm "$id"
is "$rc" 0 "rm removes a kept clone"
ok "$([ ! -e "$run_dir/clones/$id" ]; echo $?)" "and its directory"

# --owner: the clone dies with that process.
sleep 300 &
owner=$!
u=$("$PGSNAP" new -w 0 --owner $owner)
id=$(id_of "$u")
is "$(q "$u" 'select 1')" 1 "a clone with --owner works"
kill $owner; wait $owner 2>/dev/null
until_ok 5 unlisted "$id"; ok $? "--owner: the clone goes when its owner ends"
run "$PGSNAP" new --owner 4000000
is "$rc" 1 "--owner of no process fails"
like "$err" "no such process" "saying so"

# -w 0: never stopped; the supervisor leaves when nothing is left to watch.
u=$("$PGSNAP" new -w 0)
id=$(id_of "$u")
sup=$(cat "$run_dir/supervisor.lock" 2>/dev/null)
[ -n "$sup" ] && until_ok 5 eval '! alive "$sup"'
ok "$([ -z "$sup" ] || ! alive "$sup"; echo $?)" "the supervisor exits when only -w 0 clones are left"
sleep 1
listed "$id"; ok $? "a -w 0 clone stays"
"$PGSNAP" rm --all
done_testing
