#!/usr/bin/env bash
# new -n N: N servers in one call, one line each; the pool first, the rest
# started in parallel; all or nothing.
. "$(dirname "$0")/tap.sh"

pooled() { "$PGSNAP" ls -a | awk '$3 == "pooled" { print $1 }' | sort; }
npooled_is() { [ "$(pooled | wc -l)" -eq "$1" ]; }
id_of() { "$PGSNAP" ls -a | awk -v u="$1" '$NF == u { print $1 }'; }

run "$PGSNAP" new -n 3
is "$rc" 0 "new -n 3 exits 0 (no pool: PGSNAP_POOL=0)"
is "$(printf '%s\n' "$out" | grep -c '^postgresql://')" 3 "prints three URLs, one per line"
is "$(printf '%s\n' "$out" | wc -l)" 3 "and nothing else"
is "$(printf '%s\n' "$out" | sort -u | wc -l)" 3 "three different servers"
n_ok=0
for u in $out; do [ "$(q "$u" 'select 1')" = 1 ] && n_ok=$((n_ok + 1)); done
is "$n_ok" 3 "each answers"
is "$(servers_under "$PGSNAP_HOME/run")" 3 "three servers run"

run "$PGSNAP" new -n 2 --json
is "$(printf '%s\n' "$out" | grep -c '"id"')" 2 "-n 2 --json: one object per clone"

# With a pool: its servers first.
export PGSNAP_POOL=2
run "$PGSNAP" new
ok "$(wait_for 60 npooled_is 2; echo $?)" "a pool of 2 fills"
before=$(pooled)
run "$PGSNAP" new -n 3
is "$rc" 0 "new -n 3 with a pool exits 0"
ids=$(for u in $out; do id_of "$u"; done | sort)
both=$(comm -12 <(printf '%s\n' "$before") <(printf '%s\n' "$ids") | wc -l)
is "$both" 2 "both pooled servers are among the three"
n_ok=0
for u in $out; do [ "$(q "$u" 'select 1')" = 1 ] && n_ok=$((n_ok + 1)); done
is "$n_ok" 3 "each answers"
"$PGSNAP" rm --all >/dev/null
export PGSNAP_POOL=0

# All or nothing.
run "$PGSNAP" new -n 3 -o "-c no_such_setting=1"
is "$rc" 1 "new -n 3 with a bad server option fails"
like "$err" no_such_setting "with the server's message"
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
is "$("$PGSNAP" ls -a)" "" "no clone is left"
is "$(servers_under "$PGSNAP_HOME/run")" 0 "no server is left"

for bad in 0 -1 x 1001; do
	run "$PGSNAP" new -n "$bad"
	is "$rc" 2 "-n $bad: exit 2"
done
like "$err" "'-n'|-n '1001'" "the error names -n"

done_testing
