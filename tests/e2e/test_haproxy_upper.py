#!/usr/bin/env python3
"""The library behind a real HAProxy: tcp-upper-server with pre-fork workers
and --proxy-protocol required.

HAProxy balances over two tcp-upper-server processes, each with two
workers, with send-proxy-v2 on one frontend and send-proxy (v1) on the
other. Every line sent through either comes back upper-cased and nothing
else: the header is taken off before the handler reads, and the bytes after
it (sent at once with the header by HAProxy) are the handler's. A direct
connection from an untrusted address is closed without an answer.
"""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from haproxytest import HAProxy, connect_from, haproxy_path  # noqa: E402
from test_examples_common import Server, limit, upper  # noqa: E402


def exchange(sock, data):
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


@unittest.skipUnless(haproxy_path(), "haproxy not installed (scripts/deps.sh installs it)")
class HAProxyUpperTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = []
        try:
            for _ in range(2):
                cls.servers.append(Server("tcp-upper-server", [
                    "127.0.0.1:0", "--workers", "2", "--proxy-protocol", "required",
                    "--proxy-trusted", "127.0.0.1"]))
            cls.proxy = HAProxy([
                ("v2", [(s.host, s.port, "send-proxy-v2") for s in cls.servers], []),
                ("v1", [(s.host, s.port, "send-proxy") for s in cls.servers], []),
            ], limit(10))
        except BaseException:
            for s in cls.servers:
                s.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        codes = [s.stop() for s in cls.servers]
        for s in cls.servers:
            s.close()
        if codes != [0, 0]:
            raise AssertionError("exit statuses %r" % codes)

    def test_lines_through_proxy(self):
        for front in ("v2", "v1"):
            for i in range(20):
                msg = b"".join(b"line %d of %d via %s\n" % (k, i, front.encode())
                               for k in range(50))
                with connect_from("127.0.0.2", self.proxy.ports[front], limit(5)) as s:
                    self.assertEqual(exchange(s, msg), upper(msg))

    def test_direct_untrusted_refused(self):
        # Closed at once, before anything is read: no answer, the end of the
        # stream (or a reset, when our bytes arrive after the close).
        srv = self.servers[0]
        with connect_from("127.0.0.2", srv.port, limit(5)) as s:
            try:
                got = s.recv(64)
            except ConnectionResetError:
                got = b""
            self.assertEqual(got, b"")


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
