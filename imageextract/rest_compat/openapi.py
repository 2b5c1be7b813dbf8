"""`GET /api/v1/openapi.json`: an OpenAPI 3.1 document of the REST routes, built from the route table itself.

Paths, methods and path parameters come from the app's routes (recursing into mounts), summaries from the first
line of each handler's docstring, so a route cannot be served without being documented. What the routes cannot
say (which ones are public or open to guests, which take a multipart body) is stated here, next to the shared
error envelope that every 4xx answer uses.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

import imageextract
from imageextract.rest_compat.common import request_origin
from imageextract.services.auth import GUEST_COOKIE, SESSION_COOKIE

# Routes that need no credentials at all.
PUBLIC = {("POST", "/api/auth/signup"), ("POST", "/api/auth/login"), ("GET", "/api/v1/openapi.json"),
          ("POST", "/api/webhooks/payment"),  # the payment webhook authenticates by its signature
          # signed URLs: the URL itself is the credential (services/staged_files.py, services/batch_results.py)
          ("PUT", "/api/v1/files/upload"), ("GET", "/api/v1/batch-results")}
# Job routes also answer guests: a guest owns the jobs it submitted through the guest cookie.
GUEST_PREFIX = "/api/v1/jobs"
# ... except these, under that prefix but for accounts only (an export costs credits).
ACCOUNT_ONLY = {("POST", "/api/v1/jobs/{id}/exports")}
MULTIPART = {("POST", "/api/v1/jobs")}
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string", "description": "stable machine-readable code"},
                       "message": {"type": "string"},
                       "details": {"type": ["object", "null"]}},
    }},
}


def _routes(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
    """Every `Route` with its full path, mounts flattened."""
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += _routes(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            found.append((prefix + route.path, route))
    return found


def _summary(endpoint: Any) -> str:
    doc = (getattr(endpoint, "__doc__", None) or "").strip()
    if doc:
        return doc.splitlines()[0].strip().rstrip(".")
    return getattr(endpoint, "__name__", "operation").replace("_", " ").capitalize()


def _security(method: str, template: str) -> list[dict[str, list[str]]] | None:
    """None: the document-wide requirement (API key or session) applies."""
    if (method, template) in PUBLIC:
        return []
    if (method, template) in ACCOUNT_ONLY:
        return None
    if template == GUEST_PREFIX or template.startswith(GUEST_PREFIX + "/"):
        return [{}, {"apiKey": []}, {"session": []}, {"guest": []}]
    return None


def _operation(method: str, path: str, template: str, route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", template).rstrip("_"),
        "summary": _summary(route.endpoint),
        "responses": {
            "2XX": {"description": "Success (see the REST reference for the body)"},
            "4XX": {"$ref": "#/components/responses/Error"},
        },
    }
    params = _PARAM.findall(path)
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                            for p in params]
    security = _security(method, template)
    if security is not None:
        op["security"] = security
    if method in ("POST", "PATCH", "PUT"):
        content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
        if (method, template) in MULTIPART:
            content["multipart/form-data"] = {"schema": {"type": "object", "properties": {"files": {
                "type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}}}}}
        op["requestBody"] = {"required": False, "content": content}
    return op


def build_document(routes: list[BaseRoute], server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every `/api/` route in `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for path, route in _routes(routes):
        if not path.startswith("/api/") or not route.include_in_schema:
            continue
        template = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(template, {})[method.lower()] = _operation(method, path, template, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ImageExtract REST API", "version": imageextract.__version__,
                 "description": "Every image out of web pages and documents. Errors share one envelope: "
                                '{"error": {"code", "message", "details"}}.'},
        "servers": [{"url": server_url}],
        "security": [{"apiKey": []}, {"session": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "ie_live_...",
                           "description": "An API key: `Authorization: Bearer ie_live_...`"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                            "description": "The browser session set by /api/auth/login or /api/auth/signup"},
                "guest": {"type": "apiKey", "in": "cookie", "name": GUEST_COOKIE,
                          "description": "Set on a guest's first job; it owns that guest's jobs"},
            },
            "schemas": {"Error": ERROR_SCHEMA},
            "responses": {"Error": {"description": "Error (the shared envelope)", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }


async def openapi_json(request: Request) -> JSONResponse:
    """The OpenAPI 3.1 document of these routes."""
    return JSONResponse(build_document(list(request.app.routes), request_origin(request)))


routes = [Route("/api/v1/openapi.json", openapi_json, methods=["GET"])]
