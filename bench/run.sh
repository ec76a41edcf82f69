#!/bin/sh
# make bench [QUICK=1]: every server side by side (bench/bench.py), with the
# FTP servers (bench/ftpd_bench.py). Installs the bench-only packages first
# (scripts/deps.sh bench; as root) and unpacks pure-ftpd into the build
# folder; whatever is missing is skipped and said so.
set -eu
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
sh scripts/deps.sh bench || echo "bench: bench packages missing; their rows are skipped"
sh bench/pure-ftpd.sh "$BUILD" || echo "bench: no pure-ftpd; its column is skipped"
SOCKSERV_BIN=$(cd "$BUILD/bin" && pwd)
export SOCKSERV_BIN
if [ -x "$BUILD/bench-tools/usr/sbin/pure-ftpd" ]; then
    PURE_FTPD=$(cd "$BUILD/bench-tools/usr/sbin" && pwd)/pure-ftpd
    export PURE_FTPD
fi
if [ "${QUICK:-0}" != 0 ]; then
    exec python3 bench/bench.py --quick
fi
exec python3 bench/bench.py
