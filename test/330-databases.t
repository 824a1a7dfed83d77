#!/usr/bin/env bash
# The recipe directive `databases N`: copies pgsnap_1..N of the snapshot's
# postgres database (contents, owner, settings, privileges), whose
# identical files are hard links in the golden and packed once in its
# image; the databases of a clone, and of two clones, stay independent
# with every engine.
. "$(dirname "$0")/tap.sh"
. "$TEST_DIR/fsimg.sh"

cd "$TEST_TMP"
cat >app.sql <<'EOF'
create role app login;
create role owner_role;
alter database postgres owner to owner_role;
grant connect, temporary on database postgres to app;
create table t(v int);
insert into t select generate_series(1, 3000);
create table big as select g, repeat('x', 200) pad from generate_series(1, 20000) g;
alter database postgres set work_mem = '7MB';
alter role app in database postgres set search_path = a, "b c", public;
comment on database postgres is 'the app db';
EOF
printf 'sql app.sql\ndatabases 3\n' >three.recipe
printf 'sql app.sql\n' >none.recipe

run "$PGSNAP" snapshot build three --recipe three.recipe
is "$rc" 0 "a recipe with 'databases 3' builds"
[ "$rc" = 0 ] || diag "$err"
run "$PGSNAP" snapshot build none --recipe none.recipe
is "$rc" 0 "the same recipe without it builds"

u=$("$PGSNAP" new -s three -m copy)
base=${u%/postgres}
is "$(q "$u" "select string_agg(datname, ' ' order by datname) from pg_database where datname like 'pgsnap%'")" \
	"pgsnap_1 pgsnap_2 pgsnap_3" "a clone has databases pgsnap_1..3"
is "$(q "$base/pgsnap_2" "select count(*) from t")" 3000 "pgsnap_2 holds the recipe's rows"
is "$(q "$base/pgsnap_3" "select count(*) from big")" 20000 "pgsnap_3 too"
is "$(q "$base/pgsnap_2" "show work_mem")" 7MB "ALTER DATABASE postgres SET reaches pgsnap_2"
is "$(psql -X -qAt -d "$base/pgsnap_2?user=app" -c 'show search_path')" 'a, "b c", public' \
	"ALTER ROLE IN DATABASE postgres SET reaches pgsnap_2, list quoting intact"
is "$(psql -X -qAt -d "$base/pgsnap_2" -c 'show search_path')" '"$user", public' \
	"(for that role only)"
is "$(q "$u" "select count(distinct (pg_get_userbyid(datdba), datacl::text, shobj_description(oid, 'pg_database'))) || ' ' || min(pg_get_userbyid(datdba)) from pg_database where datname = 'postgres' or datname like 'pgsnap\_%'")" \
	"1 owner_role" "owner, privileges and comment of the copies match postgres's"
is "$(psql -X -qAt -d "$base/pgsnap_1?user=app" -c 'create temp table x(); select 1')" 1 \
	"the granted privileges work in a copy"
is "$(q "$u" "select datallowconn::text || datistemplate::text from pg_database where datname = 'pgsnap_1'")" \
	"truefalse" "a copy takes connections and is no template"

# The golden: hard links, and an image that does not grow with N.
g=$PGSNAP_HOME/snapshots/three
pgoid=$(q "$u" "select oid from pg_database where datname = 'postgres'")
c1oid=$(q "$u" "select oid from pg_database where datname = 'pgsnap_1'")
rel=$(q "$base/pgsnap_1" "select pg_relation_filenode('big')")
is "$(stat -c %h "$g/data/base/$c1oid/$rel")" 4 "a table's file in the golden has 4 links (postgres + 3 copies)"
is "$(stat -c %i "$g/data/base/$c1oid/$rel")" "$(stat -c %i "$g/data/base/$pgoid/$rel")" \
	"the same inode as postgres's file"
nfiles=$(find "$g/data/base/$pgoid" -type f | wc -l)
nlinked=$(find "$g/data/base/$c1oid" -type f -links +1 | wc -l)
ok "$([ "$nlinked" -ge $((nfiles * 9 / 10)) ]; echo $?)" "most files of a copy are links ($nlinked of $nfiles)"
img3=$(stat -c %s "$g/image")
img0=$(stat -c %s "$PGSNAP_HOME/snapshots/none/image")
dbsz=$(du -sb "$g/data/base/$pgoid" | cut -f1)
ok "$([ "$img3" -lt $((img0 + dbsz / 2)) ]; echo $?)" \
	"the image is not ~4x the database (with copies $img3 bytes, without $img0, one database $dbsz)"
ok "$([ "$(du -sb "$g/data" | cut -f1)" -lt $(( $(du -sb "$PGSNAP_HOME/snapshots/none/data" | cut -f1) + dbsz / 2)) ]; echo $?)" \
	"nor is the golden (du counts a linked file once)"
like "$(grep -c "	base/$c1oid/$rel\$" "$g/manifest")" '^1$' "the manifest lists the copy's file"
is "$(awk -F'\t' -v a="base/$pgoid/$rel" -v b="base/$c1oid/$rel" '$1 == "f" && ($6 == a || $6 == b) { print $4, $5 }' "$g/manifest" | sort -u | wc -l)" 1 \
	"with the same image offset and length as postgres's"

# Independence: per engine, a write in pgsnap_1 of a clone is seen neither
# in its pgsnap_2 or postgres nor in a second clone, nor in the golden.
check_engine() { # LABEL METHOD
	local l=$1 m=$2 u1 u2 b1 b2 sum
	sum=$(cat "$PGSNAP_HOME"/snapshots/three/data/base/*/* 2>/dev/null | md5sum)
	run "$PGSNAP" new -s three -m "$m"
	is "$rc" 0 "$l: new -s three -m $m"
	[ "$rc" = 0 ] || { diag "$err"; return; }
	u1=$out b1=${out%/postgres}
	u2=$("$PGSNAP" new -s three -m "$m") b2=${u2%/postgres}
	q "$b1/pgsnap_1" "insert into t values (-1); update big set pad = 'y' where g < 100; create table w(i int); checkpoint" >/dev/null
	is "$(q "$b1/pgsnap_1" "select count(*) from t")" 3001 "$l: pgsnap_1 holds its write"
	is "$(q "$b1/pgsnap_2" "select count(*) from t") $(q "$b1/pgsnap_2" "select count(*) from big where pad = 'y'")" "3000 0" \
		"$l: pgsnap_2 of the same clone does not see it"
	is "$(q "$u1" "select count(*) from t") $(q "$u1" "select count(*) from pg_class where relname = 'w'")" "3000 0" \
		"$l: nor does its postgres"
	is "$(q "$b2/pgsnap_1" "select count(*) from t") $(q "$b2/pgsnap_1" "select count(*) from big where pad = 'y'")" "3000 0" \
		"$l: nor pgsnap_1 of a second clone"
	is "$(cat "$PGSNAP_HOME"/snapshots/three/data/base/*/* 2>/dev/null | md5sum)" "$sum" "$l: the golden is untouched"
	"$PGSNAP" rm "$u1" "$u2" >/dev/null
}
check_engine copy copy
if "$PGSNAP" doctor 2>/dev/null | grep -q '^method overlay  works'; then
	check_engine overlay overlay
else
	skip "overlay: pgsnap doctor says it does not work here"
fi
if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null && mount_fs xfs "$TEST_TMP/xfs"; then
	(
		export PGSNAP_HOME=$TEST_TMP/xfs/home
		"$PGSNAP" snapshot build three --recipe "$TEST_TMP/three.recipe" >/dev/null 2>&1
		if "$PGSNAP" doctor 2>/dev/null | grep -q '^method reflink  works'; then
			check_engine xfs/reflink reflink
		else
			skip "reflink: pgsnap doctor says it does not work on this XFS"
		fi
		echo "$_tap_n $_tap_failed" >"$TEST_TMP/xfs.counts"
	)
	read -r _tap_n _tap_failed <"$TEST_TMP/xfs.counts"
else
	skip "reflink: needs root and mkfs.xfs for an XFS image (scripts/deps.sh test installs xfsprogs)"
fi

# A derived snapshot: from + databases.
printf 'from none\ndatabases 2\n' >derived.recipe
run "$PGSNAP" snapshot build derived --recipe derived.recipe
is "$rc" 0 "'from none' + 'databases 2' builds"
ud=$("$PGSNAP" new -s derived)
is "$(q "${ud%/postgres}/pgsnap_2" "select count(*) from t")" 3000 "its pgsnap_2 has the base's rows"
# ... from a snapshot with copies: they are replaced, not added to.
printf 'from three\ndatabases 2\n' >again.recipe
run "$PGSNAP" snapshot build again --recipe again.recipe
is "$rc" 0 "'databases 2' from a snapshot that has 3 builds"
ua=$("$PGSNAP" new -s again)
is "$(q "$ua" "select string_agg(datname, ' ' order by datname) from pg_database where datname like 'pgsnap%'")" \
	"pgsnap_1 pgsnap_2" "and has pgsnap_1..2 only"

# ... and without 'databases', its copies stay links in the derived golden.
printf 'from three\nsetting work_mem = 5MB\n' >keep.recipe
run "$PGSNAP" snapshot build keep --recipe keep.recipe
is "$rc" 0 "a snapshot from one with copies builds"
is "$(stat -c %h "$PGSNAP_HOME/snapshots/keep/data/base/$c1oid/$rel")" 4 "its copies' files are still hard links"
uk=$("$PGSNAP" new -s keep)
q "${uk%/postgres}/pgsnap_1" "insert into t values (-1); checkpoint" >/dev/null
is "$(q "${uk%/postgres}/pgsnap_2" "select count(*) from t")" 3000 "and its databases independent"

# new --shared: a derived snapshot NAME.dbs-HASH (from NAME + databases N),
# built once per (NAME, N).
run "$PGSNAP" new -s none --shared=2
is "$rc" 0 "new -s none --shared=2 exits 0"
like "$out" '/pgsnap_1$' "and hands out database pgsnap_1"
is "$(q "$out" "select count(*) from t")" 3000 "which holds the snapshot's rows"
dbs=$(ls "$PGSNAP_HOME/snapshots" | grep '^none\.dbs-[0-9a-f]\{12\}$')
is "$(wc -l <<<"$dbs")" 1 "from a derived snapshot none.dbs-HASH"
is "$(cat "$PGSNAP_HOME/snapshots/$dbs/recipe")" "$(printf 'from none\ndatabases 2')" \
	"whose recipe is 'from none' + 'databases 2'"
run "$PGSNAP" new -s none --shared=2
unlike "$err" "built" "a second new --shared builds nothing"
run "$PGSNAP" new -s none --shared=3
is "$(ls "$PGSNAP_HOME/snapshots" | grep -c '^none\.dbs-')" 2 "another N, another derived snapshot"
run "$PGSNAP" snapshot ls
like "$(grep "^$dbs " <<<"$out")" "^$dbs +[0-9a-f]{12} " "snapshot ls lists it"
run "$PGSNAP" new -s none --shared=2 --now '2021-06-06 12:00:00+00'
is "$rc" 0 "--shared with --now"
is "$(q "$out" "select (now() at time zone 'UTC') || ' ' || count(*) from t")" "2021-06-06 12:00:00 3000" \
	"its database has the fixed time and the rows"
like "$(ls "$PGSNAP_HOME/snapshots")" 'none\.now-[0-9a-f]{12}\.dbs-[0-9a-f]{12}' "(from none.now-HASH.dbs-HASH)"
long=$(printf 'l%.0s' $(seq 63))
printf 'from none\n' >long.recipe
"$PGSNAP" snapshot build "$long" --recipe long.recipe >/dev/null 2>&1
run "$PGSNAP" new -s "$long" --shared=2
is "$rc" 0 "--shared with a 63-character snapshot name"
n=$(ls "$PGSNAP_HOME/snapshots" | grep "^l*\.dbs-")
is "${#n}" 63 "names a derived snapshot of at most 63 characters"
"$PGSNAP" rm --all >/dev/null

# The key.
k3=$("$PGSNAP" snapshot key three --recipe three.recipe)
k4=$(printf 'sql app.sql\ndatabases 4\n' >four.recipe; "$PGSNAP" snapshot key three --recipe four.recipe)
k0=$("$PGSNAP" snapshot key three --recipe none.recipe)
is "$k3" "$(sed -n 's/^key=//p' "$g/meta")" "snapshot key gives the built key"
isnt "$k4" "$k3" "the key changes when N changes"
isnt "$k0" "$k3" "and differs without 'databases'"
is "$k0" "$(sed -n 's/^key=//p' "$PGSNAP_HOME/snapshots/none/meta")" \
	"a recipe without 'databases' keeps its key"
run "$PGSNAP" snapshot build three --recipe three.recipe
like "$err" "up to date" "an unchanged recipe with 'databases' is up to date"

# Bad values: one line naming file:line, exit 1 like other recipe errors.
for v in 0 1001 x 3x -1 '2 3' ' '; do
	printf 'sql app.sql\ndatabases %s\n' "$v" >bad.recipe
	run "$PGSNAP" snapshot build bad --recipe bad.recipe
	is "$rc $(wc -l <<<"$err")" "1 1" "'databases $v' fails with one line"
	like "$err" "bad.recipe, line 2" "naming the file and line ('databases $v')"
done
printf 'databases 2\nsql app.sql\ndatabases 2\n' >bad.recipe
run "$PGSNAP" snapshot build bad --recipe bad.recipe
like "$err" "bad.recipe, line 3: a second 'databases'" "a second 'databases' is refused"
is "$rc" 1 "(exit 1)"
ok "$([ ! -e "$PGSNAP_HOME/snapshots/bad" ]; echo $?)" "and nothing is left of the failed builds"
is "$(ls -a "$PGSNAP_HOME/snapshots" | grep -c '^\.build-')" 0 "(no build directory)"

done_testing
