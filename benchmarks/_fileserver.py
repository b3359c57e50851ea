"""A small, fast HTTP/1.1 file server for the throughput and sigkill benchmarks (its own process).

    python benchmarks/_fileserver.py DIRECTORY [--log FILE] [--rate BYTES_PER_SECOND]

Serves the files of DIRECTORY on 127.0.0.1 (a free port, printed as ``PORT <n>`` on stdout) with
``Range`` support, using ``socket.sendfile`` (``os.sendfile``) so that the server is not what limits a loopback
transfer. Stops on SIGTERM or when its standard input closes (the benchmark's process died).
Not a general-purpose server: no directory listings, no keep-alive limits, GET and HEAD only.

``--log FILE`` appends two JSON lines per GET: as its body starts (the file, the first byte
and the number of bytes asked for, ``first``: the time) and once the body is sent or abandoned
(the file, the first byte, ``sent``: the bytes handed to the socket, ``last``: the time); times
are ``time.monotonic()``, CLOCK_MONOTONIC, the same clock in every process of the machine. ``--rate`` paces every body to about that many bytes per second
(in 1/50 s slices), so that a download lasts long enough to be interrupted at a known point.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time
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
            first = time.monotonic()
            self._log({"file": name, "start": start, "asked": end - start + 1, "first": first})
            handle.seek(start)
            try:
                self._send_body(handle, start, end - start + 1)
            except OSError:
                self.close_connection = True  # the client went away (aria2 abandons size probes)
            self._log({"file": name, "start": start, "sent": handle.tell() - start, "last": time.monotonic()})

    def _send_body(self, handle: object, start: int, length: int) -> None:
        """socket.sendfile (os.sendfile, waiting out EAGAIN), paced if the server has a rate.
        The file position follows what was sent, an error included (the log's byte count)."""
        rate = self.server.rate  # type: ignore[attr-defined]
        if not rate:
            self.connection.sendfile(handle, start, length)  # type: ignore[arg-type]
            return
        step, began, offset = max(1, int(rate / 50)), time.monotonic(), start
        while offset < start + length:
            count = min(step, start + length - offset)
            self.connection.sendfile(handle, offset, count)  # type: ignore[arg-type]
            offset += count
            if offset == start + length:
                return
            ahead = began + (offset - start) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def _log(self, entry: dict[str, object]) -> None:
        log = self.server.log  # type: ignore[attr-defined]
        if log is not None:
            with self.server.log_lock:  # type: ignore[attr-defined]
                log.write(json.dumps(entry) + "\n")
                log.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:  # no reverse DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="_fileserver.py")
    parser.add_argument("directory")
    parser.add_argument("--log", default=None)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    server.root = os.path.abspath(args.directory)  # type: ignore[attr-defined]
    server.rate = args.rate  # type: ignore[attr-defined]
    server.log = open(args.log, "a") if args.log else None  # type: ignore[attr-defined]
    server.log_lock = threading.Lock()  # type: ignore[attr-defined]
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
