"""A real HTTP server on loopback serving pages and images for pipeline tests.

Routes:
  /page/<n>            an HTML page with n distinct PNG images (alt text "image <i>")
  /img/<i>.png         a PNG whose size depends on i (i+10 by i+5 pixels)
  /slow/<secs>/<n>     like /page/<n>, after sleeping <secs> seconds
  /flaky/<key>/<f>/<n> 503 for the first <f> requests of <key>, then like /page/<n>
  /status/<code>       an empty response with that status code
  /broken/<n>          like /page/<n>, plus one image whose URL answers 404
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def png_bytes(i: int) -> bytes:
    img = Image.new("RGB", (i + 10, i + 5), (i * 7 % 256, 40, 200))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def page_html(n: int) -> bytes:
    tags = "\n".join(f'<img src="/img/{i}.png" alt="image {i}">' for i in range(n))
    return f"<!doctype html><html><head><title>t</title></head><body>{tags}</body></html>".encode()


_FLAKY: dict[str, int] = {}  # /flaky/<key>/<failures>/<n>: 503 for the first <failures> hits of <key>
_FLAKY_LOCK = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if m := re.fullmatch(r"/page/(\d+)", self.path):
            self._send(200, page_html(int(m[1])), "text/html; charset=utf-8")
        elif m := re.fullmatch(r"/img/(\d+)\.png", self.path):
            self._send(200, png_bytes(int(m[1])), "image/png")
        elif m := re.fullmatch(r"/slow/([\d.]+)/(\d+)", self.path):
            time.sleep(float(m[1]))
            self._send(200, page_html(int(m[2])), "text/html; charset=utf-8")
        elif m := re.fullmatch(r"/flaky/(\w+)/(\d+)/(\d+)", self.path):
            with _FLAKY_LOCK:
                seen = _FLAKY[m[1]] = _FLAKY.get(m[1], 0) + 1
            if seen <= int(m[2]):
                self._send(503, b"try again", "text/plain")
            else:
                self._send(200, page_html(int(m[3])), "text/html; charset=utf-8")
        elif m := re.fullmatch(r"/broken/(\d+)", self.path):
            html = page_html(int(m[1])).replace(b"</body>", b'<img src="/status/404" alt="gone"></body>')
            self._send(200, html, "text/html; charset=utf-8")
        elif m := re.fullmatch(r"/status/(\d+)", self.path):
            self._send(int(m[1]), b"", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")


@contextmanager
def serve_pages() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def base_url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
