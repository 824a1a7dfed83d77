#!/bin/sh
# deps.sh [build|test|bench|all]... - install what pgsnap needs on Debian 12,
# with apt-get, only what is missing.  `make` runs it with "build",
# `make check` with "test", `make bench` with "bench".
set -eu

build="gcc make pkg-config libpq-dev liburing-dev postgresql"
# cmd:package means "install package unless the command is there" (some
# machines bring their own node or JDK, whose packages conflict with ours).
test="psql:postgresql-client perl xfsprogs util-linux procps psmisc python3 python3-psycopg2 ruby ruby-pg libdbd-pg-perl libpostgresql-jdbc-java javac:default-jdk-headless node:nodejs npm:npm clang groff:groff-base python3-pytest python3-yaml zstd junit4 go:golang-go golang-github-lib-pq-dev c++:g++"
# libFuzzer and clang's sanitizer runtimes (clang only recommends them).
test="$test libclang-rt-14-dev"
# JUnit 5 and its console launcher, for lib/java (test 830).
test="$test junit5"
# A real extension package for test/340 (PostGIS and its ~45 libraries:
# GDAL, GEOS, PROJ...).
test="$test postgresql-15-postgis-3"
test="$test python3-pytest-xdist python3-pip" # lib/python: test/800-python.t
bench="hyperfine python3-testing.postgresql libtest-postgresql-perl"

want=""
[ $# -eq 0 ] && set -- build
for g in "$@"; do
	case "$g" in
	build) want="$want $build" ;;
	test) want="$want $build $test" ;;
	bench) want="$want $build $test $bench" ;;
	all) want="$want $build $test $bench" ;;
	*) echo "deps.sh: unknown group '$g' (build, test, bench, all)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $want; do
	case "$p" in
	*:*) command -v "${p%%:*}" >/dev/null 2>&1 && continue; p=${p#*:} ;;
	esac
	case " $missing " in *" $p "*) continue ;; esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps.sh: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# An empty or stale package list cannot find new packages: refresh it once.
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >&2
