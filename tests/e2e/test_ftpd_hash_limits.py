"""sockserv-ftpd: HASH is bounded and abortable.

HASH digests a file at about a CPU-second per GiB (MD5 is the slowest of
the three algorithms), so it is capped by --hash-max-size and runs in the
transfer loop. These tests perform the attacks and measure them: a sparse
file of several GiB (no disk used) is digested while ABOR, STAT, NOOP,
pipelined QUIT, a lost control connection and SIGTERM arrive; the time to
the answer and the server's CPU time (utime + stime from /proc, of the
server and of its session processes in forking mode) must stay small. A
file over the cap gets 550 before any reading; --hash-max-size 0 turns HASH
off (502, and FEAT does not list it).
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
# The attack file: MD5 over it costs the old server about ten CPU-seconds.
ATTACK = 4 * GIB
CAP = 8 * GIB
MID = 64 * MIB
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sparse(path, size):
    """A file of size bytes that uses no disk (a hole)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb"):
        pass
    os.truncate(path, size)


def _stat_fields(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces; the fields after it do not.
    return data.rsplit(")", 1)[1].split()


def server_cpu(pid):
    """CPU seconds used by process pid, its reaped children and its live
    children (the session processes of forking mode)."""
    f = _stat_fields(pid)
    if f is None:
        return 0.0
    # f[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    ticks = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == pid:
            continue
        c = _stat_fields(int(name))
        if c is not None and int(c[1]) == pid:
            ticks += int(c[11]) + int(c[12])
    return ticks / CLK_TCK


def wait_cpu_moving(pid, since, amount=0.05, limit=5.0):
    """Wait until the server has used `amount` CPU-seconds more than `since`:
    the sign that a digest is under way. Returns True if it did in time."""
    deadline = time.monotonic() + T.timeout(limit)
    while time.monotonic() < deadline:
        if server_cpu(pid) - since >= amount:
            return True
        time.sleep(0.01)  # polling /proc; there is no event to wait on
    return False


def cpu_over(pid, seconds):
    """CPU-seconds the server uses during the next `seconds` of wall time."""
    before = server_cpu(pid)
    time.sleep(seconds)  # the measurement window itself
    return server_cpu(pid) - before


def timed_reply(test, c, limit, what):
    """The next reply and the seconds it took; fails (rather than errors)
    when none arrives within limit."""
    t0 = time.monotonic()
    try:
        r = c.reply(limit)
    except socket.timeout:
        test.fail("%s: no reply within %.1f s" % (what, limit))
    return r, time.monotonic() - t0


def figure(text):
    """Measured figures go to stderr, next to the test's name."""
    sys.stderr.write("  [%s] " % text)
    sys.stderr.flush()


def tree(root):
    sparse(os.path.join(root, "big.bin"), ATTACK)
    sparse(os.path.join(root, "over.bin"), CAP + 1)
    sparse(os.path.join(root, "mid.bin"), MID)
    T.write(os.path.join(root, "small.txt"), b"0123456789abcdefghij\n")


class HashAbortTest(T.ServerTestCase):
    server_args = ("--hash-max-size", str(CAP))

    @classmethod
    def make_tree(cls, root):
        tree(root)

    @property
    def pid(self):
        return self.server.proc.pid

    def start_hash(self, c, path="big.bin", algo="MD5"):
        """HASH path and return once the server is busy digesting it."""
        c.expect("OPTS HASH " + algo, 200)
        before = server_cpu(self.pid)
        c.send("HASH " + path)
        self.assertTrue(wait_cpu_moving(self.pid, before), "HASH never started digesting")

    def assert_usable(self, c):
        self.assertEqual(c.pending(0.2), b"", "unexpected extra reply data")
        r = c.cmd("HASH small.txt", T.timeout(10))
        self.assertEqual(r.code, 213, "HASH after the abort: %s" % r)

    def test_abor_stops_hash(self):
        c = self.ctl()
        self.start_hash(c)
        c.send("ABOR")
        r1, took = timed_reply(self, c, T.timeout(1.0), "ABOR during HASH")
        after_abor = server_cpu(self.pid)
        self.assertEqual(r1.code, 426, "first reply to ABOR during HASH: %s" % r1)
        r2, _ = timed_reply(self, c, T.timeout(1.0), "ABOR's own reply")
        self.assertEqual(r2.code, 226, "second reply to ABOR during HASH: %s" % r2)
        time.sleep(0.5)  # room for work the server might still do
        spent = server_cpu(self.pid) - after_abor
        figure("426 after %.3f s; %.2f CPU-s in the 0.5 s after" % (took, spent))
        self.assertLess(spent, T.timeout(0.1), "the digest went on after ABOR")
        self.assert_usable(c)

    def test_stat_and_noop_during_hash(self):
        c = self.ctl()
        self.start_hash(c)
        seen = []
        for _ in range(2):
            c.send("STAT")
            r, _ = timed_reply(self, c, T.timeout(1.0), "STAT during HASH")
            self.assertEqual(r.code, 213, "STAT during HASH: %s" % r)
            m = re.match(r"^213 Status: hashing /big\.bin, (\d+) of (\d+) bytes", r.lines[0])
            self.assertIsNotNone(m, "STAT during HASH should report progress: %s" % r)
            done, total = int(m.group(1)), int(m.group(2))
            self.assertEqual(total, ATTACK)
            self.assertTrue(0 < done < total, str(r))
            seen.append(done)
            if len(seen) == 1:
                wait_cpu_moving(self.pid, server_cpu(self.pid), 0.02)
        self.assertGreater(seen[1], seen[0], "no progress between two STATs")
        c.send("NOOP")
        r, _ = timed_reply(self, c, T.timeout(1.0), "NOOP during HASH")
        self.assertEqual(r.code, 200, str(r))
        c.send("ABOR")
        self.assertEqual(timed_reply(self, c, T.timeout(1.0), "ABOR")[0].code, 426)
        self.assertEqual(c.reply().code, 226)
        self.assert_usable(c)

    def test_lost_control_connections_end_hash(self):
        # The reported attack: a few sessions send their commands and leave.
        # Two pipeline QUIT after HASH (it waits for HASH), two do not.
        socks = []
        before = server_cpu(self.pid)
        for i in range(4):
            c = self.ctl()
            c.expect("OPTS HASH MD5", 200)
            c.send("HASH big.bin\r\nQUIT" if i % 2 else "HASH big.bin")
            socks.append(c)
        self.assertTrue(wait_cpu_moving(self.pid, before, 0.1), "HASH never started")
        for c in socks:
            c.close()
        time.sleep(0.2)  # the server notices the hang-ups within a digest step
        spent = cpu_over(self.pid, 1.0)
        figure("%.2f CPU-s in the second after 4 clients left" % spent)
        self.assertLess(spent, T.timeout(0.15), "digests went on for clients that left")
        self.assert_alive()

    def test_quit_waits_for_hash(self):
        c = self.ctl()
        want = hashlib.md5(b"\0" * MID).hexdigest()
        c.expect("OPTS HASH MD5", 200)
        c.send("HASH mid.bin\r\nQUIT")
        r = c.reply(T.timeout(20))
        self.assertEqual(r.code, 213, "HASH with QUIT pipelined: %s" % r)
        self.assertEqual(r.lines[0], "213 MD5 0-%d %s mid.bin" % (MID, want))
        self.assertEqual(c.reply().code, 221)
        self.assertTrue(c.at_eof(T.timeout(5)))

    def test_digest_of_sparse_file(self):
        c = self.ctl()
        r = c.cmd("HASH mid.bin", T.timeout(20))
        self.assertEqual(r.lines[0], "213 SHA-256 0-%d %s mid.bin"
                         % (MID, hashlib.sha256(b"\0" * MID).hexdigest()))

    def test_over_cap_refused_before_reading(self):
        c = self.ctl()
        c.expect("OPTS HASH MD5", 200)
        before = server_cpu(self.pid)
        c.send("HASH over.bin")
        r, took = timed_reply(self, c, T.timeout(0.5), "HASH of a file over the cap")
        time.sleep(0.2)  # work after the reply would show here
        spent = server_cpu(self.pid) - before
        figure("550 after %.3f s, %.2f CPU-s" % (took, spent))
        self.assertEqual(r.code, 550, "HASH of a file over the cap: %s" % r)
        self.assertEqual(r.lines[0], "550 File too large to hash (over %d bytes)." % CAP)
        self.assertLess(spent, T.timeout(0.05))
        self.assert_usable(c)


class HashAbortForkingTest(HashAbortTest):
    server_args = HashAbortTest.server_args + ("--mode", "forking")


class HashCapEdgeTest(T.ServerTestCase):
    """The cap is inclusive: a file of exactly the cap is digested."""

    server_args = ("--hash-max-size", "1M")

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "exact.bin"), b"e" * MIB)
        T.write(os.path.join(root, "plus1.bin"), b"p" * (MIB + 1))

    def test_cap_edges(self):
        c = self.ctl()
        r = c.cmd("HASH exact.bin")
        self.assertEqual(r.lines[0], "213 SHA-256 0-%d %s exact.bin"
                         % (MIB, hashlib.sha256(b"e" * MIB).hexdigest()))
        r = c.cmd("HASH plus1.bin")
        self.assertEqual(r.lines[0], "550 File too large to hash (over %d bytes)." % MIB)
        feat = c.expect("FEAT", 211)
        self.assertTrue(any(l.strip().startswith("HASH ") for l in feat.lines), str(feat))


class HashDisabledTest(T.ServerTestCase):
    server_args = ("--hash-max-size", "0")

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "small.txt"), b"small\n")

    def test_hash_off(self):
        c = self.ctl()
        feat = c.expect("FEAT", 211)
        self.assertFalse(any(l.strip().upper().startswith("HASH") for l in feat.lines),
                         "FEAT lists HASH with --hash-max-size 0: %s" % feat)
        r = c.cmd("HASH small.txt")
        self.assertEqual(r.code, 502, "HASH with --hash-max-size 0: %s" % r)
        self.assertEqual(c.cmd("HASH").code, 502)
        # Nothing about HASH is offered: OPTS HASH is not understood either.
        self.assertEqual(c.cmd("OPTS HASH SHA-1").code, 501)
        self.assertEqual(c.cmd("NOOP").code, 200)


class HashSignalTest(unittest.TestCase):
    """SIGTERM during HASH: the digest ends at once and the server exits.
    Each test runs its own server, as it stops it."""

    mode_args = ()

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="ftpd-hashsig-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        tree(self.root)
        self.users = os.path.join(self.base, "users")
        T.write_users(self.users, [("alice", "pw")])

    def test_sigterm_during_hash(self):
        srv = T.Server(self.root, ["--users", self.users, "--hash-max-size", str(CAP)]
                       + list(self.mode_args), workdir=self.base)
        srv.start()
        self.addCleanup(srv.stop)
        c = T.Ctl(srv)
        self.addCleanup(c.close)
        c.login("alice", "pw")
        c.expect("OPTS HASH MD5", 200)
        before = server_cpu(srv.proc.pid)
        c.send("HASH big.bin")
        self.assertTrue(wait_cpu_moving(srv.proc.pid, before), "HASH never started")
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait(T.timeout(2.0))
        took = time.monotonic() - t0
        figure("exit %r after %.3f s" % (rc, took))
        self.assertEqual(rc, 0, "server still running %.1f s after SIGTERM during HASH; "
                         "stderr: %s" % (took, srv.stderr_tail()))
        try:
            r = c.reply(T.timeout(1))
            self.assertEqual(r.code, 421, "reply to HASH cut by the stop: %s" % r)
        except EOFError:
            pass


class HashSignalForkingTest(HashSignalTest):
    mode_args = ("--mode", "forking")


if __name__ == "__main__":
    T.main()
