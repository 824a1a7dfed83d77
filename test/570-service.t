#!/usr/bin/env bash
# The store's service and its protocol (docs/protocol.md): started on
# demand, answers each line with one JSON line, refuses other users, lives
# through bad input, is replaced after a kill by the next call of any kind,
# and the CLI through it says what it says without it.
. "$(dirname "$0")/tap.sh"

export PGSNAP_POOL=0
PY=/usr/bin/python3
"$PGSNAP" new -w 0 >/dev/null && "$PGSNAP" rm --all # the snapshot
# conv LINE...: send the lines on one connection, print each answer line.
conv() {
	$PY - "$(service_sock)" "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f = s.makefile("rwb")
for line in sys.argv[2:]:
    try:
        f.write(line.encode("latin-1") + b"\n"); f.flush()
        a = f.readline()
    except OSError:
        a = b""
    sys.stdout.write(a.decode("utf-8", "replace") if a else "EOF\n")
PY
}
service_sock() { "$PGSNAP" service start; }
field() { $PY -c 'import json,sys; d=json.loads(sys.stdin.readline()); print(d.get(sys.argv[1], "-"))' "$1"; }

run "$PGSNAP" service start
is "$rc" 0 "service start exits 0"
sock=$out
like "$sock" "^$PGSNAP_HOME/run/service.sock\$" "and prints the socket's path"
is "$(stat -c %a "$sock")" 600 "the socket is 0600"
run "$PGSNAP" service status
like "$out" "^running $sock" "service status: running"

# Hello first; versions.
out=$(conv "pgsnap 1")
is "$(field protocol <<<"$out")" 1 "hello: protocol 1"
like "$(conv "hello")" '"ok": false.*expected .pgsnap 1. first' "another first line is refused"
like "$(conv "pgsnap 2")" 'protocol 1' "another version is refused, naming ours"

# A conversation: new, ls, logs, rm (answered at once), ping.
out=$(conv "pgsnap 1" "new shared=0 timeout=0" "ping")
new=$(sed -n 2p <<<"$out")
is "$(field ok <<<"$new")" True "new answers ok"
url=$(field url <<<"$new"); id=$(field id <<<"$new")
is "$(q "$url" 'select 1')" 1 "its url connects"
like "$new" '"conninfo": "host=' "the answer has the fields of new --json"
is "$(sed -n 3p <<<"$out")" '{"ok": true}' "ping on the same connection"
like "$(conv "pgsnap 1" "ls")" "\"id\": \"$id\"" "ls lists it"
like "$(conv "pgsnap 1" "logs id=$id")" "\"log\": \"$PGSNAP_HOME/run/clones/$id/log\"" "logs names its log"
# Connection threads are batch threads (a burst's wakeups do not cut off
# the thread answering it); the server one started is scheduled as usual.
like "$(chrt -p "$(field pid <<<"$new")")" "policy: SCHED_OTHER" "a server started by a request is not a batch process"
like "$(conv "pgsnap 1" "rm id=$id")" '"removed": 1' "rm answers"
ok "$(wait_for 10 eval '[ -z "$("$PGSNAP" ls -q)" ]'; echo $?)" "and the clone goes"

# A burst: 40 clients at once (served in batches by whichever thread
# combines, and the slow way once the pool is out): each gets its own
# database, all recorded, each answer on its own connection.
out=$($PY - "$(service_sock)" <<'PY'
import json, socket, sys, threading
res = [None] * 40
go = threading.Barrier(40)
def one(i):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    f = s.makefile("rwb")
    f.write(b"pgsnap 1\n"); f.flush(); f.readline()
    go.wait()
    f.write(b"new shared=8 pool=2 timeout=0\n"); f.flush()
    res[i] = json.loads(f.readline())
    s.close()
t = [threading.Thread(target=one, args=(i,)) for i in range(40)]
for x in t: x.start()
for x in t: x.join()
ok = [r for r in res if r and r.get("ok")]
print(len(ok), len({r["url"] for r in ok}), len({r["id"] for r in ok}))
for r in ok: print(r["id"], r["url"], r["database"])
PY
)
is "$(head -1 <<<"$out")" "40 40 40" "a burst of 40: every one answered, 40 URLs, 40 ids"
ids=$(sed 1d <<<"$out" | awk '{print $1}' | sort)
is "$("$PGSNAP" ls -q | sort | grep -cxF -f <(echo "$ids"))" 40 "all 40 recorded"
bad=0
while read -r id url db; do
	[ "$(q "$url" 'select current_database()')" = "$db" ] || bad=$((bad + 1))
done < <(sed 1d <<<"$out")
is "$bad" 0 "each URL connects to the database its answer names"
# Once the handouts settle, its pool keeper makes the next burst's record
# files ahead (registry.c: blanks).
ok "$(wait_for 20 eval '[ -n "$(ls -A "$PGSNAP_HOME/run/records" | grep "^\.blank-")" ]'; echo $?)" \
	"the service makes blank record files ahead"
"$PGSNAP" rm $ids >/dev/null
ok "$(wait_for 30 eval '[ -z "$("$PGSNAP" ls -q)" ]'; echo $?)" "and they go"
# Its pool and servers too: what follows counts what is left.
conv "pgsnap 1" "forget snapshot=default" >/dev/null
"$PGSNAP" rm --all >/dev/null
ok "$(wait_for 30 eval '[ -z "$("$PGSNAP" ls -a -q)" ]'; echo $?)" "and so do their servers and pool, once forgotten"

# Bad input: one error line each, the connection and the service live on.
out=$(conv "pgsnap 1" "frobnicate" "new bogus=1" "new shared=x" "new a=1 a=2" "new shared=%zz" "rm" "new  shared=1" "ping")
is "$(sed -n 2p <<<"$out" | field errno)" EINVAL "an unknown verb: EINVAL"
like "$(sed -n 2p <<<"$out")" "unknown verb 'frobnicate'" "named"
like "$(sed -n 3p <<<"$out")" "unknown key 'bogus'" "an unknown key, named"
is "$(sed -n 3p <<<"$out" | field status)" 2 "a bad request has status 2"
like "$(sed -n 4p <<<"$out")" "shared 'x': expected a whole number" "a bad number"
like "$(sed -n 5p <<<"$out")" "given twice" "a key twice"
like "$(sed -n 6p <<<"$out")" "escape" "a bad escape"
like "$(sed -n 7p <<<"$out")" "give one of id=" "rm without a target"
like "$(sed -n 8p <<<"$out")" "expected key=value at column 5" "two spaces"
is "$(sed -n 9p <<<"$out")" '{"ok": true}' "the connection still works after all that"
long=$(head -c 20000 /dev/zero | tr '\0' a)
out=$(conv "pgsnap 1" "ping $long" "ping")
like "$(sed -n 2p <<<"$out")" "longer than 16383" "a line too long: named"
is "$(sed -n 3p <<<"$out")" EOF "and the connection is closed"
like "$(conv "pgsnap 1" $'ping \x01')" "printable ASCII" "a control character: refused"
is "$(conv "pgsnap 1" "ping" | sed -n 2p)" '{"ok": true}' "the service lives on"
out=$(conv "pgsnap 1" "new snapshot=nosuch")
like "$(sed -n 2p <<<"$out")" "no snapshot named 'nosuch'" "a runtime error: the library's message"
is "$(sed -n 2p <<<"$out" | field status)" 1 "with status 1"

# Another user is refused.
intruder=pgsnap_svc$$
if useradd --system --no-create-home --shell /usr/sbin/nologin "$intruder" 2>/dev/null; then
	chmod 755 "$PGSNAP_HOME" "$PGSNAP_HOME/run"
	chmod 777 "$sock"
	out=$(setpriv --reuid="$intruder" --regid="$(id -g "$intruder")" --clear-groups \
		$PY -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"pgsnap 1\n"); print(s.makefile().readline())' "$sock" 2>&1)
	like "$out" "may not use this store" "another uid is refused (SO_PEERCRED), even through an open socket mode"
	chmod 600 "$sock"
	userdel "$intruder" 2>/dev/null
else
	skip "cannot create a local user"
fi

# A client killed mid-request leaks nothing after gc.
$PY - "$sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"pgsnap 1\nnew shared=0 timeout=0 owner=%d\n" % __import__("os").getpid())
time.sleep(60)
PY
cl=$!
until_ok 30 eval '[ -n "$("$PGSNAP" ls -q)" ]'
kill -9 "$cl"; wait "$cl" 2>/dev/null
until_ok 15 eval '[ -z "$("$PGSNAP" ls -a -q)" ]'; ok $? "a clone made for a client killed mid-request goes with it (its owner)"
"$PGSNAP" gc -q
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 0 "nothing left after gc"

# kill -9: the next call of any kind starts it again; ls too.
sup=$(service_pids)
u=$("$PGSNAP" new -w 30)
kill -9 $(service_pids); kill -9 $(pgrep -x pgsnap-sentinel) 2>/dev/null
until_ok 5 eval '[ -z "$(service_pids)" ]'
"$PGSNAP" ls >/dev/null
until_ok 5 eval '[ -n "$(service_pids)" ]'; ok $? "after a kill -9 of the service and its sentinel, ls starts it again"
is "$(q "$u" 'select 1')" 1 "the clone was never touched"

# The CLI through the service and without it: the same.
for args in "new -s nosuch" "new -s bad/name" "rm nosuchclone" "reset nosuchclone"; do
	run "$PGSNAP" $args; a="$rc|$out|$err"
	run env PGSNAP_SERVICE=0 "$PGSNAP" $args; b="$rc|$out|$err"
	is "$a" "$b" "pgsnap $args: the same exit code and lines with and without the service"
done
run "$PGSNAP" new --json -w 0
via=$(printf '%s' "$out" | $PY -c 'import json,sys; print(sorted(json.load(sys.stdin)))')
run env PGSNAP_SERVICE=0 "$PGSNAP" new --json -w 0
is "$(printf '%s' "$out" | $PY -c 'import json,sys; print(sorted(json.load(sys.stdin)))')" "$via" \
	"new --json: the same fields through the service"

# Answers have no length limit: 30 clones' JSON is over 16 KiB.
run "$PGSNAP" new -n 30 --shared=50 --json -w 0
is "$rc" 0 "new -n 30 through the service"
[ "$rc" = 0 ] || diag "$err"
is "$(printf '%s\n' "$out" | $PY -c 'import json,sys; print(len([json.loads(l) for l in sys.stdin]))')" 30 \
	"30 clones in its answer ($(printf '%s' "$out" | wc -c) bytes)"
ok "$([ "$(printf '%s' "$out" | wc -c)" -gt 16384 ] && echo 0 || echo 1)" "an answer longer than a request may be"
"$PGSNAP" rm --all >/dev/null

run "$PGSNAP" service stop
is "$rc" 0 "service stop exits 0"
until_ok 30 eval '[ -z "$(service_pids)" ]'; ok $? "and it is gone"
run "$PGSNAP" service status
is "$rc" 3 "service status: exit 3 when none runs"
run "$PGSNAP" service bogus
is "$rc" 2 "service bogus: exit 2"
"$PGSNAP" rm --all
done_testing
