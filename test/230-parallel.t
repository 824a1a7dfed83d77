#!/usr/bin/env bash
# 64 concurrent `pgsnap new` from separate processes: 64 distinct clones
# and ports, exactly 64 records, one supervisor; 64 concurrent `rm`: empty.
. "$(dirname "$0")/tap.sh"

N=${PGSNAP_TEST_PARALLEL:-64}
run_dir=$PGSNAP_HOME/run
out_dir=$TEST_TMP/par
mkdir -p "$out_dir"
"$PGSNAP" new -w 0 >/dev/null && "$PGSNAP" rm --all # the snapshot first

pids=()
for i in $(seq "$N"); do
	"$PGSNAP" new -t -w 60 >"$out_dir/url.$i" 2>"$out_dir/err.$i" &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
is "$fails" 0 "$N concurrent new all exit 0"
[ "$fails" = 0 ] || diag "$(cat "$out_dir"/err.* | sort | uniq -c | head -5)"
is "$(cat "$out_dir"/url.* | sort -u | wc -l)" "$N" "$N distinct URLs"
is "$(cat "$out_dir"/url.* | sed 's/.*@127.0.0.1:\([0-9]*\)\/.*/\1/' | sort -u | wc -l)" "$N" "$N distinct ports"
is "$("$PGSNAP" ls -q | sort -u | wc -l)" "$N" "ls lists exactly $N clones"
is "$(records | wc -l)" "$N" "the registry holds exactly $N records"
is "$("$PGSNAP" ls | grep -c ' ready ')" "$N" "all of them ready"
is "$(ls "$run_dir/clones" | wc -l)" "$N" "$N clone directories"
is "$(servers_under "$run_dir")" "$N" "$N servers"
is "$(service_pids | wc -l)" 1 "one service for the store"
bad=0
for f in "$out_dir"/url.*; do
	[ "$(q "$(cat "$f")" 'select 1' 2>/dev/null)" = 1 ] || bad=$((bad + 1))
done
is "$bad" 0 "every URL reaches its own server"

pids=()
for id in $("$PGSNAP" ls -q); do
	"$PGSNAP" rm "$id" 2>>"$out_dir/rmerr" &
	pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
is "$fails" 0 "$N concurrent rm all exit 0"
is "$("$PGSNAP" ls)" "" "ls is empty"
is "$(records | wc -l)" 0 "the registry holds no record"
is "$(ls "$run_dir/clones" | wc -l)" 0 "no clone directory left"
trash_empty() { [ -z "$(ls "$run_dir/trash")" ]; }
until_ok 20 trash_empty; ok $? "the trash empties (deleted in the background)"
is "$(servers_under "$run_dir")" 0 "no server left"
done_testing
