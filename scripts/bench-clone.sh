#!/bin/sh
# bench-clone.sh - the clone engines side by side, in one run (issue 3):
#   1. clone time alone (no server) per engine and filesystem (tmpfs, a
#      journaled ext4 image, an XFS image with reflink): median and p90 of
#      BENCH_CLONE_N clones, beside `cp -a` and the best plain-syscall copy
#      (two threads with copy_file_range: copy/cfr2);
#   2. removal: pgsnap's way (unmount + rename into the trash) against
#      `rm -rf`, on the same clones;
#   3. request to first answered query (`pgsnap new` + `select 1`) per engine;
#   4. a large snapshot (a 1 GB table): clone time, and request to a first
#      query that reads one page of the big table (overlayfs copies the
#      whole file up on that first touch unless copy-up can reflink).
# Called by scripts/bench.sh (make bench) with BENCH_WORK, BENCH_RESULTS,
# BENCH_TIMER; runs alone too: sh scripts/bench-clone.sh.
# Environment: BENCH_CLONE_N=30, BENCH_CLONE_LARGE_GB=1 (0: skip part 4),
# BENCH_CLONE_FS="tmpfs ext4 xfs".  Loop images need root; without root
# only the store's default place is measured.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${PGSNAP_BUILD:-$TOP/build}
PGSNAP=${PGSNAP:-$B/pgsnap}
TIMER=${BENCH_TIMER:-$B/bench/timer}
N=${BENCH_CLONE_N:-30}
LARGE_GB=${BENCH_CLONE_LARGE_GB:-1}
FSLIST=${BENCH_CLONE_FS:-tmpfs ext4 xfs}
RESULTS=${BENCH_RESULTS:-/dev/null}
PG_BINDIR=${PGSNAP_PG_BINDIR:-$(pg_config --bindir)}
own_work=0
if [ -z "${BENCH_WORK:-}" ]; then
	BENCH_WORK=$(mktemp -d /var/tmp/pgsnap-bench-clone.XXXXXX)
	own_work=1
fi
W=$BENCH_WORK
mkdir -p "$W" && chmod 755 "$W"
say() { printf '%s\n' "$*" >&2; }
row() { (IFS='	'; printf '%s\n' "$*") >>"$RESULTS"; }

cleanup() {
	local h m
	for h in "$W"/*/home; do
		[ -d "$h/run" ] && PGSNAP_HOME=$h "$PGSNAP" rm --all >/dev/null 2>&1
	done
	for m in $(awk -v p="$W/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	[ "$own_work" = 1 ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The engine timer links the internal archive.
CB=$W/clone_bench
# shellcheck disable=SC2046
cc -O2 -D_GNU_SOURCE -std=gnu11 -I"$TOP/lib" $(pkg-config --cflags libpq liburing) \
	-o "$CB" "$TOP/test/bench/clone_bench.c" "$B/libpgsnap-internal.a" \
	$(pkg-config --libs libpq liburing) -lpthread || { say "cannot build clone_bench"; exit 1; }

# stats: "n median p90 min max" of the numbers on stdin.
stats() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (!NR) { print "0 - - - -"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		p = v[int(0.9 * NR + 0.999)]; if (p == "") p = v[NR]
		printf "%d %.2f %.2f %.2f %.2f\n", NR, m, p, v[1], v[NR] }'
}

mount_fs() { # TYPE DIR
	mkdir -p "$2"
	case $1 in
	tmpfs) mount -t tmpfs -o size=8g,mode=0755 tmpfs "$2" ;;
	ext4) truncate -s 8G "$2.img" && mkfs.ext4 -q -F -j "$2.img" && mount -o loop "$2.img" "$2" ;;
	xfs) truncate -s 8G "$2.img" && mkfs.xfs -q -f -m reflink=1 "$2.img" && mount -o loop "$2.img" "$2" ;;
	esac && chmod 755 "$2"
}

TAB=$W/table
: >"$TAB"
# line SECTION FS WHAT STATS...
line() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TAB"; }

ENGINES="overlay reflink copy:uring copy:uringfix copy:cfr2 copy:write2 cp-a"

# clone_times FS HOME SNAPSHOT WHAT N
clone_times() {
	local fs=$1 h=$2 snap=$3 what=$4 n=$5 m=${4%%:*} impl="" out
	[ "$m" != "$4" ] && impl=${4#*:}
	if ! out=$(PGSNAP_COPY_IMPL=$impl "$CB" clone "$h" "$snap" "$m" "$n" 2>&1 >"$W/s"); then
		line clone "$fs/$snap" "$what" "n/a: $(tail -1 <<<"$out")"
		return
	fi
	line clone "$fs/$snap" "$what" "$(awk '{ print $1 }' "$W/s" | stats)"
	line remove "$fs/$snap" "$what trash" "$(awk '$3 == "trash" { print $2 }' "$W/s" | stats)"
	line remove "$fs/$snap" "$what rm-rf" "$(awk '$3 == "rm-rf" { print $2 }' "$W/s" | stats)"
	row val "clone-$fs-$snap-$what" median_ms "$(awk '{ print $1 }' "$W/s" | stats | cut -d' ' -f2)" ms "engine alone"
}

# first_query FS WHAT SQL N: pgsnap new -m WHAT, then SQL, timed together.
first_query() {
	local fs=$1 what=$2 sql=$3 n=$4 snap=${5:-default} i t0 t1 u
	: >"$W/q"
	for ((i = 0; i < n; i++)); do
		t0=$EPOCHREALTIME
		u=$("$PGSNAP" new -s "$snap" -m "$what" 2>"$W/err") || {
			line query "$fs/$snap" "$what" "n/a: $(tail -1 "$W/err")"; return; }
		"$PG_BINDIR/psql" -X -qAt -d "$u" -c "$sql" >/dev/null || return
		t1=$EPOCHREALTIME
		echo "$t0 $t1" | awk '{ printf "%.3f\n", ($2 - $1) * 1000 }' >>"$W/q"
		"$PGSNAP" rm "$u"
	done
	line query "$fs/$snap" "$what" "$(stats <"$W/q")"
	row lat "clone-first-query-$fs-$snap-$what" $(stats <"$W/q" | awk '{ print $1, $2, $3, $4, $5, "-" }') "new -m $what + $sql"
}

# make_big HOME: a snapshot "big" with a LARGE_GB table (pgsnap snapshot
# save of a clone); BIG_SRC remembers it for the other filesystems.
BIG_SRC=""
make_big() {
	local h=$1 u
	if [ -n "$BIG_SRC" ]; then
		cp -a "$BIG_SRC" "$h/snapshots/big"
		return
	fi
	u=$(PGSNAP_HOME=$h "$PGSNAP" new -m copy) || return 1
	"$PG_BINDIR/psql" -X -qAt -d "$u" -c "create table big as select g, repeat(md5(g::text), 30) pad
		from generate_series(1, $((LARGE_GB * 1000000))) g; checkpoint" >/dev/null || return 1
	PGSNAP_HOME=$h "$PGSNAP" snapshot save "$u" big >/dev/null || return 1
	PGSNAP_HOME=$h "$PGSNAP" rm "$u" >/dev/null 2>&1
	BIG_SRC=$h/snapshots/big
}

if [ "$(id -u)" != 0 ]; then
	say "bench-clone: not root: no loop images; measuring the default store place only"
	FSLIST=default
fi

for fs in $FSLIST; do
	h=$W/$fs/home
	if [ "$fs" != default ] && ! mount_fs "$fs" "$W/$fs"; then
		line clone "$fs" - "n/a: cannot mount $fs"
		continue
	fi
	mkdir -p "$h"
	export PGSNAP_HOME=$h
	say "bench-clone: $fs: $N clones per engine"
	"$PGSNAP" new -m copy >/dev/null && "$PGSNAP" rm --all
	for e in $ENGINES; do
		clone_times "$fs" "$h" default "$e" "$N"
	done
	doc=$("$PGSNAP" doctor 2>&1)
	for m in overlay reflink copy; do
		if grep -q "^method $m *unavailable" <<<"$doc"; then
			line query "$fs/default" "$m" "n/a: $(grep "^method $m" <<<"$doc" | cut -c1-90)"
			continue
		fi
		if [ -x "$TIMER" ]; then
			if s=$("$TIMER" lat -n "$N" -- "$PGSNAP" new -m "$m" --- "$PGSNAP" rm {} 2>"$W/err"); then
				line query "$fs/default" "$m" "$(awk '{ printf "%d %.2f %.2f %.2f %.2f\n", $1, $2, $3, $4, $5 }' <<<"$s")"
				row lat "clone-first-query-$fs-$m" $s "new -m $m + select 1"
			else
				line query "$fs/default" "$m" "n/a: $(tail -1 "$W/err")"
			fi
		else
			first_query "$fs" "$m" "select 1" "$N"
		fi
	done
	if [ "$LARGE_GB" -gt 0 ]; then
		say "bench-clone: $fs: a snapshot with a ${LARGE_GB} GB table"
		if make_big "$h"; then
			for e in overlay reflink copy:uring cp-a; do
				case $e in copy:*|cp-a) n=3 ;; *) n=10 ;; esac
				clone_times "$fs" "$h" big "$e" "$n"
			done
			for m in overlay reflink copy; do
				grep -q "^method $m *unavailable" <<<"$doc" && continue
				case $m in copy) n=3 ;; *) n=10 ;; esac
				first_query "$fs" "$m" "select count(*) from (select g from big limit 1) s" "$n" big
			done
		else
			line clone "$fs/big" - "n/a: could not make the large snapshot"
		fi
	fi
	"$PGSNAP" rm --all >/dev/null 2>&1
	unset PGSNAP_HOME
done

{
	printf '\nclone engines (%s; ms; n clones each)\n' "$(uname -r)"
	printf '%-8s %-16s %-20s %5s %9s %9s %9s %9s\n' section fs/snapshot what n median p90 min max
	while IFS='	' read -r sec fs what st; do
		case $st in
		n/a*) printf '%-8s %-16s %-20s %s\n' "$sec" "$fs" "$what" "$st" ;;
		*) set -- $st; printf '%-8s %-16s %-20s %5s %9s %9s %9s %9s\n' "$sec" "$fs" "$what" "$1" "$2" "$3" "$4" "$5" ;;
		esac
	done <"$TAB"
	# The io_uring copy against the best plain-syscall copy of the same run.
	awk -F'\t' '$1 == "clone" && $3 ~ /^copy:|^cp-a$/ && $4 !~ /^n\/a/ {
		split($4, f, " "); m[$2 "|" $3] = f[2]; fs[$2] = 1 }
	END { for (k in fs) {
		u = m[k "|copy:uring"]; c = m[k "|copy:cfr2"]; w = m[k "|copy:write2"]; a = m[k "|cp-a"]
		if (u == "" || c == "") continue
		best = (w != "" && w < c) ? w : c; bn = (w != "" && w < c) ? "write2" : "cfr2"
		printf "copy verdict %-12s io_uring %6.2f ms, best plain (%s) %6.2f ms, cp -a %6.2f ms: io_uring %s\n",
			k, u, bn, best, a, (u <= best * 1.05) ? "matches or beats it" : sprintf("is %.0f%% SLOWER", (u / best - 1) * 100)
	} }' "$TAB" | sort
	echo "clone: the engine alone; remove: after release, rename into the trash vs rm -rf (a process);"
	echo "query: pgsnap new -m M to the first answered query (big: reading one page of the 1 GB table)."
} | { mkdir -p "$TOP/build/bench"; tee "$TOP/build/bench/clone-table.txt"; }
