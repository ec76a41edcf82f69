"""sockserv-ftpd: bandwidth limits and per-user quotas, with real clients.

Rates: --max-rate-down/--max-rate-up limit each session, the users file's
rate-down=/rate-up= (else --max-user-rate-down/--max-user-rate-up) all
sessions of one user together; each must hold within 5% over a 10 s
transfer, measured by curl and by raw ftplib clients, in threading and in
forking mode (the user's bucket is shared between session processes). All
those transfers run at once, so the file takes about 10 s. A command that
arrives while a transfer waits for its rate is served at once: ABOR answers
in well under a second even when one chunk costs seconds of the rate.

Quotas: quota-bytes=/quota-files= in the users file; STOR, APPE and STOU
never take a user past them (552 "Quota exceeded"), a refused new file is
removed, an append is cut back, two parallel uploads cannot pass the quota
together, DELE frees space, an overwrite counts the difference only.
"""

import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

RATE = 2 * 1024 * 1024  # bytes per second, "2M"
SECONDS = 10
TOLERANCE = 0.05
QUOTA = 1024 * 1024  # "1M"


def user_line(name, password, home, settings):
    return "%s:%s:%s:%s" % (name, T.hash_password(password), home, settings)


def tree_usage(path):
    """Bytes and regular files under path, as the server counts them."""
    size = files = 0
    for d, _, names in os.walk(path):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                size += os.path.getsize(p)
                files += 1
    return size, files


def ftp(server, user, password="pw"):
    return T.ftp_connect(server, user, password)


def timed_download(server, user, path):
    """(bytes, seconds from the 150 to the end of the data) by ftplib."""
    f = ftp(server, user)
    try:
        f.voidcmd("TYPE I")
        conn = f.transfercmd("RETR " + path)
        t0 = time.monotonic()
        n = 0
        conn.settimeout(T.timeout(60))
        while True:
            b = conn.recv(1 << 16)
            if not b:
                break
            n += len(b)
        t1 = time.monotonic()
        conn.close()
        f.voidresp()
        return n, t0, t1
    finally:
        T.quit_quietly(f)


def timed_upload(server, user, path, size):
    """(bytes, start, end): from the 150 to the 226, which the server sends
    once it has received (and paid for) everything."""
    block = os.urandom(1 << 16)
    f = ftp(server, user)
    try:
        f.voidcmd("TYPE I")
        conn = f.transfercmd("STOR " + path)
        t0 = time.monotonic()
        left = size
        while left > 0:
            conn.sendall(block[:min(left, len(block))])
            left -= min(left, len(block))
        conn.close()
        f.voidresp()
        t1 = time.monotonic()
        return size, t0, t1
    finally:
        T.quit_quietly(f)


def curl_download(server, user, path):
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", str(int(T.timeout(60))), "-o", os.devnull,
         "-w", "%{size_download} %{time_pretransfer} %{time_total}",
         "ftp://%s:pw@%s:%d/%s" % (user, server.host, server.port, path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=T.timeout(90))
    if out.returncode != 0:
        raise AssertionError("curl failed: %s" % out.stderr.decode(errors="replace"))
    n, pre, total = out.stdout.decode().split()
    return int(n), float(pre), float(total)


def raw_upload(c, mode, cmd, data):
    """Send cmd with data over a raw control connection; the server may cut
    the data connection (552) before everything is sent. Returns the final
    reply."""
    get = c.data(mode)
    r = c.cmd(cmd)
    if r.code >= 400:
        get().close()
        return r
    assert r.code in (125, 150), str(r)
    d = get()
    try:
        d.sendall(data)
    except OSError:
        pass
    finally:
        d.close()
    return c.reply(T.timeout(30))


class RateTest(unittest.TestCase):
    """All rate measurements at once, in both modes."""

    servers = {}

    @classmethod
    def setUpClass(cls):
        cls.base = os.path.realpath(__import__("tempfile").mkdtemp(prefix="ftpd-rate-"))
        users = os.path.join(cls.base, "users")
        with open(users, "w") as f:
            f.write(user_line("alice", "pw", "", "") + "\n")
            f.write(user_line("bob", "pw", "", "rate-down=2M") + "\n")
            f.write(user_line("carol", "pw", "", "") + "\n")
            # One chunk of the smallest size costs 5 s of this rate.
            f.write(user_line("dave", "pw", "", "rate-down=100") + "\n")
        cls.servers = {}
        for mode in ("threading", "forking"):
            root = os.path.join(cls.base, mode)
            os.makedirs(os.path.join(root, "up"))
            with open(os.path.join(root, "big"), "wb") as f:
                f.write(os.urandom(RATE * SECONDS))
            with open(os.path.join(root, "half"), "wb") as f:
                f.write(os.urandom(RATE * SECONDS // 2))
            args = ["--max-clients", "100", "--max-per-ip", "100", "--users", users,
                    "--mode", mode, "--max-rate-down", "2M", "--max-rate-up", "2M",
                    "--max-user-rate-up", "2M"]
            srv = T.Server(root, args, workdir=os.path.join(cls.base, "w-" + mode))
            os.makedirs(srv.workdir, exist_ok=True)
            srv.start()
            cls.servers[mode] = srv

    @classmethod
    def tearDownClass(cls):
        bad = []
        for mode, srv in cls.servers.items():
            rc = srv.stop()
            if rc != 0:
                bad.append("%s: exit %r; stderr:\n%s" % (mode, rc, srv.stderr_tail()))
        __import__("shutil").rmtree(cls.base, ignore_errors=True)
        if bad:
            raise AssertionError("\n".join(bad))

    def assert_rate(self, what, n, seconds, want):
        rate = n / seconds
        if os.environ.get("RATE_VERBOSE"):
            print("%s: %.0f B/s (%+.2f%%)" % (what, rate, (rate - want) * 100.0 / want),
                  file=sys.stderr)
        self.assertLess(abs(rate - want) / want, TOLERANCE,
                        "%s: %.0f B/s over %.2f s, want %d B/s within %d%%"
                        % (what, rate, seconds, want, TOLERANCE * 100))

    def test_rates_within_five_percent(self):
        results = {}
        errors = []

        def run(key, fn, *args):
            try:
                results[key] = fn(*args)
            except Exception as e:  # reported below
                errors.append("%s: %r" % (key, e))

        jobs = []
        for mode, srv in self.servers.items():
            # Per session: curl downloads, ftplib uploads, 10 s each.
            jobs.append(((mode, "down"), curl_download, srv, "alice", "big"))
            jobs.append(((mode, "up"), timed_upload, srv, "alice", "up/a.bin", RATE * SECONDS))
            # Per user, two sessions each: bob's own rate-down=2M, carol
            # under --max-user-rate-up 2M.
            for i in range(2):
                jobs.append(((mode, "bob", i), timed_download, srv, "bob", "half"))
                jobs.append(((mode, "carol", i), timed_upload, srv, "carol", "up/c%d.bin" % i,
                             RATE * SECONDS // 2))
        threads = [threading.Thread(target=run, args=j) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(120))
        self.assertEqual(errors, [])
        for mode in self.servers:
            n, pre, total = results[(mode, "down")]
            self.assertEqual(n, RATE * SECONDS)
            self.assert_rate("%s curl download" % mode, n, total - pre, RATE)
            n, t0, t1 = results[(mode, "up")]
            self.assert_rate("%s upload" % mode, n, t1 - t0, RATE)
            for who in ("bob", "carol"):
                pair = [results[(mode, who, i)] for i in range(2)]
                n = sum(p[0] for p in pair)
                span = max(p[2] for p in pair) - min(p[1] for p in pair)
                self.assertEqual(n, RATE * SECONDS)
                self.assert_rate("%s %s's two sessions together" % (mode, who), n, span, RATE)

    def test_abor_during_rate_wait_is_prompt(self):
        for mode, srv in self.servers.items():
            with self.subTest(mode=mode):
                c = T.Ctl(srv)
                try:
                    c.login("dave", "pw")
                    c.expect("TYPE I", 200)
                    get = c.data("PASV")
                    r = c.cmd("RETR big")
                    self.assertEqual(r.code, 150, str(r))
                    d = get()
                    d.settimeout(T.timeout(10))
                    first = d.recv(4096)
                    # The first chunk is being paid for now: 5 s at 100 B/s.
                    self.assertGreater(len(first), 0)
                    t0 = time.monotonic()
                    r = c.cmd("STAT")
                    self.assertEqual(r.code, 213, str(r))
                    c.send(b"ABOR\r\n")
                    r = c.reply()
                    self.assertIn(r.code, (426, 226), str(r))
                    if r.code == 426:
                        r = c.reply()
                        self.assertEqual(r.code, 226, str(r))
                    took = time.monotonic() - t0
                    d.close()
                    self.assertLess(took, 1.0 * T.SLOW, "STAT and ABOR took %.2f s" % took)
                    self.assertEqual(c.cmd("NOOP").code, 200)
                finally:
                    c.close()


class RateStopTest(unittest.TestCase):
    """The stop ends a transfer that waits for its rate at the grace's end,
    not when the wait would have ended."""

    def test_stop_during_rate_wait(self):
        import shutil
        import signal
        import tempfile
        for mode in ("threading", "forking"):
            with self.subTest(mode=mode):
                base = tempfile.mkdtemp(prefix="ftpd-rate-stop-")
                self.addCleanup(shutil.rmtree, base, True)
                root = os.path.join(base, "root")
                os.mkdir(root)
                T.write(os.path.join(root, "f"), b"f" * 100000)
                users = os.path.join(base, "users")
                with open(users, "w") as f:
                    f.write(user_line("dave", "pw", "", "rate-down=100") + "\n")
                srv = T.Server(root, ["--users", users, "--mode", mode, "--stop-grace", "1"],
                               workdir=base)
                srv.start()
                self.addCleanup(srv.stop)
                c = T.Ctl(srv)
                self.addCleanup(c.close)
                c.login("dave", "pw")
                get = c.data("PASV")
                self.assertEqual(c.cmd("RETR f").code, 150)
                d = get()
                self.addCleanup(d.close)
                self.assertGreater(len(d.recv(4096)), 0)
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                r = c.reply(T.timeout(10))
                self.assertEqual(r.code, 426, str(r))
                self.assertEqual(srv.wait(T.timeout(10)), 0, srv.stderr_tail())
                took = time.monotonic() - t0
                # The grace (1 s), not the 5 s a chunk costs at 100 B/s.
                self.assertLess(took, 1.0 + 1.5 * T.SLOW, "stop took %.2f s" % took)


class QuotaTest(T.ServerTestCase):
    """Each test has a user of its own, with its own home."""

    users = None
    mode_args = ()
    homes = {
        "q_bytes": "quota-bytes=1M",
        "q_files": "quota-files=2",
        "q_appe": "quota-bytes=1M",
        "q_stou": "quota-bytes=1M",
        "q_curl": "quota-bytes=1M",
        # Both uploads share 1M/s, so they run side by side for a while.
        "q_par": "quota-bytes=1M,rate-up=1M",
        "q_dele": "quota-bytes=1M,quota-files=3",
        "q_over": "quota-bytes=1M",
        "q_pre": "quota-bytes=1M",
    }

    @classmethod
    def make_tree(cls, root):
        lines = []
        for name, settings in cls.homes.items():
            os.mkdir(os.path.join(root, name))
            lines.append(user_line(name, "pw", name, settings))
        # Already holds 900K: the count comes from walking the home.
        os.mkdir(os.path.join(root, "q_pre", "sub"))
        T.write(os.path.join(root, "q_pre", "sub", "old"), b"x" * (900 * 1024))
        path = os.path.join(os.path.dirname(root), "users-quota")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        cls.server_args = ("--users", path) + tuple(cls.mode_args)

    def session(self, user):
        c = self.ctl(login=False)
        c.login(user, "pw")
        c.expect("TYPE I", 200)
        return c

    def assert_within(self, user, files=None):
        size, n = tree_usage(self.path(user))
        self.assertLessEqual(size, QUOTA, "%s holds %d bytes" % (user, size))
        if files is not None:
            self.assertLessEqual(n, files)
        return size, n

    def test_stor_past_quota_bytes(self):
        c = self.session("q_bytes")
        r = raw_upload(c, "PASV", "STOR a", b"a" * (600 * 1024))
        self.assertEqual(r.code, 226, str(r))
        r = raw_upload(c, "PASV", "STOR b", b"b" * (600 * 1024))
        self.assertEqual(r.code, 552, str(r))
        self.assertIn("Quota exceeded", r.text)
        # The refused new file is removed: the user holds what it held.
        self.assertFalse(os.path.exists(self.path("q_bytes", "b")))
        self.assertEqual(self.assert_within("q_bytes"), (600 * 1024, 1))
        # What fits still goes in, up to the byte.
        r = raw_upload(c, "EPSV", "STOR c", b"c" * (QUOTA - 600 * 1024))
        self.assertEqual(r.code, 226, str(r))
        self.assertEqual(self.assert_within("q_bytes")[0], QUOTA)
        r = raw_upload(c, "PASV", "STOR d", b"d")
        self.assertEqual(r.code, 552, str(r))

    def test_quota_files(self):
        c = self.session("q_files")
        for name in ("a", "b"):
            r = raw_upload(c, "PASV", "STOR " + name, b"x" * 10)
            self.assertEqual(r.code, 226, str(r))
        # Refused before any data connection is used.
        r = raw_upload(c, "PASV", "STOR c", b"x")
        self.assertEqual(r.code, 552, str(r))
        self.assertFalse(os.path.exists(self.path("q_files", "c")))
        # Replacing a file takes no new one.
        r = raw_upload(c, "PASV", "STOR a", b"y" * 20)
        self.assertEqual(r.code, 226, str(r))
        self.assertEqual(T.read(self.path("q_files", "a")), b"y" * 20)
        c.expect("DELE b", 250)
        r = raw_upload(c, "PASV", "STOU", b"z")
        self.assertEqual(r.code, 226, str(r))
        self.assertEqual(tree_usage(self.path("q_files"))[1], 2)

    def test_appe_past_quota_is_cut_back(self):
        c = self.session("q_appe")
        r = raw_upload(c, "PASV", "STOR f", b"a" * (600 * 1024))
        self.assertEqual(r.code, 226, str(r))
        r = raw_upload(c, "PASV", "APPE f", b"b" * (600 * 1024))
        self.assertEqual(r.code, 552, str(r))
        self.assertEqual(T.read(self.path("q_appe", "f")), b"a" * (600 * 1024))
        r = raw_upload(c, "PASV", "APPE f", b"b" * (QUOTA - 600 * 1024))
        self.assertEqual(r.code, 226, str(r))
        self.assertEqual(self.assert_within("q_appe")[0], QUOTA)

    def test_stou_past_quota(self):
        c = self.session("q_stou")
        r = raw_upload(c, "PASV", "STOU", b"s" * (QUOTA + 1))
        self.assertEqual(r.code, 552, str(r))
        self.assertEqual(tree_usage(self.path("q_stou")), (0, 0))

    def test_curl_upload_past_quota(self):
        src = os.path.join(self.base, "curl-src")
        T.write(src, os.urandom(QUOTA + 4096))
        p = subprocess.run(["curl", "-sS", "--max-time", str(int(T.timeout(60))), "-T", src,
                            "ftp://q_curl:pw@%s:%d/big" % (self.server.host, self.server.port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=T.timeout(90))
        self.assertNotEqual(p.returncode, 0, "curl accepted an upload past the quota")
        self.assertEqual(tree_usage(self.path("q_curl")), (0, 0))

    def test_parallel_uploads_cannot_pass_together(self):
        replies = {}

        def upload(i):
            c = self.session("q_par")
            replies[i] = raw_upload(c, "PASV", "STOR p%d" % i, bytes([65 + i]) * (700 * 1024))

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(60))
        codes = sorted(r.code for r in replies.values())
        self.assertEqual(codes, [226, 552], str(replies))
        size, n = self.assert_within("q_par")
        self.assertEqual((size, n), (700 * 1024, 1))

    def test_dele_frees_space(self):
        c = self.session("q_dele")
        r = raw_upload(c, "PASV", "STOR a", b"a" * (800 * 1024))
        self.assertEqual(r.code, 226, str(r))
        r = raw_upload(c, "PASV", "STOR b", b"b" * (800 * 1024))
        self.assertEqual(r.code, 552, str(r))
        c.expect("DELE a", 250)
        r = raw_upload(c, "PASV", "STOR b", b"b" * (800 * 1024))
        self.assertEqual(r.code, 226, str(r))
        # A rename over a file gives the replaced one back too.
        r = raw_upload(c, "PASV", "STOR c", b"c" * (100 * 1024))
        self.assertEqual(r.code, 226, str(r))
        c.expect("RNFR c", 350)
        c.expect("RNTO b", 250)
        r = raw_upload(c, "PASV", "STOR d", b"d" * (800 * 1024))
        self.assertEqual(r.code, 226, str(r))
        self.assertEqual(self.assert_within("q_dele"), (900 * 1024, 2))

    def test_overwrite_counts_the_difference(self):
        c = self.session("q_over")
        r = raw_upload(c, "PASV", "STOR a", b"a" * (800 * 1024))
        self.assertEqual(r.code, 226, str(r))
        r = raw_upload(c, "PASV", "STOR a", b"b" * (900 * 1024))
        self.assertEqual(r.code, 226, str(r))
        r = raw_upload(c, "PASV", "STOR a", b"c" * (QUOTA + 1))
        self.assertEqual(r.code, 552, str(r))
        # The failed replacement leaves the old file whole.
        self.assertEqual(T.read(self.path("q_over", "a")), b"b" * (900 * 1024))
        r = raw_upload(c, "PASV", "STOR a", b"d" * 10)
        self.assertEqual(r.code, 226, str(r))
        r = raw_upload(c, "PASV", "STOR e", b"e" * (QUOTA - 10))
        self.assertEqual(r.code, 226, str(r))
        self.assertEqual(self.assert_within("q_over")[0], QUOTA)

    def test_existing_files_count(self):
        c = self.session("q_pre")
        r = raw_upload(c, "PASV", "STOR a", b"a" * (200 * 1024))
        self.assertEqual(r.code, 552, str(r))
        r = raw_upload(c, "PASV", "STOR a", b"a" * (QUOTA - 900 * 1024))
        self.assertEqual(r.code, 226, str(r))
        self.assertEqual(self.assert_within("q_pre")[0], QUOTA)


class QuotaForkingTest(QuotaTest):
    mode_args = ("--mode", "forking")


if __name__ == "__main__":
    T.main()
