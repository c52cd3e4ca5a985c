"""A small HTTP file server on 127.0.0.1 for download tests (Range support,
scripted failures, request log).  Usable in-process or as a subprocess:

    python tests/_mt3_http.py DIR [--cut N] [--slow]   # prints the port, serves DIR
"""
import argparse
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serve ``files`` (url path -> bytes).  Behaviour knobs:

    cut_first: the first N GET responses of each path send only half of the
        requested bytes, then drop the connection (Content-Length promises all).
    status: force this HTTP status for every request (e.g. 500, 404).
    slow: seconds to sleep between 64 KiB blocks.
    no_range: ignore Range headers (always 200 with the full body).
    redirects: url path -> Location answered with a 302.
    """

    def __init__(self, files=None, cut_first=0, status=None, slow=0.0, no_range=False, redirects=None):
        self.files = dict(files or {})
        self.redirects = dict(redirects or {})  # url path -> Location of a 302
        self.cut_first = cut_first
        self.status = status
        self.slow = slow
        self.no_range = no_range
        self.log = []  # (method, path, range header or None, status)
        self._cuts = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # silence
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests_for(self, path):
        with self._lock:
            return [e for e in self.log if e[1] == path]

    def _handle(self, h):
        rng = h.headers.get("Range")
        path = h.path
        if self.status is not None:
            self._record(h, path, rng, self.status)
            body = b"forced error"
            h.send_response(self.status)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        if path in self.redirects:
            self._record(h, path, rng, 302)
            h.send_response(302)
            h.send_header("Location", self.redirects[path])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data = self.files.get(path)
        if data is None:
            self._record(h, path, rng, 404)
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start = 0
        status = 200
        if rng and not self.no_range:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self._record(h, path, rng, 416)
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status = 206
        body = data[start:]
        with self._lock:
            n = self._cuts.get(path, 0)
            cut = n < self.cut_first
            self._cuts[path] = n + 1
        self._record(h, path, rng, status)
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        to_send = body[: len(body) // 2] if cut else body
        try:
            for i in range(0, len(to_send), 65536):
                h.wfile.write(to_send[i:i + 65536])
                h.wfile.flush()
                if self.slow:
                    time.sleep(self.slow)
        except (BrokenPipeError, ConnectionResetError):
            return
        if cut:
            h.close_connection = True
            try:
                import socket

                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _record(self, h, path, rng, status):
        with self._lock:
            self.log.append(("GET", path, rng, status))


def _main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--slow", type=float, default=0.0)
    args = ap.parse_args()
    files = {}
    for dirpath, _, names in os.walk(args.root):
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, args.root).replace(os.sep, "/")
            with open(full, "rb") as f:
                files["/" + rel] = f.read()
    with FileServer(files, slow=args.slow) as srv:
        print(srv.port, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(_main())
