"""A loopback stand-in for the provider's checkout-session API, spoken to by the real `dodopayments` SDK.

`POST /checkouts` (what `AsyncDodoPayments.checkout_sessions.create` sends, see the SDK's
resources/checkout_sessions.py) takes a JSON body with `product_cart`, `customer`, `metadata`, `return_url`
and answers `{"session_id", "checkout_url"}` (types/checkout_session_response.py). `mode` scripts failures:
"ok", "error" (HTTP 500 with the provider's error body), "slow" (holds the request `delay` seconds).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "dodo_test_key_123"


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeDodo:
    server: ThreadingHTTPServer
    mode: str = "ok"
    delay: float = 5.0
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def checkout_calls(self, account_id: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == "/checkouts"
                    and isinstance(c.body, dict) and (c.body.get("metadata") or {}).get("account_id") == account_id]


def _handler(fake: FakeDodo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, payload: Any) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with fake.lock:
                fake.calls.append(Call(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                mode = fake.mode
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self._send(401, {"code": "UNAUTHORIZED", "message": "Invalid API key"})
                return
            if self.path != "/checkouts":
                self._send(404, {"code": "NOT_FOUND", "message": "No such route"})
                return
            if mode == "error":
                self._send(500, {"code": "INTERNAL_SERVER_ERROR", "message": "Something went wrong"})
                return
            if mode == "slow":
                time.sleep(fake.delay)
            cart = body.get("product_cart") if isinstance(body, dict) else None
            if not isinstance(cart, list) or not cart or not all(
                    isinstance(i, dict) and isinstance(i.get("product_id"), str) and isinstance(i.get("quantity"), int)
                    for i in cart):
                self._send(422, {"code": "INVALID_REQUEST", "message": "product_cart is required"})
                return
            session_id = f"cks_{secrets.token_hex(8)}"
            self._send(200, {"session_id": session_id,
                             "checkout_url": f"https://test.checkout.example/session/{session_id}"})

    return Handler


@contextmanager
def run_fake_dodo() -> Iterator[FakeDodo]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    fake = FakeDodo(server=server)
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
