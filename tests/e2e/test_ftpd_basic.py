"""sockserv-ftpd: login, session commands, FEAT, configuration errors.

RFC 959 (USER PASS ACCT REIN QUIT CWD CDUP PWD TYPE MODE STRU SYST STAT HELP
NOOP ALLO), RFC 2389 (FEAT, OPTS), RFC 3659, UTF8 paths.
"""

import ftplib
import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import shutil
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

UTF8_NAME = "h\u00e9llo w\u00f6rld \u2713.txt"


def make_tree(root):
    T.write(os.path.join(root, "hello.txt"), b"hello world\n", mtime=1700000000)
    T.write(os.path.join(root, "sub", "inner.bin"), bytes(range(256)) * 4)
    T.write(os.path.join(root, UTF8_NAME), b"unicode\n")
    T.write(os.path.join(root, "bobhome", "bobfile.txt"), b"bob's\n")


class LoginTest(T.ServerTestCase):
    users = [("alice", "wonderland"), ("bob", "builder", "bobhome")]

    @classmethod
    def make_tree(cls, root):
        make_tree(root)

    def test_greeting_and_quit(self):
        c = self.ctl(login=False)
        r = c.cmd("QUIT")
        self.assertEqual(r.code, 221, str(r))
        self.assertTrue(c.at_eof(T.timeout(5)), "server did not close after QUIT")

    def test_login_and_pwd_is_root(self):
        c = self.ctl(login=False)
        self.assertEqual(c.cmd("USER alice").code, 331)
        r = c.cmd("PASS wonderland")
        self.assertEqual(r.code, 230, str(r))
        r = c.cmd("PWD")
        self.assertEqual(r.code, 257, str(r))
        self.assertTrue(r.lines[0].startswith('257 "/"'), str(r))

    def test_bad_password(self):
        c = self.ctl(login=False)
        self.assertEqual(c.cmd("USER alice").code, 331)
        r = c.cmd("PASS wrong")
        self.assertEqual(r.code, 530, str(r))
        # Not logged in: a command that needs a login is refused.
        r = c.cmd("PWD")
        self.assertEqual(r.code, 530, "PWD after failed login: %s" % r)
        self.assert_alive()

    def test_unknown_user(self):
        c = self.ctl(login=False)
        r = c.cmd("USER nosuchuser")
        if r.code == 331:
            r = c.cmd("PASS whatever")
        self.assertEqual(r.code, 530, str(r))
        self.assert_alive()

    def test_password_of_other_user(self):
        c = self.ctl(login=False)
        c.expect("USER alice", 331)
        self.assertEqual(c.cmd("PASS builder").code, 530)

    def test_empty_password(self):
        c = self.ctl(login=False)
        c.expect("USER alice", 331)
        r = c.cmd("PASS")
        self.assertIn(r.code, (530, 501), str(r))
        self.assertEqual(c.cmd("PWD").code, 530)

    def test_repeated_failures_end_the_session(self):
        c = self.ctl(login=False)
        closed = False
        for i in range(8):
            try:
                r = c.cmd("USER alice")
                if r.code == 421:
                    closed = True
                    break
                self.assertEqual(r.code, 331, str(r))
                r = c.cmd("PASS wrong%d" % i)
            except (EOFError, ConnectionError):
                closed = True
                break
            self.assertNotEqual(r.code, 230, "wrong password accepted")
            if r.code == 421:
                closed = True
                break
            self.assertEqual(r.code, 530, str(r))
        if not closed:
            self.fail("8 failed logins in one session, server still accepts more")
        self.assertTrue(c.at_eof(T.timeout(5)), "421 but connection not closed")
        self.assert_alive()

    def test_pass_without_user(self):
        c = self.ctl(login=False)
        r = c.cmd("PASS wonderland")
        self.assertEqual(r.code, 503, str(r))

    def test_anonymous_refused_without_flag(self):
        c = self.ctl(login=False)
        r = c.cmd("USER anonymous")
        if r.code == 331:
            r = c.cmd("PASS guest@")
        self.assertEqual(r.code, 530, str(r))
        self.assertEqual(c.cmd("PWD").code, 530)

    def test_commands_before_login(self):
        c = self.ctl(login=False)
        cmds = ["CWD /", "CDUP", "PWD", "LIST", "NLST", "MLSD", "MLST hello.txt",
                "RETR hello.txt", "STOR new.txt", "APPE new.txt", "STOU", "DELE hello.txt",
                "MKD newdir", "RMD sub", "RNFR hello.txt", "RNTO x.txt", "SIZE hello.txt",
                "MDTM hello.txt", "HASH hello.txt", "SITE CHMOD 777 hello.txt", "PASV",
                "EPSV", "PORT 127,0,0,1,200,1", "EPRT |1|127.0.0.1|51201|", "REST 10",
                "STAT /", "ALLO 100", "TYPE I"]
        for cmd in cmds:
            r = c.cmd(cmd)
            if cmd in ("TYPE I", "ALLO 100") and r.code in (200, 202):
                continue  # harmless settings some servers allow before login
            self.assertEqual(r.code, 530, "%s before login -> %s" % (cmd, r))
        self.assertEqual(sorted(os.listdir(self.root)),
                         sorted(["hello.txt", "sub", UTF8_NAME, "bobhome"]))
        self.assertEqual(T.read(self.path("hello.txt")), b"hello world\n")

    def test_user_with_home(self):
        f = self.ftp(user="bob", password="builder")
        self.assertEqual(f.pwd(), "/")
        self.assertEqual(sorted(f.nlst()), ["bobfile.txt"])
        self.assertEqual(T.retr_bytes(f, "bobfile.txt"), b"bob's\n")
        for path in ("../hello.txt", "/hello.txt", "/../hello.txt"):
            with self.assertRaises(ftplib.error_perm, msg=path):
                T.retr_bytes(f, path)
        f.cwd("..")
        self.assertEqual(f.pwd(), "/")
        self.assertEqual(sorted(f.nlst()), ["bobfile.txt"])

    def test_rein(self):
        c = self.ctl()
        r = c.cmd("REIN")
        self.assertEqual(r.code, 220, str(r))
        self.assertEqual(c.cmd("PWD").code, 530, "still logged in after REIN")
        c.login("bob", "builder")
        self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/"'))
        get = c.data("PASV")
        c.expect("NLST", 150, 125)
        self.assertEqual(T.recv_all(get()).split(), [b"bobfile.txt"])
        self.assertEqual(c.reply().code, 226)

    def test_acct(self):
        c = self.ctl()
        r = c.cmd("ACCT something")
        self.assertIn(r.code, (202, 230), str(r))


class HashFormatsTest(T.ServerTestCase):
    """sha512crypt (openssl passwd -6) and yescrypt hashes both log in."""

    @classmethod
    def setUpClass(cls):
        cls.base_users = tempfile.mkdtemp(prefix="ftpd-users-")
        users = os.path.join(cls.base_users, "users")
        lines = ["# comment line", "", "sha512:%s" % T.hash_password("pw512")]
        cls.yescrypt = T.crypt_hash("pwyes", "$y$")
        if cls.yescrypt:
            lines.append("yes:%s" % cls.yescrypt)
        with open(users, "w") as f:
            f.write("\n".join(lines) + "\n")
        cls.users = None
        cls.server_args = ("--users", users)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.base_users, ignore_errors=True)
        super().tearDownClass()

    def test_sha512crypt(self):
        c = self.ctl(login=False)
        c.login("sha512", "pw512")
        c2 = self.ctl(login=False)
        c2.expect("USER sha512", 331)
        self.assertEqual(c2.cmd("PASS pw513").code, 530)

    def test_yescrypt(self):
        if not self.yescrypt:
            self.skipTest("libcrypt cannot make yescrypt hashes")
        c = self.ctl(login=False)
        c.login("yes", "pwyes")
        c2 = self.ctl(login=False)
        c2.expect("USER yes", 331)
        self.assertEqual(c2.cmd("PASS pwno").code, 530)


class SessionTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        make_tree(root)

    def test_syst(self):
        r = self.ctl().cmd("SYST")
        self.assertEqual(r.code, 215, str(r))
        self.assertTrue(r.lines[0].startswith("215 UNIX"), str(r))

    def test_noop(self):
        c = self.ctl()
        for _ in range(3):
            self.assertEqual(c.cmd("NOOP").code, 200)
        # Case-insensitive commands (RFC 959 5.3).
        self.assertEqual(c.cmd("noop").code, 200)

    def test_help(self):
        c = self.ctl()
        r = c.cmd("HELP")
        self.assertEqual(r.code, 214, str(r))
        self.assertGreater(len(r.lines), 1, "HELP should list the commands: %s" % r)
        for verb in ("RETR", "STOR", "EPSV", "MLSD", "FEAT"):
            self.assertIn(verb, r.text, "HELP does not mention %s" % verb)
        r = c.cmd("HELP RETR")
        self.assertEqual(r.code, 214, str(r))

    def test_stat_idle(self):
        c = self.ctl()
        r = c.cmd("STAT")
        self.assertEqual(r.code, 211, str(r))
        self.assertGreater(len(r.lines), 1, "STAT is a multi-line status: %s" % r)

    def test_stat_path(self):
        c = self.ctl()
        r = c.cmd("STAT hello.txt")
        self.assertIn(r.code, (211, 212, 213), str(r))
        self.assertRegex(r.text, r"-[rwx-]{9}.*\b12\b.*hello\.txt")
        r = c.cmd("STAT /")
        self.assertIn(r.code, (211, 212, 213), str(r))
        self.assertIn("hello.txt", r.text)
        self.assertIn("sub", r.text)
        r = c.cmd("STAT nonexistent")
        self.assertIn(r.code, (450, 550), str(r))

    def test_type_mode_stru(self):
        c = self.ctl()
        for cmd, codes in [("TYPE A", (200,)), ("TYPE I", (200,)), ("TYPE A N", (200,)),
                           ("TYPE L 8", (200, 504)), ("TYPE X", (501, 504)),
                           ("TYPE", (501,)), ("MODE S", (200,)), ("MODE B", (504,)),
                           ("MODE Q", (501, 504)), ("STRU F", (200,)), ("STRU R", (504,)),
                           ("STRU P", (504,)), ("type i", (200,))]:
            r = c.cmd(cmd)
            self.assertIn(r.code, codes, "%s -> %s" % (cmd, r))

    def test_allo(self):
        c = self.ctl()
        self.assertIn(c.cmd("ALLO 1000").code, (200, 202))

    def test_cwd_cdup_pwd(self):
        c = self.ctl()
        self.assertEqual(c.cmd("CWD sub").code, 250)
        self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/sub"'))
        self.assertIn(c.cmd("CDUP").code, (200, 250))
        self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/"'))
        self.assertIn(c.cmd("CDUP").code, (200, 250, 550))
        self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/"'))
        self.assertEqual(c.cmd("CWD /sub").code, 250)
        self.assertEqual(c.cmd("CWD ..").code, 250)
        self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/"'))
        self.assertEqual(c.cmd("CWD nonexistent").code, 550)
        self.assertEqual(c.cmd("CWD hello.txt").code, 550)
        self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/"'))
        self.assertEqual(c.cmd("XPWD").code in (257, 500, 502), True)

    def test_unknown_command(self):
        c = self.ctl()
        for cmd in ("XYZZY", "FOO bar", "RETRX hello.txt", "SITE NOSUCH"):
            r = c.cmd(cmd)
            self.assertIn(r.code, (500, 502, 504), "%s -> %s" % (cmd, r))
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_missing_argument(self):
        c = self.ctl()
        for cmd in ("RETR", "DELE", "MKD", "RMD", "RNFR", "SIZE", "MDTM", "CWD"):
            r = c.cmd(cmd)
            self.assertIn(r.code, (501, 550), "%s without argument -> %s" % (cmd, r))

    def test_opts_utf8_and_unicode_names(self):
        f = self.ftp()
        self.assertTrue(f.sendcmd("OPTS UTF8 ON").startswith("200"))
        self.assertIn(UTF8_NAME, f.nlst())
        self.assertEqual(T.retr_bytes(f, UTF8_NAME), b"unicode\n")
        name = "\u65e5\u672c\u8a9e \u00e5.bin"
        T.stor_bytes(f, name, b"\xe6\x97\xa5")
        self.assertEqual(T.read(self.path(name)), b"\xe6\x97\xa5")
        self.assertIn(name, f.nlst())
        f.mkd("\u00fcber")
        self.assertTrue(os.path.isdir(self.path("\u00fcber")))

    def test_opts_unknown(self):
        c = self.ctl()
        r = c.cmd("OPTS NOSUCHTHING ON")
        self.assertIn(r.code, (501, 502, 504), str(r))


class FeatTest(T.ServerTestCase):
    """FEAT advertises only what works: every listed feature is exercised."""

    @classmethod
    def make_tree(cls, root):
        make_tree(root)

    def feat(self, c):
        r = c.cmd("FEAT")
        self.assertEqual(r.code, 211, str(r))
        self.assertGreater(len(r.lines), 2, "FEAT should list features: %s" % r)
        feats = {}
        for line in r.lines[1:-1]:
            # RFC 2389 3.2: each feature line starts with a single space.
            self.assertTrue(line.startswith(" ") and not line.startswith("  "),
                            "bad FEAT line %r" % line)
            parts = line[1:].split(" ", 1)
            feats[parts[0].upper()] = parts[1] if len(parts) > 1 else ""
        return feats

    def test_feat_before_login(self):
        c = self.ctl(login=False)
        self.assertIn("UTF8", self.feat(c))

    def test_required_features_listed(self):
        feats = self.feat(self.ctl())
        for name in ("EPRT", "EPSV", "MDTM", "SIZE", "MLST", "REST", "UTF8", "HASH"):
            self.assertIn(name, feats, "FEAT misses %s: %s" % (name, feats))
        self.assertEqual(feats["REST"].upper(), "STREAM")

    def test_every_listed_feature_works(self):
        c = self.ctl()
        feats = self.feat(c)
        unknown = []
        for name, arg in feats.items():
            check = getattr(self, "check_" + name.lower(), None)
            if check is None:
                unknown.append(name)
                continue
            with self.subTest(feature=name):
                check(c, arg)
        self.assertEqual(unknown, [], "FEAT lists features this suite cannot verify")

    def nlst(self, c, mode):
        get = c.data(mode)
        r = c.cmd("NLST")
        self.assertIn(r.code, (125, 150), str(r))
        names = T.recv_all(get()).decode().split("\r\n")
        self.assertEqual(c.reply().code, 226)
        return names

    def check_eprt(self, c, arg):
        self.assertIn("hello.txt", self.nlst(c, "EPRT"))

    def check_epsv(self, c, arg):
        self.assertIn("hello.txt", self.nlst(c, "EPSV"))

    def check_pasv(self, c, arg):
        self.assertIn("hello.txt", self.nlst(c, "PASV"))

    def check_mdtm(self, c, arg):
        r = c.cmd("MDTM hello.txt")
        self.assertEqual(r.lines[0], "213 20231114221320")

    def check_size(self, c, arg):
        c.expect("TYPE I", 200)
        self.assertEqual(c.cmd("SIZE hello.txt").lines[0], "213 12")

    def check_rest(self, c, arg):
        self.assertEqual(arg.upper(), "STREAM")
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("REST 6", 350)
        c.expect("RETR hello.txt", 150, 125)
        self.assertEqual(T.recv_all(get()), b"world\n")
        self.assertEqual(c.reply().code, 226)

    def check_utf8(self, c, arg):
        self.assertEqual(c.cmd("OPTS UTF8 ON").code, 200)

    def check_tvfs(self, c, arg):
        c.expect("TYPE I", 200)
        self.assertEqual(c.cmd("SIZE /sub/inner.bin").lines[0], "213 1024")

    def check_mlst(self, c, arg):
        # "MLST type*;size*;modify*;perm*;unique*;" (RFC 3659 7.8).
        listed = [f for f in arg.split(";") if f]
        for fact in ("type", "size", "modify", "perm", "unique"):
            self.assertTrue(any(f.lower().rstrip("*") == fact for f in listed),
                            "MLST feature lacks %s: %r" % (fact, arg))
        r = c.cmd("MLST hello.txt")
        self.assertEqual(r.code, 250, str(r))
        self.assertEqual(len(r.lines), 3, str(r))
        facts = r.lines[1]
        self.assertTrue(facts.startswith(" "), str(r))
        for f in listed:
            if f.endswith("*"):
                self.assertIn(f.rstrip("*").lower() + "=", facts.lower(),
                              "MLST default fact %s missing: %s" % (f, facts))

    def check_mlsd(self, c, arg):
        get = c.data("EPSV")
        c.expect("MLSD", 150, 125)
        self.assertIn(b"hello.txt", T.recv_all(get()))
        self.assertEqual(c.reply().code, 226)

    def check_hash(self, c, arg):
        algos = [a for a in arg.split(";") if a]
        self.assertTrue(algos, "HASH feature lists no algorithm")
        self.assertEqual(sum(1 for a in algos if a.endswith("*")), 1,
                         "exactly one selected HASH algorithm: %r" % arg)
        data = T.read(self.path("hello.txt"))
        for a in algos:
            name = a.rstrip("*")
            r = c.cmd("OPTS HASH " + name)
            self.assertEqual(r.code, 200, str(r))
            r = c.cmd("HASH hello.txt")
            self.assertEqual(r.code, 213, str(r))
            h = hashlib.new(name.replace("-", "").lower(), data).hexdigest()
            self.assertEqual(r.lines[0].split()[1].upper(), name.upper())
            self.assertIn(h, r.lines[0].lower(), str(r))
        c.cmd("OPTS HASH SHA-256")

    def check_clnt(self, c, arg):
        self.assertEqual(c.cmd("CLNT e2e-test").code, 200)

    def check_mfmt(self, c, arg):
        self.assertEqual(c.cmd("MFMT 20200102030405 sub/inner.bin").code, 213)
        self.assertEqual(os.stat(self.path("sub", "inner.bin")).st_mtime, 1577934245)

    def check_lang(self, c, arg):
        self.assertEqual(c.cmd("OPTS LANG EN").code in (200,), True)

    def check_auth(self, c, arg):
        self.assertIn("TLS", arg.upper())
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        f = ftplib.FTP_TLS(context=ctx, timeout=T.timeout(20))
        f.connect(self.server.host, self.server.port)
        try:
            f.login(self.user, self.password)
            f.prot_p()
            self.assertEqual(T.retr_bytes(f, "hello.txt"), b"hello world\n")
        finally:
            T.quit_quietly(f)

    def check_pbsz(self, c, arg):
        self.assertIn("AUTH", self.feat(c))

    def check_prot(self, c, arg):
        self.assertIn("AUTH", self.feat(c))


class ConfigErrorTest(unittest.TestCase):
    """Bad configuration: exit 2 and one error line naming file and line."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ftpd-cfg-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.mkdir(os.path.join(self.dir, "root"))

    def run_server(self, args):
        p = subprocess.run([T.ftpd_path()] + args, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=T.timeout(20), cwd=self.dir)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def test_bad_users_line(self):
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write("alice:%s\nthis line has no colon\n" % T.hash_password("pw"))
        rc, out, err = self.run_server(["--listen", "127.0.0.1:0", "--root",
                                        os.path.join(self.dir, "root"), "--users", users])
        self.assertEqual(rc, 2, "exit status; stderr %r" % err)
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "one error line expected: %r" % err)
        self.assertIn("users.txt", lines[0])
        self.assertRegex(lines[0], r"\b2\b", "the line number is named: %r" % lines[0])
        self.assertNotIn("listening", out)

    def test_missing_root(self):
        rc, out, err = self.run_server(["--listen", "127.0.0.1:0", "--root",
                                        os.path.join(self.dir, "nonexistent")])
        self.assertEqual(rc, 2, err)
        self.assertEqual(len([l for l in err.splitlines() if l.strip()]), 1, err)
        self.assertIn("nonexistent", err)

    def test_bad_option_values(self):
        root = os.path.join(self.dir, "root")
        for bad in (["--max-clients", "abc"], ["--idle-timeout", "-5"],
                    ["--pasv-ports", "5000-4000"], ["--mode", "spooky"],
                    ["--no-such-option"], ["--listen", "not-an-address"]):
            args = ["--listen", "127.0.0.1:0", "--root", root] + bad
            rc, out, err = self.run_server(args)
            self.assertEqual(rc, 2, "%s: exit %s, stderr %r" % (bad, rc, err))
            self.assertEqual(len([l for l in err.splitlines() if l.strip()]), 1,
                             "%s: %r" % (bad, err))

    def test_bad_config_file_line(self):
        conf = os.path.join(self.dir, "ftpd.conf")
        with open(conf, "w") as f:
            f.write("# comment\n\nidle-timeout = 60\nno-such-key = 1\n")
        rc, out, err = self.run_server(["-c", conf])
        self.assertEqual(rc, 2, err)
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("ftpd.conf", lines[0])
        self.assertRegex(lines[0], r"\b4\b")

    def test_config_file_serves(self):
        root = os.path.join(self.dir, "root")
        T.write(os.path.join(root, "x.txt"), b"from config\n")
        conf = os.path.join(self.dir, "ftpd.conf")
        with open(conf, "w") as f:
            f.write("# sockserv-ftpd settings\nlisten = 127.0.0.1:0\nroot = %s\n"
                    "anonymous = yes\nidle-timeout = 30\n" % root)
        srv = T.Server(None, ["-c", conf], listen="127.0.0.1:0", workdir=self.dir)
        srv.start()
        try:
            f = T.ftp_connect(srv)
            self.assertEqual(T.retr_bytes(f, "x.txt"), b"from config\n")
            f.quit()
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    T.main()
