#!/usr/bin/env bash
# Access control: the modes of what a clone is made of, loopback-only TCP
# with a password, and a second unprivileged local user ("the intruder")
# who can neither connect to a clone that is not theirs (socket: the
# directory is closed; TCP: no password) nor read its files.
. "$(dirname "$0")/tap.sh"

me=$(id -un)
if [ "$(id -u)" = 0 ]; then srv=postgres; else srv=$me; fi
# field ID NAME: a field of clone ID's record.
field() { record_field "$1" "$2"; }

run "$PGSNAP" new
is "$rc" 0 "a socket clone"
us=$out
run "$PGSNAP" new -t
is "$rc" 0 "a TCP clone"
ut=$out
idt=$("$PGSNAP" ls | awk -v u="$ut" '$NF == u { print $1 }')
port=${ut##*:}; port=${port%%/*}
sock=$(url_sockdir "$us")
dir=$(field "$idt" dir)
data=$(field "$idt" datadir)
tsock=$(field "$idt" sockdir)

# --- modes --------------------------------------------------------------
is "$(stat -c '%a %U' "$sock")" "700 $srv" "socket directory: 0700, owned by the server user"
is "$(stat -c '%a %U' "$tsock")" "700 $srv" "socket directory of the TCP clone: 0700 too"
is "$(stat -c '%a %U' "$dir")" "700 $srv" "clone directory: 0700, the server user's"
is "$(stat -c '%a' "$data")" 700 "data directory: 0700"
is "$(stat -c '%a' "$PGSNAP_HOME/snapshots/default")" 700 "snapshot directory: 0700"
is "$(stat -c '%a' "$PGSNAP_HOME/snapshots/default/data")" 700 "snapshot data directory: 0700"
is "$(stat -c '%a' "$PGSNAP_HOME/run/records")" 700 "the records' directory: 0700 (they hold the TCP passwords)"
is "$(stat -c '%a' "$PGSNAP_HOME/run/records/$idt")" 600 "a record: 0600"
is "$(stat -c '%a' "$PGSNAP_HOME/run/registry.lock")" 600 "registry lock: 0600"
is "$(stat -c '%a' "$dir/log")" 600 "server log: 0600"

# Every clone, pooled ones included, and every file of the store.
for d in $(records | tr '\t' '\n' | sed -n 's/^\(dir\|sockdir\)=//p'); do
	is "$(stat -c '%a' "$d")" 700 "0700: ${d#$PGSNAP_HOME/}"
done
is "$(find "$PGSNAP_HOME" -not -type s -not -type l -perm /022 -printf '%m %p\n' 2>/dev/null)" "" \
	"nothing in the store is writable by group or others (sockets aside, inside 0700 directories)"

# --- TCP: loopback only, SCRAM, a random password -----------------------
listen=$(ss -Hltn "sport = :$port" | awk '{ print $4 }' | sort | tr '\n' ' ')
is "$listen" "127.0.0.1:$port " "-t listens on 127.0.0.1 only, not on every interface"
like "$ut" '^postgresql://postgres:[0-9a-f]{24}@127\.0\.0\.1:' "the URL carries a random password"
is "$(q "$ut" "select rolpassword like 'SCRAM-SHA-256\$%' from pg_authid where rolname = 'postgres'")" t \
	"the password is stored as a SCRAM verifier"
hba=$(q "$ut" "select distinct type || ' ' || auth_method from pg_hba_file_rules order by 1" | tr '\n' ',')
is "$hba" "host scram-sha-256,local trust," "pg_hba: TCP needs SCRAM, the private socket is trust"
run "$PGSNAP" new -t
ut2=$out
isnt "${ut2%%@*}" "${ut%%@*}" "each clone gets its own password"
"$PGSNAP" rm "$ut2" >/dev/null

run "$PGSNAP" new --ipv6
is "$rc" 0 "--ipv6 clone"
u6=$out
p6=${u6##*:}; p6=${p6%%/*}
listen=$(ss -Hltn "sport = :$p6" | awk '{ print $4 }' | sort | tr '\n' ' ')
is "$listen" "127.0.0.1:$p6 [::1]:$p6 " "--ipv6 listens on 127.0.0.1 and ::1 only"
pw6=${u6#postgresql://postgres:}; pw6=${pw6%%@*}
is "$(PGPASSWORD=$pw6 psql -X -qAt -w -h ::1 -p "$p6" -U postgres -d postgres -c 'select inet_server_addr()')" "::1" \
	"--ipv6: the password works over ::1"
is "$(psql -X -qAt -w -h ::1 -p "$p6" -U postgres -d postgres -c 'select 1' 2>/dev/null)" "" \
	"--ipv6: ::1 without the password is refused"
"$PGSNAP" rm "$u6" >/dev/null

# --- a store in a directory others can write ----------------------------
mkdir -p "$TEST_TMP/open" "$TEST_TMP/sticky"
chmod 777 "$TEST_TMP/open"
PGSNAP_HOME=$TEST_TMP/open run "$PGSNAP" ls
is "$rc" 1 "a store writable by others is refused"
like "$err" 'writable by other users' "saying why"
chmod 1777 "$TEST_TMP/sticky"
PGSNAP_HOME=$TEST_TMP/sticky run "$PGSNAP" ls
is "$rc" 0 "a sticky directory of ours (like /tmp) is accepted"

# --- the intruder -------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	skip "the intruder checks need root to create a second local user"
	done_testing
	exit 0
fi
# A user of this run's own: suites of several checkouts may run at once on
# one machine, and one run must not delete the user another still uses.
intruder=pgsnap_intr$$
created=
for i in 1 2 3 4 5; do # useradd fails while another holds the passwd lock
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$intruder" 2>/dev/null && break
	sleep 1
done
id "$intruder" >/dev/null 2>&1 || skip_all "cannot create a local user (useradd $intruder failed)"
created=1
# userdel refuses while the user runs something: the intruder's own
# supervisor may take a moment to leave after its last clone.
drop_intruder() {
	[ -n "$created" ] || return 0
	wait_for 15 eval '! pgrep -u "$intruder" >/dev/null'
	userdel "$intruder" 2>/dev/null || userdel -f "$intruder" 2>/dev/null
}
trap 'drop_intruder; _tap_cleanup' EXIT
iuid=$(id -u "$intruder")
install -m 755 "$PGSNAP" "$TEST_TMP/pgsnap-copy"
as_intruder() {
	setpriv --reuid="$intruder" --regid="$(id -g "$intruder")" --clear-groups \
		env -i PATH=/usr/bin:/bin:"$PG_BINDIR" PGPASSFILE="$TEST_TMP/no-such-pgpass" \
		ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" "$@"
}

run as_intruder psql -X -qAt -w -d "$us" -c 'select 1'
isnt "$rc" 0 "intruder: cannot connect to the socket clone"
like "$err" 'Permission denied' "intruder, socket: permission denied (the directory is closed)"
run as_intruder psql -X -qAt -w -h "$tsock" -p "$port" -U postgres -d postgres -c 'select 1'
isnt "$rc" 0 "intruder: cannot use the TCP clone's socket either"
like "$err" 'Permission denied' "intruder, TCP clone's socket: permission denied"
run as_intruder psql -X -qAt -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1'
isnt "$rc" 0 "intruder: TCP without the password is refused"
like "$err" 'password' "intruder, TCP: a password is required"
run as_intruder env PGPASSWORD=guess psql -X -qAt -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1'
like "$err" 'password authentication failed' "intruder, TCP: a wrong password fails"
run as_intruder env PGPASSWORD=guess psql -X -qAt -w -h 127.0.0.1 -p "$port" -U "$intruder" -d postgres -c 'select 1'
isnt "$rc" 0 "intruder, TCP: no other database user gets in either"
run as_intruder psql -X -qAt -w -d "$ut" -c 'select 1'
is "$out" 1 "(control: with the URL's password the same user gets in: the password is the key)"

for f in "$data" "$data/PG_VERSION" "$dir" "$dir/log" "$PGSNAP_HOME/run/records/$idt" \
	 "$PGSNAP_HOME/snapshots/default/data/PG_VERSION"; do
	run as_intruder cat "$f"
	isnt "$rc" 0 "intruder cannot read ${f#$PGSNAP_HOME/}"
done
run as_intruder ls "$data"
like "$err" 'Permission denied' "intruder cannot list the data directory"
# Whatever the intruder can read in the store holds no clone's password.
pws=$(records | tr '\t' '\n' | sed -n 's/^password=//p' | grep .)
like "$pws" '[0-9a-f]{24}' "(the store has TCP clones with passwords to look for)"
readable=$(as_intruder find "$PGSNAP_HOME" -type f -readable 2>/dev/null)
leak=
for f in $readable; do
	grep -qF -f <(printf '%s\n' "$pws") "$f" 2>/dev/null && leak="$leak $f"
done
is "$leak" "" "no file the intruder can read holds a password ($(printf '%s\n' $readable | wc -l) readable files checked)"

mkdir -p "$TEST_TMP/theirs" && chown "$intruder" "$TEST_TMP/theirs"
PGSNAP_HOME=$TEST_TMP/theirs run "$PGSNAP" ls
is "$rc" 1 "a store directory owned by another user is refused"
like "$err" "belongs to uid $iuid" "saying whose it is"

run as_intruder env PGSNAP_HOME="$PGSNAP_HOME" "$TEST_TMP/pgsnap-copy" rm --all
is "$rc" 1 "intruder: pgsnap rm --all on our store fails"
is "$(q "$us" 'select 1')$(q "$ut" 'select 1')" 11 "and both clones still answer"

# The short socket directory of a deep store lives in /tmp (or /dev/shm
# when /tmp is closed to the user): a squatter who made <that>/pgsnap-UID
# first (here: a symlink to a directory of theirs) is refused, never
# followed.  The intruder is the victim here.
ih=$TEST_TMP/ihome
deep=$ih/$(printf 'd%.0s' {1..70})/$(printf 'e%.0s' {1..40})
mkdir -p "$deep" "$TEST_TMP/squat"
chown -R "$intruder" "$ih"
parent=/tmp
setpriv --reuid="$intruder" --regid="$(id -g "$intruder")" --clear-groups test -w /tmp || parent=/dev/shm
base=$parent/pgsnap-$iuid
if [ ! -e "$base" ] && [ ! -L "$base" ]; then
	ln -s "$TEST_TMP/squat" "$base"
	run as_intruder env PGSNAP_HOME="$deep" "$TEST_TMP/pgsnap-copy" new
	is "$rc" 1 "a squatted /tmp/pgsnap-UID (a symlink): new fails"
	like "$err" "$base" "naming the directory"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
	is "$(ls -A "$TEST_TMP/squat" | wc -l)" 0 "nothing was made through the symlink"
	is "$(ls -A "$deep/run/clones" | wc -l)" 0 "no clone directory left"
	is "$(servers_under "$deep")" 0 "no server left"
	rm -f "$base"
	run as_intruder env PGSNAP_HOME="$deep" "$TEST_TMP/pgsnap-copy" new
	is "$rc" 0 "without the squatter, the deep store of an unprivileged user works"
	[ "$rc" = 0 ] || diag "$err"
	like "$out" "${parent//\//%2F}%2Fpgsnap-$iuid%2F" "its socket is in $base"
	is "$(stat -c '%a %U' "$base")" "700 $intruder" "$base: 0700, the user's"
	[ "$rc" = 0 ] && is "$(as_intruder psql -X -qAt -w -d "$out" -c 'select 1')" 1 "the clone answers"
	as_intruder env PGSNAP_HOME="$deep" "$TEST_TMP/pgsnap-copy" rm --all
	is "$(ls -A "$base" | wc -l)" 0 "rm removed its socket directory"
	rm -rf "$base"
	wait_for 15 eval '! pgrep -u "$intruder" >/dev/null'
	ok $? "the intruder's own store left no process behind"
else
	skip "$base already exists"
fi

done_testing
