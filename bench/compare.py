"""Before/after: server CPU per request of two builds, side by side.

    python3 bench/compare.py OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]

Runs the sockserv rows of bench.py against the bench-server of each build, in
alternating order (old, new, new, old, ...) for ROUNDS rounds (default 3),
and prints the median CPU microseconds per request of each and their ratio
(new / old; below 1.00 is faster). Each load runs for a second, pinned as in
bench.py.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROWS = [
    ("UDP sync", "udp", 8, ["sockserv-udp", "sync"]),
    ("UDP pool", "udp", 8, ["sockserv-udp", "pool", "8"]),
    ("UDP threading", "udp", 8, ["sockserv-udp", "threading"]),
    ("TCP lines, threading", "tcp-lines", 50, ["sockserv-tcp", "threading"]),
    ("TCP lines, pool", "tcp-lines", 50, ["sockserv-tcp", "pool", "64"]),
    ("TCP connect, sync", "tcp-connect", 8, ["sockserv-tcp", "sync"]),
    ("TCP connect, pool", "tcp-connect", 8, ["sockserv-tcp", "pool", "64"]),
    ("TCP connect, threading", "tcp-connect", 8, ["sockserv-tcp", "threading"]),
    ("TCP connect, forking", "tcp-connect", 8, ["sockserv-tcp", "forking"]),
]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old, new = (os.path.abspath(d) for d in sys.argv[1:3])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    # the load generator is the new build's, for both
    bench.BIN = new
    print("%-24s %10s %10s %7s" % ("row", "old us", "new us", "new/old"))
    for name, kind, clients, args in ROWS:
        got = {old: [], new: []}
        for r in range(rounds):
            order = (old, new) if r % 2 == 0 else (new, old)
            for d in order:
                try:
                    us, _ = bench.measure([os.path.join(d, "bench-server")] +
                                          [args[0], "127.0.0.1:0"] + args[1:], kind, clients, 1.0)
                except (RuntimeError, OSError) as e:
                    sys.exit("%s (%s): %s" % (name, d, e))
                got[d].append(us)
        mo, mn = statistics.median(got[old]), statistics.median(got[new])
        print("%-24s %10.1f %10.1f %6.2fx" % (name, mo, mn, mn / mo))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
