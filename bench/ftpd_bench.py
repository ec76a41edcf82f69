"""Side-by-side benchmark: sockserv-ftpd against vsftpd on loopback.

The servers -- sockserv-ftpd in its default threading mode, sockserv-ftpd
--mode forking (FTPD_BENCH_FORKING=0 leaves it out) and vsftpd -- serve the
same temporary folder, anonymous and read-only, and run for the whole
benchmark; every figure is measured on each server in turn, in alternating
order (A B C, C B A, ...), so slow drifts of a shared machine fall on all.
The client is this script (raw sockets, the same code for every server).
Figures:

  retr        one 256 MiB binary RETR, MB/s (best and median of 7), and
              the server's CPU time for it (loopback: the receiver's TCP
              work is often charged to the sending process)
  parallel    20 downloads of a 16 MiB file at once, aggregate MB/s
  sessions    connect + anonymous login + TYPE I + PASV + RETR 1 KiB + QUIT,
              one after another (sessions/s) and from 8 clients at once
  list        LIST of a directory of 5,000 files, ms
  cpu         server CPU per session: utime+stime+cutime+cstime of the
              server process from /proc (vsftpd forks per session, its
              reaped children count), plus the CPU time of session
              processes orphaned on the way, which this script adopts as
              a child subreaper and reaps itself (see become_subreaper)
  memory      peak RSS: the main process's VmHWM, and the peak of the summed
              PSS of the server's processes while 20 downloads run

vsftpd comes from Debian: when it is missing and we are root, the script
installs it with apt-get; otherwise the vsftpd half is skipped. Every count
and wait is bounded; the run takes well under a minute on two cores.
BENCH_QUICK=1 runs smaller counts. Exit status 1 when a measurement fails.
"""
import os
import re
import selectors
import shutil
import socket
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
# sockserv-ftpd's process-per-session mode as a third column (FTPD_BENCH_FORKING=0: off)
FORKING = os.environ.get("FTPD_BENCH_FORKING", "1") != "0"

MIB = 1 << 20
BIG_SIZE = (64 if QUICK else 256) * MIB
MID_SIZE = 16 * MIB
SMALL_SIZE = 1024
LIST_ENTRIES = 5000
PARALLEL = 20
SESSIONS = 100 if QUICK else 300
CONCURRENT = 8
ROUNDS = 3
RETR_ROUNDS = 7            # single-stream throughput is the noisiest figure
LIST_REPEAT = 5
RECV_BUF = MIB
IO_TIMEOUT = 30.0          # any one socket operation
START_TIMEOUT = 10.0       # a server to start listening
PHASE_TIMEOUT = 60.0       # one measurement, all clients
MAX_CLIENTS = 64
PASV_SPAN = 1000           # passive ports per server, below the ephemeral range
SAMPLE_INTERVAL = 0.05     # PSS sampling while downloads run


class FtpError(Exception):
    pass


# --------------------------------------------------------------- FTP client

class Ftp:
    """A minimal FTP client: control lines in, replies out, PASV data."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.expect("220")

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

    def login(self):
        code, _ = self.cmd("USER anonymous", "230", "331")
        if code == "331":
            self.cmd("PASS ftp@example.com", "230")
        self.cmd("TYPE I", "200")

    def pasv(self):
        _, text = self.cmd("PASV", "227")
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text)
        if m is None:
            raise FtpError("bad PASV reply %r" % text)
        n = [int(x) for x in m.groups()]
        data = socket.create_connection(("%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5]),
                                        timeout=IO_TIMEOUT)
        return data

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


def retr(host, port, name, buf):
    """One download: (bytes, seconds from RETR to the last byte)."""
    f = Ftp(host, port)
    try:
        f.login()
        data = f.pasv()
        t0 = time.perf_counter()
        f.sock.sendall(b"RETR " + name.encode() + b"\r\n")
        f.expect("150", "125")
        got = drain(data, buf)
        t1 = time.perf_counter()
        f.finish()
        f.quit()
    finally:
        f.close()
    return got, t1 - t0


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


def sessions(host, port, count, clients):
    """count sessions from clients threads; sessions/s."""
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
                one_session(host, port, buf)
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


def start_sockserv(root, work, pasv_lo, mode=None):
    name = "sockserv-ftpd" if mode is None else "sockserv %s" % mode
    tag = name.replace(" ", "-")
    log = open(os.path.join(work, tag + ".err"), "w")
    cmd = [FTPD, "--listen", "127.0.0.1:0", "--root", root, "--anonymous",
           "--max-clients", str(MAX_CLIENTS), "--max-per-ip", str(MAX_CLIENTS),
           "--pasv-ports", "%d-%d" % (pasv_lo, pasv_lo + PASV_SPAN - 1),
           "--log", os.path.join(work, tag + ".log")]
    if mode is not None:
        cmd += ["--mode", mode]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
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


def start_vsftpd(vsftpd, root, work, pasv_lo):
    empty = os.path.join(work, "empty")
    os.mkdir(empty, 0o755)
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
        "XFERLOG": os.path.join(work, "vsftpd.xferlog"),
        "VSFTPD_LOG": os.path.join(work, "vsftpd.log"),
    }
    with open(os.path.join(HERE, "vsftpd.conf.in")) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, v)
    if not root_user:
        # Without root vsftpd can neither chroot nor change user.
        text += "run_as_launching_user=YES\n"
    conf = os.path.join(work, "vsftpd.conf")
    with open(conf, "w") as f:
        f.write(text)
    # vsftpd writes its start-up errors ("500 OOPS: ...") to descriptor 0.
    err = open(os.path.join(work, "vsftpd.err"), "w+")
    p = subprocess.Popen([vsftpd, conf], stdin=err, stdout=err, stderr=err)
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
    return Server("vsftpd", p, port, [err]), [vsftpd, conf]


# --------------------------------------------------------------- the run

def make_tree(root):
    block = os.urandom(MIB)
    with open(os.path.join(root, "big"), "wb") as f:
        for _ in range(BIG_SIZE // MIB):
            f.write(block)
    with open(os.path.join(root, "mid"), "wb") as f:
        for _ in range(MID_SIZE // MIB):
            f.write(block)
    with open(os.path.join(root, "small"), "wb") as f:
        f.write(block[:SMALL_SIZE])
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


def run(servers, results):
    host = "127.0.0.1"
    big = bytearray(RECV_BUF)
    keep = {s.pid for s in servers}

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

    r = interleaved(servers, RETR_ROUNDS, big_retr, "big RETR")
    for name, v in r.items():
        results[name]["retr_best"] = max(x[0] for x in v)
        results[name]["retr_median"] = statistics.median(x[0] for x in v)
        results[name]["retr_cpu"] = statistics.median(x[1] for x in v)

    samplers = {s.name: PssSampler(s) for s in servers}
    r = interleaved(servers, ROUNDS,
                    lambda s: parallel(host, s.port, "mid", MID_SIZE, PARALLEL, samplers[s.name]),
                    "parallel RETR")
    for name, v in r.items():
        results[name]["parallel"] = statistics.median(v)
        results[name]["pss_peak"] = samplers[name].peak / 1024

    def seq(s):
        s.settle(keep)
        c0 = s.cpu()
        m0 = os.times()
        rate = sessions(host, s.port, SESSIONS, 1)
        m1 = os.times()
        s.settle(keep)
        c1 = s.cpu()
        mine = (m1.user + m1.system) - (m0.user + m0.system)
        return rate, (c1 - c0) / SESSIONS * 1e6, mine / SESSIONS * 1e6

    r = interleaved(servers, ROUNDS, seq, "sessions, sequential")
    for name, v in r.items():
        results[name]["seq_rate"] = statistics.median(x[0] for x in v)
        results[name]["cpu_session"] = statistics.median(x[1] for x in v)
        results[name]["client_cpu_session"] = statistics.median(x[2] for x in v)

    def conc(s):
        s.settle(keep)
        c0 = s.cpu()
        rate = sessions(host, s.port, SESSIONS, CONCURRENT)
        s.settle(keep)
        c1 = s.cpu()
        return rate, (c1 - c0) / SESSIONS * 1e6

    r = interleaved(servers, ROUNDS, conc, "sessions, concurrent")
    for name, v in r.items():
        results[name]["conc_rate"] = statistics.median(x[0] for x in v)
        results[name]["cpu_session_conc"] = statistics.median(x[1] for x in v)

    r = interleaved(servers, LIST_REPEAT, lambda s: list_ms(host, s.port, LIST_ENTRIES), "LIST")
    for name, v in r.items():
        results[name]["list_ms"] = statistics.median(v)

    for s in servers:
        results[s.name]["hwm"] = status_kib(s.pid, "VmHWM") / 1024


ROWS = [
    # key, label, unit, higher is better (None: not a verdict on the server;
    # the client's own cost, or one process of a server that forks)
    ("retr_best", "RETR %d MiB, best of %d" % (BIG_SIZE // MIB, RETR_ROUNDS), "MB/s", True),
    ("retr_median", "RETR %d MiB, median of %d" % (BIG_SIZE // MIB, RETR_ROUNDS), "MB/s", True),
    ("retr_cpu", "server CPU per %d MiB RETR" % (BIG_SIZE // MIB), "ms", False),
    ("parallel", "%d x RETR %d MiB at once" % (PARALLEL, MID_SIZE // MIB), "MB/s", True),
    ("seq_rate", "sessions, one at a time", "/s", True),
    ("conc_rate", "sessions, %d clients" % CONCURRENT, "/s", True),
    ("list_ms", "LIST %d entries" % LIST_ENTRIES, "ms", False),
    ("cpu_session", "server CPU per session (seq)", "us", False),
    ("cpu_session_conc", "server CPU per session (%d cl.)" % CONCURRENT, "us", False),
    ("client_cpu_session", "client CPU per session (seq)", "us", None),
    ("hwm", "main process peak RSS (VmHWM)", "MiB", None),
    ("pss_peak", "all processes PSS, %d downloads" % PARALLEL, "MiB", False),
]


def table(results, names):
    """A markdown table: one column per server, then each sockserv-ftpd
    column's ratio to vsftpd (when vsftpd ran)."""
    base = "vsftpd" if "vsftpd" in names else None
    others = [n for n in names if n != base]
    cols = others + ([base] if base else [])
    ratios = others if base else []
    head = "| %-32s | %-5s |" % ("figure", "unit")
    rule = "|%s|%s|" % ("-" * 34, "-" * 7)
    for n in cols:
        head += " %16s |" % n
        rule += "%s:|" % ("-" * 17)
    for n in ratios:
        head += " %21s |" % ("%s / vsftpd" % n.replace("sockserv-ftpd", "sockserv"))
        rule += "%s:|" % ("-" * 22)
    lines = [head, rule]
    for key, label, unit, higher in ROWS:
        row = "| %-32s | %-5s |" % (label, unit)
        for n in cols:
            row += " %16s |" % fmt(results[n].get(key))
        for n in ratios:
            va, vb = results[n].get(key), results[base].get(key)
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
            row += " %21s |" % ratio
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
    vsftpd = ensure_vsftpd()
    if not become_subreaper():
        print("ftpd_bench: cannot become a subreaper; vsftpd's CPU time may be undercounted")
    work = tempfile.mkdtemp(prefix="ftpd-bench.")
    servers = []
    rc = 0
    try:
        # vsftpd serves anonymous sessions as the ftp user, after chroot.
        os.chmod(work, 0o755)
        root = os.path.join(work, "root")
        os.mkdir(root, 0o755)
        print("ftpd_bench: writing %d MiB of test files ..." % ((BIG_SIZE + MID_SIZE) // MIB),
              flush=True)
        make_tree(root)
        # Passive port ranges of PASV_SPAN each, below the ephemeral range.
        base = 20000 + (os.getpid() % 4) * 3 * PASV_SPAN
        cmds = []
        ss, cmd = start_sockserv(root, work, base)
        servers.append(ss)
        cmds.append(cmd)
        if FORKING:
            ss, cmd = start_sockserv(root, work, base + PASV_SPAN, "forking")
            servers.append(ss)
            cmds.append(cmd)
        if vsftpd:
            try:
                vs, cmd = start_vsftpd(vsftpd, root, work, base + 2 * PASV_SPAN)
                servers.append(vs)
                cmds.append(cmd)
            except (RuntimeError, OSError) as e:
                print("ftpd_bench: vsftpd: %s; measuring sockserv-ftpd alone" % e)
        for cmd in cmds:
            print("ftpd_bench: %s" % " ".join(cmd))
        results = {s.name: {} for s in servers}
        t0 = time.monotonic()
        run(servers, results)
        print("\n## %s on 127.0.0.1 (%d CPUs, Linux %s, %.0f s)\n"
              % (" and ".join(s.name for s in servers), os.cpu_count(),
                 os.uname().release, time.monotonic() - t0))
        print(table(results, [s.name for s in servers]))
    except (RuntimeError, FtpError, OSError) as e:
        print("ftpd_bench: %s" % e, file=sys.stderr)
        rc = 1
    finally:
        for s in servers:
            s.stop()
        reap_adopted(set())
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
