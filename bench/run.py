"""Side-by-side benchmark: server CPU time per request.

Each server runs in turn on 127.0.0.1 with the same load from
sockserv-bench; the figure is the server process's CPU time (user + system,
its reaped children included) divided by the requests served, and its ratio
to the hand-written baseline measured in the same run. Counts are bounded;
the whole run takes a minute or two on two cores.
"""
import os
import subprocess
import sys

BIN = os.environ.get("SOCKSERV_BIN") or os.path.join(os.path.dirname(__file__), "..", "build", "bin")
TICK = os.sysconf("SC_CLK_TCK")
QUICK = os.environ.get("BENCH_QUICK") == "1"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 (1-based) of the full line
    return sum(int(x) for x in fields[11:15]) / TICK


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        raise RuntimeError("%s did not start: %r" % (cmd, line))
    return p, line[len("listening on "):]


def measure(server_cmd, kind, clients, requests):
    p, addr = start(server_cmd)
    try:
        before = cpu_seconds(p.pid)
        out = subprocess.run([os.path.join(BIN, "sockserv-bench"), kind, addr,
                              "-c", str(clients), "-n", str(requests)],
                             capture_output=True, text=True, timeout=180)
        after = cpu_seconds(p.pid)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if out.returncode != 0:
        return None, out.stderr.strip() or out.stdout.strip()
    return (after - before) / requests * 1e6, out.stdout.strip()


def table(title, kind, clients, rows):
    print("\n## %s (%d clients)" % (title, clients))
    print("%-34s %10s %8s %10s  %s" % ("server", "requests", "CPU us", "ratio", "client"))
    base = None
    for name, cmd, n in rows:
        if QUICK:
            n = max(n // 10, 200)
        us, info = measure(cmd, kind, clients, n)
        if us is None:
            print("%-34s %10d %8s %10s  FAILED: %s" % (name, n, "-", "-", info))
            continue
        if base is None:
            base = us
        print("%-34s %10d %8.1f %9.2fx  %s" % (name, n, us, us / base if base else 0, info))
        sys.stdout.flush()


def main():
    bs = os.path.join(BIN, "bench-server")
    py = [sys.executable, os.path.join(os.path.dirname(__file__), "py_server.py")]
    a = "127.0.0.1:0"
    table("UDP datagram ping-pong", "udp", 8, [
        ("plain recvfrom/sendto loop", [bs, "plain-udp", a], 200000),
        ("sockserv UDP sync", [bs, "sockserv-udp", a, "sync"], 200000),
        ("sockserv UDP pool", [bs, "sockserv-udp", a, "pool"], 100000),
        ("sockserv UDP threading", [bs, "sockserv-udp", a, "threading"], 30000),
        ("Python UDPServer", py + ["udp", a], 30000),
        ("Python ThreadingUDPServer", py + ["threading-udp", a], 10000),
    ])
    table("TCP lines on open connections", "tcp-lines", 8, [
        ("plain epoll line server", [bs, "plain-epoll", a], 200000),
        ("sockserv TCP threading", [bs, "sockserv-tcp", a, "threading"], 200000),
        ("sockserv TCP pool", [bs, "sockserv-tcp", a, "pool"], 200000),
        ("Python ThreadingTCPServer", py + ["threading-tcp", a], 30000),
    ])
    table("TCP connect, one line, close", "tcp-connect", 8, [
        ("plain epoll line server", [bs, "plain-epoll", a], 20000),
        ("sockserv TCP sync", [bs, "sockserv-tcp", a, "sync"], 20000),
        ("sockserv TCP pool", [bs, "sockserv-tcp", a, "pool"], 20000),
        ("sockserv TCP threading", [bs, "sockserv-tcp", a, "threading"], 20000),
        ("sockserv TCP forking", [bs, "sockserv-tcp", a, "forking"], 2000),
        ("Python TCPServer", py + ["tcp", a], 5000),
        ("Python ThreadingTCPServer", py + ["threading-tcp", a], 5000),
    ])


if __name__ == "__main__":
    main()
