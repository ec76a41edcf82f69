"""sockserv-ftpd: the review's protocol checks in forking mode and over IPv6.

A subset of the other review tests, run against a server in --mode forking
and one listening on ::1: REST is forgotten, EPSV names the protocol it
serves, a dripping line ends at the idle timeout, ABOR right after 150 is
426 then 226, and the session goes on.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402


class ModeChecks:
    """Mixed into a ServerTestCase; `proto` is the EPSV protocol served."""

    proto = "1"

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "hello.txt"), b"hello world\n")
        T.write(os.path.join(root, "big.bin"), os.urandom(4 * 1024 * 1024))

    def retr(self, c, path):
        get = c.data("EPSV")
        c.expect("RETR " + path, 150, 125)
        data = T.recv_all(get())
        self.assertEqual(c.reply().code, 226)
        return data

    def test_rest_forgotten(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        c.expect("REST 6", 350)
        c.expect("NOOP", 200)
        self.assertEqual(self.retr(c, "hello.txt"), b"hello world\n")
        c.expect("REST 6", 350)
        self.assertEqual(self.retr(c, "hello.txt"), b"world\n")

    def test_epsv_protocol(self):
        c = self.ctl()
        other = "2" if self.proto == "1" else "1"
        for arg in ("3", other):
            r = c.cmd("EPSV " + arg)
            self.assertEqual(r.code, 522, str(r))
            self.assertIn("(%s)" % self.proto, r.lines[0])
        self.assertEqual(c.cmd("EPSV " + self.proto).code, 229)

    def test_abor_after_150(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        d = c.epsv()
        c.expect("RETR big.bin", 150, 125)
        c.send("ABOR")
        # 426 for RETR then 226 for ABOR, or (the file already sent) 226
        # for RETR then 225 for ABOR: two replies either way.
        codes = [c.reply(T.timeout(10)).code, c.reply(T.timeout(10)).code]
        d.close()
        self.assertIn(codes, ([426, 226], [226, 225]))
        self.assertEqual(c.cmd("NOOP").code, 200)
        self.assertEqual(c.pending(0.2), b"")

    def test_slow_drip(self):
        c = self.ctl(login=False)
        got = b""
        start = time.monotonic()
        for _ in range(int(T.timeout(8) / 0.3)):
            try:
                c.sock.sendall(b"N")
            except OSError:
                break
            r, _, _ = T.select.select([c.sock], [], [], 0.3)
            if r:
                chunk = c.sock.recv(4096)
                got += chunk
                if not chunk:
                    break
        self.assertIn(b"421", got)
        self.assertLess(time.monotonic() - start, T.timeout(8))
        self.assert_alive()


class ForkingModeTest(ModeChecks, T.ServerTestCase):
    server_args = ("--mode", "forking", "--idle-timeout", "2")


@unittest.skipUnless(T.ipv6_available(), "::1 not available")
class IPv6Test(ModeChecks, T.ServerTestCase):
    listen = "[::1]:0"
    proto = "2"
    server_args = ("--idle-timeout", "2")


if __name__ == "__main__":
    T.main()
