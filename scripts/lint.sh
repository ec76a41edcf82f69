#!/bin/sh
# make lint: clang-format (check only) over the files in scripts/format-checked.txt,
# then clang-tidy (.clang-tidy) over every C file of the library, the examples,
# sockserv-ftpd and the tests. Findings listed in scripts/tidy-known.txt are
# printed as known; any other finding fails. Prints one closing line.
set -u
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
status=0

for tool in "$CLANG_FORMAT" "$CLANG_TIDY"; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "lint: $tool not found (sh scripts/deps.sh lint installs it)" >&2
        exit 2
    }
done

# ---- format ----------------------------------------------------------------
checked=0
unformatted=""
for f in $(grep -v '^[[:space:]]*#' scripts/format-checked.txt); do
    if [ ! -f "$f" ]; then
        echo "lint: scripts/format-checked.txt names $f, which does not exist (skipped)"
        continue
    fi
    checked=$((checked + 1))
    "$CLANG_FORMAT" --dry-run --Werror "$f" >/dev/null 2>&1 || unformatted="$unformatted $f"
done
if [ -n "$unformatted" ]; then
    status=1
    for f in $unformatted; do
        echo "lint: $f is not clang-formatted (clang-format -i $f):"
        "$CLANG_FORMAT" --dry-run "$f" 2>&1 | head -n 12 | sed 's/^/    /'
    done
fi
echo "lint: clang-format: $checked files checked, $(echo $unformatted | wc -w) not formatted"

# ---- tidy ------------------------------------------------------------------
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
FLAGS="-std=c11 -D_GNU_SOURCE -pthread -Iinclude -Isrc -Iexamples/common -Itests/unit"
files=$(ls src/*.c examples/*.c examples/common/*.c ftpd/*.c tests/unit/*.c tests/fault/*.c \
        2>/dev/null)
# One clang-tidy per file, $JOBS at a time; the unit tests read with cmocka's
# assertions spelled as conditions the analyzer understands.
echo "$files" | xargs -P "$JOBS" -I{} sh -c '
    f=$1; shift
    extra=""
    case "$f" in tests/unit/*) extra="-include scripts/tidy-cmocka.h" ;; esac
    "$0" --quiet "$f" -- '"$FLAGS"' $extra >"$1/$(echo "$f" | tr / _).out" 2>&1
' "$CLANG_TIDY" {} "$out"
# file:line:col: warning: message [check]  ->  file|check|message, per unique site
top=$(pwd)/
cat "$out"/*.out |
    sed -n 's#^\(.*\):\([0-9]*\):[0-9]*: \(warning\|error\): \(.*\) \[\([^]]*\)\]$#\1:\2|\5|\4#p' |
    sed "s#^$top##; s#^tests/unit/\\.\\./\\.\\./##" | sort -u >"$out/all"
new=0
known=0
while IFS= read -r line; do
    site=${line%%|*}
    key="${site%%:*}|${line#*|}"
    if grep -qxF "$key" scripts/tidy-known.txt; then
        known=$((known + 1))
        echo "lint: known  $site ${line#*|}"
    else
        new=$((new + 1))
        echo "lint: NEW    $site ${line#*|}"
    fi
done <"$out/all"
if grep -q "error:" "$out"/*.out; then
    echo "lint: clang-tidy could not read some files:"
    grep -h "error:" "$out"/*.out | sort -u | head -n 20 | sed 's/^/    /'
    status=1
fi
[ "$new" -eq 0 ] || status=1
echo "lint: clang-tidy: $(echo "$files" | wc -l) files, $new new findings, $known known"
[ "$status" -eq 0 ] && echo "lint: passed" || echo "lint: FAILED"
exit "$status"
