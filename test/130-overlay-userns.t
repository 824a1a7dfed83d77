#!/usr/bin/env bash
# Overlay as an ordinary user: the server runs in a private user and mount
# namespace holding the overlay mount, its socket outside it.  The clone
# holds its golden, its writes reach neither the golden nor another clone,
# clients in the normal namespace reach it, and rm leaves no process, no
# mount and no file.
. "$(dirname "$0")/tap.sh"
. "$TEST_DIR/fsimg.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: runs pgsnap as a second user"
command -v setpriv >/dev/null || skip_all "no setpriv: cannot run as an ordinary user"
id postgres >/dev/null 2>&1 || skip_all "no postgres user to run as"

U=$TEST_TMP/user
mkdir -p "$U" && chown postgres: "$U"
as_user() { setpriv --reuid=postgres --regid="$(id -g postgres)" --clear-groups \
	env HOME="$U" PGSNAP_HOME="$U/home" PGSNAP_POOL=0 "$@"; }
# The kernel's own answer, without pgsnap: is an unprivileged overlay
# mount in a user namespace allowed here (sysctl, container policy)?
mkdir -p "$U/p/l" "$U/p/u" "$U/p/w" "$U/p/m" && chown -R postgres: "$U/p"
why=$(as_user unshare --user --map-root-user --mount mount -t overlay overlay \
	-o "lowerdir=$U/p/l,upperdir=$U/p/u,workdir=$U/p/w,userxattr" "$U/p/m" 2>&1) ||
	skip_all "unprivileged overlayfs in a user namespace is refused here: $why"
rm -rf "$U/p"

export PGSNAP_HOME=$U/home
run as_user "$PGSNAP" doctor
is "$rc" 0 "as a user: doctor exits 0"
like "$out" "method overlay +works" "as a user: the probe finds overlay works (a real mount in a user namespace)"
like "$out" "new uses overlay" "as a user: auto picks overlay"
like "$(cat "$PGSNAP_HOME/run/clone-methods")" $'\noverlay\t0\t' "the answer is remembered"

g=$PGSNAP_HOME/snapshots/default/data
run as_user "$PGSNAP" new -m overlay
is "$rc" 0 "as a user: new -m overlay exits 0"
[ "$rc" = 0 ] || diag "$err"
u1=$out
run as_user "$PGSNAP" new -m overlay
u2=$out
list=$(as_user "$PGSNAP" ls)
id1=$(awk -v u="$u1" '$NF == u { print $1 }' <<<"$list")
id2=$(awk -v u="$u2" '$NF == u { print $1 }' <<<"$list")
p1=$(awk -v u="$u1" '$NF == u { print $4 }' <<<"$list")
p2=$(awk -v u="$u2" '$NF == u { print $4 }' <<<"$list")
d1=$PGSNAP_HOME/run/clones/$id1/data
d2=$PGSNAP_HOME/run/clones/$id2/data
is "$(records | grep -c $'\tmethod=overlay\t')" 2 "both clones recorded as overlay"
is "$(as_user psql -X -qAt -d "$u1" -c 'select current_user')" postgres "a client in the normal namespace reaches the server"
is "$(ps -o user= -p "$p1")" postgres "the server runs as the user"
ok "$([ "$(readlink /proc/$p1/ns/user)" != "$(readlink /proc/self/ns/user)" ]; echo $?)" \
	"in a user namespace of its own"
is "$(awk -v p="$PGSNAP_HOME/" 'index($2, p) == 1 && $3 == "overlay"' /proc/self/mounts)" "" \
	"the overlay mount is not visible outside"
# The server's view of its data directory: through its own root.
like "$(awk -v d="$d1" '$2 == d { print $3 " " $4 }' "/proc/$p1/mounts")" '^overlay .*userxattr' \
	"inside, the data directory is an overlay (userxattr)"
before=$(sums "$g")
is "$(same_tree "$g" "/proc/$p1/root$d1")" "" "the clone holds the golden's bytes, modes and owners"
q "$u1" "create table w as select g, repeat('x', 200) pad from generate_series(1, 20000) g;
	update pg_class set relname = relname where oid < 2000; checkpoint" >/dev/null
is "$(q "$u1" 'select count(*) from w')" 20000 "clone 1 holds its writes"
is "$(q "$u2" "select count(*) from pg_class where relname = 'w'")" 0 "clone 2 does not see them"
is "$(sums "$g")" "$before" "the golden's files are untouched"
is "$(same_tree "$g" "/proc/$p2/root$d2")" "" "clone 2's files still equal the golden's"
ok "$([ -s "$PGSNAP_HOME/run/clones/$id1/upper/base/$(q "$u1" "select oid from pg_database where datname = 'postgres'")/$(q "$u1" "select relfilenode from pg_class where relname = 'w'")" ]; echo $?)" \
	"the writes land in the clone's upper layer"

run as_user "$PGSNAP" rm "$u1" "$u2"
is "$rc" 0 "rm exits 0"
ok "$(! alive "$p1" && ! alive "$p2"; echo $?)" "no server is left"
ok "$([ ! -e "$PGSNAP_HOME/run/clones/$id1" ] && [ ! -e "$PGSNAP_HOME/run/clones/$id2" ]; echo $?)" \
	"the clone directories are gone at once"
ok "$(wait_for 20 dir_empty "$PGSNAP_HOME/run/trash"; echo $?)" "the trash empties in the background"
is "$(servers_under "$PGSNAP_HOME/")" 0 "no postgres runs on the store"

# A server that fails to start (a bad option) leaves nothing behind.
run as_user "$PGSNAP" new -m overlay -o "-c no_such_setting=1"
is "$rc" 1 "a server that cannot start: exit 1"
like "$err" "no_such_setting" "with the server's reason"
is "$(ls "$PGSNAP_HOME/run/clones" | grep -v '^\.' | wc -l)" 0 "and no clone directory is left"

as_user "$PGSNAP" rm --all >/dev/null 2>&1
done_testing
