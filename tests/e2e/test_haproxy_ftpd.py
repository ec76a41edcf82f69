#!/usr/bin/env python3
"""sockserv-ftpd behind a real HAProxy with the PROXY protocol.

HAProxy (Debian's package) listens on loopback and balances round-robin over
two sockserv-ftpd processes started with --proxy-protocol required
--proxy-trusted 127.0.0.1, with send-proxy-v2 on one frontend and send-proxy
(v1) on another, and HAProxy's health checks (which carry a v2 LOCAL header). Clients connect from
127.0.0.2 and up (bound source addresses, one per session), so that the
address the servers see is provably the real client's and not the proxy's
127.0.0.1:

- the session log names the client's own address and port;
- --max-per-ip 1 counts the real client: a second session from 127.0.0.4
  is refused with 421, one from 127.0.0.5 is served;
- passive (PASV) and active (PORT) transfers - LIST, RETR, STOR - work: the
  data connection goes straight between client and server, and the server's
  data-peer and PORT checks compare it with the real client;
- a direct connection without a header is refused (an untrusted peer at
  once; a trusted one that starts with an FTP command too).
"""
import os
import shutil
import tempfile
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest  # noqa: E402
from ftpdtest import Ctl, Server, can_bind, ftp_connect, quit_quietly, timeout  # noqa: E402
from haproxytest import HAProxy, haproxy_path  # noqa: E402

CLIENT = "127.0.0.2"
# The limit test's own clients: no session of another test (whose slot may
# come back a moment after its QUIT was answered) counts against them.
LIMITED = "127.0.0.4"
UNLIMITED = "127.0.0.5"
# Every other session gets a source address of its own (127.0.0.10 on),
# for the same reason.
_next_source = [10]


def fresh_source():
    _next_source[0] += 1
    return "127.0.0.%d" % _next_source[0]


class Front:
    """What ftp_connect needs of a server: where to connect."""

    def __init__(self, port):
        self.host = "127.0.0.1"
        self.port = port


@unittest.skipUnless(haproxy_path(), "haproxy not installed (scripts/deps.sh installs it)")
@unittest.skipUnless(all(can_bind(a) for a in (CLIENT, LIMITED, UNLIMITED, "127.0.0.40")),
                     "127.0.0.2-40 not bindable")
class HAProxyFtpdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="ftpd-haproxy-")
        cls.root = os.path.join(cls.base, "root")
        os.mkdir(cls.root)
        ftpdtest.write(os.path.join(cls.root, "hello.txt"), b"hello through haproxy\n")
        users = os.path.join(cls.base, "users")
        ftpdtest.write_users(users, [("alice", "wonderland")])
        args = ["--users", users, "--anonymous-write", "--max-clients", "20",
                "--max-per-ip", "1", "--proxy-protocol", "required",
                "--proxy-trusted", "127.0.0.1"]
        cls.servers = []
        try:
            for i in range(2):
                wd = os.path.join(cls.base, "srv%d" % i)
                os.mkdir(wd)
                cls.servers.append(Server(cls.root, args, workdir=wd).start())
            backends = [(s.host, s.port, "") for s in cls.servers]
            cls.proxy = HAProxy([
                ("v2", [(h, p, "send-proxy-v2 check inter 200ms") for h, p, _ in backends], []),
                ("v1", [(h, p, "send-proxy") for h, p, _ in backends], []),
                ("one", [(backends[0][0], backends[0][1], "send-proxy-v2")], []),
            ], timeout(10))
        except BaseException:
            for s in cls.servers:
                s.stop()
            shutil.rmtree(cls.base, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        codes = [s.stop() for s in cls.servers]
        tails = [s.stderr_tail() for s in cls.servers]
        shutil.rmtree(cls.base, ignore_errors=True)
        if codes != [0, 0]:
            raise AssertionError("server exit statuses %r; stderr:\n%s" % (codes, tails))

    def logs(self):
        return "".join(s.stderr_tail(1 << 20) for s in self.servers)

    def wait_log(self, text, seconds=10):
        """The log is written by the servers as they go: poll it (bounded)."""
        deadline = time.monotonic() + timeout(seconds)
        while text not in self.logs():
            if time.monotonic() > deadline:
                self.fail("%r not in the logs:\n%s" % (text, self.logs()[-3000:]))
            time.sleep(0.02)

    def session(self, front, source, mode="PASV"):
        f = ftp_connect(Front(self.proxy.ports[front]), "alice", "wonderland", mode=mode,
                        source=source)
        self.addCleanup(quit_quietly, f)
        return f

    def test_log_shows_real_client_v2_and_v1(self):
        used = []
        for front in ("v2", "v1"):
            for _ in range(2):
                source = fresh_source()
                used.append(source)
                with self.subTest(front=front, source=source):
                    f = self.session(front, source)
                    host, port = f.sock.getsockname()
                    self.assertEqual(host, source)
                    self.wait_log("%s:%d: connect" % (source, port))
                    quit_quietly(f)
        # Round-robin: both servers had sessions.
        for s in self.servers:
            log = s.stderr_tail(1 << 20)
            self.assertTrue(any(a + ":" in log for a in used), log[-2000:])

    def test_max_per_ip_counts_real_client(self):
        port = self.proxy.ports["one"]
        first = Ctl(addr=("127.0.0.1", port), source=LIMITED)
        self.addCleanup(first.close)
        self.assertEqual(first.greeting.code, 220)
        second = Ctl(addr=("127.0.0.1", port), source=LIMITED)
        self.addCleanup(second.close)
        self.assertEqual(second.greeting.code, 421, str(second.greeting))
        other = Ctl(addr=("127.0.0.1", port), source=UNLIMITED)
        self.addCleanup(other.close)
        self.assertEqual(other.greeting.code, 220, str(other.greeting))
        self.wait_log("%s:%d: refused, too many connections" % (LIMITED,
                                                               second.sock.getsockname()[1]))

    def test_transfers_through_proxy(self):
        for front in ("v2", "v1"):
            for mode in ("PASV", "PORT"):
                # Twice: round-robin puts one on each server.
                for turn in range(2):
                    with self.subTest(front=front, mode=mode, turn=turn):
                        f = self.session(front, fresh_source(), mode=mode)
                        lines = []
                        f.retrlines("LIST", lines.append)
                        self.assertTrue(any(ln.endswith(" hello.txt") for ln in lines), lines)
                        self.assertEqual(ftpdtest.retr_bytes(f, "hello.txt"),
                                         b"hello through haproxy\n")
                        name = "up-%s-%s-%d.bin" % (front, mode, turn)
                        data = os.urandom(200000)
                        ftpdtest.stor_bytes(f, name, data)
                        self.assertEqual(ftpdtest.read(os.path.join(self.root, name)), data)
                        quit_quietly(f)

    def test_direct_connection_without_header_refused(self):
        srv = self.servers[0]
        # An untrusted peer: closed at once, no greeting.
        c = Ctl(addr=srv.address, source=CLIENT, greet=False, tmo=timeout(5))
        self.addCleanup(c.close)
        self.assertTrue(c.at_eof(timeout(3)))
        self.wait_log("%s:%d: Permission denied" % (CLIENT, c.sock.getsockname()[1]))
        # A trusted peer that speaks FTP instead of the header: closed.
        c = Ctl(addr=srv.address, source="127.0.0.1", greet=False, tmo=timeout(5))
        self.addCleanup(c.close)
        c.send(b"USER alice\r\n")
        self.assertTrue(c.at_eof(timeout(3)))
        self.wait_log("127.0.0.1:%d: Protocol error" % c.sock.getsockname()[1])
        # The server goes on serving through the proxy.
        f = self.session("v2", fresh_source())
        self.assertEqual(ftpdtest.retr_bytes(f, "hello.txt"), b"hello through haproxy\n")

    def test_health_checks_keep_proxy_address(self):
        # HAProxy's checks (every 200 ms) send a v2 LOCAL header on the
        # traffic port: sessions with HAProxy's own address, which keep
        # both servers UP (the transfers go to both) and report nothing.
        self.wait_log("127.0.0.1:")
        bad = [ln for ln in self.logs().splitlines()
               if "127.0.0.1:" in ln and ("reset" in ln or "Broken pipe" in ln
                                          or "Timer expired" in ln)]
        self.assertEqual(bad, [])


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
