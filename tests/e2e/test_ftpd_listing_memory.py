"""sockserv-ftpd: directory listings in bounded memory.

A listing is formatted as the data connection takes it, so what the server
holds does not grow with the listing's text:

- a directory with more names than one listing may hold to sort (200,000)
  is still listed completely, once per name, by LIST, NLST and MLSD;
- 20 sessions that each start a LIST of a 60,000-entry directory and never
  read their data connection keep the server (and in forking mode its
  session processes) under 150 MB, and the memory goes back once they end,
  in threading and in forking mode;
- with a tiny --max-listing-memory a large directory is still listed
  completely (in directory order, logged once per listing), while a small
  one stays sorted; STAT of a large directory is complete too;
- the budget is one for all sessions, threads or forked processes: while
  one listing holds most of it, another goes unsorted.

Memory is VmRSS from /proc/PID/status, summed over the server and its
session processes. Under sanitizers (SANITIZE set) memory is counted as Pss
from /proc/PID/smaps_rollup instead (each forked process maps the large
sanitizer runtime, which VmRSS would count once per process), the bound is
on the growth over the server's start value, and the return of memory is
checked in forking mode only: ASan's quarantine and TSan's shadow keep
freed memory of a threaded server by design.
"""

import collections
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

MB = 1024 * 1024
# Past the per-listing bound of 200,000 names (LISTING_MAX_ENTRIES): such a
# directory is listed unsorted. Sanitizer builds list a smaller one.
BIG_N = 210000 if not T.SANITIZE else 40000
SORT_LIMIT = 200000
# The directory that 20 sessions list at once without reading.
WIDE_N = 60000
SESSIONS = 20
# Its names have thirty characters, as names of photos or documents often
# have: a LIST line is then about 86 bytes, and a listing text 5 MB, which
# the server used to hold whole for each session. Under sanitizers every
# byte held also costs shadow memory, the names a sorted listing keeps
# included; ten-character names there keep the names (about 1 MB a
# listing) far below the text (4 MB).
WIDE_SUFFIX = "-a-longer-file-name" if not T.SANITIZE else ""
# Bounds while the 20 listings wait, and how far above its start value the
# server may stay once they have ended. Measured with 20 sessions (peak;
# after close over start):
#   plain      threading 49 MB; +2.6 MB    forking 86 MB; +0
#              (whole texts: 145 MB; +21 MB and 185 MB; +0)
#   ASan       growth 66-70 MB             (whole texts: 268-274 MB)
#   TSan       growth 168-178 MB           (whole texts: 469-479 MB)
# A directory whose names take 128 KiB of the budget to sort (two 64 KiB
# steps: a 64 KiB arena, 32 KiB of offsets and sort scratch).
MEDIUM_N = 3000
PEAK_LIMIT = 150 * MB
PEAK_GROWTH_SANITIZED = {"address": 150 * MB}.get(T.SANITIZE, 300 * MB)
AFTER_GROWTH = 12 * MB


def scratch_dir():
    """A memory file system when there is one: creating 270,000 files on a
    journaled disk takes much longer."""
    if os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return None


def make_names(prefix, n, suffix=""):
    # Names of ten characters (plus the suffix), created in an order unlike
    # the sorted one.
    return ["%s%09d%s" % (prefix, (i * 7919) % n, suffix) for i in range(n)]


def wide_names():
    return make_names("w", WIDE_N, WIDE_SUFFIX)


def fill(path, names):
    os.mkdir(path)
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd))
    finally:
        os.close(dfd)


BASE = None
ROOT = None


def setUpModule():
    global BASE, ROOT
    BASE = tempfile.mkdtemp(prefix="ftpd-listmem-", dir=scratch_dir())
    ROOT = os.path.join(BASE, "root")
    os.mkdir(ROOT)
    fill(os.path.join(ROOT, "big"), make_names("b", BIG_N))
    fill(os.path.join(ROOT, "wide"), wide_names())
    fill(os.path.join(ROOT, "small"), ["zeta", "alpha", "mid", "beta"])
    fill(os.path.join(ROOT, "medium"), make_names("m", MEDIUM_N))


def tearDownModule():
    if BASE is not None:
        shutil.rmtree(BASE, ignore_errors=True)


# ---------------------------------------------------------------------------
# Memory of a server process and its session processes


def _status_field(pid, field):
    """A "kB" field of /proc/PID/status in bytes (0 if the process is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def children(pid):
    """PIDs whose parent is pid (forked sessions)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow
        # the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(name))
    return out


def _pss(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def rss_total(pid):
    """The memory of the server plus that of each session process: VmRSS,
    or Pss under sanitizers."""
    if T.SANITIZE:
        return _pss(pid) + sum(_pss(c) for c in children(pid))
    return _status_field(pid, "VmRSS") + sum(_status_field(c, "VmRSS") for c in children(pid))


class Sampler:
    """Samples rss_total every 20 ms in a thread; keeps the highest value
    seen and counts the samples."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self._cond:
            while not self._stop:
                value = rss_total(self.pid)
                self.peak = max(self.peak, value)
                self.samples += 1
                self._cond.notify_all()
                self._cond.wait(0.02)

    def wait_samples(self, n, limit):
        """Wait (bounded) until n more samples have been taken."""
        with self._cond:
            want = self.samples + n
            if not self._cond.wait_for(lambda: self.samples >= want, limit):
                raise AssertionError("memory sampler stalled")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(T.timeout(10))
        self.peak = max(self.peak, rss_total(self.pid))


def wait_until(cond, limit, what):
    """Bounded polling of /proc: cond() true within limit seconds."""
    deadline = time.monotonic() + limit
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (limit, what))
        time.sleep(0.02)


# ---------------------------------------------------------------------------
# Servers on the shared tree


class ListingServerCase(unittest.TestCase):
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="ftpd-listmem-srv-")
        args = ["--anonymous", "--max-clients", "200", "--max-per-ip", "100"]
        cls.server = T.Server(ROOT, args + list(cls.server_args), workdir=cls.workdir)
        try:
            cls.server.start()
        except Exception:
            shutil.rmtree(cls.workdir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        tail = cls.server.stderr_tail()
        shutil.rmtree(cls.workdir, ignore_errors=True)
        if rc != 0:
            raise AssertionError("server exit status after SIGTERM: %r (expected 0); "
                                 "stderr tail:\n%s" % (rc, tail))

    def ctl(self):
        c = T.Ctl(self.server)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting.code, 220, str(c.greeting))
        c.login("anonymous", "guest@")
        return c

    def listing(self, verb, path):
        """The listing's lines (without CRLF), by a raw session over PASV."""
        c = self.ctl()
        get = c.data("PASV")
        c.expect("%s %s" % (verb, path), 150)
        data = T.recv_all(get(), tmo=T.timeout(60))
        r = c.reply(T.timeout(60))
        self.assertEqual(r.code, 226, "%s %s -> %s" % (verb, path, r))
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.close()
        self.assertTrue(data.endswith(b"\r\n"), "%s %s: lines end in CRLF" % (verb, path))
        return data[:-2].decode("utf-8").split("\r\n")

    def names(self, verb, path):
        """The names a listing shows, in its order (MLSD without its cdir)."""
        lines = self.listing(verb, path)
        if verb == "NLST":
            return lines
        if verb == "MLSD":
            self.assertTrue(lines[0].startswith("type=cdir;"), lines[0])
            out = []
            for line in lines[1:]:
                facts, sep, name = line.partition(" ")
                self.assertEqual(sep, " ", "MLSD line without a name: %r" % line)
                self.assertIn("type=file;", facts)
                out.append(name)
            return out
        out = []
        for line in lines:
            m = T.LS_RE.match(line)
            self.assertIsNotNone(m, "LIST line not in ls -l format: %r" % line)
            out.append(m.group(10))
        return out

    def assert_each_once(self, got, want, what):
        self.assertEqual(len(got), len(want), "%s: %d names, expected %d"
                         % (what, len(got), len(want)))
        if sorted(got) != sorted(want):
            twice = [n for n, k in collections.Counter(got).items() if k > 1]
            missing = sorted(set(want) - set(got))
            self.fail("%s: names listed twice %r..., missing %r..."
                      % (what, twice[:5], missing[:5]))

    def unsorted_logged(self, path):
        """How often the server logged that a listing of path went out in
        directory order."""
        pattern = re.compile(r": listing %s in directory order: " % re.escape(path))
        return len(pattern.findall(self.server.stderr_tail(1 << 20)))


# ---------------------------------------------------------------------------
# (a) a directory beyond the per-listing sort bound


class HugeDirectoryTest(ListingServerCase):
    def test_every_name_once(self):
        want = make_names("b", BIG_N)
        for verb in ("LIST", "NLST", "MLSD"):
            got = self.names(verb, "/big")
            self.assert_each_once(got, want, verb)
            if BIG_N <= SORT_LIMIT:
                self.assertEqual(got, sorted(got), "%s of %d names is sorted" % (verb, BIG_N))
        if BIG_N > SORT_LIMIT:
            self.assertEqual(self.unsorted_logged("/big"), 3,
                             "one log line per unsorted listing; stderr:\n%s"
                             % self.server.stderr_tail())


# ---------------------------------------------------------------------------
# (b) 20 listings nobody reads


class UnreadListingsTest(ListingServerCase):
    """Each session starts LIST /wide, accepts the data connection and never
    reads it; the server's memory is sampled all along."""

    mode = "threading"

    @classmethod
    def setUpClass(cls):
        cls.server_args = ("--mode", cls.mode)
        super().setUpClass()

    def sessions_ended(self, base_fds):
        """No session left: no session process (forking), or the server's
        descriptors back to what it had without sessions (threading; each
        session holds its control connection)."""
        pid = self.server.proc.pid
        if self.mode == "forking":
            return not children(pid)
        return open_fds(pid) <= base_fds

    def test_unread_listings_memory(self):
        pid = self.server.proc.pid
        base_fds = open_fds(pid)
        # One small listing first, so what any first session loads (name
        # service modules, thread stacks) is part of the start value.
        self.assertEqual(self.names("NLST", "/small"), ["alpha", "beta", "mid", "zeta"])
        wait_until(lambda: self.sessions_ended(base_fds), T.timeout(10),
                   "the warm-up session to end")
        start = rss_total(pid)
        ctls, datas = [], []
        with Sampler(pid) as sampler:
            try:
                for _ in range(SESSIONS):
                    c = T.Ctl(self.server, tmo=T.timeout(60))
                    ctls.append(c)
                    c.login("anonymous", "guest@")
                    get = c.data("PASV")
                    c.send("LIST /wide")
                    datas.append(get())
                for c in ctls:
                    r = c.reply(T.timeout(60))
                    self.assertEqual(r.code, 150, str(r))
                # Every session now sends as far as its unread data
                # connection takes; go on sampling for a while (50 samples,
                # about a second).
                sampler.wait_samples(50, T.timeout(30))
            finally:
                for s in datas:
                    T.reset_close(s)
                for c in ctls:
                    c.close()
            wait_until(lambda: self.sessions_ended(base_fds), T.timeout(30),
                       "the 20 sessions to end")
        peak = sampler.peak
        # Give the last freed pages a chance to show (bounded polling).
        after = rss_total(pid)
        deadline = time.monotonic() + T.timeout(2)
        while after > start + AFTER_GROWTH and time.monotonic() < deadline:
            time.sleep(0.05)
            after = rss_total(pid)
        report = ("%s mode: start %.1f MB, peak %.1f MB, after close %.1f MB"
                  % (self.mode, start / MB, peak / MB, after / MB))
        print("\n    " + report, file=sys.stderr)
        if T.SANITIZE:
            self.assertLess(peak - start, PEAK_GROWTH_SANITIZED, report)
        else:
            self.assertLess(peak, PEAK_LIMIT, report)
        if not T.SANITIZE or self.mode == "forking":
            self.assertLess(after, start + AFTER_GROWTH, report)
        # The server still lists the same directory completely.
        self.assert_each_once(self.names("NLST", "/wide"), wide_names(), "NLST")


class UnreadListingsForkingTest(UnreadListingsTest):
    mode = "forking"


# ---------------------------------------------------------------------------
# (c) a tiny listing budget


class TinyBudgetTest(ListingServerCase):
    server_args = ("--max-listing-memory", "64K")

    def test_large_directory_complete_unsorted(self):
        want = wide_names()
        for verb in ("LIST", "NLST", "MLSD"):
            self.assert_each_once(self.names(verb, "/wide"), want, verb)
        self.assertEqual(self.unsorted_logged("/wide"), 3,
                         "one log line per unsorted listing; stderr:\n%s"
                         % self.server.stderr_tail())
        self.assertIn("budget", self.server.stderr_tail(1 << 20))

    def test_small_directory_still_sorted(self):
        self.assertEqual(self.names("NLST", "/small"), ["alpha", "beta", "mid", "zeta"])
        self.assertEqual(self.names("MLSD", "/small"), ["alpha", "beta", "mid", "zeta"])
        self.assertEqual(self.unsorted_logged("/small"), 0)

    def test_stat_of_large_directory(self):
        c = self.ctl()
        r = c.cmd("STAT /wide", T.timeout(60))
        self.assertEqual(r.code, 213, str(r)[:200])
        self.assertEqual(r.lines[-1], "213 End of status.")
        got = []
        for line in r.lines[1:-1]:
            m = T.LS_RE.match(line.lstrip(" "))
            self.assertIsNotNone(m, "STAT line not in ls -l format: %r" % line)
            got.append(m.group(10))
        self.assert_each_once(got, wide_names(), "STAT")
        self.assertEqual(c.cmd("NOOP").code, 200)


# ---------------------------------------------------------------------------
# One budget for all sessions, threads or processes


class SharedBudgetTest(ListingServerCase):
    """While one session's listing holds 128 KiB of a 160 KiB budget,
    another session's listing of the same directory is sent in directory
    order; once the first has ended, listings are sorted again. In forking
    mode the two sessions are processes of their own."""

    mode = "threading"

    @classmethod
    def setUpClass(cls):
        cls.server_args = ("--mode", cls.mode, "--max-listing-memory", "160K")
        super().setUpClass()

    def test_budget_shared_between_sessions(self):
        want = make_names("m", MEDIUM_N)
        holder = self.ctl()
        r = holder.expect("PASV", 227)
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r.lines[0])
        port = int(m.group(5)) * 256 + int(m.group(6))
        # The listing is opened before the server waits for the data
        # connection; STAT answering from that wait says it is open.
        holder.send("LIST /medium")
        r = holder.cmd("STAT")
        self.assertEqual(r.code, 213, str(r))
        self.assertIn("sending /medium", r.text)

        other = self.names("NLST", "/medium")
        self.assert_each_once(other, want, "NLST while the budget is held")
        self.assertEqual(self.unsorted_logged("/medium"), 1, self.server.stderr_tail())
        self.assertIn("budget", self.server.stderr_tail())

        data = socket.create_connection((self.server.host, port), timeout=T.timeout(10))
        self.assertEqual(holder.reply().code, 150)
        lines = T.recv_all(data).decode()[:-2].split("\r\n")
        self.assertEqual(holder.reply().code, 226)
        got = [T.LS_RE.match(line).group(10) for line in lines]
        self.assertEqual(got, sorted(want), "the listing that held the budget is sorted")

        # The budget is back: sorted again, nothing more logged.
        self.assertEqual(self.names("NLST", "/medium"), sorted(want))
        self.assertEqual(self.unsorted_logged("/medium"), 1)


class SharedBudgetForkingTest(SharedBudgetTest):
    mode = "forking"


if __name__ == "__main__":
    T.main()
