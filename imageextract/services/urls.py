"""URL validation shared by projects, jobs and webhooks."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from imageextract.context import Context
from imageextract.errors import ValidationError
from imageextract.extract.ssrf import check_url
from imageextract.extract.types import ExtractError

MAX_URL = 2048


def validate_http_url(value: Any, *, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} must be an http(s) URL", details={"field": field})
    value = value.strip()
    if len(value) > MAX_URL:
        raise ValidationError(f"{field} is longer than {MAX_URL} characters", details={"field": field})
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{field} must be an http(s) URL", details={"field": field, "url": value})
    try:
        port = parts.port  # raises for a port outside 0-65535 or not a number
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValidationError(f"{field} has an invalid port (1 to 65535)", details={"field": field, "url": value})
    return value


async def check_public_url(ctx: Context, url: str, *, field: str) -> None:
    """The SSRF guard used by extraction, applied up front: refuse URLs that reach non-public addresses."""

    try:
        await check_url(url, ctx.settings.extract_options())
    except ExtractError as exc:
        if exc.code != "ssrf_blocked":
            # A name that does not resolve today is not a forbidden address; fetching it will fail later
            # with its own error, and every fetch re-checks the address it connects to.
            return
        raise ValidationError(
            f"{field} is not allowed: {exc.message}", details={"field": field, "url": url, "reason": exc.code},
            code="ssrf_blocked",
        ) from exc
