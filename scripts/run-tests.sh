#!/bin/sh
# Run the unit test binaries given as arguments, then every end-to-end test
# in tests/e2e (files named test_*.sh or test_*.py, run with SOCKSERV_BIN set
# to the built programs), then the failure injection (tests/fault, plain
# build only). Prints one closing line: "N passed, N failed".
# UNIT_ONLY, E2E_ONLY and FAULT_ONLY pick one part.
set -u
BUILD=${BUILD:-build}
SANITIZE=${SANITIZE:-}
SOCKSERV_BIN=$(cd "$BUILD/bin" 2>/dev/null && pwd)
export SOCKSERV_BIN SANITIZE
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=66}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=66}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1}
export PYTHONDONTWRITEBYTECODE=1
passed=0
failed=0
failures=""
log_dir="$BUILD/test-logs"
mkdir -p "$log_dir"

run_one() { # name, command...
    name=$1; shift
    log="$log_dir/$(basename "$name").log"
    start=$(date +%s)
    if timeout -k 10 300 "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "PASS $name ($(( $(date +%s) - start ))s)"
    else
        rc=$?
        failed=$((failed + 1))
        failures="$failures $name"
        echo "FAIL $name (exit $rc, $(( $(date +%s) - start ))s) -- log: $log"
        tail -n 40 "$log" | sed 's/^/    /'
    fi
}

if [ -z "${E2E_ONLY:-}" ] && [ -z "${FAULT_ONLY:-}" ]; then
    for t in "$@"; do
        run_one "$t" "$t"
    done
fi
if [ -z "${UNIT_ONLY:-}" ] && [ -z "${FAULT_ONLY:-}" ]; then
    for t in tests/e2e/test_*.sh tests/e2e/test_*.py; do
        [ -f "$t" ] || continue
        case "$t" in
            *.py) run_one "$t" python3 "$t" ;;
            *) run_one "$t" sh "$t" ;;
        esac
    done
fi
if [ -z "${UNIT_ONLY:-}" ] && [ -z "${E2E_ONLY:-}" ]; then
    if [ -n "$SANITIZE" ]; then
        # The interposer replaces malloc, and so does the sanitizer runtime,
        # which must also come first in the library list: no failure
        # injection under SANITIZE (the plain build runs it).
        echo "SKIP tests/fault/run-faults.py (not under SANITIZE=$SANITIZE: its runtime" \
             "replaces malloc too; make fault runs in the plain build)"
    else
        run_one tests/fault/run-faults.py env FAULT_LIB="$(pwd)/$BUILD/tests/libfaultinject.so" python3 tests/fault/run-faults.py
    fi
fi
echo
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
