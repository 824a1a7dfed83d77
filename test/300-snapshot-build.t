#!/usr/bin/env bash
# pgsnap snapshot build: SQL files, exec, extensions, keys, errors, and
# new -s NAME --build-if-stale (one build for concurrent callers).
. "$(dirname "$0")/tap.sh"

app=$TEST_TMP/app
mkdir -p "$app/db"
cat >"$app/db/schema.sql" <<'SQL'
create table users(id int primary key, name text not null);
create index users_name on users(name);
insert into users select g, 'user' || g from generate_series(1, 500) g;
SQL
cd "$app"

run "$PGSNAP" snapshot build app -f db/schema.sql
is "$rc" 0 "build -f schema.sql exits 0"
like "$out" '^[0-9a-f]{64}$' "stdout is the 64-hex key"
key1=$out
like "$err" "snapshot 'app' built" "stderr says it was built"
ok "$([ -f "$PGSNAP_HOME/snapshots/app/meta" ]; echo $?)" "the snapshot is in place"
is "$(ls -a "$PGSNAP_HOME/snapshots" | grep -c '^\.build-')" 0 "no build directory is left"
ok "$([ ! -e "$PGSNAP_HOME/snapshots/app/data/postmaster.pid" ]; echo $?)" \
	"the golden holds no postmaster.pid (cleanly shut down)"
is "$(pg_controldata "$PGSNAP_HOME/snapshots/app/data" | sed -n 's/^Database cluster state: *//p')" \
	"shut down" "pg_control: shut down"
is "$(servers_under "$PGSNAP_HOME/snapshots")" 0 "no build server is left running"

run "$PGSNAP" snapshot key app -f db/schema.sql
is "$out" "$key1" "snapshot key prints the same key without building"
unlike "$err" "built" "and builds nothing"

u1=$("$PGSNAP" new -s app)
u2=$("$PGSNAP" new -s app)
is "$(q "$u1" 'select count(*) from users')" 500 "clone 1 sees the rows"
is "$(q "$u2" "select count(*) from pg_indexes where indexname = 'users_name'")" 1 \
	"clone 2 sees the index"
q "$u1" 'delete from users where id <= 100'
is "$(q "$u1" 'select count(*) from users')" 400 "a delete in clone 1"
is "$(q "$u2" 'select count(*) from users')" 500 "does not reach clone 2"
u3=$("$PGSNAP" new -s app)
is "$(q "$u3" 'select count(*) from users')" 500 "nor the snapshot"
is "$(q "$u3" "select last_analyze is not null from pg_stat_user_tables where relname = 'users'")" \
	t "clones start analyzed: no autovacuum storm per clone"
is "$(q "$u3" "select reltuples from pg_class where relname = 'users'")" 500 \
	"the build analyzed the tables"

run "$PGSNAP" snapshot build app -f db/schema.sql
is "$rc" 0 "an unchanged build exits 0"
like "$err" "snapshot 'app' is up to date" "and says it is up to date"
unlike "$err" "built" "without building"
is "$out" "$key1" "with the same key"

# From another directory with an absolute path: paths are not in the key.
run env -C / "$PGSNAP" snapshot key app -f "$app/db/schema.sql"
is "$out" "$key1" "the key does not depend on where the files are"

echo "insert into users values (9999, 'new');" >>db/schema.sql
run "$PGSNAP" snapshot build app -f db/schema.sql
like "$err" "snapshot 'app' built" "a changed input file rebuilds"
isnt "$out" "$key1" "with another key"
key2=$out
u4=$("$PGSNAP" new -s app)
is "$(q "$u4" 'select name from users where id = 9999')" new "a new clone sees the change"
is "$(q "$u1" 'select count(*) from users')" 400 "the clone of the old snapshot still works"
# The key check keeps input hashes by identity; an in-place rewrite that
# keeps the inode, the size and the mtime still changes the ctime.
ok "$([ -s "$PGSNAP_HOME/snapshots/app/inputs" ]; echo $?)" "the snapshot keeps its input hashes"
cp -p db/schema.sql "$TEST_TMP/schema.bak"
# The last line, "insert into users values (9999, 'new');", same length.
printf "insert into users values (9998, 'pad');" |
	dd of=db/schema.sql bs=1 seek=$(( $(stat -c %s db/schema.sql) - 40 )) conv=notrunc status=none
touch -r "$TEST_TMP/schema.bak" db/schema.sql
is "$(stat -c %s.%Y db/schema.sql)" "$(stat -c %s.%Y "$TEST_TMP/schema.bak")" "(same size and mtime)"
run "$PGSNAP" snapshot build app -f db/schema.sql
like "$err" "snapshot 'app' built" "an in-place rewrite with the old mtime still rebuilds"
is "$(q "$("$PGSNAP" new -s app)" 'select name from users where id = 9998')" pad "with the new content"

# new --build-if-stale: the stored recipe is re-read; two at once build once.
printf 'create table extra(x int);\n' >db/extra.sql
"$PGSNAP" snapshot build app2 -f db/schema.sql -f db/extra.sql >/dev/null 2>&1
echo "insert into extra values (1);" >>db/extra.sql
"$PGSNAP" new -s app2 --build-if-stale >"$TEST_TMP/n1.out" 2>"$TEST_TMP/n1.err" &
p1=$!
"$PGSNAP" new -s app2 --build-if-stale >"$TEST_TMP/n2.out" 2>"$TEST_TMP/n2.err" &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
is "$r1.$r2" "0.0" "two concurrent new --build-if-stale succeed"
is "$(cat "$TEST_TMP"/n1.err "$TEST_TMP"/n2.err | grep -c "snapshot 'app2' built")" 1 \
	"and build the stale snapshot once"
is "$(q "$(cat "$TEST_TMP/n1.out")" 'select count(*) from extra')" 1 "clone 1 has the new row"
is "$(q "$(cat "$TEST_TMP/n2.out")" 'select count(*) from extra')" 1 "clone 2 too"
run "$PGSNAP" new -s app2 --build-if-stale
unlike "$err" "built" "a third one finds it up to date"

# A broken SQL file: file, line, the server's message; nothing left.
cat >db/broken.sql <<'SQL'
create table if not exists users(id int);
create table t(a int);
select
  a,
  no_such_column
from t;
SQL
run "$PGSNAP" snapshot build broken -f db/schema.sql -f db/broken.sql
is "$rc" 1 "a broken SQL file fails with exit 1"
like "$err" "db/broken.sql, line 5: ERROR: column \"no_such_column\" does not exist" \
	"naming the file, the line and the server's message (past a NOTICE)"
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
ok "$([ ! -e "$PGSNAP_HOME/snapshots/broken" ]; echo $?)" "no snapshot is left"
is "$(ls -a "$PGSNAP_HOME/snapshots" | grep -c '^\.build-')" 0 "no build directory"
is "$(servers_under "$PGSNAP_HOME/snapshots")" 0 "no build server"
printf 'select 1/0;\n' >db/div.sql
run "$PGSNAP" snapshot build broken -f db/div.sql
like "$err" "db/div.sql, line 1: ERROR: division by zero" "a run-time error names its line too"

# --exec: DATABASE_URL and PG* reach the command; failures show the tail.
run "$PGSNAP" snapshot build withexec --exec 'psql -X -q "$DATABASE_URL" -c "create table migrated(v int)" && psql -X -q -c "insert into migrated values (7)"'
is "$rc" 0 "--exec runs a migration command"
is "$(q "$("$PGSNAP" new -s withexec)" 'select v from migrated')" 7 \
	"its work is in the snapshot (DATABASE_URL and PGHOST/PGPORT set)"
run "$PGSNAP" snapshot build failexec --exec 'echo step one; echo it broke >&2; exit 3'
is "$rc" 1 "a failing --exec exits 1"
like "$err" "exit 3" "the error gives the exit status"
like "$err" "it broke" "and the tail of its output"
ok "$([ ! -e "$PGSNAP_HOME/snapshots/failexec" ]; echo $?)" "and leaves no snapshot"

# Extensions, settings, a recipe file with relative paths.
if [ -f "$(pg_config --sharedir)/extension/citext.control" ]; then
	cat >"$app/db/app.recipe" <<'EOF2'
# the app's snapshot
extension citext
setting work_mem = 12MB
sql schema.sql
sql extra.sql
EOF2
	run env -C / "$PGSNAP" snapshot build fromrecipe --recipe "$app/db/app.recipe"
	is "$rc" 0 "a recipe file builds (paths relative to it)"
	uf=$("$PGSNAP" new -s fromrecipe)
	is "$(q "$uf" "select extname from pg_extension where extname = 'citext'")" citext "the extension exists"
	is "$(q "$uf" 'show work_mem')" 12MB "the setting is in postgresql.conf"
	is "$(q "$uf" 'select count(*) from extra')" 1 "the files ran in order"
else
	skip "citext (postgresql contrib) is not installed"
fi

# A store path too long for a Unix socket in the build directory.
long=$TEST_TMP/$(printf 'x%.0s' $(seq 1 60))
mkdir -p "$long"
run env PGSNAP_HOME="$long/home" "$PGSNAP" snapshot build app -f db/schema.sql
is "$rc" 0 "a build in a store with a long path works (socket elsewhere)"
ls -d /tmp/pgsnap-build-* 2>/dev/null | while read -r d; do
	[ "$(stat -c %Y "$d")" -ge "$(stat -c %Y "$long")" ] && echo "$d"
done | grep -q . && leftover=1 || leftover=0
is "$leftover" 0 "and leaves no socket directory behind"

run env PGSNAP_HOME="$TEST_TMP/fresh" "$PGSNAP" snapshot build nofile -f db/missing.sql
is "$rc" 1 "a missing SQL file fails"
like "$err" "cannot read db/missing.sql" "naming it"
is "$(ls "$TEST_TMP/fresh/snapshots")" "" "before building anything (not even the base)"

run "$PGSNAP" snapshot build nothing
is "$rc" 1 "build with no inputs and no shipped recipe fails"
run "$PGSNAP" snapshot build app -c nonsense
is "$rc" 2 "-c without = is a usage error"
run "$PGSNAP" new -s no_such_snapshot
is "$rc" 1 "new -s of an unknown snapshot fails"
like "$err" "no snapshot named 'no_such_snapshot' \(snapshots: .*app" "listing the ones that exist"

done_testing
