#!/usr/bin/env bash
# A store path so long that <clone>/sock/.s.PGSQL.PORT cannot fit the
# 108-byte sun_path: pgsnap puts the socket in a short private directory
# (/tmp/pgsnap-UID/ID, or under /dev/shm) by design, records it, and
# removes it with the clone -- instead of a "path too long" error.
. "$(dirname "$0")/tap.sh"

if [ "$(id -u)" = 0 ]; then srv=postgres; else srv=$(id -un); fi
export PGSNAP_HOME=$TEST_TMP/$(printf 'l%.0s' {1..100})/$(printf 'm%.0s' {1..100})
mkdir -p "$PGSNAP_HOME"
chmod -R 755 "$TEST_TMP"
ok "$([ ${#PGSNAP_HOME} -gt 200 ]; echo $?)" "PGSNAP_HOME is ${#PGSNAP_HOME} bytes long"

run "$PGSNAP" new
is "$rc" 0 "new works in the deep store"
u=$out
sock=$(url_sockdir "$u")
like "$sock" '^/(tmp|dev/shm)/pgsnap-[0-9]+/[0-9a-f]+$' "its socket directory is short: $sock"
ok "$([ $((${#sock} + 16)) -le 107 ]; echo $?)" "socket path fits sun_path"
is "$(q "$u" 'select 1')" 1 "the clone answers through its URL"
is "$(stat -c '%a %U' "$sock")" "700 $srv" "the short socket directory is 0700, the server user's"
base=${sock%/*}
like "$(stat -c '%a %U' "$base")" "^7[01][01] $(id -un)\$" "its parent $base is ours, closed to others"
id=$("$PGSNAP" ls -q)
like "sockdir=$(record_field "$id" sockdir)" "^sockdir=$sock\$" \
	"the registry records where the socket is"
ok "$([ -d "$PGSNAP_HOME/run/clones/$id/data" ]; echo $?)" "the data still lives in the store"

run "$PGSNAP" new -t
is "$rc" 0 "new -t in the deep store"
[ "$rc" = 0 ] && is "$(q "$out" 'select 1')" 1 "the TCP clone answers"

# A failed start leaves no short socket directory behind.  (The socket of
# this store's service is there too, svc-*.sock; other stores' as well.)
svcsock=$("$PGSNAP" service status | awk '{ print $2 }')
like "$svcsock" "^$base/svc-[0-9a-f]+\.sock\$" "the service's socket is in $base too"
before=$(ls "$base" | grep -v '^svc-' | sort)
run "$PGSNAP" new -o "-c no_such_setting=1"
is "$rc" 1 "a failing new in the deep store: exit 1"
is "$(ls "$base" | grep -v '^svc-' | sort)" "$before" "it left no socket directory in $base"

run "$PGSNAP" rm "$u"
is "$rc" 0 "rm by URL"
ok "$([ ! -e "$sock" ]; echo $?)" "rm removed the short socket directory"
"$PGSNAP" rm --all
is "$(ls "$base" | grep -cxF -f <(printf '%s\n' $before))" 0 "rm --all removed the other one"
# The service leaves on its own once nothing is left to watch.
ok "$(until_ok 15 test ! -e "$svcsock"; echo $?)" "and the service left with its socket"
is "$(ls -A "$PGSNAP_HOME/run/clones" | wc -l)" 0 "no clone directory left"

# A snapshot built with SQL runs a build server, whose socket needs a short
# directory too (snapshot.c makes its own); TMPDIR pointing nowhere must
# not stop it, and it must not stay behind.
echo 'create table from_sql(x int);' >"$TEST_TMP/s.sql"
builds() { ls -d /tmp/pgsnap-build-* /dev/shm/pgsnap-build-* 2>/dev/null | sort; }
before=$(builds)
run env TMPDIR=/nonexistent/tmp "$PGSNAP" snapshot build app -q -f "$TEST_TMP/s.sql"
is "$rc" 0 "snapshot build with SQL in the deep store, TMPDIR nowhere"
[ "$rc" = 0 ] || diag "$err"
is "$(builds)" "$before" "its build socket directory is gone"
run "$PGSNAP" new -s app
is "$rc" 0 "a clone of it"
[ "$rc" = 0 ] && is "$(q "$out" 'select count(*) from from_sql')" 0 "has the table"
"$PGSNAP" rm --all

# gc: a clone whose record was damaged is adopted with its socket
# directory where new put it, so its URL works again.
run "$PGSNAP" new --pool 0
u=$out
echo garbage >"$PGSNAP_HOME/run/records/$("$PGSNAP" ls -q)"
run "$PGSNAP" gc
is "$rc" 0 "gc after the record was damaged"
is "$("$PGSNAP" ls | awk 'NR == 2 { print $NF }')" "$u" "the adopted clone has its URL back"
is "$(q "$u" 'select 1')" 1 "and it answers"
"$PGSNAP" rm --all
ok "$([ ! -e "$(url_sockdir "$u")" ]; echo $?)" "rm removed its short socket directory"

# gc: a clone whose server died goes, and its short socket directory too.
run "$PGSNAP" new
is "$rc" 0 "another clone in the deep store"
sock=$(url_sockdir "$out")
pid=$(clone_pid "$out")
kill -KILL "$pid"
wait_for 10 eval '! alive '"$pid"
run "$PGSNAP" gc -q
is "$rc" 0 "gc after its server died"
ok "$([ ! -e "$sock" ]; echo $?)" "gc removed the short socket directory"
is "$("$PGSNAP" ls -q)" "" "and the record"
is "$(servers_under "$PGSNAP_HOME")" 0 "no server left"

done_testing
