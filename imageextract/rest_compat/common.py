"""Request parsing shared by the REST handlers: JSON bodies, query parameters (the context comes from
`imageextract.transport`, shared with GraphQL)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from starlette.requests import HTTPConnection, Request

from imageextract.context import Context
from imageextract.errors import PayloadTooLarge, ValidationError
from imageextract.transport import build_context, client_ip, request_origin

__all__ = ["authed_context", "build_context", "read_body", "client_ip", "int_param", "iso", "json_body", "request_origin"]

MAX_JSON_BODY = 1024 * 1024


async def authed_context(conn: HTTPConnection) -> Context:
    ctx = await build_context(conn)
    ctx.require_principal()
    return ctx


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 past `max_bytes` (declared or counted; nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge("Request body too large", details={"max_bytes": max_bytes})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge("Request body too large", details={"max_bytes": max_bytes})
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, *, allowed: Iterable[str] | None = None,
                    optional: bool = False) -> dict[str, Any]:
    """The request's JSON object. 413 past MAX_JSON_BODY (read no further than that), 400 when it is not a
    JSON object or carries a field outside `allowed` (a typo must not be silently ignored)."""
    raw = await read_body(request, MAX_JSON_BODY)
    if not raw.strip():
        if optional:
            return {}
        raise ValidationError("A JSON object body is required")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("Request body must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValidationError(f"Unknown fields: {', '.join(unknown)}",
                                  details={"fields": unknown, "allowed": sorted(allowed)})
    return data


def int_param(request: Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer", details={"field": name}) from None
    if not lo <= value <= hi:
        raise ValidationError(f"{name} must be between {lo} and {hi}", details={"field": name})
    return value


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
