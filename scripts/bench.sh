#!/bin/sh
# bench.sh - `make bench`: how fast is a fresh, real PostgreSQL with pgsnap,
# beside the other ways to get one, measured in one run on this machine.
#
# Every figure is timed from outside by build/bench/timer (test/bench/
# timer.c): from starting the command that gives a server up to the first
# answered `select 1` through libpq.  Peers that are libraries (Python's
# testing.postgresql, Perl's Test::PostgreSQL) are timed in their own
# process, the way a test suite uses them: from asking for a server to its
# first answered query.
#
# Environment:
#   BENCH_N=20          samples per latency case (after 1 warm-up)
#   BENCH_ONLY="..."    run only these sections (baseline pgsnap ready
#                       settings peers template burst suite topics)
#   BENCH_BURST=200 BENCH_BURST_J=8 BENCH_SUITE=500 BENCH_SUITE_J=4
#   BENCH_DIR=/var/tmp  where the scratch store's snapshots go; its clones
#   BENCH_RUN_DIR=/dev/shm  and registry go here (run/ is a symlink): the
#                       layout pgsnap uses without PGSNAP_HOME (snapshots
#                       on disk, clones on RAM).  BENCH_RUN_DIR=same: all
#                       under BENCH_DIR.
#
# Results: build/bench/results-STAMP.tsv (and results.tsv, the latest),
# one row per case, tab-separated, stable columns:
#   lat  CASE  n  median_ms  p90_ms  min_ms  max_ms  mean_ms  NOTE
#   val  CASE  METRIC  VALUE  UNIT  NOTE
#   na   CASE  -  -  -  -  -  -  WHY
# preceded by "# key: value" lines describing the machine.  Raw samples go
# to build/bench/samples-STAMP/CASE.
#
# Other engineers' benchmarks plug in as scripts/bench-TOPIC.sh: each is
# run with PGSNAP, BENCH_TIMER, BENCH_N, BENCH_RESULTS (append rows in the
# format above) and BENCH_WORK (a scratch directory, removed afterwards);
# what they print is shown as it comes.
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
B=${PGSNAP_BUILD:-$TOP/build}
PGSNAP=$B/pgsnap
TIMER=$B/bench/timer
N=${BENCH_N:-20}
BURST=${BENCH_BURST:-200}
BURST_J=${BENCH_BURST_J:-8}
SUITE=${BENCH_SUITE:-500}
SUITE_J=${BENCH_SUITE_J:-4}
ONLY=${BENCH_ONLY:-baseline pgsnap old ready settings peers template burst suite service topics}
READY=$B/bench/ready
LIBSUITE=$B/bench/libsuite
SVCBENCH=$B/bench/svcbench
PG_BINDIR=${PGSNAP_PG_BINDIR:-$(pg_config --bindir)}
PY=/usr/bin/python3
OUTDIR=$TOP/build/bench
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUTDIR/results-$STAMP.tsv
SAMPLES=$OUTDIR/samples-$STAMP

# table FILE: the results side by side, ratios against the baseline and the
# template route, then each target of issue 6 against its figure.
table() {
	awk -F'\t' '
	/^#/ { print; next }
	$1 == "lat" { n++; c[n] = $2; cnt[n] = $3; med[n] = $4; p90[n] = $5
		mn[n] = $6; mx[n] = $7; note[n] = $9; m[$2] = $4 }
	$1 == "val" && $2 ~ /^settings:/ { k = substr($2, 10); if (!(k in st)) so[++ns] = k
		st[k] = 1; sv[k "/" $3] = $4; if ($3 == "start_ms") sn[k] = $6; next }
	$1 == "val" { nv++; vl[nv] = sprintf("  %-38s %-24s %10s %-5s %s", $2, $3, $4, $5, $6); v[$2 "/" $3] = $4 }
	$1 == "na" { nn++; na[nn] = sprintf("  %-38s %s", $2, $9) }
	function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.1fx", a / b) : "-" }
	function target(what, ok, fig) { printf "  %-4s %-58s %s\n", ok ? "MET" : "MISS", what, fig }
	END {
		base = m["initdb+pg_ctl"]
		tw = m["create-database-WAL_LOG"]; tf = m["create-database-FILE_COPY"]
		tpl = (tw > 0 && (tf == "" || tw < tf)) ? tw : tf
		tw = m["create-database-WAL_LOG-pgdefaults"]; tf = m["create-database-FILE_COPY-pgdefaults"]
		tpld = (tw > 0 && (tf == "" || tw < tf)) ? tw : tf
		printf "\n%-36s %4s %10s %10s %10s %10s %9s %10s\n", "fresh server to first query",
			"n", "median ms", "p90 ms", "min ms", "max ms", "/initdb", "/tpl(test)"
		for (i = 1; i <= n; i++)
			printf "%-36s %4d %10.2f %10.2f %10.2f %10.2f %9s %10s\n", c[i], cnt[i],
				med[i], p90[i], mn[i], mx[i], ratio(base, med[i]), ratio(tpl, med[i])
		if (nv) { print "\nother figures"; for (i = 1; i <= nv; i++) print vl[i] }
		if (ns) {
			printf "\nsettings (one reverted at a time; medians)\n  %-36s %9s %12s %9s  %s\n",
				"", "start ms", "1st query ms", "PSS KiB", "options"
			for (i = 1; i <= ns; i++) { k = so[i]
				printf "  %-36s %9.2f %12.2f %9d  %s\n", k, sv[k "/start_ms"],
					sv[k "/first_query_ms"], sv[k "/pss_kib"], sn[k] }
		}
		if (nn) { print "\nnot measured"; for (i = 1; i <= nn; i++) print na[i] }
		print "\ntargets (issue 2, issue 6)"
		if ((x = m["pgsnap-cold-copy"]) > 0 && base > 0)
			target("issue 2: pgsnap new (copy) >= 10x faster than initdb+pg_ctl", base / x >= 10, ratio(base, x))
		if ((x = m["pgsnap-warm"]) > 0) {
			target("warm new -> first query: median < 5 ms", x < 5, sprintf("%.2f ms", x))
			target("warm: >= 50x faster than pg_tmp steady state (350 ms, issue 6)", 350 / x >= 50, ratio(350, x))
			fl = m["connect-select1"]
			if (tpl > 0) target("warm: >= 10x faster than the template route (test settings)", tpl / x >= 10, ratio(tpl, x) (fl > 0 ? sprintf(" (no route can pass %s: connect + select 1 alone)", ratio(tpl, fl)) : ""))
			if (tpld > 0) target("warm: >= 10x faster than the template route (PG defaults)", tpld / x >= 10, ratio(tpld, x) (fl > 0 ? sprintf(" (no route can pass %s)", ratio(tpld, fl)) : ""))
		}
		if ((x = m["pgsnap-warm-shared"]) > 0) {
			target("warm --shared -> first query: median < 5 ms", x < 5, sprintf("%.2f ms", x))
			if (tpl > 0) target("warm --shared: >= 10x the template route (test settings)", tpl / x >= 10, ratio(tpl, x))
			if (tpld > 0) target("warm --shared: >= 10x the template route (PG defaults)", tpld / x >= 10, ratio(tpld, x))
		}
		if ((x = m["pgsnap-cold-overlay"]) > 0) target("cold (overlay): median < 45 ms", x < 45, sprintf("%.2f ms", x))
		if ((x = m["pgsnap-cold-copy-ext4"]) > 0) target("cold (copy on ext4): median < 90 ms", x < 90, sprintf("%.2f ms", x))
		else if ((x = m["pgsnap-cold-copy"]) > 0) target("cold (copy): median < 90 ms", x < 90, sprintf("%.2f ms", x))
		for (k in v) if (k ~ /^burst-.*\/clones_per_s$/)
			target("burst: >= 40 ready clones/s", v[k] >= 40, sprintf("%.1f/s", v[k]))
		for (k in v) if (k ~ /^suite-.*-pgsnap(-shared(-lib)?)?\/wall_ms$/) {
			s = k; sub(/-pgsnap(-shared(-lib)?)?\/wall_ms$/, "", s)
			how = k ~ /-lib\// ? "libpgsnap --shared" : k ~ /-shared\// ? "pgsnap new --shared" : "a server per test"
			t1 = v[s "-template-WAL_LOG/wall_ms"]; t2 = v[s "-template-FILE_COPY/wall_ms"]
			t = (t1 > 0 && (t2 == "" || t1 < t2)) ? t1 : t2
			if (t > 0) target("suite (" how "): >= 3x the template route (test settings)", t / v[k] >= 3, ratio(t, v[k]) (v[s "-floor/wall_ms"] > 0 ? sprintf(" (no route can pass %s: the tests alone)", ratio(t, v[s "-floor/wall_ms"])) : ""))
			t1 = v[s "-template-WAL_LOG-pgdefaults/wall_ms"]; t2 = v[s "-template-FILE_COPY-pgdefaults/wall_ms"]
			t = (t1 > 0 && (t2 == "" || t1 < t2)) ? t1 : t2
			if (t > 0) target("suite (" how "): >= 3x the template route (PG defaults)", t / v[k] >= 3, ratio(t, v[k]))
		}
	}' "$1"
	echo
	echo "results: $1"
}
if [ "${1:-}" = "--table" ]; then
	table "${2:-$TOP/build/bench/results.tsv}"
	exit 0
fi

for f in "$PGSNAP" "$TIMER" "$READY"; do
	[ -x "$f" ] || { echo "bench.sh: $f missing: run 'make bench'" >&2; exit 1; }
done
mkdir -p "$OUTDIR" "$SAMPLES"

# Everything this run makes lives under WORK and goes at exit.  As root,
# the servers of the peers run as postgres (initdb refuses root).
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/pgsnap-bench.XXXXXX")
chmod 755 "$WORK"
PEER_USER=""
if [ "$(id -u)" = 0 ]; then
	PEER_USER=postgres
	chown postgres "$WORK"
fi
export PGSNAP_HOME="$WORK/home"
RUNDIR=""
if [ "${BENCH_RUN_DIR:-/dev/shm}" != same ]; then
	RUNDIR=$(mktemp -d "${BENCH_RUN_DIR:-/dev/shm}/pgsnap-bench-run.XXXXXX")
	chmod 755 "$RUNDIR"
	mkdir -p "$PGSNAP_HOME"
	ln -s "$RUNDIR" "$PGSNAP_HOME/run"
fi
# Each case says which pool it wants.
export PGSNAP_POOL=0

cleanup() {
	"$PGSNAP" rm --all >/dev/null 2>&1 || true
	[ -d "$WORK/home-disk" ] && PGSNAP_HOME=$WORK/home-disk "$PGSNAP" rm --all >/dev/null 2>&1
	[ -n "$RUNDIR" ] && rm -rf "$RUNDIR"
	# Peer servers left by a failed run: only those on our directories.
	for pidf in "$WORK"/*/postmaster.pid "$WORK"/*/*/postmaster.pid \
		"$WORK"/*/*/*/postmaster.pid; do
		[ -f "$pidf" ] || continue
		kill -QUIT "$(head -1 "$pidf")" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
as_peer() { # run as the peer user when root
	if [ -n "$PEER_USER" ]; then runuser -u "$PEER_USER" -- "$@"; else "$@"; fi
}
row() { # row FIELD... : one tab-separated line into the results
	(IFS='	'; printf '%s\n' "$*") >>"$RESULTS"
}
say() { printf '%s\n' "$*" >&2; }
# quiesce: what earlier cases left behind is done before the next one is
# timed: their trash deleted (at most 60 s) and dirty pages written back
# (20 initdbs leave ~1 GB dirty on ext4; cold copies on ext4 measured
# 265 ms behind that, 50 ms after it).
quiesce() {
	t=0
	while [ -n "$(ls -A "$PGSNAP_HOME/run/trash" 2>/dev/null)" ] && [ $t -lt 600 ]; do
		sleep 0.1; t=$((t + 1))
	done
	sync
}

# timed CASE NOTE MODE [TIMER OPTIONS] [-- CMD...]: run the timer, record.
timed() {
	c=$1 note=$2 mode=$3
	shift 3
	say "  $c"
	quiesce
	if s=$("$TIMER" "$mode" -n "$N" -s "$SAMPLES/$c" "$@" 2>"$WORK/err"); then
		# shellcheck disable=SC2086
		row lat "$c" $s "$note"
	else
		row na "$c" - - - - - - "failed: $(tail -1 "$WORK/err")"
		say "    failed: $(tail -3 "$WORK/err")"
	fi
}

# samples CASE NOTE CMD...: CMD prints one ms per line; record the stats.
samples() {
	c=$1 note=$2
	shift 2
	say "  $c"
	if "$@" >"$WORK/s" 2>"$WORK/err" && [ -s "$WORK/s" ]; then
		# shellcheck disable=SC2086
		row lat "$c" $("$TIMER" stats -s "$SAMPLES/$c" <"$WORK/s") "$note"
	else
		row na "$c" - - - - - - "failed: $(tail -1 "$WORK/err")"
		say "    failed: $(tail -3 "$WORK/err")"
	fi
}

# ---- the machine ----------------------------------------------------------
fs_of() { df --output=fstype "$1" 2>/dev/null | tail -1 || echo "?"; }
{
	echo "# pgsnap-bench 1"
	echo "# date: $STAMP"
	echo "# pgsnap: $("$PGSNAP" --version) ($(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo '?'))"
	echo "# machine: $(nproc) cpu ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1)), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
	echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# postgres: $("$PG_BINDIR/postgres" --version)"
	echo "# fs: snapshots in $WORK on $(fs_of "$WORK"); clones and registry in ${RUNDIR:-$WORK/home/run} on $(fs_of "${RUNDIR:-$WORK}")"
	echo "# samples: $N per latency case after 1 warm-up; burst $BURST by $BURST_J callers; suite $SUITE tests on $SUITE_J workers"
} >"$RESULTS"
cat "$RESULTS" >&2

# ---- 1. the baseline: initdb + pg_ctl -w start of a fresh directory -------
if want baseline; then
	say "baseline:"
	mkdir -p "$WORK/initdb"
	[ -n "$PEER_USER" ] && chown "$PEER_USER" "$WORK/initdb"
	# One fresh directory per run; unix socket in it; what a person types.
	timed initdb+pg_ctl "initdb (defaults, with its fsync) + pg_ctl -w start" \
		lat ${PEER_USER:+-u "$PEER_USER"} -- sh -c '
		d=$(mktemp -d "$1/d.XXXXXX") || exit 1
		"$2/initdb" -D "$d/data" -U postgres -A trust >"$d/initdb.log" 2>&1 &&
		"$2/pg_ctl" -w -D "$d/data" -l "$d/log" \
			-o "-k $d -c listen_addresses=" start >/dev/null 2>&1 || exit 1
		echo "host=$d dbname=postgres user=postgres"' sh "$WORK/initdb" "$PG_BINDIR" \
		--- sh -c 'd=${1#host=}; d=${d%% *}
		"$2/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1; rm -rf "$d"' \
		sh {} "$PG_BINDIR"
fi

# ---- 2. pgsnap new, cold (each engine) and warm (pool) ---------------------
pooled_n() { "$PGSNAP" ls -a | awk '$3 == "pooled"' | wc -l; }
if want pgsnap; then
	say "pgsnap:"
	"$PGSNAP" rm --all >/dev/null 2>&1 || true
	"$PGSNAP" new >/dev/null # builds the snapshot: not timed
	"$PGSNAP" rm --all >/dev/null
	for m in overlay reflink copy; do
		if ! err=$("$PGSNAP" new -m "$m" 2>&1 >/dev/null); then
			row na "pgsnap-cold-$m" - - - - - - "unavailable here: $err"
			say "  pgsnap-cold-$m: unavailable here: $err"
			continue
		fi
		"$PGSNAP" rm --all >/dev/null
		timed "pgsnap-cold-$m" "pgsnap new -m $m, no pool" \
			lat -- "$PGSNAP" new -m "$m" --- "$PGSNAP" rm {}
	done
	# The copy engine with the clones on the snapshots' disk (ext4 here),
	# as issue 6 states its target; a store of its own.
	if [ -n "$RUNDIR" ]; then
		h2=$WORK/home-disk
		if PGSNAP_HOME=$h2 "$PGSNAP" new -m copy >/dev/null 2>"$WORK/err"; then
			PGSNAP_HOME=$h2 "$PGSNAP" rm --all >/dev/null
			PGSNAP_HOME=$h2 timed "pgsnap-cold-copy-$(fs_of "$WORK")" \
				"pgsnap new -m copy, no pool, clones on $(fs_of "$WORK") too" \
				lat -- "$PGSNAP" new -m copy --- "$PGSNAP" rm {}
		fi
		PGSNAP_HOME=$h2 "$PGSNAP" rm --all >/dev/null 2>&1
	fi
	# Warm: a pool of 2, full before each call (a test suite's calls are
	# spaced by its tests; see pgsnap-warm-b2b for calls back to back).
	PGSNAP_POOL=2 "$PGSNAP" new >/dev/null
	PGSNAP_POOL=2 timed pgsnap-warm "pgsnap new from a full pool (2)" \
		lat -b "until [ \$('$PGSNAP' ls -a | awk '\$3 == \"pooled\"' | wc -l) -ge 2 ]; do sleep 0.005; done" \
		-- "$PGSNAP" new --- "$PGSNAP" rm {}
	PGSNAP_POOL=2 timed pgsnap-warm-b2b "pgsnap new back to back (pool 2 drains; rm in between)" \
		lat -- "$PGSNAP" new --- "$PGSNAP" rm {}
	# A fresh database in a running shared server (new --shared).
	PGSNAP_POOL=2 "$PGSNAP" new --shared >/dev/null
	PGSNAP_POOL=2 timed pgsnap-warm-shared "pgsnap new --shared: a fresh database of a running shared server" \
		lat -- "$PGSNAP" new --shared --- "$PGSNAP" rm {}
	"$PGSNAP" rm --all >/dev/null
	# Reset in place: the same URL back to the snapshot, then its first
	# query (the clone written to before each, untimed).
	for kind in server server-tcp shared; do
		case $kind in
		server) o= ;; server-tcp) o=-t ;; shared) o=--shared ;;
		esac
		u=$(PGSNAP_POOL=2 "$PGSNAP" new $o -w 0) || continue
		PGSNAP_POOL=2 timed "reset-$kind" "pgsnap reset of a $kind clone (pgsnap new $o), written to before" \
			lat -c "$u" -b "psql -X -q -d '$u' -c 'create table if not exists junk (x int)'" \
			-- "$PGSNAP" reset "$u" --- true {}
		"$PGSNAP" rm "$u" >/dev/null
	done
	"$PGSNAP" rm --all >/dev/null
fi

# ---- 2a. the previous binary, side by side: BENCH_OLD=path/to/pgsnap ---------
# (a store of its own: the record format changed)
if want old && [ -n "${BENCH_OLD:-}" ] && [ -x "$BENCH_OLD" ]; then
	say "old binary ($BENCH_OLD):"
	ho=$WORK/home-old
	PGSNAP_HOME=$ho "$BENCH_OLD" new >/dev/null && PGSNAP_HOME=$ho "$BENCH_OLD" rm --all >/dev/null
	PGSNAP_HOME=$ho timed pgsnap-cold-overlay-old "the previous pgsnap: new -m overlay, no pool" \
		lat -- "$BENCH_OLD" new -m overlay --- "$BENCH_OLD" rm {}
	PGSNAP_HOME=$ho PGSNAP_POOL=2 "$BENCH_OLD" new >/dev/null
	PGSNAP_HOME=$ho PGSNAP_POOL=2 timed pgsnap-warm-old "the previous pgsnap: new from a full pool (2)" \
		lat -b "until [ \$(PGSNAP_HOME='$ho' '$BENCH_OLD' ls -a | awk '\$3 == \"pooled\"' | wc -l) -ge 2 ]; do sleep 0.005; done" \
		-- "$BENCH_OLD" new --- "$BENCH_OLD" rm {}
	PGSNAP_HOME=$ho PGSNAP_POOL=2 "$BENCH_OLD" new --shared >/dev/null
	PGSNAP_HOME=$ho PGSNAP_POOL=2 timed pgsnap-warm-shared-old "the previous pgsnap: new --shared" \
		lat -- "$BENCH_OLD" new --shared --- "$BENCH_OLD" rm {}
	PGSNAP_HOME=$ho "$BENCH_OLD" rm --all >/dev/null 2>&1
fi

# ---- 2b. readiness: how soon pgsnap knows, against PQping from outside -----
# A copy of the snapshot's data, started N times by pgsnap's own wait.
ready_dir=""
if want ready || want settings; then
	"$PGSNAP" new >/dev/null && "$PGSNAP" rm --all >/dev/null
	ready_dir=$WORK/ready
	mkdir -p "$ready_dir"
	cp -a "$PGSNAP_HOME/snapshots/default/data" "$ready_dir/data"
	[ -n "$PEER_USER" ] && chown -R "$PEER_USER" "$ready_dir"
	chmod 700 "$ready_dir/data"
fi
if want ready; then
	say "ready:"
	if s=$("$READY" -n "$N" -p "$ready_dir/data" 2>"$WORK/err"); then
		set -- $s
		row val readiness start_median_ms "$2" ms "spawn of postgres to ready known (postmaster.pid every 0.25 ms + pidfd)"
		row val readiness after_pqping_median_ms "$5" ms "ready known minus first PQPING_OK (PQping every 0.1 ms); <0: pgsnap first"
		row val readiness after_pqping_p90_ms "$6" ms ""
		row val readiness after_pqping_max_ms "$8" ms ""
	else
		row na readiness - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
fi

# ---- 2c. the settings of the default recipe, one reverted at a time ---------
# Start (spawn to ready), first query (connect + select 1) and PSS of all
# the server's processes, medians of N starts on the same data directory.
if want settings; then
	say "settings:"
	# name|options: the recipe, then each setting back at PostgreSQL's
	# default, then all of them, then candidates the recipe does not take.
	cat >"$WORK/variants" <<-'EOF'
	recipe|
	shared_buffers=128MB|-c shared_buffers=128MB
	max_connections=100|-c max_connections=100
	durable|-c fsync=on -c synchronous_commit=on -c full_page_writes=on
	wal_level=replica|-c wal_level=replica -c max_wal_senders=10
	max_logical_repl_workers=4|-c max_logical_replication_workers=4
	jit=on|-c jit=on
	dsm=posix|-c dynamic_shared_memory_type=posix
	pg-defaults|-c shared_buffers=128MB -c max_connections=100 -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c wal_level=replica -c max_wal_senders=10 -c max_logical_replication_workers=4 -c jit=on -c dynamic_shared_memory_type=posix
	(not taken) autovacuum=off|-c autovacuum=off
	(not taken) max_worker_processes=2|-c max_worker_processes=2
	EOF
	set --
	while IFS='|' read -r name opts; do set -- "$@" -o "$opts"; done <"$WORK/variants"
	if "$READY" -n "$N" "$@" "$ready_dir/data" >"$WORK/s" 2>"$WORK/err"; then
		paste -d'|' "$WORK/variants" "$WORK/s" | while IFS='|' read -r name opts line; do
			set -- $line
			row val "settings:$name" start_ms "$2" ms "${opts:-the recipe as shipped}"
			row val "settings:$name" first_query_ms "$3" ms ""
			row val "settings:$name" pss_kib "$4" KiB ""
		done
	else
		row na settings - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
fi

# ---- 3. the peers -----------------------------------------------------------
if want peers; then
	say "peers:"
	if $PY -c 'import testing.postgresql, psycopg2' 2>/dev/null; then
		samples py-testing.postgresql "Python testing.postgresql()" \
			as_peer env -C "$WORK" $PY "$TOP/test/bench/peer-testing-postgresql.py" "$N" 1 plain
		samples py-testing.postgresql-cached "PostgresqlFactory(cache_initialized_db=True)" \
			as_peer env -C "$WORK" $PY "$TOP/test/bench/peer-testing-postgresql.py" "$N" 1 cached
	else
		row na py-testing.postgresql - - - - - - "python3-testing.postgresql or psycopg2 not installed"
	fi
	if perl -MTest::PostgreSQL -MDBD::Pg -e 1 2>/dev/null; then
		samples perl-Test::PostgreSQL "Perl Test::PostgreSQL->new" \
			as_peer env -C "$WORK" perl "$TOP/test/bench/peer-test-postgresql.pl" "$N" 1
	else
		row na perl-Test::PostgreSQL - - - - - - "libtest-postgresql-perl or DBD::Pg not installed"
	fi
	if command -v pg_tmp >/dev/null 2>&1; then
		timed pg_tmp "pg_tmp (ephemeralpg)" lat -- pg_tmp
	else
		row na pg_tmp - - - - - - "pg_tmp (ephemeralpg) is not packaged in Debian 12: not measured (issue 6 quotes ~350 ms steady, >1 s back to back)"
	fi
fi

# ---- 4. CREATE DATABASE ... TEMPLATE on a running server --------------------
# Two servers, both pgsnap clones: one with pgsnap's test settings (fsync
# off...: the same footing as pgsnap's own servers), one with PostgreSQL's
# defaults (fsync on, data on disk: the server pgtestdb/IntegreSQL users
# usually run, and where issue 6's 50-180 ms come from).  The template holds what a
# fresh pgsnap clone holds.
PG_DEFAULTS="-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c wal_level=replica -c max_wal_senders=10 -c shared_buffers=128MB -c max_connections=100 -c max_logical_replication_workers=4 -c jit=on"
tpl_url="" tpl_url_def=""
# Every clone of the store but the template route's server (a clone too).
rm_but_tpl() {
	"$PGSNAP" ls | awk -v u="$tpl_url" 'NR > 1 && $NF != u { print $1 }' |
		xargs -r "$PGSNAP" rm >/dev/null
}
if want template || want suite; then
	# -w 0: no idle limit (gc would stop a server idle for the default 60 s).
	tpl_url=$(PGSNAP_POOL=0 "$PGSNAP" new -w 0 -o "-c max_connections=100")
	psql -X -q -d "$tpl_url" -c 'create database bench_tpl' >/dev/null
	# On disk, not RAM: fsync must cost what it costs.
	tpl_url_def=$(PGSNAP_HOME=$WORK/home-disk PGSNAP_POOL=0 "$PGSNAP" new -w 0 -o "$PG_DEFAULTS")
	psql -X -q -d "$tpl_url_def" -c 'create database bench_tpl' >/dev/null
fi
if want template; then
	say "template:"
	for st in WAL_LOG FILE_COPY; do
		timed "create-database-$st" "CREATE DATABASE .. TEMPLATE .. STRATEGY $st (server with test settings)" \
			tpl -d "$tpl_url" -T bench_tpl -S "$st"
		timed "create-database-$st-pgdefaults" "the same on a server with PostgreSQL's defaults (fsync on)" \
			tpl -d "$tpl_url_def" -T bench_tpl -S "$st"
	done
	# What every route pays at least: a connection and a first query.
	timed connect-select1 "connect to an existing database, select 1 (a floor for any route)" \
		conn -d "$tpl_url"
fi

# ---- 4b. the service: a client of its protocol, no process per request -----
if want service; then
	say "service:"
	sock=$("$PGSNAP" service start)
	PGSNAP_POOL=2 "$PGSNAP" new --shared >/dev/null # its snapshot, untimed
	quiesce
	if s=$("$SVCBENCH" handout -s "$sock" -n $((N * 10)) -c 1 -S 16 -p 2 \
		-o "$SAMPLES/service-handout" 2>"$WORK/err"); then
		row lat service-handout $s "new shared=16 over the socket, one client: request to answer (the URL)"
	else
		row na service-handout - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	# 64 at once: a pool of 6 servers (96 databases) refilled between rounds.
	"$SVCBENCH" handout -s "$sock" -n 1 -c 64 -S 16 -p 6 >/dev/null 2>&1
	quiesce
	if s=$("$SVCBENCH" handout -s "$sock" -n 10 -c 64 -S 16 -p 6 \
		-o "$SAMPLES/service-handout-64" 2>"$WORK/err"); then
		row lat service-handout-64 $s "64 clients asking at the same instant, 10 rounds: request to answer"
	else
		row na service-handout-64 - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	rm_but_tpl
fi

# ---- 5. a test suite: SUITE tests, each a fresh DB + 5 queries --------------
if want suite; then
	say "suite:"
	# A pool as deep as the workers are many.
	quiesce
	if s=$(PGSNAP_POOL=$SUITE_J "$TIMER" suite -n "$SUITE" -j "$SUITE_J" -- "$PGSNAP" new \
		--- "$PGSNAP" rm {} 2>"$WORK/err"); then
		set -- $s
		row val "suite-$SUITE-pgsnap" wall_ms "$2" ms "$SUITE tests on $SUITE_J workers: pgsnap new (pool $SUITE_J), 5 queries, pgsnap rm"
	else
		row na "suite-$SUITE-pgsnap" - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	# A fresh database in a shared server each (new --shared): the
	# isolation of the template route, without a server start per test.
	# One untimed call first builds its derived snapshot (default.dbs-*).
	u=$(PGSNAP_POOL=2 "$PGSNAP" new --shared) && "$PGSNAP" rm "$u"
	quiesce
	if s=$(PGSNAP_POOL=2 "$TIMER" suite -n "$SUITE" -j "$SUITE_J" -- "$PGSNAP" new \
		--shared --- "$PGSNAP" rm {} 2>"$WORK/err"); then
		set -- $s
		row val "suite-$SUITE-pgsnap-shared" wall_ms "$2" ms "$SUITE tests on $SUITE_J workers: pgsnap new --shared (16 databases a server, pool 2), 5 queries, pgsnap rm"
	else
		row na "suite-$SUITE-pgsnap-shared" - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	# The same from a harness that calls libpgsnap in its own process: no
	# pgsnap process per test.
	quiesce
	if s=$("$LIBSUITE" -n "$SUITE" -j "$SUITE_J" -S 16 -p 2 2>"$WORK/err"); then
		set -- $s
		row val "suite-$SUITE-pgsnap-shared-lib" wall_ms "$2" ms "the same, the harness calling libpgsnap (pgsnap_new --shared, pgsnap_rm) in its own process"
	else
		row na "suite-$SUITE-pgsnap-shared-lib" - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	# The same from a harness speaking the service's protocol over its
	# socket (the packages' way): no process per test at all.
	quiesce
	sock=$("$PGSNAP" service start)
	if s=$("$SVCBENCH" suite -s "$sock" -n "$SUITE" -j "$SUITE_J" -S 16 -p 2 2>"$WORK/err"); then
		set -- $s
		row val "suite-$SUITE-service" wall_ms "$2" ms "the same, the harness asking the service over its socket (new shared=16, rm)"
	else
		row na "suite-$SUITE-service" - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	rm_but_tpl
	# The floor: the same tests on databases made beforehand, each
	# already connected to once (its catalogs cached), all untimed: only
	# the tests' own work is timed, and no route can beat it.
	if PGSNAP_POOL=0 "$PGSNAP" new --shared=50 -n "$SUITE" -w 0 >"$WORK/floor-urls" 2>"$WORK/err" &&
		while read -r u; do psql -X -q -d "$u" -c 'select 1' >/dev/null || exit 1; done <"$WORK/floor-urls" &&
		s=$("$TIMER" suite -n "$SUITE" -j "$SUITE_J" -U "$WORK/floor-urls" 2>"$WORK/err"); then
		set -- $s
		row val "suite-$SUITE-floor" wall_ms "$2" ms "the same tests on databases made and connected to beforehand: their own work alone"
	else
		row na "suite-$SUITE-floor" - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	# Its leases only (the template route's server is a clone too): the
	# shared servers, used up, go with them.
	[ -s "$WORK/floor-urls" ] && xargs "$PGSNAP" rm <"$WORK/floor-urls" >/dev/null 2>&1
	for st in WAL_LOG FILE_COPY; do
		for srv in "" -pgdefaults; do
			u=$tpl_url
			[ -n "$srv" ] && u=$tpl_url_def
			quiesce
			if s=$("$TIMER" suite -n "$SUITE" -j "$SUITE_J" -d "$u" \
				-T bench_tpl -S "$st" 2>"$WORK/err"); then
				set -- $s
				row val "suite-$SUITE-template-$st$srv" wall_ms "$2" ms "CREATE DATABASE TEMPLATE ($st), 5 queries, DROP DATABASE${srv:+ (PostgreSQL's defaults)}"
			else
				row na "suite-$SUITE-template-$st$srv" - - - - - - "failed: $(tail -1 "$WORK/err")"
			fi
		done
	done
fi
[ -n "$tpl_url" ] && { "$PGSNAP" rm "$tpl_url" >/dev/null 2>&1 || true; }
[ -n "$tpl_url_def" ] && { PGSNAP_HOME=$WORK/home-disk "$PGSNAP" rm "$tpl_url_def" >/dev/null 2>&1 || true; }

# ---- 6. a burst: BURST news by BURST_J concurrent callers -------------------
if want burst; then
	say "burst:"
	"$PGSNAP" rm --all >/dev/null 2>&1 || true
	avail0=$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)
	if s=$(PGSNAP_POOL=2 "$TIMER" burst -n "$BURST" -j "$BURST_J" -s "$SAMPLES/burst" \
		-- "$PGSNAP" new 2>"$WORK/err"); then
		set -- $s
		avail1=$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)
		# PSS of every process of the store's servers (shared pages
		# counted once over all sharers).
		pss=0
		for p in $(pgrep -f -- "-D $PGSNAP_HOME/run/clones/" || true); do
			for k in $(pgrep -P "$p") "$p"; do
				v=$(awk '/^Pss:/ {print $2}' "/proc/$k/smaps_rollup" 2>/dev/null || echo 0)
				pss=$((pss + ${v:-0}))
			done
		done
		n_srv=$(pgrep -c -f -- "-D $PGSNAP_HOME/run/clones/" || true)
		row val burst-$BURST clones_per_s "$3" "1/s" "$BURST pgsnap new by $BURST_J callers"
		row val burst-$BURST all_ready_ms "$2" ms "until every one answered select 1"
		row val burst-$BURST call_median_ms "$4" ms "one call, under load"
		row val burst-$BURST call_p90_ms "$5" ms "one call, under load"
		row val burst-$BURST failures "$6" count ""
		row val burst-$BURST servers_running "$n_srv" count ""
		row val burst-$BURST pss_per_server_kb $((pss / (n_srv > 0 ? n_srv : 1))) KiB "PSS of all its processes"
		row val burst-$BURST mem_used_mb $(((avail0 - avail1) / 1024)) MiB "MemAvailable drop, all $n_srv servers"
	else
		row na burst-$BURST - - - - - - "failed: $(tail -1 "$WORK/err")"
	fi
	"$PGSNAP" rm --all >/dev/null 2>&1 || true
fi

# ---- 7. the other engineers' benchmarks -----------------------------------
if want topics; then
	for t in "$TOP"/scripts/bench-*.sh; do
		[ -f "$t" ] || continue
		say "$(basename "$t"):"
		mkdir -p "$WORK/topic"
		PGSNAP=$PGSNAP BENCH_TIMER=$TIMER BENCH_N=$N BENCH_RESULTS=$RESULTS \
			BENCH_WORK=$WORK/topic sh "$t" || row na "$(basename "$t" .sh)" - - - - - - "exited $?"
		rm -rf "$WORK/topic"
	done
fi

ln -sf "$(basename "$RESULTS")" "$OUTDIR/results.tsv"
table "$RESULTS"
