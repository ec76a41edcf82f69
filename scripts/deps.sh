#!/bin/sh
# Install the Debian packages that building and testing sockserv needs.
# As root this runs apt-get; otherwise it prints the command to run.
# `deps.sh lint` installs what make lint needs instead, `deps.sh fuzz` what
# make fuzz needs (clang and its libFuzzer runtime), `deps.sh bench` what
# make bench needs (FTP servers to compare with, gnuplot for the chart, the
# libraries of the pure-ftpd that bench/pure-ftpd.sh unpacks).
set -u
PKGS="build-essential clang libcmocka-dev libcrypt-dev libssl-dev openssl lftp curl python3 pkg-config iproute2 haproxy"
[ "${1:-}" = lint ] && PKGS="clang-format clang-tidy"
[ "${1:-}" = fuzz ] && PKGS="clang libclang-rt-dev"
[ "${1:-}" = bench ] && PKGS="vsftpd gnuplot-nox openssl util-linux libsodium23 libcap2 libpam0g"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # The bench's FTP servers are run by the bench itself, never as system
    # services: while installing, no package starts a daemon.
    if [ "${1:-}" = bench ] && [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null || {
        echo "deps: apt-get install$missing failed" >&2; exit 1; }
else
    echo "deps: missing packages:$missing" >&2
    echo "deps: run: sudo apt-get install$missing" >&2
    exit 1
fi
