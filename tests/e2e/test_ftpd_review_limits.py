"""sockserv-ftpd: the default session limits.

Without --max-clients / --max-per-ip the server takes 20 parallel downloads
from one address (clients such as lftp's pget open several sessions), and a
flood of idle connections from one address is held at 50 sessions: the rest
get 421 at once, and the server serves fresh sessions afterwards.
"""

import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

DEFAULT_PER_IP = 50


class DefaultLimitsTest(T.ServerTestCase):
    limit_args = ()

    @classmethod
    def make_tree(cls, root):
        cls.data = os.urandom(256 * 1024)
        T.write(os.path.join(root, "file.bin"), cls.data)

    def test_twenty_parallel_downloads(self):
        results = []
        errors = []

        def one():
            try:
                f = T.ftp_connect(self.server, self.user, self.password)
                try:
                    results.append(T.retr_bytes(f, "file.bin"))
                finally:
                    T.quit_quietly(f)
            except Exception as e:  # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(60))
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 20)
        self.assertTrue(all(r == self.data for r in results))


class DefaultLimitsFloodTest(T.ServerTestCase):
    # A server of its own: the sessions of other tests never share its count.
    limit_args = ()

    def test_idle_flood_from_one_address(self):
        socks = []
        try:
            for _ in range(DEFAULT_PER_IP + 100):
                s = socket.create_connection(self.server.address, timeout=T.timeout(10))
                socks.append(s)
            codes = [first_reply_code(s) for s in socks]
            self.assertEqual(codes.count(b"220"), DEFAULT_PER_IP)
            self.assertEqual(codes.count(b"421"), 100)
        finally:
            for s in socks:
                s.close()
        # The closed sessions give their slots back as the server sees them
        # end; wait (bounded) until a new connection is greeted.
        greeted = None
        deadline = time.monotonic() + T.timeout(10)
        while time.monotonic() < deadline:
            with T.Ctl(self.server) as c:
                greeted = c.greeting
            if greeted.code == 220:
                break
            time.sleep(0.05)
        self.assertIsNotNone(greeted)
        self.assertEqual(greeted.code, 220, "no fresh session greeted after the flood: %s"
                         % greeted)
        self.assert_alive()


def first_reply_code(sock):
    """The code of the first reply line on sock: read up to its end of line
    (or the end of the stream), however the bytes are split into segments."""
    buf = b""
    deadline = time.monotonic() + T.timeout(10)
    while b"\n" not in buf and len(buf) < 4096:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        buf += chunk
    return buf[:3]


if __name__ == "__main__":
    T.main()
