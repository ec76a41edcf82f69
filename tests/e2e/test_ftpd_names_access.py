"""sockserv-ftpd: names, replies, anonymous rights, unused passive ports.

- A new name with a CR (which would vanish from every listing) is refused
  with 553; a 0xff byte in a name goes out doubled (telnet IAC IAC), so a
  client never reads it as a telnet command.
- SITE CHMOD applies the permission bits only.
- --anonymous-write lets anonymous users upload new files and make folders,
  nothing more; --anonymous-modify adds overwrite, append, rename, delete
  and chmod.
- The session log tells anonymous sessions apart from a user of the same
  name as the anonymous password, and quotes that password as data.
- An unused passive listener is closed after --data-timeout, so its port
  goes back to the range.
"""

import os
import socket
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402


def raw_reply(c, line):
    """Send a raw command (bytes) and return the raw reply bytes."""
    c.send(line + b"\r\n")
    return c.reply().raw


class NamesTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "plain.txt"), b"x\n")
        os.mkdir(os.path.join(root, "d"))

    def test_cr_in_new_names_refused(self):
        c = self.ctl()
        before = sorted(os.listdir(self.root))
        get = c.data("PASV")
        r = raw_reply(c, b"STOR hidden\rname")
        self.assertTrue(r.startswith(b"553"), r)
        get().close()
        self.assertTrue(raw_reply(c, b"MKD new\rdir").startswith(b"553"))
        self.assertTrue(raw_reply(c, b"RNFR plain.txt").startswith(b"350"))
        self.assertTrue(raw_reply(c, b"RNTO re\rnamed").startswith(b"553"))
        self.assertTrue(raw_reply(c, b"APPE app\rend").startswith(b"553"))
        self.assertEqual(sorted(os.listdir(self.root)), before)
        # Names without CR still work.
        self.assertTrue(raw_reply(c, b"MKD fine dir").startswith(b"257"))

    def test_0xff_doubled_in_replies(self):
        c = self.ctl()
        name = b"bad\xff\xfename"
        r = raw_reply(c, b"MKD " + name.replace(b"\xff", b"\xff\xff"))
        self.assertTrue(r.startswith(b"257"), r)
        self.assertTrue(os.path.isdir(os.path.join(self.root.encode(), name)))
        self.assertIn(b"bad\xff\xff\xfename", r)
        self.assertTrue(raw_reply(c, b"CWD " + name.replace(b"\xff", b"\xff\xff"))
                        .startswith(b"250"))
        r = raw_reply(c, b"PWD")
        self.assertIn(b"\xff\xff\xfe", r)
        # No lone IAC anywhere: every 0xff comes in a pair.
        self.assertNotIn(b"\xff", r.replace(b"\xff\xff", b""))

    def test_site_chmod_permission_bits_only(self):
        c = self.ctl()
        T.write(self.path("suid.bin"), b"#!/bin/sh\n")
        self.assertEqual(c.cmd("SITE CHMOD 4755 suid.bin").code, 200)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("suid.bin")).st_mode), 0o755)
        self.assertEqual(c.cmd("SITE CHMOD 1777 d").code, 200)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("d")).st_mode), 0o777)


class AnonymousWriteOnlyTest(T.ServerTestCase):
    users = None
    user = None
    anonymous = True
    server_args = ("--anonymous-write",)

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "keep.txt"), b"original\n")
        os.mkdir(os.path.join(root, "olddir"))

    def test_upload_and_mkd_only(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("STOR new.txt", 150, 125)
        s = get()
        s.sendall(b"new\n")
        s.close()
        self.assertEqual(c.reply().code, 226)
        self.assertEqual(T.read(self.path("new.txt")), b"new\n")
        self.assertEqual(c.cmd("MKD made").code, 257)
        for line in ("STOR keep.txt", "APPE keep.txt", "DELE keep.txt", "RNFR keep.txt",
                     "RMD olddir", "SITE CHMOD 600 keep.txt"):
            get = c.data("PASV") if line.startswith(("STOR", "APPE")) else None
            r = c.cmd(line)
            self.assertEqual(r.code, 550, "%s -> %s" % (line, r))
            if get is not None:
                get().close()
        c.expect("REST 2", 350)
        get = c.data("PASV")
        self.assertEqual(c.cmd("STOR new.txt").code, 550)
        get().close()
        self.assertEqual(T.read(self.path("keep.txt")), b"original\n")
        self.assertEqual(T.read(self.path("new.txt")), b"new\n")
        self.assertTrue(os.path.isdir(self.path("olddir")))


class AnonymousModifyTest(T.ServerTestCase):
    users = None
    user = None
    anonymous = True
    server_args = ("--anonymous-modify",)

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "a.txt"), b"a\n")
        T.write(os.path.join(root, "b.txt"), b"b\n")

    def test_modify_allowed(self):
        f = self.ftp()
        T.stor_bytes(f, "a.txt", b"replaced\n")
        self.assertEqual(T.read(self.path("a.txt")), b"replaced\n")
        f.rename("a.txt", "c.txt")
        f.delete("b.txt")
        self.assertEqual(sorted(os.listdir(self.root)), ["c.txt"])


class AnonymousLogTest(T.ServerTestCase):
    users = [("alice", "wonderland")]
    anonymous = True

    @classmethod
    def setUpClass(cls):
        cls.server_args = ("--log", "ftpd.log", "--xferlog", "xfer.log")
        super().setUpClass()

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "f.txt"), b"data\n")

    def log_text(self):
        with open(os.path.join(self.base, "ftpd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_anonymous_password_is_data(self):
        f = T.ftp_connect(self.server, "anonymous", 'alice" user root')
        T.retr_bytes(f, "f.txt")
        T.quit_quietly(f)
        f = T.ftp_connect(self.server, "alice", "wonderland")
        T.retr_bytes(f, "f.txt")
        T.quit_quietly(f)
        # Bounded wait for both transfer lines (the log is written as the
        # transfers end, before their 226).
        deadline = time.monotonic() + T.timeout(5)
        while self.log_text().count("download") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [l for l in self.log_text().splitlines() if "login ok" in l or "download" in l]
        anon = [l for l in lines if "anonymous" in l]
        user = [l for l in lines if "anonymous" not in l]
        self.assertEqual(len(anon), 2, lines)
        self.assertEqual(len(user), 2, lines)
        for l in anon:
            self.assertIn('password "alice\\" user root"', l)
            self.assertNotIn("user alice", l)
        for l in user:
            self.assertIn("user alice", l)


class PassiveExpiryTest(T.ServerTestCase):
    """One passive port: a session that takes it and never uses it gives it
    back after the data timeout."""

    @classmethod
    def setUpClass(cls):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        cls.pasv_port = s.getsockname()[1]
        s.close()
        cls.server_args = ("--pasv-ports", "%d-%d" % (cls.pasv_port, cls.pasv_port),
                           "--data-timeout", "2", "--max-pasv-per-ip", "1")
        super().setUpClass()

    def test_unused_listener_closed(self):
        hoarder = self.ctl()
        hoarder.expect("PASV", 227)
        other = self.ctl()
        self.assertEqual(other.cmd("PASV").code, 425)
        start = time.monotonic()
        # Bounded poll: the port is free once the hoarder's deadline passed.
        while True:
            r = other.cmd("PASV")
            if r.code == 227:
                break
            self.assertEqual(r.code, 425, str(r))
            self.assertLess(time.monotonic() - start, T.timeout(6), "port never given back")
            time.sleep(0.2)
        self.assertGreater(time.monotonic() - start, 1.0)
        # The hoarder's session lives on; its next transfer needs a new PASV.
        self.assertEqual(hoarder.cmd("NOOP").code, 200)
        self.assertEqual(hoarder.cmd("LIST").code, 425)


if __name__ == "__main__":
    T.main()
