"""Python's socketserver servers, for side-by-side comparison.

    py_server.py udp|threading-udp|tcp|threading-tcp ADDRESS
"""
import signal
import socketserver
import sys
import threading


class UpperStream(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())


class UpperDatagram(socketserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper())


KINDS = {
    "udp": (socketserver.UDPServer, UpperDatagram),
    "threading-udp": (socketserver.ThreadingUDPServer, UpperDatagram),
    "tcp": (socketserver.TCPServer, UpperStream),
    "threading-tcp": (socketserver.ThreadingTCPServer, UpperStream),
}


def main():
    cls, handler = KINDS[sys.argv[1]]
    host, port = sys.argv[2].rsplit(":", 1)
    cls.allow_reuse_address = True
    cls.request_queue_size = 1024
    cls.daemon_threads = True
    server = cls((host, int(port)), handler)
    print("listening on %s:%d" % server.server_address[:2], flush=True)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    server.serve_forever(poll_interval=0.5)
    server.server_close()


if __name__ == "__main__":
    main()
