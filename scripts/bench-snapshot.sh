#!/bin/sh
# bench-snapshot.sh - a snapshot worth cloning (issue 5): 100 tables with
# indexes and ~100 MB of rows.  Time to a ready clone (first answered
# `select 1`) with pgsnap, beside CREATE DATABASE ... TEMPLATE on a running
# server (pgtestdb, IntegreSQL) and beside loading the schema into a fresh
# server.  Also: the cost of the key check (--build-if-stale) and of mock
# time (--now) baked into a snapshot versus applied at each new; and, for
# CI shards (issue 13), a snapshot imported from its archive versus built,
# the default one and this one.
#
# Run by scripts/bench.sh (topics) or alone after `make bench` built the
# timer:  sh scripts/bench-snapshot.sh
# Environment: PGSNAP, BENCH_TIMER, BENCH_N (samples, default 15),
# BENCH_RESULTS (rows appended, see bench.sh), BENCH_WORK (scratch dir),
# BENCH_SNAP_TABLES=100, BENCH_SNAP_ROWS=9000 (rows per table: ~100 MB of
# heap in all), BENCH_SNAP_LOAD_N=3 (samples of the slow fresh-load case),
# BENCH_SNAP_MOVE_N=7 (samples of each import, and of building default),
# BENCH_SNAP_BIG_BUILD_N=3 (builds of the big snapshot in a fresh store).
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
PGSNAP=${PGSNAP:-$TOP/build/pgsnap}
TIMER=${BENCH_TIMER:-$TOP/build/bench/timer}
N=${BENCH_N:-15}
TABLES=${BENCH_SNAP_TABLES:-100}
ROWS=${BENCH_SNAP_ROWS:-9000}
LOAD_N=${BENCH_SNAP_LOAD_N:-3}
MOVE_N=${BENCH_SNAP_MOVE_N:-7}
BIG_BUILD_N=${BENCH_SNAP_BIG_BUILD_N:-3}
RESULTS=${BENCH_RESULTS:-/dev/null}
for f in "$PGSNAP" "$TIMER"; do
	[ -x "$f" ] || { echo "bench-snapshot.sh: $f missing: run 'make bench'" >&2; exit 1; }
done
OWN_WORK=""
if [ -z "${BENCH_WORK:-}" ]; then
	BENCH_WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/pgsnap-bench-snap.XXXXXX")
	OWN_WORK=$BENCH_WORK
fi
mkdir -p "$BENCH_WORK"
chmod 755 "$BENCH_WORK"
# A store of our own: nothing of the caller's is touched.
export PGSNAP_HOME="$BENCH_WORK/home"
export PGSNAP_POOL=0
cleanup() {
	"$PGSNAP" rm --all >/dev/null 2>&1 || true
	[ -n "$OWN_WORK" ] && rm -rf "$OWN_WORK"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

row() { (IFS='	'; printf '%s\n' "$*") >>"$RESULTS"; }
say() { printf '%s\n' "$*" >&2; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# Medians of the cases, by name, for the ratios at the end.
TAB=$BENCH_WORK/table
: >"$TAB"
med() { awk -F'\t' -v c="$1" '$1 == c { print $3 }' "$TAB"; }
ratio() { # ratio A B: A's median / B's median
	a=$(med "$1") b=$(med "$2")
	case "$a$b" in *-*|"") echo "-" ;; *) awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }' ;; esac
}
# timed CASE NOTE MODE ARGS...: timer line "n median p90 min max mean".
timed() {
	c=$1 note=$2 mode=$3
	shift 3
	if s=$("$TIMER" "$mode" "$@" 2>"$BENCH_WORK/err"); then
		record "$c" "$note" "$s"
	else
		failed "$c"
	fi
}
# record CASE NOTE "n median p90 min max mean": a lat row and a table line.
record() {
	# shellcheck disable=SC2086
	row lat "$1" $3 "$2"
	# shellcheck disable=SC2086
	set -- "$1" "$2" $3
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$3" "$4" "$5" "$2" >>"$TAB"
}
failed() {
	row na "$1" - - - - - - "failed: $(tail -1 "$BENCH_WORK/err")"
	printf '%s\t-\t-\t-\tfailed: %s\n' "$1" "$(tail -1 "$BENCH_WORK/err")" >>"$TAB"
}

# ---- the schema: TABLES tables, 2 indexes each, ROWS rows each -------------
SQL=$BENCH_WORK/schema.sql
i=1
while [ "$i" -le "$TABLES" ]; do
	cat <<SQL
create table t$i (id bigint primary key, k int not null, v text not null,
  ts timestamptz not null default now());
insert into t$i select g, g % 1000, repeat(md5(g::text), 2), now()
  from generate_series(1, $ROWS) g;
create index t${i}_k on t$i (k);
SQL
	i=$((i + 1))
done >"$SQL"

say "bench-snapshot: building the snapshot ($TABLES tables x $ROWS rows)"
t0=$(date +%s%N)
"$PGSNAP" snapshot build -q bench100 -f "$SQL" >/dev/null 2>"$BENCH_WORK/err" || {
	say "snapshot build failed: $(cat "$BENCH_WORK/err")"; exit 1; }
build_ms=$(ms_since "$t0")
t0=$(date +%s%N)
"$PGSNAP" snapshot build -q bench100 -f "$SQL" >/dev/null 2>&1
check_ms=$(ms_since "$t0")
snap_mb=$(du -sm "$PGSNAP_HOME/snapshots/bench100/data" | cut -f1)
url=$("$PGSNAP" new -s bench100)
heap_mb=$(psql -X -qAt -d "$url" -c "select round(sum(pg_table_size(oid)) / 1048576.0) from pg_class where relname ~ '^t[0-9]+$'")
idx_mb=$(psql -X -qAt -d "$url" -c "select round(sum(pg_relation_size(oid)) / 1048576.0) from pg_class where relkind = 'i' and relname ~ '^t[0-9]+_'")
row val snapshot-bench100 build_ms "$build_ms" ms "$TABLES tables, $ROWS rows each: snapshot build (one run)"
row val snapshot-bench100 uptodate_ms "$check_ms" ms "snapshot build again, same inputs (key check only)"
row val snapshot-bench100 data_mb "$snap_mb" MiB "golden data directory ($heap_mb MiB tables, $idx_mb MiB indexes)"

# ---- 1. pgsnap new -s: each clone method that works here --------------------
say "  pgsnap new -s bench100"
"$PGSNAP" rm --all >/dev/null
for m in auto overlay reflink copy; do
	if ! e=$("$PGSNAP" new -s bench100 -m "$m" 2>&1 >/dev/null); then
		row na "snap100-pgsnap-$m" - - - - - - "unavailable here: $e"
		printf '%s\t-\t-\t-\tunavailable: %s\n' "snap100-pgsnap-$m" "$e" >>"$TAB"
		continue
	fi
	"$PGSNAP" rm --all >/dev/null
	timed "snap100-pgsnap-$m" "pgsnap new -s bench100 -m $m" \
		lat -n "$N" -- "$PGSNAP" new -s bench100 -m "$m" --- "$PGSNAP" rm {}
done
timed snap100-pgsnap-if-stale "pgsnap new -s bench100 --build-if-stale (up to date)" \
	lat -n "$N" -- "$PGSNAP" new -s bench100 --build-if-stale --- "$PGSNAP" rm {}

# ---- 2. CREATE DATABASE ... TEMPLATE on a running server -------------------
say "  CREATE DATABASE TEMPLATE"
tpl=$("$PGSNAP" new -s bench100)
psql -X -q -d "$tpl" -c "create database bench_tpl template postgres" >/dev/null
for st in WAL_LOG FILE_COPY; do
	timed "snap100-template-$st" "CREATE DATABASE TEMPLATE (STRATEGY $st), connect, select 1" \
		tpl -n "$N" -d "$tpl" -T bench_tpl -S "$st"
done
"$PGSNAP" rm "$tpl" >/dev/null

# ---- 3. a fresh server, then the schema loaded into it -----------------------
say "  fresh server + load ($LOAD_N runs)"
timed snap100-fresh-load "pgsnap new (default) + psql -f schema.sql" \
	lat -n "$LOAD_N" -w 0 -- sh -c 'u=$("$1" new) && psql -X -q -d "$u" -f "$2" >/dev/null && echo "$u"' \
	sh "$PGSNAP" "$SQL" --- "$PGSNAP" rm {}

# ---- 4. mock time: baked into a derived snapshot vs applied at each new -----
say "  --now"
"$PGSNAP" new --now '2021-06-06 12:00:00+00' >/dev/null   # builds default.now-*
"$PGSNAP" rm --all >/dev/null
timed now-baked "pgsnap new --now TIME (derived snapshot, built once)" \
	lat -n "$N" -- "$PGSNAP" new --now '2021-06-06 12:00:00+00' --- "$PGSNAP" rm {}
MOCK="create schema unit_tests; create function unit_tests.now() returns timestamptz language sql stable as \$\$ select '2021-06-06 12:00:00+00'::timestamptz \$\$; alter role postgres set search_path = unit_tests, public, pg_catalog"
timed now-at-new "pgsnap new, then the mock SQL over one connection" \
	lat -n "$N" -- sh -c 'u=$("$1" new) && psql -X -q -d "$u" -c "$2" >/dev/null && echo "$u"' \
	sh "$PGSNAP" "$MOCK" --- "$PGSNAP" rm {}
timed now-none "pgsnap new (default), for reference" \
	lat -n "$N" -- "$PGSNAP" new --- "$PGSNAP" rm {}

# ---- 5. CI shards: a snapshot imported vs built (issue 13) ------------------
# A shard that finds the snapshot in the CI cache imports the archive into
# its fresh store; without it, it builds the snapshot there (its base
# `default` too).  Each sample starts from a fresh store after a sync
# (untimed) and ends with the snapshot installed; the archive is read from
# the page cache (the CI cache's download is not in it).  Floor: tar alone
# extracting the same archive into a directory placed as the store's build
# directories are, what any tar-based import pays.  The cases
# take turns, so that each meets the same machine (on ext4 the files that
# the last round deleted slow the next one's file creation).  An import
# ends once the snapshot can be cloned: its syncfs runs on in the
# background and the copy engine's manifest is made by its first copy
# clone (docs/design.md, "Importing a snapshot"); a build syncs and
# writes the manifest before it returns.
say "  snapshot import vs build"
MOVE=$BENCH_WORK/move
# sample CASE CMD...: one sample of CMD, with MOVE/CASE/home its store.
sample() {
	c=$1
	shift
	[ -e "$BENCH_WORK/$c.failed" ] && return 0
	# As the store's snapshots/ (see store.c): an ext4 top directory.
	mkdir -p "$MOVE/$c" && { chattr +T "$MOVE/$c" 2>/dev/null || :; } && sync
	t0=$(date +%s%N)
	if ! PGSNAP_HOME=$MOVE/$c/home "$@" >/dev/null 2>"$BENCH_WORK/err"; then
		cp "$BENCH_WORK/err" "$BENCH_WORK/$c.failed"
		return 0
	fi
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000 )) | awk '{ printf "%.3f\n", $1 / 1000 }' >>"$BENCH_WORK/$c.ms"
}
summary() { # summary CASE NOTE
	if [ -e "$BENCH_WORK/$1.failed" ]; then
		cp "$BENCH_WORK/$1.failed" "$BENCH_WORK/err"
		failed "$1"
	else
		record "$1" "$2" "$("$TIMER" stats <"$BENCH_WORK/$1.ms")"
	fi
}
for snap in default bench100; do
	# Plain, as the CI recipe ships it (the CI cache compresses), and zstd.
	a=$BENCH_WORK/$snap.tar
	for f in "$a" "$a.zst"; do
		t0=$(date +%s%N)
		"$PGSNAP" snapshot export "$snap" "$f"
		row val "snapshot-export-$snap${f#"$a"}" export_ms "$(ms_since "$t0")" ms \
			"pgsnap snapshot export $snap $(basename "$f") (one run)"
		row val "snapshot-export-$snap${f#"$a"}" archive_mb "$(du -m "$f" | cut -f1)" MiB \
			"the archive; golden data directory $(du -sm "$PGSNAP_HOME/snapshots/$snap/data" | cut -f1) MiB"
	done
	builds=$MOVE_N build_note="pgsnap snapshot build default (fresh store)"
	set -- "$PGSNAP" snapshot build -q default
	if [ "$snap" = bench100 ]; then
		builds=$BIG_BUILD_N build_note="pgsnap snapshot build bench100 -f schema.sql (fresh store: default too)"
		set -- "$PGSNAP" snapshot build -q bench100 -f "$SQL"
	fi
	k=0
	while [ "$k" -lt "$MOVE_N" ]; do
		sample "snap-import-$snap" "$PGSNAP" snapshot import "$a"
		sample "snap-import-zst-$snap" "$PGSNAP" snapshot import "$a.zst"
		sample "snap-tar-$snap" sh -c 'mkdir "$1/x$$" && tar -x -f "$2" -C "$1/x$$"' \
			sh "$MOVE/snap-tar-$snap" "$a"
		[ "$k" -lt "$builds" ] && sample "snap-build-$snap" "$@"
		rm -rf "$MOVE"
		k=$((k + 1))
	done
	summary "snap-import-$snap" "pgsnap snapshot import $snap.tar (fresh store; sync in the background, manifest at the first copy clone)"
	summary "snap-import-zst-$snap" "pgsnap snapshot import $snap.tar.zst (fresh store)"
	summary "snap-tar-$snap" "tar -x of $snap.tar alone (floor)"
	summary "snap-build-$snap" "$build_note"
	r=$(ratio "snap-build-$snap" "snap-import-$snap")
	row val "snapshot-import-$snap" build_over_import "${r%x}" x \
		"build median / import median (issue 13 target: >= 10)"
done

# ---- the table ---------------------------------------------------------------
{
	echo
	echo "snapshot: $TABLES tables + $((TABLES * 2)) indexes, $((TABLES * ROWS)) rows; $heap_mb MiB tables, $idx_mb MiB indexes; golden $snap_mb MiB"
	echo "build: $build_ms ms once; unchanged rebuild (key check): $check_ms ms"
	printf '%-28s %5s %10s %10s  %s\n' CASE N MEDIAN_MS P90_MS WHAT
	awk -F'\t' '{ printf "%-28s %5s %10s %10s  %s\n", $1, $2, $3, $4, $5 }' "$TAB"
	best=""
	for m in auto overlay reflink copy; do
		v=$(med "snap100-pgsnap-$m")
		case "$v" in ""|-) continue ;; esac
		best=snap100-pgsnap-$m
		break
	done
	if [ -n "$best" ]; then
		echo "ratios (median / median of $best):"
		echo "  CREATE DATABASE TEMPLATE WAL_LOG:   $(ratio snap100-template-WAL_LOG "$best")"
		echo "  CREATE DATABASE TEMPLATE FILE_COPY: $(ratio snap100-template-FILE_COPY "$best")"
		echo "  fresh server + load schema:         $(ratio snap100-fresh-load "$best")"
		echo "  pgsnap new -m copy:                 $(ratio snap100-pgsnap-copy "$best")"
		echo "  (size: this snapshot vs the small default one, same method: $(ratio "$best" now-none))"
	fi
	echo "mock time: baked $(med now-baked) ms vs at new $(med now-at-new) ms (plain new $(med now-none) ms)"
	for snap in default bench100; do
		r=$(ratio "snap-build-$snap" "snap-import-$snap")
		case "$r" in -) v=MISS ;; *) v=$(echo "${r%x}" | awk '{ print ($1 >= 10) ? "MET" : "MISS" }') ;; esac
		echo "import $snap: $(med "snap-import-$snap") ms (.tar.zst $(med "snap-import-zst-$snap") ms)" \
			"vs build $(med "snap-build-$snap") ms: $r (tar alone $(med "snap-tar-$snap") ms);" \
			"issue 13, import >= 10x faster than build: $v"
	done
} | tee "$BENCH_WORK/summary" >&2
