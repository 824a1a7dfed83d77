#!/usr/bin/env bash
# Odd environments: HOME unset, a store path with spaces and unicode, a
# read-only store, missing or wrong-major PostgreSQL, a full file system, a
# low `ulimit -n`, TMPDIR pointing nowhere.  Each one either just works or
# gives one clear line and exit 1 -- and leaves nothing behind: no clone
# directory, no registry record, no server, no half-built snapshot, no mount.
. "$(dirname "$0")/tap.sh"

MOUNTS=()
# unmount DIR: the trash's background deleter may still hold it a moment.
unmount() {
	mountpoint -q "$1" || return 0
	wait_for 20 umount "$1" 2>/dev/null || umount -l "$1"
}
env_cleanup() {
	local m
	for m in "${MOUNTS[@]}"; do
		# A store's run directory: its clones go before the mount does.
		[ "${m##*/}" = run ] && PGSNAP_HOME=${m%/run} "$PGSNAP" rm --all >/dev/null 2>&1
		unmount "$m"
	done
}
trap 'env_cleanup; _tap_cleanup' EXIT

# fails_clearly DESC: the last `run` failed with exit 1 and one line.
fails_clearly() {
	is "$rc" 1 "$1: exit 1"
	is "$(printf '%s\n' "$err" | wc -l)" 1 "$1: one line on stderr"
	like "$err" '^pgsnap: ' "$1: it says what went wrong"
	is "$out" "" "$1: nothing on stdout"
}
# Mount points, with /proc/mounts' octal escapes (\040 for a space) decoded.
mounts() {
	local m
	awk '{ print $2 }' /proc/mounts | while read -r m; do printf '%b\n' "$m"; done
}
# nothing_left HOME DESC
nothing_left() {
	local h=$1
	is "$(ls -A "$h/run/clones" 2>/dev/null | wc -l)" 0 "$2: no clone directory left"
	wait_for 20 dir_empty "$h/run/trash"; ok $? "$2: the trash empties"
	is "$(cat "$h/run/registry" 2>/dev/null | grep -c '^id=')" 0 "$2: no registry record"
	is "$(servers_under "$h")" 0 "$2: no server running"
	is "$(ls -A "$h/snapshots" 2>/dev/null | grep -c '^\.build-')" 0 "$2: no half-built snapshot"
	is "$(mounts | grep -cF "$h/run/clones/")" 0 "$2: no mount left"
}

# --- HOME unset --------------------------------------------------------
env -u HOME "$PGSNAP" new >"$TEST_TMP/url" 2>"$TEST_TMP/err"
is "$?" 0 "HOME unset, PGSNAP_HOME set: new works"
is "$(q "$(cat "$TEST_TMP/url")" 'select 1')" 1 "HOME unset: the clone answers"
"$PGSNAP" rm --all
nothing_left "$PGSNAP_HOME" "HOME unset, after rm"

if [ "$(id -u)" = 0 ]; then
	# A user with no HOME, no PGSNAP_HOME and no home directory (nobody's
	# is /nonexistent): there is nowhere to put a store.
	install -m 755 "$PGSNAP" "$TEST_TMP/pgsnap-copy"
	shm_before=$(ls -d /dev/shm/pgsnap-65534 2>/dev/null)
	run setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env -i PATH=/usr/bin:/bin ASAN_OPTIONS="$ASAN_OPTIONS" \
		UBSAN_OPTIONS="$UBSAN_OPTIONS" "$TEST_TMP/pgsnap-copy" new
	fails_clearly "HOME unset, no home directory"
	like "$err" 'PGSNAP_HOME' "HOME unset, no home directory: the line says to set PGSNAP_HOME"
	is "$(ls -d /dev/shm/pgsnap-65534 2>/dev/null)" "$shm_before" "HOME unset, no home directory: no run directory made"
else
	skip "a user without a home directory needs root to become one"
fi

# --- PGSNAP_HOME with spaces and unicode -------------------------------
U="$TEST_TMP/with space ünï cødé ✓"
PGSNAP_HOME=$U run "$PGSNAP" new
is "$rc" 0 "PGSNAP_HOME with spaces and unicode: new works"
uu=$out
is "$(q "$uu" 'select 1')" 1 "spaces and unicode: the clone answers through its URL"
like "$(PGSNAP_HOME=$U "$PGSNAP" ls)" "$uu" "spaces and unicode: ls lists it"
PGSNAP_HOME=$U run "$PGSNAP" rm "$uu"
is "$rc" 0 "spaces and unicode: rm by URL works"
nothing_left "$U" "spaces and unicode, after rm"

run env PGSNAP_HOME="$TEST_TMP/new"$'\n'"line" "$PGSNAP" new
fails_clearly "PGSNAP_HOME with a newline"
ok "$([ ! -e "$TEST_TMP/new"$'\n'"line" ]; echo $?)" "a newline store is not created"
run env PGSNAP_HOME=relative/store "$PGSNAP" new
fails_clearly "a relative PGSNAP_HOME"

# --- PostgreSQL missing or of another major ------------------------------
F=$TEST_TMP/fresh
PGSNAP_HOME=$F PGSNAP_PG_BINDIR=/nonexistent run "$PGSNAP" new
fails_clearly "PGSNAP_PG_BINDIR=/nonexistent"
like "$err" '/nonexistent' "missing PostgreSQL: the directory is named"
ok "$([ ! -e "$F" ]; echo $?)" "missing PostgreSQL: no store was even created"

# Binaries of another major: they say 11.22 and refuse a 15 data directory.
mkdir -p "$TEST_TMP/pg11/bin"
for b in postgres initdb; do
	cat >"$TEST_TMP/pg11/bin/$b" <<'SH'
#!/bin/sh
case "$1" in -V|--version) echo "$(basename "$0") (PostgreSQL) 11.22"; exit 0 ;; esac
echo "FATAL:  database files are incompatible with server" >&2
echo "DETAIL:  The data directory was initialized by PostgreSQL version 15, which is not compatible with this version 11.22." >&2
exit 1
SH
	chmod 755 "$TEST_TMP/pg11/bin/$b"
done
PGSNAP_HOME=$F PGSNAP_PG_BINDIR=$TEST_TMP/pg11/bin run "$PGSNAP" new
fails_clearly "wrong-major binaries, fresh store"
like "$err" '11|version|incompatible' "wrong-major binaries, fresh store: the line says why"
nothing_left "$F" "wrong-major binaries, fresh store"
ok "$([ ! -e "$F/snapshots/default" ]; echo $?)" "wrong-major binaries: no snapshot was made"
PGSNAP_HOME=$U PGSNAP_PG_BINDIR=$TEST_TMP/pg11/bin run "$PGSNAP" new
fails_clearly "wrong-major binaries, snapshot of 15"
like "$err" '11|version|incompatible' "wrong-major binaries, snapshot of 15: the line says why"
nothing_left "$U" "wrong-major binaries, snapshot of 15"

# A snapshot whose data directory says another major: the server refuses
# it, unless pgsnap notices and rebuilds the snapshot first.
pgv="$U/snapshots/default/data/PG_VERSION"
saved=$(cat "$pgv")
printf '14\n' >"$pgv"
PGSNAP_HOME=$U run "$PGSNAP" new
if [ "$rc" = 0 ]; then
	is "$(q "$out" 'select 1')" 1 "PG_VERSION mismatch: the snapshot was rebuilt and works"
	PGSNAP_HOME=$U "$PGSNAP" rm --all
else
	fails_clearly "PG_VERSION mismatch"
	like "$err" 'version|incompatible' "PG_VERSION mismatch: the line says why"
fi
nothing_left "$U" "PG_VERSION mismatch"
[ -e "$pgv" ] && printf '%s\n' "$saved" >"$pgv"

# --- low ulimit -n, TMPDIR nowhere -------------------------------------
# Without the service: through it, the client needs one socket only.
run env PGSNAP_SERVICE=0 bash -c 'ulimit -n 16 && exec "$0" new' "$PGSNAP"
fails_clearly "ulimit -n 16"
like "$err" 'ulimit -n' "ulimit -n 16: the line names the limit"
nothing_left "$PGSNAP_HOME" "ulimit -n 16"
run env PGSNAP_SERVICE=0 bash -c 'ulimit -Sn 16 && exec "$0" new' "$PGSNAP"
is "$rc" 0 "a soft limit of 16 under a higher hard limit is lifted: new works"
[ "$rc" = 0 ] && is "$(q "$out" 'select 1')" 1 "soft ulimit 16: the clone answers"

run env TMPDIR=/nonexistent/tmp "$PGSNAP" new
is "$rc" 0 "TMPDIR pointing nowhere: new works"
[ "$rc" = 0 ] && is "$(q "$out" 'select 1')" 1 "TMPDIR nowhere: the clone answers"
"$PGSNAP" rm --all
nothing_left "$PGSNAP_HOME" "ulimit and TMPDIR, after rm"

# --- root only: a read-only store, a full file system ---------------------
if [ "$(id -u)" != 0 ]; then
	skip "a read-only bind mount and a loop-mounted full file system need root"
	done_testing
	exit 0
fi

mount --bind "$U" "$U" && MOUNTS+=("$U") && mount -o remount,bind,ro "$U"
PGSNAP_HOME=$U run "$PGSNAP" new
fails_clearly "a read-only store"
like "$err" 'Read-only' "read-only store: the line says so"
PGSNAP_HOME=$U run "$PGSNAP" ls
is "$rc" 1 "read-only store: ls fails too (it cannot take the registry lock)"
unmount "$U"
nothing_left "$U" "read-only store"

# Clones on a 24 MB ext4 file system (no root reserve): the 28 MB golden
# does not fit, then the file system is filled to the last block.
Fh=$TEST_TMP/full
if truncate -s 24M "$TEST_TMP/fs.img" && mkfs.ext4 -q -m 0 "$TEST_TMP/fs.img" 2>/dev/null &&
   mkdir -p "$Fh/run" && mount -o loop "$TEST_TMP/fs.img" "$Fh/run"; then
	MOUNTS+=("$Fh/run")
	PGSNAP_HOME=$Fh run "$PGSNAP" new -m copy
	fails_clearly "a file system too small for the clone"
	like "$err" 'No space left' "too small: the line says no space"
	nothing_left "$Fh" "too small"
	# Every block, then every inode.
	dd if=/dev/zero of="$Fh/run/filler" bs=1M status=none 2>/dev/null
	dd if=/dev/zero of="$Fh/run/filler2" bs=4k status=none 2>/dev/null
	i=0; while mkdir "$Fh/run/d$i" 2>/dev/null; do i=$((i + 1)); done
	i=0; while [ $i -lt 100000 ] && : 2>/dev/null >"$Fh/run/f$i"; do i=$((i + 1)); done
	is "$(df --output=avail "$Fh/run" | tail -1 | tr -d ' ')" 0 "the file system is full"
	PGSNAP_HOME=$Fh run "$PGSNAP" new
	[ "$rc" = 0 ] && PGSNAP_HOME=$Fh "$PGSNAP" rm "$out"
	fails_clearly "a full file system"
	like "$err" 'No space left' "full: the line says no space"
	nothing_left "$Fh" "full"
	is "$(ls -A "$Fh/run" | grep -c '\.tmp\.')" 0 "full: no temporary registry file left"
	unmount "$Fh/run"
else
	skip "cannot loop-mount an ext4 image here"
fi

done_testing
