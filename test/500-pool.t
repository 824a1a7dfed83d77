#!/usr/bin/env bash
# The warm pool: clones started ahead, handed out once each by a registry
# update, refilled in the background by a detached keeper, expired when
# unused, variants that do not match start cold, rm --all leaves nothing.
. "$(dirname "$0")/tap.sh"

export PGSNAP_POOL=2 PGSNAP_POOL_TTL=120

pooled() { "$PGSNAP" ls -a | awk '$3 == "pooled" { print $1 }' | sort; }
npooled() { pooled | wc -l; }
npooled_is() { [ "$(npooled)" -eq "$1" ]; }
# Keepers of this store's pool (threads of its service).
nkeepers_is() { [ "$(nkeepers)" -eq "$1" ]; }
id_of() { "$PGSNAP" ls -a | awk -v u="$1" '$NF == u { print $1 }'; }

# The first new of a variant starts cold and starts its keeper.
run "$PGSNAP" new
is "$rc" 0 "new exits 0"
u1=$out
is "$(q "$u1" 'select 1')" 1 "the first clone works"
ok "$(wait_for 60 npooled_is 2; echo $?)" "the keeper fills the pool to 2 (PGSNAP_POOL)"
is "$(nkeepers)" 1 "one keeper runs for the variant"
is "$("$PGSNAP" ls | grep -c pooled)" 0 "ls does not list pooled servers"
is "$("$PGSNAP" ls -q | wc -l)" 1 "ls lists the one clone handed out"
is "$("$PGSNAP" ls -a | grep -c ' pooled ')" 2 "ls -a lists the pooled ones"
is "$(servers_under "$PGSNAP_HOME/run")" 3 "three servers run: one clone, two pooled"

# A handout: one of the pooled servers, now ready and ours.
before=$(pooled)
run "$PGSNAP" new
u2=$out
id2=$(id_of "$u2")
like "$before" "$id2" "the second new hands out a pooled server"
is "$("$PGSNAP" ls -a | awk -v i="$id2" '$1 == i { print $3 }')" ready "its state is now ready"
is "$(q "$u2" 'select 1')" 1 "and it answers"
ok "$(wait_for 60 npooled_is 2; echo $?)" "the keeper refills the pool"
unlike "$(pooled)" "$id2" "the handed-out server is not in the pool any more"

# A pooled server is as fresh as a cold one: no client ran anything on it
# (the keeper opens one session, no SQL, to rebuild the relcache init file).
is "$(q "$u2" "select count(*) from pg_stat_database where datname = 'postgres' and xact_commit > 5")" 0 \
	"a handed-out server ran no transactions before ours (beyond connection setup)"
q "$u2" 'create table mine(x int)'
run "$PGSNAP" new
u3=$out
is "$(q "$u3" "select count(*) from pg_class where relname = 'mine'")" 0 "clones from the pool are isolated"

# url=$(pgsnap new) returns at once: the keeper holds no inherited fd.
ok "$(wait_for 60 npooled_is 2; echo $?)" "pool full again"
t0=$(date +%s%N)
u4=$(timeout 30 "$PGSNAP" new)
t1=$(date +%s%N)
is "$?" 0 "url=\$(pgsnap new) returns"
ok "$([ $(( (t1 - t0) / 1000000 )) -lt 20000 ]; echo $?)" "well before the keeper ends (PGSNAP_POOL_TTL=120)"
ok "$(nkeepers_is 1; echo $?)" "while the keeper is still running"

# Never handed out twice: concurrent callers each get their own server.
ok "$(wait_for 60 npooled_is 2; echo $?)" "pool full before the race"
outs=$TEST_TMP/race
mkdir -p "$outs"
pids=""
for i in 1 2 3 4 5 6; do "$PGSNAP" new >"$outs/$i" 2>&1 & pids="$pids $!"; done
wait $pids # only ours: tap.sh may have children of its own (its watchdog)
is "$(cat "$outs"/* | grep -c '^postgresql://')" 6 "six concurrent news all succeed"
is "$(cat "$outs"/* | sort -u | wc -l)" 6 "with six different URLs"
n_ok=0
for f in "$outs"/*; do [ "$(q "$(cat "$f")" 'select 1')" = 1 ] && n_ok=$((n_ok + 1)); done
is "$n_ok" 6 "each answers"
is "$("$PGSNAP" ls -a | awk '$3 == "ready"' | wc -l)" 10 "ten clones ready, no record shared"

# A pooled server that died is never handed out; the keeper replaces it.
ok "$(wait_for 60 npooled_is 2; echo $?)" "pool full"
killed=$(pooled)
kpids=""
for id in $killed; do
	kpids="$kpids $("$PGSNAP" ls -a | awk -v i="$id" '$1 == i { print $4 }')"
done
kill -9 $kpids
gone() { local p; for p in $kpids; do alive "$p" && return 1; done; return 0; }
ok "$(wait_for 10 gone; echo $?)" "the killed servers are dead (SIGKILL is asynchronous)"
run "$PGSNAP" new
is "$rc" 0 "new with the pooled servers killed exits 0"
unlike "$killed" "$(id_of "$out")" "and does not hand out a dead one"
is "$(q "$out" 'select 1')" 1 "its server answers"
ok "$(wait_for 60 npooled_is 2; echo $?)" "the keeper replaces the dead ones"
unlike "$(pooled)" "$(echo $killed | tr ' ' '|')" "dead records are gone from the pool"

# A variant the pool does not hold starts cold, and gets its own keeper.
ok "$(wait_for 60 npooled_is 2; echo $?)" "default pool full"
before=$(pooled)
run "$PGSNAP" new -o "-c work_mem=77MB"
is "$rc" 0 "new -o (another variant) exits 0"
uo=$out
unlike "$before" "$(id_of "$uo")" "-o does not take a default-variant server"
is "$(q "$uo" 'show work_mem')" 77MB "-o reached the server"
ok "$(wait_for 60 nkeepers_is 2; echo $?)" "a second keeper runs for the -o variant"
ok "$(wait_for 60 npooled_is 4; echo $?)" "which fills its own pool"
run "$PGSNAP" new -o "-c work_mem=77MB"
uo2=$out
is "$(q "$uo2" 'show work_mem')" 77MB "the next -o new comes from its pool, with the option"
run "$PGSNAP" new -t
ut=$out
like "$ut" '^postgresql://postgres:[^@]+@127\.0\.0\.1:[0-9]+/postgres$' "-t is a variant too: a TCP URL with a password"
is "$(q "$ut" 'select inet_server_addr()')" 127.0.0.1 "and it works over TCP"
ok "$(wait_for 60 nkeepers_is 3; echo $?)" "a third keeper for -t"
ok "$(wait_for 60 npooled_is 6; echo $?)" "its pool fills"
before=$(pooled)
run "$PGSNAP" new -t
ut2=$out
like "$before" "$(id_of "$ut2")" "new -t comes from the -t pool"
isnt "$ut2" "$ut" "with its own password and port"
is "$(q "$ut2" 'select inet_server_addr()')" 127.0.0.1 "and works over TCP"

# --pool 0 and PGSNAP_POOL=0: no pool, no keeper.
h0=$TEST_TMP/nopool
run env PGSNAP_HOME="$h0" "$PGSNAP" new --pool 0
is "$rc" 0 "new --pool 0 exits 0"
is "$(PGSNAP_HOME=$h0 nkeepers)" 0 "--pool 0 starts no keeper"
is "$(PGSNAP_HOME=$h0 "$PGSNAP" ls -a | grep -c pooled)" 0 "and pools nothing"
run env PGSNAP_HOME="$h0" PGSNAP_POOL=0 "$PGSNAP" new
is "$(PGSNAP_HOME=$h0 nkeepers)" 0 "PGSNAP_POOL=0 starts no keeper"
run "$PGSNAP" new --pool x
is "$rc" 2 "--pool x: exit 2"
like "$err" "pool 'x'" "naming it"
run "$PGSNAP" new --pool 65
is "$rc" 2 "--pool 65: out of range, exit 2"
run env PGSNAP_POOL=two "$PGSNAP" new
is "$rc" 1 "PGSNAP_POOL=two: exit 1 (a bad setting, as a bad PGSNAP_HOME)"
like "$err" "PGSNAP_POOL 'two'" "naming it"

# rm --all: every clone, every pooled server, every keeper.
run "$PGSNAP" rm --all
is "$rc" 0 "rm --all exits 0"
is "$("$PGSNAP" ls -a)" "" "nothing left, pooled servers included"
ok "$(nkeepers_is 0; echo $?)" "no keeper left (rm --all waited for them)"
is "$(servers_under "$PGSNAP_HOME/run")" 0 "no server left"
is "$(ls "$PGSNAP_HOME/run/clones" | wc -l)" 0 "no clone directory left"

# A snapshot that goes away takes its pool along: pooled servers are
# nobody's clones, so they do not hold it (ls does not show them either).
hs=$TEST_TMP/snaprm
us=$(PGSNAP_HOME=$hs "$PGSNAP" new)
ok "$(PGSNAP_HOME=$hs wait_for 60 npooled_is 2; echo $?)" "a pool for the default snapshot"
PGSNAP_HOME=$hs "$PGSNAP" rm "$us" >/dev/null
run env PGSNAP_HOME="$hs" "$PGSNAP" snapshot rm default
is "$rc" 0 "snapshot rm without --force: the pooled servers do not count as clones"
is "$(PGSNAP_HOME=$hs "$PGSNAP" ls -a)" "" "and they are gone with it"
ok "$(PGSNAP_HOME=$hs nkeepers_is 0; echo $?)" "so is their keeper"
is "$(servers_under "$hs/run")" 0 "no server left"

# Unused pooled servers expire: memory is not held for nothing.
he=$TEST_TMP/expire
ue=$(PGSNAP_HOME=$he PGSNAP_POOL_TTL=2 "$PGSNAP" new)
is "$?" 0 "new in a store with PGSNAP_POOL_TTL=2"
ok "$(PGSNAP_HOME=$he wait_for 60 npooled_is 2; echo $?)" "its pool fills"
ok "$(PGSNAP_HOME=$he wait_for 30 npooled_is 0; echo $?)" "and empties after 2 s without a handout"
ok "$(PGSNAP_HOME=$he wait_for 10 nkeepers_is 0; echo $?)" "its keeper exits"
is "$(servers_under "$he/run")" 1 "only the clone handed out still runs"
is "$(q "$ue" 'select 1')" 1 "and it still answers"
PGSNAP_HOME=$he "$PGSNAP" rm --all >/dev/null

done_testing
