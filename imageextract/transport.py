"""Request plumbing shared by both doors (GraphQL over HTTP and websockets, and the REST routes).

One place decides who is calling and from where: the client IP, the request's own origin (scheme-normalised,
so a websocket's `ws://host` compares equal to the browser's `http://host` Origin), the session and guest
cookies, and the cross-site check for cookie-authenticated unsafe requests. Adapters build their service
`Context` here and set cookies here; nothing in this module knows about REST routes or GraphQL types.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from imageextract.context import Context
from imageextract.errors import DomainError
from imageextract.services import auth

SESSION_COOKIE = auth.SESSION_COOKIE
GUEST_COOKIE = auth.GUEST_COOKIE
GUEST_COOKIE_MAX_AGE = 30 * 24 * 3600

# A websocket URL's scheme names the same origin as its HTTP counterpart (RFC 6455 section 4.1: the Origin a
# browser sends for a websocket is the page's http(s) origin).
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def client_ip(conn: HTTPConnection) -> str | None:
    return conn.client.host if conn.client else None


def request_origin(conn: HTTPConnection) -> str:
    """The request's own origin as a browser would write it: `http(s)://host[:port]`, also for websockets."""
    scheme = _HTTP_SCHEME.get(conn.url.scheme, conn.url.scheme)
    return f"{scheme}://{conn.url.netloc}"


def is_secure(conn: HTTPConnection) -> bool:
    """Whether cookies set on this connection get the Secure flag (setting, else the request's scheme)."""
    configured = conn.app.state.runtime.settings.secure_cookies
    return bool(configured) if configured is not None else request_origin(conn).startswith("https:")


def _method(conn: HTTPConnection) -> str:
    # A websocket handshake is a GET that browsers send cross-site with cookies: check it like a POST.
    return conn.method if isinstance(conn, Request) else "WEBSOCKET"


async def build_context(conn: HTTPConnection, *, check_csrf: bool = True, keep_auth_error: bool = True) -> Context:
    """Authenticate the caller (bearer key or session cookie) and build the service context.

    With `keep_auth_error` (both doors) a refused credential does not raise here: it is stored on the context
    and raised by the service first thing (`Context.check_credentials` / `require_principal`), so both doors
    fail in the same order, and sign-up or login with a stale cookie still work.
    """
    runtime = conn.app.state.runtime
    ctx = Context(
        settings=runtime.settings, client_ip=client_ip(conn), guest_token=conn.cookies.get(GUEST_COOKIE),
        base_url=request_origin(conn), services=runtime, enqueue=runtime.enqueue,
    )
    try:
        ctx.principal = await auth.authenticate(
            authorization=conn.headers.get("authorization") or _api_key_alias(conn),
            session_token=conn.cookies.get(SESSION_COOKIE),
        )
        if ctx.principal is not None and ctx.principal.method == "session" and check_csrf:
            auth.check_origin(
                method=_method(conn), origin=conn.headers.get("origin"), referer=conn.headers.get("referer"),
                sec_fetch_site=conn.headers.get("sec-fetch-site"), host_origin=request_origin(conn),
                allowed=runtime.settings.allowed_origins,
            )
    except DomainError as exc:
        if not keep_auth_error:
            raise
        ctx.principal = None
        ctx.auth_error = exc
    return ctx


def _api_key_alias(conn: HTTPConnection) -> str | None:
    """`X-API-Key: ie_live_...` is accepted as an alias of `Authorization: Bearer ie_live_...`."""
    key = conn.headers.get("x-api-key")
    return f"Bearer {key.strip()}" if key and key.strip() else None


def apply_cookies(conn: HTTPConnection, response: Response | None, ctx: Context) -> None:
    """Set the cookies a service call asked for (a guest identity minted by `guests.ensure_guest`)."""
    if response is None:
        return
    if ctx.minted_guest_token:
        response.set_cookie(GUEST_COOKIE, ctx.minted_guest_token, max_age=GUEST_COOKIE_MAX_AGE, httponly=True,
                            secure=is_secure(conn), samesite="lax", path="/")


def set_session_cookie(conn: HTTPConnection, response: Response, result: Any) -> None:
    max_age = int((result.expires_at - result.session.created_at).total_seconds())
    response.set_cookie(SESSION_COOKIE, result.token, max_age=max_age, httponly=True, secure=is_secure(conn),
                        samesite="lax", path="/")


def clear_session_cookie(conn: HTTPConnection, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_secure(conn))
