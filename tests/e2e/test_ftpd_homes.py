"""sockserv-ftpd: a user's home is confined like every other path.

The attacks: a home that is a symlink to "/", a home whose middle component
is a symlink leading out of the root, a home that does not exist, and an
anonymous writer that renames an outward symlink onto another user's home
name. None of them may give a session root outside --root: such a login
fails exactly as a wrong password does (same reply, same delay), and no
byte from outside the root is ever served. Each case runs in threading and
in forking mode.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

SECRET = b"outside the root: must never be served\n"
# Every failed login is answered this long after its PASS (FTPD_LOGIN_FAIL_DELAY_MS).
FAIL_DELAY = 1.0


def outside_dir(root):
    return os.path.join(os.path.dirname(root), "outside")


def timed_pass(c, user, password):
    """USER + PASS on a raw connection; returns (reply to PASS, seconds)."""
    c.expect("USER " + user, 331)
    start = time.monotonic()
    r = c.cmd("PASS " + password, tmo=T.timeout(10))
    return r, time.monotonic() - start


class HomeConfinementTest(T.ServerTestCase):
    users = [("bob", "bobpw", "homes/bob"),        # a symlink to "/"
             ("carol", "carolpw", "a/b"),          # "a" is a symlink out of the root
             ("dave", "davepw", "missing"),        # no such directory
             ("erin", "erinpw", "homes/erin")]     # a real home
    server_args = ("--max-login-fails", "0")

    @classmethod
    def make_tree(cls, root):
        out = outside_dir(root)
        os.makedirs(os.path.join(out, "b"))
        T.write(os.path.join(out, "secret.txt"), SECRET)
        T.write(os.path.join(out, "b", "secret.txt"), SECRET)
        os.makedirs(os.path.join(root, "homes", "erin"))
        T.write(os.path.join(root, "homes", "erin", "mine.txt"), b"erin's file\n")
        os.symlink("/", os.path.join(root, "homes", "bob"))
        os.symlink(out, os.path.join(root, "a"))

    def assert_refused_like_wrong_password(self, user, password):
        with T.Ctl(self.server) as c:
            wrong, t_wrong = timed_pass(c, user, password + "-wrong")
        with T.Ctl(self.server) as c:
            right, t_right = timed_pass(c, user, password)
            self.assertEqual(right.code, 530, "%s with the right password: %s" % (user, right))
            # Nothing works afterwards: the session is not logged in.
            self.assertEqual(c.cmd("RETR /etc/passwd").code, 530)
        self.assertEqual(wrong.code, 530, str(wrong))
        self.assertEqual(right.raw, wrong.raw, "the reply tells a right password apart")
        self.assertGreaterEqual(t_right, FAIL_DELAY * 0.95, "undelayed refusal")
        self.assertLess(abs(t_right - t_wrong), 0.15 * T.SLOW,
                        "right password %.3fs vs wrong %.3fs" % (t_right, t_wrong))

    def test_home_symlink_to_slash(self):
        self.assert_refused_like_wrong_password("bob", "bobpw")

    def test_home_through_outward_symlink(self):
        self.assert_refused_like_wrong_password("carol", "carolpw")

    def test_missing_home(self):
        self.assert_refused_like_wrong_password("dave", "davepw")

    def test_real_home_still_works(self):
        c = self.ctl(login=False)
        c.login("erin", "erinpw")
        self.assertIn('"/"', c.cmd("PWD").text)
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("RETR mine.txt", 150, 125)
        self.assertEqual(T.recv_all(get()), b"erin's file\n")
        self.assertEqual(c.reply().code, 226)
        # ".." at the home's top stays there.
        self.assertEqual(c.cmd("CWD ../..").code, 250)
        self.assertEqual(c.cmd("SIZE mine.txt").code, 213)

    def test_home_swapped_for_a_symlink_after_start(self):
        """Re-resolved at each login: a home replaced by an outward link
        while the server runs is refused at the next login."""
        home = self.path("homes", "erin")
        moved = self.path("homes", "erin.real")
        os.rename(home, moved)
        os.symlink(outside_dir(self.root), home)
        try:
            with T.Ctl(self.server) as c:
                r, _ = timed_pass(c, "erin", "erinpw")
            self.assertEqual(r.code, 530, str(r))
        finally:
            os.unlink(home)
            os.rename(moved, home)
        self.assert_alive_as("erin", "erinpw")

    def assert_alive_as(self, user, password):
        with T.Ctl(self.server) as c:
            c.login(user, password)


class HomeConfinementForkingTest(HomeConfinementTest):
    server_args = ("--max-login-fails", "0", "--mode", "forking")


class AnonymousRenameOntoHomeTest(T.ServerTestCase):
    """An anonymous writer renames a symlink that leads out of the root
    onto the name of another user's home."""
    users = [("victim", "victimpw", "victim")]
    anonymous = True
    server_args = ("--anonymous-modify", "--max-login-fails", "0")
    mode_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server_args = cls.server_args + cls.mode_args
        super().setUpClass()

    @classmethod
    def make_tree(cls, root):
        out = outside_dir(root)
        os.makedirs(out)
        T.write(os.path.join(out, "secret.txt"), SECRET)
        os.mkdir(os.path.join(root, "victim"))
        # Planted by a local account, or left over: a link leading out.
        os.symlink(out, os.path.join(root, "outlink"))

    def test_rename_attack(self):
        with T.Ctl(self.server) as a:
            a.login("anonymous", "x@")
            self.assertEqual(a.cmd("RNFR victim").code, 350)
            self.assertEqual(a.cmd("RNTO victim.old").code, 250)
            self.assertEqual(a.cmd("RNFR outlink").code, 350)
            self.assertEqual(a.cmd("RNTO victim").code, 250)
        self.assertTrue(os.path.islink(self.path("victim")))
        with T.Ctl(self.server) as c:
            c.expect("USER victim", 331)
            r = c.cmd("PASS victimpw", tmo=T.timeout(10))
            if r.code == 230:
                get = c.data("PASV")
                c.send("RETR secret.txt")
                got = b""
                if c.reply().code in (125, 150):
                    got = T.recv_all(get())
                self.assertNotEqual(got, SECRET, "read a file outside the root")
            self.assertEqual(r.code, 530, str(r))


class AnonymousRenameOntoHomeForkingTest(AnonymousRenameOntoHomeTest):
    mode_args = ("--mode", "forking")


class AnonymousWriteCannotRenameTest(T.ServerTestCase):
    """With --anonymous-write alone the rename is refused in the first place."""
    users = [("victim", "victimpw", "victim")]
    anonymous = True
    server_args = ("--anonymous-write",)

    @classmethod
    def make_tree(cls, root):
        os.mkdir(os.path.join(root, "victim"))

    def test_rename_refused(self):
        with T.Ctl(self.server) as a:
            a.login("anonymous", "x@")
            self.assertEqual(a.cmd("RNFR victim").code, 550)
        self.assertTrue(os.path.isdir(self.path("victim")))


if __name__ == "__main__":
    T.main()
