"""/api/v1/account*: summary, credits, ledger, limits, usage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from imageextract.rest_compat.common import authed_context, int_param
from imageextract.rest_compat.serializers import ledger_json
from imageextract.services import accounts, ledger, usage


async def get_account(request: Request) -> JSONResponse:
    """Fetch the authenticated account summary and membership role."""
    ctx = await authed_context(request)
    return JSONResponse(await accounts.account_summary(ctx))


async def get_credits(request: Request) -> JSONResponse:
    """Fetch the account-level credit balance used by the API platform."""
    ctx = await authed_context(request)
    account = await accounts.get_account(ctx)
    return JSONResponse({"account_id": account.id, "plan": account.plan, "credits": account.credits})


async def get_ledger(request: Request) -> JSONResponse:
    """Fetch recent account credit ledger entries (?limit=50)."""
    ctx = await authed_context(request)
    limit = int_param(request, "limit", 50, lo=-(2**31), hi=2**31)  # the range is the service's rule
    entries = await ledger.entries_of(ctx, limit=limit)
    return JSONResponse({"account_id": ctx.require_principal().account_id,
                         "entries": [ledger_json(e) for e in entries]})


async def get_limits(request: Request) -> JSONResponse:
    """Fetch account plan limits and platform caps."""
    ctx = await authed_context(request)
    plan = await accounts.limits_of(ctx)
    return JSONResponse({"account_id": ctx.require_principal().account_id, "limits": plan.limits()})


async def get_usage(request: Request) -> JSONResponse:
    """Fetch account usage rollup over a time window (?since=...&until=...)."""
    ctx = await authed_context(request)
    return JSONResponse(await usage.account_usage(ctx, since=request.query_params.get("since"),
                                                  until=request.query_params.get("until")))


routes = [
    Route("/api/v1/account", get_account, methods=["GET"]),
    Route("/api/v1/account/credits", get_credits, methods=["GET"]),
    Route("/api/v1/account/credits/ledger", get_ledger, methods=["GET"]),
    Route("/api/v1/account/limits", get_limits, methods=["GET"]),
    Route("/api/v1/account/usage", get_usage, methods=["GET"]),
]
