"""sockserv-ftpd as a service.

- SIGHUP reloads the users file without dropping sessions, in threading and
  forking mode: a logged-in session goes on with the account it logged in
  with (even once removed from the file), a user added can log in, a user
  removed cannot (also one who sent USER before the reload), and a broken
  file keeps the old table and the session log names the file and line.
  Session processes ignore SIGHUP.
- --check-config: exit 0 with every setting printed as "key = value" (the
  output read back as a config file gives the same output), binding
  nothing; exit 2 with one line naming file and line for config file and
  users file errors, and the option for bad options.
- --syslog: the session log reaches /dev/log with the configured facility.
  The server runs in a mount namespace of its own (unshare -m) in which
  /dev/log is a datagram socket this test binds; skipped, with the reason,
  when that namespace cannot be made.
- docs/sockserv-ftpd.service passes `systemd-analyze verify` (with the
  built binary in ExecStart), when systemd-analyze is present.
- make install DESTDIR=... puts the server, man page, example config and
  unit where they belong, the unit's ExecStart matching PREFIX.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import ftpdtest as T


def wait_for(pred, limit, what):
    deadline = time.monotonic() + T.timeout(limit)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)  # polling a file: nothing signals a new log line


def log_lines(path, text):
    try:
        with open(path, "r", errors="replace") as f:
            return [l for l in f if text in l]
    except FileNotFoundError:
        return []


def session_children(pid):
    """PIDs of the server's session processes (forking mode)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ---------------------------------------------------------------------------
# SIGHUP


class ReloadTest(unittest.TestCase):
    mode_args = ()

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="ftpd-service-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        T.write(os.path.join(self.root, "a.txt"), b"hello\n")
        self.users = os.path.join(self.base, "users")
        self.hash = T.hash_password("pw")
        self.write_users("alice:%s\nbob:%s\n" % (self.hash, self.hash))
        self.log = os.path.join(self.base, "ftpd.log")
        self.srv = T.Server(self.root, ["--users", self.users, "--log", self.log] +
                            list(self.mode_args), workdir=self.base).start()

    def tearDown(self):
        rc = self.srv.stop()
        self.assertEqual(rc, 0, "exit status after SIGTERM; stderr: %s" %
                         self.srv.stderr_tail())

    def write_users(self, text):
        # Replaced, as an editor saves it.
        tmp = self.users + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.users)

    def hup(self, text):
        """SIGHUP, then wait for a new session log line containing text."""
        before = len(log_lines(self.log, text))
        self.srv.signal(signal.SIGHUP)
        lines = wait_for(lambda: len(log_lines(self.log, text)) > before and
                         log_lines(self.log, text), 10, "log line %r" % text)
        return lines[-1]

    def login_fails(self, user):
        with T.Ctl(self.srv) as c:
            c.expect("USER " + user, 331)
            self.assertEqual(c.cmd("PASS pw").code, 530, "%s could log in" % user)

    def session_works(self, c):
        self.assertEqual(c.cmd("PWD").code, 257)
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        self.assertIn(c.cmd("RETR a.txt").code, (125, 150))
        self.assertEqual(T.recv_all(get()), b"hello\n")
        self.assertEqual(c.reply().code, 226)

    def test_reload_keeps_sessions(self):
        alice = T.Ctl(self.srv)
        self.addCleanup(alice.close)
        alice.login("alice", "pw")
        self.session_works(alice)
        # bob has said who he is, but not yet his password.
        bob = T.Ctl(self.srv)
        self.addCleanup(bob.close)
        bob.expect("USER bob", 331)

        # alice and bob removed, carol added.
        self.write_users("# reloaded\ncarol:%s\n" % self.hash)
        line = self.hup("reload:")
        self.assertIn("%s: 1 user(s)" % self.users, line)
        if self.mode_args:
            # Session processes ignore SIGHUP, also sent to them directly.
            kids = session_children(self.srv.proc.pid)
            self.assertTrue(kids, "no session processes found")
            for pid in kids:
                os.kill(pid, signal.SIGHUP)

        # alice's session goes on as alice.
        self.session_works(alice)
        with T.Ctl(self.srv) as c:
            c.login("carol", "pw")
            self.session_works(c)
        self.login_fails("alice")
        self.assertEqual(bob.cmd("PASS pw").code, 530, "bob logged in after his removal")

        # A broken file: the table stays (carol in, dave not), and the log
        # names the file and the line.
        self.write_users("carol:%s\ndave:%s\ndave has no hash\n" % (self.hash, self.hash))
        line = self.hup("users loaded before stay in use")
        self.assertIn("%s:3: " % self.users, line)
        with T.Ctl(self.srv) as c:
            c.login("carol", "pw")
        self.login_fails("dave")
        self.session_works(alice)
        self.assertEqual(alice.cmd("QUIT").code, 221)
        self.assertIsNone(self.srv.proc.poll(), "SIGHUP stopped the server")


class ReloadForkingTest(ReloadTest):
    mode_args = ("--mode", "forking")


# ---------------------------------------------------------------------------
# --check-config


class CheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="ftpd-check-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        os.mkdir(self.root)
        self.users = os.path.join(self.base, "users")
        T.write_users(self.users, [("alice", "pw")])

    def run_check(self, *args):
        p = subprocess.run([T.ftpd_path(), "--check-config"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           cwd=self.base, timeout=T.timeout(30))
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def conf(self, text, name="ftpd.conf"):
        path = os.path.join(self.base, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_good_config_prints_every_setting(self):
        # A port that is taken: --check-config must not try to bind it.
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        listen = "127.0.0.1:%d" % busy.getsockname()[1]
        conf = self.conf("root = %s\nusers = %s\nidle-timeout = 77\nmode = forking\n"
                         "syslog = yes\nsyslog-facility = local5\n" % (self.root, self.users))
        rc, out, err = self.run_check("-c", conf, "--listen", listen, "--max-clients", "9")
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        settings = {}
        for line in out.splitlines():
            m = re.match(r"^(#\s)?([a-z0-9-]+) =(?: (.*))?$", line)
            self.assertIsNotNone(m, "not a setting line: %r" % line)
            settings[m.group(2)] = m.group(3)
        self.assertEqual(settings["listen"], listen)
        self.assertEqual(settings["root"], os.path.realpath(self.root))
        self.assertEqual(settings["users"], self.users)
        self.assertEqual(settings["idle-timeout"], "77")
        self.assertEqual(settings["max-clients"], "9")
        self.assertEqual(settings["mode"], "forking")
        self.assertEqual(settings["syslog"], "yes")
        self.assertEqual(settings["syslog-facility"], "local5")
        self.assertEqual(settings["anonymous"], "no")  # the effective value
        # Every option --help names is printed.
        helptext = subprocess.run([T.ftpd_path(), "--help"], stdout=subprocess.PIPE,
                                  timeout=T.timeout(30)).stdout.decode()
        for opt in re.findall(r"^  --([a-z0-9-]+)", helptext, re.M):
            if opt not in ("help", "check-config"):
                self.assertIn(opt, settings, "--%s not printed" % opt)
        # Read back as a config file, it says the same.
        again = self.conf(out, "effective.conf")
        rc, out2, err = self.run_check("-c", again)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out2, out)

    def assert_config_error(self, args, pattern):
        rc, out, err = self.run_check(*args)
        self.assertEqual(rc, 2, "exit status; stdout %r stderr %r" % (out, err))
        self.assertEqual(out, "", "settings printed despite the error")
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "expected one error line: %r" % err)
        self.assertRegex(lines[0], pattern)

    def test_config_file_errors(self):
        cases = [
            ("idle-timeout = 5\n\nno-such-key = 1\n", ":3: unknown key"),
            ("# ok\nidle-timeout = soon\n", ":2: idle-timeout: "),
            ("mode = threading\nmode\n", ":2: expected 'key = value'"),
            ("syslog-facility = kern\n", ":1: syslog-facility: 'kern' is not"),
            ("syslog = maybe\n", ":1: syslog: "),
        ]
        for text, problem in cases:
            conf = self.conf(text)
            self.assert_config_error(["-c", conf], "^sockserv-ftpd: " + re.escape(conf + problem))

    def test_users_file_errors(self):
        h = T.hash_password("pw")
        cases = [
            ("alice:%s\nbroken\n" % h, ":2: expected name:HASH"),
            ("alice:%s\nalice:%s\n" % (h, h), ":2: user alice listed twice"),
            ("# c\n\nalice:%s:../up\n" % h, ":3: user alice: home must be relative"),
            ("alice:%s::colour=1\n" % h, ":1: user alice: unknown setting"),
        ]
        for text, problem in cases:
            users = self.conf(text, "users.bad")
            self.assert_config_error(["--root", self.root, "--users", users],
                                     "^sockserv-ftpd: " + re.escape(users + problem))
        self.assert_config_error(["--users", os.path.join(self.base, "missing")],
                                 "^sockserv-ftpd: --users: ")

    def test_bad_options(self):
        for args, option in [(["--idle-timeout", "0"], "--idle-timeout"),
                             (["--syslog-facility", "mail"], "--syslog-facility"),
                             (["--listen", "nowhere"], "--listen"),
                             (["--root", os.path.join(self.base, "none")], "--root"),
                             (["--no-such-option"], "--no-such-option"),
                             (["--mode"], "--mode")]:
            self.assert_config_error(args, "^sockserv-ftpd: " + re.escape(option) + ": ")


# ---------------------------------------------------------------------------
# --syslog


def unshare_problem():
    """None when a private mount namespace can be made, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare program"
    if os.geteuid() != 0:
        return "not root: cannot make a mount namespace with /dev/log of our own"
    try:
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare failed: %s" % e
    if p.returncode != 0:
        return "unshare -m failed: %s" % p.stdout.decode().strip()
    return None


# Inside the namespace: a /dev of our own (the devices a process may need,
# bound from the real /dev, and the test's socket as log), then the server.
DEV_SCRIPT = r'''set -e
D=$1; shift
for n in null zero full random urandom; do
    : > "$D/$n"
    mount --bind "/dev/$n" "$D/$n"
done
mount --rbind "$D" /dev
exec "$@"
'''


class NamespacedServer(T.Server):
    def __init__(self, devdir, *a, **kw):
        super().__init__(*a, **kw)
        self.devdir = devdir

    def command(self):
        return (["unshare", "-m", "--propagation", "private", "sh", "-c", DEV_SCRIPT, "sh",
                 self.devdir] + super().command())


UNSHARE_PROBLEM = unshare_problem()
if UNSHARE_PROBLEM is not None:
    print("SKIP SyslogTest: %s" % UNSHARE_PROBLEM)


@unittest.skipIf(UNSHARE_PROBLEM is not None, UNSHARE_PROBLEM or "")
class SyslogTest(unittest.TestCase):
    def start(self, *args):
        self.base = tempfile.mkdtemp(prefix="ftpd-syslog-")
        self.addCleanup(shutil.rmtree, self.base, True)
        devdir = os.path.join(self.base, "dev")
        os.mkdir(devdir)
        self.rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.rx.close)
        self.rx.bind(os.path.join(devdir, "log"))
        root = os.path.join(self.base, "root")
        T.write(os.path.join(root, "a.txt"), b"hello\n")
        users = os.path.join(self.base, "users")
        T.write_users(users, [("alice", "pw")])
        self.srv = NamespacedServer(devdir, root, ["--syslog", "--users", users] + list(args),
                                    workdir=self.base).start()
        self.addCleanup(self.stop)

    def stop(self):
        rc = self.srv.stop()
        self.assertEqual(rc, 0, self.srv.stderr_tail())

    def receive(self, text):
        """The first syslog datagram containing text: (pri, tag pid, message)."""
        deadline = time.monotonic() + T.timeout(10)
        seen = []
        while time.monotonic() < deadline:
            self.rx.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = self.rx.recv(65536).decode("utf-8", "replace")
            except socket.timeout:
                break
            seen.append(msg)
            m = re.match(r"^<(\d+)>.*? sockserv-ftpd\[(\d+)\]: (.*)$", msg, re.S)
            self.assertIsNotNone(m, "not a syslog message: %r" % msg)
            if text in m.group(3):
                return int(m.group(1)), int(m.group(2)), m.group(3)
        raise AssertionError("no syslog message with %r; got %r" % (text, seen))

    def test_default_facility_ftp(self):
        self.start()
        pri, pid, msg = self.receive("listening on")
        self.assertEqual(pri, 11 * 8 + 6, "not LOG_FTP|LOG_INFO")  # 94
        self.assertEqual(pid, self.srv.proc.pid)
        # Nothing of the session log on standard error.
        self.assertNotIn("listening on", self.srv.stderr_tail())

    def test_facility_local3_from_forked_sessions(self):
        self.start("--syslog-facility", "local3", "--mode", "forking")
        pri, pid, _ = self.receive("listening on")
        self.assertEqual(pri, 19 * 8 + 6, "not LOG_LOCAL3|LOG_INFO")  # 158
        f = T.ftp_connect(self.srv, "alice", "pw")
        try:
            self.assertEqual(T.retr_bytes(f, "a.txt"), b"hello\n")
        finally:
            T.quit_quietly(f)
        pri, session_pid, msg = self.receive("a.txt")
        self.assertEqual(pri, 158)
        self.assertNotEqual(session_pid, pid, "logged by the listener, not the session")


# ---------------------------------------------------------------------------
# The systemd unit and make install

UNIT = os.path.join(T.REPO, "docs", "sockserv-ftpd.service")


class UnitFileTest(unittest.TestCase):
    def test_unit_has_the_essentials(self):
        with open(UNIT) as f:
            text = f.read()
        for line in ("ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict",
                     "NoNewPrivileges=yes", "PrivateTmp=yes",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID "
                     "CAP_SYS_CHROOT CAP_DAC_READ_SEARCH CAP_CHOWN"):
            self.assertIn("\n" + line + "\n", text)
        self.assertRegex(text, r"\nExecStart=/usr/local/sbin/sockserv-ftpd .*--syslog\n")

    @unittest.skipIf(shutil.which("systemd-analyze") is None, "no systemd-analyze")
    def test_systemd_analyze_verify(self):
        tmp = tempfile.mkdtemp(prefix="ftpd-unit-")
        self.addCleanup(shutil.rmtree, tmp, True)
        unit = os.path.join(tmp, "sockserv-ftpd.service")
        with open(UNIT) as f:
            text = f.read().replace("/usr/local/sbin/sockserv-ftpd", T.ftpd_path())
        with open(unit, "w") as f:
            f.write(text)
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=T.timeout(60))
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        # A bad setting is only a warning: none may name the unit.
        complaints = [l for l in out.splitlines() if "sockserv-ftpd.service" in l]
        self.assertEqual(complaints, [], out)


if shutil.which("systemd-analyze") is None:
    print("SKIP UnitFileTest.test_systemd_analyze_verify: no systemd-analyze")


class InstallTest(unittest.TestCase):
    def test_make_install_destdir(self):
        dest = tempfile.mkdtemp(prefix="ftpd-install-")
        self.addCleanup(shutil.rmtree, dest, True)
        env = dict(os.environ)
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
            env.pop(k, None)
        build = os.path.dirname(T.bin_dir())
        prefix = "/opt/sockserv"
        p = subprocess.run(["make", "-s", "-C", T.REPO, "install", "DESTDIR=" + dest,
                            "PREFIX=" + prefix, "BUILD=" + build],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                           timeout=T.timeout(300))
        self.assertEqual(p.returncode, 0, p.stdout.decode(errors="replace"))
        top = dest + prefix
        server = os.path.join(top, "sbin", "sockserv-ftpd")
        self.assertTrue(os.access(server, os.X_OK), "no %s" % server)
        for path in ("share/man/man8/sockserv-ftpd.8", "share/man/man3/sockserv.3",
                     "etc/sockserv-ftpd.conf.example", "lib/systemd/system/sockserv-ftpd.service",
                     "include/sockserv.h", "lib/pkgconfig/sockserv.pc"):
            self.assertTrue(os.path.isfile(os.path.join(top, path)), "not installed: " + path)
        with open(os.path.join(top, "lib/systemd/system/sockserv-ftpd.service")) as f:
            unit = f.read()
        self.assertIn("\nExecStart=%s/sbin/sockserv-ftpd -c %s/etc/sockserv-ftpd.conf " %
                      (prefix, prefix), unit)
        self.assertNotIn("/usr/local", unit)
        # The installed server runs and reads the installed example.
        out = subprocess.run([server, "--version"], stdout=subprocess.PIPE,
                             timeout=T.timeout(30)).stdout.decode()
        self.assertTrue(out.startswith("sockserv-ftpd "), out)
        root = tempfile.mkdtemp(prefix="ftpd-install-root-")
        self.addCleanup(shutil.rmtree, root, True)
        p = subprocess.run([server, "-c", os.path.join(top, "etc/sockserv-ftpd.conf.example"),
                            "--root", root, "--check-config"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=T.timeout(30))
        self.assertEqual(p.returncode, 0, p.stderr.decode())


if __name__ == "__main__":
    T.main()
