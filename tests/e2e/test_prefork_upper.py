#!/usr/bin/env python3
"""Pre-fork workers end to end: tcp-upper-server --workers 2.

Two worker processes, each with its own SO_REUSEPORT socket, serve every
connection of many; a worker killed with SIGKILL is replaced and service
goes on; SIGTERM gives a held connection its --grace, then the workers and
the supervisor exit and no worker process is left (checked by PID). The
worker PIDs are the supervisor's children, read from /proc.
"""
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_examples_common import Server, limit, upper  # noqa: E402


def children(pid):
    """The PIDs of pid's child processes (from /proc, every thread's list)."""
    kids = set()
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return kids
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(cond, seconds):
    """Poll a condition on the process table (no event exists for it),
    bounded in time. Returns its last value."""
    deadline = time.monotonic() + limit(seconds)
    value = cond()
    while not value and time.monotonic() < deadline:
        time.sleep(0.02)
        value = cond()
    return value


def roundtrip(server, line):
    with socket.create_connection(server.sockaddr(), timeout=limit(5)) as s:
        s.sendall(line)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


class PreforkTest(unittest.TestCase):
    def start(self, *args):
        srv = Server("tcp-upper-server", ["127.0.0.1:0", "--workers", "2"] + list(args))
        self.addCleanup(srv.close)
        workers = wait_for(lambda: len(children(srv.proc.pid)) == 2 and children(srv.proc.pid),
                           10)
        self.assertTrue(workers, "two worker processes expected")
        return srv, workers

    def test_many_connections_all_served(self):
        for mode in ("threading", "pool", "sync"):
            with self.subTest(mode=mode):
                srv, workers = self.start("--mode", mode)
                for i in range(100):
                    msg = b"line %d from a client\n" % i
                    self.assertEqual(roundtrip(srv, msg), upper(msg))
                self.assertEqual(srv.stop(), 0)
                for pid in workers:
                    self.assertFalse(alive(pid), "worker %d outlived the server" % pid)

    def test_sigkill_worker_is_restarted(self):
        srv, workers = self.start()
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: len(children(srv.proc.pid) - {victim}) == 2, 10)
        self.assertTrue(replaced, "no new worker after SIGKILL: %r" % children(srv.proc.pid))
        for i in range(40):
            msg = b"after the kill %d\n" % i
            self.assertEqual(roundtrip(srv, msg), upper(msg))
        now = children(srv.proc.pid)
        self.assertEqual(srv.stop(), 0)
        for pid in now | workers:
            self.assertFalse(alive(pid), "worker %d outlived the server" % pid)

    def test_sigterm_graceful_stop_of_all(self):
        srv, workers = self.start("--grace", "0.5")
        held = []
        for i in range(8):
            s = socket.create_connection(srv.sockaddr(), timeout=limit(5))
            self.addCleanup(s.close)
            s.sendall(b"held %d\n" % i)
            self.assertEqual(s.recv(64), b"HELD %d\n" % i)
            held.append(s)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # Within the grace the held connections still work.
        held[0].sendall(b"still here\n")
        self.assertEqual(held[0].recv(64), b"STILL HERE\n")
        self.assertEqual(srv.wait(), 0)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.45)
        for s in held:
            self.assertEqual(s.recv(64), b"")  # the cut: end of stream
        for pid in workers:
            self.assertFalse(alive(pid), "worker %d outlived the server" % pid)

    def test_ctrl_c_to_the_group_stops_once(self):
        # A terminal's Ctrl-C reaches every process of the group: the
        # workers leave it to the supervisor, which stops them all.
        srv, workers = self.start("--grace", "0")
        for pid in workers:
            os.kill(pid, signal.SIGINT)
        for i in range(20):
            self.assertEqual(roundtrip(srv, b"x\n"), b"X\n")
        self.assertEqual(sorted(children(srv.proc.pid)), sorted(workers))
        self.assertEqual(srv.stop(signal.SIGINT), 0)
        for pid in workers:
            self.assertFalse(alive(pid))


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
