#!/usr/bin/env bash
# The store on an XFS image pgsnap makes and manages (`pgsnap store xfs`):
# doctor says when it would help and the command; the image is made,
# mounted through a loop device and the whole store moves onto it (the
# snapshots copied); clones reflink there (copy-up, copies); after a
# "reboot" (mount and loop device gone, image there) the next use mounts it
# again; `pgsnap store rm` leaves no mount, no loop device and no file; bad
# input is refused with nothing made.
. "$(dirname "$0")/tap.sh"
. "$TEST_DIR/fsimg.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: a loop device and a mount"
[ -e /dev/loop-control ] || skip_all "no loop devices here (/dev/loop-control missing)"
command -v mkfs.xfs >/dev/null || skip_all "mkfs.xfs missing (scripts/deps.sh test installs xfsprogs)"
command -v filefrag >/dev/null || skip_all "filefrag missing (e2fsprogs)"
mount_fs ext4 "$TEST_TMP/ext4" 1500M || skip_all "cannot make an ext4 image for the store's disk"

H=$TEST_TMP/ext4/home
export PGSNAP_HOME=$H
# Loop devices backed by the image; mounts under the store.
loops() { losetup -a | grep -F "$H/xfs.img" || true; }
mounts() { awk -v p="$H/" 'index($2, p) == 1 { print $2, $3 }' /proc/self/mounts; }
# Does FILE share an extent (a reflink) with another file?
shared() { filefrag -v "$1" 2>/dev/null | grep -q shared; }

run "$PGSNAP" new
is "$rc" 0 "a store on ext4: new works"
"$PGSNAP" rm --all

# doctor: not needed for small snapshots; would help for a large one.
run "$PGSNAP" doctor
like "$out" "xfs store: not needed yet: no large snapshot" "doctor: no large snapshot, not needed"
run env PGSNAP_CLONE_LARGE_MB=1 "$PGSNAP" doctor
like "$out" "xfs store: would help: snapshot 'default' is large .* ext4 cannot share extents.*'pgsnap store xfs --size 20G'" \
	"doctor: a large snapshot on ext4: it would help, and the command"

# Bad input: refused, nothing made.
run "$PGSNAP" store xfs --size 12Q
is "$rc" 2 "store xfs --size 12Q: usage error"
like "$err" "--size '12Q'" "naming the size"
run "$PGSNAP" store bogus
is "$rc" 2 "store bogus: usage error"
run "$PGSNAP" store xfs --size 1M
is "$rc" 1 "store xfs --size 1M: refused"
like "$err" "at least 512 MB" "with the minimum"
run "$PGSNAP" store xfs --size 100G
is "$rc" 1 "store xfs --size 100G on a 1.5 GB disk: refused"
like "$err" "MB free, less than" "saying what is free"
is "$(ls "$H" | grep -c xfs)" 0 "nothing made by the refused commands"

# Made: an image, a loop device, a mount; the store moves onto it.
run "$PGSNAP" store xfs --size 1G
is "$rc" 0 "store xfs --size 1G exits 0"
like "$out" "xfs image: $H/xfs.img, 1024 MB" "it names the image"
like "$out" "mounted: $H/xfs through /dev/loop[0-9]+" "and the mount"
is "$(mounts | grep -c "^$H/xfs xfs$")" 1 "XFS is mounted on HOME/xfs"
is "$(loops | wc -l)" 1 "through one loop device"
ok "$([ -d "$H/xfs/snapshots/default/data" ]; echo $?)" "the default snapshot was copied onto it"
run "$PGSNAP" doctor
like "$out" "snapshots: $H/xfs/snapshots \\(xfs\\)" "doctor: snapshots on the XFS"
like "$out" "clones: $H/xfs/run/clones \\(xfs\\)" "doctor: clones on the XFS"
like "$out" "xfs store: in use" "doctor: the store is in use"
like "$out" "method reflink +works" "doctor: reflink works there"
run "$PGSNAP" store xfs
is "$rc" 0 "store xfs again: nothing to do, exit 0"
is "$(loops | wc -l)" 1 "still one loop device"

# Used: clones live on it and share the golden's extents.
run "$PGSNAP" new
is "$rc" 0 "new on the XFS store"
is "$(q "$out" 'select 1')" 1 "and answers"
id=$("$PGSNAP" ls | awk -v u="$out" '$NF == u { print $1 }')
is "$(record_field "$id" method "$H/xfs")" overlay "auto: overlay"
u=$("$PGSNAP" new -m copy)
q "$u" "create table big as select g, repeat(md5(g::text), 8) pad from generate_series(1, 12000) g; checkpoint" >/dev/null
run "$PGSNAP" snapshot save "$u" big
is "$rc" 0 "a snapshot with a big table saved on the XFS store"
"$PGSNAP" rm --all
rel=$(q "$("$PGSNAP" new -s big -m copy)" "select pg_relation_filepath('big')")
g=$H/xfs/snapshots/big/data/$rel
for m in copy reflink overlay; do
	u=$(env PGSNAP_CLONE_LARGE_MB=1 "$PGSNAP" new -s big -m "$m")
	is "$(q "$u" 'select count(*) from big')" 12000 "$m: the clone reads the big table"
	id=$("$PGSNAP" ls | awk -v u="$u" '$NF == u { print $1 }')
	f=$H/xfs/run/clones/$id/$([ "$m" = overlay ] && echo upper || echo data)/$rel
	ok "$(shared "$f"; echo $?)" "$m: its file of the big table shares the golden's extents"
done
ok "$(shared "$g"; echo $?)" "the golden's file is shared (reflinked)"
"$PGSNAP" rm --all

# A reboot: the mount and the loop device go, the image stays; the next
# use mounts it again, with everything on it.  (The service lets go of
# the store first: a reboot would end it too.)
"$PGSNAP" service stop >/dev/null
# (Stragglers of the clones, a trash deleter, a service on its way out,
# let go in their time: long on a loaded machine under the sanitizers.)
holders() { fuser -vm "$H/xfs" 2>&1 | while read -r l; do diag "$l"; done; }
until_ok 60 umount "$H/xfs" || holders
is "$(mounts | grep -c "$H/xfs ")" 0 "unmounted (as by a reboot)"
ok "$(wait_for 10 eval '[ -z "$(loops)" ]'; echo $?)" "its loop device freed"
if command -v setpriv >/dev/null && id postgres >/dev/null 2>&1; then
	run setpriv --reuid=postgres --regid="$(id -g postgres)" --clear-groups "$PGSNAP" ls
	is "$rc" 1 "as an ordinary user, the unmounted store is an error"
	like "$err" "XFS image $H/xfs.img is not mounted .*'pgsnap store' as root" "naming the image and the fix"
else
	skip "no setpriv or postgres user"
fi
run "$PGSNAP" new -s big
is "$rc" 0 "the next new mounts it again"
is "$(q "$out" 'select count(*) from big')" 12000 "and its snapshots are there"
is "$(mounts | grep -c "^$H/xfs xfs$")" 1 "mounted on HOME/xfs"

# Removed: nothing left.
run "$PGSNAP" store rm
is "$rc" 0 "store rm exits 0"
[ "$rc" = 0 ] || { diag "$err"; holders; }
like "$out" "XFS store removed" "and says so"
is "$(mounts)" "" "no mount left under the store"
ok "$(wait_for 10 eval '[ -z "$(loops)" ]'; echo $?)" "no loop device left"
ok "$([ ! -e "$H/xfs.img" ] && [ ! -e "$H/xfs" ]; echo $?)" "no image, no mount point"
is "$(servers_under "$H")" 0 "no server left"
run "$PGSNAP" store
like "$out" "xfs image: none" "store: none"
like "$out" "snapshots: $H/snapshots" "the store is back where it was"
run "$PGSNAP" new
is "$rc" 0 "new works on the old store"
"$PGSNAP" rm --all
run "$PGSNAP" store rm
is "$rc" 0 "store rm again: exit 0"
like "$out" "nothing to remove" "nothing to remove"

done_testing
