"""sockserv-ftpd privilege separation: a process per session that becomes its user.

Started as root in --mode forking with --run-as nobody, the listener stays
root; each session process, before its login, is root with only the four
capabilities a login needs and no_new_privs; after the login it is the
session's system user (the users file's run-as=, else --run-as), chrooted
into the user's home (the served root for anonymous), with no capability
left. Everything is checked from the outside, in /proc: Uid/Gid, CapEff,
NoNewPrivs, Seccomp and the root link. Files a session uploads belong to its
system user; a symlink to / inside a home leads nowhere; a drop that cannot
happen fails the login with 530 like a wrong password.

With --seccomp a full session (listings, transfers both ways in every data
mode, HASH, renames, deletes, ABOR and STAT during a transfer) works, and a
session that makes a forbidden call - ptrace, made by a small LD_PRELOAD
hook the test compiles, on "MKD seccomp-probe" - is killed while the
listener and the other sessions go on and the next client is served.

Needs root (skipped with the reason otherwise) and a C compiler for the hook.
"""
import ftplib
import io
import os
import pwd
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import ftpdtest as T

IS_ROOT = os.geteuid() == 0
ROOT_REASON = "needs root to start sockserv-ftpd as root in forking mode"

# CAP_DAC_READ_SEARCH (2), CAP_SETGID (6), CAP_SETUID (7), CAP_SYS_CHROOT (18).
LOGIN_CAPS = (1 << 2) | (1 << 6) | (1 << 7) | (1 << 18)

HOOK_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_strcasecmp)(const char *, const char *);

__attribute__((constructor)) static void hook_init(void)
{
    real_mkdirat = (int (*)(int, const char *, mode_t))dlsym(RTLD_NEXT, "mkdirat");
    real_strcasecmp = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "strcasecmp");
}

/* "USER seccomp-probe" (the anonymous-name check): the same before login. */
int strcasecmp(const char *a, const char *b)
{
    if (strcmp(a, "seccomp-probe") == 0 || strcmp(b, "seccomp-probe") == 0)
        syscall(SYS_ptrace, PTRACE_PEEKDATA, 1, 0, 0);
    return real_strcasecmp(a, b);
}

/* "MKD seccomp-probe": a call no session makes. Without a filter it only
 * fails (PID 1 is not traced by us); with the filter it kills. */
int mkdirat(int fd, const char *name, mode_t mode)
{
    if (strcmp(name, "seccomp-probe") == 0)
        syscall(SYS_ptrace, PTRACE_PEEKDATA, 1, 0, 0);
    return real_mkdirat(fd, name, mode);
}
"""


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, val = line.partition(":")
            out[key] = val.strip()
    return out


def proc_ids(pid, key):
    return [int(x) for x in proc_status(pid)[key].split()]


def proc_root(pid):
    return os.readlink("/proc/%d/root" % pid)


def memory_holds(pid, needle):
    """Does any readable mapping of process pid contain needle? Mappings
    over 1 GiB (a sanitizer's shadow memory, reserved, not used) are left
    out; the others are read in pieces that overlap by the needle."""
    step = 16 << 20
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or fields[-1] in ("[vvar]", "[vsyscall]") or \
                    hi - lo > (1 << 30):
                continue
            for at in range(lo, hi, step):
                try:
                    mem.seek(at)
                    if needle in mem.read(min(step + len(needle), hi - at)):
                        return True
                except (OSError, OverflowError, ValueError):
                    break
    return False


def children(ppid):
    """The PIDs whose parent is ppid (the server's session processes)."""
    kids = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == ppid:
            kids.add(int(name))
    return kids


def write_users_file(path, entries):
    """entries: (name, password, home, settings) -> name:HASH:home:settings.
    Returns the hashes by name."""
    lines = []
    hashes = {}
    for name, password, home, settings in entries:
        hashes[name] = T.hash_password(password)
        line = "%s:%s:%s" % (name, hashes[name], home)
        if settings:
            line += ":" + settings
        lines.append(line)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return hashes


def build_hook(workdir):
    """The LD_PRELOAD hook; None (and the reason) without a compiler."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None, "no C compiler to build the seccomp test hook"
    src = os.path.join(workdir, "probe.c")
    lib = os.path.join(workdir, "libprobe.so")
    with open(src, "w") as f:
        f.write(HOOK_C)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", lib, src, "-ldl"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None, "cannot build the seccomp test hook: %s" % r.stderr[-500:]
    return lib, None


class PrivsepBase(unittest.TestCase):
    """A served root with homes, a users file and one forking server as root."""

    extra_args = []
    preload = None

    @classmethod
    def setUpClass(cls):
        cls.nobody = pwd.getpwnam("nobody")
        cls.daemon = pwd.getpwnam("daemon")
        cls.base = tempfile.mkdtemp(prefix="ftpd-privsep-")
        os.chmod(cls.base, 0o755)
        cls.root = os.path.join(cls.base, "root")
        os.mkdir(cls.root, 0o755)
        T.write(os.path.join(cls.root, "pub", "a.txt"), b"hello\n")
        T.write(os.path.join(cls.root, "secret.txt"), b"served root, not a home\n")
        T.write(os.path.join(cls.root, "pub", "big.bin"), T.random_bytes(4 << 20))
        for d, dirs, files in os.walk(cls.root):
            os.chmod(d, 0o755)
            for name in files:
                os.chmod(os.path.join(d, name), 0o644)
        # bob: --run-as nobody. Its home holds a symlink to "/".
        cls.bob_home = os.path.join(cls.root, "bob")
        os.mkdir(cls.bob_home, 0o755)
        T.write(os.path.join(cls.bob_home, "mine.txt"), b"bob's\n")
        os.symlink("/", os.path.join(cls.bob_home, "escape"))
        os.symlink("..", os.path.join(cls.bob_home, "up"))
        for p in (cls.bob_home, os.path.join(cls.bob_home, "mine.txt")):
            os.chown(p, cls.nobody.pw_uid, cls.nobody.pw_gid)
        # alice: run-as=daemon; a home only daemon may enter.
        cls.alice_home = os.path.join(cls.root, "alice")
        os.mkdir(cls.alice_home, 0o700)
        os.chown(cls.alice_home, cls.daemon.pw_uid, cls.daemon.pw_gid)
        # Anonymous may upload here.
        os.mkdir(os.path.join(cls.root, "incoming"), 0o755)
        os.chown(os.path.join(cls.root, "incoming"), cls.nobody.pw_uid, cls.nobody.pw_gid)
        # The users file and the log: in a directory closed to the run-as users.
        cls.private = os.path.join(cls.base, "private")
        os.mkdir(cls.private, 0o700)
        cls.users = os.path.join(cls.private, "users")
        cls.hashes = write_users_file(cls.users, [
            ("bob", "bobpw", "bob", ""),
            ("alice", "alicepw", "alice", "run-as=daemon"),
            ("ghost", "ghostpw", "bob", "run-as=no-such-system-user"),
            ("rooty", "rootypw", "bob", "run-as=root"),
        ])
        cls.log = os.path.join(cls.private, "ftpd.log")
        args = ["--mode", "forking", "--run-as", "nobody", "--users", cls.users,
                "--anonymous", "--anonymous-write", "--log", cls.log] + cls.extra_args
        cls.server = T.Server(cls.root, args)
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "ASAN_OPTIONS")}
        try:
            if cls.preload is not None:
                os.environ["LD_PRELOAD"] = cls.preload
                # A sanitizer runtime wants to come first; the hook only
                # wraps one call and allocates nothing.
                asan = os.environ.get("ASAN_OPTIONS", "")
                os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
                    "verify_asan_link_order=0"
            cls.server.start()
        except Exception:
            shutil.rmtree(cls.base, True)
            raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        shutil.rmtree(cls.base, True)
        if rc != 0:
            raise AssertionError("server exit status %r; stderr: %s"
                                 % (rc, cls.server.stderr_tail()))

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def connect(self):
        """A raw control connection and its session process."""
        before = children(self.server.proc.pid)
        c = T.Ctl(self.server)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting.code, 220)
        # The greeting came from the session process: it exists by now.
        new = children(self.server.proc.pid) - before
        self.assertEqual(len(new), 1, "session processes: %r" % new)
        return c, new.pop()

    def assert_dropped(self, pid, user, root):
        st = proc_status(pid)
        self.assertEqual(proc_ids(pid, "Uid"), [user.pw_uid] * 4, st["Uid"])
        self.assertEqual(proc_ids(pid, "Gid"), [user.pw_gid] * 4, st["Gid"])
        self.assertEqual(int(st["CapEff"], 16), 0)
        self.assertEqual(int(st["CapPrm"], 16), 0)
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(proc_root(pid), os.path.realpath(root))


@unittest.skipUnless(IS_ROOT, ROOT_REASON)
class PrivsepTest(PrivsepBase):
    def test_listener_stays_root(self):
        self.assertEqual(proc_ids(self.server.proc.pid, "Uid"), [0] * 4)
        # ... with only what forking the sessions needs.
        st = proc_status(self.server.proc.pid)
        self.assertEqual(int(st["CapEff"], 16), LOGIN_CAPS, st["CapEff"])
        self.assertEqual(int(st["CapBnd"], 16), LOGIN_CAPS, st["CapBnd"])
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertIn("chrooted and become nobody at login", self.log_text())

    def test_before_login_root_with_login_caps_only(self):
        c, pid = self.connect()
        st = proc_status(pid)
        self.assertEqual(proc_ids(pid, "Uid"), [0] * 4)
        self.assertEqual(int(st["CapEff"], 16), LOGIN_CAPS, st["CapEff"])
        self.assertEqual(int(st["CapPrm"], 16), LOGIN_CAPS, st["CapPrm"])
        self.assertEqual(int(st["CapBnd"], 16), LOGIN_CAPS, st["CapBnd"])
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(st["Seccomp"], "0")
        self.assertEqual(proc_root(pid), "/")
        # Commands before a login are what they always were.
        c.expect("SYST", 215)
        c.expect("LIST", 530)

    def test_user_becomes_run_as_chrooted_in_home(self):
        c, pid = self.connect()
        c.login("bob", "bobpw")
        self.assert_dropped(pid, self.nobody, self.bob_home)
        self.assertEqual(proc_status(pid)["Seccomp"], "0")
        # The listener is still root.
        self.assertEqual(proc_ids(self.server.proc.pid, "Uid"), [0] * 4)

    def test_per_user_run_as(self):
        c, pid = self.connect()
        c.login("alice", "alicepw")
        self.assert_dropped(pid, self.daemon, self.alice_home)
        f = T.ftp_connect(self.server, "alice", "alicepw")
        self.addCleanup(T.quit_quietly, f)
        T.stor_bytes(f, "up.txt", b"alice data")
        st = os.stat(os.path.join(self.alice_home, "up.txt"))
        self.assertEqual((st.st_uid, st.st_gid), (self.daemon.pw_uid, self.daemon.pw_gid))

    def test_anonymous_chrooted_in_served_root(self):
        c, pid = self.connect()
        c.login("anonymous", "a@b.c")
        self.assert_dropped(pid, self.nobody, self.root)

    def test_uploads_belong_to_the_system_user(self):
        f = T.ftp_connect(self.server, "bob", "bobpw")
        self.addCleanup(T.quit_quietly, f)
        T.stor_bytes(f, "new.txt", b"x" * 1000)
        st = os.stat(os.path.join(self.bob_home, "new.txt"))
        self.assertEqual((st.st_uid, st.st_gid), (self.nobody.pw_uid, self.nobody.pw_gid))
        self.assertEqual(T.retr_bytes(f, "new.txt"), b"x" * 1000)
        # Listings name the session's own user (looked up before the chroot).
        lines = []
        f.retrlines("LIST new.txt", lines.append)
        m = T.LS_RE.match(lines[0])
        self.assertIsNotNone(m, lines)
        self.assertEqual(m.group(4), "nobody")
        self.assertEqual(m.group(5), self.nobody_group())
        # Anonymous uploads too.
        g = T.ftp_connect(self.server)
        self.addCleanup(T.quit_quietly, g)
        T.stor_bytes(g, "incoming/anon.txt", b"anon")
        st = os.stat(os.path.join(self.root, "incoming", "anon.txt"))
        self.assertEqual(st.st_uid, self.nobody.pw_uid)

    def nobody_group(self):
        import grp
        return grp.getgrgid(self.nobody.pw_gid).gr_name

    def test_symlink_to_slash_leads_nowhere(self):
        f = T.ftp_connect(self.server, "bob", "bobpw")
        self.addCleanup(T.quit_quietly, f)
        for path in ("escape/etc/passwd", "escape/" + self.root.lstrip("/") + "/secret.txt",
                     "up/secret.txt", "../secret.txt", "/../secret.txt"):
            with self.assertRaises(ftplib.error_perm, msg=path) as cm:
                T.retr_bytes(f, path)
            self.assertTrue(str(cm.exception).startswith("550"), "%s: %s" % (path, cm.exception))
        with self.assertRaises(ftplib.error_perm):
            f.cwd("escape")
        with self.assertRaises(ftplib.error_perm):
            T.stor_bytes(f, "escape/tmp/x.txt", b"no")
        # The home itself is the whole world.
        self.assertEqual(sorted(f.nlst()), ["escape", "mine.txt", "up"]
                         + (["new.txt"] if os.path.exists(os.path.join(self.bob_home, "new.txt"))
                            else []))
        self.assertEqual(T.retr_bytes(f, "/mine.txt"), b"bob's\n")

    def timed_pass(self, c, user, password):
        c.expect("USER " + user, 331)
        t0 = time.monotonic()
        r = c.cmd("PASS " + password)
        return r, time.monotonic() - t0

    def test_failed_drop_is_530_like_a_wrong_password(self):
        c, pid = self.connect()
        wrong, wrong_took = self.timed_pass(c, "bob", "not-the-password")
        self.assertEqual(wrong.code, 530)
        c2, pid2 = self.connect()
        for conn, p, user, pw, why in ((c, pid, "ghost", "ghostpw", "no such system user"),
                                       (c2, pid2, "rooty", "rootypw", "is root")):
            r, took = self.timed_pass(conn, user, pw)
            self.assertEqual((r.code, r.text), (wrong.code, wrong.text), user)
            # Both wait for the same fixed moment after the PASS.
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(abs(took - wrong_took), T.timeout(0.5), (took, wrong_took))
            self.assertIn("login failed for %s (run-as" % user, self.log_text())
            self.assertIn(why, self.log_text())
            # Still the pre-login process: root, nothing dropped.
            self.assertEqual(proc_ids(p, "Uid"), [0] * 4)
            self.assertEqual(proc_root(p), "/")
        # Nothing changed, so the same session may still log in properly.
        c2.login("bob", "bobpw")
        self.assert_dropped(pid2, self.nobody, self.bob_home)

    def test_other_users_hashes_erased_after_the_drop(self):
        c, pid = self.connect()
        needle = self.hashes["alice"].encode()
        self.assertTrue(memory_holds(pid, needle), "the check cannot fail: no hash before login")
        c.login("bob", "bobpw")
        for name in ("alice", "ghost", "rooty", "bob"):
            self.assertFalse(memory_holds(pid, self.hashes[name].encode()),
                             "%s's password hash is still in the session's memory" % name)

    def test_rein_after_the_drop_is_refused(self):
        c, pid = self.connect()
        c.login("bob", "bobpw")
        c.expect("REIN", 502)
        c.expect("PWD", 257)


@unittest.skipUnless(IS_ROOT, ROOT_REASON)
class SeccompSessionTest(PrivsepBase):
    extra_args = ["--seccomp", "--anonymous-modify"]

    def test_session_is_filtered(self):
        c, pid = self.connect()
        # Before login: the login's filter (wider by the drop's calls).
        st = proc_status(pid)
        self.assertEqual(st["Seccomp"], "2")
        if "Seccomp_filters" in st:
            self.assertEqual(st["Seccomp_filters"], "1")
        c.login("bob", "bobpw")
        self.assert_dropped(pid, self.nobody, self.bob_home)
        st = proc_status(pid)
        self.assertEqual(st["Seccomp"], "2")
        if "Seccomp_filters" in st:
            self.assertEqual(st["Seccomp_filters"], "2")

    def test_failed_drop_under_the_filter(self):
        c, pid = self.connect()
        c.expect("USER ghost", 331)
        c.expect("PASS ghostpw", 530)
        c.login("alice", "alicepw")
        self.assert_dropped(pid, self.daemon, self.alice_home)
        c.expect("PWD", 257)

    def test_full_session_under_the_filter(self):
        big = T.read(os.path.join(self.root, "pub", "big.bin"))
        for mode in ("PASV", "EPSV", "PORT", "EPRT"):
            with self.subTest(mode=mode):
                f = T.ftp_connect(self.server, None, None, mode=mode)
                self.addCleanup(T.quit_quietly, f)
                self.assertEqual(T.retr_bytes(f, "pub/big.bin"), big)
                self.assertEqual(T.retr_bytes(f, "pub/big.bin", rest=100), big[100:])
                name = "incoming/%s.bin" % mode
                T.stor_bytes(f, name, big[:300000])
                T.stor_bytes(f, name, b"tail", cmd="APPE")
                self.assertEqual(T.retr_bytes(f, name), big[:300000] + b"tail")
                lines = []
                f.retrlines("LIST pub", lines.append)
                self.assertTrue(any(l.endswith(" a.txt") for l in lines), lines)
                self.assertIn("a.txt", f.nlst("pub"))
                facts = dict(f.mlsd("pub"))
                self.assertEqual(facts["big.bin"]["size"], str(len(big)))
                self.assertIn("SHA-256", f.sendcmd("HASH " + name))
                f.sendcmd("TYPE A")
                alines = []
                f.retrlines("RETR pub/a.txt", alines.append)
                self.assertEqual(alines, ["hello"])
                f.sendcmd("TYPE I")
                f.rename(name, name + ".moved")
                f.sendcmd("SITE CHMOD 600 " + name + ".moved")
                f.delete(name + ".moved")
                f.mkd("incoming/d-" + mode)
                f.rmd("incoming/d-" + mode)
                self.assertTrue(f.sendcmd("SIZE pub/a.txt").startswith("213"))
                self.assertTrue(f.sendcmd("MDTM pub/a.txt").startswith("213"))
                self.assertTrue(f.sendcmd("MLST pub/a.txt").startswith("250"))
                f.quit()
        self.assert_stat_and_abor_during_transfer()
        self.assertIsNone(self.server.proc.poll())

    def assert_stat_and_abor_during_transfer(self):
        c, pid = self.connect()
        c.login("anonymous", "a@b.c")
        c.expect("TYPE I", 200)
        data = c.data("PASV")
        c.expect("RETR pub/big.bin", 150)
        d = data()
        self.addCleanup(d.close)
        self.assertTrue(d.recv(1000))
        r = c.cmd("STAT")
        self.assertIn(r.code, (211, 213), r)
        c.send("ABOR")
        codes = [c.reply().code]
        if codes[0] != 225 and codes[0] != 226:
            codes.append(c.reply().code)
        self.assertIn(codes[-1], (225, 226), codes)
        d.close()
        c.expect("NOOP", 200)
        self.assertEqual(proc_status(pid)["Seccomp"], "2")


@unittest.skipUnless(IS_ROOT, ROOT_REASON)
class PrivsepStopTest(PrivsepBase):
    """The listener (root) still stops its dropped, filtered sessions."""
    extra_args = ["--seccomp"]

    def test_sigterm_ends_dropped_sessions(self):
        c, pid = self.connect()
        c.login("bob", "bobpw")
        pidfd = os.pidfd_open(pid)
        self.addCleanup(os.close, pidfd)
        os.kill(self.server.proc.pid, 15)
        self.assertEqual(c.reply(T.timeout(10)).code, 421)
        self.assertEqual(self.server.wait(T.timeout(15)), 0, self.server.stderr_tail())
        r, _, _ = select.select([pidfd], [], [], T.timeout(10))
        self.assertTrue(r, "session process %d still runs" % pid)

    def test_sighup_leaves_the_session_alone(self):
        c, pid = self.connect()
        c.login("bob", "bobpw")
        os.kill(pid, 1)
        c.expect("NOOP", 200)
        self.assertTrue(int(proc_status(pid)["SigIgn"], 16) & 1, "SIGHUP not ignored")


class ProbeBase(PrivsepBase):
    """A server with the LD_PRELOAD hook that makes "MKD seccomp-probe" call
    ptrace."""

    @classmethod
    def setUpClass(cls):
        cls.hookdir = tempfile.mkdtemp(prefix="ftpd-probe-")
        os.chmod(cls.hookdir, 0o755)
        lib, why = build_hook(cls.hookdir)
        if lib is None:
            shutil.rmtree(cls.hookdir, True)
            raise unittest.SkipTest(why)
        os.chmod(lib, 0o755)
        cls.preload = lib
        try:
            super().setUpClass()
        except Exception:
            shutil.rmtree(cls.hookdir, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.hookdir, True)


@unittest.skipUnless(IS_ROOT, ROOT_REASON)
class SeccompKillTest(ProbeBase):
    extra_args = ["--seccomp", "--anonymous-modify"]

    def test_forbidden_call_before_login_kills_that_session_only(self):
        c, pid = self.connect()
        pidfd = os.pidfd_open(pid)
        self.addCleanup(os.close, pidfd)
        c.send("USER seccomp-probe")
        self.assertTrue(c.at_eof(T.timeout(10)), "the session answered instead of dying")
        r, _, _ = select.select([pidfd], [], [], T.timeout(10))
        self.assertTrue(r, "session process %d still runs" % pid)
        self.assertIsNone(self.server.proc.poll())
        c2, pid2 = self.connect()
        c2.login("bob", "bobpw")
        self.assert_dropped(pid2, self.nobody, self.bob_home)

    def test_forbidden_call_kills_that_session_only(self):
        other, other_pid = self.connect()
        other.login("bob", "bobpw")
        c, pid = self.connect()
        c.login("anonymous", "a@b.c")
        pidfd = os.pidfd_open(pid)
        self.addCleanup(os.close, pidfd)
        c.send("MKD incoming/seccomp-probe")
        # No reply: the process is gone.
        self.assertTrue(c.at_eof(T.timeout(10)), "the session answered instead of dying")
        r, _, _ = select.select([pidfd], [], [], T.timeout(10))
        self.assertTrue(r, "session process %d still runs" % pid)
        self.assertFalse(os.path.exists(os.path.join(self.root, "incoming", "seccomp-probe")))
        # The listener and the other session live on; the next client is served.
        self.assertIsNone(self.server.proc.poll())
        other.expect("NOOP", 200)
        other.expect("PWD", 257)
        f = T.ftp_connect(self.server)
        self.addCleanup(T.quit_quietly, f)
        self.assertEqual(T.retr_bytes(f, "pub/a.txt"), b"hello\n")
        f.mkd("incoming/after-the-kill")


@unittest.skipUnless(IS_ROOT, ROOT_REASON)
class ProbeWithoutSeccompTest(ProbeBase):
    """The control: without --seccomp the same hook only makes a failing
    call, and the MKD succeeds."""
    extra_args = ["--anonymous-modify"]

    def test_probe_is_harmless_without_the_filter(self):
        c, pid = self.connect()
        c.expect("USER seccomp-probe", 331)
        c.expect("REIN", 220)
        c.login("anonymous", "a@b.c")
        c.expect("MKD incoming/seccomp-probe", 257)
        self.assertTrue(os.path.isdir(os.path.join(self.root, "incoming", "seccomp-probe")))


class ConfigTest(unittest.TestCase):
    def run_ftpd(self, *args):
        return subprocess.run([T.ftpd_path(), "--listen", "127.0.0.1:0", *args],
                              capture_output=True, text=True, timeout=T.timeout(10),
                              stdin=subprocess.DEVNULL)

    def test_seccomp_needs_forking_mode(self):
        r = self.run_ftpd("--seccomp")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--seccomp: needs --mode forking", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_help_names_seccomp(self):
        r = self.run_ftpd("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--seccomp", r.stdout)


class ThreadingRunAsTest(unittest.TestCase):
    """Threading mode: one process for every session, so a users file's
    run-as= naming another user fails that login (530, logged)."""

    def test_other_run_as_refused(self):
        base = tempfile.mkdtemp(prefix="ftpd-privsep-thr-")
        self.addCleanup(shutil.rmtree, base, True)
        root = os.path.join(base, "root")
        os.mkdir(root)
        users = os.path.join(base, "users")
        me = pwd.getpwuid(os.geteuid()).pw_name
        other = "daemon" if me != "daemon" else "nobody"
        write_users_file(users, [("carol", "carolpw", "", "run-as=" + other),
                                 ("dave", "davepw", "", "run-as=" + me)])
        server = T.Server(root, ["--users", users]).start()
        try:
            with T.Ctl(server) as c:
                c.expect("USER carol", 331)
                c.expect("PASS carolpw", 530)
                c.login("dave", "davepw")
            log = server.stderr_tail(100000)
        finally:
            rc = server.stop()
        self.assertEqual(rc, 0)
        self.assertIn("run-as %s needs --mode forking" % other, log)


if __name__ == "__main__":
    if not IS_ROOT:
        sys.stderr.write("test_ftpd_privsep: the privilege separation tests are skipped: %s\n"
                         % ROOT_REASON)
    unittest.main()
