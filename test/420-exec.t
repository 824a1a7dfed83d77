#!/usr/bin/env bash
# pgsnap exec: environment, exit status, signals, cleanup, --keep-on-failure.
. "$(dirname "$0")/tap.sh"

PY=/usr/bin/python3
mkdir -p "$PGSNAP_HOME"
nothing_left() { # nothing_left DESCRIPTION: no clone, no server, no file
	is "$("$PGSNAP" ls -q | wc -l) $(servers_under "$PGSNAP_HOME/run") $(ls "$PGSNAP_HOME/run/clones" | wc -l)" \
		"0 0 0" "$1: no clone, no server, no clone directory left"
}

run "$PGSNAP" exec -- sh -c 'psql -X -qAt -c "select 40 + 2" && psql -X -qAt -d "$DATABASE_URL" -c "select current_user"'
is "$rc" 0 "exec runs the command: exit 0"
is "$out" $'42\npostgres' "PGHOST/PGPORT/... and DATABASE_URL reach the clone"
is "$err" "" "nothing on stderr"
nothing_left "after success"

run env PGHOSTADDR=192.0.2.1 PGPASSWORD=stale PGSERVICE=nope PGHOST=/nowhere \
	"$PGSNAP" exec -- sh -c 'echo "${PGHOSTADDR-unset} ${PGPASSWORD-unset} ${PGSERVICE-unset}"; psql -X -qAt -c "select 1"'
is "$out" $'unset unset unset\n1' "stale PGHOSTADDR, PGPASSWORD, PGSERVICE are removed, PGHOST replaced"

run "$PGSNAP" exec -t -- sh -c 'psql -X -qAt -c "select inet_server_addr()"; echo "${PGPASSWORD:+pw} ${JDBC_DATABASE_URL%%:*}"'
is "$out" $'127.0.0.1\npw jdbc' "exec -t: TCP, PGPASSWORD and JDBC_DATABASE_URL"

run "$PGSNAP" exec psql -X -qAt -c 'select 5'
is "$out" 5 "without '--' the command's own options are not ours"

run "$PGSNAP" exec -- sh -c 'psql -X -qc "create table t()"; exit 7'
is "$rc" 7 "the command's exit status is pgsnap's"
nothing_left "after failure"

run "$PGSNAP" exec -- sh -c 'kill -TERM $$'
is "$rc" 143 "a command killed by SIGTERM: exit 128+15"
nothing_left "after a killed command"

run "$PGSNAP" exec -- /no/such/program
is "$rc" 127 "a missing command: exit 127"
is "$err" "pgsnap exec: cannot run '/no/such/program': No such file or directory" "one line naming it"
nothing_left "after a missing command"

run "$PGSNAP" exec
is "$rc" 2 "no command: exit 2"
like "$err" "name the COMMAND" "saying so"
run "$PGSNAP" exec --json -- true
is "$rc" 2 "--json is new's, not exec's: exit 2"
run "$PGSNAP" exec -w x -- true
is "$rc" 2 "a bad -w: exit 2 (new's option parsing)"
run "$PGSNAP" new --keep-on-failure
is "$rc" 2 "--keep-on-failure is exec's, not new's"
run "$PGSNAP" exec -o "-c no_such_setting=1" -- true
is "$rc" 1 "a server that does not start: exit 1"
like "$err" no_such_setting "with the server's reason"

# --keep-on-failure
run "$PGSNAP" exec --keep-on-failure -- sh -c 'psql -X -qc "create table kept(x int); insert into kept values (9)"; exit 3'
is "$rc" 3 "--keep-on-failure: the status is still the command's"
kurl=$(printf '%s\n' "$err" | sed -n "s/^  psql '\(.*\)'\$/\1/p")
like "$err" "failed \(exit status 3\); its clone [0-9a-f]+ is kept" "stderr says the clone is kept"
is "$(q "$kurl" 'select x from kept')" 9 "the kept clone is reachable at the printed URL, with its data"
kid=$(printf '%s\n' "$err" | sed -n 's/^  pgsnap rm //p')
run "$PGSNAP" rm "$kid"
is "$rc" 0 "the printed 'pgsnap rm ID' removes it"
run "$PGSNAP" exec --keep-on-failure -- true
is "$rc$err" 0 "--keep-on-failure after success: exit 0, silent"
nothing_left "--keep-on-failure after success"

# SIGTERM sent to pgsnap alone is passed on to the command.
ready=$TEST_TMP/ready
"$PGSNAP" exec -- sh -c "touch '$ready'; exec sleep 60" &
epid=$!
$PY - "$ready" <<'PY'
import os, sys, time
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
PY
ok "$([ -e "$ready" ]; echo $?)" "the command started"
kill -TERM "$epid"
wait "$epid"
is "$?" 143 "SIGTERM to pgsnap: passed on, the command died of it (143)"
nothing_left "after SIGTERM to pgsnap"

# SIGKILL leaves pgsnap no chance: the clone's owner is pgsnap, and the
# store's supervisor removes a clone whose owner died.
rm -f "$ready"
"$PGSNAP" exec -- sh -c "touch '$ready'; exec sleep 60" &
epid=$!
$PY - "$ready" <<'PY'
import os, sys, time
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
PY
kpid=$(pgrep -P "$epid" -x sleep)
kill -KILL "$epid"
{ wait "$epid"; } 2>/dev/null
[ -n "$kpid" ] && kill "$kpid" 2>/dev/null
gone=$($PY - "$PGSNAP" <<'PY'
import subprocess, sys, time
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    if not subprocess.run([sys.argv[1], "ls", "-q"], capture_output=True, text=True).stdout:
        print("gone"); break
    time.sleep(0.1)
PY
)
is "$gone" gone "exec killed by SIGKILL: its clone is removed (owner gone) within 15 s"

# A stop signal while the clone is still starting: nothing is left.
# (Python spawns it: a bash subshell killed before its exec would run
# this script's traps.)
st=$($PY - "$PGSNAP" "$TEST_TMP/early.out" <<'PY'
import signal, subprocess, sys
with open(sys.argv[2], "w") as out:
    p = subprocess.Popen([sys.argv[1], "exec", "--", "echo", "never"], stdout=out)
    p.send_signal(signal.SIGTERM)
    print(p.wait())
PY
)
ok "$([ "$st" = 143 ] || [ "$st" = -15 ]; echo $?)" "SIGTERM at once: exit 143 or killed before it blocked signals (got $st)"
is "$(cat "$TEST_TMP/early.out")" "" "the command did not run"
nothing_left "after SIGTERM while starting"

# Ctrl-C in a terminal: SIGINT to the foreground process group.
if [ -x $PY ]; then
	rm -f "$ready"
	got=$($PY - "$PGSNAP" "$ready" <<'PY'
import os, pty, select, sys, time
pgsnap, ready = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(pgsnap, [pgsnap, "exec", "--", "sh", "-c",
                      "touch '%s'; exec sleep 60" % ready])
deadline = time.monotonic() + 30
def drain(t):
    r, _, _ = select.select([fd], [], [], t)
    if r:
        try: os.read(fd, 4096)
        except OSError: pass
while not os.path.exists(ready) and time.monotonic() < deadline:
    drain(0.02)
os.write(fd, b"\x03")   # the terminal's VINTR: SIGINT to the group
while True:
    w, status = os.waitpid(pid, os.WNOHANG)
    if w == pid: break
    if time.monotonic() > deadline + 30: os.kill(pid, 9)
    drain(0.05)
print(os.waitstatus_to_exitcode(status))
PY
)
	is "$got" 130 "Ctrl-C in a terminal stops the command and pgsnap (130)"
	nothing_left "after Ctrl-C in a terminal"
else
	skip "no /usr/bin/python3 for a pseudo-terminal"
fi

done_testing
