"""sockserv-ftpd: one client address cannot hoard the passive port range.

A PASV/EPSV listener is held until the session's next data command, so one
address with many sessions could hold every port of --pasv-ports and leave
other addresses with 425. Each address may hold its share (--max-pasv-per-ip,
by default a quarter of the range, rounded up); the count is shared by
threads and forked session processes, so both modes are tested. The other
address is 127.0.0.2 (the test is skipped where it cannot be bound).
"""

import os
import random
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

PORTS = 8
SHARE = (PORTS + 3) // 4  # the default of --max-pasv-per-ip for this range
OTHER = "127.0.0.2"
REFUSAL = "425 Too many passive connections from your address."


def free_range(n):
    """n consecutive loopback ports that are free now."""
    rnd = random.Random()
    for _ in range(200):
        lo = rnd.randrange(20000, 60000)
        socks = []
        try:
            for p in range(lo, lo + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return lo, lo + n - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise unittest.SkipTest("no free port range")


def passive_port(r):
    """The port of a 227 or 229 reply."""
    m = re.search(r"\|\|\|(\d+)\|", r.lines[0])
    if m:
        return int(m.group(1))
    n = [int(x) for x in re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r.lines[0]).groups()]
    return n[4] * 256 + n[5]


class PasvShareTest(T.ServerTestCase):
    mode_args = ()

    @classmethod
    def setUpClass(cls):
        cls.lo, cls.hi = free_range(PORTS)
        cls.server_args = ("--pasv-ports", "%d-%d" % (cls.lo, cls.hi)) + cls.mode_args
        super().setUpClass()

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "f.txt"), b"data\n")

    def retr_from(self, c, port, source):
        """RETR f.txt over the passive port already announced to c."""
        d = socket.create_connection(("127.0.0.1", port), timeout=T.timeout(10),
                                     source_address=(source, 0))
        c.expect("TYPE I", 200)
        c.expect("RETR f.txt", 150, 125)
        self.assertEqual(T.recv_all(d), b"data\n")
        self.assertEqual(c.reply().code, 226)

    def test_one_address_holds_only_its_share(self):
        if not T.can_bind(OTHER):
            self.skipTest("cannot bind %s" % OTHER)
        # The hoarder: one session per port of the range, each with a
        # passive listener it never uses.
        granted, refused = [], []
        for i in range(PORTS):
            c = self.ctl()
            r = c.cmd("EPSV" if i % 2 else "PASV")
            if r.code in (227, 229):
                port = passive_port(r)
                self.assertTrue(self.lo <= port <= self.hi, str(r))
                granted.append(c)
            else:
                self.assertEqual(r.lines[0], REFUSAL, "PASV beyond the share")
                refused.append(c)
        # Another address still gets a port, and its transfer works.
        other = self.ctl(source=OTHER)
        r = other.cmd("PASV")
        sys.stderr.write("  [hoarder: %d x 227/229, %d x 425; other address: %s] "
                         % (len(granted), len(refused), r.lines[0][:3]))
        self.assertEqual(r.code, 227, "PASV from another address while one address "
                         "holds listeners: %s" % r)
        self.retr_from(other, passive_port(r), OTHER)
        f = self.ftp("EPSV", source=OTHER)
        self.assertEqual(T.retr_bytes(f, "f.txt"), b"data\n")
        self.assertEqual(len(granted), SHARE, "listeners one address may hold")
        self.assertEqual(len(refused), PORTS - SHARE)
        self.assertIn("PASV refused", self.server.stderr_tail(), "the refusal is logged")

        # A new PASV in a session that holds a listener replaces it.
        r = granted[0].expect("PASV", 227)
        # A transfer gives its port back before its 150 reply.
        self.retr_from(granted[0], passive_port(r), "127.0.0.1")
        r = refused[0].cmd("EPSV")
        self.assertEqual(r.code, 229, "EPSV after a transfer gave a port back: %s" % r)
        self.assertEqual(refused[1].cmd("PASV").lines[0], REFUSAL)
        # So does the end of a session (it may lag the 221 a little: the
        # session is torn down after its socket closes).
        granted[1].expect("QUIT", 221)
        self.assertTrue(granted[1].at_eof(T.timeout(5)))
        deadline = time.monotonic() + T.timeout(5)
        while True:
            r = refused[1].cmd("PASV")
            if r.code == 227 or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # waiting for the ended session's teardown; no event
        self.assertEqual(r.code, 227, "PASV after a session with a listener ended: %s" % r)
        # REIN forgets the listener, and its count with it.
        refused[1].expect("REIN", 220)
        refused[1].login(self.user, self.password)
        self.assertEqual(refused[2].cmd("PASV").code, 227)


class PasvShareForkingTest(PasvShareTest):
    mode_args = ("--mode", "forking")


class PasvShareOptionTest(T.ServerTestCase):
    """--max-pasv-per-ip sets the share, also for listeners on any free port
    (no --pasv-ports); PORT gives a held listener back."""

    server_args = ("--max-pasv-per-ip", "1")

    def test_explicit_share(self):
        a = self.ctl()
        b = self.ctl()
        a.expect("EPSV", 229)
        self.assertEqual(b.cmd("PASV").lines[0], REFUSAL)
        a.expect("PORT 127,0,0,1,%d,%d" % (40000 >> 8, 40000 & 255), 200)
        b.expect("PASV", 227)


if __name__ == "__main__":
    T.main()
