"""Structured logs: one JSON object per line, a request id on every line, secrets never written.

- `configure(level)` installs the JSON formatter on the root logger (uvicorn, Dramatiq and our loggers all
  propagate there) and the redaction filter.
- `RequestIdMiddleware` gives every HTTP request and websocket an id (the caller's `X-Request-Id` when it is
  a sane token, else a new one), echoes it in the response, and writes one access line per request.
- Work done for a request or a task carries the id through `request_id` (a ContextVar); `AsyncBridge`
  hands it from Dramatiq's threads to the event loop. Lines outside any request carry the process' id.
- Redaction: API keys (`ie_live_...`, kept as their 12-character prefix), webhook secrets (`whsec_...`),
  bearer tokens, session cookies and password fields are masked in every message and traceback.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
PROCESS_ID = f"proc-{os.getpid()}"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_SECRETS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"(ie_live_[A-Za-z0-9]{4})[A-Za-z0-9_\-]+"), r"\1…[redacted]"),
    (re.compile(r"whsec_[A-Za-z0-9+/=_\-]+"), "whsec_[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(ie_session=)[^;\s\"',]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(\"?(?:password|new_password|current_password|secret|token)\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,&}]+)"),
     r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def new_id(prefix: str = "req") -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or request_id.get() or PROCESS_ID,
            "message": redact(record.getMessage()),
        }
        for key in ("method", "path", "status", "duration_ms", "client"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str | int = "INFO") -> None:
    """JSON lines on stderr for every logger in the process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_imageextract", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._imageextract = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # RequestIdMiddleware writes the access lines
    logging.getLogger("tortoise").setLevel(logging.WARNING)  # query logs would carry bound values


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
access_log = logging.getLogger("imageextract.access")


class RequestIdMiddleware:
    """Pure ASGI (so streaming responses and websockets pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _SANE_ID.match(incoming) else new_id()
        token = request_id.set(rid)
        started = time.monotonic()
        status: list[int] = []

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "websocket.accept":
                status.append(101)
            elif message["type"] == "websocket.close" and not status:
                status.append(403)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope.get("path") != "/healthz":
                client = scope.get("client")
                access_log.info(
                    "%s %s %s", scope.get("method", "WS"), scope.get("path"), status[0] if status else 500,
                    extra={"method": scope.get("method", "WEBSOCKET"), "path": scope.get("path"),
                           "status": status[0] if status else 500,
                           "duration_ms": int((time.monotonic() - started) * 1000),
                           "client": client[0] if client else None},
                )
            request_id.reset(token)
