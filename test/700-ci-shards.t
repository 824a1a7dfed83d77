#!/usr/bin/env bash
# CI shards that share one snapshot build (docs/examples/ci/).  Each shard
# is a machine of its own (a store of its own: PGSNAP_HOME) and the CI
# system's cache carries the snapshot between them: one build, the other
# shards import, a re-run hits the cache, a changed schema misses it.  The
# GitHub, GitLab and Bazel files are run by test/ci-sim.py as their CI
# system would (no runner here: their shell steps, with its variables).
# Then bad archives: one line each, exit 1, nothing half-installed.
TEST_TIMEOUT=${TEST_TIMEOUT:-900}
. "$(dirname "$0")/tap.sh"

PY=/usr/bin/python3
EX=$TOP/docs/examples/ci
SAN=${PGSNAP_SANITIZED:-0}
export PATH=$PGSNAP_BUILD:$PATH
command -v zstd >/dev/null || skip_all "zstd missing (scripts/deps.sh test installs it)"
command -v flock >/dev/null || skip_all "flock missing (util-linux)"
{ [ -x $PY ] && $PY -c 'import yaml'; } 2>/dev/null ||
	skip_all "python3-yaml missing (scripts/deps.sh test installs it)"
SIM="$PY $TEST_DIR/ci-sim.py"
RECIPE=docs/examples/ci/app.recipe
NTESTS=$(ls "$EX"/tests/*.sql | wc -l)

one_line() {
	is "$(printf '%s\n' "$err" | wc -l)" 1 "$1: one line"
	unlike "$err" 'Sanitizer|runtime error' "$1: no sanitizer report"
}
# repo DIR: a checkout of the repository (the examples at their paths).
repo() { mkdir -p "$1/docs/examples" && cp -r "$EX" "$1/docs/examples/"; }
# meta HOME FIELD: a field of the store's app snapshot.
meta() { sed -n "s/^$2=//p" "$1/snapshots/app/meta" 2>/dev/null; }
# count PATTERN FILES...: lines matching, in all of them.
count() { local p=$1; shift; cat "$@" 2>/dev/null | grep -c -- "$p"; }
# key_in SRC: the key a fresh machine computes for the checkout in SRC.
key_in() {
	(cd "$1" && PGSNAP_HOME=$TEST_TMP/keyhome-$RANDOM sh docs/examples/ci/snapshot-cache.sh key "$RECIPE")
}

# shards_ok WHAT BUILDS LOGS HOMES: what every run of shards must show.
# The stores are named by HOMES (a glob), the job logs by LOGS.  Sets KEY
# (the stores' key) and ORIGINS (how their snapshots came: "import=3 ...").
shards_ok() {
	local what=$1 builds=$2 logs=$3 homes=$4 h keys origins
	is "$(count '^snapshot-cache: app built' $logs)" "$builds" "$what: $builds build(s) of the snapshot"
	is "$(count "^pgsnap: snapshot 'app' built" $logs)" "$builds" "$what: pgsnap built app $builds time(s) in all"
	is "$(count "^pgsnap: snapshot 'default' built" $logs)" "$builds" "$what: and its base as often"
	is "$(count '^ok ' $logs)" "$NTESTS" "$what: the shards ran every test file once between them"
	is "$(count '^not ok' $logs)" 0 "$what: and none failed"
	keys=$(for h in $homes; do meta "$h" key; done | sort -u)
	is "$(wc -l <<<"$keys")" 1 "$what: the same snapshot key in every store"
	origins=$(for h in $homes; do meta "$h" origin; done | sort | uniq -c | awk '{ print $2 "=" $1 }' | paste -sd' ')
	KEY=$keys
	for h in $homes; do
		[ "$(meta "$h" origin)" = import ] && [ -e "$h/snapshots/default" ] && echo "$h built default"
	done >"$TEST_TMP/rebuilt"
	is "$(cat "$TEST_TMP/rebuilt")" "" "$what: no importing store built anything (no default snapshot there)"
	ORIGINS=$origins
	is "$(servers_under "$TEST_TMP")" 0 "$what: no server left"
}

# ---- 1. four shards, four stores, one cache directory ----------------------
# No CI system: the shards start together on one directory (a network
# disk, one big machine); snapshot-cache.sh's lock makes one of them build.
SRC=$TEST_TMP/repo
repo "$SRC"
CACHE=$TEST_TMP/cache/pgsnap   # not there yet: the cache had nothing
run_shards() { # run_shards RUN: 4 shards, each with its own store
	local i pids=()
	mkdir -p "$TEST_TMP/$1"
	for i in 1 2 3 4; do
		(
			export PGSNAP_HOME=$TEST_TMP/$1/s$i
			cd "$SRC" && sh docs/examples/ci/snapshot-cache.sh get "$RECIPE" "$CACHE" &&
				pgsnap exec -s app -- docs/examples/ci/run-shard.sh $i 4
		) >"$TEST_TMP/$1/s$i.log" 2>&1 &
		pids+=($!)
	done
	i=0
	for p in "${pids[@]}"; do
		i=$((i + 1))
		wait "$p"
		is "$?" 0 "$1: shard $i passes"
	done
}
run_shards direct1
shards_ok "4 shards, cold cache" 1 "$TEST_TMP/direct1/s*.log" "$TEST_TMP/direct1/s[0-9]"
key1=$KEY
is "$ORIGINS" "import=3 recipe=1" "4 shards, cold cache: one store built, three imported"
is "$key1" "$(key_in "$SRC")" "the stores' key is the one snapshot-cache.sh key prints"
ok "$([ -s "$CACHE/app.tar" ]; echo $?)" "the cache directory was made and holds the archive"

run_shards direct2
shards_ok "re-run" 0 "$TEST_TMP/direct2/s*.log" "$TEST_TMP/direct2/s[0-9]"
key2=$KEY
is "$ORIGINS" "import=4" "re-run: the cache is hit, every store imports"
is "$key2" "$key1" "re-run: same key"

echo 'create index item_name on item (name);' >>"$SRC/docs/examples/ci/schema.sql"
run_shards direct3
shards_ok "schema.sql changed" 1 "$TEST_TMP/direct3/s*.log" "$TEST_TMP/direct3/s[0-9]"
key3=$KEY
is "$ORIGINS" "import=3 recipe=1" "schema.sql changed: the cache misses, one build, three imports"
isnt "$key3" "$key1" "schema.sql changed: a new key"

# An archive of another key (a cache restored by a looser key): not
# imported, built again.  A damaged one: pgsnap says why, the shard builds.
mkdir -p "$TEST_TMP/stale/x"
tar -xf "$CACHE/app.tar" -C "$TEST_TMP/stale/x"
sed -i "s/^key=.*/key=$(printf 'f%.0s' {1..64})/" "$TEST_TMP/stale/x/meta"
tar -cf "$CACHE/app.tar" -C "$TEST_TMP/stale/x" meta data manifest
run env PGSNAP_HOME="$TEST_TMP/stale/h1" sh -c "cd '$SRC' && sh docs/examples/ci/snapshot-cache.sh get $RECIPE '$CACHE'"
is "$rc" 0 "an archive of another key in the cache: get succeeds"
like "$err" 'snapshot-cache: app built' "by building, not importing it"
is "$(meta "$TEST_TMP/stale/h1" key)" "$key3" "the snapshot has this checkout's key"
head -c 3000000 "$CACHE/app.tar" >"$TEST_TMP/stale/cut.tar" && mv "$TEST_TMP/stale/cut.tar" "$CACHE/app.tar"
run env PGSNAP_HOME="$TEST_TMP/stale/h2" sh -c "cd '$SRC' && sh docs/examples/ci/snapshot-cache.sh get $RECIPE '$CACHE'"
is "$rc" 0 "a truncated archive in the cache: get succeeds"
like "$err" "pgsnap: .*app.tar is truncated" "pgsnap said why it refused it"
like "$err" 'snapshot-cache: app built' "and the shard built the snapshot"
run env PGSNAP_HOME="$TEST_TMP/stale/h3" pgsnap snapshot import "$CACHE/app.tar"
is "$rc.$out" "0.app" "the archive it exported in its place imports"

# ---- 2. the CI files, run as their CI system would ------------------------
is "$($PY -c 'import sys, yaml
wf = yaml.safe_load(open(sys.argv[1])); gl = yaml.safe_load(open(sys.argv[2]))
print(len(wf["jobs"]["test"]["strategy"]["matrix"]["shard"]), wf["jobs"]["test"]["needs"],
      gl["test"]["parallel"], gl["test"]["cache"]["policy"], gl["snapshot"]["cache"]["policy"])' \
	"$EX/github-actions.yml" "$EX/gitlab-ci.yml" 2>&1)" "4 snapshot 4 pull pull-push" \
	"the YAML files parse: 4 GitHub shards after the snapshot job, 4 GitLab shards that only pull the cache"
is "$($PY -c 'import ast, sys; ast.parse(open(sys.argv[1]).read()); print("ok")' "$EX/BUILD.bazel" 2>&1)" ok \
	"BUILD.bazel parses (Starlark is Python's syntax)"
for f in snapshot-cache.sh run-shard.sh bazel-test.sh; do
	run sh -n "$EX/$f"
	is "$rc$err" 0 "$f is valid sh"
done

if [ "$SAN" = 1 ]; then
	skip "CI files: the same pgsnap calls as the shards above (run in the normal pass)"
	done_testing
	exit 0
fi

# sim KIND FILE RUN [CACHE]: run one pipeline; every job must pass.
sim() {
	local kind=$1 file=$2 work=$TEST_TMP/$3
	shift 3
	run $SIM "$kind" "$SRC/docs/examples/ci/$file" "$SRC" "$@" "$work"
	is "$rc" 0 "$kind $(basename "$work"): the pipeline ran"
	[ "$rc" = 0 ] || diag "$err"
	is "$(grep -c '"rc": 0' <<<"$out")" "$(grep -c . <<<"$out")" "$kind $(basename "$work"): every job passed"
	SIM_OUT=$out
}

# GitHub Actions: the snapshot job, then a matrix of 4 shards.
SRC=$TEST_TMP/gh-repo
repo "$SRC"
GH=$TEST_TMP/gh-cache
sim github github-actions.yml gh1 "$GH"
is "$(grep -c '"job": "test"' <<<"$SIM_OUT")" 4 "github: 4 shards ran"
shards_ok "github, cold cache" 1 "$TEST_TMP/gh1/*/log" "$TEST_TMP/gh1/test-*/pgsnap $TEST_TMP/gh1/snapshot/pgsnap"
k=$KEY
is "$ORIGINS" "import=4 recipe=1" "github, cold cache: the snapshot job built, the 4 shards imported"
like "$SIM_OUT" "\"outputs\": \\{\"key\": \"$k\"\\}" "github: the snapshot job's key output is the stores' key"
like "$(cat "$TEST_TMP/gh1/snapshot/log")" "cache pgsnap-$k: saved" "github: saved in the cache under pgsnap-KEY"
sim github github-actions.yml gh2 "$GH"
shards_ok "github, re-run" 0 "$TEST_TMP/gh2/*/log" "$TEST_TMP/gh2/test-*/pgsnap"
k2=$KEY
is "$ORIGINS" "import=4" "github, re-run: the shards import"
like "$(cat "$TEST_TMP/gh2/snapshot/log")" "cache pgsnap-$k: hit" "github, re-run: the snapshot job hits the cache"
ok "$([ ! -e "$TEST_TMP/gh2/snapshot/pgsnap/snapshots/app" ]; echo $?)" \
	"github, re-run: and skips its build step"
is "$k2" "$k" "github, re-run: same key"
echo 'create index item_name on item (name);' >>"$SRC/docs/examples/ci/schema.sql"
sim github github-actions.yml gh3 "$GH"
shards_ok "github, schema.sql changed" 1 "$TEST_TMP/gh3/*/log" "$TEST_TMP/gh3/test-*/pgsnap $TEST_TMP/gh3/snapshot/pgsnap"
k3=$KEY
like "$(cat "$TEST_TMP/gh3/snapshot/log")" "cache pgsnap-$k3: miss" "github, schema.sql changed: the cache misses"
isnt "$k3" "$k" "github, schema.sql changed: a new key"

# GitLab CI: the snapshot stage, then parallel: 4 with CI_NODE_INDEX/TOTAL.
SRC=$TEST_TMP/gl-repo
repo "$SRC"
GL=$TEST_TMP/gl-cache
sim gitlab gitlab-ci.yml gl1 "$GL"
is "$(grep -c '"job": "test"' <<<"$SIM_OUT")" 4 "gitlab: 4 shards ran"
shards_ok "gitlab, cold cache" 1 "$TEST_TMP/gl1/*/log" "$TEST_TMP/gl1/test-*/pgsnap $TEST_TMP/gl1/snapshot/pgsnap"
is "$ORIGINS" "import=4 recipe=1" "gitlab, cold cache: the snapshot job built, the 4 shards imported"
sim gitlab gitlab-ci.yml gl2 "$GL"
shards_ok "gitlab, re-run" 0 "$TEST_TMP/gl2/*/log" "$TEST_TMP/gl2/*/pgsnap"
is "$ORIGINS" "import=5" "gitlab, re-run: every job imports"
echo 'create index item_name on item (name);' >>"$SRC/docs/examples/ci/schema.sql"
sim gitlab gitlab-ci.yml gl3 "$GL"
shards_ok "gitlab, schema.sql changed" 1 "$TEST_TMP/gl3/*/log" "$TEST_TMP/gl3/*/pgsnap"
like "$(cat "$TEST_TMP/gl3/snapshot/log")" "cache pgsnap-[0-9a-f]+: miss" "gitlab, schema.sql changed: the cache misses"

# Bazel: the genrule's archive, then sh_test with shard_count = 4.
SRC=$TEST_TMP/bz-repo
repo "$SRC"
sim bazel BUILD.bazel bz1
shards_ok "bazel" 1 "$TEST_TMP/bz1/*/log" "$TEST_TMP/bz1/db_test-*/tmp/pgsnap"
is "$ORIGINS" "import=4" "bazel: the genrule built, each test shard imported into TEST_TMPDIR"
is "$(grep -c '"status_file": true' <<<"$SIM_OUT")" 4 "bazel: every shard touched TEST_SHARD_STATUS_FILE"
is "$(grep -c '"outputs": \[\]' <<<"$SIM_OUT")" 4 "bazel: no undeclared outputs when the tests pass"
# A failing test: its shard fails, with the server's log as an output.
printf 'select 1/0;\n' >"$SRC/docs/examples/ci/tests/t9.sql"
run $SIM bazel "$SRC/docs/examples/ci/BUILD.bazel" "$SRC" "$TEST_TMP/bz2"
is "$(grep -c '"rc": 0' <<<"$out")" 4 "bazel, a failing test: the genrule and 3 shards pass"
like "$out" '"shard": 0, "rc": 1, .*"outputs": \["postgres-[0-9a-f]+\.log"\]' \
	"bazel, a failing test: shard 0 (t1, t5, t9) fails, the server's log in TEST_UNDECLARED_OUTPUTS_DIR"
like "$(cat "$TEST_TMP"/bz2/db_test-0/outputs/postgres-*.log)" 'division by zero' "bazel: the log shows the failure"
is "$(PGSNAP_HOME=$TEST_TMP/bz2/db_test-0/tmp/pgsnap pgsnap ls -q | wc -l)" 0 "bazel: the failed shard's clone is removed"
is "$(servers_under "$TEST_TMP")" 0 "bazel: no server left"

# ---- 3. bad archives, a cache directory that is not there ------------------
export PGSNAP_HOME=$TEST_TMP/bad
B=$TEST_TMP/bad-in
mkdir -p "$B/x"
PGSNAP_HOME=$TEST_TMP/stale/h2 pgsnap snapshot export app "$B/good.tar" 2>/dev/null
PGSNAP_HOME=$TEST_TMP/stale/h2 pgsnap snapshot export app "$B/good.tar.zst" 2>/dev/null
tar -xf "$B/good.tar" -C "$B/x"
head -c 400000 "$B/good.tar.zst" >"$B/truncated.tar.zst"
$PY - "$B/good.tar" "$B/cut.tar" <<'PY'
import sys, tarfile
ms = tarfile.open(sys.argv[1]).getmembers()
# Cut at the header of a member in the middle: tar reads it without error.
open(sys.argv[2], "wb").write(open(sys.argv[1], "rb").read()[:ms[len(ms) // 2].offset])
PY
tar -cf "$B/foreign.tar" -C "$SRC" docs/examples/ci/schema.sql
echo 'not an archive' >"$B/text.tar"
(cd "$B/x" && sed -i 's/^pg_major=.*/pg_major=11/' meta && echo 11 >data/PG_VERSION &&
	tar -cf "$B/major.tar" meta data manifest)
tar -xf "$B/good.tar" -C "$B/x"
(cd "$B/x" && sed -i 's/^arch=.*/arch=sparc64/' meta && tar -cf "$B/arch.tar" meta data manifest)
bad() { # bad FILE PATTERN DESC
	run pgsnap snapshot import "$1" imp
	is "$rc" 1 "import of $3: exit 1"
	like "$err" "$2" "import of $3: says so"
	one_line "import of $3"
	ok "$([ ! -e "$PGSNAP_HOME/snapshots/imp" ]; echo $?)" "import of $3: no snapshot"
	is "$(ls -A "$PGSNAP_HOME/snapshots" 2>/dev/null | grep -c '^\.build')" 0 "import of $3: no half-made one"
}
bad "$B/truncated.tar.zst" 'truncated.tar.zst is truncated' "a truncated archive"
bad "$B/cut.tar" 'cut.tar is incomplete: it ends before its last member' "an archive cut at a member's boundary"
bad "$B/foreign.tar" 'foreign.tar is not a pgsnap snapshot archive' "a tar of something else"
bad "$B/text.tar" 'text.tar is not a tar archive' "a text file"
bad "$B/major.tar" 'major.tar was made by PostgreSQL 11, this is PostgreSQL 1[0-9]' "an archive of PostgreSQL 11"
bad "$B/arch.tar" 'arch.tar was made on sparc64, this machine is' "an archive of another machine"
bad "$TEST_TMP/no-such-cache/app.tar.zst" 'cannot open .*/no-such-cache/app.tar.zst: No such file or directory' \
	"an archive in a cache directory that is not there"
run env PGSNAP_HOME="$TEST_TMP/stale/h2" pgsnap snapshot export app "$TEST_TMP/no-such-cache/app.tar.zst"
is "$rc" 1 "export into a directory that is not there: exit 1"
like "$err" "cannot write .*/no-such-cache/app.tar.zst: directory .*/no-such-cache: No such file or directory" \
	"export into a directory that is not there: says so"
one_line "export into a directory that is not there"
ok "$([ ! -e "$TEST_TMP/no-such-cache" ]; echo $?)" "and makes nothing"
run env PGSNAP_HOME="$TEST_TMP/stale/h2" pgsnap snapshot export app "$B"
like "$err" "is a directory: give the archive's file name" "export onto a directory: says so"
one_line "export onto a directory"
is "$(ls "$B" | grep -c tmp)" 0 "no temporary file is left"
run pgsnap snapshot import "$B/good.tar" imp
is "$rc.$out" "0.imp" "the good archive imports in the same store"

done_testing
