"""sockserv-ftpd: findings of a review of the layer split and the move
onto the library's limits, stop and line reader.

- REIN before a login does not restart the login deadline: a client that
  never logs in cannot hold its session by sending REIN now and then.
- An unused passive listener closed at the data timeout does not restart
  the idle timeout: a silent session ends --idle-timeout after its last
  command, not that plus --data-timeout.
- A command line without an end is read for at most 1 MiB, then the
  session ends: it does not cost the server reading until the idle timeout.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402


class ReinLoginDeadlineTest(T.ServerTestCase):
    server_args = ("--login-timeout", "2")

    def test_rein_before_login_keeps_deadline(self):
        c = self.ctl(login=False)
        start = time.monotonic()
        closed = False
        # Bounded: REIN every half second for at most 8 s; the session must
        # end at the 2 s login deadline set at connect.
        while time.monotonic() - start < T.timeout(8):
            c.send(b"REIN\r\n")
            r = c.reply(tmo=T.timeout(5))
            if r.code == 421:
                closed = True
                break
            self.assertEqual(r.code, 220, str(r))
            time.sleep(0.5)
        self.assertTrue(closed, "REIN restarted the login deadline")
        self.assertLess(time.monotonic() - start, T.timeout(4))


class IdleAfterPasvTest(T.ServerTestCase):
    server_args = ("--idle-timeout", "3", "--data-timeout", "2")

    def test_pasv_expiry_keeps_idle_deadline(self):
        c = self.ctl()
        c.expect("PASV", 227)
        start = time.monotonic()
        r = c.reply(tmo=T.timeout(10))
        took = time.monotonic() - start
        self.assertEqual(r.code, 421, str(r))
        # Idle since the PASV reply: 3 s, not 2 s + 3 s.
        self.assertLess(took, 3 + 1.5 * T.SLOW, "idle timeout restarted by the listener's expiry")


class EndlessLineTest(T.ServerTestCase):
    server_args = ("--idle-timeout", "300")

    def test_endless_line_ends_the_session(self):
        c = self.ctl()
        junk = b"x" * 65536
        start = time.monotonic()
        sent = 0
        closed = False
        # Bounded: at most 8 MiB or the time limit; the server must hang up
        # after about 1 MiB, long before the idle timeout.
        while sent < 8 * 1024 * 1024 and time.monotonic() - start < T.timeout(20):
            try:
                c.sock.sendall(junk)
            except OSError:
                closed = True
                break
            sent += len(junk)
        if not closed:
            c.sock.settimeout(T.timeout(10))
            try:
                closed = c.sock.recv(65536) == b""
            except (ConnectionResetError, socket.timeout):
                closed = True
        self.assertTrue(closed, "an endless line kept the session open")
        # How much the client could send says little (loopback's buffers
        # take megabytes before the server reads a byte): the server says
        # where it stopped reading.
        deadline = time.monotonic() + T.timeout(10)
        text = "a command line went on past 1048576 bytes"
        while text not in self.server.stderr_tail(200000) and time.monotonic() < deadline:
            time.sleep(0.05)  # the log is a file: no event to wait on
        self.assertIn(text, self.server.stderr_tail(200000))

    def test_long_line_then_command(self):
        c = self.ctl()
        c.send(b"NOOP " + b"y" * 200000 + b"\r\n")
        self.assertEqual(c.reply(tmo=T.timeout(10)).code, 500)
        c.expect("NOOP", 200)


if __name__ == "__main__":
    unittest.main()
