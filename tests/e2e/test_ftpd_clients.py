"""sockserv-ftpd with the real command-line clients: curl and lftp.

Downloads and uploads byte-exact in every data-connection mode each client
offers, listings, quoted commands, resume, mirror and segmented download.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

MIB = 1024 * 1024
USER, PASSWORD = "alice", "wonderland"


def tree(root):
    T.write(os.path.join(root, "big.bin"), T.random_bytes((16 if not T.SANITIZE else 6) * MIB))
    T.write(os.path.join(root, "text.txt"), b"line one\nline two\n\nlast\n")
    T.write(os.path.join(root, "tree", "a.bin"), T.random_bytes(100000))
    T.write(os.path.join(root, "tree", "sub", "b.bin"), T.random_bytes(3000))
    T.write(os.path.join(root, "tree", "sub", "deeper", "c.txt"), b"deep\n")
    T.write(os.path.join(root, "tree", "empty.txt"), b"")
    os.mkdir(os.path.join(root, "up"))


class ClientTestCase(T.ServerTestCase):
    anonymous = True
    users = [(USER, PASSWORD)]
    user, password = USER, PASSWORD

    @classmethod
    def make_tree(cls, root):
        tree(root)

    def setUp(self):
        self.local = tempfile.mkdtemp(prefix="ftpd-client-")
        self.addCleanup(shutil.rmtree, self.local, True)

    def run_tool(self, args, limit=60, check=True, stdin=None):
        p = subprocess.run(args, stdin=subprocess.DEVNULL if stdin is None else stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=T.timeout(limit), cwd=self.local)
        if check and p.returncode != 0:
            self.fail("%s exited %d\nstdout: %s\nstderr: %s"
                      % (" ".join(args), p.returncode, p.stdout[-2000:].decode(errors="replace"),
                         p.stderr[-2000:].decode(errors="replace")))
        return p

    def lpath(self, *parts):
        return os.path.join(self.local, *parts)

    def assert_same_file(self, a, b):
        self.assertEqual(T.file_sha256(a), T.file_sha256(b), "%s != %s" % (a, b))


class CurlTest(ClientTestCase):
    MODES = {
        "epsv": [],
        "pasv": ["--disable-epsv"],
        "eprt": ["--ftp-port", "127.0.0.1"],
        "port": ["--ftp-port", "127.0.0.1", "--disable-eprt"],
    }

    def curl(self, *args, **kw):
        return self.run_tool(["curl", "-sS", "--fail", "--max-time", str(int(T.timeout(60))),
                              "--connect-timeout", str(int(T.timeout(10)))] + list(args), **kw)

    def url(self, path=""):
        return self.server.url(path, USER, PASSWORD)

    def test_download_every_mode(self):
        for name, opts in self.MODES.items():
            with self.subTest(mode=name):
                out = self.lpath("big-%s.bin" % name)
                self.curl(*opts, "-o", out, self.url("big.bin"))
                self.assert_same_file(out, self.path("big.bin"))

    def test_upload_every_mode(self):
        src = self.lpath("src.bin")
        T.write(src, T.random_bytes(3 * MIB))
        for name, opts in self.MODES.items():
            with self.subTest(mode=name):
                self.curl(*opts, "-T", src, self.url("up/curl-%s.bin" % name))
                self.assert_same_file(self.path("up", "curl-%s.bin" % name), src)

    def test_upload_creating_dirs_and_replacing(self):
        src = self.lpath("v1.txt")
        T.write(src, b"version 1\n")
        self.curl("--ftp-create-dirs", "-T", src, self.url("up/new/deep/file.txt"))
        self.assertEqual(T.read(self.path("up", "new", "deep", "file.txt")), b"version 1\n")
        T.write(src, b"version 2, longer\n")
        self.curl("-T", src, self.url("up/new/deep/file.txt"))
        self.assertEqual(T.read(self.path("up", "new", "deep", "file.txt")),
                         b"version 2, longer\n")

    def test_nested_download_methods(self):
        for method in ("multicwd", "singlecwd", "nocwd"):
            with self.subTest(method=method):
                p = self.curl("--ftp-method", method, self.url("tree/sub/deeper/c.txt"))
                self.assertEqual(p.stdout, b"deep\n")

    def test_list_only(self):
        p = self.curl("--list-only", self.url("tree/"))
        self.assertEqual(sorted(p.stdout.decode().split()), ["a.bin", "empty.txt", "sub"])

    def test_list(self):
        p = self.curl(self.url("tree/"))
        lines = p.stdout.decode().splitlines()
        self.assertEqual(len(lines), 3, lines)
        sizes = {}
        for line in lines:
            m = T.LS_RE.match(line)
            self.assertIsNotNone(m, "curl listing line %r" % line)
            sizes[m.group(10)] = (m.group(1), int(m.group(6)))
        self.assertEqual(sizes["a.bin"], ("-", 100000))
        self.assertEqual(sizes["empty.txt"], ("-", 0))
        self.assertEqual(sizes["sub"][0], "d")

    def test_quote_commands(self):
        T.write(self.path("up", "q1.txt"), b"q\n")
        self.curl("-Q", "MKD /up/qdir", "-Q", "RNFR /up/q1.txt", "-Q", "RNTO /up/qdir/q2.txt",
                  "-Q", "SITE CHMOD 600 /up/qdir/q2.txt", "--list-only", self.url("up/"))
        self.assertEqual(T.read(self.path("up", "qdir", "q2.txt")), b"q\n")
        self.assertEqual(os.stat(self.path("up", "qdir", "q2.txt")).st_mode & 0o777, 0o600)
        # A command after the transfer ("-" prefix) and a failing one.
        self.curl("-Q", "-DELE /up/qdir/q2.txt", "--list-only", self.url("up/qdir/"))
        self.assertFalse(os.path.exists(self.path("up", "qdir", "q2.txt")))
        p = self.curl("-Q", "DELE /up/nonexistent", self.url("up/"), check=False)
        self.assertNotEqual(p.returncode, 0)

    def test_resume_download(self):
        data = T.read(self.path("big.bin"))
        out = self.lpath("partial.bin")
        T.write(out, data[:1234567])
        self.curl("-C", "-", "-o", out, self.url("big.bin"))
        self.assert_same_file(out, self.path("big.bin"))

    def test_resume_upload(self):
        src = self.lpath("upsrc.bin")
        data = T.random_bytes(2 * MIB)
        T.write(src, data)
        T.write(self.path("up", "resume.bin"), data[:700000])
        self.curl("-C", "-", "-T", src, self.url("up/resume.bin"))
        self.assert_same_file(self.path("up", "resume.bin"), src)

    def test_append(self):
        T.write(self.path("up", "app.txt"), b"one\n")
        src = self.lpath("more.txt")
        T.write(src, b"two\n")
        self.curl("--append", "-T", src, self.url("up/app.txt"))
        self.assertEqual(T.read(self.path("up", "app.txt")), b"one\ntwo\n")

    def test_ascii_download(self):
        # On the wire the server sends CRLF; curl turns it back into LF.
        text = b"line one\nline two\n\nlast\n"
        for opts in ([self.url("text.txt;type=a")], ["--use-ascii", self.url("text.txt")]):
            with self.subTest(opts=opts):
                trace = self.lpath("trace.txt")
                p = self.curl("--trace-ascii", trace, *opts)
                self.assertEqual(p.stdout, text)
                with open(trace, errors="replace") as fh:
                    wire = sum(int(n) for n in re.findall(r"<= Recv data, (\d+) bytes",
                                                          fh.read()))
                self.assertEqual(wire, len(text.replace(b"\n", b"\r\n")),
                                 "bytes on the wire in TYPE A")

    def test_ranges(self):
        data = T.read(self.path("big.bin"))
        p = self.curl("-r", "1000-1999", self.url("big.bin"))
        self.assertEqual(p.stdout, data[1000:2000])

    def test_anonymous(self):
        p = self.curl(self.server.url("text.txt"))
        self.assertEqual(p.stdout, b"line one\nline two\n\nlast\n")
        src = self.lpath("anon.txt")
        T.write(src, b"anon\n")
        p = self.curl("-T", src, self.server.url("up/anon.txt"), check=False)
        self.assertNotEqual(p.returncode, 0, "anonymous upload accepted")
        self.assertFalse(os.path.exists(self.path("up", "anon.txt")))

    def test_bad_login_and_missing_file(self):
        p = self.curl(self.server.url("text.txt", USER, "wrong"), check=False)
        self.assertEqual(p.returncode, 67, "curl: login denied is exit 67: %s" % p.stderr)
        p = self.curl(self.url("nonexistent.txt"), check=False)
        self.assertEqual(p.returncode, 78, "curl: remote file not found is exit 78")
        self.assert_alive()


class LftpTest(ClientTestCase):
    def lftp(self, script, passive=True, limit=90, check=True):
        tmo = int(T.timeout(10))
        pre = ("set cmd:fail-exit yes; set net:max-retries 1; set net:timeout %d; "
               "set net:reconnect-interval-base 1; set ftp:passive-mode %s; "
               "set xfer:clobber yes; set cmd:interactive no; "
               "open -u %s,%s ftp://%s:%d; "
               % (tmo, "on" if passive else "off", USER, PASSWORD, self.server.host,
                  self.server.port))
        env = dict(os.environ, HOME=self.local)
        p = subprocess.run(["lftp", "-c", pre + script], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=T.timeout(limit), cwd=self.local, env=env)
        if check and p.returncode != 0:
            self.fail("lftp %r exited %d\nstdout: %s\nstderr: %s"
                      % (script, p.returncode, p.stdout[-2000:].decode(errors="replace"),
                         p.stderr[-2000:].decode(errors="replace")))
        return p

    def test_get_put_passive_and_active(self):
        src = self.lpath("src.bin")
        T.write(src, T.random_bytes(3 * MIB))
        for passive in (True, False):
            with self.subTest(passive=passive):
                tag = "pasv" if passive else "port"
                self.lftp("get big.bin -o big-%s.bin; put src.bin -o up/lftp-%s.bin"
                          % (tag, tag), passive=passive)
                self.assert_same_file(self.lpath("big-%s.bin" % tag), self.path("big.bin"))
                self.assert_same_file(self.path("up", "lftp-%s.bin" % tag), src)

    def test_cls_long(self):
        p = self.lftp("cls -l tree/")
        lines = [l for l in p.stdout.decode().splitlines() if l.strip()]
        self.assertEqual(len(lines), 3, lines)
        found = {}
        for line in lines:
            parts = line.split()
            found[parts[-1].rstrip("/").split("/")[-1]] = line
        self.assertEqual(sorted(found), ["a.bin", "empty.txt", "sub"])
        self.assertIn("100000", found["a.bin"])
        self.assertTrue(found["sub"].startswith("d"), found["sub"])

    def test_ls_raw_list(self):
        p = self.lftp("set ftp:use-mlsd no; ls tree")
        lines = [l for l in p.stdout.decode().splitlines() if l.strip()]
        self.assertTrue(all(T.LS_RE.match(l) for l in lines), lines)
        self.assertEqual(sorted(T.LS_RE.match(l).group(10) for l in lines),
                         ["a.bin", "empty.txt", "sub"])

    def test_mirror_both_ways(self):
        self.lftp("mirror tree got")
        for rel in ("a.bin", "empty.txt", os.path.join("sub", "b.bin"),
                    os.path.join("sub", "deeper", "c.txt")):
            self.assert_same_file(self.lpath("got", rel), self.path("tree", rel))
        self.lftp("mirror -R got up/back", passive=False)
        for rel in ("a.bin", "empty.txt", os.path.join("sub", "b.bin"),
                    os.path.join("sub", "deeper", "c.txt")):
            self.assert_same_file(self.path("up", "back", rel), self.path("tree", rel))

    def test_segmented_download(self):
        # pget: several connections, each with REST at its own offset.
        self.lftp("pget -n 4 big.bin -o pget.bin")
        self.assert_same_file(self.lpath("pget.bin"), self.path("big.bin"))

    def test_resume(self):
        data = T.read(self.path("big.bin"))
        T.write(self.lpath("partial.bin"), data[:3333333])
        self.lftp("get -c big.bin -o partial.bin")
        self.assert_same_file(self.lpath("partial.bin"), self.path("big.bin"))
        src = self.lpath("upres.bin")
        up = T.random_bytes(MIB)
        T.write(src, up)
        T.write(self.path("up", "upres.bin"), up[:400000])
        self.lftp("put -c upres.bin -o up/upres.bin")
        self.assert_same_file(self.path("up", "upres.bin"), src)

    def test_file_operations(self):
        T.write(self.path("up", "ops.txt"), b"ops\n")
        self.lftp("cd up; mkdir lftpdir; mv ops.txt lftpdir/ops2.txt; chmod 640 lftpdir/ops2.txt;"
                  " quote SITE CHMOD 750 lftpdir")
        self.assertEqual(T.read(self.path("up", "lftpdir", "ops2.txt")), b"ops\n")
        self.assertEqual(os.stat(self.path("up", "lftpdir", "ops2.txt")).st_mode & 0o777, 0o640)
        self.assertEqual(os.stat(self.path("up", "lftpdir")).st_mode & 0o777, 0o750)
        self.lftp("cd up; rm lftpdir/ops2.txt; rmdir lftpdir")
        self.assertFalse(os.path.exists(self.path("up", "lftpdir")))

    def test_failures_reported(self):
        p = self.lftp("get nonexistent.bin", check=False)
        self.assertNotEqual(p.returncode, 0)
        p = self.lftp("cd ../../etc; get passwd", check=False)
        self.assertFalse(os.path.exists(self.lpath("passwd")) and
                         b"root:" in T.read(self.lpath("passwd")))
        self.assert_alive()


class Ipv6ClientsTest(ClientTestCase):
    listen = "[::1]:0"

    @classmethod
    def setUpClass(cls):
        if not T.ipv6_available():
            raise unittest.SkipTest("::1 is not configured")
        super().setUpClass()

    def test_curl_over_ipv6(self):
        url = self.server.url("big.bin", USER, PASSWORD)
        self.assertTrue(url.startswith("ftp://alice:wonderland@[::1]:"), url)
        for opts in ([], ["--ftp-port", "::1"]):
            with self.subTest(opts=opts):
                out = self.lpath("v6.bin")
                self.run_tool(["curl", "-sS", "--fail", "-g", "--max-time",
                               str(int(T.timeout(60)))] + opts + ["-o", out, url])
                self.assert_same_file(out, self.path("big.bin"))
                self.run_tool(["curl", "-sS", "--fail", "-g"] + opts +
                              ["-T", out, self.server.url("up/v6-%d.bin" % len(opts), USER,
                                                          PASSWORD)])
                self.assert_same_file(self.path("up", "v6-%d.bin" % len(opts)), out)

    def test_lftp_over_ipv6(self):
        for passive in ("on", "off"):
            with self.subTest(passive=passive):
                script = ("set cmd:fail-exit yes; set net:max-retries 1; set net:timeout %d; "
                          "set ftp:passive-mode %s; open -u %s,%s ftp://[::1]:%d; "
                          "get big.bin -o v6-%s.bin; cls -l tree/"
                          % (int(T.timeout(10)), passive, USER, PASSWORD, self.server.port,
                             passive))
                p = self.run_tool(["lftp", "-c", script], limit=90)
                self.assert_same_file(self.lpath("v6-%s.bin" % passive), self.path("big.bin"))
                self.assertIn("a.bin", p.stdout.decode())


if __name__ == "__main__":
    T.main()
