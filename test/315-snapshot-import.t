#!/usr/bin/env bash
# An imported snapshot (issue 13, CI shards): import writes only meta and
# data; the manifest and packed image that copy clones follow are made by
# the first such clone, from the files (never the archive's); the files
# reach the disk in the background, meta saying `unsynced=BOOT` until
# then, and a snapshot still unsynced from another boot is never cloned.
. "$(dirname "$0")/tap.sh"

cd "$TEST_TMP"
printf 'create table t(v int);\ninsert into t select generate_series(1, 1000);\n' >app.sql
"$PGSNAP" snapshot build app -f app.sql >/dev/null 2>&1 || diag "build app failed"
run "$PGSNAP" snapshot export app app.tar
is "$rc" 0 "export exits 0"

H=$TEST_TMP/shard
S=$H/snapshots/app
meta() { sed -n "s/^$2=//p" "$1/meta"; }
boot=$(cat /proc/sys/kernel/random/boot_id)
synced() { [ -z "$(meta "$1" unsynced)" ]; }

# ---- import: meta and data only, synced in the background --------------
run env PGSNAP_HOME=$H "$PGSNAP" snapshot import app.tar
is "$rc.$out" "0.app" "import installs the snapshot under its name"
ok "$([ -d "$S/data" ] && [ ! -e "$S/manifest" ] && [ ! -e "$S/image" ]; echo $?)" \
	"no manifest or packed image is made at import"
wait_for 60 synced "$S"
ok $? "meta loses its unsynced mark once the files are on disk"
is "$(meta "$S" key)" "$(meta "$TEST_TMP/home/snapshots/app" key)" "with the key intact"
is "$(meta "$S" origin)" import "and origin import"
is "$(stat -c %U "$S/meta")" "$(stat -c %U "$S/data")" "meta is still the server user's"

# ---- every engine clones it --------------------------------------------
for m in overlay copy reflink; do
	if PGSNAP_HOME=$H "$PGSNAP" doctor 2>/dev/null | grep -q "^method $m *unavailable"; then
		skip "clone method $m does not work here"
		continue
	fi
	run env PGSNAP_HOME=$H "$PGSNAP" new -s app -m "$m" -w 0
	is "$rc" 0 "new -m $m of the imported snapshot"
	is "$(q "$out" 'select count(*) from t')" 1000 "its clone ($m) has the data"
done
# Two copy clones at once from a fresh import: one makes the manifest,
# the other waits for it.
PGSNAP_HOME=$H "$PGSNAP" rm --all >/dev/null 2>&1
rm -rf "$H"
PGSNAP_HOME=$H "$PGSNAP" snapshot import app.tar >/dev/null 2>&1
for i in 1 2; do
	(PGSNAP_HOME=$H "$PGSNAP" new -s app -m copy -w 0 >"c$i.url" 2>"c$i.err"; echo $? >"c$i.rc") &
done
wait
is "$(cat c1.rc c2.rc | paste -sd,)" "0,0" "two copy clones at once both succeed"
is "$(q "$(cat c1.url)" 'select count(*) from t'),$(q "$(cat c2.url)" 'select count(*) from t')" \
	"1000,1000" "and both have the data"
ok "$([ -s "$S/manifest" ] && [ -e "$S/image" ]; echo $?)" "the first copy clone made the manifest and image"
PGSNAP_HOME=$H "$PGSNAP" rm --all >/dev/null 2>&1

# ---- the archive's manifest is never followed -------------------------------
mkdir -p evil && tar -xf app.tar -C evil
printf 'd\t0700\t../../../escaped\nf\t0600\t5\t5\t0\t../../../escaped/x\n' >>evil/manifest
tar -cf evil.tar -C evil meta data manifest
E=$TEST_TMP/evilhome
run env PGSNAP_HOME=$E "$PGSNAP" snapshot import evil.tar
is "$rc" 0 "an archive with a forged manifest imports (its data is fine)"
run env PGSNAP_HOME=$E "$PGSNAP" new -s app -m copy -w 0
is "$rc" 0 "a copy clone of it works"
is "$(q "$out" 'select count(*) from t')" 1000 "with the data"
ok "$(! grep -q escaped "$E/snapshots/app/manifest"; echo $?)" "from a manifest made here, not the archive's"
ok "$(! find "$TEST_TMP" -name escaped | grep -q .; echo $?)" "nothing was written outside the clone"

# ---- after a restart, a snapshot never known to be on disk ---------------
# (another boot's id in meta: what a crash before the sync leaves)
mark() { sed -i '/^unsynced=/d' "$1/meta" && echo "unsynced=$2" >>"$1/meta"; }
before=$(servers_under "$H/run")
mark "$S" "$boot"
run env PGSNAP_HOME=$H "$PGSNAP" new -s app -w 0
is "$rc" 0 "unsynced in this boot (the sync still running): cloned as usual"
mark "$S" 00000000-0000-0000-0000-000000000000
before=$(servers_under "$H/run")
run env PGSNAP_HOME=$H "$PGSNAP" new -s app -w 0
is "$rc" 1 "unsynced from another boot: new refuses the imported snapshot"
like "$err" "^pgsnap: snapshot 'app' was not yet on disk when the machine restarted.*import it again" \
	"saying to import it again"
is "$(printf '%s\n' "$err" | wc -l)" 1 "in one line"
is "$(servers_under "$H/run")" "$before" "and no server was started for it"
run env PGSNAP_HOME=$H "$PGSNAP" snapshot export app again.tar
is "$rc" 1 "nor is it exported"
run env PGSNAP_HOME=$H "$PGSNAP" snapshot import app.tar
is "$rc" 0 "importing it again"
unlike "$err" "up to date" "replaces it (same key, but not on disk)"
run env PGSNAP_HOME=$H "$PGSNAP" new -s app -w 0
is "$rc.$(q "$out" 'select count(*) from t')" "0.1000" "and it is cloned again"

# A snapshot with a recipe is rebuilt instead; the shipped default at once.
mark "$TEST_TMP/home/snapshots/app" 00000000-0000-0000-0000-000000000000
run "$PGSNAP" new -s app -w 0
like "$err" "not yet on disk.*rebuild it" "a built snapshot: new says to rebuild it"
run "$PGSNAP" new -s app -w 0 --build-if-stale
is "$rc" 0 "--build-if-stale rebuilds it"
like "$err" "snapshot 'app' built" "(it says so)"
ok "$(synced "$TEST_TMP/home/snapshots/app"; echo $?)" "the rebuilt one is synced"
D=$TEST_TMP/dflt
PGSNAP_HOME=$D "$PGSNAP" snapshot build default >/dev/null 2>&1
mark "$D/snapshots/default" 00000000-0000-0000-0000-000000000000
made=$(meta "$D/snapshots/default" created_ms)
run env PGSNAP_HOME=$D "$PGSNAP" new -w 0
is "$rc" 0 "the shipped default, unsynced from another boot: new works"
isnt "$(meta "$D/snapshots/default" created_ms)" "$made" "having rebuilt it"
ok "$(synced "$D/snapshots/default"; echo $?)" "(synced)"

done_testing
