"""sockserv-ftpd: reply codes and command parsing that real clients and
hostile input depend on (RFC 959 5.4, RFC 2428, RFC 3659 REST).

Each test pins down one behaviour: REST is forgotten by any command but the
data-connection setup that may come between it and the transfer, EPSV with
an unknown protocol number is 522, a verb and its argument may be separated
by a tab, CLNT gets an answer, and a command line that arrives byte by byte
is bounded by the idle timeout.
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402


class ProtocolReviewTest(T.ServerTestCase):
    server_args = ("--idle-timeout", "2")

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "hello.txt"), b"hello world\n")
        os.mkdir(os.path.join(root, "dir"))

    def retr(self, c, path):
        get = c.data("PASV")
        c.expect("RETR " + path, 150, 125)
        data = T.recv_all(get())
        self.assertEqual(c.reply().code, 226)
        return data

    def test_rest_forgotten_by_other_commands(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        for between in ("NOOP", "PWD", "SIZE hello.txt", "CWD /", "STAT"):
            with self.subTest(between=between):
                c.expect("REST 6", 350)
                self.assertLess(c.cmd(between).code, 400)
                self.assertEqual(self.retr(c, "hello.txt"), b"hello world\n")

    def test_rest_survives_data_setup(self):
        c = self.ctl()
        c.expect("REST 6", 350)
        c.expect("TYPE I", 200)
        self.assertEqual(self.retr(c, "hello.txt"), b"world\n")
        # Used once: the next download is whole again.
        self.assertEqual(self.retr(c, "hello.txt"), b"hello world\n")

    def test_epsv_protocols(self):
        c = self.ctl()
        r = c.cmd("EPSV 3")
        self.assertEqual(r.code, 522, str(r))
        self.assertIn("(1)", r.lines[0])
        self.assertEqual(c.cmd("EPSV 2").code, 522)
        self.assertEqual(c.cmd("EPSV x").code, 501)
        self.assertEqual(c.cmd("EPSV 1").code, 229)
        c.expect("ABOR", 225, 226)

    def test_tab_separator(self):
        c = self.ctl()
        self.assertEqual(c.cmd("CWD\tdir").code, 250)
        self.assertEqual(c.cmd("PWD").lines[0], '257 "/dir" is the current directory.')
        self.assertEqual(c.cmd("type\ti").code, 200)

    def test_trailing_blanks_after_words(self):
        c = self.ctl(login=False)
        self.assertEqual(c.cmd("USER %s  " % self.user).code, 331)
        self.assertEqual(c.cmd("PASS " + self.password).code, 230)
        for cmd, code in (("TYPE I  ", 200), ("MODE S ", 200), ("STRU F\t", 200),
                          ("OPTS UTF8 ON ", 200), ("REST 0 ", 350), ("EPSV 1 ", 229),
                          ("HELP cwd ", 214), ("ALLO 10 ", 202), ("NOOP  ", 200)):
            with self.subTest(cmd=cmd):
                self.assertEqual(c.cmd(cmd).code, code)
        c.expect("ABOR", 225, 226)

    def test_rein_and_abor_before_login(self):
        # RFC 959 5.4 lists no 530 for REIN and ABOR.
        c = self.ctl(login=False)
        self.assertEqual(c.cmd("ABOR").code, 225)
        self.assertEqual(c.cmd("USER " + self.user).code, 331)
        self.assertEqual(c.cmd("REIN").code, 220)
        self.assertEqual(c.cmd("PASS " + self.password).code, 503)
        c.login(self.user, self.password)
        self.assertEqual(c.cmd("PWD").code, 257)

    def test_failed_rnfr_cancels_earlier_one(self):
        c = self.ctl()
        T.write(self.path("ren.txt"), b"r")
        c.expect("RNFR ren.txt", 350)
        c.expect("RNFR missing.txt", 550)
        self.assertEqual(c.cmd("RNTO other.txt").code, 503)
        c.expect("RNFR ren.txt", 350)
        c.expect("NOOP", 200)
        self.assertEqual(c.cmd("RNTO other.txt").code, 503)
        self.assertTrue(os.path.exists(self.path("ren.txt")))
        c.expect("RNFR ren.txt", 350)
        c.expect("RNTO renamed.txt", 250)
        self.assertEqual(T.read(self.path("renamed.txt")), b"r")

    def test_filezilla_style_session(self):
        c = self.ctl(login=False)
        feat = c.expect("FEAT", 211)
        self.assertNotIn(" MFMT", feat.lines)
        c.expect("OPTS UTF8 ON", 200)
        c.login(self.user, self.password)
        self.assertIn(c.cmd("CLNT FileZilla").code, (200, 202, 502))
        self.assertEqual(c.cmd("PWD").lines[0], '257 "/" is the current directory.')
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("MLSD", 150, 125)
        listing = T.recv_all(get())
        self.assertEqual(c.reply().code, 226)
        self.assertIn(b"; hello.txt\r\n", listing)
        c.expect("CWD /", 250)
        self.assertEqual(c.cmd("SIZE hello.txt").lines[0], "213 12")
        c.expect("MDTM hello.txt", 213)
        get = c.data("EPSV")
        c.expect("REST 0", 350)
        c.expect("RETR hello.txt", 150, 125)
        self.assertEqual(T.recv_all(get()), b"hello world\n")
        self.assertEqual(c.reply().code, 226)
        self.assertEqual(c.cmd("MFMT 20200102030405 hello.txt").code, 500)
        c.expect("QUIT", 221)

    def test_clnt(self):
        c = self.ctl(login=False)
        self.assertIn(c.cmd("CLNT FileZilla 3").code, (200, 202, 502))
        c.login(self.user, self.password)
        self.assertIn(c.cmd("CLNT lftp").code, (200, 202, 502))
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_slow_drip_line_times_out(self):
        c = self.ctl(login=False)
        start = time.monotonic()
        got = b""
        # One byte every 0.3 s of a line that never ends: the idle timeout
        # (2 s) covers the whole line, not each byte.
        for i in range(int(T.timeout(8) / 0.3)):
            try:
                c.sock.sendall(b"N")
            except OSError:
                break
            r, _, _ = T.select.select([c.sock], [], [], 0.3)
            if r:
                chunk = c.sock.recv(4096)
                got += chunk
                if not chunk:
                    break
        self.assertIn(b"421", got)
        self.assertLess(time.monotonic() - start, T.timeout(8))
        self.assert_alive()

    def test_slow_drip_does_not_block_others(self):
        c = self.ctl(login=False)
        c.sock.sendall(b"NO")
        other = self.ctl()
        self.assertEqual(other.cmd("NOOP").code, 200)
        c.sock.sendall(b"OP\r\n")
        self.assertEqual(c.reply().code, 200)

    def test_line_split_across_packets(self):
        c = self.ctl()
        c.sock.sendall(b"NO")
        time.sleep(0.05)
        c.sock.sendall(b"OP\r")
        time.sleep(0.05)
        c.sock.sendall(b"\nPWD\r\nNOOP\n")
        self.assertEqual(c.reply().code, 200)
        self.assertEqual(c.reply().code, 257)
        self.assertEqual(c.reply().code, 200)

    def test_names_not_utf8_keep_their_bytes(self):
        c = self.ctl()
        for name in (b"bad\xff\xfeutf", b"l\xe9tin", b"x\xffy", b"end\xff"):
            with self.subTest(name=name):
                c.send(b"MKD " + name + b"\r\n")
                r = c.reply()
                self.assertEqual(r.code, 257, str(r))
                self.assertTrue(os.path.isdir(os.path.join(self.root.encode(), name)))
                c.send(b"RMD " + name + b"\r\n")
                self.assertEqual(c.reply().code, 250)
        # IAC IAC is one 0xff byte; IAC IP and IAC DM are removed.
        c.send(b"MKD a\xff\xffb\r\n")
        self.assertEqual(c.reply().code, 257)
        self.assertTrue(os.path.isdir(os.path.join(self.root.encode(), b"a\xffb")))
        c.send(b"\xff\xf4\xff\xf2NOOP\r\n")
        self.assertEqual(c.reply().code, 200)

    def test_list_option_words(self):
        c = self.ctl()
        for cmd, names in (("NLST -1", [b"dir", b"hello.txt"]), ("NLST -1 dir", []),
                           ("LIST -1 -a dir", []), ("NLST -la", [b"dir", b"hello.txt"])):
            with self.subTest(cmd=cmd):
                get = c.data("PASV")
                c.expect(cmd, 150, 125)
                data = T.recv_all(get())
                self.assertEqual(c.reply().code, 226)
                if cmd.startswith("NLST"):
                    self.assertTrue(set(names) <= set(data.split(b"\r\n")), data)

    def test_size_in_ascii_mode(self):
        # ftplib's size() sends SIZE in the default TYPE A.
        f = self.ftp()
        self.assertEqual(f.size("hello.txt"), 13)
        f.voidcmd("TYPE I")
        self.assertEqual(f.size("hello.txt"), 12)

    def test_long_line_then_session_goes_on(self):
        c = self.ctl()
        c.sock.sendall(b"NOOP " + b"x" * (1 << 20) + b"\r\n")
        self.assertEqual(c.reply(T.timeout(15)).code, 500)
        self.assertEqual(c.cmd("NOOP").code, 200)


if __name__ == "__main__":
    T.main()
