#!/usr/bin/env bash
# A container's /dev/shm is 64 MB: two copy clones of the default snapshot.
# Without PGSNAP_HOME, clones then live in the disk store (the registry
# and sockets stay on RAM), doctor says so and why, and twenty copy clones
# live at once.  Reproduced in a private mount namespace.
. "$(dirname "$0")/tap.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root for a private mount namespace"
command -v unshare >/dev/null || skip_all "unshare (util-linux) is missing"
unshare -m true 2>/dev/null || skip_all "cannot make a mount namespace here"

cache=$TEST_TMP/cache
mkdir -p "$cache" /var/cache/pgsnap
chmod 755 "$cache"
run unshare -m bash -c '
	set -e
	mount --make-rprivate /
	mount -t tmpfs -o size=64m,mode=1777 tmpfs /dev/shm
	mount --bind "$1" /var/cache/pgsnap
	unset PGSNAP_HOME XDG_RUNTIME_DIR
	export PGSNAP_POOL=0
	"$2" doctor | grep "^clones"
	n=0
	for i in $(seq 20); do "$2" new -m copy -w 0 >/dev/null && n=$((n + 1)); done
	echo "made $n"
	echo "live $("$2" ls -q | wc -l)"
	echo "answer $(psql -X -qAt -d "$("$2" ls | awk "NR == 21 { print \$NF }")" -c "select 1")"
	echo "shm $(df -m /dev/shm | awk "NR == 2 { print \$3 }")"
	"$2" rm --all
	echo "left $("$2" ls -q | wc -l)"
' sh "$cache" "$PGSNAP"
is "$rc" 0 "the run in a 64 MB /dev/shm went through"
[ "$rc" = 0 ] || diag "$err"
like "$out" "clones: /var/cache/pgsnap/clones" "doctor: the clones live in the disk store"
like "$out" "clones on disk: /dev/shm(/pgsnap-0)? holds 64 MiB in all" "and says why"
like "$out" "made 20" "twenty copy clones made, none failing"
like "$out" "live 20" "all twenty live at once"
like "$out" "answer 1" "and they answer"
like "$out" "left 0" "rm --all removes them"
is "$(ls -A "$cache/clones" 2>/dev/null | wc -l)" 0 "nothing left in the disk store's clones"
done_testing
