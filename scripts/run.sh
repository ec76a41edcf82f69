#!/bin/sh
# make run: start sockserv-ftpd on 127.0.0.1:2121 in the foreground, serving
# the sample folder anonymously and read-only. Ctrl-C stops it.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 1
if [ -x "$BUILD/bin/sockserv-ftpd" ]; then
    echo "sockserv-ftpd: serving ./sample on 127.0.0.1:2121 (anonymous, read-only)"
    echo "try, from another terminal:"
    echo "    curl ftp://127.0.0.1:2121/"
    echo "    curl ftp://127.0.0.1:2121/README.txt"
    echo "    lftp -e 'ls; bye' ftp://127.0.0.1:2121/"
    echo "stop with Ctrl-C"
    exec "$BUILD/bin/sockserv-ftpd" --listen 127.0.0.1:2121 --root sample
fi
echo "udp-upper-server on 127.0.0.1:8003; talk to it with: $BUILD/bin/udp-upper-client"
exec "$BUILD/bin/udp-upper-server" 127.0.0.1:8003
