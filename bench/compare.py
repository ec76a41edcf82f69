"""Before/after: server CPU per request of two builds, side by side.

    python3 bench/compare.py OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]

Runs the sockserv rows of run.py against the bench-server of each build, in
alternating order (old, new, new, old, ...) for ROUNDS rounds (default 3),
and prints the median CPU microseconds per request of each and their ratio
(new / old; below 1.00 is faster). Counts are bounded as in run.py.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

ROWS = [
    ("UDP sync", "udp", 8, ["sockserv-udp", "sync"], 100000),
    ("UDP pool", "udp", 8, ["sockserv-udp", "pool"], 50000),
    ("UDP threading", "udp", 8, ["sockserv-udp", "threading"], 20000),
    ("TCP lines, threading", "tcp-lines", 8, ["sockserv-tcp", "threading"], 100000),
    ("TCP lines, pool", "tcp-lines", 8, ["sockserv-tcp", "pool"], 100000),
    ("TCP connect, sync", "tcp-connect", 8, ["sockserv-tcp", "sync"], 10000),
    ("TCP connect, pool", "tcp-connect", 8, ["sockserv-tcp", "pool"], 10000),
    ("TCP connect, threading", "tcp-connect", 8, ["sockserv-tcp", "threading"], 10000),
    ("TCP connect, forking", "tcp-connect", 8, ["sockserv-tcp", "forking"], 1000),
]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old, new = (os.path.abspath(d) for d in sys.argv[1:3])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    # the load generator is the new build's, for both
    run.BIN = new
    print("%-24s %10s %10s %7s" % ("row", "old us", "new us", "new/old"))
    for name, kind, clients, args, n in ROWS:
        got = {old: [], new: []}
        for r in range(rounds):
            order = (old, new) if r % 2 == 0 else (new, old)
            for d in order:
                us, info = run.measure([os.path.join(d, "bench-server")] + [args[0], "127.0.0.1:0"]
                                       + args[1:], kind, clients, n)
                if us is None:
                    sys.exit("%s (%s): %s" % (name, d, info))
                got[d].append(us)
        mo, mn = statistics.median(got[old]), statistics.median(got[new])
        print("%-24s %10.1f %10.1f %6.2fx" % (name, mo, mn, mn / mo))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
