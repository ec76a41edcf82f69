"""A real HAProxy (Debian's haproxy package) in front of test servers.

HAProxy runs in the foreground (-db) on loopback with a configuration written
to a temporary folder, and is stopped by PID. Tests that need it skip when
the binary is missing (scripts/deps.sh installs it for `make test`).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time


def haproxy_path():
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)


def free_port():
    """A loopback port that was free a moment ago (HAProxy binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HAProxy:
    """haproxy -f CFG -db. frontends: list of (name, backend servers, options):
    each backend server is (host, port, server-line options), balanced
    round-robin. Each frontend gets a free loopback port: self.ports[name]."""

    def __init__(self, frontends, limit):
        self.dir = tempfile.mkdtemp(prefix="haproxy-e2e-")
        self.ports = {}
        lines = [
            "global",
            "    maxconn 512",
            "defaults",
            "    mode tcp",
            "    timeout connect 5s",
            "    timeout client 60s",
            "    timeout server 60s",
        ]
        for name, servers, options in frontends:
            port = free_port()
            self.ports[name] = port
            lines += ["frontend fe_%s" % name,
                      "    bind 127.0.0.1:%d" % port,
                      "    default_backend be_%s" % name,
                      "backend be_%s" % name,
                      "    balance roundrobin"]
            lines += ["    " + o for o in options]
            for i, (host, sport, opts) in enumerate(servers):
                lines.append("    server s%d %s:%d %s" % (i, host, sport, opts))
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.err = open(os.path.join(self.dir, "stderr.txt"), "w+b")
        self.proc = subprocess.Popen([haproxy_path(), "-f", self.cfg, "-db"],
                                     stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=self.err, cwd=self.dir)
        # Ready once every frontend accepts (HAProxy prints nothing then).
        deadline = time.monotonic() + limit
        for port in self.ports.values():
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError("haproxy exited: %s" % self.stderr())
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise AssertionError("haproxy not listening: %s" % self.stderr())
                    time.sleep(0.02)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def connect_from(source, port, tmo):
    """A TCP connection from the loopback address source to 127.0.0.1:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(tmo)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s
