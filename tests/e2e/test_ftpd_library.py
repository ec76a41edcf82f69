"""sockserv-ftpd on the library's connection accounting, graceful stop and
line reader.

- Forking mode, --max-clients 1: a session process killed with SIGKILL gives
  its slot back (the library counts sessions and frees the slot when it
  reaps the process), so the next client gets 220, not 421 for good.
- Forking mode, --max-pasv-per-ip 1: a session killed while it holds a
  passive listener leaves an entry of a dead process in the shared table;
  the next session from the same address still gets its 227.
- SIGTERM while a session waits for its data connection: 421 at once and a
  prompt exit, not a wait for the data timeout.
- SIGTERM while a transfer runs: the transfer gets --stop-grace seconds,
  then the library shuts the control connection's input and the transfer
  ends with 426; a second SIGTERM ends the grace at once.
- A command line over the limit that arrives in two parts while a transfer
  runs (the transfer loop only takes what has arrived) is one line: one
  500, and its tail is not served as a command of its own.

The session processes are found as the server's children in /proc; their
end is awaited on a pidfd (a bounded /proc poll where pidfd_open is
missing).
"""

import os
import select
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402


def children_of(pid):
    """The pids whose parent is pid, from /proc."""
    kids = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) S ppid ...": the fields after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.add(int(name))
    return kids


def process_state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()[0].decode()


def wait_ended(pid, limit, kill=False):
    """Wait until pid (a session process, not our child) has ended: a zombie
    or gone. With kill, SIGKILL it first. Returns False on timeout."""
    fd = None
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True  # reaped already
        except OSError:
            fd = None
    try:
        if kill:
            os.kill(pid, signal.SIGKILL)
        if fd is not None:
            r, _, _ = select.select([fd], [], [], limit)
            return bool(r)
    finally:
        if fd is not None:
            os.close(fd)
    deadline = time.monotonic() + limit
    while process_state(pid) not in (None, "Z"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # no pidfd: the only signal left is /proc
    return True


class KilledSessionTest(T.ServerTestCase):
    """--mode forking --max-clients 1: SIGKILL the session process."""

    limit_args = ("--max-clients", "1", "--max-per-ip", "1")
    server_args = ("--mode", "forking")

    def test_killed_session_gives_its_slot_back(self):
        before = children_of(self.server.proc.pid)
        c = self.ctl()
        kids = children_of(self.server.proc.pid) - before
        self.assertEqual(len(kids), 1, "session processes: %r" % kids)
        pid = kids.pop()
        self.assertTrue(wait_ended(pid, T.timeout(10), kill=True), "session %d did not die" % pid)
        c.close()
        for i in range(3):
            n = T.Ctl(self.server, greet=False)
            self.addCleanup(n.close)
            r = n.reply(T.timeout(10))
            self.assertEqual(r.code, 220, "client %d after the killed session: %s" % (i, r))
            n.login(self.user, self.password)
            self.assertEqual(n.cmd("QUIT").code, 221)
            self.assertTrue(n.at_eof(T.timeout(5)))
            # The slot of a session that ended comes back when the server
            # reaps its process, a moment after the client saw the end:
            # wait for that process too, so the next client is not early.
            for kid in children_of(self.server.proc.pid) - before:
                self.assertTrue(wait_ended(kid, T.timeout(10)), "session %d went on" % kid)


class KilledPasvHolderTest(T.ServerTestCase):
    """--mode forking --max-pasv-per-ip 1: SIGKILL a session that holds a
    passive listener; the address's share comes back."""

    server_args = ("--mode", "forking", "--max-pasv-per-ip", "1")

    def test_killed_holder_gives_its_share_back(self):
        before = children_of(self.server.proc.pid)
        a = self.ctl()
        a.expect("PASV", 227)
        kids = children_of(self.server.proc.pid) - before
        self.assertEqual(len(kids), 1, "session processes: %r" % kids)
        pid = kids.pop()
        # While a holds it, the share is taken.
        b = self.ctl()
        self.assertEqual(b.cmd("PASV").code, 425)
        self.assertTrue(wait_ended(pid, T.timeout(10), kill=True), "session %d did not die" % pid)
        a.close()
        c = self.ctl()
        self.assertEqual(c.cmd("PASV").code, 227, "PASV in a new session after the holder "
                         "was killed")
        # The share is counted again: c holds it now.
        self.assertEqual(b.cmd("PASV").code, 425)


class ServerPerTest(unittest.TestCase):
    """Each test runs its own server (and may stop it); a huge file to
    stall a transfer with."""

    mode_args = ()

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="ftpd-stop-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        os.mkdir(self.root)
        # Sparse: far more than the socket buffers hold, created at once.
        with open(os.path.join(self.root, "huge.bin"), "wb") as f:
            f.truncate(1 << 30)
        self.users = os.path.join(self.base, "users")
        T.write_users(self.users, [("alice", "pw")])

    def start(self, *extra):
        srv = T.Server(self.root, ["--users", self.users, "--data-timeout", "60"]
                       + list(self.mode_args) + list(extra), workdir=self.base)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def session(self, srv):
        c = T.Ctl(srv)
        self.addCleanup(c.close)
        c.login("alice", "pw")
        c.expect("TYPE I", 200)
        return c

    def running_transfer(self, srv):
        c = self.session(srv)
        get = c.data("EPSV")
        c.expect("RETR huge.bin", 150, 125)
        d = get()
        self.addCleanup(d.close)
        self.assertTrue(d.recv(65536))
        return c, d  # d is not read any more: the transfer stalls, running


class StopTest(ServerPerTest):
    def assert_exits(self, srv, limit, what):
        start = time.monotonic()
        rc = srv.wait(T.timeout(limit))
        self.assertEqual(rc, 0, "%s: server exit status %r after %.1f s; stderr:\n%s"
                         % (what, rc, time.monotonic() - start, srv.stderr_tail()))

    def test_stop_while_waiting_for_data_connection(self):
        srv = self.start()
        c = self.session(srv)
        c.expect("PASV", 227)  # a listener nobody connects to
        c.send("RETR huge.bin")
        # STAT is answered while the data connection is awaited: the session
        # is in that wait now.
        self.assertEqual(c.cmd("STAT").code, 213)
        srv.signal(signal.SIGTERM)
        r = c.reply(T.timeout(5))
        self.assertEqual(r.code, 421, "reply to a RETR waiting for its data connection: %s" % r)
        self.assertTrue(c.at_eof(T.timeout(5)), "session not closed after 421")
        self.assert_exits(srv, 5, "a session waiting for its data connection")

    def test_transfer_cut_at_grace_end(self):
        srv = self.start("--stop-grace", "1")
        c, _ = self.running_transfer(srv)
        idle = self.session(srv)
        start = time.monotonic()
        srv.signal(signal.SIGTERM)
        self.assertEqual(idle.reply(T.timeout(5)).code, 421, "idle session on stop")
        r = c.reply(T.timeout(10))
        took = time.monotonic() - start
        self.assertEqual(r.code, 426, "the transfer at the grace's end: %s" % r)
        self.assertGreaterEqual(took, 0.9, "the transfer was not given its grace")
        self.assertTrue(c.at_eof(T.timeout(5)), "session not closed after the cut")
        self.assert_exits(srv, 10, "after the cut")

    def test_second_signal_cuts_at_once(self):
        srv = self.start()  # the default grace: 30 s
        c, _ = self.running_transfer(srv)
        idle = self.session(srv)
        srv.signal(signal.SIGTERM)
        # The idle session's 421 shows that the stop has begun.
        self.assertEqual(idle.reply(T.timeout(5)).code, 421, "idle session on stop")
        start = time.monotonic()
        srv.signal(signal.SIGTERM)
        r = c.reply(T.timeout(10))
        self.assertEqual(r.code, 426, "the transfer after a second SIGTERM: %s" % r)
        self.assertLess(time.monotonic() - start, T.timeout(10), "the second SIGTERM waited")
        self.assert_exits(srv, 10, "after a second SIGTERM")


class LongLineDuringTransferTest(ServerPerTest):

    def test_long_line_in_two_parts(self):
        srv = self.start()
        c, _ = self.running_transfer(srv)
        c.send(b"A" * 6000)
        # No event tells that the server has read the first part; a pause
        # makes it likely that it reads it alone, in which case the line's
        # head is dropped before its tail arrives. The test holds either way.
        time.sleep(0.3)
        c.send(b"NOOP\r\n")
        r = c.reply(T.timeout(5))
        self.assertEqual(r.code, 500, "reply to a 6 KB line: %s" % r)
        r = c.cmd("STAT")
        self.assertEqual(r.code, 213, "the tail of the long line was served as a command, "
                         "or STAT was not answered: %s" % r)
        c.expect("ABOR", 426)
        self.assertEqual(c.reply(T.timeout(5)).code, 226)
        self.assertEqual(c.cmd("NOOP").code, 200)


class StopForkingTest(StopTest):
    mode_args = ("--mode", "forking")


if __name__ == "__main__":
    T.main()
