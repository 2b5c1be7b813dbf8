"""Web test helpers: a real threaded HTTP server on loopback, and real images made with Pillow.

Fixtures (re-exported by conftest.py): `web_server` (127.0.0.1, ephemeral port), `web_server_factory`
(any loopback address) and `web_options` (ExtractOptions allowing 127.0.0.0/8, with short timeouts).
"""

from __future__ import annotations

import base64
import gzip
import io
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from imageextract.extract.types import ExtractOptions

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)

# Images --------------------------------------------------------------------------------------------


def make_image(fmt: str, size: tuple[int, int], mode: str = "RGB", **save: Any) -> bytes:
    """Real image bytes: `fmt` is a Pillow format name (PNG, JPEG, GIF, WEBP, AVIF, ICO, BMP, TIFF...)."""
    color: Any = {"RGB": (200, 30, 30), "RGBA": (10, 200, 10, 128), "L": 128, "LA": (128, 200), "CMYK": (0, 80, 80, 10)}.get(mode, 1)
    im = Image.new(mode, size, color)
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def palette_png(size: tuple[int, int], *, transparent: bool = True) -> bytes:
    im = Image.new("P", size, 1)
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    buf = io.BytesIO()
    if transparent:
        im.save(buf, "PNG", transparency=0)
    else:
        im.save(buf, "PNG")
    return buf.getvalue()


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


# Server --------------------------------------------------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    handler: Handler | None = None


class LocalServer:
    """A real HTTP/1.1 server in a background thread. Add routes with `add`/`redirect`/`handle`."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []  # method, path, headers, body
        self.stop = threading.Event()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append((self.command, self.path, dict(self.headers.items()), body))
                route = server.routes.get(self.path) or server.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    route = Route(404, b"not found", {"Content-Type": "text/plain"})
                if route.handler is not None:
                    route.handler(self)
                    return
                self.send_response(route.status)
                headers = {"Content-Length": str(len(route.body)), **route.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(route.body)

            do_GET = do_POST = do_HEAD = _dispatch

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hanging up mid-body (caps, timeouts) are expected here

        self.httpd = _Server((host, 0), _Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def add(self, path: str, body: bytes | str, content_type: str = "text/html; charset=utf-8", status: int = 200, **headers: str) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        hdrs = {"Content-Type": content_type} if content_type else {}
        hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
        self.routes[path] = Route(status, data, hdrs)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = Route(status, b"", {"Location": location})
        return self.url(path)

    def handle(self, path: str, handler: Handler) -> str:
        self.routes[path] = Route(handler=handler)
        return self.url(path)

    def paths(self) -> list[str]:
        return [p for _m, p, _h, _b in self.requests]

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def stall_handler(server: LocalServer, seconds: float = 5.0) -> Handler:
    """Send headers, then stall the body (until the server closes) — for read/total timeout tests."""

    def handler(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "text/html")
        req.send_header("Content-Length", "100000")
        req.end_headers()
        req.wfile.write(b"<html>")
        req.wfile.flush()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not server.stop.is_set():
            time.sleep(0.02)

    return handler


def trickle_handler(server: LocalServer, chunk: bytes, interval: float, count: int) -> Handler:
    """A chunked body that keeps arriving (each chunk inside the read timeout) — for the total timeout."""

    def handler(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "text/html")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        for _ in range(count):
            if server.stop.is_set():
                return
            try:
                req.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                req.wfile.flush()
            except OSError:
                return
            time.sleep(interval)
        req.wfile.write(b"0\r\n\r\n")

    return handler


def chunked_handler(body: bytes, content_type: str = "text/html", encoding: str | None = None) -> Handler:
    """A body without Content-Length (chunked), optionally gzip-encoded."""

    def handler(req: BaseHTTPRequestHandler) -> None:
        payload = gzip.compress(body) if encoding == "gzip" else body
        req.send_response(200)
        req.send_header("Content-Type", content_type)
        req.send_header("Transfer-Encoding", "chunked")
        if encoding:
            req.send_header("Content-Encoding", encoding)
        req.end_headers()
        try:
            for i in range(0, len(payload), 65536):
                part = payload[i : i + 65536]
                req.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            req.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up once its cap was reached

    return handler


def tls_contexts(hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a certificate for `hostname`, client context trusting only its test CA)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("ImageExtract test CA", ca_key, "ImageExtract test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(hostname, key, "ImageExtract test CA", ca_key, ca=False)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        with open(cert_path, "wb") as fh:
            fh.write(leaf.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return server, client


# Fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def web_server_factory() -> Iterator[Callable[..., LocalServer]]:
    servers: list[LocalServer] = []

    def make(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> LocalServer:
        s = LocalServer(host, tls)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def web_server(web_server_factory: Callable[..., LocalServer]) -> LocalServer:
    return web_server_factory()


def options(**overrides: Any) -> ExtractOptions:
    values: dict[str, Any] = {
        "ssrf_allow": LOOPBACK,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "total_timeout": 5.0,
        "sandbox": False,
    }
    values.update(overrides)
    return ExtractOptions(**values)


@pytest.fixture
def web_options() -> ExtractOptions:
    return options()


# The fixture site: one page with every construct the web discovery knows ------------------------------

PIXEL_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def build_fixture_site(server: LocalServer) -> str:
    """Serve /site/index.html and everything it references; return the page URL."""
    img = server.add
    img("/site/plain.png", make_image("PNG", (101, 51)), "image/png")
    img("/img/small.jpg", make_image("JPEG", (50, 40)), "image/jpeg")
    img("/img/large.jpg", make_image("JPEG", (100, 80)), "image/jpeg")
    img("/img/w400.webp", make_image("WEBP", (40, 10)), "image/webp")
    img("/img/w800.webp", make_image("WEBP", (80, 20), "RGBA"), "image/webp")
    img("/img/pic.avif", make_image("AVIF", (32, 16)), "image/avif")
    img("/img/pic@2x.avif", make_image("AVIF", (64, 32)), "image/avif")
    img("/img/pic.webp", make_image("WEBP", (32, 16)), "image/webp")
    img("/img/pic.jpg", make_image("JPEG", (32, 16)), "image/jpeg")
    img("/img/lazy.png", make_image("PNG", (33, 22), "RGBA"), "image/png")
    img("/img/lazyset-1x.jpg", make_image("JPEG", (22, 11), "L"), "image/jpeg")
    img("/img/lazyset-2x.jpg", make_image("JPEG", (44, 22), "L"), "image/jpeg")
    img("/img/lazy2.gif", make_image("GIF", (12, 12), "P"), "image/gif")
    img("/img/orig.webp", make_image("WEBP", (13, 13)), "image/webp")
    img("/img/ls.png", make_image("PNG", (14, 14), "L"), "image/png")
    img("/img/native-lazy.png", make_image("PNG", (15, 15)), "image/png")
    img("/img/noscript-only.png", make_image("PNG", (16, 9)), "image/png")
    img("/img/inline-bg.jpg", make_image("JPEG", (16, 16)), "image/jpeg")
    img("/img/style-bg.png", make_image("PNG", (17, 17)), "image/png")
    img("/site/img/print-bg.gif", make_image("GIF", (18, 18), "P"), "image/gif")
    img("/img/css-bg.png", make_image("PNG", (19, 19)), "image/png")
    img("/img/set-1x.png", make_image("PNG", (20, 20)), "image/png")
    img("/img/set-2x.png", make_image("PNG", (40, 40)), "image/png")
    img("/css/imp-bg.png", make_image("PNG", (21, 21)), "image/png")
    img("/img/og.jpg", make_image("JPEG", (120, 63)), "image/jpeg")
    img("/img/og-secure.png", make_image("PNG", (22, 22)), "image/png")
    img("/img/twitter.png", make_image("PNG", (23, 23)), "image/png")
    img("/img/itemprop.png", make_image("PNG", (24, 24)), "image/png")
    img("/img/favicon.ico", make_image("ICO", (16, 16), "RGBA"), "image/x-icon")
    img("/img/touch.png", make_image("PNG", (25, 25)), "image/png")
    img("/img/image-src.jpg", make_image("JPEG", (26, 26)), "image/jpeg")
    img("/img/poster.jpg", make_image("JPEG", (27, 27)), "image/jpeg")
    img("/img/cmyk.jpg", make_image("JPEG", (28, 28), "CMYK"), "image/jpeg")
    img("/img/palette.png", palette_png((29, 29)), "image/png")
    img("/img/broken.png", "<html>not an image</html>", "image/png")
    img("/img/tiny.png", make_image("PNG", (2, 2)), "image/png")
    img("/img/template.png", make_image("PNG", (30, 30)), "image/png")
    img("/css/site.css", '@import "imported.css";\nbody { background: #fff url(../img/css-bg.png) no-repeat; }\n'
        '.x { background-image: image-set("../img/set-1x.png" 1x, "../img/set-2x.png" 2x); }\n'
        "/* url(../img/commented-out.png) */ .f { font-family: x; src: url(../img/not-background.png); }\n", "text/css")
    img("/css/imported.css", ".y { background: url(imp-bg.png) }", "text/css; charset=utf-8")
    data_png = data_uri(make_image("PNG", (10, 10), "RGBA"), "image/png")
    page = f"""<!doctype html>
<html><head>
<meta charset="utf-8">
<base href="/site/">
<title>Fixture</title>
<meta property="og:image" content="/img/og.jpg">
<meta property="og:image:secure_url" content="/img/og-secure.png">
<meta property="og:image:alt" content="Open graph alt">
<meta name="twitter:image" content="/img/twitter.png">
<meta itemprop="image" content="/img/itemprop.png">
<link rel="icon" href="/img/favicon.ico" type="image/x-icon">
<link rel="apple-touch-icon" href="/img/touch.png">
<link rel="image_src" href="/img/image-src.jpg">
<link rel="stylesheet" href="/css/site.css">
<link rel="stylesheet" href="http://other.invalid/cross-origin.css">
<style>
  .hero {{ background-image: url("../img/style-bg.png"); }}
  @media print {{ .p {{ background: url(img/print-bg.gif) }} }}
</style>
</head><body>
<img src="plain.png" alt="Plain  PNG" title="plain title">
<img src="/img/small.jpg" srcset="/img/small.jpg 1x, /img/large.jpg 2x" alt="Retina">
<img src="/img/w400.webp" srcset="/img/w400.webp 400w, /img/w800.webp 800w, {PIXEL_GIF} 10w" sizes="50vw" alt="Widths">
<picture>
  <source type="image/avif" media="(min-width: 800px)" srcset="/img/pic.avif 1x, /img/pic@2x.avif 2x">
  <source type="image/webp" srcset="/img/pic.webp">
  <img src="/img/pic.jpg" alt="Picture alt">
</picture>
<img src="{PIXEL_GIF}" data-src="/img/lazy.png" class="lazy" alt="Lazy one">
<noscript><img src="/img/lazy.png" alt="Lazy noscript" title="from noscript"></noscript>
<img data-srcset="/img/lazyset-1x.jpg 1x, /img/lazyset-2x.jpg 2x" alt="Lazy set">
<img data-lazy-src="/img/lazy2.gif">
<img data-original="/img/orig.webp">
<img data-lazy-srcset="/img/ls.png 100w">
<img src="/img/native-lazy.png" loading="lazy" alt="Native lazy">
<noscript><img src="/img/noscript-only.png" alt="Only in noscript"></noscript>
<div style="color: red; background-image: url('/img/inline-bg.jpg')" title="div title"></div>
<div class="hero"></div>
<video poster="/img/poster.jpg" aria-label="Clip"></video>
<svg width="40" height="30" viewBox="0 0 40 30" aria-label="Inline icon"><title>Icon title</title><rect width="40" height="30" fill="red"></rect></svg>
<img src="{data_png}" alt="Data PNG">
<img src="/img/cmyk.jpg" alt="CMYK">
<img src="/img/palette.png" alt="Palette">
<img src="/img/missing.png" alt="Missing">
<img src="/img/broken.png">
<img src="http://169.254.169.254/latest/meta-data/x.png" alt="Metadata">
<img src="/img/tiny.png">
<img src="plain.png" aria-label="Plain again">
<template><img src="/img/template.png"></template>
<img src=""><img src="#top"><img src="javascript:alert(1)">
</body></html>"""
    return server.add("/site/index.html", page)
