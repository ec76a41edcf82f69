"""Side-by-side benchmark: sockserv-ftpd against vsftpd and pure-ftpd.

The servers -- sockserv-ftpd in its default threading mode, vsftpd and
pure-ftpd (both Debian's), and sockserv-ftpd --mode forking when
FTPD_BENCH_FORKING=1 -- serve the same temporary folder to anonymous
sessions (downloads, and uploads of new files into up/) and run for the
whole benchmark; every figure is measured on each server in turn, in
alternating order (A B C, C B A, ...), so slow drifts of a shared machine
fall on all. The client is this script (raw sockets, the same code for
every server). Figures:

  retr        one 256 MiB binary RETR, MB/s, and the server's CPU time for it
  stor        one 256 MiB binary STOR into up/, MB/s (clock: STOR to 226)
  parallel    16 downloads of a 16 MiB file at once, aggregate MB/s
  login       connect + USER/PASS + QUIT, one after another (sessions/s),
              and the server CPU per session
  sessions    connect + login + TYPE I + PASV + RETR 1 KiB + QUIT from 8
              clients at once (sessions/s)
  list        LIST of a directory of 5,000 files, ms
  idle        memory per idle logged-in session: the summed PSS (and RSS)
              of all the server's processes with 100 sessions open, less
              the same with none, divided by 100
  tls         with a second instance of sockserv-ftpd (--tls optional) and
              of vsftpd (ssl_enable=YES), on a certificate made with the
              openssl command: one 64 MiB RETR under AUTH TLS + PROT P, and
              connect + AUTH TLS + login + QUIT sessions/s
  cpu         server CPU: utime+stime+cutime+cstime of the server process
              from /proc (vsftpd and pure-ftpd fork per session, their
              reaped children count), plus the CPU time of session
              processes orphaned on the way, which this script adopts as a
              child subreaper and reaps itself (see become_subreaper)

vsftpd is installed with apt-get (scripts/deps.sh bench); pure-ftpd conflicts
with it as a Debian package, so bench/pure-ftpd.sh unpacks Debian's package
into the build folder instead (PURE_FTPD names the binary). pure-ftpd serves
anonymous sessions from the ftp user's home: it runs in a mount namespace of
its own (unshare -m) where the test folder is bind-mounted there, so the
system's folder is never touched. Servers that are missing are left out, and
so are TLS figures when sockserv-ftpd has no --tls. Every count and wait is
bounded; the run takes about two minutes on two cores. BENCH_QUICK=1 runs
smaller counts and one round; FTPD_BENCH_ROUNDS=N sets the rounds (default
3); FTPD_BENCH_JSON=FILE also writes the figures there for bench/bench.py;
FTPD_BENCH_SERVER_CPU / FTPD_BENCH_CLIENT_CPU pin the servers and this
script to one CPU each. Exit status 1 when a measurement fails.
"""
import json
import os
import re
import selectors
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("SOCKSERV_BIN") or os.path.join(HERE, "..", "build", "bin")
FTPD = os.path.join(BIN, "sockserv-ftpd")
TICK = os.sysconf("SC_CLK_TCK")
QUICK = os.environ.get("BENCH_QUICK") == "1"

FORKING = os.environ.get("FTPD_BENCH_FORKING", "0") == "1"
JSON_OUT = os.environ.get("FTPD_BENCH_JSON")
SERVER_CPU = os.environ.get("FTPD_BENCH_SERVER_CPU")
CLIENT_CPU = os.environ.get("FTPD_BENCH_CLIENT_CPU")
PURE_FTPD = os.environ.get("PURE_FTPD") or os.path.join(BIN, "..", "bench-tools", "usr", "sbin",
                                                        "pure-ftpd")

MIB = 1 << 20
BIG_SIZE = (64 if QUICK else 256) * MIB
TLS_SIZE = (16 if QUICK else 64) * MIB
MID_SIZE = 16 * MIB
SMALL_SIZE = 1024
LIST_ENTRIES = 5000
PARALLEL = 16
SESSIONS = 100 if QUICK else 300
TLS_SESSIONS = 50 if QUICK else 150
IDLE = 50 if QUICK else 100
CONCURRENT = 8
ROUNDS = int(os.environ.get("FTPD_BENCH_ROUNDS") or (1 if QUICK else 3))
RETR_ROUNDS = max(ROUNDS, 1 if QUICK else 5)   # single-stream throughput is the noisiest
LIST_REPEAT = ROUNDS
RECV_BUF = MIB
IO_TIMEOUT = 30.0          # any one socket operation
START_TIMEOUT = 10.0       # a server to start listening
PHASE_TIMEOUT = 60.0       # one measurement, all clients
MAX_CLIENTS = 128
PASV_SPAN = 1000           # passive ports per server, below the ephemeral range
SAMPLE_INTERVAL = 0.05     # PSS sampling while downloads run
ROOT = [None]              # the folder the servers serve


class FtpError(Exception):
    pass


# --------------------------------------------------------------- FTP client

class Ftp:
    """A minimal FTP client: control lines in, replies out, PASV data."""

    def __init__(self, host, port, tls=None):
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.tls = None
        self.expect("220")
        if tls is not None:
            self.cmd("AUTH TLS", "234")
            self.sock = tls.wrap_socket(self.sock)
            self.tls = tls

    def protect(self):
        """PBSZ 0 + PROT P: data connections under TLS too."""
        self.cmd("PBSZ 0", "200")
        self.cmd("PROT P", "200")

    def reply(self):
        """One reply, multi-line ones included: (code, text)."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise FtpError("control connection closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("latin-1")
            lines.append(line)
            if len(lines) == 1:
                code = line[:3]
                if line[3:4] != "-":
                    return code, line
            elif line[:3] == code and line[3:4] == " ":
                return code, "\n".join(lines)

    def expect(self, *codes):
        code, text = self.reply()
        if not any(code.startswith(c) for c in codes):
            raise FtpError("expected %s, got %r" % ("/".join(codes), text))
        return code, text

    def cmd(self, line, *codes):
        self.sock.sendall(line.encode("latin-1") + b"\r\n")
        return self.expect(*codes)

    def login(self, binary=True):
        code, _ = self.cmd("USER anonymous", "230", "331")
        if code == "331":
            self.cmd("PASS ftp@example.com", "230")
        if binary:
            self.cmd("TYPE I", "200")

    def pasv(self):
        _, text = self.cmd("PASV", "227")
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text)
        if m is None:
            raise FtpError("bad PASV reply %r" % text)
        n = [int(x) for x in m.groups()]
        data = socket.create_connection(("%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5]),
                                        timeout=IO_TIMEOUT)
        if self.tls is not None:
            # The handshake waits for the transfer command: the server
            # starts TLS on the data connection once it has that.
            data = self.tls.wrap_socket(data, do_handshake_on_connect=False,
                                        session=self.sock.session)
        return data

    def send_transfer(self, line, data):
        self.sock.sendall(line.encode("latin-1") + b"\r\n")
        if self.tls is not None:
            data.do_handshake()

    def start(self, line):
        """PASV, connect, send a transfer command, wait for its 150/125."""
        data = self.pasv()
        try:
            self.cmd(line, "150", "125")
        except Exception:
            data.close()
            raise
        return data

    def finish(self):
        self.expect("226", "250")

    def quit(self):
        try:
            self.cmd("QUIT", "221")
        finally:
            self.close()

    def close(self):
        self.sock.close()


def drain(data, buf):
    """Read a data connection to its end; bytes read."""
    view = memoryview(buf)
    total = 0
    while True:
        n = data.recv_into(view)
        if n == 0:
            break
        total += n
    data.close()
    return total


def retr(host, port, name, buf, tls=None):
    """One download: (bytes, seconds from RETR to the last byte)."""
    f = Ftp(host, port, tls)
    try:
        f.login()
        if tls is not None:
            f.protect()
        data = f.pasv()
        t0 = time.perf_counter()
        f.send_transfer("RETR " + name, data)
        f.expect("150", "125")
        got = drain(data, buf)
        t1 = time.perf_counter()
        f.finish()
        f.quit()
    finally:
        f.close()
    return got, t1 - t0


def stor(host, port, name, payload):
    """One upload of payload: (bytes, seconds from STOR to the 226)."""
    f = Ftp(host, port)
    view = memoryview(payload)
    try:
        f.login()
        data = f.pasv()
        t0 = time.perf_counter()
        f.send_transfer("STOR " + name, data)
        f.expect("150", "125")
        for off in range(0, len(view), RECV_BUF):
            data.sendall(view[off:off + RECV_BUF])
        data.close()
        f.finish()
        t1 = time.perf_counter()
        f.quit()
    finally:
        f.close()
    return len(payload), t1 - t0


def login_session(host, port, buf, tls=None):
    """connect + login + QUIT."""
    f = Ftp(host, port, tls)
    try:
        f.login(binary=False)
        f.quit()
    finally:
        f.close()


def one_session(host, port, buf):
    f = Ftp(host, port)
    try:
        f.login()
        data = f.start("RETR small")
        got = drain(data, buf)
        f.finish()
        f.quit()
    finally:
        f.close()
    if got != SMALL_SIZE:
        raise FtpError("short download: %d bytes" % got)


def sessions(host, port, count, clients, fn=None):
    """count sessions (fn, default one_session) from clients threads;
    sessions/s."""
    fn = fn or one_session
    errors = []
    left = [count]
    lock = threading.Lock()
    deadline = time.monotonic() + PHASE_TIMEOUT

    def worker():
        buf = bytearray(64 * 1024)
        while time.monotonic() < deadline:
            with lock:
                if left[0] == 0 or errors:
                    return
                left[0] -= 1
            try:
                fn(host, port, buf)
            except (OSError, FtpError) as e:
                with lock:
                    errors.append(e)
                return

    t0 = time.perf_counter()
    if clients == 1:
        worker()
    else:
        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PHASE_TIMEOUT + IO_TIMEOUT)
    elapsed = time.perf_counter() - t0
    if errors:
        raise FtpError("session failed: %s" % errors[0])
    if left[0] != 0:
        raise FtpError("sessions did not finish in %.0f s" % PHASE_TIMEOUT)
    return count / elapsed


def parallel(host, port, name, size, count, sampler):
    """count downloads at once from one thread with poll; aggregate MB/s.

    All sessions log in and open their data connections first; the clock
    runs from the first RETR to the last byte of the last file."""
    ctl = []
    datas = []
    try:
        for _ in range(count):
            f = Ftp(host, port)
            ctl.append(f)
            f.login()
            datas.append(f.pasv())
        sel = selectors.DefaultSelector()
        buf = bytearray(RECV_BUF)
        view = memoryview(buf)
        got = {}
        sampler.start()
        t0 = time.perf_counter()
        for f, d in zip(ctl, datas):
            f.sock.sendall(b"RETR " + name.encode() + b"\r\n")
        for f in ctl:
            f.expect("150", "125")
        for d in datas:
            d.setblocking(False)
            sel.register(d, selectors.EVENT_READ)
            got[d] = 0
        open_ = len(datas)
        deadline = time.monotonic() + PHASE_TIMEOUT
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(1.0):
                d = key.fileobj
                try:
                    n = d.recv_into(view)
                except BlockingIOError:
                    continue
                if n == 0:
                    sel.unregister(d)
                    open_ -= 1
                else:
                    got[d] += n
        t1 = time.perf_counter()
        sampler.stop()
        sel.close()
        if open_:
            raise FtpError("parallel downloads did not finish in %.0f s" % PHASE_TIMEOUT)
        if any(v != size for v in got.values()):
            raise FtpError("short parallel download: %s" % sorted(got.values()))
        for f in ctl:
            f.finish()
            f.quit()
    finally:
        sampler.stop()
        for d in datas:
            d.close()
        for f in ctl:
            f.close()
    return count * size / (t1 - t0) / 1e6


def list_ms(host, port, entries):
    f = Ftp(host, port)
    try:
        f.login()
        f.cmd("CWD many", "250")
        data = f.pasv()
        t0 = time.perf_counter()
        f.sock.sendall(b"LIST\r\n")
        f.expect("150", "125")
        chunks = []
        while True:
            c = data.recv(RECV_BUF)
            if not c:
                break
            chunks.append(c)
        t1 = time.perf_counter()
        data.close()
        f.finish()
        f.quit()
    finally:
        f.close()
    lines = [l for l in b"".join(chunks).split(b"\n") if l.strip()]
    if len(lines) < entries:
        raise FtpError("LIST gave %d lines, expected %d" % (len(lines), entries))
    return (t1 - t0) * 1e3


# --------------------------------------------------------------- /proc

def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    # utime, stime, cutime, cstime: fields 14-17 (1-based) of the full line
    return sum(int(x) for x in proc_stat(pid)[11:15]) / TICK


def parents():
    """{pid: (parent pid, state)} of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                st = proc_stat(int(name))
                out[int(name)] = (int(st[1]), st[0])
            except (OSError, IndexError, ValueError):
                pass
    return out


def descendants(roots, table=None):
    """All descendants of the pids in roots, zombies included: a child not
    yet reaped has not yet added its CPU time to its parent's."""
    table = parents() if table is None else table
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        kids = [c for c, (pp, _) in table.items() if pp == p]
        out.extend(kids)
        todo.extend(kids)
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


PR_SET_CHILD_SUBREAPER = 36
# CPU seconds of orphaned server processes this script reaped, by name.
ADOPTED_CPU = {}
# The servers' main processes, which are our children too.
SERVER_PIDS = set()


def become_subreaper():
    """Orphans of the servers become our children instead of init's.

    vsftpd's session processes do not all wait for each other: the one that
    serves the transfer can outlive its parent and be reaped by init, and
    its CPU time never reaches the listener's cutime. As the subreaper we
    reap them ourselves and count their CPU time (wait4's rusage)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap_adopted(keep):
    """Reap exited children that are not in keep (our servers); bounded."""
    for _ in range(100000):
        try:
            si = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if si is None or si.si_pid in keep:
            return
        name = comm(si.si_pid)
        _, _, ru = os.wait4(si.si_pid, 0)
        ADOPTED_CPU[name] = ADOPTED_CPU.get(name, 0.0) + ru.ru_utime + ru.ru_stime


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PssSampler:
    """Samples the summed PSS of a server's processes in a thread."""

    def __init__(self, server):
        self.server = server
        self.peak = 0
        self.stop_ev = threading.Event()
        self.thread = None

    def sample(self):
        total = sum(pss_kib(p) for p in self.server.tree())
        self.peak = max(self.peak, total)

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(SAMPLE_INTERVAL)

    def start(self):
        self.stop_ev.clear()
        self.sample()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread is not None:
            self.stop_ev.set()
            self.thread.join(5)
            self.thread = None


def idle_memory(server, host, count):
    """Memory per idle logged-in session, kiB: (PSS, RSS). The summed PSS
    (and RSS, which counts pages shared between processes once per process)
    of all the server's processes with count sessions open, less the same
    with none, over count."""
    def totals():
        procs = server.tree()
        return (sum(pss_kib(p) for p in procs), sum(status_kib(p, "VmRSS") for p in procs),
                len(procs))

    def steady():
        # until two readings 100 ms apart agree (bounded): processes of a
        # forking server are still being set up right after the login reply
        last = totals()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
            cur = totals()
            if cur[2] == last[2] and abs(cur[0] - last[0]) <= max(16, last[0] // 100):
                return cur
            last = cur
        return last

    p0, r0, _ = steady()
    open_ = []
    try:
        for _ in range(count):
            f = Ftp(host, server.port)
            open_.append(f)
            f.login(binary=False)
        p1, r1, _ = steady()
    finally:
        for f in open_:
            try:
                f.quit()
            except (OSError, FtpError):
                f.close()
    return (p1 - p0) / count, (r1 - r0) / count


def listening_port(pid):
    """The TCP port pid listens on, from its socket inodes and /proc/net/tcp."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                return int(cols[1].split(":")[1], 16)
    return None


# --------------------------------------------------------------- servers

class Server:
    def __init__(self, name, proc, port, logs):
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.logs = logs
        self.comm = comm(self.pid)
        SERVER_PIDS.add(self.pid)

    def alive(self):
        return self.proc.poll() is None

    def adopted(self, table):
        """Orphaned processes of this server now parented by this script."""
        me = os.getpid()
        return [p for p, (pp, state) in table.items()
                if pp == me and state != "Z" and p not in SERVER_PIDS and comm(p) == self.comm]

    def tree(self):
        """The server's live processes: itself, its descendants and its
        orphans that we adopted, with theirs."""
        table = parents()
        roots = [self.pid] + self.adopted(table)
        return roots + descendants(roots, table)

    def settle(self, keep, timeout=5.0):
        """Wait until no session process of this server runs and all have
        been reaped, so their CPU time is counted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reap_adopted(keep)
            if self.tree() == [self.pid]:
                reap_adopted(keep)
                return True
            time.sleep(0.02)
        return False

    def cpu(self):
        """Server CPU seconds: the main process with its reaped children,
        and its orphans that we reaped."""
        return cpu_seconds(self.pid) + ADOPTED_CPU.get(self.comm, 0.0)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in self.logs:
            f.close()


def server_cpu():
    """preexec_fn pinning a server to FTPD_BENCH_SERVER_CPU (or None)."""
    if SERVER_CPU is None:
        return None
    cpu = int(SERVER_CPU)
    return lambda: os.sched_setaffinity(0, {cpu})


def start_sockserv(root, work, pasv_lo, mode=None, extra=(), name=None):
    name = name or ("sockserv-ftpd" if mode is None else "sockserv %s" % mode)
    tag = name.replace(" ", "-")
    log = open(os.path.join(work, tag + ".err"), "w")
    cmd = [FTPD, "--listen", "127.0.0.1:0", "--root", root, "--anonymous",
           "--max-clients", str(MAX_CLIENTS), "--max-per-ip", str(MAX_CLIENTS),
           "--pasv-ports", "%d-%d" % (pasv_lo, pasv_lo + PASV_SPAN - 1),
           "--log", os.path.join(work, tag + ".log")]
    cmd += ["--anonymous-write"] + list(extra)
    if mode is not None:
        cmd += ["--mode", mode]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                         preexec_fn=server_cpu())
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        p.wait()
        log.close()
        raise RuntimeError("%s did not start: %r" % (name, line))
    port = int(line.rsplit(":", 1)[1])
    return Server(name, p, port, [log, p.stdout]), cmd


def vsftpd_pids():
    pids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/comm" % name) as f:
                    if f.read().strip() == "vsftpd":
                        pids.add(int(name))
            except OSError:
                pass
    return pids


def ensure_vsftpd():
    """Path of vsftpd, installing the Debian package when root; None to skip."""
    path = shutil.which("vsftpd") or ("/usr/sbin/vsftpd" if os.path.exists("/usr/sbin/vsftpd") else None)
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("vsftpd is not installed (as root: apt-get install -y vsftpd); "
              "measuring sockserv-ftpd alone")
        return None
    print("installing vsftpd with apt-get ...", flush=True)
    before = vsftpd_pids()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        r = subprocess.run(["apt-get", "install", "-y", "-q", "vsftpd"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=300)
    except subprocess.TimeoutExpired:
        print("apt-get install vsftpd timed out; measuring sockserv-ftpd alone")
        return None
    # The package may start its own daemon on port 21: stop the one it
    # started now, by its PID, and only that.
    for pid in sorted(vsftpd_pids() - before):
        try:
            os.kill(pid, 15)
            print("stopped the vsftpd the package started (pid %d)" % pid)
        except OSError:
            pass
    path = shutil.which("vsftpd") or ("/usr/sbin/vsftpd" if os.path.exists("/usr/sbin/vsftpd") else None)
    if r.returncode != 0 or path is None:
        print("apt-get install vsftpd failed (%s); measuring sockserv-ftpd alone"
              % r.stderr.strip().splitlines()[-1:] if r.stderr else r.returncode)
        return None
    return path


def start_vsftpd(vsftpd, root, work, pasv_lo, tls=None, name="vsftpd"):
    tag = name.replace(" ", "-")
    empty = os.path.join(work, "empty")
    os.makedirs(empty, 0o755, exist_ok=True)
    root_user = os.geteuid() == 0
    values = {
        "PORT": "0",
        "ROOT": root,
        "FTP_USER": "ftp",
        "NOPRIV_USER": "nobody",
        "EMPTY": empty,
        "PASV_MIN": str(pasv_lo),
        "PASV_MAX": str(pasv_lo + PASV_SPAN - 1),
        "MAX_CLIENTS": str(MAX_CLIENTS),
        "XFERLOG": os.path.join(work, tag + ".xferlog"),
        "VSFTPD_LOG": os.path.join(work, tag + ".log"),
        "SSL": "YES" if tls else "NO",
        "CERT": tls[0] if tls else "/dev/null",
        "KEY": tls[1] if tls else "/dev/null",
    }
    with open(os.path.join(HERE, "vsftpd.conf.in")) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, v)
    if not root_user:
        # Without root vsftpd can neither chroot nor change user.
        text += "run_as_launching_user=YES\n"
    conf = os.path.join(work, tag + ".conf")
    with open(conf, "w") as f:
        f.write(text)
    # vsftpd writes its start-up errors ("500 OOPS: ...") to descriptor 0.
    err = open(os.path.join(work, tag + ".err"), "w+")
    p = subprocess.Popen([vsftpd, conf], stdin=err, stdout=err, stderr=err,
                         preexec_fn=server_cpu())
    port = None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and p.poll() is None:
        # vsftpd says nothing when ready: watch for its listening socket.
        port = listening_port(p.pid)
        if port:
            break
        time.sleep(0.02)
    if not port:
        if p.poll() is None:
            p.kill()
        p.wait()
        err.seek(0)
        msg = err.read().strip()
        err.close()
        raise RuntimeError("vsftpd did not start: %s" % (msg or "exit %s" % p.returncode))
    return Server(name, p, port, [err]), [vsftpd, conf]


def find_pure_ftpd():
    for c in (PURE_FTPD, shutil.which("pure-ftpd"), "/usr/sbin/pure-ftpd"):
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    print("pure-ftpd is not there (sh bench/pure-ftpd.sh BUILD, or PURE_FTPD=path); "
          "measuring without it")
    return None


def start_pure_ftpd(pure, root, work, pasv_lo):
    """pure-ftpd in the foreground, anonymous sessions served from root.

    pure-ftpd serves anonymous sessions from the ftp user's home folder and
    has no option to change that; it runs in a mount namespace of its own
    where root is bind-mounted over that folder, so nothing outside changes."""
    import pwd
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise RuntimeError("needs root and unshare to serve the test folder")
    try:
        home = pwd.getpwnam("ftp").pw_dir
    except KeyError:
        raise RuntimeError("there is no ftp user (apt-get install vsftpd makes one)")
    if not os.path.isdir(home):
        raise RuntimeError("the ftp user's home %s is missing" % home)
    err = open(os.path.join(work, "pure-ftpd.err"), "w+")
    args = [pure, "-S", "127.0.0.1,0", "-p", "%d:%d" % (pasv_lo, pasv_lo + PASV_SPAN - 1),
            "-c", str(MAX_CLIENTS), "-C", str(MAX_CLIENTS), "-H", "-f", "none",
            "-O", "clf:" + os.path.join(work, "pure-ftpd.xferlog")]
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
           'mount --bind "$1" "$2" || exit 1; shift 2; exec "$@"', "sh", root, home] + args
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                         preexec_fn=server_cpu())
    port = None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and p.poll() is None:
        port = listening_port(p.pid)
        if port:
            break
        time.sleep(0.02)
    if not port:
        if p.poll() is None:
            p.kill()
        p.wait()
        err.seek(0)
        msg = err.read().strip()
        err.close()
        raise RuntimeError("pure-ftpd did not start: %s" % (msg or "exit %s" % p.returncode))
    return Server("pure-ftpd", p, port, [err]), args


def make_cert(work):
    """A self-signed certificate for the TLS figures: (cert, key) or None."""
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    try:
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (cert, key) if r.returncode == 0 else None


def client_tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# --------------------------------------------------------------- the run

def make_tree(root):
    block = os.urandom(MIB)
    with open(os.path.join(root, "big"), "wb") as f:
        for _ in range(BIG_SIZE // MIB):
            f.write(block)
    with open(os.path.join(root, "mid"), "wb") as f:
        for _ in range(MID_SIZE // MIB):
            f.write(block)
    with open(os.path.join(root, "tls"), "wb") as f:
        for _ in range(TLS_SIZE // MIB):
            f.write(block)
    with open(os.path.join(root, "small"), "wb") as f:
        f.write(block[:SMALL_SIZE])
    up = os.path.join(root, "up")
    os.mkdir(up, 0o755)
    if os.geteuid() == 0:
        import pwd
        try:
            ftp = pwd.getpwnam("ftp")
            os.chown(up, ftp.pw_uid, ftp.pw_gid)
        except KeyError:
            pass
    many = os.path.join(root, "many")
    os.mkdir(many, 0o755)
    for i in range(LIST_ENTRIES):
        with open(os.path.join(many, "file-%05d.dat" % i), "wb") as f:
            f.write(block[: i % 4096])


def interleaved(servers, rounds, fn, what):
    """{name: [results]}, running fn(server) A B, B A, ..."""
    t0 = time.monotonic()
    out = {s.name: [] for s in servers}
    for r in range(rounds):
        order = servers if r % 2 == 0 else list(reversed(servers))
        for s in order:
            if not s.alive():
                raise RuntimeError("%s exited (status %s)" % (s.name, s.proc.returncode))
            out[s.name].append(fn(s))
    print("ftpd_bench: %-22s %5.1f s" % (what, time.monotonic() - t0), flush=True)
    return out


def record(results, spread, name, key, values):
    """The median of values, and their spread: (max - min) / median, %."""
    m = statistics.median(values)
    results[name][key] = m
    if len(values) > 1 and m:
        spread.setdefault(name, {})[key] = (max(values) - min(values)) / m * 100


def run(servers, results, spread):
    host = "127.0.0.1"
    big = bytearray(RECV_BUF)
    keep = {s.pid for s in servers}
    payload = os.urandom(MIB) * (BIG_SIZE // MIB)
    up = [0]

    # Warm up: the page cache and each server's first session.
    for s in servers:
        retr(host, s.port, "mid", big)
        sessions(host, s.port, 10, 1)
        list_ms(host, s.port, LIST_ENTRIES)

    def big_retr(s):
        s.settle(keep)
        c0 = s.cpu()
        got, secs = retr(host, s.port, "big", big)
        s.settle(keep)
        c1 = s.cpu()
        if got != BIG_SIZE:
            raise FtpError("%s: short download %d" % (s.name, got))
        return got / secs / 1e6, (c1 - c0) * 1e3

    r = interleaved(servers, RETR_ROUNDS, big_retr, "RETR")
    for name, v in r.items():
        record(results, spread, name, "retr_median", [x[0] for x in v])
        results[name]["retr_best"] = max(x[0] for x in v)
        record(results, spread, name, "retr_cpu", [x[1] for x in v])

    def big_stor(s):
        up[0] += 1
        path = os.path.join("up", "f%d" % up[0])
        s.settle(keep)
        c0 = s.cpu()
        got, secs = stor(host, s.port, path, payload)
        s.settle(keep)
        c1 = s.cpu()
        local = os.path.join(ROOT[0], path)
        size = os.path.getsize(local) if os.path.exists(local) else -1
        if size != got:
            raise FtpError("%s: upload stored %d bytes of %d" % (s.name, size, got))
        os.unlink(local)
        return got / secs / 1e6, (c1 - c0) * 1e3

    r = interleaved(servers, ROUNDS, big_stor, "STOR")
    for name, v in r.items():
        record(results, spread, name, "stor_median", [x[0] for x in v])
        record(results, spread, name, "stor_cpu", [x[1] for x in v])

    samplers = {s.name: PssSampler(s) for s in servers}
    r = interleaved(servers, ROUNDS,
                    lambda s: parallel(host, s.port, "mid", MID_SIZE, PARALLEL, samplers[s.name]),
                    "parallel RETR")
    for name, v in r.items():
        record(results, spread, name, "parallel", v)
        results[name]["pss_peak"] = samplers[name].peak / 1024

    def logins(s):
        s.settle(keep)
        c0 = s.cpu()
        rate = sessions(host, s.port, SESSIONS, 1, login_session)
        s.settle(keep)
        c1 = s.cpu()
        return rate, (c1 - c0) / SESSIONS * 1e6

    r = interleaved(servers, ROUNDS, logins, "login sessions")
    for name, v in r.items():
        record(results, spread, name, "login_rate", [x[0] for x in v])
        record(results, spread, name, "cpu_login", [x[1] for x in v])

    def conc(s):
        s.settle(keep)
        c0 = s.cpu()
        rate = sessions(host, s.port, SESSIONS, CONCURRENT)
        s.settle(keep)
        c1 = s.cpu()
        return rate, (c1 - c0) / SESSIONS * 1e6

    r = interleaved(servers, ROUNDS, conc, "sessions, concurrent")
    for name, v in r.items():
        record(results, spread, name, "conc_rate", [x[0] for x in v])
        record(results, spread, name, "cpu_session_conc", [x[1] for x in v])

    r = interleaved(servers, LIST_REPEAT, lambda s: list_ms(host, s.port, LIST_ENTRIES), "LIST")
    for name, v in r.items():
        record(results, spread, name, "list_ms", v)

    def idle(s):
        s.settle(keep)
        return idle_memory(s, host, IDLE)

    r = interleaved(servers, ROUNDS, idle, "idle sessions")
    for name, v in r.items():
        record(results, spread, name, "idle_kib", [x[0] for x in v])
        record(results, spread, name, "idle_rss_kib", [x[1] for x in v])

    for s in servers:
        results[s.name]["hwm"] = status_kib(s.pid, "VmHWM") / 1024


def run_tls(pairs, results, spread):
    """TLS figures on the TLS instances; pairs: [(server, column name)]."""
    host = "127.0.0.1"
    big = bytearray(RECV_BUF)
    ctx = client_tls()
    servers = [s for s, _ in pairs]
    col = {s.name: c for s, c in pairs}
    keep = {s.pid for s in servers}
    for s in servers:
        retr(host, s.port, "mid", big, ctx)

    def tls_retr(s):
        # the same file in clear and under TLS, one after the other
        out = []
        for c in (None, ctx):
            got, secs = retr(host, s.port, "tls", big, c)
            if got != TLS_SIZE:
                raise FtpError("%s: short download %d" % (s.name, got))
            out.append(got / secs / 1e6)
        return out

    r = interleaved(servers, RETR_ROUNDS, tls_retr, "RETR clear and over TLS")
    for name, v in r.items():
        record(results, spread, col[name], "tls_clear_retr", [x[0] for x in v])
        record(results, spread, col[name], "tls_retr", [x[1] for x in v])

    def tls_logins(s):
        s.settle(keep)
        c0 = s.cpu()
        rate = sessions(host, s.port, TLS_SESSIONS, 1,
                        lambda h, p, b: login_session(h, p, b, ctx))
        s.settle(keep)
        c1 = s.cpu()
        return rate, (c1 - c0) / TLS_SESSIONS * 1e6

    r = interleaved(servers, ROUNDS, tls_logins, "TLS login sessions")
    for name, v in r.items():
        record(results, spread, col[name], "tls_login_rate", [x[0] for x in v])
        record(results, spread, col[name], "tls_cpu_login", [x[1] for x in v])


ROWS = [
    # key, label, unit, higher is better (None: not a verdict on the server;
    # one process of a server that forks, or RSS that counts shared pages
    # once per process)
    ("retr_median", "RETR %d MiB, median of %d" % (BIG_SIZE // MIB, RETR_ROUNDS), "MB/s", True),
    ("retr_best", "RETR %d MiB, best of %d" % (BIG_SIZE // MIB, RETR_ROUNDS), "MB/s", True),
    ("retr_cpu", "server CPU per %d MiB RETR" % (BIG_SIZE // MIB), "ms", False),
    ("stor_median", "STOR %d MiB, median of %d" % (BIG_SIZE // MIB, ROUNDS), "MB/s", True),
    ("stor_cpu", "server CPU per %d MiB STOR" % (BIG_SIZE // MIB), "ms", False),
    ("parallel", "%d x RETR %d MiB at once" % (PARALLEL, MID_SIZE // MIB), "MB/s", True),
    ("login_rate", "sessions (connect+login+quit)", "/s", True),
    ("cpu_login", "server CPU per login session", "us", False),
    ("conc_rate", "sessions with RETR 1 KiB, %d clients" % CONCURRENT, "/s", True),
    ("cpu_session_conc", "server CPU per such session", "us", False),
    ("list_ms", "LIST %d entries" % LIST_ENTRIES, "ms", False),
    ("idle_kib", "PSS per idle session (%d open)" % IDLE, "KiB", False),
    ("idle_rss_kib", "RSS per idle session (%d open)" % IDLE, "KiB", None),
    ("pss_peak", "all processes PSS, %d downloads" % PARALLEL, "MiB", False),
    ("hwm", "main process peak RSS (VmHWM)", "MiB", None),
    ("tls_clear_retr", "RETR %d MiB in clear, TLS instance" % (TLS_SIZE // MIB), "MB/s", True),
    ("tls_retr", "FTPS RETR %d MiB (PROT P)" % (TLS_SIZE // MIB), "MB/s", True),
    ("tls_login_rate", "FTPS sessions (AUTH TLS+login+quit)", "/s", True),
    ("tls_cpu_login", "server CPU per FTPS session", "us", False),
]


def table(results, names):
    """A markdown table: one column per server, then sockserv-ftpd's ratio
    to pure-ftpd and to vsftpd (those that ran)."""
    bases = [n for n in ("pure-ftpd", "vsftpd") if n in names]
    me = "sockserv-ftpd"
    head = "| %-36s | %-5s |" % ("figure", "unit")
    rule = "|%s|%s|" % ("-" * 38, "-" * 7)
    for n in names:
        head += " %14s |" % n
        rule += "%s:|" % ("-" * 15)
    for n in bases:
        head += " %20s |" % ("sockserv / %s" % n)
        rule += "%s:|" % ("-" * 21)
    lines = [head, rule]
    for key, label, unit, higher in ROWS:
        if all(results[n].get(key) is None for n in names):
            continue
        row = "| %-36s | %-5s |" % (label, unit)
        for n in names:
            row += " %14s |" % fmt(results[n].get(key))
        for n in bases:
            va, vb = results.get(me, {}).get(key), results[n].get(key)
            ratio = ""
            if va and vb:
                q = va / vb
                if higher is None:
                    ratio = "%.2fx" % q
                elif abs(q - 1) < 0.05:
                    ratio = "%.2fx (same)" % q
                else:
                    better = q > 1 if higher else q < 1
                    ratio = "%.2fx %s" % (q, "(better)" if better else "(worse)")
            row += " %20s |" % ratio
        lines.append(row)
    return "\n".join(lines)


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def main():
    if not os.access(FTPD, os.X_OK):
        print("ftpd_bench: %s is not built (make)" % FTPD, file=sys.stderr)
        return 1
    if CLIENT_CPU is not None:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    vsftpd = ensure_vsftpd()
    pure = find_pure_ftpd()
    if not become_subreaper():
        print("ftpd_bench: cannot become a subreaper; vsftpd's CPU time may be undercounted")
    work = tempfile.mkdtemp(prefix="ftpd-bench.")
    servers, tls_servers = [], []
    notes = []
    rc = 0
    try:
        # vsftpd serves anonymous sessions as the ftp user, after chroot.
        os.chmod(work, 0o755)
        root = os.path.join(work, "root")
        ROOT[0] = root
        os.mkdir(root, 0o755)
        print("ftpd_bench: writing %d MiB of test files ..."
              % ((BIG_SIZE + MID_SIZE + TLS_SIZE) // MIB), flush=True)
        make_tree(root)
        # Passive port ranges of PASV_SPAN each, below the ephemeral range.
        base = 10000 + (os.getpid() % 2) * 6 * PASV_SPAN
        cmds = []
        ss, cmd = start_sockserv(root, work, base)
        servers.append(ss)
        cmds.append(cmd)
        if FORKING:
            ss, cmd = start_sockserv(root, work, base + PASV_SPAN, "forking")
            servers.append(ss)
            cmds.append(cmd)
        starters = []
        if vsftpd:
            starters.append(("vsftpd", lambda: start_vsftpd(vsftpd, root, work,
                                                           base + 2 * PASV_SPAN)))
        if pure:
            starters.append(("pure-ftpd", lambda: start_pure_ftpd(pure, root, work,
                                                                 base + 3 * PASV_SPAN)))
        for name, fn in starters:
            try:
                sv, cmd = fn()
                servers.append(sv)
                cmds.append(cmd)
            except (RuntimeError, OSError) as e:
                print("ftpd_bench: %s: %s; measuring without it" % (name, e))
                notes.append("%s did not run: %s" % (name, e))
        cert = make_cert(work)
        helptext = subprocess.run([FTPD, "--help"], capture_output=True, text=True).stdout
        if cert is None:
            notes.append("no TLS figures: the openssl command could not make a certificate")
        elif "--tls" not in helptext:
            print("ftpd_bench: skipped: %s has no --tls" % FTPD)
            notes.append("no FTPS figures: skipped: sockserv-ftpd has no --tls")
        else:
            extra = ["--tls", "optional", "--tls-cert", cert[0], "--tls-key", cert[1]]
            if "--tls-require-reuse" in helptext:
                extra += ["--tls-require-reuse", "no"]
            try:
                ts, cmd = start_sockserv(root, work, base + 4 * PASV_SPAN, extra=extra,
                                         name="sockserv-ftpd TLS")
                tls_servers.append((ts, "sockserv-ftpd"))
                cmds.append(cmd)
                if vsftpd:
                    tv, cmd = start_vsftpd(vsftpd, root, work, base + 5 * PASV_SPAN, cert,
                                           "vsftpd TLS")
                    tls_servers.append((tv, "vsftpd"))
                    cmds.append(cmd)
            except (RuntimeError, OSError) as e:
                print("ftpd_bench: TLS: %s" % e)
                notes.append("no FTPS figures: %s" % e)
        for cmd in cmds:
            print("ftpd_bench: %s" % " ".join(cmd))
        names = [s.name for s in servers]
        results = {n: {} for n in names}
        spread = {}
        t0 = time.monotonic()
        run(servers, results, spread)
        if tls_servers:
            try:
                run_tls(tls_servers, results, spread)
            except (RuntimeError, FtpError, OSError) as e:
                print("ftpd_bench: TLS: %s" % e)
                notes.append("FTPS figures failed: %s" % e)
        setup = ("%s on 127.0.0.1, anonymous sessions, %d round(s), order reversed every "
                 "other round; pure-ftpd %s" % (", ".join(names), ROUNDS,
                                                "ran" if "pure-ftpd" in names else "missing"))
        print("\n## %s (%d CPUs, Linux %s, %.0f s)\n"
              % (setup, os.cpu_count(), os.uname().release, time.monotonic() - t0))
        print(table(results, names))
        if JSON_OUT:
            with open(JSON_OUT, "w") as f:
                json.dump({"servers": names, "results": results, "spread": spread,
                           "rows": ROWS, "setup": setup, "notes": notes,
                           "commands": [" ".join(c) for c in cmds]}, f)
    except (RuntimeError, FtpError, OSError) as e:
        print("ftpd_bench: %s" % e, file=sys.stderr)
        rc = 1
    finally:
        for s in servers + [t for t, _ in tls_servers]:
            s.stop()
        reap_adopted(set())
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
