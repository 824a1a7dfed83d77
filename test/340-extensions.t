#!/usr/bin/env bash
# Extensions in snapshots: a real package (PostGIS) and a preloaded library
# (pg_stat_statements) work in clones; the key takes what makes an
# extension, so an upgraded package rebuilds the snapshot; a missing one is
# one line naming the package, and leaves nothing behind.
. "$(dirname "$0")/tap.sh"

SHAREDIR=$(pg_config --sharedir)
PKGLIBDIR=$(pg_config --pkglibdir)
app=$TEST_TMP/app
mkdir -p "$app"

# ---- PostGIS: `extension postgis`, spatial queries on a clone -----------
if [ -f "$SHAREDIR/extension/postgis.control" ]; then
	cat >"$app/geo.sql" <<'SQL'
create table places(name text primary key, geom geometry(Point, 4326) not null);
create index places_geom on places using gist (geom);
insert into places values
  ('origin',     'SRID=4326;POINT(0 0)'),
  ('three-four', 'SRID=4326;POINT(3 4)'),
  ('inside',     'SRID=4326;POINT(5 5)'),
  ('outside',    'SRID=4326;POINT(15 5)');
create table zones(name text primary key, geom geometry(Polygon, 4326) not null);
insert into zones values ('square', 'SRID=4326;POLYGON((1 1, 10 1, 10 10, 1 10, 1 1))');
SQL
	cat >"$app/geo.recipe" <<'EOF'
extension postgis
sql geo.sql
EOF
	run "$PGSNAP" snapshot build geo --recipe "$app/geo.recipe"
	is "$rc" 0 "a snapshot with 'extension postgis' builds"
	geokey=$out
	g=$("$PGSNAP" new -s geo)
	is "$(q "$g" "select extversion = (select default_version from pg_available_extensions
		where name = 'postgis') from pg_extension where extname = 'postgis'")" t \
		"the clone has postgis at the package's default version"
	is "$(q "$g" "select ST_Distance(a.geom, b.geom) from places a, places b
		where a.name = 'origin' and b.name = 'three-four'")" 5 \
		"ST_Distance between (0 0) and (3 4) is 5"
	is "$(q "$g" "select string_agg(p.name, ',' order by p.name) from places p
		join zones z on ST_Contains(z.geom, p.geom) where z.name = 'square'")" \
		"inside,three-four" "ST_Contains finds the points inside the square"
	# One degree of longitude on the equator of WGS 84: a * pi / 180.
	is "$(q "$g" "select round(ST_Distance('SRID=4326;POINT(0 0)'::geography,
		'SRID=4326;POINT(1 0)'::geography)::numeric, 2)")" 111319.49 \
		"geography: one degree along the equator is 111319.49 m"
	is "$(q "$g" "set enable_seqscan = off; select count(*) from places
		where geom && ST_MakeEnvelope(2, 2, 6, 6, 4326)")" 2 \
		"a bounding-box query through the GiST index"
	q "$g" "insert into places values ('new', 'SRID=4326;POINT(2 2)')"
	is "$(q "$("$PGSNAP" new -s geo)" 'select count(*) from places')" 4 \
		"another clone does not see the first one's write"
	run "$PGSNAP" snapshot key geo --recipe "$app/geo.recipe"
	is "$out" "$geokey" "the key from the stored hashes equals the build's"
	like "$(cat "$PGSNAP_HOME/snapshots/geo/inputs")" "postgis-3\.so" \
		"the snapshot keeps the hash of postgis's library"
else
	skip "postgresql-15-postgis-3 is not installed (scripts/deps.sh test installs it)"
fi

# ---- pg_stat_statements in shared_preload_libraries ----------------------
cat >"$app/pss.recipe" <<'EOF'
setting shared_preload_libraries = 'pg_stat_statements'
extension pg_stat_statements
EOF
run "$PGSNAP" snapshot build pss --recipe "$app/pss.recipe"
is "$rc" 0 "a snapshot with pg_stat_statements preloaded builds"
p1=$("$PGSNAP" new -s pss)
p2=$("$PGSNAP" new -s pss)
is "$(q "$p1" 'show shared_preload_libraries')" pg_stat_statements "the clone preloads it"
q "$p1" 'select 4242 as pgsnap_marker' >/dev/null
q "$p1" 'select 4343 as pgsnap_marker' >/dev/null
is "$(q "$p1" "select calls || ' ' || query from pg_stat_statements
	where query like '%pgsnap_marker%' and query not like '%pg_stat_statements%'")" \
	'2 select $1 as pgsnap_marker' "a clone's queries show up in pg_stat_statements"
is "$(q "$p2" "select count(*) from pg_stat_statements
	where query like '%pgsnap_marker%' and query not like '%pg_stat_statements%'")" 0 \
	"and not in another clone's"
like "$(cat "$PGSNAP_HOME/snapshots/pss/inputs")" "lib/pg_stat_statements\.so" \
	"the key took the preloaded library"

# ---- a missing extension package: one line, nothing made ----------------
fresh=$TEST_TMP/fresh
run env PGSNAP_HOME="$fresh" "$PGSNAP" snapshot build bad -e pgsnap_no_such_ext -f "$app/pss.recipe"
is "$rc" 1 "a missing extension fails with exit 1"
like "$err" "extension pgsnap_no_such_ext: not installed \(no pgsnap_no_such_ext\.control in $SHAREDIR/extension" \
	"naming the extension and the missing control file"
if [ "$SHAREDIR" = "/usr/share/postgresql/$(pg_config --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')" ]; then
	like "$err" "apt-get install postgresql-[0-9]+-pgsnap-no-such-ext\)$" "and the package to install"
else
	like "$err" "install it for the PostgreSQL in " "and where to install it"
fi
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
is "$(ls "$fresh/snapshots" 2>/dev/null)" "" "no snapshot directory, not even the base"
is "$(ls -a "$fresh/snapshots" 2>/dev/null | grep -c -e '^\.build-' -e '^\.bad\.lock')" 0 \
	"no build directory, no lock"
is "$(servers_under "$fresh")" 0 "no server"
run env PGSNAP_HOME="$fresh" "$PGSNAP" snapshot build bad2 -e postgis_topology \
	-c "shared_preload_libraries = 'pg_stat_statements, pgsnap_no_such_lib'"
like "$err" "'pgsnap_no_such_lib' is not installed \(no $PKGLIBDIR/pgsnap_no_such_lib\.so" \
	"a missing preloaded library is named the same way"
is "$rc.$(ls "$fresh/snapshots" 2>/dev/null)" "1." "and also leaves nothing"

# ---- an upgraded package changes the key and rebuilds --------------------
# A private PostgreSQL installation: copies of the binaries at the same
# relative place, so that postgres and pg_config look in sharedir and
# pkglibdir trees this test owns (links to the real files, plus a
# throwaway extension it can "upgrade").
BINDIR=$(pg_config --bindir)
priv=$TEST_TMP/pg
pb=$priv$BINDIR pshare=$priv$SHAREDIR plib=$priv$PKGLIBDIR
mkdir -p "$pb" "$pshare/extension" "$plib"
cp -p "$BINDIR/postgres" "$BINDIR/initdb" "$BINDIR/pg_config" "$pb/"
for f in "$SHAREDIR"/*; do
	[ "${f##*/}" = extension ] || ln -s "$f" "$pshare/"
done
ln -s "$SHAREDIR"/extension/* "$pshare/extension/"
ln -s "$PKGLIBDIR"/* "$plib/"
# (postgres finds itself on PATH when started by name: put it first.)
pv() { env PGSNAP_HOME="$TEST_TMP/phome" PGSNAP_PG_BINDIR="$pb" PATH="$pb:$PATH" "$PGSNAP" "$@"; }

if [ "$("$pb/pg_config" --sharedir)" != "$pshare" ]; then
	skip "this PostgreSQL does not find its files relative to its binaries"
else
	# Version 1.0 of extension pgsnap_t340; its library is a copy of
	# another one (no function of it is called: only its bytes count).
	ext=$pshare/extension
	cat >"$ext/pgsnap_t340.control" <<'EOF'
default_version = '1.0'
module_pathname = '$libdir/pgsnap_t340'
relocatable = true
EOF
	printf "create function pgsnap_t340_version() returns text language sql as \$\$ select '1.0' \$\$;\n" \
		>"$ext/pgsnap_t340--1.0.sql"
	cp "$PKGLIBDIR/lo.so" "$plib/pgsnap_t340.so"

	run pv snapshot build fake -e pgsnap_t340
	is "$rc" 0 "a snapshot of the private installation's extension builds"
	k1=$out
	f1=$(pv new -s fake)
	is "$(q "$f1" 'select pgsnap_t340_version()')" 1.0 "its clone has version 1.0"
	run pv new -s fake --build-if-stale
	unlike "$err" "built" "new --build-if-stale: up to date"

	# The package is upgraded: a new default_version and its script.
	sed -i "s/'1.0'/'1.1'/" "$ext/pgsnap_t340.control"
	sed "s/'1.0'/'1.1'/" "$ext/pgsnap_t340--1.0.sql" >"$ext/pgsnap_t340--1.1.sql"
	run pv snapshot key fake -e pgsnap_t340
	isnt "$out" "$k1" "a new default_version changes the key"
	k2=$out
	run pv new -s fake --build-if-stale
	like "$err" "snapshot 'fake' built" "new --build-if-stale rebuilds the snapshot"
	is "$(q "$out" "select pgsnap_t340_version() || ' ' || extversion from pg_extension
		where extname = 'pgsnap_t340'")" "1.1 1.1" "its clone has version 1.1"
	is "$(q "$f1" 'select pgsnap_t340_version()')" 1.0 "the clone of the old one still works"
	is "$(sed -n 's/^key=//p' "$TEST_TMP/phome/snapshots/fake/meta")" "$k2" \
		"the snapshot has the new key"

	# Only the library changes (a rebuilt package of the same version).
	cp "$PKGLIBDIR/pg_stat_statements.so" "$plib/pgsnap_t340.so"
	run pv snapshot key fake -e pgsnap_t340
	isnt "$out" "$k2" "a changed library changes the key"
	k3=$out
	run pv new -s fake --build-if-stale
	like "$err" "snapshot 'fake' built" "and rebuilds the snapshot"
	# The same bytes installed again (new inode, new times): nothing to do.
	cp "$PKGLIBDIR/pg_stat_statements.so" "$plib/pgsnap_t340.so.new"
	mv "$plib/pgsnap_t340.so.new" "$plib/pgsnap_t340.so"
	run pv new -s fake --build-if-stale
	unlike "$err" "built" "the same bytes reinstalled do not rebuild"
	run pv snapshot key fake -e pgsnap_t340
	is "$out" "$k3" "(same key)"

	# A preloaded library's bytes count too.
	run pv snapshot key pre -c shared_preload_libraries=pgsnap_t340
	is "$rc" 0 "a preloaded library of the private installation is found"
	p1=$out
	cp "$PKGLIBDIR/lo.so" "$plib/pgsnap_t340.so"
	run pv snapshot key pre -c shared_preload_libraries=pgsnap_t340
	isnt "$out" "$p1" "and a change of it changes the key"

	# A package half installed, an extension that requires a missing one.
	rm "$plib/pgsnap_t340.so"
	run pv snapshot build fake -e pgsnap_t340
	is "$rc" 1 "an extension whose library is missing fails"
	like "$err" "extension pgsnap_t340: not installed completely \(no $plib/pgsnap_t340\.so" \
		"naming the library"
	is "$(q "$(pv new -s fake)" 'select pgsnap_t340_version()')" 1.1 \
		"the snapshot stays as it was"
	printf "default_version = '1.0'\nrequires = 'plpgsql, pgsnap_t340_gone'\n" \
		>"$ext/pgsnap_t340_top.control"
	run pv snapshot build top -e pgsnap_t340_top
	like "$err" "extension pgsnap_t340_gone \(required by pgsnap_t340_top\): not installed" \
		"a missing requirement names both"
	is "$rc.$(ls "$TEST_TMP/phome/snapshots" | grep -c top)" "1.0" "and builds nothing"
fi

done_testing
