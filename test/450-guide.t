#!/usr/bin/env bash
# docs/guide.md: it shows the files of docs/examples/ as they are, and each
# recipe runs and passes here, with `pgsnap` on PATH being the binary under
# test.  A language whose runtime is missing is skipped, saying so.
. "$(dirname "$0")/tap.sh"

EX=$TOP/docs/examples
PY=/usr/bin/python3
SAN=${PGSNAP_SANITIZED:-0}
export PATH=$PGSNAP_BUILD:$PATH PYTHONDONTWRITEBYTECODE=1
mkdir -p "$PGSNAP_HOME"
no_clones() { is "$("$PGSNAP" ls -q | wc -l)" 0 "$1 removed its servers"; }

is "$(cd "$TOP" && sh docs/make-guide.sh | cmp - docs/guide.md && echo same)" same \
	"docs/guide.md is docs/guide.src.md with the example files inlined (else: sh docs/make-guide.sh > docs/guide.md)"
for f in $(grep -o '^@@docs/examples/[^@]*@@$' "$TOP/docs/guide.src.md" | tr -d @); do
	ok "$([ -f "$TOP/$f" ]; echo $?)" "the guide's $f exists"
done
is "$(cd "$TOP" && find docs/examples -type f ! -path '*/ci/tests/*' | sort | while read -r f; do
	grep -qx "@@$f@@" docs/guide.src.md || echo "$f"; done)" "" "every example file is in the guide"

# pytest
if [ -x $PY ] && $PY -c 'import pytest, psycopg2' 2>/dev/null; then
	run sh -c "cd '$EX/pytest' && $PY -m pytest -q -p no:cacheprovider ."
	is "$rc" 0 "pytest recipe passes"
	like "$out" '3 passed' "its 3 tests ran"
	[ "$rc" = 0 ] || diag "$out$err"
	no_clones "pytest recipe"
	# The same suite, unchanged, on databases of shared servers.
	run env PGSNAP_SHARED=4 sh -c "cd '$EX/pytest' && $PY -m pytest -q -p no:cacheprovider ."
	is "$rc" 0 "pytest recipe passes with PGSNAP_SHARED=4"
	like "$out" '3 passed' "its 3 tests ran on shared servers' databases"
	[ "$rc" = 0 ] || diag "$out$err"
	no_clones "pytest recipe with PGSNAP_SHARED"
	"$PGSNAP" rm --all >/dev/null
else
	skip "pytest recipe: python3-pytest or python3-psycopg2 missing (scripts/deps.sh test installs them)"
fi

# Go TestMain
if [ "$SAN" = 1 ]; then
	skip "Go recipe: no C code of pgsnap beyond the CLI's (run in the normal pass)"
elif command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/lib/pq ]; then
	# Debian's lib/pq, GOPATH mode: no module download.
	run env GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$TOP/build/gocache" \
		GOFLAGS= sh -c "cd '$EX/go' && go test -count=1 -v ."
	is "$rc" 0 "Go TestMain recipe passes"
	like "$out" '--- PASS: TestTable' "its tests ran"
	[ "$rc" = 0 ] || diag "$out$err"
	no_clones "Go recipe"
else
	skip "Go recipe: go or golang-github-lib-pq-dev missing (scripts/deps.sh test installs them)"
fi

# JUnit + JDBC
JARS=/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar:/usr/share/java/postgresql.jar
if [ "$SAN" = 1 ]; then
	skip "JUnit recipe: the JVM exercises no C code of pgsnap (run in the normal pass)"
elif command -v javac >/dev/null && [ -r /usr/share/java/junit4.jar ] && [ -r /usr/share/java/postgresql.jar ]; then
	mkdir -p "$TEST_TMP/java"
	run javac -d "$TEST_TMP/java" -cp "$JARS" "$EX/java/DatabaseTest.java"
	is "$rc$err" 0 "JUnit recipe compiles"
	run java -cp "$TEST_TMP/java:$JARS" org.junit.runner.JUnitCore DatabaseTest
	is "$rc" 0 "JUnit recipe passes"
	like "$out" 'OK \(2 tests\)' "its 2 tests ran"
	[ "$rc" = 0 ] || diag "$out$err"
	no_clones "JUnit recipe"
else
	skip "JUnit recipe: javac, junit4 or libpostgresql-jdbc-java missing (scripts/deps.sh test installs them)"
fi

# Ruby
if ruby -e 'require "pg"; require "minitest"' 2>/dev/null; then
	run ruby "$EX/ruby/database_test.rb"
	is "$rc" 0 "Ruby recipe passes"
	like "$out" '2 runs, 2 assertions, 0 failures, 0 errors' "its 2 tests ran"
	[ "$rc" = 0 ] || diag "$out$err"
	no_clones "Ruby recipe"
else
	skip "Ruby recipe: ruby-pg missing (scripts/deps.sh test installs it)"
fi

# Perl
if perl -MDBD::Pg -MTest::More -e 1 2>/dev/null; then
	run perl "$EX/perl/database.t"
	is "$rc" 0 "Perl recipe passes"
	like "$out" '1\.\.2' "its 2 tests ran"
	[ "$rc" = 0 ] || diag "$out$err"
	no_clones "Perl recipe"
else
	skip "Perl recipe: libdbd-pg-perl missing (scripts/deps.sh test installs it)"
fi

# Node
if [ "$SAN" = 1 ]; then
	skip "Node recipe: exercises no C code of pgsnap (run in the normal pass)"
elif command -v node >/dev/null && [ -d "$TOP/test/node/node_modules/pg" ]; then
	run env NODE_PATH="$TOP/test/node/node_modules" node --test "$EX/node/database.test.js"
	is "$rc" 0 "Node recipe passes"
	like "$out" '# pass 2' "its 2 tests ran"
	[ "$rc" = 0 ] || diag "$out$err"
	no_clones "Node recipe"
else
	skip "Node recipe: node or test/node/node_modules/pg missing (make check runs npm install --prefix test/node)"
fi

# Shell, in sh and bash.
for sh in sh bash; do
	run "$sh" "$EX/shell/test.sh"
	is "$rc" 0 "shell recipe passes in $sh"
	is "$out" $'0\nhello from postgres' "$sh: exec and eval --env both reached a server"
	no_clones "shell recipe ($sh)"
done

# The CI recipes (GitHub, GitLab, Bazel: shards sharing one snapshot build)
# are run by test/700-ci-shards.t.

done_testing
