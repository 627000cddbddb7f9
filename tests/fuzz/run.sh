#!/bin/sh
# run.sh — run each libFuzzer target of tests/fuzz/ for a bounded time and summarise (make fuzz).
#
#   sh tests/fuzz/run.sh BUILD SECONDS TARGET...
#
# Each target BUILD/fuzz_TARGET starts from the committed seeds (tests/fuzz/corpus/TARGET, never
# written) plus the crash reproducers kept as regression tests (tests/fuzz/regressions/TARGET);
# new inputs go to BUILD/corpus/TARGET, so a second `make fuzz` continues where the first
# stopped.  A crash leaves its input in BUILD/artifacts/ and makes the script fail: minimise it
# (BUILD/fuzz_TARGET -minimize_crash=1 -runs=100000 FILE), fix the code, and commit the input
# under tests/fuzz/regressions/TARGET/ so that `make test` replays it.
# FUZZ_JOBS=N runs N fuzzing processes per target (fork mode).
# Printed per target: executions, and libFuzzer's coverage counters at the end of the run
# (cov: instrumented edges reached, ft: features = edges x hit-count buckets, corp: inputs kept).
set -u
build=$1; secs=$2; shift 2
mkdir -p "$build/artifacts"
status=0
summary=""
for t in "$@"; do
    mkdir -p "$build/corpus/$t"
    log="$build/fuzz_$t.log"
    dirs="$build/corpus/$t tests/fuzz/corpus/$t"
    [ -d "tests/fuzz/regressions/$t" ] && dirs="$dirs tests/fuzz/regressions/$t"
    echo "fuzz_$t: ${secs}s (log: $log)"
    # -timeout: an input taking longer than 10 s is a hang worth reporting; -rss_limit_mb: the
    # readers must refuse, not allocate, absurd sizes; -max_len: room for the larger seeds.
    # FUZZ_JOBS > 1: libFuzzer's fork mode, that many fuzzing processes (a crash stops them all)
    fork=""
    [ "${FUZZ_JOBS:-1}" -gt 1 ] && fork="-fork=$FUZZ_JOBS -ignore_crashes=0"
    "$build/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 $fork \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" $dirs >"$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$fork" ] && execs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.*corp: \([0-9][0-9/]*[a-zA-Z]*\).*/\1/p')
    if [ $rc -ne 0 ]; then
        status=1
        art=$(grep -o "$build/artifacts/$t-[a-z]*-[0-9a-f]*" "$log" | tail -1)
        grep -E 'ERROR|runtime error|invariant failed' "$log" | head -3
        result="CRASH ($art)"
    else
        result="ok"
    fi
    summary="$summary$(printf '%-22s %12s %8s %8s %12s  %s' "fuzz_$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")
"
done
printf '\n%-22s %12s %8s %8s %12s  %s\n' target executions cov ft corpus result
printf '%s' "$summary"
exit $status
