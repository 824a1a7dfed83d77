#!/usr/bin/env bash
# docs/pgsnap.1 renders without warnings and covers every command and every
# long option the binary offers (so a new option cannot ship undocumented).
. "$(dirname "$0")/tap.sh"

man1=$TOP/docs/pgsnap.1
command -v groff >/dev/null || skip_all "groff is not installed (scripts/deps.sh test installs groff-base)"

w=$(groff -man -ww -z "$man1" 2>&1)
is "$w" "" "groff -man -ww renders docs/pgsnap.1 without a warning"
# Wide lines, no hyphenation: an option name is never split.
text=$(groff -man -Tutf8 -rLL=2000n -rHY=0 -P-cbou "$man1" 2>/dev/null | sed 's/‐/-/g')
like "$text" 'EXIT STATUS' "it has an EXIT STATUS section"
like "$text" 'ENVIRONMENT' "it has an ENVIRONMENT section"
for v in PGSNAP_HOME PGSNAP_PG_BINDIR PGSNAP_USER; do
	like "$text" "$v" "environment variable $v is documented"
done

run "$PGSNAP" --help
cmds=$(printf '%s\n' "$out" | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }')
isnt "$cmds" "" "pgsnap --help lists commands"
# groff joins the lines of a paragraph: match on the text without newlines.
flat=$(printf '%s' "$text" | tr '\n' ' ' | tr -s ' ')
for c in $cmds; do
	grep -Eq -- "pgsnap $c( |$)" <<<"$flat"; ok $? "command '$c' is in the man page"
	opts=$("$PGSNAP" "$c" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u)
	for o in $opts; do
		grep -Eq -- "$o([^a-z0-9-]|$)" <<<"$flat"; ok $? "'$c $o' is in the man page"
	done
done

# Commands with commands of their own (pgsnap snapshot build, ...): each
# is named, alone or in a "build|key" group.
for c in $cmds; do
	"$PGSNAP" "$c" --help | grep -q "^Usage: pgsnap $c COMMAND" || continue
	for w in $("$PGSNAP" "$c" --help | grep -oE '^  [a-z]+( |$)' | tr -d ' '); do
		grep -Eq -- "pgsnap $c ([a-z]+\|)*$w(\||[ ]|$)" <<<"$flat"
		ok $? "'$c $w' is in the man page"
	done
done

# Every PGSNAP_* variable the code reads.
for v in $(cat "$TOP"/lib/*.c "$TOP"/cmd/*.c | grep -oE 'getenv\("PGSNAP_[A-Z0-9_]+"\)' | grep -oE 'PGSNAP_[A-Z0-9_]+' | sort -u); do
	grep -q -- "$v" <<<"$flat"; ok $? "environment variable $v is in the man page"
done

done_testing
