"""Shared helpers for the sockserv-ftpd end-to-end tests.

Every test file imports this module. It starts the real binary on a random
loopback port, hands out ftplib sessions in each data-connection mode, and a
raw control connection that checks every reply against RFC 959 section 4.2
(reply format, multi-line replies, no stray CR or LF).

Only the Python standard library is used.
"""

import errno
import ftplib
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SANITIZE = os.environ.get("SANITIZE", "")

# Sanitizer builds run the server several times slower; every wait scales.
SLOW = {"": 1.0, "address": 3.0, "thread": 5.0}.get(SANITIZE, 4.0)
# Large-file size for the byte-exact transfer tests.
BIG = (32 if not SANITIZE else 12) * 1024 * 1024


def timeout(seconds):
    """A wait bound in seconds, scaled for sanitizer builds."""
    return seconds * SLOW


def bin_dir():
    d = os.environ.get("SOCKSERV_BIN")
    if not d:
        d = os.path.join(REPO, "build", "bin")
    return d


def ftpd_path():
    return os.path.join(bin_dir(), "sockserv-ftpd")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def random_bytes(n, seed=None):
    """n random bytes; os.urandom is fast enough for tens of MiB."""
    return os.urandom(n)


def ipv6_available():
    """True if ::1 is configured (we can bind it)."""
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def can_bind(host):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind((host, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def hash_password(password):
    """sha512crypt hash as made by `openssl passwd -6` (libcrypt's "$6$"
    when the openssl program is missing)."""
    try:
        out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
                             timeout=30)
        return out.stdout.decode().strip()
    except (OSError, subprocess.CalledProcessError):
        h = crypt_hash(password, "$6$")
        if h is None:
            raise
        return h


def crypt_hash(password, prefix):
    """A crypt(3) hash with the given method prefix ("$y$" yescrypt, "$5$"
    sha256crypt, ...) made by the system's libcrypt; None if unsupported."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                                  ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(prefix.encode(), 0, None, 0)
    if not setting:
        return None
    out = lib.crypt(password.encode(), setting)
    if not out or not out.startswith(prefix.encode()):
        return None
    return out.decode()


def write_users(path, users):
    """users: list of (name, password[, home]) -> a users file."""
    lines = []
    for u in users:
        h = hash_password(u[1])
        if len(u) > 2 and u[2] is not None:
            lines.append("%s:%s:%s" % (u[0], h, u[2]))
        else:
            lines.append("%s:%s" % (u[0], h))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# One "ls -l" line as LIST sends it: type, permissions, links, owner, group,
# size, month, day, time or year, name.
LS_RE = re.compile(r"^([dl-])([rwxsStT-]{9})\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+"
                   r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{1,2})\s+"
                   r"(\d{2}:\d{2}|\d{4})\s(.+)$")


# ---------------------------------------------------------------------------
# The server process


class ServerError(Exception):
    pass


class Server:
    """One sockserv-ftpd process listening on a random loopback port.

    start() waits for its single `listening on ADDR` line on stdout (bounded
    by a timeout); stop() sends SIGTERM by PID, waits, and kills after a
    deadline. stderr goes to a file whose tail tests print on failure.
    """

    def __init__(self, root, args=(), listen="127.0.0.1:0", workdir=None):
        self.root = root
        self.args = list(args)
        self.listen = listen
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="ftpd-srv-")
        self.proc = None
        self.host = None
        self.port = None
        self.family = socket.AF_INET
        self.stderr_path = os.path.join(self.workdir, "stderr.txt")
        self.stdout_rest = []
        self.returncode = None
        self._drain = None

    def command(self):
        cmd = [ftpd_path(), "--listen", self.listen]
        if self.root is not None:
            cmd += ["--root", self.root]
        return cmd + self.args

    def start(self):
        if not os.access(ftpd_path(), os.X_OK):
            raise ServerError("server binary missing: %s" % ftpd_path())
        self._errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._errf,
                                     cwd=self.workdir)
        line = self._read_line(timeout(10))
        m = re.match(r"^listening on (?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d+)$", line)
        if not m:
            tail = self.stderr_tail()
            self.stop()
            raise ServerError("unexpected first line %r; stderr: %s" % (line, tail))
        if m.group(1):
            self.host = m.group(1)
            self.family = socket.AF_INET6
        else:
            self.host = m.group(2)
            self.family = socket.AF_INET
        self.port = int(m.group(3))
        if self.port == 0:
            self.stop()
            raise ServerError("server reports port 0: %r" % line)
        # Keep reading stdout so the server can never block on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        return self

    def _read_line(self, limit):
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + limit
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                tail = self.stderr_tail()
                self.stop()
                raise ServerError("no 'listening on' line within %.0fs; stderr: %s"
                                  % (limit, tail))
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                tail = self.stderr_tail()
                self.stop()
                raise ServerError("server exited before listening (rc=%s); stderr: %s"
                                  % (self.returncode, tail))
            buf += chunk
        line, rest = buf.split(b"\n", 1)
        if rest:
            self.stdout_rest.append(rest)
        return line.decode("utf-8", "replace").rstrip("\r")

    def _drain_stdout(self):
        try:
            while True:
                chunk = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") \
                    else os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return
                self.stdout_rest.append(chunk)
        except (OSError, ValueError):
            return

    @property
    def address(self):
        return (self.host, self.port)

    def url(self, path="", user=None, password=None):
        host = "[%s]" % self.host if self.family == socket.AF_INET6 else self.host
        cred = ""
        if user is not None:
            cred = user + (":" + password if password is not None else "") + "@"
        return "ftp://%s%s:%d/%s" % (cred, host, self.port, path)

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, limit):
        """Wait for exit; returns the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, deadline=None):
        """SIGTERM, wait, SIGKILL after the deadline. Returns the exit code."""
        if self.proc is None:
            return self.returncode
        if deadline is None:
            deadline = timeout(15)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                if SANITIZE == "thread":
                    try:
                        self.proc.wait(deadline / 3)
                    except subprocess.TimeoutExpired:
                        # ThreadSanitizer's runtime defers asynchronous
                        # signals and, rarely under load, never runs the
                        # handler (plain builds never lose one); SIGTERM
                        # again is harmless to a server already stopping.
                        sys.stderr.write("sockserv-ftpd: no exit %.0fs after SIGTERM under "
                                         "TSan; sending it again\n" % (deadline / 3))
                        if self.proc.poll() is None:
                            self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(deadline)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.returncode = "killed after %.0fs" % deadline
                self._close()
                return self.returncode
        self.returncode = self.proc.returncode
        self._close()
        return self.returncode

    def _close(self):
        if self._drain is not None:
            self._drain.join(5)
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        try:
            self._errf.close()
        except (OSError, AttributeError):
            pass
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stderr_tail(self, n=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Raw control connections


class ReplyError(AssertionError):
    pass


class Reply:
    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines  # text of each line, without CRLF
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%r)" % self.raw

    def __str__(self):
        return self.raw.decode("utf-8", "replace").rstrip("\r\n")


MAX_REPLY_LINE = 1 << 20


class Ctl:
    """A raw FTP control connection that validates every reply.

    RFC 959 4.2: a reply is "ddd text CRLF", or a multi-line reply starting
    "ddd-" and ending with a line "ddd text" carrying the same code. We also
    require that no reply line contains a bare CR or LF (user input must
    never be echoed raw into a reply).
    """

    def __init__(self, server=None, addr=None, family=None, source=None, greet=True,
                 tmo=None):
        if addr is None:
            addr = server.address
        if family is None:
            family = server.family if server else socket.AF_INET
        self.tmo = tmo if tmo is not None else timeout(10)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.tmo)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect(addr)
        self.family = family
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8") + b"\r\n"
        self.sock.sendall(data)

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_REPLY_LINE:
                raise ReplyError("reply line longer than %d bytes" % MAX_REPLY_LINE)
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply line; have %r" % self.buf[:200])
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; partial reply %r" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        if b"\r" in line or b"\n" in line:
            raise ReplyError("reply line contains a bare CR or LF: %r" % line[:300])
        return line

    def reply(self, tmo=None):
        deadline = time.monotonic() + (tmo if tmo is not None else self.tmo)
        first = self._line(deadline)
        m = re.match(rb"^([1-5][0-5]\d)([ -])", first)
        if not m:
            raise ReplyError("malformed reply line: %r" % first[:300])
        code = m.group(1)
        raw = [first]
        if m.group(2) == b"-":
            for _ in range(100000):
                line = self._line(deadline)
                raw.append(line)
                if line.startswith(code + b" "):
                    break
            else:
                raise ReplyError("multi-line reply never ended")
        text = [l.decode("utf-8", "replace") for l in raw]
        return Reply(int(code), text, b"\r\n".join(raw) + b"\r\n")

    def cmd(self, line, tmo=None):
        self.send(line)
        return self.reply(tmo)

    def expect(self, line, *codes):
        r = self.cmd(line)
        if r.code not in codes:
            raise ReplyError("%r -> %s, expected %s" % (line, r, codes))
        return r

    def pending(self, wait=0.0):
        """Bytes that arrive within `wait` seconds without a command (must be
        none after a complete exchange)."""
        if self.buf:
            return self.buf
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return b""
        try:
            self.sock.settimeout(0.5)
            return self.sock.recv(65536) or b"<EOF>"
        except (socket.timeout, OSError):
            return b""

    def at_eof(self, tmo=None):
        """Read until the server closes; True if it closed within tmo."""
        deadline = time.monotonic() + (tmo if tmo is not None else self.tmo)
        while time.monotonic() < deadline:
            try:
                self.sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not chunk:
                return True
        return False

    def login(self, user, password):
        r = self.cmd("USER " + user)
        if r.code == 230:
            return r
        if r.code != 331:
            raise ReplyError("USER %s -> %s" % (user, r))
        r = self.cmd("PASS " + password)
        if r.code != 230:
            raise ReplyError("PASS -> %s" % r)
        return r

    # Data connections -----------------------------------------------------

    def pasv(self):
        """PASV; returns a connected data socket."""
        r = self.expect("PASV", 227)
        m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", r.lines[0])
        if not m:
            raise ReplyError("unparsable 227: %s" % r)
        n = [int(x) for x in m.groups()]
        host = "%d.%d.%d.%d" % tuple(n[:4])
        port = n[4] * 256 + n[5]
        return socket.create_connection((host, port), timeout=self.tmo)

    def epsv(self):
        r = self.expect("EPSV", 229)
        m = re.search(r"\((.)\1\1(\d+)\1\)", r.lines[0])
        if not m:
            raise ReplyError("unparsable 229: %s" % r)
        host = self.sock.getpeername()[0]
        return socket.create_connection((host, int(m.group(2))), timeout=self.tmo)

    def listen_port(self, extended=False):
        """PORT / EPRT to a fresh listener on our own address; returns the
        listening socket (accept after sending the transfer command)."""
        host = self.sock.getsockname()[0]
        ls = socket.socket(self.family, socket.SOCK_STREAM)
        ls.bind((host, 0))
        ls.listen(1)
        ls.settimeout(self.tmo)
        port = ls.getsockname()[1]
        if extended or self.family == socket.AF_INET6:
            proto = 2 if self.family == socket.AF_INET6 else 1
            self.expect("EPRT |%d|%s|%d|" % (proto, host, port), 200)
        else:
            self.expect("PORT %s,%d,%d" % (host.replace(".", ","), port >> 8, port & 255),
                        200)
        return ls

    def data(self, mode):
        """Set up a data connection in mode PASV/EPSV/PORT/EPRT. Returns a
        callable that yields the connected data socket once the transfer
        command has been sent."""
        if mode == "PASV":
            s = self.pasv()
            return lambda: s
        if mode == "EPSV":
            s = self.epsv()
            return lambda: s
        ls = self.listen_port(extended=(mode == "EPRT"))

        def accept():
            try:
                c, _ = ls.accept()
                c.settimeout(self.tmo)
                return c
            finally:
                ls.close()
        return accept


def recv_all(sock, limit=None, tmo=None):
    """Read a data connection to EOF (bounded in time)."""
    deadline = time.monotonic() + (tmo if tmo is not None else timeout(60))
    parts = []
    n = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("data connection not closed in time after %d bytes" % n)
        sock.settimeout(left)
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        parts.append(chunk)
        n += len(chunk)
        if limit is not None and n > limit:
            raise AssertionError("more data than expected (%d > %d)" % (n, limit))
    sock.close()
    return b"".join(parts)


def reset_close(sock):
    """Close with RST (SO_LINGER 0): an abrupt break of a data connection."""
    import struct
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


# ---------------------------------------------------------------------------
# ftplib in every data-connection mode

MODES = ("PASV", "EPSV", "PORT", "EPRT")


class ModeFTP(ftplib.FTP):
    """ftplib.FTP that uses the data-connection command named by `mode`
    (PASV, EPSV, PORT or EPRT) regardless of address family."""

    mode = "PASV"

    def set_mode(self, mode):
        assert mode in MODES
        self.mode = mode
        self.set_pasv(mode in ("PASV", "EPSV"))

    def makepasv(self):
        peer = self.sock.getpeername()
        if self.mode == "EPSV" or self.af == socket.AF_INET6:
            host, port = ftplib.parse229(self.sendcmd("EPSV"), peer)
        else:
            untrusted, port = ftplib.parse227(self.sendcmd("PASV"))
            # We check the address the server advertises, then connect to it.
            assert untrusted == peer[0], "PASV advertises %s, control peer %s" % (untrusted,
                                                                                  peer[0])
            host = untrusted
        return host, port

    def makeport(self):
        host = self.sock.getsockname()[0]
        sock = socket.create_server((host, 0), family=self.af, backlog=1)
        port = sock.getsockname()[1]
        if self.mode == "PORT" and self.af == socket.AF_INET:
            self.sendport(host, port)
        else:
            self.sendeprt(host, port)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        return sock


def ftp_connect(server, user=None, password=None, mode="PASV", source=None, tmo=None):
    """A logged-in ModeFTP session (anonymous when user is None)."""
    f = ModeFTP(timeout=tmo if tmo is not None else timeout(30))
    f.connect(server.host, server.port, source_address=(source, 0) if source else None)
    if user is None:
        f.login("anonymous", "test@example.org")
    else:
        f.login(user, password)
    f.set_mode(mode)
    return f


def retr_bytes(f, path, rest=None):
    parts = []
    f.retrbinary("RETR " + path, parts.append, rest=rest)
    return b"".join(parts)


def stor_bytes(f, path, data, cmd="STOR", rest=None):
    import io
    return f.storbinary("%s %s" % (cmd, path), io.BytesIO(data), blocksize=1 << 16, rest=rest)


def quit_quietly(f):
    if f.sock is None:
        return
    try:
        f.quit()
    except Exception:
        try:
            f.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Test case base


class ServerTestCase(unittest.TestCase):
    """One server per test class, with a fresh root from make_tree().

    Class attributes subclasses may set:
      server_args   extra command-line arguments
      users         list of (name, password[, home]) -> --users FILE
      anonymous     pass --anonymous
      listen        listen address (default 127.0.0.1:0)
    """

    server_args = ()
    # Generous session limits so the defaults (50 per address) never
    # interfere with tests that open several sessions; the limit tests set
    # their own.
    limit_args = ("--max-clients", "200", "--max-per-ip", "100")
    users = [("alice", "wonderland")]
    anonymous = False
    listen = "127.0.0.1:0"
    user = "alice"
    password = "wonderland"

    @classmethod
    def make_tree(cls, root):
        """Populate the served root (override)."""

    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="ftpd-e2e-")
        cls.root = os.path.join(cls.base, "root")
        os.mkdir(cls.root)
        cls.make_tree(cls.root)
        args = list(cls.limit_args) + list(cls.server_args)
        if cls.users:
            cls.users_file = os.path.join(cls.base, "users")
            write_users(cls.users_file, cls.users)
            args += ["--users", cls.users_file]
        if cls.anonymous:
            args.append("--anonymous")
        cls.server = Server(cls.root, args, listen=cls.listen, workdir=cls.base)
        try:
            cls.server.start()
        except Exception:
            shutil.rmtree(cls.base, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        tail = cls.server.stderr_tail()
        shutil.rmtree(cls.base, ignore_errors=True)
        if rc != 0:
            raise AssertionError("server exit status after SIGTERM: %r (expected 0); "
                                 "stderr tail:\n%s" % (rc, tail))

    # Convenience ---------------------------------------------------------

    def ctl(self, login=True, **kw):
        c = Ctl(self.server, **kw)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting.code, 220, "greeting: %s" % c.greeting)
        if login:
            if self.user is None:
                c.login("anonymous", "guest@")
            else:
                c.login(self.user, self.password)
        return c

    def ftp(self, mode="PASV", user="default", password=None, **kw):
        if user == "default":
            user, password = self.user, self.password
        f = ftp_connect(self.server, user, password, mode=mode, **kw)
        self.addCleanup(quit_quietly, f)
        return f

    def assert_alive(self):
        """A fresh session still logs in and lists the root."""
        self.assertIsNone(self.server.proc.poll(),
                          "server died; stderr: %s" % self.server.stderr_tail())
        with Ctl(self.server) as c:
            self.assertEqual(c.greeting.code, 220)
            if self.user is None:
                c.login("anonymous", "guest@")
            else:
                c.login(self.user, self.password)
            r = c.cmd("PWD")
            self.assertEqual(r.code, 257, str(r))
            get = c.data("PASV" if self.server.family == socket.AF_INET else "EPSV")
            r = c.cmd("NLST")
            self.assertIn(r.code, (125, 150), str(r))
            recv_all(get())
            r = c.reply()
            self.assertEqual(r.code, 226, str(r))
            self.assertEqual(c.cmd("QUIT").code, 221)

    def path(self, *parts):
        return os.path.join(self.root, *parts)


def main():
    """Run the calling module's tests; exit non-zero on any failure."""
    if not os.access(ftpd_path(), os.X_OK):
        print("sockserv-ftpd not built: %s" % ftpd_path(), file=sys.stderr)
        sys.exit(1)
    prog = unittest.main(module="__main__", exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
