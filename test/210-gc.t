#!/usr/bin/env bash
# gc and crashes: kill -9 of `pgsnap new` at several points, of a server,
# of the supervisor; half-made directories, records with no directory,
# trash, a reboot.  After gc: a consistent registry, no process, no file.
. "$(dirname "$0")/tap.sh"

run_dir=$PGSNAP_HOME/run
gone() { ! alive "$1"; }
n_clones() { ls "$run_dir/clones" | wc -l; }
# Every record has its directory and every directory its record.
consistent() {
	diff <("$PGSNAP" ls -q | sort) <(ls "$run_dir/clones" | sort) >/dev/null
}
no_procs_of() { [ "$(pgrep -c -f -- "$1")" = 0 ]; }

"$PGSNAP" new -w 0 >/dev/null # build the snapshot outside the timings

# kill -9 of new at named points (PGSNAP_TEST_PAUSE stops it there).
for pt in clone server printed; do
	PGSNAP_TEST_PAUSE=$pt "$PGSNAP" new -w 0 >"$TEST_TMP/url.$pt" 2>&1 &
	p=$!
	until_ok 30 stopped $p; ok $? "new reached '$pt'"
	id=$(records | awk -F'\t' -v c="creator=$p" '$0 ~ c { sub("id=", "", $1); print $1 }')
	[ "$pt" = printed ] && id=$(grep -o 'clones%2F[0-9a-f]*' "$TEST_TMP/url.$pt" | sed 's/clones%2F//')
	like "$id" '^[0-9a-f]{8}$' "the clone being made at '$pt' is recorded ($id)"
	kill -9 $p; wait $p 2>/dev/null
	case $pt in
	clone) run "$PGSNAP" gc --dry-run
		like "$out" "would remove clone $id: its creator died" "gc --dry-run names the half-made clone"
		ok "$([ -d "$run_dir/clones/$id" ]; echo $?)" "and removes nothing" ;;
	server) ok "$(! no_procs_of "postgres -D $run_dir/clones/$id"; echo $?)" \
			"a server runs for the clone being started ('$pt')" ;;
	esac
	run "$PGSNAP" gc
	is "$rc" 0 "gc after kill -9 at '$pt' exits 0"
	if [ $pt = printed ]; then
		unlike "$out" "$id" "the clone whose URL was printed is kept"
		is "$(q "$(cat "$TEST_TMP/url.$pt")" 'select 1')" 1 "and works"
		"$PGSNAP" rm "$id"
	else
		like "$out" "removed clone $id: its creator died" "gc names what it removed"
	fi
	ok "$([ ! -e "$run_dir/clones/$id" ]; echo $?)" "no directory left ($pt)"
	until_ok 10 no_procs_of "postgres -D $run_dir/clones/$id"
	ok $? "no process left ($pt)"
	consistent; ok $? "registry and directories agree ($pt)"
done

# A server killed with SIGKILL: gc removes its clone, files and segment.
u=$("$PGSNAP" new -w 0)
id=$(echo "$u" | grep -o 'clones%2F[0-9a-f]*' | sed 's/clones%2F//')
pid=$(clone_pid "$u")
shmid=$(sed -n 7p "$run_dir/clones/$id/data/postmaster.pid" | awk '{print $2}')
q "$u" 'select count(*) from pg_class' >/dev/null # stats: dynamic shared memory
# Its dynamic shared memory is in files of its data directory, which go
# with it; segments in /dev/shm would outlive a killed server until reboot.
kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null)
is "$(for k in $pid $kids; do cat /proc/"$k"/maps 2>/dev/null; done | grep -c '/dev/shm/PostgreSQL\.')" 0 \
	"the server maps no /dev/shm/PostgreSQL.* segment"
like "$(cat /proc/"$pid"/maps)" "pg_dynshmem/mmap\." "it maps its dynamic shared memory from pg_dynshmem"
kill -9 "$pid"
until_ok 10 no_procs_of "postgres -D $run_dir/clones/$id"
run "$PGSNAP" gc --dry-run
like "$out" "would remove clone $id: its server died" "gc --dry-run names the dead server's clone"
run "$PGSNAP" gc
like "$out" "removed clone $id: its server died" "gc removes it"
ok "$([ ! -e "$run_dir/clones/$id" ]; echo $?)" "its directory is gone"
if [ -n "$shmid" ] && [ "$shmid" != 0 ]; then
	ipcs -m | awk '{print $2}' | grep -qx "$shmid"
	isnt "$?" 0 "its System V shared memory segment is gone"
else
	skip "the server used no System V segment"
fi
consistent; ok $? "registry and directories agree (dead server)"

# Half-made directory with no record, a record with no directory, trash.
# (copy: the directory of an overlay clone cannot go while it is mounted)
u=$("$PGSNAP" new -w 0 -m copy)
id=$(echo "$u" | grep -o 'clones%2F[0-9a-f]*' | sed 's/clones%2F//')
pid=$(clone_pid "$u")
rm -rf "$run_dir/clones/$id"
mkdir -p "$run_dir/clones/0badc0de/data" "$run_dir/trash/leftover/x"
run "$PGSNAP" gc --dry-run
like "$out" "would remove clone 0badc0de: a clone directory with no record" "dry run: the directory with no record"
like "$out" "would remove clone $id: its directory is gone" "dry run: the record with no directory"
like "$out" "would remove .*trash/leftover" "dry run: the trash"
ok "$([ -d "$run_dir/clones/0badc0de" ] && [ -d "$run_dir/trash/leftover" ]; echo $?)" "the dry run removed nothing"
run "$PGSNAP" gc
is "$rc" 0 "gc exits 0"
ok "$([ ! -e "$run_dir/clones/0badc0de" ]; echo $?)" "the half-made directory is gone"
is "$("$PGSNAP" ls -q | grep -c "$id")" 0 "the record with no directory is gone"
until_ok 10 gone "$pid"; ok $? "and its server was stopped"
is "$(ls "$run_dir/trash" | wc -l)" 0 "the trash is empty"
consistent; ok $? "registry and directories agree"

# The service killed with SIGKILL: the next call starts another one, and
# the expired clone still goes.
"$PGSNAP" new -w 1 >/dev/null
sup=$(service_pids)
alive "$sup"; ok $? "new -w starts the service ($sup)"
kill -9 "$sup"
until_ok 5 gone "$sup"
"$PGSNAP" new -w 30 >/dev/null
new_sup() { sup2=$(service_pids); [ -n "$sup2" ] && [ "$sup2" != "$sup" ] && alive "$sup2"; }
until_ok 5 new_sup; ok $? "the next new starts a new service ($sup2)"
until_ok 10 eval '[ "$("$PGSNAP" ls | grep -c ready)" = 2 ]'
ok $? "the -w 1 clone went away after the service was replaced"

# A reboot: records of another boot are removed without signalling their
# pids (which may be anyone's now).
"$PGSNAP" rm --all
# Nothing left to watch: the service leaves (else it would remove the
# clone below as "server died" before we fake the reboot).
gone "$sup2"; ok $? "rm --all returns once the service has left (nothing to watch)"
u=$("$PGSNAP" new -w 0)
id=$(echo "$u" | grep -o 'clones%2F[0-9a-f]*' | sed 's/clones%2F//')
pid=$(clone_pid "$u")
kill -9 "$pid"
until_ok 10 no_procs_of "postgres -D $run_dir/clones/$id"
sed -i "s/boot_id=[^\t]*/boot_id=00000000-0000-0000-0000-000000000000/" "$run_dir/records/$id"
run "$PGSNAP" gc
like "$out" "removed clone $id: made before the last reboot" "gc removes clones of another boot"
is "$(n_clones)" 0 "no directory left"
is "$("$PGSNAP" ls)" "" "no record left"
is "$(servers_under "$run_dir")" 0 "no server left"
is "$(ls "$run_dir/trash" | wc -l)" 0 "nothing in the trash"

run "$PGSNAP" gc --help
like "$out" "Usage: pgsnap gc" "gc --help"
run "$PGSNAP" gc --bogus
is "$rc" 2 "gc --bogus: exit 2"
done_testing
