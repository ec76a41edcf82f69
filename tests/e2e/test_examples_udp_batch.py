#!/usr/bin/env python3
"""End-to-end tests of udp-upper-server --mode and --batch: every mode, one
datagram or batches of 16 per system call, answers each datagram (empty ones
too) exactly once, with many datagrams in flight from several clients."""
import os
import shutil
import select
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_examples_common import Server, limit, run, upper  # noqa: E402

MODES = ["sync", "threading", "forking", "pool"]
BATCHES = [1, 16]
CLIENTS = 4
PER_CLIENT = 150
# Datagrams a client keeps in flight: all clients together stay well below
# what the server socket's receive buffer holds, so none is dropped.
WINDOW = 24


def message(client, i):
    # every fifth one empty: an empty datagram gets an empty reply
    if i % 5 == 0:
        return b""
    return ("client %d datagram %d" % (client, i)).encode()


class Client:
    """Sends PER_CLIENT numbered datagrams with WINDOW in flight and records
    every reply. Empty datagrams carry no number: they are counted."""

    def __init__(self, srv, n):
        self.n = n
        self.sock = socket.socket(srv.family(), socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = srv.sockaddr()
        self.replies = []
        self.error = None

    def run(self):
        try:
            sent = 0
            deadline = time.monotonic() + limit(30)
            while len(self.replies) < PER_CLIENT:
                while sent < PER_CLIENT and sent - len(self.replies) < WINDOW:
                    self.sock.sendto(message(self.n, sent), self.addr)
                    sent += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d of %d replies" % (len(self.replies), PER_CLIENT))
                if select.select([self.sock], [], [], min(left, limit(5)))[0]:
                    self.replies.append(self.sock.recvfrom(70000)[0])
                else:
                    raise TimeoutError("no reply within %.0f s" % limit(5))
            # and no reply more than once: nothing else arrives
            if select.select([self.sock], [], [], 0.2)[0]:
                self.replies.append(self.sock.recvfrom(70000)[0])
        except OSError as e:  # TimeoutError included
            self.error = e
        finally:
            self.sock.close()


class UdpModesAndBatchTest(unittest.TestCase):

    def run_clients(self, srv):
        clients = [Client(srv, n) for n in range(CLIENTS)]
        threads = [threading.Thread(target=c.run) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(limit(60))
        for c in clients:
            self.assertIsNone(c.error, "client %d: %s" % (c.n, c.error))
            want = sorted(upper(message(c.n, i)) for i in range(PER_CLIENT))
            self.assertEqual(sorted(c.replies), want, "client %d" % c.n)

    def test_every_mode_and_batch_answers_each_datagram_once(self):
        for mode in MODES:
            for batch in BATCHES:
                args = ["127.0.0.1:0", "--mode", mode, "--batch", str(batch)]
                with self.subTest(mode=mode, batch=batch), Server("udp-upper-server", args) as srv:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.settimeout(limit(5))
                        for data in (b"hello", b"", b"MiXeD 123", bytes(range(256))):
                            s.sendto(data, srv.sockaddr())
                            reply, peer = s.recvfrom(70000)
                            self.assertEqual(reply, upper(data))
                            self.assertEqual(peer[1], srv.port)
                    self.run_clients(srv)
                    self.assertEqual(srv.stop(), 0, srv.stderr())
                    self.assertEqual(srv.stderr(), b"")

    def test_unix_datagram_socket_batched(self):
        tmp = tempfile.mkdtemp(prefix="sockserv-udpb-")
        try:
            addr = "unix:" + os.path.join(tmp, "upper.sock")
            for mode in ("sync", "pool"):
                with self.subTest(mode=mode), \
                        Server("udp-upper-server", [addr, "--mode", mode, "--batch", "8"]) as srv:
                    r = run("udp-upper-client", [addr], stdin=b"local\n\nmore\n")
                    self.assertEqual(srv.stop(), 0, srv.stderr())
                    self.assertEqual((r.returncode, r.stdout), (0, b"LOCAL\n\nMORE\n"), r.stderr)
        finally:
            shutil.rmtree(tmp)

    def test_bad_batch_and_mode_are_usage_errors(self):
        for args in (["--batch", "0"], ["--batch", "1025"], ["--batch", "x"], ["--mode", "nope"]):
            with self.subTest(args=args):
                r = run("udp-upper-server", ["127.0.0.1:0"] + args, timeout=limit(10))
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(b"(see --help)", r.stderr)
                self.assertEqual(r.stdout, b"")

    def test_help_names_the_options(self):
        r = run("udp-upper-server", ["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"--batch N", r.stdout)
        self.assertIn(b"--mode MODE", r.stdout)


if __name__ == "__main__":
    unittest.main()
