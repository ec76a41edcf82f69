"""sockserv-ftpd --run-as: the files root opens before the drop stay out of the user's reach.

Started as root with --run-as nobody, the server reads the config and users
files and opens the logs as root, then gives the logs to nobody. Each test
plays the part of nobody (or of what nobody left behind) and plants what it
would plant - a symbolic link at the log path, a hard link, a swapped
directory, a writable users file - then checks that the server refused to
start (exit 2, one line naming the option, the path and the reason) and
that the root-owned victim file is untouched. The victim is a file of the
test's own, never a system file.
"""
import os
import pwd
import shutil
import signal
import socket
import stat
import tempfile
import time
import unittest

import ftpdtest as T

VICTIM_DATA = b"victim: root only\n"


def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@unittest.skipUnless(os.geteuid() == 0, "needs root to start the server with --run-as")
@unittest.skipUnless(nobody() is not None, "needs the user nobody")
class RootFilesTest(unittest.TestCase):
    def setUp(self):
        self.nobody = nobody()
        self.base = tempfile.mkdtemp(prefix="ftpd-rootfiles-")
        self.addCleanup(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o755)
        self.served = self.mkdir("served")
        T.write(os.path.join(self.served, "a.txt"), b"hello\n")
        os.chmod(os.path.join(self.served, "a.txt"), 0o644)
        # A directory only root may write, and one nobody owns.
        self.safe = self.mkdir("safe")
        self.userdir = self.mkdir("nobodys", owner=self.nobody.pw_uid)
        # The file the attacker is after.
        self.victim = os.path.join(self.mkdir("secret"), "victim")
        with open(self.victim, "wb") as f:
            f.write(VICTIM_DATA)
        os.chmod(self.victim, 0o600)

    def mkdir(self, name, mode=0o755, owner=0, group=0):
        path = os.path.join(self.base, name)
        os.mkdir(path)
        os.chmod(path, mode)  # not subject to the umask
        os.chown(path, owner, group)
        return path

    def as_nobody(self, path):
        """Give a planted file or link to nobody, as if nobody had made it."""
        os.lchown(path, self.nobody.pw_uid, self.nobody.pw_gid)

    def assert_victim_untouched(self):
        st = os.lstat(self.victim)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0), "the victim was handed over")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, "the victim's mode changed")
        self.assertEqual(T.read(self.victim), VICTIM_DATA, "the victim was written to")

    def start(self, args):
        """Start a server; returns (server or None, exit status, stderr lines)."""
        workdir = tempfile.mkdtemp(dir=self.base, prefix="run-")
        srv = T.Server(self.served, list(args), workdir=workdir)
        try:
            srv.start()
        except T.ServerError:
            with open(srv.stderr_path, "rb") as f:
                err = f.read().decode("utf-8", "replace")
            return None, srv.returncode, [l for l in err.splitlines() if l.strip()]
        self.addCleanup(srv.stop)
        return srv, None, []

    def assert_refused(self, args, option, path, reason, victim=False):
        """The server must exit 2 with one line naming option, path and
        reason; with victim, the victim is looked at first."""
        srv, rc, lines = self.start(args)
        if srv is not None:
            srv.stop()
        if victim:
            self.assert_victim_untouched()
        if srv is not None:
            self.fail("server started with %s %s (expected: %s)" % (option, path, reason))
        self.assertEqual(rc, 2, lines)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("%s: %s: " % (option, path), lines[0])
        self.assertIn(reason, lines[0])
        return lines[0]

    def run_as(self, *args):
        return ["--run-as", "nobody"] + list(args)

    # Logs -----------------------------------------------------------------

    def test_symlink_planted_in_users_directory(self):
        for option in ("--log", "--xferlog"):
            with self.subTest(option=option):
                link = os.path.join(self.userdir, option[2:])
                os.symlink(self.victim, link)
                self.as_nobody(link)
                self.assert_refused(self.run_as(option, link), option, link,
                                    "directory %s belongs to nobody" % self.userdir,
                                    victim=True)

    def test_directory_swapped_above_the_log(self):
        # The admin named a root-owned directory below one of nobody's; nobody
        # has put a link to the victim's directory in its place.
        victim_dir = os.path.dirname(self.victim)
        os.rename(self.victim, os.path.join(victim_dir, "ftpd.log"))
        self.victim = os.path.join(victim_dir, "ftpd.log")
        swapped = os.path.join(self.userdir, "logs")
        os.symlink(victim_dir, swapped)
        self.as_nobody(swapped)
        log = os.path.join(swapped, "ftpd.log")
        self.assert_refused(self.run_as("--log", log), "--log", log,
                            "directory %s belongs to nobody" % self.userdir, victim=True)

    def test_log_directory_writable_by_the_user(self):
        group_dir = self.mkdir("group", 0o775, group=self.nobody.pw_gid)
        sticky_dir = self.mkdir("sticky", 0o1777)
        cases = [(self.userdir, "belongs to nobody"),
                 (group_dir, "is writable by nobody"),
                 # Sticky like /tmp: nobody cannot replace a file of root's
                 # there, but can create the name once the log is rotated.
                 (sticky_dir, "is writable by nobody")]
        for d, reason in cases:
            for option in ("--log", "--xferlog"):
                with self.subTest(directory=d, option=option):
                    path = os.path.join(d, "ftpd.log")
                    self.assert_refused(self.run_as(option, path), option, path,
                                        "directory %s %s" % (d, reason))
                    self.assertFalse(os.path.lexists(path), "the log was created")

    def test_symlink_log_in_root_directory(self):
        link = os.path.join(self.safe, "ftpd.log")
        os.symlink(self.victim, link)
        for args in (self.run_as("--log", link), ["--log", link]):
            with self.subTest(args=args):
                self.assert_refused(args, "--log", link,
                                    "is a symbolic link; refusing to follow it", victim=True)

    def test_hard_link_to_a_root_file(self):
        # Left behind from a time the directory was open to nobody.
        log = os.path.join(self.safe, "ftpd.log")
        os.link(self.victim, log)
        self.assert_refused(self.run_as("--log", log), "--log", log,
                            "has 2 hard links; refusing to hand it to nobody", victim=True)

    def test_log_of_another_user(self):
        other = self.nobody.pw_uid - 1 if self.nobody.pw_uid > 1 else 12345
        log = os.path.join(self.safe, "ftpd.log")
        T.write(log, b"someone else's\n")
        os.chown(log, other, 0)
        self.assert_refused(self.run_as("--xferlog", log), "--xferlog", log,
                            "belongs to uid %d, not to root or nobody" % other)
        self.assertEqual(os.stat(log).st_uid, other)

    def test_log_that_is_not_a_regular_file(self):
        fifo = os.path.join(self.safe, "ftpd.log")
        os.mkfifo(fifo, 0o600)
        self.assert_refused(self.run_as("--log", fifo), "--log", fifo,
                            "is not a regular file")
        self.assertEqual(os.stat(fifo).st_uid, 0)

    def wait_for_line(self, path, text, srv):
        """Poll a log (written by the server) until a line holds text; each
        round makes the server log a line, since a reopen waits for one."""
        deadline = time.monotonic() + T.timeout(10)
        while time.monotonic() < deadline:
            with T.Ctl(srv) as c:
                c.expect("QUIT", 221)
            if os.path.exists(path) and text.encode() in T.read(path):
                return True
            time.sleep(0.05)
        return False

    def test_safe_log_is_handed_over_and_reopened(self):
        log = os.path.join(self.safe, "ftpd.log")
        xferlog = os.path.join(self.safe, "xferlog")
        srv, rc, lines = self.start(self.run_as("--log", log, "--xferlog", xferlog))
        self.assertIsNotNone(srv, "safe logs refused: %s" % lines)
        for path in (log, xferlog):
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_gid), (self.nobody.pw_uid, self.nobody.pw_gid),
                             "%s not handed to nobody" % path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        # Rotated away by root, with nothing in its place: nobody cannot
        # create a file in the directory, so it keeps the old one and says so.
        os.rename(log, log + ".1")
        os.rename(xferlog, xferlog + ".1")
        srv.signal(signal.SIGHUP)
        self.assertTrue(self.wait_for_line(log + ".1", "cannot reopen %s" % log, srv),
                        "no word of the failed reopen in the old log")
        self.assertTrue(self.wait_for_line(log + ".1", "cannot reopen %s" % xferlog, srv))
        self.assertFalse(os.path.exists(log))
        # Rotated as logrotate's "create 0640 nobody nogroup" does: the new
        # files are opened and written.
        for path in (log, xferlog):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            os.fchown(fd, self.nobody.pw_uid, self.nobody.pw_gid)
            os.close(fd)
        srv.signal(signal.SIGHUP)
        self.assertTrue(self.wait_for_line(log, "disconnect", srv),
                        "nothing logged into the new log after SIGHUP")
        f = T.ftp_connect(srv)
        try:
            self.assertEqual(T.retr_bytes(f, "a.txt"), b"hello\n")
        finally:
            T.quit_quietly(f)
        deadline = time.monotonic() + T.timeout(10)
        while b"a.txt" not in T.read(xferlog):
            self.assertLess(time.monotonic(), deadline, "nothing in the new xferlog")
            time.sleep(0.05)
        self.assertIsNone(srv.proc.poll(), "the server stopped")

    # Users and config files -----------------------------------------------

    def users_file(self, directory, name="users"):
        path = os.path.join(directory, name)
        T.write_users(path, [("alice", "pw")])
        os.chmod(path, 0o600)
        return path

    def test_users_file_writable_by_the_user(self):
        owned = self.users_file(self.safe, "owned")
        os.chown(owned, self.nobody.pw_uid, 0)
        world = self.users_file(self.safe, "world")
        os.chmod(world, 0o666)
        group = self.users_file(self.safe, "group")
        os.chown(group, 0, self.nobody.pw_gid)
        os.chmod(group, 0o660)
        in_dir = self.users_file(self.userdir)
        cases = [(owned, "belongs to nobody, who could change it"),
                 (world, "is writable by nobody, who could change it"),
                 (group, "is writable by nobody, who could change it"),
                 (in_dir, "directory %s belongs to nobody" % self.userdir)]
        for path, reason in cases:
            with self.subTest(path=path):
                self.assert_refused(self.run_as("--users", path), "--users", path, reason)

    def test_users_file_symlink(self):
        real = self.users_file(self.safe)
        link = os.path.join(self.safe, "users.link")
        os.symlink(real, link)
        for args in (self.run_as("--users", link), ["--users", link]):
            with self.subTest(args=args):
                self.assert_refused(args, "--users", link,
                                    "is a symbolic link; refusing to follow it")

    def test_config_file_writable_by_the_user(self):
        # --run-as itself comes from the file, so the check follows the parse.
        conf = os.path.join(self.userdir, "ftpd.conf")
        with open(conf, "w") as f:
            f.write("run-as = nobody\nanonymous = yes\n")
        self.assert_refused(["-c", conf], "-c", conf,
                            "directory %s belongs to nobody" % self.userdir)
        safe_conf = os.path.join(self.safe, "ftpd.conf")
        shutil.copy(conf, safe_conf)
        os.chown(safe_conf, self.nobody.pw_uid, self.nobody.pw_gid)
        self.assert_refused(["-c", safe_conf], "-c", safe_conf, "belongs to nobody")

    def test_config_file_symlink_refused_and_safe_files_work(self):
        users = self.users_file(self.safe)
        conf = os.path.join(self.safe, "ftpd.conf")
        with open(conf, "w") as f:
            f.write("run-as = nobody\nusers = %s\n" % users)
        link = os.path.join(self.safe, "ftpd.conf.link")
        os.symlink(conf, link)
        # The link is refused and the file it names works.
        self.assert_refused(["-c", link], "-c", link,
                            "is a symbolic link; refusing to follow it")
        srv, rc, lines = self.start(["-c", conf])
        self.assertIsNotNone(srv, "safe files refused: %s" % lines)
        f = T.ftp_connect(srv, "alice", "pw")
        try:
            self.assertEqual(T.retr_bytes(f, "a.txt"), b"hello\n")
        finally:
            T.quit_quietly(f)


if __name__ == "__main__":
    T.main()
