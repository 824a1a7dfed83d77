#!/usr/bin/env bash
# Every clone engine on every filesystem it works on (tmpfs, a journaled
# ext4 image, an XFS image with reflink): a clone holds what its golden
# holds (bytes, modes, owners), and writes to a clone reach neither the
# golden nor another clone.  Every copy variant (small files) with either
# route for big files makes the same clone, on one filesystem and across
# two.
. "$(dirname "$0")/tap.sh"
. "$TEST_DIR/fsimg.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: loop-mounted filesystems and overlayfs mounts"
command -v mkfs.xfs >/dev/null || skip_all "mkfs.xfs missing (scripts/deps.sh test installs xfsprogs)"

check_engine() { # FS METHOD
	local fs=$1 m=$2 g u1 u2 d1 d2 before
	g=$PGSNAP_HOME/snapshots/default/data
	run "$PGSNAP" new -m "$m"
	is "$rc" 0 "$fs/$m: new exits 0"
	[ "$rc" = 0 ] || { diag "$err"; return; }
	before=$(sums "$g")
	u1=$out
	d1=$("$PGSNAP" ls | awk -v u="$u1" '$NF == u { print $1 }')
	d1=$PGSNAP_HOME/run/clones/$d1/data
	is "$("$PGSNAP" ls | awk -v u="$u1" '$NF == u { print $1 }' | wc -l)" 1 "$fs/$m: listed"
	is "$(same_tree "$g" "$d1")" "" "$fs/$m: the clone holds the golden's bytes, modes and owners"
	is "$(stat -c '%a %U' "$d1")" "700 postgres" "$fs/$m: data directory 0700, owned by the server user"
	run "$PGSNAP" new -m "$m"
	u2=$out
	d2=$("$PGSNAP" ls | awk -v u="$u2" '$NF == u { print $1 }')
	d2=$PGSNAP_HOME/run/clones/$d2/data
	# Write a lot into clone 1, into existing relations too (pg_class).
	q "$u1" "create table w as select g, repeat('x', 200) pad from generate_series(1, 20000) g;
		update pg_class set relname = relname where oid < 2000; checkpoint" >/dev/null
	is "$(q "$u1" 'select count(*) from w')" 20000 "$fs/$m: clone 1 holds its writes"
	is "$(q "$u2" "select count(*) from pg_class where relname = 'w'")" 0 "$fs/$m: clone 2 does not see them"
	is "$(sums "$g")" "$before" "$fs/$m: the golden's files are untouched"
	is "$(same_tree "$g" "$d2")" "" "$fs/$m: clone 2's files still equal the golden's"
	is "$(ps -o user= -p "$(clone_pid "$u1")")" postgres "$fs/$m: the server runs as postgres"
	run "$PGSNAP" rm "$u1" "$u2"
	is "$rc" 0 "$fs/$m: rm exits 0"
	ok "$([ ! -e "$d1" ] && [ ! -e "$d2" ]; echo $?)" "$fs/$m: the clone directories are gone at once"
	ok "$(wait_for 20 dir_empty "$PGSNAP_HOME/run/trash"; echo $?)" "$fs/$m: the trash empties in the background"
	is "$(awk -v p="$PGSNAP_HOME/" 'index($2, p) == 1 && $3 == "overlay"' /proc/self/mounts)" "" \
		"$fs/$m: no overlay mount is left"
}

for fs in tmpfs ext4 xfs; do
	if ! mount_fs "$fs" "$TEST_TMP/$fs"; then
		skip "$fs: cannot make and mount a $fs filesystem here"
		continue
	fi
	export PGSNAP_HOME=$TEST_TMP/$fs/home
	run "$PGSNAP" doctor
	is "$rc" 0 "$fs: doctor exits 0"
	doc=$out
	like "$doc" "snapshots: .* \\($fs\\)" "$fs: doctor names the filesystem"
	if [ "$fs" = ext4 ]; then
		# ext4 spreads clones over block groups (see spread_subdirs).
		like "$(lsattr -d "$PGSNAP_HOME/run/clones" 2>&1)" '^[^ ]*T' "ext4: clones/ is a top directory (chattr +T)"
	fi
	for m in overlay reflink copy; do
		if grep -q "^method $m *unavailable" <<<"$doc"; then
			if [ "$m" = reflink ] && [ "$fs" != xfs ]; then
				run "$PGSNAP" new -m reflink
				is "$rc" 1 "$fs: new -m reflink fails (no shared extents)"
				like "$err" "reflink.*cannot work here: .*$fs" "$fs: naming the reason"
				continue
			fi
			skip "$fs/$m: $(grep "^method $m" <<<"$doc")"
			continue
		fi
		check_engine "$fs" "$m"
	done
done

# clone_check TAG [ENV...]: new -m copy under ENV holds the golden's files.
clone_check() {
	local tag=$1 snap=${SNAP:-default} id
	shift
	run env "$@" "$PGSNAP" new -m copy -s "$snap"
	is "$rc" 0 "$tag: new exits 0"
	[ "$rc" = 0 ] || { diag "$err"; return; }
	id=$("$PGSNAP" ls | awk -v u="$out" '$NF == u { print $1 }')
	is "$(same_tree "$PGSNAP_HOME/snapshots/$snap/data" "$PGSNAP_HOME/run/clones/$id/data")" "" \
		"$tag: the clone holds the golden's bytes, modes and owners"
	"$PGSNAP" rm "$out"
}

# A snapshot with big files (1 MB and more: the big-file routes) beside
# small ones, saved from a clone.
big_snapshot() {
	local u
	u=$("$PGSNAP" new -m copy) || return 1
	q "$u" "create table big as select g, repeat(md5(g::text), 8) pad from generate_series(1, 12000) g;
		create table mid as select g from generate_series(1, 40000) g; checkpoint" >/dev/null || return 1
	"$PGSNAP" snapshot save "$u" big >/dev/null || return 1
	"$PGSNAP" rm "$u"
}

# Every copy variant (the bench compares them) makes the same clone, with
# either route for big files, on the default and on a snapshot with big
# files; and the plan chosen for each filesystem (no variables) too.
export PGSNAP_HOME=$TEST_TMP/tmpfs/home
ok "$(big_snapshot; echo $?)" "a snapshot with big files"
is "$(awk -F'\t' '$1 == "f" && $4 >= 1048576' "$PGSNAP_HOME/snapshots/big/manifest" | wc -l | tr -d ' ')" 2 \
	"it has two files of 1 MB or more"
for impl in uring cfr2 write2 uringfix uringat; do
	clone_check "copy/$impl" PGSNAP_COPY_IMPL=$impl
	for big in kcopy write; do
		SNAP=big clone_check "copy/$impl, big files $big" PGSNAP_COPY_IMPL=$impl PGSNAP_COPY_BIG=$big
	done
done
for fs in ext4 xfs; do
	[ -d "$TEST_TMP/$fs/home" ] || continue
	export PGSNAP_HOME=$TEST_TMP/$fs/home
	ok "$(big_snapshot; echo $?)" "$fs: a snapshot with big files"
	SNAP=big clone_check "$fs: copy, the measured plan"
	SNAP=big clone_check "$fs: copy/uringat" PGSNAP_COPY_IMPL=uringat
done
# Clones on another filesystem than the snapshots (the default layout:
# snapshots on disk, clones on RAM): big files cross by sendfile.
export PGSNAP_HOME=$TEST_TMP/ext4/home
if [ -d "$PGSNAP_HOME" ] && mount_fs tmpfs "$PGSNAP_HOME/run"; then
	like "$("$PGSNAP" doctor)" "clones: .* \(tmpfs\)" "ext4 snapshots, tmpfs clones"
	SNAP=big clone_check "across filesystems: copy, the measured plan"
	SNAP=big clone_check "across filesystems: copy/uringat, big files written" \
		PGSNAP_COPY_IMPL=uringat PGSNAP_COPY_BIG=write
	"$PGSNAP" rm --all
else
	skip "cannot put the clones of the ext4 store on a tmpfs"
fi
export PGSNAP_HOME=$TEST_TMP/tmpfs/home

# The snapshot is small where it is free: 1 MB WAL segments, no spare one.
is "$(ls "$PGSNAP_HOME/snapshots/default/data/pg_wal" | grep -c '^[0-9A-F]\{24\}$')" 1 \
	"the golden keeps one WAL segment"
like "$(head -2 "$PGSNAP_HOME/snapshots/default/manifest")" $'^pgsnap-manifest 1\nstats\t' \
	"the snapshot has a manifest"

done_testing
