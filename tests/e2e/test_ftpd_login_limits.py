"""sockserv-ftpd: what an outsider can do before logging in is bounded.

- Login timeout: connections that never log in are closed with 421 after
  --login-timeout, whatever they send meanwhile (NOOP does not extend it),
  so a flood of idle connections cannot hold the session slots.
- Login timing: a failed login is answered at the same moment after PASS
  for unknown users and for known users with slow hashes (yescrypt, bcrypt,
  sha512crypt with many rounds), so timing does not tell who exists.
- Password guessing: a per-address and per-account failure budget
  (--max-login-fails, --ban-time), enforced across parallel connections,
  then 421 and a logged ban.
- IPv6: per-address limits count a /64 as one address (--ipv6-prefix), in
  a network namespace of the test's own.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

FAIL_DELAY = 1.0


def read_log(server_base):
    try:
        with open(os.path.join(server_base, "ftpd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class LoginTimeoutTest(T.ServerTestCase):
    limit_args = ("--max-clients", "8", "--max-per-ip", "8")
    server_args = ("--login-timeout", "2")

    def test_noop_does_not_extend_the_login_time(self):
        """Eight connections take every slot and keep sending NOOP; each is
        closed with 421 at the login deadline, and the slots come back."""
        hoard = [T.Ctl(self.server) for _ in range(8)]
        try:
            for c in hoard:
                self.assertEqual(c.greeting.code, 220)
            # Every slot is taken: a newcomer is refused.
            with T.Ctl(self.server) as extra:
                self.assertEqual(extra.greeting.code, 421, str(extra.greeting))
            start = time.monotonic()
            closed_after = []
            for c in hoard:
                # NOOP until the server ends the session: a bounded loop.
                while time.monotonic() - start < T.timeout(8):
                    try:
                        r = c.cmd("NOOP", tmo=T.timeout(4))
                    except (EOFError, OSError):
                        break
                    if r.code == 421:
                        self.assertIn("login", r.text.lower())
                        self.assertTrue(c.at_eof(T.timeout(4)))
                        break
                    self.assertEqual(r.code, 200)
                    time.sleep(0.1)  # a client's pace, not a synchronisation
                closed_after.append(time.monotonic() - start)
            self.assertLess(max(closed_after), T.timeout(4),
                            "sessions held past the login timeout: %r" % closed_after)
        finally:
            for c in hoard:
                c.close()
        # The freed slots serve a real user (the library frees a slot when
        # the session ends: bounded poll for it).
        deadline = time.monotonic() + T.timeout(5)
        while True:
            with T.Ctl(self.server) as c:
                if c.greeting.code == 220:
                    c.login(self.user, self.password)
                    break
            self.assertLess(time.monotonic(), deadline, "slots never came back")
            time.sleep(0.05)

    def test_logged_in_sessions_are_not_cut(self):
        c = self.ctl()
        # Beyond the login timeout, a logged-in session lives on (bounded
        # by the idle timeout, 300 s by default).
        time.sleep(2.5)  # the deadline itself is what is under test
        self.assertEqual(c.cmd("NOOP").code, 200)


class LoginTimeoutForkingTest(LoginTimeoutTest):
    server_args = ("--login-timeout", "2", "--mode", "forking")


class LoginTimingTest(T.ServerTestCase):
    users = None
    server_args = ("--max-login-fails", "0")

    @classmethod
    def setUpClass(cls):
        # Known users whose hashes take from ~1 to ~300 ms to check.
        schemes = [("sha512", "$6$", 0), ("yes", "$y$", 0), ("yes8", "$y$", 8),
                   ("bcrypt", "$2b$", 11), ("sha512r", "$6$", 500000)]
        cls.extra_users = []
        for name, prefix, cost in schemes:
            h = crypt_hash("secret-" + name, prefix, cost)
            if h is not None:
                cls.extra_users.append((name, h))
        cls.users_dir = tempfile.mkdtemp(prefix="ftpd-users-")
        path = os.path.join(cls.users_dir, "users")
        with open(path, "w") as f:
            for name, h in cls.extra_users:
                f.write("%s:%s\n" % (name, h))
        cls.server_args = cls.server_args + ("--users", path)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.users_dir, ignore_errors=True)

    def measure(self, user, tries):
        times = []
        with T.Ctl(self.server) as c:
            for i in range(tries):
                if i and i % 2 == 0:
                    c.close()
                    c = T.Ctl(self.server)
                c.expect("USER " + user, 331)
                start = time.monotonic()
                r = c.cmd("PASS guess-%d" % i, tmo=T.timeout(10))
                times.append(time.monotonic() - start)
                self.assertEqual(r.code, 530, "%s: %s" % (user, r))
            c.close()
        return times

    def test_failures_answer_at_the_same_time(self):
        if not self.extra_users:
            self.skipTest("libcrypt makes none of the slow hashes")
        names = ["nobody-such"] + [u for u, _ in self.extra_users]
        results = {}

        def run(name):
            results[name] = self.measure(name, 6)

        threads = [threading.Thread(target=run, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(60))
        self.assertEqual(sorted(results), sorted(names))
        medians = {n: statistics.median(t) for n, t in results.items()}
        for n, t in results.items():
            self.assertGreaterEqual(min(t), FAIL_DELAY * 0.95, "%s answered early: %r" % (n, t))
        spread = max(medians.values()) - min(medians.values())
        self.assertLess(spread, 0.06 * T.SLOW, "median PASS->530 by user: %r" % medians)


def crypt_hash(password, prefix, cost):
    """A crypt(3) hash of the scheme prefix at the given cost; None if the
    system's libcrypt cannot make it."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                                  ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(prefix.encode(), cost, None, 0)
    if not setting:
        return None
    out = lib.crypt(password.encode(), setting)
    if not out or not out.startswith(prefix.encode()):
        return None
    return out.decode()


class BruteForceTest(T.ServerTestCase):
    users = [("alice", "wonderland"), ("bob", "builder")]
    limit_args = ("--max-clients", "200", "--max-per-ip", "100")
    server_args = ("--max-login-fails", "5", "--ban-time", "60")

    @classmethod
    def setUpClass(cls):
        cls.server_args = cls.server_args + ("--log", "ftpd.log")
        super().setUpClass()

    def test_parallel_guessing_from_one_address(self):
        """40 parallel connections each guess alice's password once: no
        more than the budget's 5 guesses are checked, the rest get 421."""
        replies = []
        lock = threading.Lock()

        def guess(i):
            try:
                with T.Ctl(self.server) as c:
                    if c.greeting.code != 220:
                        r = c.greeting.code
                    else:
                        c.expect("USER alice", 331)
                        r = c.cmd("PASS guess%d" % i, tmo=T.timeout(15)).code
            except (EOFError, OSError) as e:
                r = repr(e)
            with lock:
                replies.append(r)

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(60))
        self.assertEqual(len(replies), 40)
        checked = replies.count(530)
        self.assertLessEqual(checked, 5, "guesses answered 530: %d; replies %r"
                             % (checked, replies))
        self.assertEqual(replies.count(421), 40 - checked, "replies: %r" % replies)
        # The address is banned now: refused at the greeting, even for bob.
        with T.Ctl(self.server) as c:
            self.assertEqual(c.greeting.code, 421, str(c.greeting))
        self.assertIn("banned", read_log(self.base))

        # The account is banned too, from any address; other accounts are not.
        if not T.can_bind("127.0.0.2"):
            return
        with T.Ctl(self.server, source="127.0.0.2") as c:
            self.assertEqual(c.greeting.code, 220)
            c.expect("USER alice", 331)
            self.assertEqual(c.cmd("PASS wonderland", tmo=T.timeout(10)).code, 421)
        with T.Ctl(self.server, source="127.0.0.2") as c:
            c.login("bob", "builder")


class BruteForceForkingTest(BruteForceTest):
    server_args = ("--max-login-fails", "5", "--ban-time", "60", "--mode", "forking")


class AccountGuessingFromManyAddressesTest(T.ServerTestCase):
    users = [("alice", "wonderland")]
    server_args = ("--max-login-fails", "4", "--ban-time", "60")

    def test_account_budget(self):
        sources = ["127.0.0.%d" % i for i in range(3, 11)]
        if not all(T.can_bind(s) for s in sources):
            self.skipTest("127.0.0.3-10 cannot be bound")
        codes = []
        for src in sources:
            with T.Ctl(self.server, source=src) as c:
                c.expect("USER alice", 331)
                codes.append(c.cmd("PASS nope", tmo=T.timeout(10)).code)
        # Four failures, the fourth starts the ban; every later guess at
        # alice is refused unchecked, whatever the address.
        self.assertEqual(codes, [530, 530, 530, 421] + [421] * 4, codes)


NETNS_CHILD = "--netns-child"


def wait_local_routes(addrs):
    """The kernel installs an address's routes from a work queue, even with
    nodad: wait (bounded) until every address has its local route and its
    prefix route, or a client bound to it meets "Network is unreachable"."""
    deadline = time.monotonic() + T.timeout(10)
    while True:
        local = subprocess.run(["ip", "-6", "route", "show", "table", "local"],
                               capture_output=True, text=True, timeout=30).stdout
        main = subprocess.run(["ip", "-6", "route", "show"],
                              capture_output=True, text=True, timeout=30).stdout
        have = set(w for line in local.splitlines() for w in line.split()[1:2])
        if all(a in have for a in addrs) and "2001:db8:1::/64" in main \
                and "2001:db8:2::/64" in main:
            return
        if time.monotonic() > deadline:
            raise AssertionError("routes not installed:\n" + local + main)
        time.sleep(0.02)  # polling the kernel's state, bounded above


def netns_child(prefix_args, expect_third):
    """Runs inside a fresh network namespace: lo with addresses of two /64s."""
    run = lambda *a: subprocess.run(a, check=True, timeout=30)  # noqa: E731
    run("ip", "link", "set", "lo", "up")
    addrs = ("2001:db8:1::1", "2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::12",
             "2001:db8:2::10")
    for a in addrs:
        run("ip", "-6", "addr", "add", a + "/64", "dev", "lo", "nodad")
    wait_local_routes(addrs)
    base = tempfile.mkdtemp(prefix="ftpd-netns-")
    try:
        root = os.path.join(base, "root")
        os.mkdir(root)
        srv = T.Server(root, ["--max-per-ip", "2", "--max-clients", "50"] + prefix_args,
                       listen="[2001:db8:1::1]:0", workdir=base)
        srv.start()
        held = []
        try:
            for src in ("2001:db8:1::10", "2001:db8:1::11"):
                c = T.Ctl(srv, source=src)
                held.append(c)
                assert c.greeting.code == 220, str(c.greeting)
            with T.Ctl(srv, source="2001:db8:1::12") as c:
                assert c.greeting.code == expect_third, \
                    "third address of the /64: %s" % c.greeting
            with T.Ctl(srv, source="2001:db8:2::10") as c:
                assert c.greeting.code == 220, "another /64: %s" % c.greeting
        finally:
            for c in held:
                c.close()
            rc = srv.stop()
        assert rc == 0, "server exit %r" % rc
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Ipv6PrefixTest(unittest.TestCase):
    def run_child(self, prefix_args, expect_third):
        if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
            self.skipTest("needs root, unshare and ip for a network namespace")
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            self.skipTest("cannot create a network namespace")
        cmd = ["unshare", "-n", sys.executable, os.path.abspath(__file__), NETNS_CHILD,
               str(expect_third)] + prefix_args
        p = subprocess.run(cmd, capture_output=True, timeout=T.timeout(60))
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_a_slash_64_is_one_address(self):
        self.run_child([], 421)

    def test_prefix_128_counts_each_address(self):
        self.run_child(["--ipv6-prefix", "128"], 220)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == NETNS_CHILD:
        netns_child(sys.argv[3:], int(sys.argv[2]))
        sys.exit(0)
    T.main()
