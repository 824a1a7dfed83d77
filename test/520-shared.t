#!/usr/bin/env bash
# new --shared: a fresh database of a shared server, handed out once, as a
# lease with its own id and limits; the server ends with its last lease
# once its databases are used up; gc, rm --all and owners' deaths leave
# nothing behind.
. "$(dirname "$0")/tap.sh"

export PGSNAP_POOL=0 PGSNAP_POOL_TTL=120

db_of() { printf '%s\n' "${1##*/}"; }
state_of() { "$PGSNAP" ls -a | awk -v i="$1" '$1 == i { print $3 }'; }
lease_id() { "$PGSNAP" ls | awk -v u="$1" '$NF == u { print $1 }'; }
nshared() { "$PGSNAP" ls -a | awk '$3 == "shared"' | wc -l; }
nshared_is() { [ "$(nshared)" -eq "$1" ]; }
gone() { ! alive "$1"; }

# Three databases per server: three handouts from one server.
run "$PGSNAP" new --shared=3
is "$rc" 0 "new --shared exits 0"
u1=$out
is "$(db_of "$u1")" pgsnap_1 "the URL names the server's first database"
run "$PGSNAP" new --shared=3
u2=$out
run "$PGSNAP" new --shared=3
u3=$out
is "$(db_of "$u2") $(db_of "$u3")" "pgsnap_2 pgsnap_3" "each new hands out the next database, never one twice"
is "${u1%/*}" "${u2%/*}" "the first two are in the same server"
is "${u1%/*}" "${u3%/*}" "so is the third"
is "$(servers_under "$PGSNAP_HOME/run")" 1 "one server runs for three databases"
is "$(q "$u1" 'select current_database()')" pgsnap_1 "the database answers under its name"
is "$(q "$u1" "select count(*) from pg_stat_database where datname = current_database() and xact_commit > 5")" 0 \
	"nobody ran transactions in it before us"

# Isolation between leases: a table made in one is not in another.
q "$u1" 'create table t1 (x int); insert into t1 values (42)' >/dev/null
is "$(q "$u1" 'select x from t1')" 42 "a lease's table holds its row"
is "$(q "$u2" "select count(*) from pg_class where relname = 't1'")" 0 "another lease does not see it"

# ls: the leases with their ids, the server only with -a.
is "$("$PGSNAP" ls -q | wc -l)" 3 "ls lists the three leases"
is "$("$PGSNAP" ls | grep -c ' shared ')" 0 "ls hides the shared server"
is "$(nshared)" 1 "ls -a shows it, state shared"
srv=$("$PGSNAP" ls -a | awk '$3 == "shared" { print $1 }')
id1=$(lease_id "$u1")
like "$("$PGSNAP" ls --json)" "\"server\": \"$srv\"" "ls --json names each lease's server"
like "$("$PGSNAP" ls -a --json)" '"databases": 3, "databases_used": 3' "and the server's databases, all handed out"
spid=$("$PGSNAP" ls -a | awk -v i="$srv" '$1 == i { print $4 }')

# rm of a lease ends its sessions, not the server.
psql -X -q -d "$u2" -c 'select pg_sleep(60)' >/dev/null 2>&1 &
sleeper=$!
until_ok 10 test "$(q "$u1" "select count(*) from pg_stat_activity where datname = 'pgsnap_2' and state = 'active'")" = 1
run "$PGSNAP" rm "$u2"
is "$rc" 0 "rm of a lease by URL exits 0"
ok "$(wait_for 10 gone "$sleeper"; echo $?)" "its session was terminated"
wait "$sleeper" 2>/dev/null
ok "$(alive "$spid"; echo $?)" "the server lives on for the other leases"
is "$(q "$u1" 'select x from t1')" 42 "and another lease still works"
run "$PGSNAP" rm "$id1"
is "$rc" 0 "rm of a lease by id exits 0"
ok "$(alive "$spid"; echo $?)" "the server waits for its last lease"

# The last lease of a used-up server takes the server with it.
run "$PGSNAP" rm "$u3"
is "$rc" 0 "rm of the last lease exits 0"
ok "$(wait_for 10 gone "$spid"; echo $?)" "the server stops with its last lease"
is "$("$PGSNAP" ls -a -q | wc -l)" 0 "no record is left"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 0 "no clone directory is left"

# A fourth database needs a second server: databases are never reused.
run "$PGSNAP" new --shared=2
a1=$out
run "$PGSNAP" new --shared=2
run "$PGSNAP" new --shared=2
a3=$out
isnt "${a1%/*}" "${a3%/*}" "a server with no database left is not used again"
is "$(db_of "$a3")" pgsnap_1 "the next server hands out its first database"
is "$(nshared)" 2 "two shared servers run"
# Another number of databases is another kind of server.
run "$PGSNAP" new --shared=5
isnt "${out%/*}" "${a1%/*}" "--shared=5 is not served by a --shared=2 server"
is "$(nshared)" 3 "three shared servers run"

# An owner: the lease ends with it; gc (the supervisor) does that.
sleep 300 &
owner=$!
run "$PGSNAP" new --shared=2 --owner "$owner"
ou=$out
oid=$(lease_id "$ou")
kill "$owner"
wait "$owner" 2>/dev/null
ok "$(wait_for 15 sh -c "! '$PGSNAP' ls -q | grep -qx '$oid'"; echo $?)" "a lease ends when its owner dies"

# -w: a lease nobody connects to ends after its time; the server goes when
# it was its last and its databases are used up.
run "$PGSNAP" new --shared=1 -w 1
wu=$out
wid=$(lease_id "$wu")
wpid=$("$PGSNAP" ls | awk -v i="$wid" '$1 == i { print $4 }')
ok "$(wait_for 15 sh -c "! '$PGSNAP' ls -q | grep -qx '$wid'"; echo $?)" "a lease with -w 1 and no session ends"
ok "$(wait_for 15 gone "$wpid"; echo $?)" "and its used-up server stops"

# A lease in use outlives -w while its session lasts.
run "$PGSNAP" new --shared=2 -w 1
bu=$out
bid=$(lease_id "$bu")
hold_session "$bu"
past $(( $(record_field "$bid" created_ms) + 1500 ))
"$PGSNAP" gc >/dev/null
like "$("$PGSNAP" ls -q)" "$bid" "a lease with a session is kept past -w"
release_session
ok "$(wait_for 15 sh -c "! '$PGSNAP' ls -q | grep -qx '$bid'"; echo $?)" "and ends once the session is gone"

# Bad input: one line, exit 2, nothing made.
n0=$("$PGSNAP" ls -a -q | wc -l)
run "$PGSNAP" new --shared=0
is "$rc" 2 "--shared=0 is a usage error"
like "$err" "--shared" "naming the option"
run "$PGSNAP" new --shared=1001
is "$rc" 2 "--shared=1001 is a usage error"
run "$PGSNAP" new --shared=x
is "$rc" 2 "--shared=x is a usage error"
run "$PGSNAP" new --shared -k
is "$rc" 2 "--shared with -k is a usage error"
like "$err" "-k" "naming -k"
run env PGSNAP_SHARED=abc "$PGSNAP" new
is "$rc" 1 "a bad PGSNAP_SHARED is an error (exit 1, as a bad PGSNAP_HOME)"
like "$err" PGSNAP_SHARED "naming the variable"
is "$("$PGSNAP" ls -a -q | wc -l)" "$n0" "bad input made no clone"

run "$PGSNAP" snapshot save "$a1" mine
is "$rc" 1 "snapshot save of a lease fails"
like "$err" "shared server" "saying it is a database of a shared server"

# 24 callers at once: 24 different databases, none handed out twice.
"$PGSNAP" rm --all >/dev/null
for i in $(seq 1 24); do
	"$PGSNAP" new --shared=5 >"$PGSNAP_HOME/par.$i" 2>&1 &
done
wait
cat "$PGSNAP_HOME"/par.* >"$PGSNAP_HOME/par"
is "$(grep -c '^postgresql://' "$PGSNAP_HOME/par")" 24 "24 concurrent new --shared all succeed"
is "$(sort -u "$PGSNAP_HOME/par" | wc -l)" 24 "each got a database nobody else got"
is "$("$PGSNAP" ls -q | wc -l)" 24 "24 leases are recorded"
is "$(nshared)" 5 "in 5 servers of 5 databases: callers wait for a start, not start a server each"
bad=0
while read -r u; do
	[ "$(q "$u" 'select current_database()')" = "${u##*/}" ] || bad=$((bad + 1))
done <"$PGSNAP_HOME/par"
is "$bad" 0 "each answers as its database"
"$PGSNAP" rm --all >/dev/null

# PGSNAP_SHARED=N: every new a database of a shared server.
run env PGSNAP_SHARED=4 "$PGSNAP" new
is "$(db_of "$out")" pgsnap_1 "PGSNAP_SHARED=4 makes new hand out a database"

# -n: N leases in one call.
run "$PGSNAP" new --shared=8 -n 3
is "$(printf '%s\n' "$out" | wc -l)" 3 "-n 3 --shared prints three URLs"
is "$(printf '%s\n' "$out" | sort -u | wc -l)" 3 "three different databases"
is "$(printf '%s\n' "$out" | sed 's,/[^/]*$,,' | sort -u | wc -l)" 1 "of one server (not three servers started at once)"

# exec --shared: the command sees a fresh database, gone after.
run "$PGSNAP" exec --shared=2 -- sh -c 'psql -X -Atc "select current_database()" "$DATABASE_URL"'
is "$rc" 0 "exec --shared runs the command"
like "$out" '^pgsnap_[0-9]+$' "with a database of a shared server"

# The warm pool keeps shared servers too; a handout takes one.
export PGSNAP_POOL=1
run "$PGSNAP" new --shared=2 -o '-c work_mem=5MB'
p1=$out
pooled_is() { [ "$("$PGSNAP" ls -a | awk '$3 == "pooled"' | wc -l)" -eq "$1" ]; }
ok "$(wait_for 60 pooled_is 1; echo $?)" "the keeper keeps a shared server warm"
run "$PGSNAP" new --shared=2 -o '-c work_mem=5MB'
run "$PGSNAP" new --shared=2 -o '-c work_mem=5MB'
p3=$out
# Before anyone connects to it: the keeper gave the pooled server's
# databases the relcache init file of postgres (they are its copies).
pdata=$("$PGSNAP" ls --json | tr '{' '\n' | grep "\"url\": \"$p3\"" | sed 's/.*"data_dir": "\([^"]*\)".*/\1/')
poid=$(q "${p3%/*}/postgres" "select oid from pg_database where datname = '${p3##*/}'")
ok "$(test -s "$pdata/base/$poid/pg_internal.init"; echo $?)" "a pooled shared database has its relcache init file before its first session"
isnt "${p3%/*}" "${p1%/*}" "the third database comes from the pooled server"
is "$(q "$p3" 'show work_mem')" 5MB "with the variant's options"
is "$(q "$p3" "select count(*) from pg_stat_database where datname = current_database() and xact_commit > 5")" 0 \
	"and nobody used it before"
run psql -X -qAt -v ON_ERROR_STOP=1 -d "$p3" -c 'vacuum (freeze, analyze)' -c 'select count(*) > 0 from pg_class'
is "$rc:$out" "0:t" "VACUUM in it succeeds (its relcache init file is right for it)"
unlike "$err" "ERROR" "without an error"
export PGSNAP_POOL=0

# rm --all: every lease, server and keeper.
run "$PGSNAP" rm --all
is "$rc" 0 "rm --all exits 0"
is "$("$PGSNAP" ls -a -q | wc -l)" 0 "no record is left"
is "$(servers_under "$PGSNAP_HOME/run")" 0 "no server is left"

# rm of a shared server ends its leases too.
run "$PGSNAP" new --shared=3
l1=$out
srv=$("$PGSNAP" ls -a | awk '$3 == "shared" { print $1 }')
run "$PGSNAP" rm "$srv"
is "$rc" 0 "rm of a shared server exits 0"
is "$("$PGSNAP" ls -a -q | wc -l)" 0 "its leases went with it"

# A server killed under its leases: gc removes the leases and the server.
run "$PGSNAP" new --shared=3
k1=$out
kpid=$("$PGSNAP" ls | awk -v u="$k1" '$NF == u { print $4 }')
kill -9 "$kpid"
until_ok 10 gone "$kpid"
run "$PGSNAP" gc
is "$rc" 0 "gc exits 0"
is "$("$PGSNAP" ls -a -q | wc -l)" 0 "gc removed the dead server's lease and record"

done_testing
