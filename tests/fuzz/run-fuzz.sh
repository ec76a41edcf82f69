#!/bin/sh
# Run each fuzz target named as an argument for FUZZ_SECONDS, FUZZ_PARALLEL
# at a time, over a working copy of its seed corpus plus its regressions.
# A crash leaves the input in $FUZZ_BUILD/artifacts/NAME/ and fails the run;
# copy that file into tests/fuzz/regressions/NAME/ with the fix, so make
# test replays it from then on.
set -u
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status_dir=$(mktemp -d)
trap 'rm -rf "$status_dir"' EXIT

run_target() { # name
    name=$1
    work="$FUZZ_BUILD/corpus/$name"
    art="$FUZZ_BUILD/artifacts/$name/"
    log="$FUZZ_BUILD/logs/$name.log"
    mkdir -p "$work" "$art" "$(dirname "$log")"
    set -- "$work" "tests/fuzz/corpus/$name"
    [ -d "tests/fuzz/regressions/$name" ] && set -- "$@" "tests/fuzz/regressions/$name"
    dict=""
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    # -timeout: one input may take 10 s at most; -rss_limit_mb bounds memory.
    if timeout -k 10 $((FUZZ_SECONDS + 120)) "$FUZZ_BUILD/fuzz_$name" $dict \
            -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$art" "$@" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
        echo "fuzz $name: ${FUZZ_SECONDS}s, ${runs:-?} inputs, $cov, no crash"
    else
        echo "fuzz $name: FAILED -- log: $log; inputs: $art" >&2
        grep -E 'ERROR|broken|SUMMARY|Test unit written' "$log" | head -n 8 | sed 's/^/    /' >&2
        : >"$status_dir/$name"
    fi
}

running=0
for name in "$@"; do
    run_target "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$FUZZ_PARALLEL" ]; then
        wait
        running=0
    fi
done
wait
if [ -n "$(ls "$status_dir")" ]; then
    echo "fuzz: crashes in: $(ls "$status_dir" | tr '\n' ' ')" >&2
    exit 1
fi
echo "fuzz: every target ran ${FUZZ_SECONDS}s without a crash"
