"""The one composition root: `create_app(settings)` and the lifespan that owns every connection."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from tortoise import connections

from imageextract.config import Settings
from imageextract.errors import DomainError
from imageextract.graphql_app import graphql_routes
from imageextract.logs import RequestIdMiddleware
from imageextract.rest_compat import (
    account,
    auth,
    batches,
    billing,
    downloads,
    exports,
    jobs,
    openapi,
    projects,
    results,
    webhooks,
)
from imageextract.rest_compat.errors import domain_error_handler, http_error_handler, unhandled_error_handler
from imageextract.runtime import Runtime, open_runtime

log = logging.getLogger("imageextract")


async def healthz(request: Request) -> JSONResponse:
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception as exc:  # the probe must answer, not crash
        return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def _routes(runtime: Runtime) -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    routes += auth.routes + account.routes + projects.routes + jobs.routes + results.routes + downloads.routes
    routes += exports.routes + batches.routes + webhooks.routes + billing.routes + openapi.routes
    routes += graphql_routes(runtime)
    return routes


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    runtime = Runtime(settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings, role="api", runtime=runtime):
            yield


    middleware: list[Middleware] = [Middleware(RequestIdMiddleware)]
    app = Starlette(
        routes=_routes(runtime),
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            DomainError: domain_error_handler,
            HTTPException: http_error_handler,
            Exception: unhandled_error_handler,
        },
    )
    app.state.runtime = runtime
    return app
