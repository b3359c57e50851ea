"""A small, fast HTTP/1.1 file server for the throughput benchmark (run as its own process).

    python benchmarks/_fileserver.py DIRECTORY

Serves the files of DIRECTORY on 127.0.0.1 (a free port, printed as ``PORT <n>`` on stdout) with
``Range`` support, using ``socket.sendfile`` (``os.sendfile``) so that the server is not what limits a loopback
transfer. Stops on SIGTERM or when its standard input closes (the benchmark's process died).
Not a general-purpose server: no directory listings, no keep-alive limits, GET and HEAD only.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import socketserver
import sys
import threading
import urllib.parse

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        root = self.server.root  # type: ignore[attr-defined]
        name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = os.path.join(root, os.path.basename(name))
        try:
            handle = open(path, "rb")
        except OSError:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            start, end, code = 0, size - 1, 200
            match = _RANGE.match(self.headers.get("Range", "").strip())
            if match and (match.group(1) or match.group(2)):
                if match.group(1):
                    start = int(match.group(1))
                    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                else:
                    start = max(0, size - int(match.group(2)))
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = 206
            self.send_response(code)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if code == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not body:
                return
            self.wfile.flush()
            try:  # socket.sendfile: os.sendfile, waiting out EAGAIN on a socket with a timeout
                self.connection.sendfile(handle, start, end - start + 1)
            except OSError:
                self.close_connection = True  # the client went away (aria2 abandons size probes)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:  # no reverse DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


def main() -> None:
    server = Server(("127.0.0.1", 0), Handler)
    server.root = os.path.abspath(sys.argv[1])  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())

    def watch_stdin() -> None:  # the parent went away: stop
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


if __name__ == "__main__":
    main()
