#!/bin/sh
# make run: start sockserv-ftpd on 127.0.0.1:2121 in the foreground, serving
# the sample folder anonymously and read-only. Ctrl-C stops it.
# make run-udp (second argument "udp"): the seed's UDP upper-case server on
# 127.0.0.1:8003 instead.
set -u
BUILD=${1:-build}
WHAT=${2:-ftpd}
cd "$(dirname "$0")/.." || exit 1
if [ "$WHAT" = ftpd ] && [ -x "$BUILD/bin/sockserv-ftpd" ]; then
    echo "sockserv-ftpd: serving ./sample on 127.0.0.1:2121 (anonymous, read-only)"
    echo "try, from another terminal:"
    echo "    curl ftp://127.0.0.1:2121/"
    echo "    curl ftp://127.0.0.1:2121/README.txt"
    echo "    lftp -e 'ls; bye' ftp://127.0.0.1:2121/"
    echo "stop with Ctrl-C"
    exec "$BUILD/bin/sockserv-ftpd" --listen 127.0.0.1:2121 --root sample
fi
echo "udp-upper-server on 127.0.0.1:8003; talk to it from another terminal with:"
echo "    $BUILD/bin/udp-upper-client 127.0.0.1:8003"
echo "stop with Ctrl-C"
exec "$BUILD/bin/udp-upper-server" 127.0.0.1:8003
