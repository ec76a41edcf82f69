#!/usr/bin/env python3
"""Helpers for the example programs' end-to-end tests, and the command-line
behaviour every example shares (--help, bad options, bad addresses).

The other test_examples_*.py files import this module. Programs are taken
from $SOCKSERV_BIN (default: build/bin under the repository root).
"""
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SOCKSERV_BIN") or os.path.join(REPO, "build", "bin")
# Under ThreadSanitizer a stop signal is sent again after this many seconds
# (see Server.stop); 0 elsewhere.
TSAN_SIGNAL_RETRY = 5 if os.environ.get("SANITIZE") == "thread" else 0



def slow_factor():
    """How much slower than a plain build on an idle machine this run may be:
    3 under ASan, 5 under TSan (environment SANITIZE), times the load per
    processor when it is above 1 (at most 2). Upper bounds on time are
    multiplied by it (limit()); lower bounds, which a slow machine cannot
    break, are not."""
    f = {"": 1.0, "address": 3.0, "thread": 5.0}.get(os.environ.get("SANITIZE", ""), 4.0)
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = 0.0
    return f * min(max(load, 1.0), 2.0)


SLOW = slow_factor()


def limit(seconds):
    """An upper bound in seconds, scaled for the build and the load."""
    return seconds * SLOW


# Bounds for a program to start, stop and run to the end.
START_TIMEOUT = limit(15.0)
STOP_TIMEOUT = limit(15.0)
RUN_TIMEOUT = limit(30.0)

PROGRAMS = ["udp-upper-server", "udp-upper-client", "tcp-upper-server",
            "tcp-upper-client", "echo-server"]
SERVERS = ["udp-upper-server", "tcp-upper-server", "echo-server"]


def program(name):
    return os.path.join(BIN, name)


def upper(data):
    """What the service must answer: ASCII a-z upper-cased, nothing else."""
    return bytes(b - 32 if 0x61 <= b <= 0x7A else b for b in data)


def run(name, args, stdin=b"", timeout=RUN_TIMEOUT):
    """Run a program to the end; returns CompletedProcess (bytes)."""
    return subprocess.run([program(name)] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def run_pty(name, args, stdin=b"", timeout=RUN_TIMEOUT):
    """Run a program with stdin and stdout on a pseudo-terminal. Writes the
    input, then ^D (end of input at the start of a line). Returns
    (exit status, everything the terminal showed, stderr)."""
    master, slave = os.openpty()
    err = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen([program(name)] + list(args), stdin=slave,
                                stdout=slave, stderr=err, close_fds=True)
    finally:
        os.close(slave)
    shown = b""
    try:
        # Canonical mode: the line discipline keeps typed lines until the
        # program reads them, and ^D at the start of a line reads as EOF.
        os.write(master, stdin + b"\x04")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the program exited and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        rc = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    with err:
        err.seek(0)
        return rc, shown, err.read()


class Server:
    """A server program started on an address (port 0 by default); the
    bound address comes from its "listening on ADDRESS" line."""

    def __init__(self, name, args):
        self.name = name
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([program(name)] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err)
        try:
            self.address = self._read_listening()
            if self.address.startswith("unix:"):
                self.host, self.port = None, None
            else:
                self.host, self.port = split_address(self.address)
        except BaseException:
            self.close()
            raise

    def _read_listening(self):
        line = b""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0, left))
            if not ready:
                self.kill()
                raise AssertionError("%s printed no listening line in %gs; stderr: %r"
                                     % (self.name, START_TIMEOUT, self.stderr()))
            chunk = os.read(fd, 1)
            if not chunk:
                self.proc.wait()
                raise AssertionError("%s exited (%s) before listening; stderr: %r"
                                     % (self.name, self.proc.returncode, self.stderr()))
            line += chunk
        text = line.decode().strip()
        if not text.startswith("listening on "):
            self.kill()
            raise AssertionError("unexpected first line %r" % text)
        return text[len("listening on "):]

    def sockaddr(self):
        return (self.host, self.port)

    def family(self):
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def stop(self, sig=signal.SIGTERM):
        """Send sig and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            if TSAN_SIGNAL_RETRY:
                try:
                    return self.proc.wait(timeout=TSAN_SIGNAL_RETRY)
                except subprocess.TimeoutExpired:
                    # ThreadSanitizer's runtime defers asynchronous signals
                    # to a safe point and, about once in a few hundred
                    # stops under load, never runs the handler (the kernel
                    # shows nothing pending and the loop never wakes; plain
                    # builds never do this). Say so and ask once more.
                    sys.stderr.write("%s: no exit %ds after signal %d under TSan; "
                                     "sending it again\n" % (self.name, TSAN_SIGNAL_RETRY, sig))
                    if self.proc.poll() is None:
                        self.proc.send_signal(sig)
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not stop on signal %d" % (self.name, sig))

    def wait(self):
        """Wait for the exit status without sending anything."""
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit" % self.name)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def close(self):
        self.kill()
        if not self.proc.stdout.closed:
            self.proc.stdout.close()
        self.err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def split_address(text):
    """"127.0.0.1:40000" or "[::1]:40000" -> (host, port)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(kind=socket.SOCK_STREAM):
    """A port that was free a moment ago (for clients with no server)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CommandLineTest(unittest.TestCase):
    """What every example program does with its command line."""

    def test_help_goes_to_stdout_with_status_0(self):
        for name in PROGRAMS:
            with self.subTest(program=name):
                r = run(name, ["--help"])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith(b"Usage: " + name.encode()), r.stdout)
                self.assertIn(b"ADDRESS", r.stdout)
                self.assertEqual(r.stderr, b"")

    def test_unknown_option_is_a_usage_error(self):
        for name in PROGRAMS:
            with self.subTest(program=name):
                r = run(name, ["--no-such-option"])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(name.encode() + b": unknown option '--no-such-option'", r.stderr)
                self.assertTrue(r.stderr.endswith(b" (see --help)\n"), r.stderr)
                self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)
                self.assertEqual(r.stdout, b"")

    def test_too_many_arguments_is_a_usage_error(self):
        for name in PROGRAMS:
            with self.subTest(program=name):
                r = run(name, ["127.0.0.1:0", "127.0.0.1:0"])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(b"too many arguments", r.stderr)

    def test_bad_address_syntax_is_a_usage_error(self):
        bad = ["nonsense", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:port", "[::1:80",
               "[::1]", ":", "[127.0.0.1]:80"]
        for name in PROGRAMS:
            for addr in bad:
                with self.subTest(program=name, address=addr):
                    r = run(name, [addr], timeout=limit(10))
                    self.assertEqual(r.returncode, 2, r.stderr)
                    msg = r.stderr.decode(errors="replace")
                    self.assertIn("%s: bad address '%s'" % (name, addr), msg)
                    self.assertEqual(len(msg.splitlines()), 1, msg)

    def test_bad_option_values_are_usage_errors(self):
        cases = [
            ("tcp-upper-server", ["--mode", "fast"], b"bad mode 'fast'"),
            ("echo-server", ["--mode=nope"], b"bad mode 'nope'"),
            ("tcp-upper-server", ["--mode"], b"option '--mode' needs a value"),
            ("udp-upper-client", ["--timeout", "0"], b"bad timeout '0'"),
            ("udp-upper-client", ["--tries", "-1"], b"bad number of tries '-1'"),
            ("udp-upper-client", ["--tries", "3x"], b"bad number of tries '3x'"),
            ("tcp-upper-client", ["--burst", "0"], b"bad burst '0'"),
            ("tcp-upper-client", ["--timeout", "abc"], b"bad timeout 'abc'"),
        ]
        for name, args, message in cases:
            with self.subTest(program=name, args=args):
                r = run(name, args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)

    def test_servers_print_the_bound_address_and_stop_on_sigterm(self):
        for name in SERVERS:
            with self.subTest(program=name), Server(name, ["127.0.0.1:0"]) as srv:
                self.assertEqual(srv.host, "127.0.0.1")
                self.assertGreater(srv.port, 0)
                self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.stderr())
                self.assertEqual(srv.stderr(), b"")


if __name__ == "__main__":
    unittest.main(verbosity=2)
