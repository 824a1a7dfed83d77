#!/usr/bin/env bash
# The automatic choice of the clone method: probed once per store and
# remembered, overridden by -m, an impossible -m is an error with the
# reason, a large snapshot goes to reflink where it can, the copy's plan
# per file size; and what an ordinary user gets.
. "$(dirname "$0")/tap.sh"
. "$TEST_DIR/fsimg.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: an XFS image, overlayfs, and a second user"

mount_fs xfs "$TEST_TMP/xfs" || skip_all "cannot make an XFS image here"
export PGSNAP_HOME=$TEST_TMP/xfs/home

run "$PGSNAP" new
is "$rc" 0 "new (auto) exits 0"
u=$out
like "$(cat "$PGSNAP_HOME/run/clone-methods")" $'^boot\t[-0-9a-f]+\noverlay\t0\t' \
	"the probe is remembered in run/clone-methods"
like "$(records)" $'\tmethod=overlay\t' "a small snapshot: auto picks overlay as root"
run "$PGSNAP" doctor
like "$out" "new uses overlay: overlayfs mounts in constant time" "doctor says overlay and why"
# The copy is planned per file size, from what the bench measured on the
# clones' filesystem; the variables override either half.
like "$out" "copy engine: small files write2, big files \(1 MB or more\) kcopy on xfs \(measured" \
	"doctor: the copy's plan for XFS, small and big files"
like "$out" "io_uring: available; not chosen: measured slower than two threads" \
	"doctor: why io_uring is not the default, with figures"
run env PGSNAP_COPY_IMPL=uringat PGSNAP_COPY_BIG=write "$PGSNAP" doctor
like "$out" "copy engine: small files uringat, big files \(1 MB or more\) write on xfs \(PGSNAP_COPY_BIG\)" \
	"PGSNAP_COPY_IMPL and PGSNAP_COPY_BIG override the plan"

# A large snapshot (the line moved down to 1 MB): still overlay, since
# here the upper layer shares the golden's XFS and copy-up reflinks.
export PGSNAP_CLONE_LARGE_MB=1
run "$PGSNAP" doctor
like "$out" "new uses overlay: .*copies a large file up by reflink" "large snapshot, one XFS: overlay, copy-up by reflink"
unset PGSNAP_CLONE_LARGE_MB

# -m overrides; an impossible one is an error naming the reason.
run "$PGSNAP" new -m copy
is "$rc" 0 "-m copy overrides the choice"
is "$(records | grep -c $'\tmethod=copy\t')" 1 "and copy was used"
printf 'boot\t%s\noverlay\t0\tworks\nreflink\t-95\tcached: no extents here\ncopy\t0\tworks\n' \
	"$(cat /proc/sys/kernel/random/boot_id)" >"$PGSNAP_HOME/run/clone-methods"
run "$PGSNAP" new -m reflink
is "$rc" 1 "-m reflink that the store's probe refused: exit 1"
like "$err" "clone method 'reflink' cannot work here: cached: no extents here" \
	"the error gives the remembered reason (no probe per clone)"
printf 'boot\tanother-boot\noverlay\t-1\tstale\nreflink\t-1\tstale\ncopy\t0\tworks\n' \
	>"$PGSNAP_HOME/run/clone-methods"
run "$PGSNAP" new -m reflink
is "$rc" 0 "after a reboot (another boot id) the store is probed again"
"$PGSNAP" rm --all

# Clones on tmpfs, snapshots on XFS: for a large snapshot the overlay's
# upper layer goes beside the golden, where copy-up reflinks.
"$PGSNAP" rm --all
wait_for 20 dir_empty "$PGSNAP_HOME/run/trash"
H=$PGSNAP_HOME
if mount_fs tmpfs "$H/run"; then
	export PGSNAP_CLONE_LARGE_MB=1
	run "$PGSNAP" doctor
	like "$out" "new uses overlay: .*the upper layers go to $H/snapshots/.overlay \(xfs\), where copy-up reflinks" \
		"clones on tmpfs, large snapshot: doctor says the upper layer goes to the snapshots' XFS"
	run "$PGSNAP" new
	is "$rc" 0 "new (large, overlay) exits 0"
	u=$out
	id=$("$PGSNAP" ls -q)
	is "$(stat -f -c %T "$(readlink "$H/run/clones/$id/upper")")" xfs "the upper layer is on XFS"
	q "$u" "create table big_touch as select 1 x; select count(*) from pg_class" >/dev/null
	ok "$([ -n "$(ls "$H/snapshots/.overlay/$id/upper/base")" ]; echo $?)" "the clone's writes land there"
	is "$(q "$u" 'select x from big_touch')" 1 "and the clone reads them back"
	"$PGSNAP" rm "$u"
	ok "$([ ! -e "$H/snapshots/.overlay/$id" ]; echo $?)" "rm moves the upper layer away at once"
	ok "$(wait_for 20 dir_empty "$H/snapshots/.overlay-trash"; echo $?)" "and it is deleted in the background"
	unset PGSNAP_CLONE_LARGE_MB
	# rm --all sends the supervisor away, which holds a file of run/.
	"$PGSNAP" rm --all
	umount "$H/run" 2>/dev/null || umount -l "$H/run"
else
	skip "cannot mount a tmpfs for the clones"
fi

# An ordinary user: overlay through a user namespace the server runs in,
# when the kernel allows it (test/130 checks that path in depth); else
# reflink on XFS, and -m overlay fails with the probe's reason.
if command -v setpriv >/dev/null && id postgres >/dev/null 2>&1; then
	U=$TEST_TMP/xfs/user
	mkdir -p "$U" && chown postgres: "$U"
	as_user() { setpriv --reuid=postgres --regid="$(id -g postgres)" --clear-groups \
		env HOME="$U" PGSNAP_HOME="$U/home" "$@"; }
	run as_user "$PGSNAP" doctor
	if grep -q "^method overlay *works" <<<"$out"; then
		like "$out" "new uses overlay: overlayfs mounts in constant time" \
			"as a user, user namespaces allowed: auto picks overlay"
		run as_user "$PGSNAP" new
		is "$rc" 0 "as a user: new (overlay) works"
		[ "$rc" = 0 ] && is "$(q "$out" 'select current_user')" postgres "and answers"
		is "$(records "$U/home" | grep -c $'\tmethod=overlay\t')" "$(records "$U/home" | grep -c $'\tmethod=')" \
			"and it was overlay"
	else
		like "$out" "method overlay +unavailable: overlayfs as an ordinary user \(in a user namespace\) failed" \
			"as a user, user namespaces refused: doctor says why overlay is unavailable"
		like "$out" "new uses reflink: no overlay" "and on XFS auto picks reflink"
		run as_user "$PGSNAP" new -m overlay
		is "$rc" 1 "as a user: -m overlay fails"
		like "$err" "cannot work here: overlayfs as an ordinary user" "naming the reason"
		skip "as a user: overlay not allowed here"
	fi
	run as_user "$PGSNAP" new -m reflink
	is "$rc" 0 "as a user: new -m reflink works"
	[ "$rc" = 0 ] && is "$(q "$out" 'select current_user')" postgres "and answers"
	as_user "$PGSNAP" rm --all
else
	skip "no setpriv or no postgres user: cannot run as an ordinary user"
fi

done_testing
