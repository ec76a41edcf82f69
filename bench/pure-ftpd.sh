#!/bin/sh
# bench/pure-ftpd.sh BUILD: Debian's pure-ftpd for the FTP benchmark,
# unpacked under BUILD/bench-tools (not installed: as a package it conflicts
# with vsftpd, which the benchmark also runs). Its libraries come from
# `scripts/deps.sh bench`. Prints nothing and exits 0 when it is already
# there; exits 1, saying why, when it cannot fetch it (the benchmark then
# runs without pure-ftpd).
set -eu
BUILD=${1:-build}
DEST=$BUILD/bench-tools
[ -x "$DEST/usr/sbin/pure-ftpd" ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "pure-ftpd.sh: no apt-get" >&2; exit 1; }
mkdir -p "$DEST/deb"
# apt-get download writes into the current folder; as root it warns that
# the _apt user cannot write there, which is harmless.
fetch() {
    (cd "$DEST/deb" && rm -f pure-ftpd_*.deb && apt-get download -q pure-ftpd >/dev/null 2>&1)
}
fetch || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && fetch; } || {
    echo "pure-ftpd.sh: apt-get download pure-ftpd failed" >&2; exit 1; }
dpkg-deb -x "$DEST"/deb/pure-ftpd_*.deb "$DEST"
[ -x "$DEST/usr/sbin/pure-ftpd" ] || { echo "pure-ftpd.sh: no usr/sbin/pure-ftpd in the package" >&2; exit 1; }
echo "pure-ftpd.sh: unpacked $(basename "$DEST"/deb/pure-ftpd_*.deb) into $DEST"
