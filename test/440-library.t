#!/usr/bin/env bash
# The C library as a product: make install (PREFIX, DESTDIR), the exported
# symbols of libpgsnap.so.0, pkg-config, and docs/examples/c/harness.c
# built against the installed library and run.
. "$(dirname "$0")/tap.sh"

[ "${PGSNAP_SANITIZED:-0}" = 1 ] && skip_all "the install is of the normal build (checked in the first pass)"
command -v pkg-config >/dev/null || skip_all "no pkg-config"
mkdir -p "$PGSNAP_HOME"

prefix=$TEST_TMP/prefix
run make -s -C "$TOP" install PREFIX="$prefix"
is "$rc" 0 "make install PREFIX=... exits 0"
[ "$rc" = 0 ] || diag "$err"
for f in bin/pgsnap include/pgsnap.h lib/libpgsnap.a lib/libpgsnap.so.0 lib/libpgsnap.so \
	 lib/pkgconfig/pgsnap.pc share/man/man1/pgsnap.1; do
	ok "$([ -e "$prefix/$f" ]; echo $?)" "installed $f"
done
is "$(readelf -d "$prefix/lib/libpgsnap.so.0" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" libpgsnap.so.0 "soname libpgsnap.so.0"

# Exactly the PGSNAP_API functions of the header are exported.
api=$(tr '\n' ' ' < "$TOP/lib/pgsnap.h" | grep -oE 'PGSNAP_API [^;(]*\(' | grep -oE 'pgsnap_[a-z0-9_]+\($' | tr -d '(' | sort)
exported=$(nm -D --defined-only "$prefix/lib/libpgsnap.so.0" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort)
isnt "$api" "" "the header declares PGSNAP_API functions"
is "$exported" "$api" "libpgsnap.so.0 exports exactly the PGSNAP_API functions (lib/libpgsnap.map)"
is "$(nm -D --defined-only "$prefix/lib/libpgsnap.so.0" | awk '$2 ~ /[BDR]/' | wc -l)" 0 "and no data symbols"
# The static archive too: its internal names (path_join, rm_rf, ...) are
# local, so a program linking it cannot collide with them.
is "$(nm -g --defined-only "$prefix/lib/libpgsnap.a" | awk 'NF == 3 { print $3 }' | sort)" "$api" \
	"libpgsnap.a defines exactly the PGSNAP_API functions as global symbols"

# The header stands alone, in C99 and C++.
run sh -c "printf '#include <pgsnap.h>\nint main(void) { return 0; }\n' | cc -std=c99 -Wall -Wextra -Werror -pedantic -I'$prefix/include' -fsyntax-only -x c -"
is "$rc$err" 0 "pgsnap.h compiles alone as C99 with -pedantic -Werror"
if command -v c++ >/dev/null; then
	run sh -c "printf '#include <pgsnap.h>\nint main() { return 0; }\n' | c++ -Wall -Wextra -Werror -I'$prefix/include' -fsyntax-only -x c++ -"
	is "$rc$err" 0 "and as C++"
else
	skip "no C++ compiler"
fi

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
is "$(pkg-config --modversion pgsnap)" "$(sed -n 's/^#define PGSNAP_VERSION "\(.*\)"/\1/p' "$TOP/lib/pgsnap.h")" \
	"pkg-config knows pgsnap, at the header's version"

# docs/examples/c/harness.c against the shared library.
run cc -Wall -Wextra -Werror -o "$TEST_TMP/harness" "$TOP/docs/examples/c/harness.c" \
	$(pkg-config --cflags --libs pgsnap libpq) -Wl,-rpath,"$prefix/lib"
is "$rc$err" 0 "harness.c builds with \$(pkg-config --cflags --libs pgsnap libpq)"
like "$(ldd "$TEST_TMP/harness")" "libpgsnap\.so\.0 => $prefix/lib/libpgsnap\.so\.0" "it uses the installed libpgsnap.so.0"
run "$TEST_TMP/harness"
is "$rc" 0 "the harness runs: exit 0"
is "$(grep -c '^ok test' <<<"$out")" 2 "two tests, each on a fresh clone, pass"
is "$("$PGSNAP" ls -q | wc -l)" 0 "it removed its clones"

# ... and against the static archive.
run cc -Wall -Wextra -Werror -o "$TEST_TMP/harness-static" "$TOP/docs/examples/c/harness.c" \
	$(pkg-config --cflags pgsnap libpq) "$prefix/lib/libpgsnap.a" $(pkg-config --libs libpq liburing)
is "$rc$err" 0 "harness.c links the static libpgsnap.a (libpq, liburing shared)"
unlike "$(ldd "$TEST_TMP/harness-static")" libpgsnap "without the shared library"
run "$TEST_TMP/harness-static"
is "$rc" 0 "and runs"

# DESTDIR: staged under it, with the real PREFIX inside.
dest=$TEST_TMP/dest
run make -s -C "$TOP" install DESTDIR="$dest" PREFIX=/usr
is "$rc" 0 "make install DESTDIR=... PREFIX=/usr exits 0"
ok "$([ -x "$dest/usr/bin/pgsnap" ] && [ -e "$dest/usr/lib/libpgsnap.so.0" ]; echo $?)" "files land under DESTDIR/usr"
is "$(sed -n 's/^prefix=//p' "$dest/usr/lib/pkgconfig/pgsnap.pc")" /usr "pgsnap.pc says prefix=/usr, not the DESTDIR"
run make -s -C "$TOP" uninstall DESTDIR="$dest" PREFIX=/usr
is "$(find "$dest" -type f -o -type l | wc -l)" 0 "make uninstall removes every installed file"

done_testing
