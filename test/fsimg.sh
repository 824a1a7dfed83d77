# fsimg.sh - real filesystems for the clone engine tests (1xx), as root:
# a tmpfs, a journaled ext4 image, an XFS image with reflink, each mounted
# under the test's own $TEST_TMP and unmounted at exit, whatever happens.
# Source it after tap.sh.

# mount_fs TYPE DIR [SIZE]: a fresh, empty filesystem on DIR.
mount_fs() {
	local type=$1 dir=$2 size=${3:-}
	mkdir -p "$dir" || return 1
	case $type in
	tmpfs) mount -t tmpfs -o "size=${size:-512m},mode=0755" tmpfs "$dir" ;;
	ext4) truncate -s "${size:-256M}" "$dir.img" &&
		mkfs.ext4 -q -F -j "$dir.img" &&
		mount -o loop "$dir.img" "$dir" ;;
	xfs) truncate -s "${size:-320M}" "$dir.img" &&
		mkfs.xfs -q -f -m reflink=1 "$dir.img" &&
		mount -o loop "$dir.img" "$dir" ;;
	*) return 2 ;;
	esac || return 1
	chmod 755 "$dir"
}

# Stop the clones of every store under $TEST_TMP, let their trash empty,
# then unmount everything mounted under $TEST_TMP (deepest first: overlays
# left by a failed test, then the images; loop devices detach with them).
fs_cleanup() {
	local h m
	for h in "$TEST_TMP"/*/ "$TEST_TMP"/*/*/; do
		[ -d "$h/run" ] || continue
		PGSNAP_HOME=${h%/} "$PGSNAP" rm --all >/dev/null 2>&1
		wait_for 20 dir_empty "$h/run/trash"
	done
	for m in $(awk -v p="$TEST_TMP/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
}
trap '_st=$?; fs_cleanup; (exit $_st); _tap_cleanup' EXIT

# listing DIR: every entry's path, type, mode, owner and size (directory
# sizes are the filesystem's business), sorted.
listing() {
	(cd "$1" && find . -mindepth 1 -printf '%P %y %m %u:%g %s\n' |
		awk '$2 == "d" { $5 = "-" } { print }' | sort)
}

# What a starting server changes in its data directory by itself (its
# dynamic shared memory is in pg_dynshmem: see snapshots/default.recipe).
SERVER_OWN='^(postmaster\.(pid|opts)|global/pg_control|pg_stat(/.*)?|pg_wal(/.*)?|pg_dynshmem(/.*)?|(.*/)?pg_internal\.init)( |$)'

# sums DIR: the md5 of every regular file, by path, sorted.
sums() { (cd "$1" && find . -type f -printf '%P\0' | sort -z | xargs -0 -r md5sum); }

# same_tree GOLDEN CLONE: no output when CLONE holds what GOLDEN holds
# (bytes, modes, owners), leaving out what the server changes itself.
same_tree() {
	diff <(listing "$1" | grep -Ev "$SERVER_OWN") \
	     <(listing "$2" | grep -Ev "$SERVER_OWN")
	diff <(sums "$1" | grep -Ev "^[0-9a-f]+  ${SERVER_OWN#^}") \
	     <(sums "$2" | grep -Ev "^[0-9a-f]+  ${SERVER_OWN#^}")
}
