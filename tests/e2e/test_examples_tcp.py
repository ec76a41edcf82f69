#!/usr/bin/env python3
"""End-to-end tests of tcp-upper-server (every mode) and tcp-upper-client."""
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_examples_common import (TSAN_SIGNAL_RETRY, Server, free_port,  # noqa: E402
                                  has_ipv6_loopback, limit, run, run_pty, upper)

MODES = ["sync", "threading", "forking", "pool"]
MAX_LINE = 65536
TOO_LONG = b"error: line longer than 65536 bytes\n"
# The graceful-stop tests: clients left idle, the grace they get, and what
# the stop may take beyond it (the cut, the handlers' ends, reaping; under
# ThreadSanitizer a signal may need sending again after TSAN_SIGNAL_RETRY).
IDLE_CLIENTS = 3
GRACE = 1.0
STOP_SLACK = 4.0 + TSAN_SIGNAL_RETRY

LINES = [b"hello world", b"", "grüße, déjà vu".encode(), b"\x00nul\x00 and \xff\xfe",
         bytes(b for b in range(256) if b != 0x0A), b"x" * 1000]


class Conn:
    """A raw TCP connection that reads replies line by line."""

    def __init__(self, srv, timeout=limit(10.0)):
        self.sock = socket.create_connection(srv.sockaddr(), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_to_end(self):
        data = self.buf
        self.buf = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_signal_taken(pid, sig, timeout=limit(10.0)):
    """Wait until no thread of process pid has sig pending any more (checked
    every 5 ms, at most timeout seconds). Two signals of one kind sent before
    the process takes the first merge into one; nothing else tells when it
    has taken it."""
    bit = 1 << (sig - 1)
    deadline = time.monotonic() + timeout
    while True:
        pending = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith(("SigPnd:", "ShdPnd:")):
                            pending |= int(line.split()[1], 16)
            except FileNotFoundError:
                continue  # a thread that has just ended
        if not pending & bit:
            return
        if time.monotonic() > deadline:
            raise AssertionError("signal %d still pending after %gs" % (sig, timeout))
        time.sleep(0.005)


class TcpServerTest(unittest.TestCase):

    def check_lines(self, srv):
        with Conn(srv) as c:
            for line in LINES:
                c.send(line + b"\n")
                self.assertEqual(c.readline(), upper(line) + b"\n")

    def test_every_mode_upper_cases_lines_byte_exact(self):
        for mode in MODES:
            with self.subTest(mode=mode), \
                    Server("tcp-upper-server", ["127.0.0.1:0", "--mode", mode]) as srv:
                self.check_lines(srv)
                self.check_lines(srv)  # a second connection after the first
                self.assertEqual(srv.stop(), 0, srv.stderr())
                self.assertEqual(srv.stderr(), b"")

    def test_every_mode_serves_concurrent_connections(self):
        for mode in MODES:
            with self.subTest(mode=mode), \
                    Server("tcp-upper-server", ["127.0.0.1:0", "--mode", mode]) as srv:
                errors = []

                def client(n):
                    try:
                        with Conn(srv) as c:
                            for i in range(20):
                                msg = b"client %d line %d" % (n, i)
                                c.send(msg + b"\n")
                                if c.readline() != upper(msg) + b"\n":
                                    errors.append(msg)
                    except OSError as e:
                        errors.append(e)

                threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                self.assertEqual(errors, [])
                self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_modes_other_than_sync_serve_two_open_connections_at_once(self):
        # Both connections stay open: the second is answered while the
        # first waits, which a sync server cannot do.
        for mode in ["threading", "forking", "pool"]:
            with self.subTest(mode=mode), \
                    Server("tcp-upper-server", ["127.0.0.1:0", "--mode", mode]) as srv:
                with Conn(srv) as a, Conn(srv) as b:
                    a.send(b"first\n")
                    self.assertEqual(a.readline(), b"FIRST\n")
                    b.send(b"second\n")
                    self.assertEqual(b.readline(), b"SECOND\n")
                    a.send(b"third\n")
                    self.assertEqual(a.readline(), b"THIRD\n")
                self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_framing_many_lines_in_one_send_and_a_line_in_many(self):
        with Server("tcp-upper-server", ["127.0.0.1:0"]) as srv, Conn(srv) as c:
            lines = [b"line %d" % i for i in range(200)]
            c.send(b"".join(line + b"\n" for line in lines))
            for line in lines:
                self.assertEqual(c.readline(), upper(line) + b"\n")
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in b"one byte at a time\n":
                c.send(bytes([byte]))
            self.assertEqual(c.readline(), b"ONE BYTE AT A TIME\n")
            # the split falls inside a line and between lines
            c.send(b"ab\ncd")
            c.send(b"ef\ngh\n")
            self.assertEqual([c.readline() for _ in range(3)], [b"AB\n", b"CDEF\n", b"GH\n"])

    def test_last_line_without_newline_is_answered(self):
        with Server("tcp-upper-server", ["127.0.0.1:0"]) as srv, Conn(srv) as c:
            c.send(b"full\npartial")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.read_to_end(), b"FULL\nPARTIAL\n")

    def test_line_length_limit(self):
        with Server("tcp-upper-server", ["127.0.0.1:0"]) as srv:
            with Conn(srv) as c:
                longest = b"a" * MAX_LINE
                c.send(longest + b"\n")
                self.assertEqual(c.readline(), b"A" * MAX_LINE + b"\n")
                c.send(b"still here\n")
                self.assertEqual(c.readline(), b"STILL HERE\n")
            for extra in (1, 70000, 1000000):
                with self.subTest(length=MAX_LINE + extra), Conn(srv) as c:
                    c.send(b"ok\n")
                    self.assertEqual(c.readline(), b"OK\n")
                    sender = threading.Thread(
                        target=self.send_ignoring_reset, args=(c, b"b" * (MAX_LINE + extra)))
                    sender.start()
                    # the error line, then the server closes the connection
                    self.assertEqual(c.readline(), TOO_LONG)
                    self.assertEqual(c.read_to_end(), b"")
                    sender.join(10)
            # and it goes on serving others
            self.check_lines(srv)
            self.assertEqual(srv.stop(), 0, srv.stderr())

    @staticmethod
    def send_ignoring_reset(conn, data):
        try:
            conn.send(data + b"\n")
        except OSError:
            pass  # the server may close before taking it all

    @unittest.skipUnless(has_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6(self):
        with Server("tcp-upper-server", ["[::1]:0", "--mode", "threading"]) as srv:
            self.assertTrue(srv.address.startswith("[::1]:"), srv.address)
            self.check_lines(srv)
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_sigterm_and_sigint_stop_every_mode(self):
        for mode in MODES:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with self.subTest(mode=mode, signal=sig), \
                        Server("tcp-upper-server", ["127.0.0.1:0", "--mode", mode]) as srv:
                    with Conn(srv) as c:
                        c.send(b"x\n")
                        self.assertEqual(c.readline(), b"X\n")
                    self.assertEqual(srv.stop(sig), 0, srv.stderr())

    def test_connected_client_is_served_during_the_grace(self):
        for mode in ["threading", "forking", "pool"]:
            with self.subTest(mode=mode), \
                    Server("tcp-upper-server", ["127.0.0.1:0", "--mode", mode]) as srv:
                with Conn(srv) as c:
                    c.send(b"before\n")
                    self.assertEqual(c.readline(), b"BEFORE\n")
                    t0 = time.monotonic()
                    srv.proc.send_signal(signal.SIGTERM)
                    # the open connection is still served (default grace: 5 s)
                    c.send(b"after\n")
                    self.assertEqual(c.readline(), b"AFTER\n")
                # once it hangs up, the server exits cleanly, before the grace ends
                self.assertEqual(srv.wait(), 0, srv.stderr())
                self.assertLess(time.monotonic() - t0, 5.0 + STOP_SLACK)
                with self.assertRaises(OSError):
                    socket.create_connection(srv.sockaddr(), timeout=limit(2)).close()

    def test_sigterm_with_idle_clients_exits_after_the_grace(self):
        for mode in ["threading", "forking", "pool"]:
            with self.subTest(mode=mode), Server(
                    "tcp-upper-server",
                    ["127.0.0.1:0", "--mode", mode, "--grace", str(GRACE)]) as srv:
                conns = [Conn(srv) for _ in range(IDLE_CLIENTS)]
                try:
                    for i, c in enumerate(conns):
                        c.send(b"client %d\n" % i)
                        self.assertEqual(c.readline(), b"CLIENT %d\n" % i)
                    t0 = time.monotonic()
                    self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.stderr())
                    took = time.monotonic() - t0
                    # the idle clients had their grace, and no more than that
                    self.assertGreaterEqual(took, GRACE * 0.9)
                    self.assertLess(took, GRACE + STOP_SLACK)
                    for c in conns:
                        self.assertEqual(c.read_to_end(), b"")  # end of stream
                finally:
                    for c in conns:
                        c.close()
                self.assertEqual(srv.stderr(), b"")

    def test_second_signal_cuts_at_once(self):
        for mode in ["threading", "forking", "pool"]:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with self.subTest(mode=mode, signal=sig), Server(
                        "tcp-upper-server",
                        ["127.0.0.1:0", "--mode", mode, "--grace", "600"]) as srv, \
                        Conn(srv) as c:
                    c.send(b"x\n")
                    self.assertEqual(c.readline(), b"X\n")
                    srv.proc.send_signal(sig)
                    c.send(b"y\n")  # served: the first signal only stopped accepting
                    self.assertEqual(c.readline(), b"Y\n")
                    self.assertIsNone(srv.proc.poll())
                    wait_signal_taken(srv.proc.pid, sig)  # else the two are one
                    t0 = time.monotonic()
                    self.assertEqual(srv.stop(sig), 0, srv.stderr())
                    self.assertLess(time.monotonic() - t0, STOP_SLACK)
                    self.assertEqual(c.read_to_end(), b"")

    def test_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            r = run("tcp-upper-server", ["127.0.0.1:%d" % port], timeout=limit(10))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr.decode(),
                         "tcp-upper-server: cannot listen on 127.0.0.1:%d: "
                         "Address already in use\n" % port)


class TcpClientTest(unittest.TestCase):

    def setUp(self):
        self.srv = Server("tcp-upper-server", ["127.0.0.1:0"])

    def tearDown(self):
        self.srv.close()

    def test_through_a_pipe(self):
        r = run("tcp-upper-client", [self.srv.address],
                stdin=b"\n".join(LINES) + b"\nno newline at the end")
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = LINES + [b"no newline at the end"]
        self.assertEqual(r.stdout, b"".join(upper(line) + b"\n" for line in expected))
        self.assertEqual(r.stderr, b"")
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr())

    def test_through_a_terminal_shows_the_prompt(self):
        rc, shown, err = run_pty("tcp-upper-client", [self.srv.address],
                                 stdin=b"hello tty\nsecond\n")
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(shown.count(b">>:"), 3, shown)
        self.assertIn(b"HELLO TTY", shown)
        self.assertIn(b"SECOND", shown)

    def test_unix_stream_socket(self):
        tmp = tempfile.mkdtemp(prefix="sockserv-tcp-")
        try:
            addr = "unix:" + os.path.join(tmp, "upper.sock")
            with Server("tcp-upper-server", [addr, "--mode", "pool"]) as srv:
                r = run("tcp-upper-client", [addr, "--burst", "2"], stdin=b"a\nb\nc\n")
                self.assertEqual(srv.stop(), 0, srv.stderr())
        finally:
            shutil.rmtree(tmp)
        self.assertEqual((r.returncode, r.stdout), (0, b"A\nB\nC\n"), r.stderr)

    def test_burst_lines_in_one_write_come_back_apart(self):
        lines = [b"burst line %d %s" % (i, b"z" * (i % 17)) for i in range(50)]
        for burst in ("50", "7"):
            with self.subTest(burst=burst):
                r = run("tcp-upper-client", [self.srv.address, "--burst", burst],
                        stdin=b"".join(line + b"\n" for line in lines))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.split(b"\n")[:-1], [upper(x) for x in lines])

    def test_big_burst_does_not_deadlock(self):
        # Far more bytes than the socket buffers hold in one write.
        lines = [b"%d " % i + b"q" * 60000 for i in range(100)]
        r = run("tcp-upper-client", [self.srv.address, "--burst", "100"],
                stdin=b"".join(line + b"\n" for line in lines))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"".join(upper(x) + b"\n" for x in lines))

    def test_replies_split_anyhow_are_put_together_by_lines(self):
        # A peer that answers all lines at once, cut at odd places: the
        # client still prints one reply per line.
        lines = [b"alpha", b"beta", b"gamma", b"", b"delta"]
        with socket.socket() as lsock:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            lsock.settimeout(limit(10))

            def peer():
                conn, _ = lsock.accept()
                with conn:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn.settimeout(limit(10))
                    data = b""
                    while data.count(b"\n") < len(lines):
                        chunk = conn.recv(4096)
                        if not chunk:
                            return
                        data += chunk
                    reply = upper(data)
                    for i in range(0, len(reply), 3):
                        conn.sendall(reply[i:i + 3])
                    conn.recv(1)

            t = threading.Thread(target=peer, daemon=True)
            t.start()
            r = run("tcp-upper-client",
                    ["127.0.0.1:%d" % lsock.getsockname()[1], "--burst", str(len(lines))],
                    stdin=b"".join(line + b"\n" for line in lines))
            t.join(10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"ALPHA\nBETA\nGAMMA\n\nDELTA\n")

    def test_line_too_long_is_not_sent(self):
        r = run("tcp-upper-client", [self.srv.address],
                stdin=b"before\n" + b"c" * (MAX_LINE + 1) + b"\nafter\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"BEFORE\nAFTER\n")
        self.assertIn(b"longer than 65536 bytes", r.stderr)


class TcpClientFailureTest(unittest.TestCase):

    def test_no_server(self):
        port = free_port()
        start = time.monotonic()
        r = run("tcp-upper-client", ["127.0.0.1:%d" % port], stdin=b"hello\n", timeout=limit(20))
        self.assertLess(time.monotonic() - start, limit(10))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr.decode(), "tcp-upper-client: cannot connect to 127.0.0.1:%d: "
                         "Connection refused\n" % port)

    def test_server_that_never_answers(self):
        with socket.socket() as lsock:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            addr = "127.0.0.1:%d" % lsock.getsockname()[1]
            start = time.monotonic()
            r = run("tcp-upper-client", [addr, "--timeout", "0.5"], stdin=b"hello?\n")
            elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"no reply from %s within 0.5 s" % addr.encode(), r.stderr)
        self.assertGreater(elapsed, 0.4)
        self.assertLess(elapsed, limit(8))

    def test_server_that_hangs_up(self):
        with socket.socket() as lsock:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            lsock.settimeout(limit(10))
            addr = "127.0.0.1:%d" % lsock.getsockname()[1]

            def hang_up():
                conn, _ = lsock.accept()
                with conn:
                    conn.settimeout(limit(10))
                    data = b""
                    while b"\n" not in data:
                        chunk = conn.recv(100)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(upper(data.split(b"\n")[0]) + b"\n")
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(100)

            t = threading.Thread(target=hang_up, daemon=True)
            t.start()
            r = run("tcp-upper-client", [addr, "--burst", "2"], stdin=b"one\ntwo\n")
            t.join(10)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"ONE\n")
        self.assertIn(b"connection closed by %s; 1 reply missing" % addr.encode(), r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
