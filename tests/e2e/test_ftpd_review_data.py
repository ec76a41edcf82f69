"""sockserv-ftpd: data connections and uploads under failure.

A full file system (a small tmpfs, when this runs as root and may mount one)
answers 452 and leaves no partial or temporary file, and an append is undone;
PASV twice, PASV without a connection, a connection from a foreign address,
PORT to a closed port and a client that drops its control connection
mid-transfer all leave the server's descriptor count flat.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def socket_count(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:  # closed meanwhile
            pass
    return n


def wait_fds(pid, limit, tmo):
    """The server's descriptor count once it is at most limit (sessions end
    asynchronously), or the last count seen when tmo runs out."""
    deadline = time.monotonic() + tmo
    n = fd_count(pid)
    while n > limit and time.monotonic() < deadline:
        time.sleep(0.05)
        n = fd_count(pid)
    return n


class FullDiskTest(T.ServerTestCase):
    user = None
    users = None
    anonymous = True
    server_args = ("--anonymous-modify",)

    @classmethod
    def make_tree(cls, root):
        cls.full = os.path.join(root, "full")
        os.mkdir(cls.full)
        cls.mounted = False
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", cls.full],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        cls.mounted = r.returncode == 0

    @classmethod
    def tearDownClass(cls):
        if cls.mounted:
            subprocess.run(["umount", cls.full], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
        super().tearDownClass()

    def setUp(self):
        if not self.mounted:
            self.skipTest("cannot mount a small tmpfs here")
        for n in os.listdir(self.full):
            os.unlink(os.path.join(self.full, n))
        T.write(os.path.join(self.full, "exist.txt"), b"old\n")

    def upload(self, c, cmd):
        get = c.data("PASV")
        c.expect(cmd, 150, 125)
        d = get()
        try:
            d.sendall(os.urandom(1024 * 1024))
        except OSError:
            pass
        d.close()
        return c.reply(T.timeout(20))

    def test_full_disk(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        for cmd in ("STOR full/new.bin", "STOR full/exist.txt", "APPE full/exist.txt",
                    "APPE full/new2.bin"):
            with self.subTest(cmd=cmd):
                r = self.upload(c, cmd)
                self.assertIn(r.code, (451, 452, 552), str(r))
                self.assertEqual(sorted(os.listdir(self.full)), ["exist.txt"])
                self.assertEqual(T.read(os.path.join(self.full, "exist.txt")), b"old\n")
        c.expect("CWD full", 250)
        r = self.upload(c, "STOU")
        self.assertIn(r.code, (451, 452, 552), str(r))
        self.assertEqual(sorted(os.listdir(self.full)), ["exist.txt"])
        self.assertEqual(c.cmd("NOOP").code, 200)


class DataConnectionTest(T.ServerTestCase):
    server_args = ("--data-timeout", "1")

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "hello.txt"), b"hello world\n")
        T.write(os.path.join(root, "big.bin"), os.urandom(8 * 1024 * 1024))

    def baseline(self):
        # One logged-in session that has done nothing yet, so lazily opened
        # descriptors (the users file, logs) are already counted. Sessions
        # of earlier tests end asynchronously: the count is taken once the
        # server holds no socket but its listener and this session's control
        # connection. A session's socket is the last thing of it to close
        # (the library closes it after the handler has freed the session),
        # so by then nothing else of theirs is left either.
        self.ctl().cmd("NOOP")
        pid = self.server.proc.pid
        deadline = time.monotonic() + T.timeout(10)
        while socket_count(pid) > 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(socket_count(pid), 2, "earlier sessions still open")
        return pid, fd_count(pid)

    def test_pasv_twice_and_many(self):
        pid, base = self.baseline()
        c = self.ctl()
        c.expect("PASV", 227)
        c.expect("PASV", 227)
        one = fd_count(pid)
        for _ in range(100):
            c.expect("PASV", 227)
            c.expect("EPSV", 229)
        self.assertLessEqual(fd_count(pid), one)
        get = c.data("EPSV")
        c.expect("RETR hello.txt", 150, 125)
        self.assertEqual(T.recv_all(get()), b"hello world\r\n")
        self.assertEqual(c.reply().code, 226)
        c.close()
        self.assertLessEqual(wait_fds(pid, base, T.timeout(5)), base)

    def test_pasv_nobody_connects(self):
        pid, base = self.baseline()
        c = self.ctl()
        c.expect("PASV", 227)
        r = c.cmd("RETR hello.txt", T.timeout(10))
        self.assertEqual(r.code, 425, str(r))
        self.assertEqual(c.cmd("NOOP").code, 200)
        c.close()
        self.assertLessEqual(wait_fds(pid, base, T.timeout(5)), base)

    @unittest.skipUnless(T.can_bind("127.0.0.2"), "127.0.0.2 not available")
    def test_foreign_data_connection_refused(self):
        c = self.ctl()
        r = c.expect("PASV", 227)
        n = [int(x) for x in re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)",
                                       r.lines[0]).groups()]
        port = n[4] * 256 + n[5]
        bad = socket.socket()
        self.addCleanup(bad.close)
        bad.bind(("127.0.0.2", 0))
        bad.connect(("127.0.0.1", port))
        good = socket.create_connection(("127.0.0.1", port), timeout=T.timeout(10))
        c.expect("RETR hello.txt", 150, 125)
        self.assertEqual(T.recv_all(good), b"hello world\r\n")
        self.assertEqual(c.reply().code, 226)
        bad.settimeout(T.timeout(5))
        try:
            self.assertEqual(bad.recv(100), b"")
        except ConnectionResetError:
            pass

    def test_port_to_closed_port(self):
        c = self.ctl()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        c.expect("PORT 127,0,0,1,%d,%d" % (port >> 8, port & 255), 200)
        self.assertEqual(c.cmd("RETR hello.txt", T.timeout(10)).code, 425)
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_control_closed_mid_transfer(self):
        pid, base = self.baseline()
        for i in range(40):
            c = T.Ctl(self.server)
            c.login(self.user, self.password)
            c.expect("TYPE I", 200)
            d = c.pasv()
            c.expect("RETR big.bin", 150, 125)
            d.recv(1000)
            if i % 2:
                d.close()
                c.close()
            else:
                c.close()
                d.close()
        self.assertLessEqual(wait_fds(pid, base, T.timeout(10)), base)
        self.assert_alive()

    def test_data_closed_mid_retr(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        for _ in range(3):
            d = c.pasv()
            c.expect("RETR big.bin", 150, 125)
            d.recv(1000)
            T.reset_close(d)
            self.assertEqual(c.reply(T.timeout(10)).code, 426)
            self.assertEqual(c.cmd("NOOP").code, 200)


class SlowDataTimeoutTest(T.ServerTestCase):
    server_args = ("--data-timeout", "30")

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "hello.txt"), b"hello world\n")

    def baseline(self):
        return DataConnectionTest.baseline(self)

    def test_abor_before_data_connection(self):
        c = self.ctl()
        for setup in ("PASV", "EPSV"):
            with self.subTest(setup=setup):
                c.expect(setup, 227, 229)
                c.send("RETR hello.txt")
                c.send("ABOR")
                start = time.monotonic()
                self.assertEqual(c.reply().code, 426)
                self.assertEqual(c.reply().code, 226)
                self.assertLess(time.monotonic() - start, T.timeout(5))
                self.assertEqual(c.cmd("NOOP").code, 200)
                self.assertEqual(c.pending(0.2), b"")

    def test_commands_while_waiting_for_data(self):
        c = self.ctl()
        r = c.expect("PASV", 227)
        n = [int(x) for x in re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)",
                                       r.lines[0]).groups()]
        c.send("RETR hello.txt")
        self.assertEqual(c.cmd("NOOP").code, 200)
        r = c.cmd("STAT")
        self.assertEqual(r.code, 213, str(r))
        self.assertIn("hello.txt", r.lines[0])
        c.send("PWD")  # kept until the transfer's final reply
        d = socket.create_connection(("127.0.0.1", n[4] * 256 + n[5]), timeout=T.timeout(10))
        self.assertEqual(c.reply().code, 150)
        self.assertEqual(T.recv_all(d), b"hello world\r\n")
        self.assertEqual(c.reply().code, 226)
        self.assertEqual(c.reply().code, 257)
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_control_closed_while_waiting_for_data(self):
        # The server waits up to the data timeout for the data connection;
        # a client that leaves meanwhile ends the wait at once.
        pid, base = self.baseline()
        for i in range(20):
            c = T.Ctl(self.server)
            c.login(self.user, self.password)
            if i % 2:
                c.expect("PASV", 227)
            else:
                ls = c.listen_port()
                ls.close()  # nobody accepts: the connect fails or waits
            c.send("RETR hello.txt")
            c.close()
        self.assertLessEqual(wait_fds(pid, base, T.timeout(3)), base)
        self.assert_alive()


if __name__ == "__main__":
    T.main()
