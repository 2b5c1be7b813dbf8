"""Browser sign-up, login and logout (sessions backed by a server-side row)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from imageextract.rest_compat.common import build_context, iso, json_body
from imageextract.services import auth
from imageextract.transport import clear_session_cookie, set_session_cookie


def _session_response(request: Request, result: auth.LoginResult, status: int = 200) -> JSONResponse:
    response = JSONResponse(
        {
            "user": {"id": result.user.id, "email": result.user.email, "name": result.user.name},
            "account": {"id": result.account.id, "name": result.account.name, "slug": result.account.slug},
            "expires_at": iso(result.expires_at),
        },
        status_code=status,
    )
    set_session_cookie(request, response, result)
    return response


async def signup(request: Request) -> JSONResponse:
    """Create an account with its owner and start a browser session (sets the session cookie)."""
    ctx = await build_context(request, check_csrf=False)
    body = await json_body(request, allowed={"email", "password", "name"})
    result = await auth.sign_up(ctx, email=body.get("email"), password=body.get("password"), name=body.get("name"),
                                user_agent=request.headers.get("user-agent", ""))
    return _session_response(request, result, status=201)


async def login(request: Request) -> JSONResponse:
    """Start a browser session from email and password (sets the session cookie)."""
    ctx = await build_context(request, check_csrf=False)
    body = await json_body(request, allowed={"email", "password"})
    result = await auth.login(
        ctx, email=str(body.get("email") or ""), password=str(body.get("password") or ""),
        user_agent=request.headers.get("user-agent", ""),
    )
    return _session_response(request, result)


async def logout(request: Request) -> JSONResponse:
    """End the current browser session: revoke it and clear the session cookie."""
    ctx = await build_context(request)
    revoked = await auth.logout(ctx)
    response = JSONResponse({"logged_out": revoked})
    clear_session_cookie(request, response)
    return response


routes = [
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
]
