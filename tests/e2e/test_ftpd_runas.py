"""sockserv-ftpd --run-as: started as root, the server serves as an ordinary user."""
import ftplib
import os
import pwd
import shutil
import subprocess
import tempfile
import unittest

import ftpdtest as T


def proc_ids(pid):
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("Uid:", "Gid:")):
                ids[line[:3]] = [int(x) for x in line.split()[1:]]
    return ids


@unittest.skipUnless(os.geteuid() == 0, "needs root to change user")
class RunAsTest(unittest.TestCase):
    def setUp(self):
        self.nobody = pwd.getpwnam("nobody")
        self.root = tempfile.mkdtemp(prefix="ftpd-runas-")
        self.addCleanup(shutil.rmtree, self.root, True)
        os.chmod(self.root, 0o755)
        T.write(os.path.join(self.root, "pub", "a.txt"), b"hello\n")
        os.chmod(os.path.join(self.root, "pub"), 0o755)
        os.chmod(os.path.join(self.root, "pub", "a.txt"), 0o644)
        # A folder only root may write: after the drop, uploads there fail.
        os.mkdir(os.path.join(self.root, "rootonly"), 0o755)
        # The log's directory must be closed to nobody (not /tmp itself).
        logdir = tempfile.mkdtemp(prefix="ftpd-runas-log-")
        self.addCleanup(shutil.rmtree, logdir, True)
        os.chmod(logdir, 0o755)
        self.log = os.path.join(logdir, "ftpd.log")
        self.server = T.Server(self.root, ["--run-as", "nobody", "--anonymous-write",
                                           "--log", self.log]).start()
        self.addCleanup(self.server.stop)

    def test_serves_as_the_user(self):
        ids = proc_ids(self.server.proc.pid)
        self.assertEqual(ids["Uid"], [self.nobody.pw_uid] * 4)
        self.assertEqual(ids["Gid"], [self.nobody.pw_gid] * 4)
        f = T.ftp_connect(self.server)
        self.addCleanup(T.quit_quietly, f)
        self.assertEqual(T.retr_bytes(f, "pub/a.txt"), b"hello\n")
        with self.assertRaises(ftplib.error_perm) as cm:
            T.stor_bytes(f, "rootonly/x.txt", b"data")
        self.assertTrue(str(cm.exception).startswith("55"), str(cm.exception))
        self.assertFalse(os.path.exists(os.path.join(self.root, "rootonly", "x.txt")))
        # The log was handed over, so it can still be written and reopened.
        self.assertEqual(os.stat(self.log).st_uid, self.nobody.pw_uid)


class RunAsErrorsTest(unittest.TestCase):
    def run_ftpd(self, *args):
        return subprocess.run([T.ftpd_path(), "--listen", "127.0.0.1:0", *args],
                              capture_output=True, text=True, timeout=T.timeout(10),
                              stdin=subprocess.DEVNULL)

    def test_unknown_user(self):
        r = self.run_ftpd("--run-as", "no-such-user-here")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such user", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "only root may name root")
    def test_root_refused(self):
        r = self.run_ftpd("--run-as", "root")
        self.assertEqual(r.returncode, 2)
        self.assertIn("ordinary user", r.stderr)


if __name__ == "__main__":
    unittest.main()
