#!/usr/bin/env python3
"""Failure injection over the example servers and sockserv-ftpd (make fault).

Each case starts one server with libfaultinject.so preloaded (see
faultinject.c), told to fail one function on its Nth call -- counted from
the process start (startup cases) or from the first listen/bind (the
server is up), for one call or for a while -- then drives it with real
clients and checks:

  no crash     no death by a signal, no sanitizer exit status or report;
  no spin      the server's CPU time (utime + stime from /proc/PID/stat)
               stays a fraction of the wall time the case took;
  clear error  a startup failure exits with status 1 and a line naming the
               error; later, every request is answered or cleanly refused
               (closed, reset, an FTP error reply), none left hanging, and a
               failure the server could not absorb is named on stderr;
  resumes      a request after the failure is served, the descriptors the
               server holds come back to what they were, and SIGTERM stops it
               with status 0.

Cases that fail on today's library are listed in EXPECTED_FAILURES with the
review item (or the finding) that explains them and the problem they show;
they are run and reported as XFAIL, never skipped. A case listed as always
failing that passes is reported as XPASS, so that its entry can go.

Usage: run-faults.py [--jobs N] [--list] [PATTERN ...]   (fnmatch on case ids)
Environment: SOCKSERV_BIN (programs), FAULT_LIB (the interposer), SANITIZE.
"""

import argparse
import errno as errno_mod
import fnmatch
import ftplib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("SOCKSERV_BIN") or os.path.join(REPO, "build", "bin")
LIB = os.environ.get("FAULT_LIB") or os.path.join(os.path.dirname(BIN), "tests",
                                                  "libfaultinject.so")
SANITIZE = os.environ.get("SANITIZE", "")


def slow_factor():
    """Upper bounds scale with the sanitizer build and the machine's load."""
    f = {"": 1.0, "address": 3.0, "thread": 5.0}.get(SANITIZE, 4.0)
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = 0.0
    return f * max(1.0, min(load, 4.0))


SLOW = slow_factor()
START_T = 5.0 * SLOW     # "listening on" or the exit
REQ_T = 2.0 * SLOW       # one request answered or refused
RESUME_T = 5.0 * SLOW    # a request served again
STOP_T = 5.0 * SLOW      # exit after SIGTERM
WORKLOAD = 4             # requests while the failure is armed
# A loop that backs off uses a few milliseconds of CPU per second; one that
# spins uses all of it. Half the wall time, plus a little for start-up work,
# keeps a wide gap on both sides.
SPIN_FRACTION = 0.2
SPIN_SLACK = 0.1 * SLOW
# How long "short of memory (or descriptors) for a while" lasts.
WINDOW_MS = 800

MODES = ["sync", "threading", "forking", "pool"]

# Cases that fail because of known library bugs, one entry per bug and
# program: (fnmatch pattern on case ids, regular expression every problem of
# such a case must match, always, reason). "always": each matching case fails
# today, so one that passes is reported (XPASS); otherwise only some of them
# do (which call is the Nth depends on the C library). An entry goes once
# its bug is fixed.
EXPECTED_FAILURES = [
    # (case pattern, problem regex, always, reason): none left.
]

ERRNO_DEFAULT = {"malloc": "ENOMEM", "calloc": "ENOMEM", "realloc": "ENOMEM", "alloc": "ENOMEM",
                 "poll": "ENOMEM", "pthread_create": "EAGAIN", "fork": "EAGAIN",
                 "eventfd": "EMFILE", "accept4": "EMFILE"}


class Case:
    def __init__(self, prog, args, kind, func, nth, arm, count=1, ms=0, err=None, mode=None):
        self.prog, self.args, self.kind = prog, list(args), kind
        self.func, self.nth, self.arm, self.count, self.ms = func, nth, arm, count, ms
        self.err = err or ERRNO_DEFAULT[func]
        what = "%s@%d" % (func, nth)
        if ms:
            what += "+%dms" % ms
        elif count != 1:
            what += "x%d" % count
        if self.err != ERRNO_DEFAULT[func]:
            what += ":" + self.err
        self.id = "/".join([prog, mode or "-", "start" if arm is None else "run", what])

    def env(self, log):
        env = dict(os.environ)
        env.update(LD_PRELOAD=LIB, FAULT_FUNC=self.func, FAULT_NTH=str(self.nth),
                   FAULT_COUNT=str(self.count), FAULT_MS=str(self.ms), FAULT_ERRNO=self.err,
                   FAULT_LOG=log)
        env.pop("FAULT_ARM", None)
        if self.arm:
            env["FAULT_ARM"] = self.arm
        return env


# ---- the cases --------------------------------------------------------------

def cases():
    out = []
    for prog in ("tcp-upper-server", "echo-server"):
        kind = "upper" if prog == "tcp-upper-server" else "echo"
        for mode in MODES:
            args = ["127.0.0.1:0", "--mode", mode]

            def add(func, nths, arm="serve", **kw):
                for n in nths:
                    out.append(Case(prog, args, kind, func, n, arm, mode=mode, **kw))

            # While serving: one failed call at a sweep of positions.
            add("alloc", range(1, 7))
            add("accept4", (1, 2, 3))
            add("accept4", (1,), err="ENOBUFS")
            add("accept4", (2,), err="ECONNABORTED")
            if mode == "threading":
                add("pthread_create", (1, 2, 3))
            if mode == "forking":
                add("fork", (1, 2, 3))
            # A few calls in a row.
            add("alloc", (2,), count=3)
            add("accept4", (1,), count=5)
            # Short of memory, or of descriptors, for a while.
            add("alloc", (1,), ms=WINDOW_MS)
            add("accept4", (1,), ms=WINDOW_MS)
            add("poll", (1,), ms=WINDOW_MS)
            # Starting up.
            add("alloc", list(range(1, 11)) + [13, 16, 21, 26], arm=None)
            add("eventfd", (1, 2), arm=None)
            if mode == "pool":
                add("pthread_create", (1, 2, 4), arm=None)
    for mode in (None, "threading"):
        args = ["127.0.0.1:0"] + (["--threading"] if mode else [])
        for n in (1, 2, 3, 4):
            out.append(Case("udp-upper-server", args, "udp", "alloc", n, "serve",
                            mode=mode or "sync"))
        out.append(Case("udp-upper-server", args, "udp", "alloc", 1, "serve", ms=WINDOW_MS,
                        mode=mode or "sync"))
        if mode:
            for n in (1, 2):
                out.append(Case("udp-upper-server", args, "udp", "pthread_create", n, "serve",
                                mode=mode))
    for mode in ("threading", "forking"):
        args = ["--mode", mode, "--anonymous", "--max-clients", "50", "--max-per-ip", "50"]
        for n in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233):
            out.append(Case("sockserv-ftpd", args, "ftp", "alloc", n, "serve", mode=mode))
        for n in (1, 2, 3):
            out.append(Case("sockserv-ftpd", args, "ftp", "accept4", n, "serve", mode=mode))
        func = "pthread_create" if mode == "threading" else "fork"
        for n in (1, 2):
            out.append(Case("sockserv-ftpd", args, "ftp", func, n, "serve", mode=mode))
        out.append(Case("sockserv-ftpd", args, "ftp", "alloc", 1, "serve", ms=WINDOW_MS, mode=mode))
        out.append(Case("sockserv-ftpd", args, "ftp", "accept4", 1, "serve", ms=WINDOW_MS, mode=mode))
        out.append(Case("sockserv-ftpd", args, "ftp", "poll", 1, "serve", ms=WINDOW_MS, mode=mode))
    return out


# ---- clients: "ok", "refused" (closed, reset or an error reply), "hung" --------

def recv_until(sock, want, limit):
    data = b""
    deadline = time.monotonic() + limit
    while len(data) < len(want):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def ask_stream(addr, kind, limit):
    line = b"fault injection %d\n" % threading.get_ident()
    want = line.upper() if kind == "upper" else line
    try:
        with socket.create_connection(addr, timeout=limit) as s:
            s.sendall(line)
            got = recv_until(s, want, limit)
    except socket.timeout:
        return "hung"
    except OSError:
        return "refused"
    if got == want:
        return "ok"
    return "refused" if want.startswith(got) else "wrong answer %r" % got[:40]


def ask_udp(addr, limit):
    msg = b"fault injection"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(limit)
        try:
            s.sendto(msg, addr)
            got, _ = s.recvfrom(65536)
        except socket.timeout:
            return "hung"
        except OSError:
            return "refused"
    if got == b"":
        # The library sends a datagram request's reply even when the handler
        # failed (Python's finish does too): an empty one says "no answer".
        return "refused"
    return "ok" if got == msg.upper() else "wrong answer %r" % got[:40]


HELLO = b"hello from the fault tests\n" * 50


def ask_ftp(addr, limit, details):
    ftp = ftplib.FTP(timeout=limit)
    step = "connect"
    try:
        ftp.connect(addr[0], addr[1])
        step = "login"
        ftp.login("anonymous", "fault@")
        names = []
        step = "LIST"
        ftp.retrlines("LIST", names.append)
        if not any(n.endswith(" hello.txt") for n in names):
            return "wrong answer: LIST %r" % names[:3]
        got = []
        step = "RETR"
        ftp.retrbinary("RETR hello.txt", got.append)
        if b"".join(got) != HELLO:
            return "wrong answer: RETR %d bytes" % len(b"".join(got))
        ftp.quit()
        return "ok"
    except socket.timeout:
        details.append("%s: no answer" % step)
        return "hung"
    except (ftplib.Error, OSError, EOFError) as e:
        details.append("%s: %s" % (step, (str(e) or type(e).__name__)[:60]))
        return "refused"
    finally:
        ftp.close()


def ask(case, addr, limit, details):
    """One request: "ok", "refused", "hung" or what was wrong with the
    answer. How an FTP session was refused goes to details."""
    if case.kind == "udp":
        return ask_udp(addr, min(limit, 1.0 * SLOW))
    if case.kind == "ftp":
        return ask_ftp(addr, limit, details)
    return ask_stream(addr, case.kind, limit)


# ---- one case -------------------------------------------------------------------

def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def read_line(proc, limit):
    """The first stdout line, or None if the process exits first."""
    import select
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + limit
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


SANITIZER_MARKS = (b"AddressSanitizer", b"LeakSanitizer", b"ThreadSanitizer",
                   b"runtime error:", b"UndefinedBehaviorSanitizer")


def crash_reason(rc, err):
    if rc is not None and rc < 0:
        return "killed by signal %d" % -rc
    if rc == 66 or any(m in err for m in SANITIZER_MARKS):
        return "sanitizer report"
    return None


def names_error(err_text, case):
    """Does stderr carry a line naming the injected error? (pthread_create
    reports memory it could not allocate as EAGAIN.)"""
    names = [case.err]
    if case.func in ("alloc", "malloc", "calloc", "realloc"):
        names.append("EAGAIN")
    return any(os.strerror(getattr(errno_mod, n)).encode() in err_text or n.encode() in err_text
               for n in names)


def run_case(case):
    work = tempfile.mkdtemp(prefix="fault-")
    log = os.path.join(work, "fault.log")
    errf = open(os.path.join(work, "stderr"), "w+b")
    cmd = [os.path.join(BIN, case.prog)]
    if case.kind == "ftp":
        root = os.path.join(work, "root")
        os.mkdir(root)
        with open(os.path.join(root, "hello.txt"), "wb") as f:
            f.write(HELLO)
        cmd += ["--listen", "127.0.0.1:0", "--root", root]
    cmd += case.args
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
                            env=case.env(log), cwd=work)
    problems, notes, details = [], [], []

    def stderr():
        errf.flush()
        errf.seek(0)
        return errf.read()

    def fired():
        try:
            with open(log, "rb") as f:
                return f.read().count(b"\n")
        except OSError:
            return 0

    try:
        line = read_line(proc, START_T)
        if line is None or not line.startswith("listening on "):
            try:
                rc = proc.wait(STOP_T)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return ["no 'listening on' line and no exit in %.0fs" % START_T], notes
            err = stderr()
            crash = crash_reason(rc, err)
            if crash:
                problems.append(crash)
            elif not fired():
                problems.append("exited %d without an injected failure" % rc)
            elif rc != 1:
                problems.append("startup failure exited %d, not 1" % rc)
            elif not names_error(err, case):
                problems.append("startup failure does not name %s: %r"
                                % (case.err, err.strip()[-160:]))
            else:
                notes.append("refused to start: " + err.decode(errors="replace").strip()
                             .splitlines()[-1][:100])
            return problems, notes

        addr = parse_address(line[len("listening on "):])
        pid = proc.pid
        # The descriptors of a server at rest; read once it is listening.
        fds0 = fd_count(pid)
        cpu0 = cpu_seconds(pid)
        w0 = time.monotonic()

        # Requests while the failure is armed; a failure that lasts a while
        # is kept busy until it is over.
        outcomes = [ask(case, addr, REQ_T, details) for _ in range(WORKLOAD)]
        window_end = w0 + case.ms / 1000.0
        while time.monotonic() < window_end and len(outcomes) < 200:
            outcomes.append(ask(case, addr, REQ_T, details))
            time.sleep(0.02)
        resumed = False
        deadline = time.monotonic() + RESUME_T
        tries = 0
        while time.monotonic() < deadline and tries < 20:
            tries += 1
            r = ask(case, addr, REQ_T, details)
            if r == "ok":
                resumed = True
                break
            outcomes.append(r)
            time.sleep(0.05)
        cpu1 = cpu_seconds(pid)
        wall = time.monotonic() - w0

        # Descriptors settle once the last connection's request has ended.
        fds1 = fd_count(pid)
        settle = time.monotonic() + 2.0 * SLOW
        while fds1 is not None and fds0 is not None and fds1 > fds0 and \
                time.monotonic() < settle:
            time.sleep(0.02)
            fds1 = fd_count(pid)

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(STOP_T)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            problems.append("no exit %.0fs after SIGTERM" % STOP_T)
        err = stderr()
        n_fired = fired()

        crash = crash_reason(rc, err)
        if crash:
            problems.append(crash)
        elif rc != 0 and not problems:
            problems.append("exit status %d after SIGTERM" % rc)
        bad = [o for o in outcomes if o not in ("ok", "refused", "hung")]
        if bad:
            problems.append(bad[0])
        if "hung" in outcomes and case.kind != "udp":
            problems.append("a request was neither answered nor refused in %.0fs" % REQ_T)
        if not resumed:
            problems.append("no request served after the failure (%s)" % ", ".join(outcomes))
        if cpu0 is not None and cpu1 is not None:
            used = cpu1 - cpu0
            if used > SPIN_FRACTION * wall + SPIN_SLACK:
                problems.append("spinning: %.2fs CPU in %.2fs" % (used, wall))
            notes.append("cpu %.2fs/%.2fs" % (used, wall))
        if fds0 is not None and fds1 is not None and fds1 > fds0:
            problems.append("descriptors %d -> %d after the failure" % (fds0, fds1))
        if n_fired:
            failed_visibly = any(o != "ok" for o in outcomes)
            # Named on stderr, or in a reply the client got (an FTP 4xx/5xx).
            said = err + "\n".join(details).encode()
            if failed_visibly and not names_error(said, case):
                problems.append("requests failed but stderr does not name %s" % case.err)
            notes.append("injected %d, %s" % (n_fired, ",".join(outcomes)))
        else:
            notes.append("not reached")
        return problems, notes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if problems and details:
            notes.append("client: " + "; ".join(sorted(set(details)))[:200])
        if problems:
            tail = stderr().decode(errors="replace").strip().splitlines()[-3:]
            notes.append("stderr: " + " | ".join(tail)[:300])
        errf.close()
        notes.append("%.1fs" % (time.monotonic() - t0))
        shutil.rmtree(work, ignore_errors=True)


def expected(case, problems):
    """(tag, reason): ok, FAIL, XFAIL (a listed bug) or XPASS (a case listed
    as always failing passed)."""
    for pattern, regex, always, reason in EXPECTED_FAILURES:
        if not fnmatch.fnmatchcase(case.id, pattern):
            continue
        if not problems:
            return ("XPASS", reason) if always else ("ok", None)
        if all(re.search(regex, p) for p in problems):
            return "XFAIL", reason
    return ("FAIL" if problems else "ok"), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=max(2, min(4, (os.cpu_count() or 2) + 1)))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("patterns", nargs="*")
    opts = ap.parse_args()

    todo = [c for c in cases()
            if not opts.patterns or any(fnmatch.fnmatchcase(c.id, p) for p in opts.patterns)]
    if opts.list:
        for c in todo:
            print(c.id)
        return 0
    if not os.path.exists(LIB):
        print("run-faults: %s is missing (make fault builds it)" % LIB)
        return 1
    start = time.monotonic()
    lock = threading.Lock()
    counts = {"ok": 0, "FAIL": 0, "XFAIL": 0, "XPASS": 0}
    failed, xpassed = [], []

    def one(case):
        problems, notes = run_case(case)
        tag, why = expected(case, problems)
        with lock:
            counts[tag] += 1
            if tag == "FAIL":
                failed.append(case.id)
            if tag == "XPASS":
                xpassed.append(case.id)
            if tag != "ok" or opts.verbose:
                detail = "; ".join(problems) if problems else ""
                extra = (" [expected: %s]" % why) if why else ""
                print("%-5s %s: %s%s (%s)" % (tag, case.id, detail, extra, ", ".join(notes)),
                      flush=True)

    # Cases where a failure lasts a while are where a loop may spin: they run
    # one at a time afterwards, so that a spinning server has a processor to
    # itself and its CPU time says so.
    with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
        list(pool.map(one, [c for c in todo if not c.ms]))
    for c in todo:
        if c.ms:
            one(c)

    print()
    for cid in xpassed:
        print("XPASS %s: passes now; take it out of EXPECTED_FAILURES" % cid)
    if failed:
        print("failed: " + " ".join(failed))
    print("fault injection: %d cases, %d ok, %d failed, %d expected failures, %d unexpected "
          "passes (%.0fs)" % (len(todo), counts["ok"], counts["FAIL"], counts["XFAIL"],
                              counts["XPASS"], time.monotonic() - start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
