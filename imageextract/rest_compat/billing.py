"""/api/billing/checkout (302 to the provider's checkout page) and /api/webhooks/payment (signed events)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from imageextract.context import Context
from imageextract.rest_compat.common import build_context, read_body
from imageextract.services import billing

MAX_WEBHOOK_BODY = 1024 * 1024


def _browser_to_login(request: Request, ctx: Context) -> bool:
    """A browser navigation without a usable session (none, or expired) and without an API key should land on
    the login page; an API caller gets the 401 envelope."""
    sent_key = request.headers.get("authorization") or request.headers.get("x-api-key")
    return ctx.principal is None and not sent_key and "text/html" in request.headers.get("accept", "")


async def checkout(request: Request) -> Response:
    """Initiate a Dodo Payments checkout (?plan=starter|pro|scale|agency); redirects to the payment page."""
    ctx = await build_context(request, keep_auth_error=True)
    if _browser_to_login(request, ctx):
        return RedirectResponse("/login", status_code=302)
    session = await billing.start_checkout(ctx, plan=request.query_params.get("plan"))
    return RedirectResponse(session.url, status_code=302)


async def payment_webhook(request: Request) -> JSONResponse:
    """Dodo Payments webhook endpoint: verifies the signature, records the event once, applies it."""
    body = await read_body(request, MAX_WEBHOOK_BODY)
    headers = {k: request.headers.get(k, "") for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    await billing.handle_webhook(request.app.state.runtime.settings, body=body, headers=headers)
    return JSONResponse({"received": True})


routes = [
    Route("/api/billing/checkout", checkout, methods=["GET"]),
    Route("/api/webhooks/payment", payment_webhook, methods=["POST"]),
]
