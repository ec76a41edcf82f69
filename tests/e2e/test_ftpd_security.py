"""sockserv-ftpd: hostile clients.

Confinement (`..`, absolute paths, symlinks to /etc and outside the root,
NUL bytes, over-long lines), FTP bounce (PORT/EPRT to another address or a
privileged port), PASV connections from a foreign address, garbage input,
CR/LF injection into replies, anonymous write protection. After each hostile
case a fresh session must still be served.
"""

import os
import random
import socket
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

SECRET = b"TOP SECRET outside the root\n"
LEAKS = (b"TOP SECRET", b"root:x:0:0", b"secret.txt", b"passwd", b"shadow")


def make_tree(root):
    outside = os.path.join(os.path.dirname(root), "outside")
    T.write(os.path.join(outside, "secret.txt"), SECRET)
    os.chmod(os.path.join(outside, "secret.txt"), 0o600)
    T.write(os.path.join(root, "pub", "readme.txt"), b"readme\n")
    os.symlink("/etc", os.path.join(root, "link_etc"))
    os.symlink("../outside", os.path.join(root, "link_out"))
    os.symlink("../outside/secret.txt", os.path.join(root, "link_out_file"))
    os.symlink(outside, os.path.join(root, "abs_link_out"))
    os.symlink("/etc/passwd", os.path.join(root, "link_pw"))
    os.symlink("../link_out", os.path.join(root, "pub", "chain"))
    return outside


ESCAPES = [
    "../outside/secret.txt", "../../etc/passwd", "/etc/passwd", "/../outside/secret.txt",
    "../../../../../../../../../../etc/passwd", "pub/../../outside/secret.txt",
    "link_etc/passwd", "link_out/secret.txt", "link_out_file", "abs_link_out/secret.txt",
    "/link_out/secret.txt", "link_pw", "pub/chain/secret.txt", "//etc/passwd",
    "/./../outside/secret.txt", "link_out/../link_out/secret.txt", "~/../outside/secret.txt",
    "..\\outside\\secret.txt", "/etc/shadow", "link_etc/shadow", "pub/../../../etc/passwd",
]


class ConfinementTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        cls.outside = make_tree(root)

    def outside_state(self):
        st = os.stat(os.path.join(self.outside, "secret.txt"))
        return (sorted(os.listdir(self.outside)), T.read(os.path.join(self.outside,
                                                                      "secret.txt")),
                stat.S_IMODE(st.st_mode))

    def setUp(self):
        self.before = self.outside_state()

    def tearDown(self):
        self.assertEqual(self.outside_state(), self.before,
                         "something outside the root was changed")

    def assert_no_leak(self, blob, what):
        for s in LEAKS:
            self.assertNotIn(s, blob, "%s leaked %r" % (what, s))

    def assert_refused(self, r, what, codes=(550, 553, 501, 450, 500)):
        self.assert_no_leak(r.raw.replace(what.encode(), b""), what)
        self.assertIn(r.code, codes, "%s -> %s" % (what, r))

    def test_retr_escapes(self):
        c = self.ctl()
        for path in ESCAPES:
            with self.subTest(path=path):
                c.expect("TYPE I", 200)
                d = c.pasv()
                r = c.cmd("RETR " + path)
                if r.code in (125, 150):
                    data = T.recv_all(d)
                    c.reply()
                    self.fail("RETR %s was served: %r" % (path, data[:80]))
                d.close()
                self.assert_refused(r, "RETR " + path)
        self.assert_alive()

    def test_metadata_escapes(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        for verb in ("SIZE", "MDTM", "MLST", "HASH"):
            for path in ESCAPES:
                with self.subTest(verb=verb, path=path):
                    r = c.cmd("%s %s" % (verb, path))
                    if verb == "MLST" and r.code == 250 and "symlink" in r.text.lower():
                        # Facts of the link itself, which lies in the root.
                        self.assert_no_leak(r.raw.replace(path.encode(), b""), path)
                        self.assertNotIn("size=", r.text.lower())
                        continue
                    self.assert_refused(r, "%s %s" % (verb, path))

    def test_listing_escapes(self):
        for verb in ("LIST", "NLST", "MLSD"):
            for path in ("link_etc", "link_out", "abs_link_out", "/etc", "../outside",
                         "../..", "pub/chain", "link_etc/", "link_out/."):
                with self.subTest(verb=verb, path=path):
                    c = self.ctl()
                    get = c.data("EPSV")
                    r = c.cmd("%s %s" % (verb, path))
                    if r.code in (125, 150):
                        data = T.recv_all(get())
                        self.assert_no_leak(data, "%s %s" % (verb, path))
                        self.assertEqual(c.reply().code, 226)
                    else:
                        get().close()
                        self.assert_refused(r, "%s %s" % (verb, path))
        c = self.ctl()
        r = c.cmd("STAT link_out")
        self.assertNotIn(b"secret.txt", r.raw)
        r = c.cmd("STAT link_etc/")
        self.assertNotIn(b"passwd", r.raw)

    def test_cwd_escapes(self):
        c = self.ctl()
        for path in ("link_etc", "link_out", "abs_link_out", "/etc", "pub/chain",
                     "../outside", "/tmp"):
            with self.subTest(path=path):
                r = c.cmd("CWD " + path)
                self.assertEqual(r.code, 550, "CWD %s -> %s" % (path, r))
                self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/"'))
        for path in ("..", "../..", "/..", "../../../..", "pub/../.."):
            c.expect("CWD " + path, 250)
            self.assertTrue(c.cmd("PWD").lines[0].startswith('257 "/"'),
                            "CWD %s left the root" % path)
            get = c.data("PASV")
            c.expect("NLST", 150, 125)
            names = T.recv_all(get()).decode().split()
            self.assertEqual(c.reply().code, 226)
            self.assertIn("pub", names)
            self.assertNotIn("secret.txt", names)

    def restore_links(self):
        link = self.path("link_out_file")
        if not os.path.islink(link):
            os.unlink(link)
            os.symlink("../outside/secret.txt", link)

    def test_write_escapes(self):
        self.addCleanup(self.restore_links)
        c = self.ctl()
        for cmd in ("MKD link_out/newdir", "MKD ../outside/newdir", "MKD link_etc/newdir",
                    "RMD link_out", "DELE link_out/secret.txt", "DELE ../outside/secret.txt",
                    "SITE CHMOD 777 link_out/secret.txt", "SITE CHMOD 777 link_out_file",
                    "SITE CHMOD 777 link_pw", "RNFR link_out/secret.txt",
                    "RNFR ../outside/secret.txt"):
            with self.subTest(cmd=cmd):
                r = c.cmd(cmd)
                if cmd.startswith("RMD") and r.code == 250:
                    continue  # removing the link would be fine; RMD of a symlink fails
                self.assertIn(r.code, (550, 553, 501, 504), "%s -> %s" % (cmd, r))
        targets = ["link_out/evil.txt", "../outside/evil.txt", "/tmp/evil.txt",
                   "abs_link_out/evil.txt", "link_out_file", "pub/chain/evil.txt",
                   "link_etc/evil.conf"]
        for verb in ("STOR", "APPE"):
            for path in targets:
                with self.subTest(verb=verb, path=path):
                    c.expect("TYPE I", 200)
                    get = c.data("EPSV")
                    r = c.cmd("%s %s" % (verb, path))
                    if r.code in (125, 150):
                        s = get()
                        s.sendall(b"EVIL\n")
                        s.close()
                        r = c.reply()
                    else:
                        get().close()
                    # The symlink itself may be replaced by a regular file in
                    # the root; nothing outside may change (checked in tearDown).
                    self.assertEqual(self.outside_state(), self.before,
                                     "%s %s wrote outside the root" % (verb, path))
                    self.assertFalse(os.path.exists("/tmp/evil.txt") and
                                     T.read("/tmp/evil.txt") == b"EVIL\n")
                    self.assertFalse(os.path.exists("/etc/evil.conf"))
        self.assertEqual(os.stat("/etc/passwd").st_mode & 0o777 != 0o777, True)
        # Renaming a file into a symlinked directory outside.
        for to in ("link_out/stolen.txt", "abs_link_out/stolen.txt", "../outside/stolen.txt",
                   "pub/chain/stolen.txt"):
            with self.subTest(rnto=to):
                c.expect("RNFR pub/readme.txt", 350)
                r = c.cmd("RNTO " + to)
                self.assertIn(r.code, (550, 553), "RNTO %s -> %s" % (to, r))
                self.assertTrue(os.path.exists(self.path("pub", "readme.txt")))

    def test_nul_bytes(self):
        c = self.ctl()
        for line in (b"RETR pub/readme.txt\x00../../outside/secret.txt\r\n",
                     b"RETR link_out\x00/secret.txt\r\n", b"CWD pub\x00/../..\r\n",
                     b"MKD nul\x00dir\r\n", b"SIZE \x00\r\n", b"DELE pub/readme.txt\x00x\r\n",
                     b"STOR nul\x00file\r\n", b"RN\x00FR pub/readme.txt\r\n"):
            with self.subTest(line=line):
                c.send(line)
                r = c.reply()
                self.assertIn(r.code, (500, 501, 550, 553), "%r -> %s" % (line, r))
                self.assert_no_leak(r.raw, repr(line))
        self.assertFalse(os.path.exists(self.path("nul")))
        self.assertTrue(os.path.exists(self.path("pub", "readme.txt")))
        self.assertEqual(sorted(n for n in os.listdir(self.root) if n.startswith("nul")), [])
        self.assertEqual(c.cmd("NOOP").code, 200)
        self.assert_alive()

    def test_long_lines(self):
        for n in (10 * 1024, 100 * 1024):
            with self.subTest(n=n):
                c = self.ctl()
                c.send(b"RETR " + b"a" * n + b"\r\n")
                r = c.reply(T.timeout(15))
                self.assertIn(r.code, (500, 501), str(r))
                self.assertLess(len(r.raw), 8192, "reply echoes the whole line")
                self.assertEqual(c.cmd("NOOP").code, 200, "session lost after long line")
        # A megabyte without an end: an error reply or a closed session,
        # never a crash.
        c = self.ctl()
        try:
            c.sock.sendall(b"NOOP" + b"x" * (1024 * 1024 + 10) + b"\r\n")
            r = c.reply(T.timeout(15))
            self.assertIn(r.code, (500, 421), str(r))
        except (ConnectionError, EOFError):
            pass
        # Long paths within the line limit.
        c = self.ctl()
        r = c.cmd("RETR " + "a/" * 1900 + "x")
        self.assertIn(r.code, (550, 553, 501), str(r))
        r = c.cmd("MKD " + "b" * 300)
        self.assertIn(r.code, (550, 553, 501), str(r))
        self.assertEqual(c.cmd("NOOP").code, 200)
        self.assert_alive()

    def test_pipelined_commands(self):
        c = self.ctl()
        c.send(b"NOOP\r\n" * 500 + b"PWD\r\n")
        for _ in range(500):
            self.assertEqual(c.reply().code, 200)
        self.assertEqual(c.reply().code, 257)


class BounceTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "f.txt"), b"data\n")

    def listener(self, host, port=0):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            s.close()
            return None
        s.listen(4)
        self.addCleanup(s.close)
        return s

    def assert_no_connection(self, ls, what):
        if ls is None:
            return
        ls.settimeout(0.5 * T.SLOW)
        try:
            conn, peer = ls.accept()
        except socket.timeout:
            return
        conn.close()
        self.fail("%s: the server connected to %s" % (what, peer))

    def try_bounce(self, c, cmd, ls):
        r = c.cmd(cmd)
        if r.code == 200:
            r = c.cmd("RETR f.txt", T.timeout(15))
            if r.code in (125, 150):
                r = c.reply(T.timeout(15))
            self.assertIn(r.code, (425, 500, 501, 504, 550), "%s then RETR -> %s" % (cmd, r))
        else:
            self.assertIn(r.code, (500, 501, 504, 522, 425), "%s -> %s" % (cmd, r))
        self.assert_no_connection(ls, cmd)
        self.assertEqual(c.cmd("NOOP").code, 200)

    @unittest.skipUnless(T.can_bind("127.0.0.2"), "127.0.0.2 not usable")
    def test_port_to_other_address(self):
        ls = self.listener("127.0.0.2")
        p = ls.getsockname()[1]
        c = self.ctl()
        self.try_bounce(c, "PORT 127,0,0,2,%d,%d" % (p >> 8, p & 255), ls)
        self.try_bounce(c, "EPRT |1|127.0.0.2|%d|" % p, ls)
        self.assert_alive()

    def test_port_to_privileged_port(self):
        c = self.ctl()
        for port in (21, 25, 1023, 1):
            ls = self.listener("127.0.0.1", port) if os.geteuid() == 0 else None
            with self.subTest(port=port):
                self.try_bounce(c, "PORT 127,0,0,1,%d,%d" % (port >> 8, port & 255), ls)
                self.try_bounce(c, "EPRT |1|127.0.0.1|%d|" % port, ls)

    def test_eprt_other_family(self):
        c = self.ctl()
        ls = None
        if T.ipv6_available():
            ls = socket.socket(socket.AF_INET6)
            ls.bind(("::1", 0))
            ls.listen(1)
            self.addCleanup(ls.close)
        p = ls.getsockname()[1] if ls else 40000
        self.try_bounce(c, "EPRT |2|::1|%d|" % p, ls)

    def test_malformed_port_commands(self):
        c = self.ctl()
        for cmd in ("PORT 1,2,3", "PORT 999,0,0,1,200,1", "PORT a,b,c,d,e,f",
                    "PORT 127,0,0,1,300,1", "PORT 127,0,0,1,0,0", "PORT", "PORT -1,0,0,1,4,1",
                    "EPRT", "EPRT garbage", "EPRT |1|127.0.0.1|99999|", "EPRT |1|not.an.ip|5000|",
                    "EPRT |3|127.0.0.1|5000|", "EPRT |1|127.0.0.1|0|", "EPRT ||||"):
            with self.subTest(cmd=cmd):
                r = c.cmd(cmd)
                self.assertIn(r.code, (500, 501, 504, 522), "%s -> %s" % (cmd, r))
        self.assertEqual(c.cmd("NOOP").code, 200)

    @unittest.skipUnless(T.can_bind("127.0.0.2"), "127.0.0.2 not usable")
    def test_pasv_rejects_foreign_address(self):
        c = self.ctl()
        r = c.expect("PASV", 227)
        n = [int(x) for x in __import__("re").search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)",
                                                     r.lines[0]).groups()]
        port = n[4] * 256 + n[5]
        c.expect("TYPE I", 200)
        intruder = socket.socket()
        intruder.bind(("127.0.0.2", 0))
        intruder.settimeout(T.timeout(10))
        intruder.connect(("127.0.0.1", port))
        self.addCleanup(intruder.close)
        legit = socket.create_connection(("127.0.0.1", port), timeout=T.timeout(10))
        r = c.cmd("RETR f.txt", T.timeout(15))
        if r.code in (125, 150):
            self.assertEqual(T.recv_all(legit), b"data\n")
            self.assertEqual(c.reply().code, 226)
        else:
            self.assertEqual(r.code, 425, str(r))
            legit.close()
        try:
            got = intruder.recv(100)
        except (socket.timeout, ConnectionError):
            got = b""
        self.assertEqual(got, b"", "the foreign data connection received the file")
        self.assert_alive()


class GarbageTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "f.txt"), b"data\n")
        # A name with CR LF in it must not break listings.
        T.write(os.path.join(root, "bad\r\nname.txt"), b"x")

    def drain_until_noop(self, c):
        """Send NOOP and read replies up to its 200; every reply before it
        must be an error."""
        c.send("NOOP")
        for _ in range(1000):
            r = c.reply(T.timeout(15))
            if r.code == 200:
                return
            self.assertGreaterEqual(r.code, 500, "garbage accepted: %s" % r)
        self.fail("no reply to NOOP")

    def test_random_bytes(self):
        rnd = random.Random(1234)
        c = self.ctl()
        for _ in range(50):
            junk = bytes(rnd.choice(range(128, 256)) for _ in range(rnd.randrange(1, 200)))
            c.send(junk + b"\r\n")
        self.drain_until_noop(c)
        self.assert_alive()

    def test_binary_junk_with_controls(self):
        rnd = random.Random(99)
        c = self.ctl()
        junk = bytes(rnd.randrange(0, 256) for _ in range(20000)).replace(b"\n", b"")
        junk = junk.replace(b"\r", b"")
        c.sock.sendall(junk + b"\r\n")
        self.drain_until_noop(c)
        self.assert_alive()

    def test_junk_then_close(self):
        for payload in (b"\x00\x01\x02\xff\xfe", b"USER al", b"\xff\xf4\xff\xf2", b""):
            s = socket.create_connection(self.server.address, timeout=T.timeout(10))
            s.sendall(payload)
            s.close()
        s = socket.create_connection(self.server.address, timeout=T.timeout(10))
        T.reset_close(s)
        self.assert_alive()

    def test_unknown_and_odd_commands(self):
        c = self.ctl()
        for line in ("XYZZY", "A" * 20, "   ", "\t", "RETR", "1234", "USERX alice", "HELP " +
                     "x" * 500, "SITE", "SITE CHMOD", "SITE CHMOD 999 f.txt",
                     "SITE CHMOD abc f.txt", "OPTS", "MODE", "STRU", "TYPE Z"):
            with self.subTest(line=line):
                r = c.cmd(line)
                if line.startswith("HELP"):
                    self.assertIn(r.code, (214, 501, 502, 504))
                    continue
                self.assertGreaterEqual(r.code, 500, "%r -> %s" % (line, r))
        self.assertEqual(c.cmd("NOOP").code, 200)
        self.assert_alive()

    def test_command_in_pieces(self):
        c = self.ctl()
        for b in b"NOOP\r\n":
            c.sock.sendall(bytes([b]))
            time.sleep(0.005)  # separate segments
        self.assertEqual(c.reply().code, 200)
        # A Telnet IAC NOP inside a command is removed (RFC 854).
        c.send(b"NO\xff\xf1OP\r\n")
        self.assertEqual(c.reply().code, 200)

    def test_empty_line(self):
        c = self.ctl()
        c.send(b"\r\n")
        self.drain_until_noop(c)

    def test_crlf_never_echoed(self):
        c = self.ctl()
        # Ctl raises if any reply line contains a bare CR or LF.
        for line in (b"RETR evil\rname\r\n", b"MKD crdir\rx\r\n", b"CWD \r500 fake\r\n",
                     b"SIZE a\rb\r\n", b"USER x\ry\r\n", b"DELE \r\r\r\r\n",
                     b"XYZ\rABC\r\n", b"MKD lf\x0bdir\r\n"):
            with self.subTest(line=line):
                c.send(line)
                self.drain_until_noop_any(c)
        c2 = self.ctl()
        c2.send(b"RETR a\nb\r\n")
        self.drain_until_noop_any(c2)
        self.assert_alive()

    def drain_until_noop_any(self, c):
        c.send("NOOP")
        for _ in range(20):
            r = c.reply(T.timeout(15))
            if r.code == 200:
                return
        self.fail("no reply to NOOP")

    def test_quotes_doubled_in_257(self):
        # RFC 959 appendix II: a quote inside the name is doubled.
        c = self.ctl()
        r = c.cmd('MKD q"uote')
        self.assertEqual(r.code, 257, str(r))
        self.assertIn('"/q""uote"', r.lines[0])
        c.expect('CWD q"uote', 250)
        self.assertIn('"/q""uote"', c.cmd("PWD").lines[0])

    def test_listing_skips_crlf_names(self):
        c = self.ctl()
        for verb in ("NLST", "LIST", "MLSD"):
            with self.subTest(verb=verb):
                get = c.data("PASV")
                c.expect(verb, 150, 125)
                data = T.recv_all(get())
                self.assertEqual(c.reply().code, 226)
                lines = data.split(b"\r\n")
                self.assertEqual(lines[-1], b"")
                for line in lines[:-1]:
                    self.assertNotIn(b"\r", line)
                    self.assertNotIn(b"\n", line)
                    self.assertFalse(line.endswith(b"name.txt") and b"bad" not in line,
                                     "a CR/LF name split the listing: %r" % data)


class AnonymousReadOnlyTest(T.ServerTestCase):
    users = None
    anonymous = True
    user = None

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "pub", "file.txt"), b"public\n")
        os.mkdir(os.path.join(root, "emptydir"))

    def snapshot(self):
        out = []
        for d, dirs, files in os.walk(self.root):
            for n in sorted(dirs + files):
                p = os.path.join(d, n)
                st = os.lstat(p)
                out.append((p, stat.S_IMODE(st.st_mode), st.st_size))
        return sorted(out)

    def test_anonymous_logins(self):
        for name, pw in (("anonymous", "x@y"), ("ftp", ""), ("ANONYMOUS", "guest")):
            with self.subTest(user=name):
                c = T.Ctl(self.server)
                self.addCleanup(c.close)
                r = c.cmd("USER " + name)
                if r.code == 331:
                    r = c.cmd(("PASS " + pw).rstrip())
                self.assertEqual(r.code, 230, str(r))

    def test_read_works(self):
        f = self.ftp()
        self.assertEqual(T.retr_bytes(f, "pub/file.txt"), b"public\n")

    def test_writes_refused(self):
        before = self.snapshot()
        c = self.ctl()
        for cmd in ("STOR new.txt", "STOR pub/file.txt", "APPE pub/file.txt", "STOU",
                    "MKD newdir", "RMD emptydir", "DELE pub/file.txt",
                    "RNFR pub/file.txt", "SITE CHMOD 777 pub/file.txt", "MFMT 20200101000000 "
                    "pub/file.txt"):
            with self.subTest(cmd=cmd):
                get = c.data("EPSV")
                r = c.cmd(cmd)
                if r.code in (125, 150):
                    s = get()
                    s.sendall(b"evil")
                    s.close()
                    r = c.reply()
                    self.fail("%s accepted an upload: %s" % (cmd, r))
                get().close()
                self.assertIn(r.code, (550, 553, 532, 530, 502, 500), "%s -> %s" % (cmd, r))
        self.assertEqual(self.snapshot(), before)
        # MLSD perm facts of an anonymous session offer no write permission.
        get = c.data("PASV")
        c.expect("MLSD pub", 150, 125)
        data = T.recv_all(get()).decode()
        self.assertEqual(c.reply().code, 226)
        for line in data.splitlines():
            m = __import__("re").search(r"perm=([a-z]*);", line, __import__("re").I)
            if m:
                self.assertFalse(set(m.group(1).lower()) & set("acdfmpw"),
                                 "anonymous perm offers writes: %s" % line)


class AnonymousWriteTest(T.ServerTestCase):
    users = None
    anonymous = True
    user = None
    server_args = ("--anonymous-write",)

    def test_writes_allowed(self):
        f = self.ftp()
        T.stor_bytes(f, "up.txt", b"uploaded\n")
        self.assertEqual(T.read(self.path("up.txt")), b"uploaded\n")
        f.mkd("newdir")
        self.assertTrue(os.path.isdir(self.path("newdir")))


if __name__ == "__main__":
    T.main()
