"""sockserv-ftpd: data transfers.

RETR/STOR/APPE/STOU in TYPE A and TYPE I over PASV, EPSV, PORT and EPRT;
large random files byte-exact both ways (sha256 and the HASH command);
ASCII line-end conversion; REST with RETR and STOR; ABOR and STAT during a
transfer; EPSV ALL; exactly one final reply per transfer; 20 parallel
downloads; atomic replacing uploads and partial new uploads; data timeouts
and the passive port range.
"""

import ftplib
import hashlib
import io
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ftpdtest as T  # noqa: E402

MIB = 1024 * 1024
MEDIUM = 1 * MIB


def text_lines(n_lines, seed=1):
    """Deterministic ASCII text with LF line ends (and no CR)."""
    import random
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:-_"
    return "".join("".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 120))) + "\n"
                   for _ in range(n_lines)).encode()


def retr_raw(c, mode, path, type_="I", rest=None):
    """RETR over a fresh data connection; returns the bytes. Checks the
    150/226 pair and that no further reply follows."""
    c.expect("TYPE " + type_, 200)
    get = c.data(mode)
    if rest is not None:
        c.expect("REST %d" % rest, 350)
    r = c.cmd("RETR " + path)
    if r.code not in (125, 150):
        raise AssertionError("RETR %s -> %s" % (path, r))
    data = T.recv_all(get())
    r = c.reply()
    if r.code != 226:
        raise AssertionError("RETR %s final reply %s" % (path, r))
    return data


def stor_raw(c, mode, path, data, type_="I", cmd="STOR", rest=None):
    """STOR/APPE/STOU over a fresh data connection; returns (1xx, final)."""
    c.expect("TYPE " + type_, 200)
    get = c.data(mode)
    if rest is not None:
        c.expect("REST %d" % rest, 350)
    prelim = c.cmd((cmd + " " + path).rstrip())
    if prelim.code not in (125, 150):
        raise AssertionError("%s %s -> %s" % (cmd, path, prelim))
    s = get()
    s.sendall(data)
    s.close()
    final = c.reply(T.timeout(60))
    if final.code not in (226, 250):
        raise AssertionError("%s %s final reply %s" % (cmd, path, final))
    return prelim, final


class TransferTest(T.ServerTestCase):
    @classmethod
    def make_tree(cls, root):
        cls.big = T.random_bytes(T.BIG)
        T.write(os.path.join(root, "big.bin"), cls.big)
        cls.medium = T.random_bytes(MEDIUM)
        T.write(os.path.join(root, "medium.bin"), cls.medium)
        cls.text = text_lines(4000)
        T.write(os.path.join(root, "text.txt"), cls.text)
        T.write(os.path.join(root, "small.txt"), b"0123456789abcdefghij\n")
        os.mkdir(os.path.join(root, "up"))

    def assert_no_more_replies(self, c):
        extra = c.pending(0.2)
        self.assertEqual(extra, b"", "unexpected extra reply data: %r" % extra[:200])
        r = c.cmd("NOOP")
        self.assertEqual(r.code, 200, "reply after transfer out of step: %s" % r)

    # Every mode, both types ------------------------------------------------

    def test_retr_all_modes_both_types(self):
        c = self.ctl()
        crlf = self.text.replace(b"\n", b"\r\n")
        for mode in T.MODES:
            with self.subTest(mode=mode, type="I"):
                data = retr_raw(c, mode, "medium.bin", "I")
                self.assertEqual(T.sha256(data), T.sha256(self.medium))
                self.assert_no_more_replies(c)
            with self.subTest(mode=mode, type="A"):
                data = retr_raw(c, mode, "text.txt", "A")
                self.assertEqual(len(data), len(crlf))
                self.assertEqual(data, crlf, "TYPE A download must send CRLF line ends")
                self.assert_no_more_replies(c)

    def test_stor_all_modes_both_types(self):
        c = self.ctl()
        crlf = self.text.replace(b"\n", b"\r\n")
        for mode in T.MODES:
            with self.subTest(mode=mode, type="I"):
                name = "up/bin-%s.bin" % mode
                stor_raw(c, mode, name, self.medium, "I")
                self.assertEqual(T.file_sha256(self.path(name)), T.sha256(self.medium))
                self.assert_no_more_replies(c)
            with self.subTest(mode=mode, type="A"):
                name = "up/text-%s.txt" % mode
                stor_raw(c, mode, name, crlf, "A")
                self.assertEqual(T.read(self.path(name)), self.text,
                                 "TYPE A upload must store local (LF) line ends")
                self.assert_no_more_replies(c)

    def test_list_all_modes(self):
        c = self.ctl()
        for mode in T.MODES:
            for verb in ("LIST", "NLST", "MLSD"):
                with self.subTest(mode=mode, verb=verb):
                    get = c.data(mode)
                    c.expect(verb, 125, 150)
                    data = T.recv_all(get())
                    self.assertIn(b"big.bin", data)
                    self.assertTrue(data.endswith(b"\r\n"), data[-40:])
                    self.assertEqual(c.reply().code, 226)
                    self.assert_no_more_replies(c)

    def test_ascii_conversion_details(self):
        T.write(self.path("up", "lf.txt"), b"one\ntwo\n\nthree")
        c = self.ctl()
        self.assertEqual(retr_raw(c, "EPSV", "up/lf.txt", "A"), b"one\r\ntwo\r\n\r\nthree")
        self.assertEqual(retr_raw(c, "EPSV", "up/lf.txt", "I"), b"one\ntwo\n\nthree")
        stor_raw(c, "EPSV", "up/crlf.txt", b"a\r\nb\r\n\r\nc", "A")
        self.assertEqual(T.read(self.path("up", "crlf.txt")), b"a\nb\n\nc")
        stor_raw(c, "EPSV", "up/crlf-bin.txt", b"a\r\nb\r\n", "I")
        self.assertEqual(T.read(self.path("up", "crlf-bin.txt")), b"a\r\nb\r\n")
        # A CRLF split across two TCP segments still becomes one LF.
        c.expect("TYPE A", 200)
        get = c.data("PASV")
        c.expect("STOR up/split.txt", 150, 125)
        s = get()
        for piece in (b"x" * 1000 + b"\r", b"\ny\r", b"\n"):
            s.sendall(piece)
            time.sleep(0.02)  # distinct segments; there is no signal for "server read it"
        s.close()
        self.assertEqual(c.reply().code, 226)
        self.assertEqual(T.read(self.path("up", "split.txt")), b"x" * 1000 + b"\ny\n")

    # Large files, sha256 and HASH -----------------------------------------

    def server_hash(self, c, path, algo="SHA-256"):
        r = c.cmd("OPTS HASH " + algo)
        self.assertEqual(r.code, 200, str(r))
        r = c.cmd("HASH " + path, T.timeout(60))
        self.assertEqual(r.code, 213, str(r))
        # draft-bryan-ftpext-hash: "213 <algo> <start>-<end> <hex> <path>"
        m = re.match(r"^213 (\S+) (\d+)-(\d+) ([0-9a-fA-F]+) (.+)$", r.lines[0])
        self.assertIsNotNone(m, "malformed HASH reply: %s" % r)
        self.assertEqual(m.group(1).upper(), algo)
        self.assertEqual(m.group(2), "0")
        return m.group(4).lower()

    def test_big_download_pasv_and_eprt(self):
        for mode in ("PASV", "EPRT"):
            with self.subTest(mode=mode):
                f = self.ftp(mode)
                h = hashlib.sha256()
                n = [0]

                def cb(b):
                    h.update(b)
                    n[0] += len(b)
                f.retrbinary("RETR big.bin", cb, blocksize=1 << 20)
                self.assertEqual(n[0], len(self.big))
                self.assertEqual(h.hexdigest(), T.sha256(self.big))
                self.assertEqual(f.size("big.bin"), len(self.big))

    def test_big_upload_epsv_and_port_verified_by_hash(self):
        data = T.random_bytes(T.BIG)
        want = T.sha256(data)
        for mode in ("EPSV", "PORT"):
            with self.subTest(mode=mode):
                f = self.ftp(mode)
                name = "up/big-%s.bin" % mode
                T.stor_bytes(f, name, data)
                self.assertEqual(T.file_sha256(self.path(name)), want)
                c = self.ctl()
                self.assertEqual(self.server_hash(c, name), want)

    def test_hash_algorithms(self):
        c = self.ctl()
        for algo, fn in (("SHA-256", hashlib.sha256), ("SHA-1", hashlib.sha1),
                         ("MD5", hashlib.md5)):
            self.assertEqual(self.server_hash(c, "medium.bin", algo),
                             fn(self.medium).hexdigest(), algo)
        self.assertIn(c.cmd("OPTS HASH NOSUCH-ALGO").code, (501, 504))
        c.expect("OPTS HASH SHA-256", 200)
        self.assertEqual(c.cmd("HASH nonexistent").code, 550)
        self.assertIn(c.cmd("HASH up").code, (550, 553, 501))

    # REST, APPE, STOU -----------------------------------------------------

    def test_rest_retr(self):
        c = self.ctl()
        for mode in T.MODES:
            with self.subTest(mode=mode):
                self.assertEqual(retr_raw(c, mode, "medium.bin", rest=12345),
                                 self.medium[12345:])
        self.assertEqual(retr_raw(c, "PASV", "medium.bin", rest=0), self.medium)
        self.assertEqual(retr_raw(c, "PASV", "medium.bin", rest=len(self.medium)), b"")
        f = self.ftp()
        self.assertEqual(T.retr_bytes(f, "big.bin", rest=len(self.big) - 100000),
                         self.big[-100000:])
        # REST is consumed by the transfer that follows it.
        self.assertEqual(retr_raw(c, "EPSV", "small.txt"), b"0123456789abcdefghij\n")
        self.assertIn(c.cmd("REST abc").code, (501, 554))
        self.assertIn(c.cmd("REST -5").code, (501, 554))

    def test_rest_stor_into_existing_file(self):
        orig = T.random_bytes(100000)
        T.write(self.path("up", "resume.bin"), orig)
        new = T.random_bytes(80000)
        c = self.ctl()
        stor_raw(c, "EPSV", "up/resume.bin", new, rest=50000)
        self.assertEqual(T.read(self.path("up", "resume.bin")), orig[:50000] + new)
        # With ftplib's rest= argument, PORT mode.
        f = self.ftp("PORT")
        tail = T.random_bytes(1000)
        T.stor_bytes(f, "up/resume.bin", tail, rest=130000)
        self.assertEqual(T.read(self.path("up", "resume.bin")), orig[:50000] + new + tail)

    def test_appe(self):
        T.write(self.path("up", "log.txt"), b"first\n")
        c = self.ctl()
        stor_raw(c, "PASV", "up/log.txt", b"second\n", cmd="APPE")
        self.assertEqual(T.read(self.path("up", "log.txt")), b"first\nsecond\n")
        stor_raw(c, "EPRT", "up/log.txt", self.medium, cmd="APPE")
        self.assertEqual(T.read(self.path("up", "log.txt")), b"first\nsecond\n" + self.medium)
        stor_raw(c, "EPSV", "up/appe-new.txt", b"created\n", cmd="APPE")
        self.assertEqual(T.read(self.path("up", "appe-new.txt")), b"created\n")

    def test_stou(self):
        c = self.ctl()
        c.expect("CWD /up", 250)
        before = set(os.listdir(self.path("up")))
        names = []
        for payload in (b"unique one\n", b"unique two\n"):
            prelim, final = stor_raw(c, "EPSV", "", payload, cmd="STOU")
            after = set(os.listdir(self.path("up")))
            created = after - before
            self.assertEqual(len(created), 1, "STOU should create one file: %s" % created)
            name = created.pop()
            before = after
            self.assertEqual(T.read(self.path("up", name)), payload)
            # RFC 1123 4.1.2.9: the preliminary reply names the file.
            self.assertIn(name, prelim.text, "STOU 1xx reply should name the file")
            names.append(name)
        self.assertNotEqual(names[0], names[1])

    # ABOR, STAT, one final reply ------------------------------------------

    def start_stalled_retr(self, c, mode="PASV"):
        c.expect("TYPE I", 200)
        get = c.data(mode)
        c.expect("RETR big.bin", 150, 125)
        d = get()
        got = b""
        while len(got) < 65536:
            chunk = d.recv(65536)
            self.assertTrue(chunk, "data connection closed early")
            got += chunk
        return d, got

    def finish_abort(self, c, d):
        r1 = c.reply(T.timeout(15))
        self.assertEqual(r1.code, 426, "first reply after ABOR during RETR: %s" % r1)
        r2 = c.reply(T.timeout(15))
        self.assertEqual(r2.code, 226, "second reply after ABOR: %s" % r2)
        # The server closed the data connection: we reach EOF (or a reset)
        # well before the whole file could have been sent.
        try:
            rest = T.recv_all(d, tmo=T.timeout(15))
            self.assertLess(len(rest), len(self.big) - 65536,
                            "the whole file still came after ABOR")
        except ConnectionError:
            pass
        self.assert_no_more_replies(c)
        self.assertEqual(retr_raw(c, "EPSV", "small.txt"), b"0123456789abcdefghij\n")

    def test_abor_plain_during_retr(self):
        c = self.ctl()
        d, _ = self.start_stalled_retr(c)
        c.send("ABOR")
        self.finish_abort(c, d)

    def test_abor_with_telnet_synch_during_retr(self):
        # RFC 959 4.1.3: Telnet IP, then Synch (IAC DM sent urgent), then ABOR.
        c = self.ctl()
        d, _ = self.start_stalled_retr(c, "EPRT")
        c.sock.sendall(b"\xff\xf4\xff")
        c.sock.send(b"\xf2", socket.MSG_OOB)
        c.sock.sendall(b"ABOR\r\n")
        self.finish_abort(c, d)

    def test_abor_ftplib(self):
        f = self.ftp("EPSV")
        f.voidcmd("TYPE I")
        conn = f.transfercmd("RETR big.bin")
        self.assertTrue(conn.recv(65536))
        resp = f.abort()  # sends ABOR with the urgent flag
        self.assertTrue(resp.startswith("426"), "ABOR first reply %r" % resp)
        self.assertTrue(f.getresp().startswith("226"))
        conn.close()
        self.assertEqual(T.retr_bytes(f, "small.txt"), b"0123456789abcdefghij\n")

    def test_abor_without_transfer(self):
        c = self.ctl()
        r = c.cmd("ABOR")
        self.assertIn(r.code, (225, 226), str(r))
        self.assert_no_more_replies(c)

    def test_abor_during_stor_keeps_session(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("EPSV")
        c.expect("STOR up/aborted-new.bin", 150, 125)
        d = get()
        d.sendall(self.medium[:200000])
        c.send("ABOR")
        codes = [c.reply(T.timeout(15)).code]
        if codes[0] == 426:
            codes.append(c.reply(T.timeout(15)).code)
        self.assertEqual(codes, [426, 226], "replies to ABOR during STOR")
        d.close()
        self.assert_no_more_replies(c)

    def test_stat_during_transfer(self):
        c = self.ctl()
        d, got = self.start_stalled_retr(c)
        r = c.cmd("STAT", T.timeout(15))
        self.assertIn(r.code, (211, 213), "STAT during a transfer: %s" % r)
        numbers = [int(n) for n in re.findall(r"\d+", " ".join(r.lines[1:] or r.lines))]
        self.assertTrue(any(len(got) <= n <= len(self.big) for n in numbers),
                        "STAT should report the bytes sent so far (>= %d): %s"
                        % (len(got), r))
        rest = T.recv_all(d)
        self.assertEqual(T.sha256(got + rest), T.sha256(self.big))
        self.assertEqual(c.reply().code, 226)
        self.assert_no_more_replies(c)

    def test_stat_during_upload(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("STOR up/stat-upload.bin", 150, 125)
        d = get()
        d.sendall(self.medium[:300000])
        path = self.path("up", "stat-upload.bin")
        self.wait_for(lambda: os.path.exists(path) and os.path.getsize(path) >= 300000, 10)
        r = c.cmd("STAT", T.timeout(15))
        self.assertIn(r.code, (211, 213), "STAT during an upload: %s" % r)
        numbers = [int(n) for n in re.findall(r"\d+", " ".join(r.lines[1:] or r.lines))]
        self.assertIn(300000, numbers, "STAT should report the bytes received: %s" % r)
        d.sendall(self.medium[300000:])
        d.close()
        self.assertEqual(c.reply().code, 226)
        self.assertEqual(T.read(path), self.medium)
        self.assert_no_more_replies(c)

    def test_one_final_reply(self):
        c = self.ctl()
        # Success: exactly 150 + 226.
        retr_raw(c, "PASV", "small.txt")
        self.assert_no_more_replies(c)
        stor_raw(c, "PORT", "up/one.txt", b"x")
        self.assert_no_more_replies(c)
        # Failure before the data connection: one 550, no 150.
        get = c.data("EPSV")
        r = c.cmd("RETR nonexistent")
        get().close()
        self.assertEqual(r.code, 550, str(r))
        self.assert_no_more_replies(c)
        # Active connection that cannot be made: a 425 (after an optional 150).
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        port = ls.getsockname()[1]
        ls.close()  # nothing listens there now
        c.expect("PORT 127,0,0,1,%d,%d" % (port >> 8, port & 255), 200)
        r = c.cmd("RETR small.txt", T.timeout(30))
        if r.code in (125, 150):
            r = c.reply(T.timeout(30))
        self.assertIn(r.code, (425, 426), str(r))
        self.assert_no_more_replies(c)
        # Transfer command without PORT/PASV first.
        r = c.cmd("RETR small.txt")
        self.assertIn(r.code, (425, 503), str(r))
        self.assert_no_more_replies(c)

    def test_epsv_all(self):
        c = self.ctl()
        c.expect("EPSV ALL", 200)
        self.assertGreaterEqual(c.cmd("PASV").code, 500)
        self.assertGreaterEqual(c.cmd("PORT 127,0,0,1,200,10").code, 500)
        self.assertGreaterEqual(c.cmd("EPRT |1|127.0.0.1|51210|").code, 500)
        self.assertEqual(retr_raw(c, "EPSV", "small.txt"), b"0123456789abcdefghij\n")
        self.assertGreaterEqual(c.cmd("PASV").code, 500)

    def test_pasv_reply_address(self):
        c = self.ctl()
        r = c.expect("PASV", 227)
        self.assertRegex(r.lines[0], r"\(?127,0,0,1,\d+,\d+\)?")
        r = c.expect("EPSV", 229)
        self.assertRegex(r.lines[0], r"\(\|\|\|\d+\|\)")
        self.assertEqual(c.cmd("EPSV 1").code, 229)
        self.assertIn(c.cmd("EPSV 3").code, (522, 501))

    # Atomic replacement and partial uploads -------------------------------

    def wait_for(self, pred, limit):
        deadline = time.monotonic() + T.timeout(limit)
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.02)  # polling the file system; no event to wait on
        return False

    def temp_files(self, d):
        return [n for n in os.listdir(d) if n.startswith(".sockserv-ftpd.")]

    def replace_in_progress(self, breaker):
        old = T.random_bytes(2 * MIB)
        T.write(self.path("up", "target.bin"), old)
        new = T.random_bytes(2 * MIB)
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("PASV")
        c.expect("STOR up/target.bin", 150, 125)
        d = get()
        d.sendall(new[:MIB])
        self.wait_for(lambda: any(os.path.getsize(self.path("up", n)) > 0
                                  for n in self.temp_files(self.path("up"))), 10)
        # While the upload runs the old file is whole, on disk and over FTP.
        self.assertEqual(T.read(self.path("up", "target.bin")), old)
        f = self.ftp("EPSV")
        self.assertEqual(T.sha256(T.retr_bytes(f, "up/target.bin")), T.sha256(old))
        breaker(c, d)
        self.assertEqual(T.read(self.path("up", "target.bin")), old,
                         "a broken-off replacing upload destroyed the old file")
        self.assertEqual(self.temp_files(self.path("up")), [],
                         "temporary file left behind")
        # A complete replacing upload does replace it.
        stor_raw(c, "EPSV", "up/target.bin", new)
        self.assertEqual(T.read(self.path("up", "target.bin")), new)
        self.assertEqual(self.temp_files(self.path("up")), [])

    def test_replacing_upload_atomic_abor(self):
        def breaker(c, d):
            c.send("ABOR")
            self.assertEqual(c.reply(T.timeout(15)).code, 426)
            self.assertEqual(c.reply(T.timeout(15)).code, 226)
            d.close()
        self.replace_in_progress(breaker)

    def test_replacing_upload_atomic_reset(self):
        def breaker(c, d):
            T.reset_close(d)
            r = c.reply(T.timeout(15))
            self.assertIn(r.code, (426, 451), "upload broken by RST: %s" % r)
        self.replace_in_progress(breaker)

    def partial_upload(self, name):
        data = T.random_bytes(2 * MIB)
        c = self.ctl()
        c.expect("TYPE I", 200)
        get = c.data("EPSV")
        c.expect("STOR up/" + name, 150, 125)
        d = get()
        d.sendall(data[:MIB])
        path = self.path("up", name)
        ok = self.wait_for(lambda: os.path.exists(path) and os.path.getsize(path) >= MIB, 10)
        self.assertTrue(ok, "a new upload should be written under its own name as it arrives")
        T.reset_close(d)
        r = c.reply(T.timeout(15))
        self.assertIn(r.code, (426, 451), "upload broken by RST: %s" % r)
        self.assertTrue(os.path.exists(path), "partial data of a new upload was removed")
        have = T.read(path)
        self.assertEqual(have, data[:len(have)], "partial file is not a prefix of the data")
        self.assertGreater(len(have), 0)
        return c, data, len(have)

    def test_partial_new_upload_resumed_with_rest_stor(self):
        c, data, n = self.partial_upload("partial-rest.bin")
        self.assertEqual(c.cmd("SIZE up/partial-rest.bin").lines[0], "213 %d" % n)
        stor_raw(c, "EPSV", "up/partial-rest.bin", data[n:], rest=n)
        self.assertEqual(T.file_sha256(self.path("up", "partial-rest.bin")), T.sha256(data))

    def test_partial_new_upload_resumed_with_appe(self):
        c, data, n = self.partial_upload("partial-appe.bin")
        stor_raw(c, "PASV", "up/partial-appe.bin", data[n:], cmd="APPE")
        self.assertEqual(T.file_sha256(self.path("up", "partial-appe.bin")), T.sha256(data))


class ParallelTest(T.ServerTestCase):
    N = 20

    @classmethod
    def make_tree(cls, root):
        cls.data = T.random_bytes((4 if not T.SANITIZE else 1) * MIB)
        T.write(os.path.join(root, "shared.bin"), cls.data)

    def test_20_parallel_downloads(self):
        want = T.sha256(self.data)
        results = [None] * self.N
        modes = T.MODES

        def worker(i):
            try:
                f = T.ftp_connect(self.server, self.user, self.password, mode=modes[i % 4],
                                  tmo=T.timeout(60))
                try:
                    results[i] = T.sha256(T.retr_bytes(f, "shared.bin"))
                finally:
                    T.quit_quietly(f)
            except Exception as e:  # reported below
                results[i] = "error: %r" % (e,)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(120))
        self.assertFalse(any(t.is_alive() for t in threads), "downloads hung")
        bad = [(i, r) for i, r in enumerate(results) if r != want]
        self.assertEqual(bad, [], "downloads not byte-exact")
        self.assert_alive()

    def test_parallel_uploads(self):
        blobs = [T.random_bytes(256 * 1024) for _ in range(8)]
        errors = []

        def worker(i):
            try:
                f = T.ftp_connect(self.server, self.user, self.password,
                                  mode=T.MODES[i % 4])
                try:
                    T.stor_bytes(f, "u%d.bin" % i, blobs[i])
                finally:
                    T.quit_quietly(f)
            except Exception as e:
                errors.append((i, repr(e)))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(blobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T.timeout(60))
        self.assertEqual(errors, [])
        for i, b in enumerate(blobs):
            self.assertEqual(T.read(self.path("u%d.bin" % i)), b)


class DataTimeoutTest(T.ServerTestCase):
    server_args = ("--data-timeout", "1")

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "f.txt"), b"data\n")

    def test_pasv_never_connected(self):
        c = self.ctl()
        c.expect("PASV", 227)
        start = time.monotonic()
        r = c.cmd("RETR f.txt", T.timeout(15))
        if r.code in (125, 150):
            r = c.reply(T.timeout(15))
        self.assertEqual(r.code, 425, str(r))
        self.assertLess(time.monotonic() - start, T.timeout(10))
        self.assertEqual(c.cmd("NOOP").code, 200)

    def test_stalled_upload_times_out(self):
        c = self.ctl()
        get = c.data("EPSV")
        c.expect("STOR stalled.bin", 150, 125)
        d = get()
        d.sendall(b"some bytes")
        r = c.reply(T.timeout(15))  # then nothing more: the data timeout fires
        self.assertIn(r.code, (426, 451), str(r))
        d.close()
        self.assertEqual(c.cmd("NOOP").code, 200)


class PasvAddressTest(T.ServerTestCase):
    server_args = ("--pasv-address", "127.0.0.1")

    def test_227_announces_configured_address(self):
        c = self.ctl()
        r = c.expect("PASV", 227)
        self.assertRegex(r.lines[0], r"\b127,0,0,1,\d+,\d+\b")
        get = c.data("PASV")
        c.expect("NLST", 150, 125)
        T.recv_all(get())
        self.assertEqual(c.reply().code, 226)


class PasvPortRangeTest(T.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.lo, cls.hi = cls.free_range(8)
        cls.server_args = ("--pasv-ports", "%d-%d" % (cls.lo, cls.hi))
        super().setUpClass()

    @staticmethod
    def free_range(n):
        import random
        rnd = random.Random()
        for _ in range(200):
            lo = rnd.randrange(20000, 60000)
            socks = []
            try:
                for p in range(lo, lo + n):
                    s = socket.socket()
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
                return lo, lo + n - 1
            except OSError:
                continue
            finally:
                for s in socks:
                    s.close()
        raise unittest.SkipTest("no free port range")

    @classmethod
    def make_tree(cls, root):
        T.write(os.path.join(root, "f.txt"), b"data\n")

    def test_ports_in_range(self):
        c = self.ctl()
        c.expect("TYPE I", 200)
        for i in range(6):
            if i % 2:
                r = c.expect("EPSV", 229)
                port = int(re.search(r"\|\|\|(\d+)\|", r.lines[0]).group(1))
            else:
                r = c.expect("PASV", 227)
                n = [int(x) for x in re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)",
                                               r.lines[0]).groups()]
                port = n[4] * 256 + n[5]
            self.assertTrue(self.lo <= port <= self.hi, "%d not in %d-%d"
                            % (port, self.lo, self.hi))
            s = socket.create_connection(("127.0.0.1", port), timeout=T.timeout(10))
            c.expect("RETR f.txt", 150, 125)
            self.assertEqual(T.recv_all(s), b"data\n")
            self.assertEqual(c.reply().code, 226)


if __name__ == "__main__":
    T.main()
