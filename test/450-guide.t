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

# The runners with a package of their own (lib/python, go, node, java):
# the guide points at each package's README (their tests are 800-830).
for l in python go node java; do
	grep -q "(../lib/$l/README.md)" "$TOP/docs/guide.src.md"
	ok $? "the guide points at lib/$l"
	ok "$([ -f "$TOP/lib/$l/README.md" ]; echo $?)" "lib/$l/README.md exists"
done

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

# Shell, in sh and bash.
for sh in sh bash; do
	run "$sh" "$EX/shell/test.sh"
	is "$rc" 0 "shell recipe passes in $sh"
	is "$out" $'0\nhello from postgres' "$sh: exec and eval --env both reached a server"
	no_clones "shell recipe ($sh)"
done
# The same script, unchanged, on databases of shared servers.
run env PGSNAP_SHARED=4 sh "$EX/shell/test.sh"
is "$rc" 0 "shell recipe passes with PGSNAP_SHARED=4"
like "$out" $'^0\nhello from pgsnap_[0-9]+$' "on a shared server's database (not postgres)"
no_clones "shell recipe with PGSNAP_SHARED"

# The CI recipes (GitHub, GitLab, Bazel: shards sharing one snapshot build)
# are run by test/700-ci-shards.t.

done_testing
