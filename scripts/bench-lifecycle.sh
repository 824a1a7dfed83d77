#!/bin/sh
# bench-lifecycle.sh - many live clones, gc and the registry lock (issues
# 4 and 13):
#   1. BENCH_LC_N (1000) live clones at once, made BENCH_LC_J (8) at a time
#      with `pgsnap new -w 3600`: time until all are ready, failures and
#      the limit behind them, the kernel limits that matter, the store's
#      service (one for all) and its CPU while it watches them all;
#   2. memory per idle clone: PSS summed over the postmaster and its
#      children (/proc/PID/smaps_rollup), median and p90 over all clones,
#      beside MemAvailable before and after divided by the clone count;
#   3. registry lock: wait and hold time of every lock taken while the
#      clones were made (PGSNAP_LOCK_TRACE), median, p90, max;
#   4. gc of half of them once expired: total time of `pgsnap gc` (servers
#      stopped, records dropped, files deleted), beside the machine's floor
#      for the same work on the other half (SIGKILL every process of those
#      servers, wait for them, unmount, delete their directories);
#   5. -w: how long after the last client disconnects a clone past its
#      time is gone (BENCH_LC_W samples).
# Called by scripts/bench.sh (make bench) with BENCH_RESULTS; runs alone
# too: sh scripts/bench-lifecycle.sh.  Removes all it made.
# The store goes in BENCH_LC_DIR (default /dev/shm: where pgsnap puts its
# clones when PGSNAP_HOME is not set); the pool is off (PGSNAP_POOL=0): this
# measures making, holding and collecting clones, not handing out warm ones.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${PGSNAP_BUILD:-$TOP/build}
PGSNAP=${PGSNAP:-$B/pgsnap}
N=${BENCH_LC_N:-1000}
J=${BENCH_LC_J:-8}
WN=${BENCH_LC_W:-5}
RESULTS=${BENCH_RESULTS:-/dev/null}
W=$(mktemp -d "${BENCH_LC_DIR:-/dev/shm}/pgsnap-bench-lc.XXXXXX") || exit 1
chmod 755 "$W"
export PGSNAP_HOME=$W/home PGSNAP_POOL=0
RUN=$PGSNAP_HOME/run
say() { printf '%s\n' "$*" >&2; }
row() { (IFS='	'; printf '%s\n' "$*") >>"$RESULTS"; }
ms() { date +%s%3N; }
# stats FILE (one number a line): "n median p90 min max mean"
stats() {
	sort -n "$1" | awk '{ v[NR] = $1; s += $1 } END {
		if (!NR) { print "0 - - - - -"; exit }
		i = int(NR * 0.9 + 0.5); if (i < 1) i = 1; if (i > NR) i = NR
		printf "%d %.3f %.3f %.3f %.3f %.3f\n", NR, v[int((NR + 1) / 2)], v[i], v[1], v[NR], s / NR }'
}

cleanup() {
	if [ -d "$RUN" ]; then
		"$PGSNAP" rm --all >/dev/null 2>&1
		"$PGSNAP" gc -q >/dev/null 2>&1
	fi
	# Never rm -rf through a clone's mount.
	if grep -q " $W/" /proc/mounts; then
		say "bench-lifecycle: clones still mounted under $W: left in place"
		return
	fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "== lifecycle: $N live clones, $J at a time (store on $(stat -f -c %T "$W"))"
for k in kernel.shmmni kernel.shmall kernel.sem kernel.pid_max kernel.threads-max \
	 fs.file-max vm.max_map_count fs.inotify.max_user_instances; do
	say "   $k = $(sysctl -n "$k" 2>/dev/null | tr '\t' ' ')"
done
say "   ulimit -u (processes) = $(ulimit -u), ulimit -n (files) = $(ulimit -n)"
"$PGSNAP" new -w 0 >/dev/null || { say "pgsnap new fails: skipped"; row na lifecycle - - - - - - "new fails"; exit 0; }
"$PGSNAP" rm --all
mem_before=$(awk '/^MemAvailable/ { print $2 }' /proc/meminfo)

# 1. N clones, J at a time.
mkdir -p "$W/out"
export PGSNAP_LOCK_TRACE=$W/locktrace
t0=$(ms)
seq "$N" | xargs -P "$J" -I{} sh -c '"$0" new -w 3600 >"$1/out/url.{}" 2>"$1/out/err.{}"' "$PGSNAP" "$W"
t1=$(ms)
unset PGSNAP_LOCK_TRACE
ready=$("$PGSNAP" ls | grep -c ' ready ')
fails=$(cat "$W"/out/err.* | grep -c .)
ready_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
say "   $ready of $N ready after $ready_s s ($(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / n }') ms per clone, $J at a time); $fails failed"
if [ "$fails" != 0 ]; then
	say "   failures: $(cat "$W"/out/err.* | sed 's/[0-9]\{4,\}/N/g' | sort | uniq -c | sort -rn | head -3)"
fi
row val lifecycle-live clones_ready "$ready" clones "of $N, $J at a time"
row val lifecycle-live time_to_all_ready "$ready_s" s "$N clones, $J at a time"
row val lifecycle-live failures "$fails" clones "$(cat "$W"/out/err.* 2>/dev/null | head -1 | cut -c1-120)"
say "   processes: $(ps -e --no-headers | wc -l) in all; System V segments: $(ipcs -m | grep -c '^0x')"
sups=$(fuser "$RUN/service.lock" 2>/dev/null | wc -w)
say "   services for the store: $sups"
row val lifecycle-live services "$sups" processes "one per store"

# The service's CPU while it watches them all (10 s).
sup=$(fuser "$RUN/service.lock" 2>/dev/null | awk '{ print $1 }')
if [ -n "$sup" ] && [ -r "/proc/$sup/stat" ]; then
	c0=$(awk '{ print $14 + $15 }' "/proc/$sup/stat")
	sleep 10
	c1=$(awk '{ print $14 + $15 }' "/proc/$sup/stat")
	tck=$(getconf CLK_TCK)
	pct=$(awk -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN { printf "%.1f", (b - a) / t / 10 * 100 }')
	say "   service CPU watching $ready clones: $pct % of one core"
	row val lifecycle-live service_cpu "$pct" "%" "of one core, watching $ready clones, 10 s"
fi

# 2. PSS per idle clone.
: >"$W/pss"
for pid in $("$PGSNAP" ls | awk 'NR > 1 { print $4 }'); do
	kids=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
	for p in $pid $kids; do
		awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null
	done | awk '{ s += $1 } END { printf "%.3f\n", s / 1024 }' >>"$W/pss"
done
read -r n med p90 min max mean <<<"$(stats "$W/pss")"
mem_after=$(awk '/^MemAvailable/ { print $2 }' /proc/meminfo)
per=$(awk -v a="$mem_before" -v b="$mem_after" -v n="$ready" 'BEGIN { if (n) printf "%.1f", (a - b) / 1024 / n; else print "-" }')
say "   PSS per idle clone (postmaster + children): median $med MB, p90 $p90 MB, max $max MB (n=$n)"
say "   MemAvailable dropped by $per MB per clone (includes page cache, the overlay upper dirs, the kernel)"
row val lifecycle-live pss_per_clone_median "$med" MB "n=$n, smaps_rollup summed over the processes of a clone"
row val lifecycle-live pss_per_clone_p90 "$p90" MB "n=$n"
row val lifecycle-live memavailable_per_clone "$per" MB "MemAvailable before/after over $ready clones"

# 3. Lock wait and hold.
awk '{ printf "%.3f\n", $2 / 1000 }' "$W/locktrace" >"$W/hold"
awk '{ printf "%.3f\n", $1 / 1000 }' "$W/locktrace" >"$W/wait"
read -r n med p90 min max mean <<<"$(stats "$W/hold")"
say "   registry lock held: median $med ms, p90 $p90 ms, max $max ms over $n locks ($(awk -v n="$n" -v c="$N" 'BEGIN { printf "%.1f", n / c }') per new)"
row lat lifecycle-lock-hold "$n" "$med" "$p90" "$min" "$max" "$mean" "every registry lock while $N clones were made $J at a time"
read -r n med p90 min max mean <<<"$(stats "$W/wait")"
say "   registry lock waited for: median $med ms, p90 $p90 ms, max $max ms"
row lat lifecycle-lock-wait "$n" "$med" "$p90" "$min" "$max" "$mean" "same locks: time waiting for them"

# 4. Half of them expired at once: gc, beside the floor for the other half.
"$PGSNAP" service stop # (it would collect them itself, untimed)
ids=$("$PGSNAP" ls -q)
half=$(echo "$ids" | head -n $((N / 2)))
rest=$(echo "$ids" | tail -n +$((N / 2 + 1)))
# Age each record of the first half by an hour, with -w 1 (a record file
# each, replaced whole, as pgsnap does).
for id in $half; do
	f=$RUN/records/$id
	awk 'BEGIN { FS = OFS = "\t" } NR > 1 { for (i = 1; i <= NF; i++) {
		if ($i ~ /^created_ms=/) $i = sprintf("created_ms=%.0f", substr($i, 12) - 3600000)
		if ($i ~ /^timeout_s=/) $i = "timeout_s=1" } } { print }' "$f" >"$f.age" && mv "$f.age" "$f"
done
live=$(echo "$half" | grep -c .)
sync
t0=$(ms)
PGSNAP_SERVICE=0 "$PGSNAP" gc -q
t1=$(ms)
gc_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
# gc returns once the directories are in the trash; its deleter goes on
# in the background.  Until the trash is empty too: the same work as the
# floor's.
while [ -n "$(ls -A "$RUN/trash" 2>/dev/null)" ]; do sleep 0.01; done
t2=$(ms)
gc_all_s=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
left=0
for id in $half; do [ -e "$RUN/records/$id" ] && left=$((left + 1)); done
say "   gc of $live expired clones: $gc_s s, $gc_all_s s until its trash is empty (left: $left records)"
# The floor: the same work by hand on the other half.
pids=""
for id in $rest; do
	p=$(head -1 "$RUN/clones/$id/data/postmaster.pid" 2>/dev/null) || continue
	pids="$pids $p $(cat /proc/"$p"/task/*/children 2>/dev/null)"
done
sync
t0=$(ms)
kill -9 $pids 2>/dev/null
for p in $pids; do while [ -d "/proc/$p" ] && ! grep -q '^State:.Z' "/proc/$p/status" 2>/dev/null; do :; done; done
for id in $rest; do umount -l "$RUN/clones/$id/data" 2>/dev/null; rm -rf "$RUN/clones/$id"; done
t1=$(ms)
floor_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
for id in $rest; do rm -f "$RUN/records/$id"; done
say "   the floor for the same work on the other $(echo "$rest" | grep -c .): $floor_s s (SIGKILL, wait, unmount, rm -rf)"
row val lifecycle-gc gc_expired_s "$gc_s" s "$live expired clones: stopped, unmounted, deleted, records dropped"
row val lifecycle-gc floor_s "$floor_s" s "the same work by hand: SIGKILL every process, wait, unmount, rm -rf"
row val lifecycle-gc gc_trash_empty_s "$gc_all_s" s "the same until its trash deleter has deleted every directory"
row val lifecycle-gc gc_over_floor "$(awk -v a="$gc_all_s" -v b="$floor_s" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" x "gc until the trash is empty / floor; target <= 1.5"
"$PGSNAP" gc -q >/dev/null 2>&1

# 5. -w: from the last client's disconnect to the clone being gone.
: >"$W/wlat"
: >"$W/wdue"
for i in $(seq "$WN"); do
	u=$("$PGSNAP" new -w 1) || break
	id=$(echo "$u" | grep -o 'clones%2F[0-9a-f]*' | sed 's/clones%2F//')
	created=$(tr '\t' '\n' <"$RUN/records/$id" | sed -n 's/^created_ms=//p')
	psql -X -qAt -d "$u" -c 'select pg_sleep(1.5)' >/dev/null 2>&1
	t0=$(ms)
	while "$PGSNAP" ls -q | grep -qx "$id"; do sleep 0.02; done
	t1=$(ms)
	echo $((t1 - t0)) >>"$W/wlat"
	u=$("$PGSNAP" new -w 1) || break
	id=$(echo "$u" | grep -o 'clones%2F[0-9a-f]*' | sed 's/clones%2F//')
	created=$(tr '\t' '\n' <"$RUN/records/$id" | sed -n 's/^created_ms=//p')
	while "$PGSNAP" ls -q | grep -qx "$id"; do sleep 0.02; done
	t1=$(ms)
	echo $((t1 - created - 1000)) >>"$W/wdue"
done
read -r n med p90 min max mean <<<"$(stats "$W/wlat")"
say "   -w 1, client until 1.5 s: gone $med ms (median; p90 $p90, max $max) after the disconnect (n=$n)"
row lat lifecycle-w-disconnect "$n" "$med" "$p90" "$min" "$max" "$mean" "-w 1 clone with a client: disconnect to gone"
read -r n med p90 min max mean <<<"$(stats "$W/wdue")"
say "   -w 1, never used: gone $med ms (median; p90 $p90, max $max) after its time was up (n=$n)"
row lat lifecycle-w-unused "$n" "$med" "$p90" "$min" "$max" "$mean" "-w 1 clone never used: time up to gone"
