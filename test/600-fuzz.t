#!/usr/bin/env bash
# Fuzzing: every reader of untrusted bytes (test/fuzz/fuzz_*.c) replays the
# committed corpus without a crash or a sanitizer report, and, on the normal
# pass, libFuzzer mutates it for a few seconds per target.  `make fuzz` runs
# longer.  No crash, no hang (-timeout), no leak, no ASan/UBSan report.
. "$(dirname "$0")/tap.sh"

FUZZ_SECONDS=${FUZZ_SECONDS:-3}
targets=()
for f in "$TOP"/test/fuzz/fuzz_*.c; do
	t=${f##*/fuzz_}
	targets+=("${t%.c}")
done
[ ${#targets[@]} -gt 0 ] || skip_all "no fuzz targets in test/fuzz"

for t in "${targets[@]}"; do
	corpus=$TOP/test/fuzz/corpus/$t
	n=$(ls "$corpus" 2>/dev/null | wc -l)
	ok "$([ "$n" -gt 0 ]; echo $?)" "$t: a seed corpus is committed ($n inputs)"
	# The replay driver is built with the build under test: under ASan and
	# UBSan in the sanitizer pass.
	replay=$PGSNAP_BUILD/fuzz/replay_$t
	if [ ! -x "$replay" ]; then
		skip "$t: no $replay (run make)"
		continue
	fi
	TMPDIR=$TEST_TMP run "$replay" "$corpus"
	is "$rc" 0 "$t: the corpus replays cleanly ($out)"
	unlike "$err" 'Sanitizer|runtime error|LeakSanitizer' "$t: no sanitizer report on the corpus"
done

# libFuzzer itself: once, on the normal pass (its binaries carry their own
# ASan+UBSan; the sanitizer pass would only repeat it).
if [ -n "${PGSNAP_SANITIZED:-}" ]; then
	skip "libFuzzer runs on the normal pass"
elif ! command -v clang >/dev/null; then
	skip "clang is not installed: libFuzzer not run (the corpus replay above still ran)"
elif ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; return (int)(n & 0); }\n' |
     clang -fsanitize=fuzzer,address,undefined -x c - -o "$TEST_TMP/probe" 2>"$TEST_TMP/probe.log"; then
	skip "clang cannot link libFuzzer+ASan here (libclang-rt-14-dev missing?): $(head -1 "$TEST_TMP/probe.log"); the corpus replay above still ran"
elif ! make -s -C "$TOP" fuzz-bins >"$TEST_TMP/build.log" 2>&1; then
	ok 1 "the fuzz targets build with clang"
	diag "$(tail -5 "$TEST_TMP/build.log")"
else
	for t in "${targets[@]}"; do
		mkdir -p "$TEST_TMP/new-$t" "$TEST_TMP/crash-$t"
		TMPDIR=$TEST_TMP run timeout $((FUZZ_SECONDS + 60)) "$TOP/build/libfuzzer/fuzz_$t" \
			-max_total_time="$FUZZ_SECONDS" -timeout=5 -rss_limit_mb=1024 \
			-artifact_prefix="$TEST_TMP/crash-$t/" -print_final_stats=1 \
			"$TEST_TMP/new-$t" "$TOP/test/fuzz/corpus/$t"
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' <<<"$err")
		is "$rc" 0 "$t: libFuzzer ran ${FUZZ_SECONDS}s (${runs:-?} inputs) without a finding"
		is "$(ls "$TEST_TMP/crash-$t" | wc -l)" 0 "$t: no crash, leak or timeout file"
		[ "$rc" = 0 ] || diag "$(grep -E 'ERROR|SUMMARY|Test unit' <<<"$err" | head -5)"
	done
fi

done_testing
