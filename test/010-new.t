#!/usr/bin/env bash
# pgsnap new / ls / rm end to end, against real servers.
. "$(dirname "$0")/tap.sh"

run "$PGSNAP" new
is "$rc" 0 "new exits 0"
is "$(printf '%s\n' "$out" | wc -l)" 1 "new prints exactly one line"
like "$out" '^postgresql://' "the line is a postgresql:// URL"
u1=$out

is "$(q "$u1" 'select 1')" 1 "select 1 works through the URL"
sock=$(url_sockdir "$u1")
is "$(stat -c %a "$sock")" 700 "socket directory is private (0700)"
pid1=$(clone_pid "$u1")
like "$pid1" '^[0-9]+$' "ls shows the server pid"
if [ "$(id -u)" = 0 ]; then
	is "$(ps -o user= -p "$pid1")" postgres "as root, the server runs as postgres"
	isnt "$(ps -o user= -p "$pid1")" root "the server is not root"
else
	is "$(ps -o uid= -p "$pid1" | tr -d ' ')" "$(id -u)" "the server runs as the caller"
fi
like "$(ps -o args= -p "$pid1")" 'postgres -D' "postgres was started directly, not through pg_ctl"

run "$PGSNAP" new
u2=$out
isnt "$u2" "$u1" "a second clone gets its own URL"
q "$u1" 'create table only_in_one(x int); insert into only_in_one values (42)'
is "$(q "$u1" 'select x from only_in_one')" 42 "a table made in clone 1"
is "$(q "$u2" "select count(*) from pg_class where relname = 'only_in_one'")" 0 \
	"is absent in clone 2 (clones are isolated)"

# -t: TCP on 127.0.0.1, a free port, a password in the URL.
run "$PGSNAP" new -t
is "$rc" 0 "new -t exits 0"
like "$out" '^postgresql://postgres:[^@]+@127\.0\.0\.1:[0-9]+/postgres$' "-t gives a host:port URL"
ut=$out
is "$(q "$ut" "select inet_server_addr()")" 127.0.0.1 "-t: the query went over TCP"
port=${ut##*:}; port=${port%%/*}
is "$(psql -X -qAt -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1' 2>/dev/null)" "" \
	"-t: without the password TCP is refused"

# -o: options reach the server.
run "$PGSNAP" new -o "-c work_mem=77MB -c 'application_name=with space'"
is "$rc" 0 "new -o exits 0"
uo=$out
is "$(q "$uo" 'show work_mem')" 77MB "-o sets a server option"
run "$PGSNAP" new -o "-c no_such_setting=1"
is "$rc" 1 "a bad server option fails with exit 1"
like "$err" 'no_such_setting' "and the error shows the server's own log line"
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 4 "the failed clone left no directory"

# ls
run "$PGSNAP" ls
is "$(printf '%s\n' "$out" | grep -c '^[0-9a-f]\{8\} ')" 4 "ls lists the 4 live clones"

# rm by URL: no process, no file.
run "$PGSNAP" rm "$u1"
is "$rc" 0 "rm URL exits 0"
alive "$pid1"; isnt "$?" 0 "rm stopped the server"
is "$(servers_under "$PGSNAP_HOME/run")" 3 "the 3 other servers remain"
ok "$([ ! -e "$sock" ]; echo $?)" "rm removed the clone's files"
run "$PGSNAP" rm "$u1"
is "$rc" 1 "rm of a removed clone fails"
like "$err" "no clone" "saying there is no such clone"

id2=$("$PGSNAP" ls -q | head -1)
run "$PGSNAP" rm "$id2"
is "$rc" 0 "rm ID works"

run "$PGSNAP" rm --all
is "$rc" 0 "rm --all exits 0"
is "$("$PGSNAP" ls)" "" "ls is empty after rm --all"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 0 "no clone directory is left"
wait_for 20 dir_empty "$PGSNAP_HOME/run/trash"
is "$(ls "$PGSNAP_HOME/run/trash" | wc -l)" 0 "nothing is left in the trash (deleted in the background)"
is "$(servers_under "$PGSNAP_HOME/run")" 0 "no server process is left"

done_testing
