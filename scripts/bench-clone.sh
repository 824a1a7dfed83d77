#!/bin/sh
# bench-clone.sh - the clone engines side by side, in one run (issues 3, 16).
# Per filesystem (tmpfs, a journaled ext4 image, an XFS image with reflink)
# and per snapshot (the default, ~45 MB; "big", with a BENCH_CLONE_LARGE_GB
# table):
#   alone  the engine alone (no server): every method and copy variant
#          beside `cp -a` and `cp -a --reflink=never`, wall and CPU time;
#   user   what a user waits for: `pgsnap new [-m M]` to the first answered
#          query (big: one that reads the big table), every method and copy
#          variant and the automatic choice; `cp -a` and `cp -a
#          --reflink=never` with the server started by pgsnap's own start
#          code (clone_bench first) as the reference;
#   remove pgsnap's way (unmount + rename into the trash) against rm -rf.
# Samples are interleaved (one of each in turn, the order rotated each
# round) and each starts from a quiet store (the trash emptied, sync): a
# sample pays for its own work only.  On ext4, two more rows show what a sample pays otherwise: back to
# back (the previous clones' deletion and writeback) and with the warm pool
# on (a pooled clone, or a keeper copying beside).  Then the managed XFS
# store (`pgsnap store xfs`) on the ext4 disk: the big snapshot's first
# query against the default's.
# Called by scripts/bench.sh (make bench) with BENCH_WORK, BENCH_RESULTS,
# BENCH_TIMER; runs alone too: sh scripts/bench-clone.sh.
# Environment: BENCH_CLONE_N=20 (default snapshot, per variant),
# BENCH_CLONE_BIG_N=5, BENCH_CLONE_LARGE_GB=1 (0: no big snapshot),
# BENCH_CLONE_FS="tmpfs ext4 xfs".  Loop images need root; without root
# only the store's default place is measured.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${PGSNAP_BUILD:-$TOP/build}
PGSNAP=${PGSNAP:-$B/pgsnap}
N=${BENCH_CLONE_N:-20}
BIG_N=${BENCH_CLONE_BIG_N:-5}
LARGE_GB=${BENCH_CLONE_LARGE_GB:-1}
FSLIST=${BENCH_CLONE_FS:-tmpfs ext4 xfs}
RESULTS=${BENCH_RESULTS:-/dev/null}
# One `new` at a time, each making its own clone (bench.sh sets this too).
export PGSNAP_POOL=0
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
		[ -d "$h" ] && PGSNAP_HOME=$h "$PGSNAP" rm --all >/dev/null 2>&1
		[ -e "$h/xfs.img" ] && PGSNAP_HOME=$h "$PGSNAP" store rm >/dev/null 2>&1
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
	$(pkg-config --libs libpq liburing) -lpthread -ldl || { say "cannot build clone_bench"; exit 1; }

# stats: "n median p90 min max mean" of the numbers on stdin.
stats() {
	sort -g | awk '{ v[NR] = $1; s += $1 } END {
		if (!NR) { print "0 - - - - -"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		p = v[int(0.9 * NR + 0.999)]; if (p == "") p = v[NR]
		printf "%d %.2f %.2f %.2f %.2f %.2f\n", NR, m, p, v[1], v[NR], s / NR }'
}

mount_fs() { # TYPE DIR
	mkdir -p "$2"
	case $1 in
	tmpfs) mount -t tmpfs -o size=8g,mode=0755 tmpfs "$2" ;;
	ext4) truncate -s 16G "$2.img" && mkfs.ext4 -q -F -j "$2.img" && mount -o loop "$2.img" "$2" ;;
	xfs) truncate -s 8G "$2.img" && mkfs.xfs -q -f -m reflink=1 "$2.img" && mount -o loop "$2.img" "$2" ;;
	esac && chmod 755 "$2"
}

TAB=$W/table
: >"$TAB"
S=$W/samples
mkdir -p "$S"
# line SECTION FS/SNAP WHAT STATS|n/a...
line() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TAB"; }

# What can be measured: copy = the automatic plan, copy:X = small files by
# X (PGSNAP_COPY_IMPL), copy:X/write = big files written from the image
# (the engine before issue 16) rather than copied in the kernel.
COPIES="copy copy:write2 copy:cfr2 copy:uring copy:uringfix copy:uringat"
variant_env() { # VARIANT: the env words for it
	local v=${1#copy}
	v=${v#:}
	case $v in
	"") echo "PGSNAP_COPY_IMPL= PGSNAP_COPY_BIG=" ;;
	*/*) echo "PGSNAP_COPY_IMPL=${v%/*} PGSNAP_COPY_BIG=${v#*/}" ;;
	*) echo "PGSNAP_COPY_IMPL=$v PGSNAP_COPY_BIG=" ;;
	esac
}
method_of() { case $1 in copy*) echo copy ;; *) echo "$1" ;; esac; }

# rotate R WORD...: the words, starting at the R-th (modulo): each variant
# takes each place in a round in turn, so none always follows the same
# one (a big deletion's aftermath, a filesystem's background work).
rotate() {
	local r=$1 n
	shift
	n=$#
	set -- "$@" "$@"
	shift $((r % n))
	echo "${@:1:n}"
}

# alone FS SNAP ROUNDS WHAT...: interleaved, two clones of each a round
# (one removed by the trash, one by rm -rf).
alone() {
	local fs=$1 snap=$2 rounds=$3 r w out
	shift 3
	for w in "$@"; do : >"$S/alone-$fs-$snap-${w//\//+}"; done
	for ((r = 0; r < rounds; r++)); do
		for w in $(rotate "$r" "$@"); do
			[ -e "$S/alone-$fs-$snap-${w//\//+}.na" ] && continue
			# shellcheck disable=SC2046
			if ! out=$(env $(variant_env "$w") "$CB" clone "$h" "$snap" "$(method_of "$w")" 2 2>&1 \
				>>"$S/alone-$fs-$snap-${w//\//+}"); then
				echo "${out##*clone_bench: }" >"$S/alone-$fs-$snap-${w//\//+}.na"
			fi
		done
	done
	for w in "$@"; do
		local f=$S/alone-$fs-$snap-${w//\//+} st
		if [ -e "$f.na" ]; then
			line alone "$fs/$snap" "$w" "n/a: $(head -c 90 "$f.na")"
			row na "clone-$fs-$snap-$w" - - - - - - "$(cat "$f.na")"
			continue
		fi
		st=$(awk '{ print $1 }' "$f" | stats)
		line alone "$fs/$snap" "$w" "$st cpu $(awk '{ print $4 }' "$f" | stats | cut -d' ' -f2)"
		row lat "clone-$fs-$snap-$w" $st "engine alone, no server; CPU median $(awk '{ print $4 }' "$f" | stats | cut -d' ' -f2) ms"
		line remove "$fs/$snap" "$w trash" "$(awk '$3 == "trash" { print $2 }' "$f" | stats)"
		line remove "$fs/$snap" "$w rm-rf" "$(awk '$3 == "rm-rf" { print $2 }' "$f" | stats)"
	done
}

# user FS SNAP ROUNDS SQL WHAT...: interleaved, to the first answered SQL.
# WHAT: auto (pgsnap new), a method or copy variant (pgsnap new -m), or
# cp-a / cp-a-never (the copy, then pgsnap's own start, clone_bench first).
user() {
	local fs=$1 snap=$2 rounds=$3 sql=$4 r w out
	shift 4
	for w in "$@"; do : >"$S/user-$fs-$snap-${w//\//+}"; done
	for ((r = 0; r < rounds; r++)); do
		for w in $(rotate "$r" "$@"); do
			local f=$S/user-$fs-$snap-${w//\//+}
			[ -e "$f.na" ] && continue
			case $w in
			cp-a*) out=$("$CB" first "$h" "$snap" "$w" 1 "$sql" 2>&1 >>"$f") ;;
			auto) out=$("$CB" cli "$h" 1 "$sql" "$PGSNAP" new -s "$snap" 2>&1 >>"$f") ;;
			# shellcheck disable=SC2046
			*) out=$(env $(variant_env "$w") "$CB" cli "$h" 1 "$sql" \
				"$PGSNAP" new -s "$snap" -m "$(method_of "$w")" 2>&1 >>"$f") ;;
			esac || echo "${out##*clone_bench: }" >"$f.na"
		done
	done
	for w in "$@"; do
		local f=$S/user-$fs-$snap-${w//\//+} st
		if [ -e "$f.na" ]; then
			line user "$fs/$snap" "$w" "n/a: $(head -c 90 "$f.na")"
			row na "clone-first-query-$fs-$snap-$w" - - - - - - "$(cat "$f.na")"
			continue
		fi
		st=$(awk '{ print $1 }' "$f" | stats)
		line user "$fs/$snap" "$w" "$st"
		row lat "clone-first-query-$fs-$snap-$w" $st "$(case $w in
			cp-a*) echo "$w, then pgsnap's start, then: $sql" ;;
			auto) echo "pgsnap new (automatic choice), then: $sql" ;;
			*) echo "pgsnap new -m $w, then: $sql" ;; esac)"
	done
}

# make_big HOME: a snapshot "big" with a LARGE_GB table (pgsnap snapshot
# save of a clone); BIG_SRC remembers it for the other filesystems.
BIG_SRC=""
make_big() {
	local h=$1 u
	[ -d "$h/snapshots/big" ] && return 0
	if [ -n "$BIG_SRC" ]; then
		cp -a "$BIG_SRC" "$h/snapshots/big"
		return
	fi
	u=$(PGSNAP_HOME=$h "$PGSNAP" new -m copy) || return 1
	psql -X -qAt -d "$u" -c "create table big as select g, repeat(md5(g::text), 30) pad
		from generate_series(1, $((LARGE_GB * 1000000))) g; checkpoint" >/dev/null || return 1
	PGSNAP_HOME=$h "$PGSNAP" snapshot save "$u" big >/dev/null || return 1
	PGSNAP_HOME=$h "$PGSNAP" rm "$u" >/dev/null 2>&1
	BIG_SRC=$h/snapshots/big
}

SQL_SMALL="select 1"
SQL_BIG="select count(*) from (select g from big limit 1) s"

if [ "$(id -u)" != 0 ]; then
	say "bench-clone: not root: no loop images; measuring the default store place only"
	FSLIST=default
fi

for fs in $FSLIST; do
	h=$W/$fs/home
	if [ "$fs" != default ] && ! mount_fs "$fs" "$W/$fs"; then
		line alone "$fs" - "n/a: cannot mount $fs"
		continue
	fi
	mkdir -p "$h"
	export PGSNAP_HOME=$h
	"$PGSNAP" new -m copy >/dev/null && "$PGSNAP" rm --all
	methods="overlay reflink $COPIES"
	say "bench-clone: $fs: default snapshot, $N clones per variant"
	alone "$fs" default $((N / 2)) $methods cp-a cp-a-never
	user "$fs" default $((N / 2)) "$SQL_SMALL" auto $methods cp-a-never
	if [ "$LARGE_GB" -gt 0 ]; then
		say "bench-clone: $fs: a snapshot with a ${LARGE_GB} GB table, $BIG_N per variant"
		if make_big "$h"; then
			# Where big files reflink a sample is cheap: take more.
			r=$BIG_N
			grep -q "^method reflink *works" <<<"$("$PGSNAP" doctor)" && r=$((N / 2))
			alone "$fs" big $(((r + 1) / 2)) $methods copy:write2/write cp-a cp-a-never
			user "$fs" big "$r" "$SQL_BIG" auto $methods copy:write2/write cp-a cp-a-never
		else
			line alone "$fs/big" - "n/a: could not make the large snapshot"
		fi
	fi
	if [ "$fs" = ext4 ] && [ -d "$h/snapshots/big" ]; then
		say "bench-clone: ext4: back to back, pool on; the managed XFS store"
		for w in copy cp-a-never; do
			f=$S/b2b-$w
			case $w in
			cp-a*) BENCH_QUIESCE=0 "$CB" first "$h" big "$w" "$BIG_N" "$SQL_BIG" >"$f" ;;
			*) BENCH_QUIESCE=0 "$CB" cli "$h" "$BIG_N" "$SQL_BIG" "$PGSNAP" new -s big -m "$w" >"$f" ;;
			esac
			line user "ext4/big b2b" "$w" "$(awk '{ print $1 }' "$f" | stats)"
			row lat "clone-first-query-ext4-big-$w-b2b" $(awk '{ print $1 }' "$f" | stats) "$w back to back: no quiet store before each"
		done
		BENCH_QUIESCE=0 PGSNAP_POOL=2 "$CB" cli "$h" "$BIG_N" "$SQL_BIG" "$PGSNAP" new -s big -m copy >"$S/pool2"
		"$PGSNAP" rm --all
		line user "ext4/big pool2" copy "$(stats <"$S/pool2")"
		row lat "clone-first-query-ext4-big-copy-pool2" $(stats <"$S/pool2") "pgsnap new -m copy back to back, warm pool of 2 (its keeper copies beside)"
		if out=$("$PGSNAP" store xfs --size 6G 2>&1); then
			user "ext4+xfsstore" default $((N / 2)) "$SQL_SMALL" auto
			user "ext4+xfsstore" big "$BIG_N" "$SQL_BIG" auto overlay reflink copy
			"$PGSNAP" store rm >/dev/null
		else
			line user "ext4+xfsstore" - "n/a: ${out:0:90}"
		fi
	fi
	"$PGSNAP" rm --all >/dev/null 2>&1
	unset PGSNAP_HOME
done

{
	printf '\nclone engines (%s; ms; load %s)\n' "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '%-7s %-20s %-19s %4s %9s %9s %9s %9s %s\n' section fs/snapshot what n median p90 min max ""
	while IFS='	' read -r sec fs what st; do
		case $st in
		n/a*) printf '%-7s %-20s %-19s %s\n' "$sec" "$fs" "$what" "$st" ;;
		*) set -- $st; printf '%-7s %-20s %-19s %4s %9s %9s %9s %9s %s\n' "$sec" "$fs" "$what" "$1" "$2" "$3" "$4" "$5" "${7:+cpu $8}" ;;
		esac
	done <"$TAB"
	awk -F'\t' -f "$TOP/scripts/bench-clone-verdicts.awk" "$TAB"
	echo "alone: the engine, no server (cpu: its CPU time); remove: after release, rename into the trash vs rm -rf;"
	echo "user: to the first answered query (big: reading one page of the big table); copy = the automatic plan,"
	echo "copy:X = small files by X, /write = big files written from the image; cp-a* started by pgsnap's start code."
} | { mkdir -p "$TOP/build/bench"; tee "$TOP/build/bench/clone-table.txt"; }
