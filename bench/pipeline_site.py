"""The loopback site the pipeline benchmark extracts from, in a process of its own (so serving pages costs
neither the service nor the bare-engine anchor any CPU of theirs).

    python -m bench.pipeline_site [PORT]  # prints "PORT <n>" once listening (PORT 0 or none: a free one),
                                          # serves until SIGTERM

Every connection sets TCP_NODELAY: `http.server` writes the headers and the body in two sends, and on a
reused connection Nagle's algorithm held the second until the client's delayed ACK (about 40 ms late).

Routes (the pages and images are the ones `tests/pages.py` serves, built once and cached):
  /page/<n>           an HTML page with n distinct PNG images
  /img/<i>.png        a PNG of (i+10) x (i+5) pixels
  /gate/<key>/<n>     like /page/<n>, but held until /release/<key> (at most GATE_SECONDS)
  /release/<key>      lets every request waiting on <key> through (and later ones at once)
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GATE_SECONDS = 150.0

_gates: dict[str, threading.Event] = {}
_gates_lock = threading.Lock()


def _gate(key: str) -> threading.Event:
    with _gates_lock:
        return _gates.setdefault(key, threading.Event())


@lru_cache(maxsize=1024)
def _page(n: int) -> bytes:
    from tests.pages import page_html

    return page_html(n)


@lru_cache(maxsize=1024)
def _png(i: int) -> bytes:
    from tests.pages import png_bytes

    return png_bytes(i)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen() backlog: read when the server is created


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # socketserver.StreamRequestHandler.setup sets TCP_NODELAY per connection

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        html = "text/html; charset=utf-8"
        path = self.path.split("?", 1)[0]  # /page/1?v=2: distinct URLs of the same page (bulk jobs)
        if m := re.fullmatch(r"/page/(\d+)", path):
            self._send(200, _page(int(m[1])), html)
        elif m := re.fullmatch(r"/img/(\d+)\.png", path):
            self._send(200, _png(int(m[1])), "image/png")
        elif m := re.fullmatch(r"/gate/([\w-]+)/(\d+)", path):
            _gate(m[1]).wait(GATE_SECONDS)
            self._send(200, _page(int(m[2])), html)
        elif m := re.fullmatch(r"/release/([\w-]+)", path):
            _gate(m[1]).set()
            self._send(200, b"released", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pages, when run from elsewhere
    server = _Server(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), _Handler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
