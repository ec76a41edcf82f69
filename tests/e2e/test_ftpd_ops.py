"""sockserv-ftpd: file operations, listings and running the server.

LIST/NLST/MLSD/MLST, SIZE/MDTM, MKD/RMD/DELE/RNFR/RNTO/SITE CHMOD;
--max-clients, --max-per-ip, --idle-timeout; --mode forking; IPv6 on ::1;
SIGTERM with a transfer running, SIGINT, SIGHUP log reopening, xferlog.
"""

import calendar
import ftplib
import os
import re
import signal
import socket
import stat
import sys
import tempfile
import shutil
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

OLD = 1700000000  # 2023-11-14 22:13:20 UTC
LS_RE = T.LS_RE


def make_tree(root):
    T.write(os.path.join(root, "old.txt"), b"old file\n", mtime=OLD)
    T.write(os.path.join(root, "new.bin"), T.random_bytes(5000))
    T.write(os.path.join(root, "dir", "a.txt"), b"a\n", mtime=OLD)
    T.write(os.path.join(root, "dir", "b.txt"), b"bb\n", mtime=OLD)
    os.utime(os.path.join(root, "dir"), (OLD, OLD))
    T.write(os.path.join(root, ".hidden"), b"h\n")
    T.write(os.path.join(root, "lines.txt"), b"l1\nl2\nl3\n")


def mtime_str(t):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def parse_facts(line):
    facts, _, name = line.partition(" ")
    d = {}
    for f in facts.split(";"):
        if f:
            k, _, v = f.partition("=")
            d[k.lower()] = v
    return d, name


class ListingTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        make_tree(root)

    def listing(self, verb, arg="", mode="PASV"):
        c = self.ctl()
        get = c.data(mode)
        c.expect(("%s %s" % (verb, arg)).rstrip(), 150, 125)
        data = T.recv_all(get())
        self.assertEqual(c.reply().code, 226)
        self.assertTrue(data == b"" or data.endswith(b"\r\n"), "lines end in CRLF")
        return data.decode("utf-8")[:-2].split("\r\n") if data else []

    def test_list_parses(self):
        lines = self.listing("LIST")
        entries = {}
        for line in lines:
            m = LS_RE.match(line)
            self.assertIsNotNone(m, "LIST line not in ls -l format: %r" % line)
            entries[m.group(10)] = m
        self.assertEqual(sorted(entries), ["dir", "lines.txt", "new.bin", "old.txt"])
        self.assertEqual(entries["dir"].group(1), "d")
        self.assertEqual(entries["old.txt"].group(1), "-")
        self.assertEqual(int(entries["old.txt"].group(6)), 9)
        self.assertEqual(int(entries["new.bin"].group(6)), 5000)
        # Older than six months: "Mon DD  YYYY"; recent: "Mon DD HH:MM".
        old = entries["old.txt"]
        self.assertEqual((old.group(7), old.group(8), old.group(9)), ("Nov", "14", "2023"))
        self.assertRegex(entries["new.bin"].group(9), r"^\d{2}:\d{2}$")

    def test_list_variants(self):
        names = [LS_RE.match(l).group(10) for l in self.listing("LIST", "-a")]
        self.assertIn(".hidden", names)
        names = [LS_RE.match(l).group(10) for l in self.listing("LIST", "dir")]
        self.assertEqual(names, ["a.txt", "b.txt"])
        lines = self.listing("LIST", "old.txt")
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].endswith(" old.txt"))
        for mode in T.MODES:
            self.assertEqual(len(self.listing("LIST", "-l", mode)), 4)

    def test_empty_directory(self):
        os.makedirs(self.path("emptydir"), exist_ok=True)
        self.addCleanup(os.rmdir, self.path("emptydir"))
        self.assertEqual(self.listing("LIST", "emptydir"), [])
        lines = self.listing("MLSD", "emptydir")
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(parse_facts(lines[0])[0]["type"], "cdir")
        c = self.ctl()
        get = c.data("PASV")
        r = c.cmd("NLST emptydir")
        if r.code in (125, 150):
            self.assertEqual(T.recv_all(get()), b"")
            self.assertEqual(c.reply().code, 226)
        else:
            get().close()
            self.assertIn(r.code, (450, 550), str(r))

    def test_list_missing(self):
        c = self.ctl()
        get = c.data("PASV")
        r = c.cmd("LIST nonexistent")
        if r.code in (125, 150):
            self.assertEqual(T.recv_all(get()), b"")
            r = c.reply()
        self.assertIn(r.code, (450, 550), str(r))

    def test_ftplib_dir_and_nlst(self):
        f = self.ftp()
        lines = []
        f.dir(lines.append)
        self.assertEqual(len(lines), 4)
        self.assertTrue(all(LS_RE.match(l) for l in lines), lines)
        self.assertEqual(sorted(f.nlst()), ["dir", "lines.txt", "new.bin", "old.txt"])
        self.assertEqual(sorted(os.path.basename(n) for n in f.nlst("dir")),
                         ["a.txt", "b.txt"])

    def test_mlsd_facts(self):
        f = self.ftp("EPSV")
        entries = dict(f.mlsd())
        self.assertIn(".", entries)
        self.assertEqual(entries["."]["type"], "cdir")
        self.assertEqual(entries["old.txt"]["type"], "file")
        self.assertEqual(entries["old.txt"]["size"], "9")
        self.assertEqual(entries["old.txt"]["modify"], mtime_str(OLD))
        self.assertEqual(entries["new.bin"]["size"], "5000")
        self.assertEqual(entries["dir"]["type"], "dir")
        self.assertEqual(entries["dir"]["modify"], mtime_str(OLD))
        for name, facts in entries.items():
            for k in ("type", "modify", "perm", "unique"):
                self.assertIn(k, facts, "%s lacks %s: %s" % (name, k, facts))
            if facts["type"] == "file":
                self.assertTrue(set("r") <= set(facts["perm"]), facts)
                self.assertTrue(set("adfw") & set(facts["perm"]), "writable user: %s" % facts)
            if facts["type"] == "dir":
                self.assertTrue(set("el") <= set(facts["perm"]), facts)
        uniques = [e["unique"] for n, e in entries.items() if n != "."]
        self.assertEqual(len(set(uniques)), len(uniques), "unique facts collide")
        sub = dict(f.mlsd("dir"))
        self.assertEqual(sorted(n for n, e in sub.items() if e["type"] == "file"),
                         ["a.txt", "b.txt"])

    def test_mlsd_on_file(self):
        c = self.ctl()
        get = c.data("EPSV")
        r = c.cmd("MLSD old.txt")
        get().close()
        self.assertIn(r.code, (501, 550), str(r))

    def test_mlst(self):
        c = self.ctl()
        r = c.cmd("MLST old.txt")
        self.assertEqual(r.code, 250, str(r))
        self.assertEqual(len(r.lines), 3, str(r))
        self.assertTrue(r.lines[0].startswith("250-"))
        self.assertTrue(r.lines[2].startswith("250 "))
        self.assertTrue(r.lines[1].startswith(" "), "MLST facts line starts with a space")
        facts, name = parse_facts(r.lines[1][1:])
        self.assertEqual(name, "/old.txt")
        self.assertEqual(facts["type"], "file")
        self.assertEqual(facts["size"], "9")
        self.assertEqual(facts["modify"], mtime_str(OLD))
        r = c.cmd("MLST")
        self.assertEqual(r.code, 250, str(r))
        facts, name = parse_facts(r.lines[1][1:])
        self.assertIn(facts["type"], ("cdir", "dir"))
        c.expect("CWD dir", 250)
        facts, name = parse_facts(c.cmd("MLST a.txt").lines[1][1:])
        self.assertEqual(name, "/dir/a.txt")
        self.assertEqual(c.cmd("MLST nonexistent").code, 550)
        # OPTS MLST selects the facts shown.
        r = c.cmd("OPTS MLST type;size;")
        self.assertEqual(r.code, 200, str(r))
        facts, name = parse_facts(c.cmd("MLST a.txt").lines[1][1:])
        self.assertEqual(sorted(facts), ["size", "type"])

    def test_size_mdtm(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        self.assertEqual(c.cmd("SIZE old.txt").lines[0], "213 9")
        self.assertEqual(c.cmd("SIZE /dir/b.txt").lines[0], "213 3")
        self.assertEqual(c.cmd("SIZE new.bin").lines[0], "213 5000")
        self.assertEqual(c.cmd("SIZE nonexistent").code, 550)
        self.assertEqual(c.cmd("SIZE dir").code, 550)
        c.expect("TYPE A", 200)
        r = c.cmd("SIZE lines.txt")
        # RFC 3659 4: in ASCII the size is that of the transfer, or 550.
        self.assertIn(r.lines[0], ("213 12", "550") if r.code == 213 else (r.lines[0],))
        self.assertIn(r.code, (213, 550))
        self.assertEqual(c.cmd("MDTM old.txt").lines[0], "213 " + mtime_str(OLD))
        self.assertEqual(c.cmd("MDTM dir/a.txt").lines[0], "213 " + mtime_str(OLD))
        self.assertEqual(c.cmd("MDTM nonexistent").code, 550)
        f = self.ftp()
        f.voidcmd("TYPE I")
        self.assertEqual(f.size("new.bin"), 5000)


class FileOpsTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        make_tree(root)

    def test_mkd_rmd(self):
        c = self.ctl()
        r = c.cmd("MKD made")
        self.assertEqual(r.code, 257, str(r))
        self.assertTrue(r.lines[0].startswith('257 "/made"'), str(r))
        self.assertTrue(os.path.isdir(self.path("made")))
        self.assertEqual(c.cmd("MKD made").code, 550)
        self.assertEqual(c.cmd("MKD no/such/parent").code, 550)
        c.expect("CWD made", 250)
        r = c.cmd("MKD inner")
        self.assertTrue(r.lines[0].startswith('257 "/made/inner"'), str(r))
        c.expect("CWD /", 250)
        self.assertEqual(c.cmd("RMD made").code, 550, "RMD of a non-empty directory")
        self.assertEqual(c.cmd("RMD made/inner").code, 250)
        self.assertEqual(c.cmd("RMD made").code, 250)
        self.assertFalse(os.path.exists(self.path("made")))
        self.assertEqual(c.cmd("RMD made").code, 550)
        self.assertEqual(c.cmd("RMD old.txt").code, 550)
        self.assertIn(c.cmd("RMD /").code, (550, 553))
        self.assertTrue(os.path.isdir(self.root))

    def test_dele(self):
        T.write(self.path("del.txt"), b"x")
        c = self.ctl()
        self.assertEqual(c.cmd("DELE del.txt").code, 250)
        self.assertFalse(os.path.exists(self.path("del.txt")))
        self.assertEqual(c.cmd("DELE del.txt").code, 550)
        self.assertEqual(c.cmd("DELE dir").code, 550)
        self.assertTrue(os.path.isdir(self.path("dir")))

    def test_rename(self):
        T.write(self.path("ren1.txt"), b"rename me\n")
        c = self.ctl()
        self.assertEqual(c.cmd("RNFR ren1.txt").code, 350)
        self.assertEqual(c.cmd("RNTO ren2.txt").code, 250)
        self.assertFalse(os.path.exists(self.path("ren1.txt")))
        self.assertEqual(T.read(self.path("ren2.txt")), b"rename me\n")
        # Into a subdirectory, by absolute path.
        c.expect("RNFR /ren2.txt", 350)
        c.expect("RNTO /dir/ren3.txt", 250)
        self.assertEqual(T.read(self.path("dir", "ren3.txt")), b"rename me\n")
        # Directories too.
        os.mkdir(self.path("rdir"))
        c.expect("RNFR rdir", 350)
        c.expect("RNTO rdir2", 250)
        self.assertTrue(os.path.isdir(self.path("rdir2")))
        # Errors.
        self.assertEqual(c.cmd("RNTO x.txt").code, 503, "RNTO without RNFR")
        self.assertEqual(c.cmd("RNFR nonexistent").code, 550)
        c.expect("RNFR dir/ren3.txt", 350)
        c.expect("NOOP", 200)
        self.assertEqual(c.cmd("RNTO ren4.txt").code, 503, "RNTO must follow RNFR directly")
        self.assertTrue(os.path.exists(self.path("dir", "ren3.txt")))
        c.expect("RNFR dir/ren3.txt", 350)
        self.assertEqual(c.cmd("RNTO no/such/dir/x.txt").code, 550)

    def test_site_chmod(self):
        T.write(self.path("mode.txt"), b"x")
        os.chmod(self.path("mode.txt"), 0o644)
        c = self.ctl()
        self.assertEqual(c.cmd("SITE CHMOD 600 mode.txt").code, 200)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("mode.txt")).st_mode), 0o600)
        self.assertEqual(c.cmd("SITE CHMOD 755 dir").code, 200)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("dir")).st_mode), 0o755)
        self.assertEqual(c.cmd("SITE CHMOD 644 nonexistent").code, 550)
        self.assertIn(c.cmd("SITE CHMOD 99999 mode.txt").code, (501, 550))
        self.assertEqual(stat.S_IMODE(os.stat(self.path("mode.txt")).st_mode), 0o600)
        r = c.cmd("SITE HELP")
        self.assertIn(r.code, (214, 200, 502))

    def test_odd_names_and_kinds(self):
        T.write(self.path("with space.txt"), b"spaced\n")
        T.write(self.path("zero.bin"), b"")
        f = self.ftp("EPSV")
        self.assertEqual(T.retr_bytes(f, "with space.txt"), b"spaced\n")
        self.assertEqual(T.retr_bytes(f, "zero.bin"), b"")
        T.stor_bytes(f, "zero-up.bin", b"")
        self.assertEqual(T.read(self.path("zero-up.bin")), b"")
        T.stor_bytes(f, "up with  two spaces.txt", b"x")
        self.assertEqual(T.read(self.path("up with  two spaces.txt")), b"x")
        f.voidcmd("TYPE I")
        self.assertEqual(f.size("with space.txt"), 7)
        c = self.ctl()
        get = c.data("PASV")
        r = c.cmd("RETR dir")
        get().close()
        self.assertEqual(r.code, 550, "RETR of a directory: %s" % r)
        get = c.data("PASV")
        r = c.cmd("STOR dir")
        get().close()
        self.assertEqual(r.code, 550, "STOR onto a directory: %s" % r)
        self.assertTrue(os.path.isdir(self.path("dir")))
        get = c.data("PASV")
        r = c.cmd("STOR no/such/dir/file.txt")
        get().close()
        self.assertEqual(r.code, 550, str(r))

    def test_rest_beyond_end(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("REST 999999", 350)
        r = c.cmd("RETR new.bin")
        d = get()
        if r.code in (125, 150):
            self.assertEqual(T.recv_all(d), b"")
            r = c.reply()
            self.assertEqual(r.code, 226, str(r))
        else:
            d.close()
            self.assertIn(r.code, (550, 551, 554), str(r))
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_ftplib_ops(self):
        f = self.ftp("EPRT")
        self.assertEqual(f.mkd("viaftplib"), "/viaftplib")
        f.cwd("viaftplib")
        T.stor_bytes(f, "x.bin", b"12345")
        self.assertEqual(f.size("x.bin"), 5)
        f.rename("x.bin", "y.bin")
        self.assertEqual(f.nlst(), ["y.bin"])
        f.delete("y.bin")
        f.cwd("..")
        f.rmd("viaftplib")
        self.assertFalse(os.path.exists(self.path("viaftplib")))
        with self.assertRaises(ftplib.error_perm):
            f.delete("nonexistent")


class ConcurrentUploadTest(T.ServerTestCase):
    def test_two_replacing_uploads_of_one_name(self):
        T.write(self.path("same.bin"), b"old")
        blobs = [T.random_bytes(2 * 1024 * 1024), T.random_bytes(3 * 1024 * 1024)]
        errors = []

        def worker(i):
            try:
                f = T.ftp_connect(self.server, self.user, self.password, mode="EPSV")
                try:
                    T.stor_bytes(f, "same.bin", blobs[i])
                finally:
                    T.quit_quietly(f)
            except Exception as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(60))
        self.assertEqual(errors, [])
        final = T.read(self.path("same.bin"))
        self.assertIn(T.sha256(final), [T.sha256(b) for b in blobs],
                      "concurrent uploads interleaved (%d bytes)" % len(final))
        self.assertEqual([n for n in os.listdir(self.root) if n.startswith(".sockserv")], [])


class MaxClientsTest(T.ServerTestCase):
    limit_args = ()
    server_args = ("--max-clients", "2", "--max-per-ip", "10")

    def refused(self, **kw):
        c = T.Ctl(self.server, greet=False, **kw)
        self.addCleanup(c.close)
        r = c.reply(T.timeout(10))
        self.assertEqual(r.code, 421, "connection over the limit: %s" % r)
        self.assertTrue(c.at_eof(T.timeout(5)))

    def new_session_eventually(self):
        # The freed slot is released when the server has finished the old
        # session, which the client cannot observe; retry briefly.
        deadline = time.monotonic() + T.timeout(5)
        while True:
            c = T.Ctl(self.server)
            if c.greeting.code == 220:
                return c
            c.close()
            self.assertLess(time.monotonic(), deadline, "slot never freed")
            time.sleep(0.05)

    def test_max_clients(self):
        c1 = self.ctl()
        c2 = self.ctl()
        self.refused()
        self.refused()
        self.assertEqual(c1.cmd("QUIT").code, 221)
        self.assertTrue(c1.at_eof())
        c3 = self.new_session_eventually()
        self.addCleanup(c3.close)
        c3.login(self.user, self.password)
        self.assertEqual(c2.cmd("NOOP").code, 200)
        c2.close()
        c3.close()

    def test_slots_freed_after_reset(self):
        for _ in range(3):
            a = self.new_session_eventually()
            b = self.new_session_eventually()
            T.reset_close(a.sock)
            T.reset_close(b.sock)
        c = self.new_session_eventually()
        self.addCleanup(c.close)
        c.login(self.user, self.password)


class MaxPerIpTest(T.ServerTestCase):
    limit_args = ()
    server_args = ("--max-clients", "10", "--max-per-ip", "1")

    def test_max_per_ip(self):
        c1 = self.ctl()
        c = T.Ctl(self.server, greet=False)
        self.addCleanup(c.close)
        r = c.reply(T.timeout(10))
        self.assertEqual(r.code, 421, str(r))
        if T.can_bind("127.0.0.2"):
            c2 = self.ctl(source="127.0.0.2")
            self.assertEqual(c2.cmd("NOOP").code, 200)
        self.assertEqual(c1.cmd("NOOP").code, 200)


class MaxClientsForkingTest(MaxClientsTest):
    server_args = MaxClientsTest.server_args + ("--mode", "forking")


class MaxPerIpForkingTest(MaxPerIpTest):
    server_args = MaxPerIpTest.server_args + ("--mode", "forking")


class IdleTimeoutTest(T.ServerTestCase):
    server_args = ("--idle-timeout", "1")

    def test_idle_session_closed(self):
        c = self.ctl()
        start = time.monotonic()
        r = c.reply(T.timeout(10))
        self.assertEqual(r.code, 421, str(r))
        self.assertTrue(c.at_eof(T.timeout(5)), "connection not closed after 421")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)

    def test_idle_before_login(self):
        c = self.ctl(login=False)
        self.assertEqual(c.reply(T.timeout(10)).code, 421)
        self.assertTrue(c.at_eof(T.timeout(5)))

    def test_long_transfer_not_cut_by_idle_timeout(self):
        data = T.random_bytes(8 * 1024 * 1024)
        T.write(self.path("slow.bin"), data)
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("EPSV")
        c.expect("RETR slow.bin", 150, 125)
        d = get()
        got = []
        start = time.monotonic()
        # Read slowly for longer than the idle timeout: the control
        # connection is quiet, but a transfer is running.
        while time.monotonic() - start < 2.5:
            chunk = d.recv(16384)
            self.assertTrue(chunk, "data connection closed during a slow transfer")
            got.append(chunk)
            time.sleep(0.05)  # pacing the reader, not waiting for an event
        got.append(T.recv_all(d))
        self.assertEqual(T.sha256(b"".join(got)), T.sha256(data))
        self.assertEqual(c.reply().code, 226)
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_activity_keeps_session(self):
        c = self.ctl()
        for _ in range(5):
            time.sleep(0.4)  # below the timeout: the timer must restart
            self.assertEqual(c.cmd("NOOP").code, 200)


class IdleTimeoutForkingTest(IdleTimeoutTest):
    server_args = IdleTimeoutTest.server_args + ("--mode", "forking")


class CoreScenario:
    """The core conversation, run again in forking mode and over IPv6."""

    @classmethod
    def make_tree(cls, root):
        cls.data = T.random_bytes(3 * 1024 * 1024)
        T.write(os.path.join(root, "data.bin"), cls.data)
        T.write(os.path.join(root, "dir", "x.txt"), b"x\n")
        os.makedirs(os.path.join(os.path.dirname(root), "outside"), exist_ok=True)
        T.write(os.path.join(os.path.dirname(root), "outside", "secret.txt"), b"SECRET")
        os.symlink("../outside", os.path.join(root, "escape"))

    def modes(self):
        return T.MODES if self.server.family == socket.AF_INET else ("EPSV", "EPRT")

    def test_core_transfers(self):
        for mode in self.modes():
            with self.subTest(mode=mode):
                f = self.ftp(mode)
                self.assertEqual(f.pwd(), "/")
                self.assertEqual(T.sha256(T.retr_bytes(f, "data.bin")), T.sha256(self.data))
                name = "up-%s.bin" % mode
                T.stor_bytes(f, name, self.data)
                self.assertEqual(T.file_sha256(self.path(name)), T.sha256(self.data))
                self.assertEqual(T.retr_bytes(f, "data.bin", rest=1000), self.data[1000:])
                lines = []
                f.dir(lines.append)
                self.assertTrue(any(l.endswith(" data.bin") for l in lines), lines)
                self.assertIn("x.txt", f.nlst("dir")[0])
                f.voidcmd("TYPE I")
                self.assertEqual(f.sendcmd("SIZE dir/x.txt"), "213 2")
                self.assertEqual(f.sendcmd("MDTM data.bin")[:3], "213")
                f.quit()

    def test_core_abort_and_errors(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("EPSV")
        c.expect("RETR data.bin", 150, 125)
        d = get()
        self.assertTrue(d.recv(65536))
        c.send("ABOR")
        self.assertEqual(c.reply(T.timeout(15)).code, 426)
        self.assertEqual(c.reply(T.timeout(15)).code, 226)
        d.close()
        self.assertEqual(c.cmd("RETR escape/secret.txt").code, 550)
        self.assertEqual(c.cmd("CWD escape").code, 550)
        bad = T.Ctl(self.server)
        self.addCleanup(bad.close)
        bad.cmd("USER " + self.user)
        self.assertEqual(bad.cmd("PASS wrong").code, 530)
        self.assertEqual(c.cmd("NOOP").code, 200)
        self.assert_alive()

    def test_core_parallel_sessions(self):
        results = []

        def worker():
            try:
                f = T.ftp_connect(self.server, self.user, self.password, mode=self.modes()[0])
                results.append(T.sha256(T.retr_bytes(f, "data.bin")))
                f.quit()
            except Exception as e:
                results.append(repr(e))
        threads = [threading.Thread(target=worker) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(60))
        self.assertEqual(results, [T.sha256(self.data)] * 5)


class ForkingTest(CoreScenario, T.ServerTestCase):
    server_args = ("--mode", "forking")


class Ipv6Test(CoreScenario, T.ServerTestCase):
    listen = "[::1]:0"

    @classmethod
    def setUpClass(cls):
        if not T.ipv6_available():
            raise unittest.SkipTest("::1 is not configured")
        super().setUpClass()

    def test_listening_line(self):
        self.assertEqual(self.server.family, socket.AF_INET6)
        self.assertEqual(self.server.host, "::1")

    def test_ipv6_data_commands(self):
        c = self.ctl()
        r = c.expect("EPSV", 229)
        self.assertRegex(r.lines[0], r"\(\|\|\|\d+\|\)")
        self.assertEqual(c.cmd("EPSV 2").code, 229)
        # IPv4 PORT to an address that is not the client's is refused.
        r = c.cmd("PORT 127,0,0,1,200,1")
        if r.code == 200:
            r = c.cmd("NLST")
        self.assertGreaterEqual(r.code, 400, str(r))
        self.assertEqual(c.cmd("NOOP").code, 200)


class SignalTest(unittest.TestCase):
    """Each test runs its own server: they stop it."""

    mode_args = ()

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="ftpd-sig-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        self.data = T.random_bytes(8 * 1024 * 1024)
        T.write(os.path.join(self.root, "big.bin"), self.data)
        T.write(os.path.join(self.root, "small.txt"), b"small\n")
        self.users = os.path.join(self.base, "users")
        T.write_users(self.users, [("alice", "pw")])
        self.log = os.path.join(self.base, "ftpd.log")
        self.xferlog = os.path.join(self.base, "xferlog")

    def start(self, *extra):
        srv = T.Server(self.root, ["--users", self.users, "--log", self.log,
                                   "--xferlog", self.xferlog] + list(self.mode_args)
                       + list(extra),
                       workdir=self.base)
        srv.start()
        self.addCleanup(self.check_exit, srv)
        return srv

    def check_exit(self, srv):
        rc = srv.stop()
        self.assertEqual(rc, 0, "server exit status %r; stderr tail:\n%s"
                         % (rc, srv.stderr_tail()))

    def refuses_new_sessions(self, srv):
        try:
            s = socket.create_connection(srv.address, timeout=1)
        except OSError:
            return True
        try:
            s.settimeout(0.5 * T.SLOW)
            data = s.recv(100)
            return not data.startswith(b"220")
        except (socket.timeout, OSError):
            return True
        finally:
            s.close()

    def test_sigterm_lets_transfer_finish(self):
        srv = self.start()
        c = T.Ctl(srv)
        self.addCleanup(c.close)
        c.login("alice", "pw")
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("RETR big.bin", 150, 125)
        d = get()
        first = d.recv(65536)
        self.assertTrue(first)
        srv.signal(signal.SIGTERM)
        deadline = time.monotonic() + T.timeout(5)
        while not self.refuses_new_sessions(srv):
            self.assertLess(time.monotonic(), deadline, "still accepting after SIGTERM")
            time.sleep(0.05)
        rest = T.recv_all(d)
        self.assertEqual(T.sha256(first + rest), T.sha256(self.data),
                         "transfer cut short by SIGTERM")
        self.assertEqual(c.reply(T.timeout(15)).code, 226)
        try:
            c.cmd("QUIT")
        except (EOFError, ConnectionError):
            pass
        c.close()
        self.assertEqual(srv.wait(T.timeout(40)), 0, srv.stderr_tail())

    def test_sigterm_closes_idle_sessions(self):
        srv = self.start()
        c = T.Ctl(srv)
        self.addCleanup(c.close)
        c.login("alice", "pw")
        srv.signal(signal.SIGTERM)
        try:
            r = c.reply(T.timeout(10))
            self.assertEqual(r.code, 421, str(r))
        except EOFError:
            pass
        self.assertEqual(srv.wait(T.timeout(10)), 0,
                         "an idle session kept the server from stopping")

    def test_sigint_stops(self):
        srv = self.start()
        with T.Ctl(srv) as c:
            c.login("alice", "pw")
        srv.signal(signal.SIGINT)
        self.assertEqual(srv.wait(T.timeout(20)), 0, srv.stderr_tail())

    def transfer(self, srv, name="small.txt", type_="I"):
        f = T.ftp_connect(srv, "alice", "pw")
        try:
            if type_ == "A":
                lines = []
                f.retrlines("RETR " + name, lines.append)
            else:
                T.retr_bytes(f, name)
            T.stor_bytes(f, "uploaded.bin", b"u" * 1234)
        finally:
            T.quit_quietly(f)

    def wait_lines(self, path, pred, limit=10):
        deadline = time.monotonic() + T.timeout(limit)
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    lines = fh.read().decode("utf-8", "replace").splitlines()
                if any(pred(l) for l in lines):
                    return lines
            time.sleep(0.05)  # the log is written by another process
        return None

    def test_xferlog_lines(self):
        srv = self.start()
        self.transfer(srv)
        self.transfer(srv, "small.txt", "A")

        def is_xfer(direction, size, name, ttype):
            def pred(line):
                t = line.split()
                return (len(t) >= 18 and t[7] == str(size) and t[8].endswith(name)
                        and t[9] == ttype and t[11] == direction and t[-1] == "c")
            return pred
        lines = self.wait_lines(self.xferlog, is_xfer("o", 6, "small.txt", "b"))
        self.assertIsNotNone(lines, "no xferlog line for the download")
        line = [l for l in lines if is_xfer("o", 6, "small.txt", "b")(l)][0]
        t = line.split()
        # "DDD MMM dd hh:mm:ss YYYY secs host size file type _ dir mode user svc auth id c"
        self.assertRegex(" ".join(t[:5]), r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}$")
        self.assertEqual(t[6], "127.0.0.1")
        self.assertEqual(t[12], "r")
        self.assertEqual(t[13], "alice")
        self.assertIsNotNone(self.wait_lines(self.xferlog,
                                             is_xfer("i", 1234, "uploaded.bin", "b")),
                             "no xferlog line for the upload")
        self.assertIsNotNone(self.wait_lines(self.xferlog, lambda l: len(l.split()) >= 18 and
                                             l.split()[9] == "a"),
                             "no xferlog line for the ASCII download")
        log = self.wait_lines(self.log, lambda l: "alice" in l)
        self.assertIsNotNone(log, "session log does not mention the login")
        log = self.wait_lines(self.log, lambda l: "small.txt" in l)
        self.assertIsNotNone(log, "session log has no line for the transfer")

    def test_sighup_reopens_logs(self):
        srv = self.start()
        self.transfer(srv)
        self.assertIsNotNone(self.wait_lines(self.log, lambda l: True))
        self.assertIsNotNone(self.wait_lines(self.xferlog, lambda l: True))
        os.rename(self.log, self.log + ".1")
        os.rename(self.xferlog, self.xferlog + ".1")
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + T.timeout(10)
        while not (os.path.exists(self.log) and os.path.exists(self.xferlog)):
            self.assertLess(time.monotonic(), deadline, "logs not reopened after SIGHUP")
            self.transfer(srv)
        self.transfer(srv)
        self.assertIsNotNone(self.wait_lines(self.xferlog, lambda l: "small.txt" in l),
                             "no transfer logged into the reopened xferlog")
        self.assertIsNotNone(self.wait_lines(self.log, lambda l: True))
        self.assertIsNone(srv.proc.poll(), "SIGHUP stopped the server")


class SignalForkingTest(SignalTest):
    mode_args = ("--mode", "forking")


if __name__ == "__main__":
    T.main()
