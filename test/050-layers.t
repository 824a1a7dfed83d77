#!/usr/bin/env bash
# lib/ in layers: each module calls only the modules listed before it in
# docs/design.md's map (so no cycle either), every module is in the map, no
# source file outgrows ~600 lines, and cmd/ uses the public header only.
. "$(dirname "$0")/tap.sh"

command -v nm >/dev/null || skip_all "nm (binutils) is missing"
order=$(sed -n '/<!-- layers/,/<!-- \/layers/p' "$TOP/docs/design.md" |
	awk -F'|' 'NF >= 4 && $2 !~ /layer|---/ { print $3 }' | tr -s ' \n' ' ')
isnt "$(echo $order)" "" "docs/design.md has the map of the layers"
declare -A at
i=0
for m in $order; do at[$m]=$i; i=$((i + 1)); done

objs=$PGSNAP_BUILD/lib
missing=
for f in "$TOP"/lib/*.c; do
	m=$(basename "$f" .c)
	[ -n "${at[$m]+x}" ] || missing="$missing $m"
done
is "$missing" "" "every module of lib/ is in the map"

# "symbol module" for every symbol a module defines, then each module's
# undefined symbols looked up there.
for m in $order; do
	[ -f "$objs/$m.o" ] && nm --defined-only "$objs/$m.o" |
		awk -v m="$m" '$2 ~ /[TDRBV]/ { print $3, m }'
done >"$TEST_TMP/defs"
up=$(for m in $order; do
	[ -f "$objs/$m.o" ] && nm -u "$objs/$m.o" | awk -v m="$m" '{ print $2, m }'
done | awk -v order="$order" '
	BEGIN { n = split(order, o, " "); for (i = 1; i <= n; i++) at[o[i]] = i }
	NR == FNR { def[$1] = $2; next }
	($1 in def) && at[def[$1]] >= at[$2] { bad[$2 "->" def[$1]] = bad[$2 "->" def[$1]] " " $1 }
	END { for (k in bad) printf "%s(%s) ", k, bad[k] }' "$TEST_TMP/defs" -)
is "$up" "" "no module calls one above it or beside it later in the map (no cycle)"

big=$(wc -l "$TOP"/lib/*.c "$TOP"/lib/*.h "$TOP"/cmd/*.c | awk '$2 != "total" && $1 > 650 { print $2 " (" $1 ")" }')
is "$big" "" "no source file over ~600 lines"

is "$(grep -h '^#include "' "$TOP"/cmd/*.c "$TOP"/cmd/*.h | grep -v '"cmd.h"\|"\.\./lib/pgsnap.h"' | sort -u)" "" \
	"cmd/ includes the public header only"
done_testing
