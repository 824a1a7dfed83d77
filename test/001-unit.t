#!/usr/bin/env bash
# Run the C unit tests (each prints its own TAP); one subtest each here.
. "$(dirname "$0")/tap.sh"
shopt -s nullglob
bins=("$PGSNAP_BUILD"/test/unit_*)
[ ${#bins[@]} -gt 0 ] || skip_all "no unit test binaries in $PGSNAP_BUILD/test (run make)"
for b in "${bins[@]}"; do
	run "$b"
	is "$rc" 0 "$(basename "$b"): $(grep -c '^ok' <<<"$out") passed, $(grep -c '^not ok' <<<"$out") failed"
	[ "$rc" = 0 ] || diag "$(grep -A1 '^not ok' <<<"$out")$err"
done
done_testing
