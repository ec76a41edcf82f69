#!/usr/bin/env python3
"""End-to-end tests of echo-server over TCP, UDP and Unix sockets, every mode."""
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_examples_common import Server, has_ipv6_loopback, limit, run  # noqa: E402

MODES = ["sync", "threading", "forking", "pool"]
DATAGRAMS = [b"ping", b"", bytes(range(256)), b"\x00" * 1000, b"y" * 65507]


def echo_stream(family, addr, data):
    """Send data on a new connection while reading everything echoed."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(limit(10))
        s.connect(addr)
        errors = []

        def send():
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)

        # Sending and reading at once: a big payload would otherwise fill
        # both directions' buffers and stall.
        t = threading.Thread(target=send)
        t.start()
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        t.join(10)
        if errors:
            raise errors[0]
        return got


def echo_datagrams(family, addr, payloads, bind=None):
    replies = []
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(limit(5))
        if bind is not None:
            s.bind(bind)
        for data in payloads:
            s.sendto(data, addr)
            replies.append(s.recv(70000))
    return replies


class EchoTest(unittest.TestCase):

    def test_tcp_every_mode(self):
        data = os.urandom(300000) + b"\n\x00 end"
        for mode in MODES:
            with self.subTest(mode=mode), \
                    Server("echo-server", ["127.0.0.1:0", "--mode", mode]) as srv:
                self.assertEqual(echo_stream(socket.AF_INET, srv.sockaddr(), data), data)
                self.assertEqual(echo_stream(socket.AF_INET, srv.sockaddr(), b""), b"")
                self.assertEqual(srv.stop(), 0, srv.stderr())
                self.assertEqual(srv.stderr(), b"")

    def test_udp_every_mode(self):
        for mode in MODES:
            with self.subTest(mode=mode), \
                    Server("echo-server", ["127.0.0.1:0", "--udp", "--mode", mode]) as srv:
                self.assertEqual(echo_datagrams(socket.AF_INET, srv.sockaddr(), DATAGRAMS),
                                 DATAGRAMS)
                self.assertEqual(srv.stop(), 0, srv.stderr())

    @unittest.skipUnless(has_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6(self):
        with Server("echo-server", ["[::1]:0"]) as srv:
            self.assertEqual(echo_stream(socket.AF_INET6, srv.sockaddr(), b"six"), b"six")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        with Server("echo-server", ["[::1]:0", "--udp"]) as srv:
            self.assertEqual(echo_datagrams(socket.AF_INET6, srv.sockaddr(), [b"6"]), [b"6"])
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_unix_stream_and_datagram(self):
        tmp = tempfile.mkdtemp(prefix="sockserv-echo-")
        try:
            path = os.path.join(tmp, "echo.sock")
            with Server("echo-server", ["unix:" + path]) as srv:
                self.assertEqual(srv.address, "unix:" + path)
                self.assertEqual(echo_stream(socket.AF_UNIX, path, b"over unix\n" * 1000),
                                 b"over unix\n" * 1000)
                self.assertEqual(srv.stop(), 0, srv.stderr())
            with Server("echo-server", ["unix:" + path, "--udp"]) as srv:
                replies = echo_datagrams(socket.AF_UNIX, path, [b"dgram", b""],
                                         bind=os.path.join(tmp, "client.sock"))
                self.assertEqual(replies, [b"dgram", b""])
                self.assertEqual(srv.stop(signal.SIGINT), 0, srv.stderr())
        finally:
            shutil.rmtree(tmp)

    def test_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            r = run("echo-server", ["127.0.0.1:%d" % port, "--udp"], timeout=limit(10))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"echo-server: cannot listen on 127.0.0.1:%d: Address already in use"
                      % port, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
