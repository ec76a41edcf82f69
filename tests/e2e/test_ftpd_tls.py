"""FTPS (RFC 4217) in sockserv-ftpd: AUTH TLS, PBSZ, PROT, CCC, the implicit
TLS listener, --tls required, the data connection's session resumption (and
a second client that tries to take a data connection), ABOR/STAT and the
stop during TLS transfers, over-long lines under TLS, with curl, lftp and
Python's ftplib, on a self-signed certificate made with the openssl command.

Python 3.11's ftplib.FTP_TLS does not resume the control connection's TLS
session on data connections (ntransfercmd wraps without session=), so the
server's default --tls-require-reuse yes refuses it; ResumingFTP_TLS below
passes session=self.sock.session, which is what a client must do.
"""

import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import ftplib

import ftpdtest as T


def make_cert(d):
    """A self-signed certificate and key (two files, and both in one)."""
    cert = os.path.join(d, "cert.pem")
    key = os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=60)
    both = os.path.join(d, "both.pem")
    with open(both, "wb") as f:
        f.write(T.read(cert) + T.read(key))
    return cert, key, both


def client_ctx(max_version=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that resumes the control connection's TLS session on each
    data connection, as RFC 4217 servers that check it require."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size


class TlsCtl(T.Ctl):
    """A raw control connection that can switch to TLS."""

    ctx = None

    def auth(self, ctx=None):
        self.expect("AUTH TLS", 234)
        self.ctx = ctx or client_ctx()
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.sock.settimeout(self.tmo)
        return self

    def protect(self):
        self.expect("PBSZ 0", 200)
        self.expect("PROT P", 200)

    def wrap_data(self, d):
        d.settimeout(self.tmo)
        return self.ctx.wrap_socket(d, server_hostname="localhost", session=self.sock.session)


def tls_ctl(server, addr=None):
    c = TlsCtl(server, addr=addr, greet=addr is None)
    return c


def recv_until_closed(sock, limit=None):
    out = []
    n = 0
    while limit is None or n < limit:
        try:
            b = sock.recv(65536)
        except (ssl.SSLError, OSError):
            break
        if not b:
            break
        out.append(b)
        n += len(b)
    return b"".join(out)


def implicit_ctl(test, server):
    """A TlsCtl on the implicit listener, greeted through TLS."""
    port = implicit_port(server)
    c = TlsCtl(server, addr=("127.0.0.1", port), greet=False)
    test.addCleanup(c.close)
    c.ctx = client_ctx()
    c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost")
    test.assertEqual(c.reply().code, 220)
    return c


def implicit_port(server, limit=10):
    """The implicit listener's port from the server's second stdout line."""
    deadline = time.monotonic() + T.timeout(limit)
    while time.monotonic() < deadline:
        m = re.search(rb"listening on [0-9.]+:(\d+) \(implicit TLS\)",
                      b"".join(server.stdout_rest))
        if m:
            return int(m.group(1))
        time.sleep(0.02)
    raise AssertionError("no implicit TLS listener line on stdout")


def listener_inode(port):
    """The inode of the socket listening on 127.0.0.1:port (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "0100007F:%04X" % port and fields[3] == "0A":
                return int(fields[9])
    return None


def children_of(pid):
    kids = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def socket_inodes(pid):
    held = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", target)
        if m:
            held.add(int(m.group(1)))
    return held


class TlsBase(T.ServerTestCase):
    tls_args = ("--tls", "optional")
    extra_args = ()

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "hello.txt"), b"hello world\n")
        cls.big = T.random_bytes(T.BIG)
        T.write(os.path.join(root, "big.bin"), cls.big)
        os.mkdir(os.path.join(root, "up"))

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="ftpd-tls-")
        cls.cert, cls.key, cls.both = make_cert(cls.certdir)
        cls.server_args = (tuple(cls.tls_args) + ("--tls-cert", cls.cert, "--tls-key", cls.key)
                           + tuple(cls.extra_args))
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.certdir, ignore_errors=True)

    def tctl(self, login=True):
        c = TlsCtl(self.server)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting.code, 220)
        c.auth()
        if login:
            c.login(self.user, self.password)
        return c

    def ftplib_tls(self, cls=ResumingFTP_TLS, ctx=None, mode="PASV"):
        f = cls(context=ctx or client_ctx(), timeout=T.timeout(30))
        f.connect(self.server.host, self.server.port)
        self.addCleanup(T.quit_quietly, f)
        f.login(self.user, self.password)
        f.prot_p()
        f.set_pasv(mode == "PASV")
        return f

    def curl(self, *args, tmo=60):
        cmd = ["curl", "-s", "-S", "-k", "--max-time", str(int(T.timeout(tmo)))] + list(args)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=T.timeout(tmo) + 10)

    def log(self):
        return self.server.stderr_tail(200000)


class TlsCommandsTest(TlsBase):
    """AUTH, PBSZ, PROT, CCC and FEAT, with curl, lftp and ftplib."""

    extra_args = ("--tls-implicit-listen", "127.0.0.1:0")

    def test_feat_lists_tls(self):
        c = self.ctl(login=False)
        r = c.cmd("FEAT")
        lines = [l.strip() for l in r.lines[1:-1]]
        for f in ("AUTH TLS", "PBSZ", "PROT"):
            self.assertIn(f, lines, str(r))

    def test_order_and_arguments(self):
        c = self.ctl(login=False)
        self.assertEqual(c.cmd("PBSZ 0").code, 503)
        self.assertEqual(c.cmd("PROT P").code, 503)
        self.assertEqual(c.cmd("CCC").code, 533)
        self.assertEqual(c.cmd("AUTH GSSAPI").code, 504)
        self.assertEqual(c.cmd("AUTH").code, 504)
        c = self.tctl(login=False)
        self.assertEqual(c.cmd("AUTH TLS").code, 503)
        self.assertEqual(c.cmd("PROT P").code, 503, "PROT before PBSZ")
        self.assertEqual(c.cmd("PBSZ x").code, 501)
        r = c.cmd("PBSZ 1024")
        self.assertEqual((r.code, r.lines[0]), (200, "200 PBSZ=0"))
        self.assertEqual(c.cmd("PROT S").code, 536)
        self.assertEqual(c.cmd("PROT E").code, 536)
        self.assertEqual(c.cmd("PROT X").code, 504)
        self.assertEqual(c.cmd("PROT C").code, 200)
        self.assertEqual(c.cmd("PROT P").code, 200)
        self.assertEqual(c.cmd("CCC").code, 534)
        c.login(self.user, self.password)
        self.assertEqual(c.cmd("PWD").code, 257)

    def test_curl_explicit_tls13_and_tls12(self):
        for extra in ([], ["--tls-max", "1.2"]):
            data = T.random_bytes(300000)
            src = os.path.join(self.base, "curl-up.bin")
            T.write(src, data)
            url = self.server.url("up/curl%d.bin" % len(extra), self.user, self.password)
            r = self.curl("--ssl-reqd", *extra, "-T", src, url)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(T.read(self.path("up", "curl%d.bin" % len(extra))), data)
            r = self.curl("--ssl-reqd", *extra, self.server.url("big.bin", self.user,
                                                                self.password))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(T.sha256(r.stdout), T.sha256(self.big))
            r = self.curl("--ssl-reqd", *extra, self.server.url("", self.user, self.password))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"hello.txt", r.stdout)
        log = self.log()
        self.assertIn("data connection TLSv1.3, session resumed", log)
        self.assertIn("data connection TLSv1.2, session resumed", log)
        self.assertRegex(log, r"tls=(ktls|userspace)")

    def test_curl_uploads_then_download_in_one_run(self):
        # One curl run, one control connection: two uploads and a download,
        # each data connection resuming under --tls-require-reuse yes. An
        # upload's data connection carries no TLS 1.3 ticket, so the next
        # one resumes with the ticket the control connection's reply brought.
        for extra in ([], ["--tls-max", "1.2"]):
            a, b = T.random_bytes(70000, seed=1), T.random_bytes(90000, seed=2)
            T.write(os.path.join(self.base, "one-a.bin"), a)
            T.write(os.path.join(self.base, "one-b.bin"), b)
            base = self.server.url("up/", self.user, self.password)
            r = self.curl("--ssl-reqd", *extra, "-T",
                          "{%s,%s}" % (os.path.join(self.base, "one-a.bin"),
                                       os.path.join(self.base, "one-b.bin")),
                          base, "-T", os.path.join(self.base, "one-a.bin"), base + "again.bin",
                          self.server.url("hello.txt", self.user, self.password))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(T.read(self.path("up", "one-a.bin")), a)
            self.assertEqual(T.read(self.path("up", "one-b.bin")), b)
            self.assertEqual(T.read(self.path("up", "again.bin")), a)
        self.assertNotIn("does not resume", self.log())

    def test_curl_ftp_ssl_control_clear_data(self):
        # --ftp-ssl-control: the login is protected, the data stays clear.
        r = self.curl("--ftp-ssl-control", self.server.url("hello.txt", self.user,
                                                           self.password))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"hello world\n")

    def test_curl_implicit(self):
        port = implicit_port(self.server)
        base = "ftps://%s:%s@127.0.0.1:%d/" % (self.user, self.password, port)
        r = self.curl(base + "big.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(T.sha256(r.stdout), T.sha256(self.big))
        src = os.path.join(self.base, "implicit-up.bin")
        T.write(src, b"implicit upload\n")
        r = self.curl("-T", src, base + "up/implicit.bin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(T.read(self.path("up", "implicit.bin")), b"implicit upload\n")
        r = self.curl(base)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"hello.txt", r.stdout)

    def test_implicit_speaks_tls_at_once(self):
        c = implicit_ctl(self, self.server)
        c.login(self.user, self.password)
        c.expect("TYPE I", 200)
        # PROT P from the start: a data connection in TLS, without PBSZ/PROT.
        d = c.pasv()
        c.expect("RETR hello.txt", 150)
        d = c.ctx.wrap_socket(d, server_hostname="localhost", session=c.sock.session)
        self.assertEqual(recv_until_closed(d), b"hello world\n")
        d.close()
        self.assertEqual(c.reply().code, 226)

    def test_lftp(self):
        if shutil.which("lftp") is None:
            self.skipTest("lftp missing")
        data = T.random_bytes(200000)
        src = os.path.join(self.base, "lftp-up.bin")
        T.write(src, data)
        dst = os.path.join(self.base, "lftp-big.bin")
        script = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; "
                  "set ssl:verify-certificate no; set net:max-retries 1; "
                  "set net:timeout %d; open -u %s,%s -p %d %s; put %s -o up/lftp.bin; "
                  "get big.bin -o %s; cls -1" % (int(T.timeout(20)), self.user, self.password,
                                                 self.server.port, self.server.host, src, dst))
        r = subprocess.run(["lftp", "-c", script], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=T.timeout(120),
                           env=dict(os.environ, HOME=self.base))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(T.read(self.path("up", "lftp.bin")), data)
        self.assertEqual(T.file_sha256(dst), T.sha256(self.big))
        self.assertIn(b"hello.txt", r.stdout)

    def test_ftplib_pasv_port_tls13_tls12(self):
        for version in (None, ssl.TLSVersion.TLSv1_2):
            for mode in ("PASV", "PORT"):
                f = self.ftplib_tls(ctx=client_ctx(version), mode=mode)
                name = "up/ftplib-%s-%s.bin" % (mode, version)
                data = T.random_bytes(100000)
                T.stor_bytes(f, name, data)
                self.assertEqual(T.read(self.path(name)), data)
                self.assertEqual(T.sha256(T.retr_bytes(f, "big.bin")), T.sha256(self.big))
                self.assertIn("hello.txt", f.nlst())
                T.quit_quietly(f)

    def test_fresh_session_on_data_connection_is_refused(self):
        # What Python 3.11's FTP_TLS does: a fresh TLS session on the data
        # connection. The server refuses it, and the session goes on.
        c = self.tctl()
        c.protect()
        d = c.pasv()
        c.expect("RETR hello.txt", 150)
        try:
            d = c.ctx.wrap_socket(d, server_hostname="localhost")
            self.assertEqual(recv_until_closed(d), b"")
        except (ssl.SSLError, OSError):
            pass
        r = c.reply()
        self.assertEqual(r.code, 522, str(r))
        self.assertIn("not resumed", r.text)
        self.assertEqual(c.cmd("NOOP").code, 200)

    def hijack(self, attacker_session, attacker_ctx=None):
        """Client A: PASV + RETR. The attacker connects to the passive port
        first and handshakes with attacker_session (None: a fresh one)."""
        a = self.tctl()
        a.protect()
        a.expect("TYPE I", 200)
        host, port = a.sock.getpeername()[0], None
        r = a.cmd("EPSV")
        port = int(re.search(r"\|\|\|(\d+)\|", r.text).group(1))
        evil_raw = socket.create_connection((host, port), T.timeout(10))
        self.addCleanup(evil_raw.close)
        got = {}

        def attacker():
            try:
                s = (attacker_ctx or client_ctx()).wrap_socket(
                    evil_raw, server_hostname="localhost", session=attacker_session)
                got["data"] = recv_until_closed(s)
            except (ssl.SSLError, OSError, ValueError) as e:
                got["error"] = e
                got.setdefault("data", b"")

        t = threading.Thread(target=attacker, daemon=True)
        t.start()
        a.send("RETR big.bin")
        self.assertEqual(a.reply().code, 150)
        r = a.reply(T.timeout(20))
        self.assertEqual(r.code, 522, str(r))
        t.join(T.timeout(20))
        self.assertFalse(t.is_alive())
        self.assertEqual(got["data"], b"", "the attacker received data")
        # A goes on with a fresh data connection of its own.
        d = a.pasv()
        a.expect("RETR hello.txt", 150)
        self.assertEqual(recv_until_closed(a.wrap_data(d)), b"hello world\n")
        self.assertEqual(a.reply().code, 226)

    def test_second_client_cannot_take_the_data_connection(self):
        self.hijack(None)

    def test_second_client_with_its_own_session_cannot_take_it(self):
        # The attacker logs in with TLS itself and brings that session.
        b = self.tctl()
        self.assertEqual(b.cmd("NOOP").code, 200)  # the session tickets have arrived
        self.assertIsNotNone(b.sock.session)
        self.hijack(b.sock.session, b.ctx)

    def start_stalled_retr(self, c):
        c.protect()
        c.expect("TYPE I", 200)
        d = c.pasv()
        c.expect("RETR big.bin", 150)
        d = c.wrap_data(d)
        self.addCleanup(d.close)
        self.assertTrue(d.recv(65536))
        return d  # not read any more: the transfer stalls, running

    def test_stat_and_abor_during_tls_transfer(self):
        c = self.tctl()
        d = self.start_stalled_retr(c)
        r = c.cmd("STAT")
        self.assertEqual(r.code, 213, str(r))
        self.assertIn("sending /big.bin", r.text)
        self.assertEqual(c.cmd("NOOP").code, 200)
        c.send("ABOR")
        codes = [c.reply(T.timeout(15)).code, c.reply(T.timeout(15)).code]
        self.assertEqual(codes, [426, 226])
        d.close()
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_stor_abor_during_tls_transfer(self):
        c = self.tctl()
        c.protect()
        c.expect("TYPE I", 200)
        d = c.pasv()
        c.expect("STOR up/aborted.bin", 150)
        d = c.wrap_data(d)
        self.addCleanup(d.close)
        d.sendall(b"x" * 100000)
        r = c.cmd("STAT")
        self.assertEqual(r.code, 213, str(r))
        c.send("ABOR")
        codes = [c.reply(T.timeout(15)).code, c.reply(T.timeout(15)).code]
        self.assertEqual(codes, [426, 226])

    def test_long_line_under_tls(self):
        c = self.tctl()
        c.send(b"NOOP " + b"A" * 6000 + b"\r\n")
        self.assertEqual(c.reply().code, 500)
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_long_line_during_tls_transfer(self):
        c = self.tctl()
        self.start_stalled_retr(c)
        c.send(b"A" * 6000 + b"\r\n")
        self.assertEqual(c.reply(T.timeout(5)).code, 500)
        self.assertEqual(c.cmd("STAT").code, 213)
        c.send("ABOR")
        self.assertEqual([c.reply(T.timeout(15)).code, c.reply(T.timeout(15)).code], [426, 226])

    def test_endless_line_under_tls_ends_the_session(self):
        c = self.tctl()
        chunk = b"B" * 65536
        sent = 0
        limit = 64 * 1024 * 1024  # far beyond the 1 MiB cap and the socket buffers
        try:
            while sent < limit:
                c.sock.sendall(chunk)
                sent += len(chunk)
        except (ssl.SSLError, OSError):
            pass
        self.assertLess(sent, limit, "the server kept reading an endless line")
        self.assertIn("went on past", self.log())

    def test_pipelined_handshake_after_auth_is_refused(self):
        c = self.ctl(login=False)
        c.send(b"AUTH TLS\r\n\x16\x03\x01\x00\x05hello")
        self.assertEqual(c.reply().code, 234)
        self.assertTrue(c.at_eof(T.timeout(5)))
        self.assert_alive()


class TlsRequiredTest(TlsBase):
    tls_args = ("--tls", "required")
    anonymous = True

    def test_clear_login_refused(self):
        c = self.ctl(login=False)
        for line in ("USER alice", "USER anonymous", "PASS x"):
            r = c.cmd(line)
            self.assertEqual(r.code, 530, str(r))
            self.assertIn("TLS required", r.text)

    def test_prot_c_refused_and_clear_data_refused(self):
        c = self.tctl()
        c.expect("TYPE I", 200)
        c.expect("PBSZ 0", 200)
        self.assertEqual(c.cmd("PROT C").code, 534)
        c.pasv()
        r = c.cmd("RETR hello.txt")
        self.assertEqual(r.code, 521, str(r))
        c.expect("PROT P", 200)
        d = c.pasv()
        c.expect("RETR hello.txt", 150)
        self.assertEqual(recv_until_closed(c.wrap_data(d)), b"hello world\n")
        self.assertEqual(c.reply().code, 226)

    def test_curl_clear_and_control_only_fail(self):
        r = self.curl(self.server.url("hello.txt", self.user, self.password))
        self.assertNotEqual(r.returncode, 0)
        r = self.curl("--ftp-ssl-control", self.server.url("hello.txt", self.user,
                                                           self.password))
        self.assertNotEqual(r.returncode, 0)
        r = self.curl("--ssl-reqd", self.server.url("hello.txt", self.user, self.password))
        self.assertEqual((r.returncode, r.stdout), (0, b"hello world\n"), r.stderr)


class TlsNoReuseTest(TlsBase):
    """--tls-require-reuse no: old clients without resumption work."""
    extra_args = ("--tls-require-reuse", "no")

    def test_ftplib_without_resumption(self):
        f = self.ftplib_tls(cls=ftplib.FTP_TLS)
        self.assertEqual(T.retr_bytes(f, "hello.txt"), b"hello world\n")
        self.assertIn("session new", self.log())


class TlsReloadTest(TlsBase):
    """SIGHUP loads a renewed certificate: new connections get it, a
    session that began with the old one goes on; a broken file keeps the
    certificate in use."""

    def peer_cert(self):
        c = self.tctl(login=False)
        return c.sock.getpeercert(binary_form=True)

    def wait_log(self, text, count):
        deadline = time.monotonic() + T.timeout(10)
        while self.log().count(text) < count and time.monotonic() < deadline:
            time.sleep(0.05)  # the log is a file: no event to wait on
        self.assertGreaterEqual(self.log().count(text), count, self.log()[-2000:])

    def test_sighup_renews_the_certificate(self):
        import ssl as _ssl
        first = self.peer_cert()
        old = self.tctl()
        # Renew: a new pair written over the configured files.
        newdir = tempfile.mkdtemp(prefix="ftpd-tls-new-")
        self.addCleanup(shutil.rmtree, newdir, True)
        cert2, key2, _ = make_cert(newdir)
        shutil.copyfile(cert2, self.cert)
        shutil.copyfile(key2, self.key)
        self.server.signal(signal.SIGHUP)
        self.wait_log("TLS certificate reloaded", 1)
        second = self.peer_cert()
        self.assertNotEqual(first, second)
        self.assertEqual(_ssl.DER_cert_to_PEM_cert(second).strip(),
                         T.read(cert2).decode().strip())
        # The session of the old certificate is still served.
        self.assertEqual(old.cmd("PWD").code, 257)
        # A broken file: the renewed certificate stays in use.
        T.write(self.cert, b"not a certificate\n")
        self.server.signal(signal.SIGHUP)
        self.wait_log("TLS reload failed", 1)
        self.assertEqual(self.peer_cert(), second)


class TlsOffTest(T.ServerTestCase):
    def test_no_tls(self):
        c = self.ctl(login=False)
        r = c.cmd("FEAT")
        self.assertNotIn("AUTH", r.text)
        self.assertNotIn("PBSZ", r.text)
        self.assertEqual(c.cmd("AUTH TLS").code, 502)
        self.assertEqual(c.cmd("PBSZ 0").code, 503)


class TlsStopTest(unittest.TestCase):
    """The graceful stop with TLS sessions, both listeners, both modes."""
    mode_args = ()

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="ftpd-tls-stop-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.root = os.path.join(self.base, "root")
        os.mkdir(self.root)
        self.data = T.random_bytes(T.BIG)
        T.write(os.path.join(self.root, "big.bin"), self.data)
        self.cert, self.key, self.both = make_cert(self.base)
        self.users = os.path.join(self.base, "users")
        T.write_users(self.users, [("alice", "pw")])

    def start(self, *extra):
        srv = T.Server(self.root, ["--users", self.users, "--tls", "optional",
                                   "--tls-cert", self.both,
                                   "--tls-implicit-listen", "127.0.0.1:0"]
                       + list(self.mode_args) + list(extra), workdir=self.base)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def session(self, srv):
        c = TlsCtl(srv)
        self.addCleanup(c.close)
        c.auth()
        c.login("alice", "pw")
        return c

    def test_sigterm_grace_lets_tls_transfer_finish(self):
        srv = self.start("--stop-grace", "30")
        c = self.session(srv)
        idle = self.session(srv)
        c.protect()
        c.expect("TYPE I", 200)
        d = c.pasv()
        c.expect("RETR big.bin", 150)
        d = c.wrap_data(d)
        first = d.recv(65536)
        self.assertTrue(first)
        srv.signal(signal.SIGTERM)
        self.assertEqual(idle.reply(T.timeout(5)).code, 421, "idle TLS session on stop")
        rest = recv_until_closed(d)
        self.assertEqual(T.sha256(first + rest), T.sha256(self.data))
        self.assertEqual(c.reply(T.timeout(10)).code, 226)
        rc = srv.wait(T.timeout(15))
        self.assertEqual(rc, 0, srv.stderr_tail())

    def test_sigterm_stops_implicit_listener_too(self):
        srv = self.start("--stop-grace", "1")
        c = implicit_ctl(self, srv)
        c.login("alice", "pw")
        d = c.pasv()
        c.expect("RETR big.bin", 150)
        d = c.wrap_data(d)
        self.addCleanup(d.close)
        self.assertTrue(d.recv(65536))  # then stalls
        start = time.monotonic()
        srv.signal(signal.SIGTERM)
        r = c.reply(T.timeout(10))
        self.assertEqual(r.code, 426, "implicit TLS transfer at the grace's end: %s" % r)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        rc = srv.wait(T.timeout(15))
        self.assertEqual(rc, 0, srv.stderr_tail())


class TlsStopForkingTest(TlsStopTest):
    mode_args = ("--mode", "forking")

    def test_session_processes_hold_no_listener(self):
        # A session process of one listener keeps neither its own listening
        # socket nor the other listener's (nor the other's connections).
        srv = self.start()
        x = implicit_ctl(self, srv)
        x.login("alice", "pw")
        y = self.session(srv)
        self.assertEqual(x.cmd("NOOP").code, 200)
        listeners = {listener_inode(srv.port), listener_inode(implicit_port(srv))}
        self.assertNotIn(None, listeners)
        kids = children_of(srv.proc.pid)
        self.assertEqual(len(kids), 2, kids)
        for pid in kids:
            held = socket_inodes(pid)
            self.assertFalse(held & listeners, "session process %d holds a listener" % pid)
            # Its own control connection and nothing of the other session.
            self.assertEqual(len(held), 1, "session process %d holds sockets %s" % (pid, held))

    def test_session_end_closes_connection_despite_other_listener(self):
        # A session process of one listener must not keep the connections
        # of the other listener's sessions open (forking mode).
        srv = self.start()
        x = implicit_ctl(self, srv)
        x.login("alice", "pw")
        y = self.session(srv)  # forked while x's session runs
        self.assertEqual(x.cmd("QUIT").code, 221)
        raw = x.sock.unwrap()  # both close_notify said: TCP below
        raw.settimeout(T.timeout(5))
        self.assertEqual(raw.recv(100), b"", "no end of the connection")
        x.sock = raw
        # And the other way round.
        z = self.session(srv)
        w = implicit_ctl(self, srv)
        w.login("alice", "pw")
        self.assertEqual(z.cmd("QUIT").code, 221)
        raw = z.sock.unwrap()
        raw.settimeout(T.timeout(5))
        self.assertEqual(raw.recv(100), b"", "no end of the connection")
        z.sock = raw
        self.assertEqual(y.cmd("NOOP").code, 200)
        self.assertEqual(w.cmd("NOOP").code, 200)


class TlsConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ftpd-tls-cfg-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cert, self.key, self.both = make_cert(self.dir)
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        _, self.other_key, _ = make_cert(other)

    def run_server(self, *args):
        return subprocess.run([T.ftpd_path(), "--listen", "127.0.0.1:0", "--root", self.dir]
                              + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=T.timeout(20))

    def assert_config_error(self, args, *words):
        r = self.run_server(*args)
        self.assertEqual(r.returncode, 2, r.stderr)
        err = r.stderr.decode()
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        for w in words:
            self.assertIn(w, err)

    def test_errors(self):
        missing = os.path.join(self.dir, "missing.pem")
        self.assert_config_error(["--tls", "maybe"], "--tls", "maybe")
        self.assert_config_error(["--tls", "optional"], "--tls-cert")
        self.assert_config_error(["--tls", "optional", "--tls-cert", missing], "--tls-cert",
                                 missing, "No such file")
        self.assert_config_error(["--tls", "optional", "--tls-cert", self.cert], "--tls-key",
                                 self.cert)
        self.assert_config_error(["--tls", "optional", "--tls-cert", self.cert, "--tls-key",
                                  self.other_key], "--tls-key", self.other_key, "mismatch")
        self.assert_config_error(["--tls", "optional", "--tls-cert", self.key, "--tls-key",
                                  self.key], "--tls-cert", self.key)
        self.assert_config_error(["--tls-implicit-listen", "127.0.0.1:0"], "--tls-implicit-listen")
        self.assert_config_error(["--tls", "optional", "--tls-cert", self.both,
                                  "--tls-require-reuse", "perhaps"], "--tls-require-reuse")

    def test_config_file_keys(self):
        conf = os.path.join(self.dir, "ftpd.conf")
        with open(conf, "w") as f:
            f.write("tls = required\ntls-cert = %s\ntls-key = %s\ntls-require-reuse = no\n"
                    % (self.cert, self.key))
        srv = T.Server(self.dir, ["-c", conf, "--anonymous"], workdir=self.dir)
        srv.start()
        try:
            with T.Ctl(srv) as c:
                self.assertEqual(c.cmd("USER anonymous").code, 530)
        finally:
            self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    T.main()
