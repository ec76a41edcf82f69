#!/usr/bin/env python3
"""End-to-end tests of udp-upper-server and udp-upper-client."""
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
from test_examples_common import (Server, free_port, has_ipv6_loopback, run,  # noqa: E402
                                  limit, run_pty, upper)

# Datagrams that show the upper-casing is byte-exact: empty, non-ASCII,
# NUL and 0xff bytes, every byte value, the largest IPv4 payload.
PAYLOADS = [
    b"hello world",
    b"",
    b"MiXeD cAsE 123 !?",
    "grüße, déjà vu".encode(),
    b"\x00abc\x00\xff\xfe\x80z",
    bytes(range(256)),
    b"x" * 65507,
]


def privileged_port_80():
    """True when port 80 needs privileges here (see ip_unprivileged_port_start)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read()) > 80
    except (OSError, ValueError):
        return False


class UdpTalker:
    """A raw UDP client socket with a receive timeout."""

    def __init__(self, srv):
        self.sock = socket.socket(srv.family(), socket.SOCK_DGRAM)
        self.sock.settimeout(limit(5.0))
        self.addr = srv.sockaddr()

    def ask(self, data):
        self.sock.sendto(data, self.addr)
        reply, peer = self.sock.recvfrom(70000)
        return reply, peer

    def close(self):
        self.sock.close()


class UdpServerTest(unittest.TestCase):

    def check_upper(self, srv):
        talker = UdpTalker(srv)
        try:
            for data in PAYLOADS:
                with self.subTest(size=len(data), head=data[:16]):
                    reply, peer = talker.ask(data)
                    self.assertEqual(reply, upper(data))
                    self.assertEqual(peer[1], srv.port)
        finally:
            talker.close()

    def test_upper_cases_each_datagram_byte_exact(self):
        with Server("udp-upper-server", ["127.0.0.1:0"]) as srv:
            self.check_upper(srv)
            self.assertEqual(srv.stop(), 0, srv.stderr())

    @unittest.skipUnless(has_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6(self):
        with Server("udp-upper-server", ["[::1]:0"]) as srv:
            self.assertEqual(srv.host, "::1")
            self.assertTrue(srv.address.startswith("[::1]:"), srv.address)
            self.check_upper(srv)
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_empty_datagram_gets_an_empty_reply(self):
        with Server("udp-upper-server", ["127.0.0.1:0"]) as srv:
            talker = UdpTalker(srv)
            try:
                for _ in range(3):
                    reply, _ = talker.ask(b"")
                    self.assertEqual(reply, b"")
                # and the server is still well after them
                self.assertEqual(talker.ask(b"ok")[0], b"OK")
            finally:
                talker.close()
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_threading_mode_serves_many_clients(self):
        with Server("udp-upper-server", ["127.0.0.1:0", "--threading"]) as srv:
            self.check_upper(srv)
            errors = []

            def client(n):
                talker = UdpTalker(srv)
                try:
                    for i in range(20):
                        msg = ("client %d message %d" % (n, i)).encode()
                        reply, _ = talker.ask(msg)
                        if reply != upper(msg):
                            errors.append((msg, reply))
                except OSError as e:
                    errors.append(e)
                finally:
                    talker.close()

            threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            self.assertEqual(errors, [])
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_sigint_stops_it_cleanly(self):
        for args in (["127.0.0.1:0"], ["127.0.0.1:0", "--threading"]):
            with self.subTest(args=args), Server("udp-upper-server", args) as srv:
                talker = UdpTalker(srv)
                self.assertEqual(talker.ask(b"a")[0], b"A")
                talker.close()
                self.assertEqual(srv.stop(signal.SIGINT), 0, srv.stderr())
                self.assertEqual(srv.stderr(), b"")

    @unittest.skipUnless(os.geteuid() != 0 and privileged_port_80(), "may bind port 80")
    def test_permission_denied(self):
        r = run("udp-upper-server", ["127.0.0.1:80"], timeout=limit(10))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, b"udp-upper-server: cannot listen on 127.0.0.1:80: "
                         b"Permission denied\n")

    def test_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            r = run("udp-upper-server", ["127.0.0.1:%d" % port], timeout=limit(10))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr.decode(),
                         "udp-upper-server: cannot listen on 127.0.0.1:%d: "
                         "Address already in use\n" % port)


class UdpClientTest(unittest.TestCase):

    def test_through_a_pipe(self):
        lines = [b"hello", b"", "grüße".encode(), b"a\x00b\xffc", b"already UPPER"]
        with Server("udp-upper-server", ["127.0.0.1:0"]) as srv:
            r = run("udp-upper-client", [srv.address], stdin=b"\n".join(lines) + b"\n")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        self.assertEqual(r.returncode, 0, r.stderr)
        # no prompt when stdin is not a terminal, one reply line per line
        self.assertEqual(r.stdout, b"".join(upper(line) + b"\n" for line in lines))
        self.assertEqual(r.stderr, b"")

    def test_last_line_without_newline_and_empty_input(self):
        with Server("udp-upper-server", ["127.0.0.1:0"]) as srv:
            r = run("udp-upper-client", [srv.address], stdin=b"one\ntwo")
            self.assertEqual((r.returncode, r.stdout), (0, b"ONE\nTWO\n"), r.stderr)
            r = run("udp-upper-client", [srv.address], stdin=b"")
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_through_a_terminal_shows_the_prompt(self):
        with Server("udp-upper-server", ["127.0.0.1:0"]) as srv:
            rc, shown, err = run_pty("udp-upper-client", [srv.address],
                                     stdin=b"hello tty\nsecond\n")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        self.assertEqual(rc, 0, err)
        self.assertIn(b">>:", shown)
        self.assertGreaterEqual(shown.count(b">>:"), 3, shown)  # two lines and the EOF
        self.assertIn(b"HELLO TTY", shown)
        self.assertIn(b"SECOND", shown)

    @unittest.skipUnless(has_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6(self):
        with Server("udp-upper-server", ["[::1]:0"]) as srv:
            r = run("udp-upper-client", [srv.address], stdin=b"six\n")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        self.assertEqual((r.returncode, r.stdout), (0, b"SIX\n"), r.stderr)

    def test_unix_datagram_socket(self):
        # The client binds itself an abstract address so the server can answer.
        tmp = tempfile.mkdtemp(prefix="sockserv-udp-")
        try:
            addr = "unix:" + os.path.join(tmp, "upper.sock")
            with Server("udp-upper-server", [addr]) as srv:
                self.assertEqual(srv.address, addr)
                r = run("udp-upper-client", [addr], stdin=b"local\n\n")
                self.assertEqual(srv.stop(), 0, srv.stderr())
        finally:
            shutil.rmtree(tmp)
        self.assertEqual((r.returncode, r.stdout), (0, b"LOCAL\n\n"), r.stderr)

    def test_no_server_bounded_wait_and_clear_message(self):
        # Nothing listens: every try is refused (ICMP port unreachable) or
        # times out; with the defaults (1 s, 3 tries) one line takes ~3 s.
        port = free_port(socket.SOCK_DGRAM)
        start = time.monotonic()
        r = run("udp-upper-client", ["127.0.0.1:%d" % port], stdin=b"anyone?\n", timeout=limit(20))
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertIn(b"udp-upper-client: no reply from 127.0.0.1:%d after 3 tries" % port,
                      r.stderr)
        self.assertGreater(elapsed, 2.0)
        self.assertLess(elapsed, limit(10.0))

    def test_silent_server_each_line_reported_and_the_next_one_tried(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            addr = "127.0.0.1:%d" % silent.getsockname()[1]
            start = time.monotonic()
            r = run("udp-upper-client", [addr, "--timeout", "0.2", "--tries", "2"],
                    stdin=b"one\ntwo\n")
            elapsed = time.monotonic() - start
            silent.settimeout(0)
            received = []
            try:
                while True:
                    received.append(silent.recv(100))
            except BlockingIOError:
                pass
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr.count(b"no reply from %s after 2 tries" % addr.encode()), 2,
                         r.stderr)
        self.assertEqual(received, [b"one", b"one", b"two", b"two"])
        self.assertGreater(elapsed, 0.7)
        self.assertLess(elapsed, limit(8.0))

    def fake_server(self, behave):
        """A UDP peer run by behave(sock) in a thread; returns (sock, thread)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(limit(10))
        t = threading.Thread(target=behave, args=(sock,), daemon=True)
        t.start()
        return sock, t

    def test_lost_datagram_is_sent_again(self):
        seen = []

        def drop_first(sock):
            data, peer = sock.recvfrom(100)
            seen.append(data)                 # lost: no answer
            data, peer = sock.recvfrom(100)
            seen.append(data)
            sock.sendto(upper(data), peer)

        sock, t = self.fake_server(drop_first)
        with sock:
            r = run("udp-upper-client",
                    ["127.0.0.1:%d" % sock.getsockname()[1], "--timeout", "0.3"],
                    stdin=b"again\n")
            t.join(10)
        self.assertEqual((r.returncode, r.stdout), (0, b"AGAIN\n"), r.stderr)
        self.assertEqual(seen, [b"again", b"again"])

    def test_stray_datagrams_are_not_taken_for_replies(self):
        def noisy(sock):
            data, peer = sock.recvfrom(100)
            sock.sendto(b"stray", peer)
            sock.sendto(b"", peer)
            sock.sendto(upper(data) + b"!", peer)
            sock.sendto(upper(data), peer)

        sock, t = self.fake_server(noisy)
        with sock:
            r = run("udp-upper-client", ["127.0.0.1:%d" % sock.getsockname()[1]],
                    stdin=b"real\n")
            t.join(10)
        self.assertEqual((r.returncode, r.stdout), (0, b"REAL\n"), r.stderr)

    def test_late_reply_is_not_the_answer_to_the_next_line(self):
        def slow_then_fast(sock):
            first, peer = sock.recvfrom(100)
            second, _ = sock.recvfrom(100)    # the client gave up on the first
            sock.sendto(upper(first), peer)   # late answer to the first line
            sock.sendto(upper(second), peer)

        sock, t = self.fake_server(slow_then_fast)
        with sock:
            addr = "127.0.0.1:%d" % sock.getsockname()[1]
            r = run("udp-upper-client", [addr, "--timeout", "0.3", "--tries", "1"],
                    stdin=b"first\nsecond\n")
            t.join(10)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"SECOND\n")
        self.assertIn(b"no reply from %s after 1 try" % addr.encode(), r.stderr)

    def test_other_senders_are_ignored(self):
        # The client's socket is connected: datagrams from another address
        # never reach it, even when they look like the right reply.
        def impostor(sock):
            data, peer = sock.recvfrom(100)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.sendto(b"IMPOSTOR", peer)
            sock.sendto(upper(data), peer)

        sock, t = self.fake_server(impostor)
        with sock:
            r = run("udp-upper-client", ["127.0.0.1:%d" % sock.getsockname()[1]],
                    stdin=b"impostor\n")
            t.join(10)
        self.assertEqual((r.returncode, r.stdout), (0, b"IMPOSTOR\n"), r.stderr)

    def test_line_too_long_for_a_datagram(self):
        with Server("udp-upper-server", ["127.0.0.1:0"]) as srv:
            r = run("udp-upper-client", [srv.address],
                    stdin=b"a" * 65508 + b"\n" + b"b" * 65507 + b"\nok\n")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, b"B" * 65507 + b"\nOK\n")
        self.assertIn(b"longer than 65507 bytes", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
