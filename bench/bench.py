"""make bench: every server side by side, one run, read at a glance.

    python3 bench/bench.py [--quick] [--rounds N] [--seconds S] [--no-ftp] [--out DIR]

Rows are measured in rounds; each round runs every row of a section, the
order reversed every other round (A B C, C B A, ...), so a slow drift of a
shared machine falls on all rows alike. A row's figures are the median over
the rounds and the spread (max - min, as a share of the median).

The figure that decides is server CPU per request: utime + stime of the
server process, its threads, its live descendants and its reaped children
(cutime + cstime), all from /proc/PID/stat, taken after the server says it
listens and again after the load ends and the server's extra processes are
gone, divided by the requests served. The load generator (sockserv-bench)
is pinned to CPU 0 and the server to CPU 1 (with two CPUs or more), so the
two do not take turns on one core. Each load runs for a fixed time.

Writes bench/results/latest.md and latest.png (gnuplot, or matplotlib) and
prints the table and the targets of issue 9 with a check or a cross.
Every wait is bounded; the default run (5 rounds) takes 4-6 minutes on
2 cores, --quick (one round, smaller FTP files) under 2.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
BIN = os.environ.get("SOCKSERV_BIN") or os.path.join(TOP, "build", "bin")
TICK = os.sysconf("SC_CLK_TCK")
NCPU = len(os.sched_getaffinity(0))
LOAD_CPU, SERVER_CPU = (0, 1) if NCPU >= 2 else (None, None)
START_TIMEOUT = 10.0
SETTLE_TIMEOUT = 3.0
PY = [sys.executable, os.path.join(HERE, "py_server.py")]
A = "127.0.0.1:0"

# Row kinds: what a row is, for the chart's colours and the reader.
SOCKSERV, TWIN, FLOOR, PYTHON = "sockserv", "hand-written C", "floor", "Python"


def pin(cpu):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


# --------------------------------------------------------------- /proc

def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def children_table():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                out.setdefault(int(stat_fields(int(name))[1]), []).append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def tree(pid):
    """pid and all its live (or not yet reaped) descendants."""
    table = children_table()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(table.get(p, []))
    return out


def tree_cpu(pid):
    """CPU seconds of pid's process tree: for each process its own time
    (all threads) and that of the children it has reaped. A child reaped
    between two readings moves from the sum of the tree into its parent's
    cutime, so nothing is counted twice or lost."""
    total = 0
    for p in tree(pid):
        try:
            total += sum(int(x) for x in stat_fields(p)[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------- servers

def help_text(path):
    try:
        r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         preexec_fn=pin(SERVER_CPU))
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        stop(p)
        raise RuntimeError("did not start: %r" % line)
    return p, line[len("listening on "):]


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p.stdout:
        p.stdout.close()


def settle(pid, keep):
    """Wait (bounded) until the server has no processes beyond keep, so the
    CPU time of forked children is in their parent's cutime."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if set(tree(pid)) <= keep:
            return
        time.sleep(0.02)


def load(kind, addr, clients, seconds, partial=False):
    """Runs sockserv-bench: (requests served, seconds, its fields). With
    partial, a run that did not serve every request still counts."""
    cmd = [os.path.join(BIN, "sockserv-bench"), kind, addr, "-c", str(clients),
           "-t", str(max(1, int(round(seconds))))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 150,
                         preexec_fn=pin(LOAD_CPU))
    fields = dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)
    if (out.returncode != 0 and not partial) or "requests" not in fields:
        raise RuntimeError((out.stderr.strip() or out.stdout.strip() or "exit %d" % out.returncode)
                           [:200])
    return int(fields["requests"]), float(fields["seconds"]), fields


def measure(cmd, kind, clients, seconds):
    """One round of one row: (CPU us per request, requests per second)."""
    p, addr = start(cmd)
    try:
        keep = set(tree(p.pid))
        c0 = tree_cpu(p.pid)
        n, secs, _ = load(kind, addr, clients, seconds)
        settle(p.pid, keep)
        c1 = tree_cpu(p.pid)
    finally:
        stop(p)
    if n == 0:
        raise RuntimeError("no request served")
    return (c1 - c0) / n * 1e6, n / secs


# --------------------------------------------------------------- rows

class Row:
    def __init__(self, name, kind, cmd, twin=None, skip=None):
        self.name, self.kind, self.cmd, self.twin, self.skip = name, kind, cmd, twin, skip
        self.cpu, self.rate, self.error = [], [], None

    def med(self, what="cpu"):
        v = getattr(self, what)
        return statistics.median(v) if v else None

    def spread(self, what="cpu"):
        v = getattr(self, what)
        m = statistics.median(v) if v else 0
        return (max(v) - min(v)) / m * 100 if len(v) > 1 and m else None


def sections():
    bs = os.path.join(BIN, "bench-server")
    udp_ex = os.path.join(BIN, "udp-upper-server")
    tcp_ex = os.path.join(BIN, "tcp-upper-server")
    udp_help, tcp_help = help_text(udp_ex), help_text(tcp_ex)
    batch = None if "--batch" in udp_help else "skipped: udp-upper-server has no --batch"
    workers = None if "--workers" in tcp_help else "skipped: tcp-upper-server has no --workers"
    udp_mode = ["--mode", "sync"] if "--mode" in udp_help else []

    udp = [
        Row("C recvfrom loop", FLOOR, [bs, "plain-udp", A]),
        Row("C recvmmsg loop, 16", TWIN, [bs, "mmsg-udp", A, "16"]),
        Row("C thread per datagram", TWIN, [bs, "thread-udp", A]),
        Row("C 8 threads in recvfrom", TWIN, [bs, "pool-udp", A, "8"]),
        Row("sockserv UDP sync", SOCKSERV, [bs, "sockserv-udp", A, "sync"], "C recvfrom loop"),
        Row("sockserv UDP threading", SOCKSERV, [bs, "sockserv-udp", A, "threading"],
            "C thread per datagram"),
        Row("sockserv UDP pool", SOCKSERV, [bs, "sockserv-udp", A, "pool", "8"],
            "C 8 threads in recvfrom"),
        Row("udp-upper-server --batch 16", SOCKSERV, [udp_ex, A, "--batch", "16"] + udp_mode,
            "C recvmmsg loop, 16", batch),
        Row("udp-upper-server", SOCKSERV, [udp_ex, A] + udp_mode, "C recvfrom loop"),
        Row("Python UDPServer", PYTHON, PY + ["udp", A]),
        Row("Python ThreadingUDPServer", PYTHON, PY + ["threading-udp", A]),
    ]
    lines = [
        Row("C epoll", FLOOR, [bs, "plain-epoll", A]),
        Row("C thread per connection", TWIN, [bs, "thread-tcp", A]),
        Row("C 64 threads in accept", TWIN, [bs, "pool-tcp", A, "64"]),
        Row("C process per connection", TWIN, [bs, "fork-tcp", A]),
        Row("sockserv TCP threading", SOCKSERV, [bs, "sockserv-tcp", A, "threading"],
            "C thread per connection"),
        Row("sockserv TCP pool, 64", SOCKSERV, [bs, "sockserv-tcp", A, "pool", "64"],
            "C 64 threads in accept"),
        Row("sockserv TCP forking", SOCKSERV, [bs, "sockserv-tcp", A, "forking"],
            "C process per connection"),
        Row("tcp-upper-server --workers 2", SOCKSERV, [tcp_ex, A, "--workers", "2"],
            "C thread per connection", workers),
        Row("Python ThreadingTCPServer", PYTHON, PY + ["threading-tcp", A]),
    ]
    connect = [
        Row("C epoll", FLOOR, [bs, "plain-epoll", A]),
        Row("C accept loop, one at a time", TWIN, [bs, "iter-tcp", A]),
        Row("C thread per connection", TWIN, [bs, "thread-tcp", A]),
        Row("C 64 threads in accept", TWIN, [bs, "pool-tcp", A, "64"]),
        Row("C process per connection", TWIN, [bs, "fork-tcp", A]),
        Row("sockserv TCP sync", SOCKSERV, [bs, "sockserv-tcp", A, "sync"],
            "C accept loop, one at a time"),
        Row("sockserv TCP threading", SOCKSERV, [bs, "sockserv-tcp", A, "threading"],
            "C thread per connection"),
        Row("sockserv TCP pool, 64", SOCKSERV, [bs, "sockserv-tcp", A, "pool", "64"],
            "C 64 threads in accept"),
        Row("sockserv TCP forking", SOCKSERV, [bs, "sockserv-tcp", A, "forking"],
            "C process per connection"),
        Row("tcp-upper-server --workers 2", SOCKSERV, [tcp_ex, A, "--workers", "2"],
            "C thread per connection", workers),
        Row("Python TCPServer", PYTHON, PY + ["tcp", A]),
        Row("Python ThreadingTCPServer", PYTHON, PY + ["threading-tcp", A]),
    ]
    return [
        ("udp", "UDP datagram ping-pong, 8 clients", "udp", 8, udp),
        ("lines", "TCP lines on 50 open connections", "tcp-lines", 50, lines),
        ("connect", "TCP connect + one line + close, 8 clients at a time", "tcp-connect", 8,
         connect),
    ]


def run_section(title, kind, clients, rows, rounds, seconds):
    print("\n== %s" % title, flush=True)
    live = []
    for r in rows:
        if r.skip:
            print("  %s" % r.skip)
        else:
            live.append(r)
    for rnd in range(rounds):
        order = live if rnd % 2 == 0 else list(reversed(live))
        for r in order:
            if r.error:
                continue
            try:
                cpu, rate = measure(r.cmd, kind, clients, seconds)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                r.error = "failed: %s" % e
                print("  %-32s %s" % (r.name, r.error), flush=True)
                continue
            r.cpu.append(cpu)
            r.rate.append(rate)
            print("  round %d  %-32s %8.2f us/req %9.0f req/s" % (rnd + 1, r.name, cpu, rate),
                  flush=True)


def hold_10k(count, seconds):
    """count connections open at once on sockserv threading, each served."""
    bs = os.path.join(BIN, "bench-server")
    out = {"count": count}
    for key, cmd in (("sockserv", [bs, "sockserv-tcp", A, "threading"]),
                     ("twin", [bs, "thread-tcp", A])):
        p = None
        try:
            p, addr = start(cmd)
            n, secs, fields = load("tcp-hold", addr, count, seconds, partial=True)
            rss = sum(status_kib(q, "VmHWM") for q in tree(p.pid)) / 1024
            out[key] = {"served": n, "seconds": secs, "rss_mib": rss}
            if n < count:
                out[key]["error"] = "%s connections opened, the rest unserved after %.0f s" % (
                    fields.get("opened", "?"), secs)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            out[key] = {"served": 0, "error": str(e), "rss_mib": None}
        finally:
            if p is not None:
                stop(p)
        print("  %-26s %s" % ({"sockserv": "sockserv TCP threading",
                                "twin": "C thread per connection"}[key], out[key]), flush=True)
    return out


# --------------------------------------------------------------- ftp

def run_ftp(quick, rounds):
    """bench/ftpd_bench.py in a process of its own; its figures as JSON."""
    fd, path = tempfile.mkstemp(prefix="ftpd-bench.", suffix=".json")
    os.close(fd)
    env = dict(os.environ, SOCKSERV_BIN=BIN, FTPD_BENCH_JSON=path,
               BENCH_QUICK="1" if quick else "0", FTPD_BENCH_ROUNDS=str(rounds))
    if SERVER_CPU is not None:
        env["FTPD_BENCH_SERVER_CPU"] = str(SERVER_CPU)
        env["FTPD_BENCH_CLIENT_CPU"] = str(LOAD_CPU)
    try:
        subprocess.run([sys.executable, os.path.join(HERE, "ftpd_bench.py")], env=env,
                       timeout=900)
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        print("ftp: %s" % e)
        return None
    finally:
        os.unlink(path)


# --------------------------------------------------------------- output

def fmt(v, unit=""):
    if v is None:
        return "-"
    if abs(v) >= 100:
        s = "%.0f" % v
    elif abs(v) >= 10:
        s = "%.1f" % v
    else:
        s = "%.2f" % v
    return s + unit


def row_table(rows):
    by_name = {r.name: r for r in rows}
    floor = next((r for r in rows if r.kind == FLOOR), None)
    out = ["| server | kind | CPU us/request | spread | requests/s | vs its C twin | vs floor |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.skip or r.error:
            out.append("| %s | %s | %s | | | | |" % (r.name, r.kind, r.skip or r.error))
            continue
        m = r.med()
        twin = by_name.get(r.twin)
        vt = "%.2fx %s" % (m / twin.med(), r.twin) if twin and twin.med() else ""
        vf = "%.2fx" % (m / floor.med()) if floor and floor.med() and r is not floor else ""
        sp = r.spread()
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            r.name, r.kind, fmt(m), "%.0f%%" % sp if sp is not None else "-",
            fmt(r.med("rate")), vt, vf))
    return out


def targets(secs, hold, ftp):
    """[(text, ok or None for not measured, detail)]"""
    out = []
    rows = {key: {r.name: r for r in rws} for key, _, _, _, rws in secs}

    def ratio(key, a, b):
        ra, rb = rows[key].get(a), rows[key].get(b)
        if ra is None or rb is None or not ra.cpu or not rb.cpu:
            why = [r.skip or r.error for r in (ra, rb) if r is not None and (r.skip or r.error)]
            return None, "not measured" + (": " + why[0] if why else "")
        return ra.med() / rb.med(), "%s %s / %s %s us" % (a, fmt(ra.med()), b, fmt(rb.med()))

    def check(text, key, a, b, limit):
        q, detail = ratio(key, a, b)
        out.append((text, None if q is None else q <= limit,
                    detail if q is None else "%.2fx (%s)" % (q, detail)))

    for key, what in (("lines", "open connections"), ("connect", "connect per request")):
        for mode, twin in (("threading", "C thread per connection"),
                           ("pool, 64", "C 64 threads in accept"),
                           ("forking", "C process per connection"),
                           ("sync", "C accept loop, one at a time")):
            name = "sockserv TCP %s" % mode
            if name in rows[key]:
                check("%s, %s <= 1.1x %s" % (what, name, twin), key, name, twin, 1.1)
    check("UDP sync <= 1.1x C recvfrom loop", "udp", "sockserv UDP sync", "C recvfrom loop", 1.1)
    check("UDP threading <= 1.1x C thread per datagram", "udp", "sockserv UDP threading",
          "C thread per datagram", 1.1)
    check("UDP pool <= 1.1x C recvfrom loop", "udp", "sockserv UDP pool", "C recvfrom loop", 1.1)
    check("UDP batched (--batch 16) <= 0.75x C recvfrom loop", "udp",
          "udp-upper-server --batch 16", "C recvfrom loop", 0.75)
    if hold:
        s = hold.get("sockserv", {})
        ok = s.get("served") == hold["count"] and s.get("rss_mib") is not None \
            and s["rss_mib"] <= 120
        out.append(("%d connections at once, threading: all served, RSS <= 120 MB" % hold["count"],
                    ok, "%s of %d served, peak RSS %s MiB%s" % (
                        s.get("served"), hold["count"], fmt(s.get("rss_mib")),
                        ", " + s["error"] if s.get("error") else "")))
    else:
        out.append(("10000 connections at once", None, "not run"))
    out.extend(ftp_targets(ftp))
    return out


def ftp_targets(ftp):
    out = []
    if not ftp:
        return [("FTP targets", None, "FTP benchmark did not run")]
    res = ftp["results"]
    ss = res.get("sockserv-ftpd", {})
    pure = res.get("pure-ftpd")
    vs = res.get("vsftpd")
    for key, label in (("retr_median", "downloads"), ("stor_median", "uploads (STOR)"),
                       ("parallel", "16 parallel downloads")):
        if pure is None or ss.get(key) is None or pure.get(key) is None:
            out.append(("FTP %s >= pure-ftpd (tie within 5%%)" % label, None, "not measured"))
            continue
        q = ss[key] / pure[key]
        out.append(("FTP %s >= pure-ftpd (tie within 5%%)" % label, q >= 0.95,
                    "%.2fx (%s / %s MB/s)" % (q, fmt(ss[key]), fmt(pure[key]))))
    for other, name in ((pure, "pure-ftpd"), (vs, "vsftpd")):
        if other is None or ss.get("login_rate") is None or other.get("login_rate") is None:
            out.append(("FTP sessions faster than %s" % name, None, "not measured"))
            continue
        q = ss["login_rate"] / other["login_rate"]
        out.append(("FTP sessions faster than %s" % name, q > 1,
                    "%.2fx (%s / %s sessions/s)" % (q, fmt(ss["login_rate"]),
                                                     fmt(other["login_rate"]))))
    idle = ss.get("idle_kib")
    out.append(("FTP <= 200 kB per idle session", None if idle is None else idle * 1.024 <= 200,
                "not measured" if idle is None else "%s kB (PSS)" % fmt(idle * 1.024)))
    return out


def ftps_lines(ftp):
    """Issue 8's FTPS figures: TLS download next to clear, TLS sessions
    next to vsftpd's."""
    if not ftp:
        return []
    ss = ftp["results"].get("sockserv-ftpd", {})
    vs = ftp["results"].get("vsftpd", {})
    if ss.get("tls_retr") is None:
        why = [n for n in ftp.get("notes", []) if "TLS" in n or "FTPS" in n]
        return ["FTPS: not measured (%s)" % (why[0] if why else "no TLS instance")]
    out = ["FTPS download: %s MB/s with TLS, %s MB/s in clear (same file, same server): %.2fx"
           % (fmt(ss["tls_retr"]), fmt(ss.get("tls_clear_retr")),
              ss["tls_retr"] / ss["tls_clear_retr"] if ss.get("tls_clear_retr") else 0)]
    if vs.get("tls_login_rate") and ss.get("tls_login_rate"):
        out.append("FTPS sessions: %s/s, vsftpd with TLS %s/s: %.2fx" % (
            fmt(ss["tls_login_rate"]), fmt(vs["tls_login_rate"]),
            ss["tls_login_rate"] / vs["tls_login_rate"]))
    else:
        out.append("FTPS sessions: %s/s (vsftpd with TLS not measured)"
                   % fmt(ss.get("tls_login_rate")))
    return out


def ftp_table(ftp):
    names = ftp["servers"]
    res = ftp["results"]
    spread = ftp.get("spread", {})
    out = ["| figure | unit | " + " | ".join(names) + " | sockserv-ftpd / pure-ftpd |"
           " sockserv-ftpd / vsftpd |",
           "|---|---|" + "---:|" * (len(names) + 2)]
    for key, label, unit, higher in ftp["rows"]:
        cells = []
        for n in names:
            v = res.get(n, {}).get(key)
            sp = spread.get(n, {}).get(key)
            cells.append(fmt(v) + (" ±%.0f%%" % (sp / 2) if sp else ""))
        rat = []
        for base in ("pure-ftpd", "vsftpd"):
            a, b = res.get("sockserv-ftpd", {}).get(key), res.get(base, {}).get(key)
            if a and b and higher is not None:
                q = a / b
                better = q > 1 if higher else q < 1
                rat.append("%.2fx %s" % (q, "same" if abs(q - 1) < 0.05 else
                                         ("better" if better else "worse")))
            else:
                rat.append("")
        if any(c != "-" for c in cells):
            out.append("| %s | %s | %s | %s |" % (label, unit, " | ".join(cells), " | ".join(rat)))
    return out


LOAD_AT_START = [None]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    deb = ""
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version") as f:
            deb = "Debian " + f.read().strip() + ", "
    load = loadavg()
    if LOAD_AT_START[0] is None:
        LOAD_AT_START[0] = load
    else:
        load = "%s at the start, %s at the end" % (LOAD_AT_START[0], load)
    return "%s%d CPUs (%s), Linux %s, Python %s, load average %s" % (
        deb, os.cpu_count(), cpu, platform.release(), platform.python_version(), load)


def write_md(path, args, secs, hold, ftp, tg, started, elapsed, chart):
    noisy = [r for _, _, _, _, rows in secs for r in rows if (r.spread() or 0) > 20]
    lines = ["# make bench: results", "",
             "- date: %s UTC, %.0f s" % (started.strftime("%Y-%m-%d %H:%M"), elapsed),
             "- machine: %s" % machine(),
             "- command: `%s`" % args.command,
             "- load generator pinned to CPU %s, server to CPU %s; %d round(s) per row, %s s of "
             "load each, order reversed every other round" % (LOAD_CPU, SERVER_CPU, args.rounds,
                                                               args.seconds),
             "- figures: median over the rounds; spread = (max - min) / median. "
             "How to read them: docs/bench.md", ""]
    if noisy or args.note:
        lines += ["> **Noise:** %s%d row(s) spread over 20%%; take ratios under 1.2x with care." % (
            args.note + " " if args.note else "", len(noisy)), ""]
    lines += ["## Targets (issue 9)", ""]
    for text, ok, detail in tg:
        lines.append("- %s %s: %s" % ({True: "✓", False: "✗", None: "–"}[ok], text, detail))
    lines.append("")
    if ftp:
        lines += ["## FTPS (issue 8)", ""] + ["- %s" % l for l in ftps_lines(ftp)] + [""]
    for key, title, kind, clients, rows in secs:
        lines += ["## %s" % title, "", "`sockserv-bench %s -c %d`" % (kind, clients), ""]
        lines += row_table(rows) + [""]
    if hold:
        lines += ["## %d connections open at once" % hold["count"], "",
                  "`sockserv-bench tcp-hold -c %d`: each connection sends a line as soon as it is"
                  " open and stays open until every connection has its reply." % hold["count"], "",
                  "| server | served | seconds | peak RSS MiB |", "|---|---:|---:|---:|"]
        for key, name in (("sockserv", "sockserv TCP threading"),
                          ("twin", "C thread per connection")):
            h = hold.get(key, {})
            lines.append("| %s | %s | %s | %s |" % (name, h.get("served"), fmt(h.get("seconds")),
                                                   fmt(h.get("rss_mib"))))
        lines.append("")
    if ftp:
        lines += ["## FTP on loopback", "", ftp.get("setup", ""), ""] + ftp_table(ftp) + [""]
        if ftp.get("notes"):
            lines += ["Notes:", ""] + ["- %s" % n for n in ftp["notes"]] + [""]
    if chart:
        lines += ["## Chart", "", "![chart](%s)" % os.path.basename(chart), ""]
    lines += ["## Commands", "", "Servers (binaries from build/bin):", ""]
    seen = set()
    for key, title, kind, clients, rows in secs:
        for r in rows:
            if r.name not in seen:
                seen.add(r.name)
                lines.append("- %s: `%s`" % (r.name, " ".join(
                    os.path.basename(c) if os.path.isabs(c) else c for c in r.cmd)))
    if ftp and ftp.get("commands"):
        lines += ["", "FTP servers (TMP: the run's temporary folder):", ""]
        lines += ["- `%s`" % re.sub(r"/tmp/ftpd-bench\.[^/ ]+", "TMP", c).replace(TOP + "/", "")
                  for c in ftp["commands"]]
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


# --------------------------------------------------------------- chart

def chart(path, secs, ftp):
    """Bars of CPU per request (log scale) per section, and the FTP figures
    as ratios to pure-ftpd. gnuplot when present, else matplotlib."""
    panels = []
    for key, title, _, _, rows in secs:
        pts = [(r.name, r.kind, r.med(), min(r.cpu), max(r.cpu)) for r in rows if r.cpu]
        if pts:
            panels.append((title, pts))
    fpts = []
    if ftp and "pure-ftpd" in ftp["results"]:
        base = ftp["results"]["pure-ftpd"]
        for key, label, unit, higher in ftp["rows"]:
            # speeds and rates only: higher is better for every bar
            if higher is not True or key == "retr_best" or base.get(key) in (None, 0):
                continue
            vals = [ftp["results"].get(n, {}).get(key) for n in ftp["servers"]]
            if all(v is not None for v in vals):
                fpts.append((label, [v / base[key] for v in vals], higher))
    gp = shutil.which("gnuplot")
    if gp:
        return gnuplot_chart(gp, path, panels, fpts, ftp)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("chart: neither gnuplot nor matplotlib; no PNG (sh scripts/deps.sh bench)")
        return None
    return mpl_chart(path, panels, fpts, ftp)


COLOURS = {SOCKSERV: "#1f77b4", TWIN: "#ff7f0e", FLOOR: "#2ca02c", PYTHON: "#999999"}


def gnuplot_chart(gp, path, panels, fpts, ftp):
    work = tempfile.mkdtemp(prefix="bench-chart.")
    try:
        script = ['set terminal pngcairo size 1600,%d font "sans,10"' %
                  (500 * ((len(panels) + (1 if fpts else 0) + 1) // 2)),
                  'set output "%s"' % path,
                  "set multiplot layout %d,2 title \"make bench: server CPU per request "
                  "(lower is better), medians with min-max\"" %
                  ((len(panels) + (1 if fpts else 0) + 1) // 2),
                  "set style fill solid 0.8 border -1", "set boxwidth 0.7",
                  "set xtics rotate by -35 left noenhanced font \",8\"", "unset key",
                  "set grid ytics", "set logscale y", "set bmargin 9"]
        for i, (title, pts) in enumerate(panels):
            dat = os.path.join(work, "p%d.dat" % i)
            with open(dat, "w") as f:
                for j, (name, kind, m, lo, hi) in enumerate(pts):
                    f.write('%d "%s" %g %g %g 0x%s\n' % (j, name, m, lo, hi, COLOURS[kind][1:]))
            keys = ""
            if i == 0:
                script.append("set key top left noenhanced")
                keys = ", " + ", ".join('keyentry with boxes lc rgb "%s" title "%s"' % (c, k)
                                        for k, c in COLOURS.items())
            else:
                script.append("unset key")
            script += ['set title "%s" noenhanced' % title, 'set ylabel "CPU us per request"',
                       "set xrange [-0.6:%g]" % (len(pts) - 0.4),
                       'plot "%s" using 1:3:6:xtic(2) with boxes lc rgb variable notitle, '
                       '"" using 1:3:4:5 with yerrorbars lc rgb "black" pt -1 notitle%s'
                       % (dat, keys)]
        if fpts:
            dat = os.path.join(work, "ftp.dat")
            names = ftp["servers"]
            with open(dat, "w") as f:
                for j, (label, vals, higher) in enumerate(fpts):
                    f.write('"%s" %s\n' % (label, " ".join("%g" % v for v in vals)))
            script += ["set key top left noenhanced",
                       'set title "FTP speeds and rates, each server / pure-ftpd '
                       '(higher is better)" noenhanced',
                       'set ylabel "ratio to pure-ftpd (log scale)"', "set style data histograms",
                       "set style histogram clustered gap 1", "set boxwidth 0.9",
                       "set xrange [*:*]", "set yrange [0.05:*]",
                       "plot " + ", ".join('"%s" using %d:xtic(1) title "%s"' %
                                           (dat if k == 0 else "", k + 2, n)
                                           for k, n in enumerate(names))]
        script.append("unset multiplot")
        sp = os.path.join(work, "chart.gp")
        with open(sp, "w") as f:
            f.write("\n".join(script) + "\n")
        r = subprocess.run([gp, sp], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            print("chart: gnuplot failed: %s" % r.stderr.strip()[:300])
            return None
        return path
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mpl_chart(path, panels, fpts, ftp):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(panels) + (1 if fpts else 0)
    fig, axes = plt.subplots((n + 1) // 2, 2, figsize=(16, 5 * ((n + 1) // 2)), squeeze=False)
    for ax, (title, pts) in zip(axes.flat, panels):
        xs = range(len(pts))
        ax.bar(xs, [p[2] for p in pts], color=[COLOURS[p[1]] for p in pts],
               yerr=[[p[2] - p[3] for p in pts], [p[4] - p[2] for p in pts]])
        ax.set_xticks(list(xs), [p[0] for p in pts], rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel("CPU us per request")
    if fpts:
        ax = axes.flat[len(panels)]
        names = ftp["servers"]
        w = 0.8 / len(names)
        for k, name in enumerate(names):
            ax.bar([j + k * w for j in range(len(fpts))], [p[1][k] for p in fpts], w, label=name)
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(fpts))], [p[0] for p in fpts],
                      rotation=35, ha="right", fontsize=8)
        ax.set_title("FTP: each server / pure-ftpd")
        ax.legend()
    fig.suptitle("make bench: server CPU per request (lower is better), medians with min-max")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


# --------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round, shorter loads")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None, help="load per measurement")
    ap.add_argument("--no-ftp", action="store_true")
    ap.add_argument("--hold", type=int, default=10000, help="connections held at once")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--note", default=os.environ.get("BENCH_NOTE", ""),
                    help="a line for the results file, e.g. about a busy machine")
    args = ap.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.seconds = args.seconds or 1.0
    args.command = "make bench" + (" QUICK=1" if args.quick else "")
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    for b in ("bench-server", "sockserv-bench"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit("bench: %s/%s is not built (make bench-bin)" % (BIN, b))
    print("bench: %s; load on CPU %s, server on CPU %s; %d round(s), %g s each"
          % (machine(), LOAD_CPU, SERVER_CPU, args.rounds, args.seconds), flush=True)

    secs = sections()
    for key, title, kind, clients, rows in secs:
        run_section(title, kind, clients, rows, args.rounds, args.seconds)
    print("\n== %d connections open at once" % args.hold, flush=True)
    hold = hold_10k(args.hold, 30)
    ftp = None
    if not args.no_ftp:
        print("\n== FTP", flush=True)
        ftp = run_ftp(args.quick, args.rounds)

    os.makedirs(args.out, exist_ok=True)
    png = chart(os.path.join(args.out, "latest.png"), secs, ftp)
    tg = targets(secs, hold, ftp)
    md = os.path.join(args.out, "latest.md")
    write_md(md, args, secs, hold, ftp, tg, started, time.monotonic() - t0, png)

    print()
    for key, title, kind, clients, rows in secs:
        print("## %s" % title)
        for line in row_table(rows):
            print(line)
        print()
    if ftp:
        print("## FTP")
        for line in ftp_table(ftp):
            print(line)
        print()
    for line in ftps_lines(ftp):
        print(line)
    print("\n## Targets (issue 9)")
    for text, ok, detail in tg:
        print("%s %s: %s" % ({True: "✓", False: "✗", None: "–"}[ok], text, detail))
    print("\nwrote %s%s (%.0f s)" % (md, " and " + png if png else "", time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
