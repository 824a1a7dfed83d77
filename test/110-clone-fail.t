#!/usr/bin/env bash
# A failure in the middle of a clone, for every engine: the partial clone
# is removed (no directory, no mount, no record, no server) and the cause
# is reported in one line.
. "$(dirname "$0")/tap.sh"
. "$TEST_DIR/fsimg.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: loop-mounted filesystems and overlayfs mounts"

# nothing_left STORE WHAT
nothing_left() {
	is "$(ls -A "$1/run/clones" | grep -v '^\.probe' | wc -l)" 0 "$2: no clone directory is left"
	is "$(PGSNAP_HOME=$1 "$PGSNAP" ls)" "" "$2: no clone is recorded"
	is "$(awk -v p="$1/" 'index($2, p) == 1 && $3 == "overlay"' /proc/self/mounts)" "" "$2: no overlay mount is left"
	is "$(servers_under "$1")" 0 "$2: no server is left"
}

# copy: a small journaled ext4 under the clones fills up mid-copy.
H=$TEST_TMP/small/home
mkdir -p "$H" && chmod 755 "$TEST_TMP/small" "$H"
PGSNAP_HOME=$H "$PGSNAP" new -m copy >/dev/null && PGSNAP_HOME=$H "$PGSNAP" rm --all
wait_for 20 dir_empty "$H/run/trash"
if mount_fs ext4 "$H/run" 12M; then
	export PGSNAP_HOME=$H
	run "$PGSNAP" new -m copy
	is "$rc" 1 "copy on a full filesystem: exit 1"
	like "$err" "No space left on device" "copy: the cause is named"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "copy: in one line"
	nothing_left "$H" copy
	umount "$H/run"
else
	skip "copy: cannot mount a small ext4 image"
fi

# overlay: the lower layer is gone when the mount is made.
H=$TEST_TMP/ov/home
export PGSNAP_HOME=$H
mkdir -p "$H" && chmod 755 "$TEST_TMP/ov" "$H"
"$PGSNAP" new -m overlay >/dev/null && "$PGSNAP" rm --all
mv "$H/snapshots/default/data" "$H/snapshots/default/data.away"
run "$PGSNAP" new -m overlay
is "$rc" 1 "overlay without its lower layer: exit 1"
like "$err" "cannot mount an overlay on .*: No such file or directory" "overlay: the cause is named"
is "$(printf '%s\n' "$err" | wc -l)" 1 "overlay: in one line"
nothing_left "$H" overlay
mv "$H/snapshots/default/data.away" "$H/snapshots/default/data"

# reflink: a golden file the server user cannot read, late in the order.
if mount_fs xfs "$TEST_TMP/xfs"; then
	H=$TEST_TMP/xfs/home
	export PGSNAP_HOME=$H
	"$PGSNAP" new -m reflink >/dev/null && "$PGSNAP" rm --all
	f=$(awk -F'\t' '$1 == "f" && $4 > 0 { p = $6 } END { print p }' "$H/snapshots/default/manifest")
	isnt "$f" "" "reflink: a golden file to make unreadable: $f"
	chmod 000 "$H/snapshots/default/data/$f"
	run "$PGSNAP" new -m reflink
	is "$rc" 1 "reflink with an unreadable golden file: exit 1"
	like "$err" "cannot read .*$f: Permission denied" "reflink: the cause is named"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "reflink: in one line"
	nothing_left "$H" reflink
	chmod 600 "$H/snapshots/default/data/$f"
	run "$PGSNAP" new -m reflink
	is "$rc" 0 "reflink works again once the file is readable"
	[ "$rc" = 0 ] || diag "$err"
else
	skip "reflink: cannot make an XFS image"
fi

done_testing
