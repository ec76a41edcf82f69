#!/bin/sh
# make bench: side-by-side server CPU per request (see bench/run.py).
set -eu
BUILD=${BUILD:-build}
SOCKSERV_BIN=$(cd "$BUILD/bin" && pwd)
export SOCKSERV_BIN
python3 "$(dirname "$0")/ftpd_bench.py"
exec python3 "$(dirname "$0")/run.py"
