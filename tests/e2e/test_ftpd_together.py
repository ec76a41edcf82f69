#!/usr/bin/env python3
"""The FTP server's hardening features at once, as a production setup runs
them: forking mode started as root, each session chrooted and become its
system user with a seccomp filter (--seccomp), FTPS required, a user with a
download rate and a byte quota. Each feature has its own test file; this
one proves they work together: TLS handshakes, session resumption, the
quota's walk of the home and the rate's waits all happen inside a filtered,
unprivileged session process, and nothing kills it.

Needs root (skipped with the reason printed otherwise).
"""
import ftplib
import io
import os
import pwd
import shutil
import ssl
import sys
import tempfile
import time
import unittest

import ftpdtest as T
from test_ftpd_tls import ResumingFTP_TLS, client_ctx, make_cert

IS_ROOT = os.geteuid() == 0
PASSWORD = "s3cret-together"
RATE = 512 * 1024          # rate-down=512K
QUOTA = 256 * 1024         # quota-bytes=256K


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def session_children(ppid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(proc_status(int(name)).get("PPid", "0")) == ppid:
                    out.append(int(name))
            except OSError:
                pass
    return out


@unittest.skipUnless(IS_ROOT, "needs root: the session processes change user and chroot")
class TogetherTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.nobody = pwd.getpwnam("nobody")
        cls.base = tempfile.mkdtemp(prefix="ftpd-together-")
        os.chmod(cls.base, 0o755)
        cls.cert, cls.key, _ = make_cert(cls.base)
        cls.root = os.path.join(cls.base, "root")
        cls.home = os.path.join(cls.root, "carol")
        os.makedirs(cls.home)
        os.chmod(cls.root, 0o755)
        cls.payload = T.random_bytes(RATE * 2, seed=7)  # about 2 s at the rate
        T.write(os.path.join(cls.home, "big.bin"), cls.payload)
        os.chown(cls.home, cls.nobody.pw_uid, cls.nobody.pw_gid)
        os.chown(os.path.join(cls.home, "big.bin"), cls.nobody.pw_uid, cls.nobody.pw_gid)
        os.chmod(cls.home, 0o755)
        cls.users = os.path.join(cls.base, "users")
        with open(cls.users, "w") as f:
            f.write("carol:%s:carol:rate-down=%d,quota-bytes=%d\n"
                    % (T.hash_password(PASSWORD), RATE, len(cls.payload) + QUOTA))
        os.chmod(cls.users, 0o600)
        cls.server = T.Server(cls.root, ["--mode", "forking", "--run-as", "nobody", "--seccomp",
                                         "--users", cls.users, "--tls", "required",
                                         "--tls-cert", cls.cert, "--tls-key", cls.key],
                              workdir=cls.base).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.base, ignore_errors=True)

    def client(self):
        ftp = ResumingFTP_TLS(context=client_ctx(), timeout=T.timeout(30))
        ftp.connect(*self.server.address)
        ftp.login("carol", PASSWORD)
        ftp.prot_p()
        return ftp

    def test_clear_login_refused(self):
        ftp = ftplib.FTP(timeout=T.timeout(10))
        ftp.connect(*self.server.address)
        with self.assertRaises(ftplib.error_perm) as cm:
            ftp.login("carol", PASSWORD)
        self.assertTrue(str(cm.exception).startswith("530"), cm.exception)
        ftp.close()

    def test_session_is_user_chrooted_filtered_and_paced(self):
        ftp = self.client()
        try:
            kids = session_children(self.server.proc.pid)
            self.assertEqual(len(kids), 1, kids)
            st = proc_status(kids[0])
            self.assertEqual(st["Uid"].split()[0], str(self.nobody.pw_uid))
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(st["Seccomp"], "2")
            self.assertEqual(os.readlink("/proc/%d/root" % kids[0]), self.home)
            buf = io.BytesIO()
            start = time.monotonic()
            ftp.retrbinary("RETR big.bin", buf.write)
            took = time.monotonic() - start
            self.assertEqual(buf.getvalue(), self.payload)
            # Paced by rate-down=: the first 0.1 s of burst at most.
            self.assertGreater(took, len(self.payload) / RATE * 0.85, took)
            self.assertEqual(ftp.voidcmd("NOOP")[:3], "200")
        finally:
            ftp.close()

    def test_quota_stops_a_tls_upload_and_the_session_lives(self):
        ftp = self.client()
        try:
            # The server ends the data connection at the quota, so the client
            # may see that first (a TLS EOF while sending) and the 552 after.
            try:
                ftp.storbinary("STOR over.bin", io.BytesIO(T.random_bytes(QUOTA * 2, seed=3)))
                reply = "no error"
            except ftplib.error_perm as e:
                reply = str(e)
            except (ssl.SSLError, OSError):
                try:
                    reply = ftp.getresp()
                except ftplib.error_perm as e:
                    reply = str(e)
            self.assertTrue(reply.startswith("552"), reply)
            self.assertFalse(os.path.exists(os.path.join(self.home, "over.bin")))
            # Within the quota an upload works, owned by the session's user.
            small = T.random_bytes(QUOTA // 4, seed=4)
            ftp.storbinary("STOR small.bin", io.BytesIO(small))
            path = os.path.join(self.home, "small.bin")
            self.assertEqual(T.read(path), small)
            self.assertEqual(os.stat(path).st_uid, self.nobody.pw_uid)
            self.assertIn("small.bin", ftp.nlst())
            ftp.delete("small.bin")
        finally:
            ftp.close()
        self.assertIsNone(self.server.proc.poll())


if __name__ == "__main__":
    if not IS_ROOT:
        sys.stderr.write("test_ftpd_together: skipped: not root\n")
    unittest.main()
