"""`GET /api/v1/openapi.json`: an OpenAPI 3.1 document of the REST routes, built from the route table itself.

Paths, methods and path parameters come from the app's routes, summaries from the handlers' docstrings (or
their names), so a route cannot be served without being documented. What the routes cannot say (which
ones are public, which take a body) is stated here, next to the shared error envelope.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

import imageextract

# Routes that work without credentials (guests may submit and read their own URL jobs via the guest cookie).
PUBLIC = {("POST", "/api/auth/signup"), ("POST", "/api/auth/login"), ("GET", "/api/v1/openapi.json")}
GUEST_OK = {("POST", "/api/v1/jobs"), ("GET", "/api/v1/jobs/{id}"), ("GET", "/api/v1/jobs/{id}/items"),
            ("GET", "/api/v1/jobs/{id}/result"), ("GET", "/api/v1/jobs/{id}/stream")}
MULTIPART = {("POST", "/api/v1/jobs")}
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "details": {"type": ["object", "null"]}},
    }},
}


def _routes(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, Route]]:
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
        return doc.splitlines()[0].rstrip(".")
    return getattr(endpoint, "__name__", "operation").replace("_", " ").capitalize()


def _operation(method: str, path: str, route: Route) -> dict[str, Any]:
    template = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
    op: dict[str, Any] = {
        "operationId": method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", template).rstrip("_"),
        "summary": _summary(route.endpoint),
        "responses": {
            "2XX": {"description": "Success (see the REST reference for the body)"},
            "4XX": {"description": "Error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }
    params = _PARAM.findall(path)
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                            for p in params]
    key = (method, template)
    if key in PUBLIC:
        op["security"] = []
    elif key in GUEST_OK:
        op["security"] = [{}, {"apiKey": []}, {"session": []}]
    if method in ("POST", "PATCH", "PUT"):
        content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
        if key in MULTIPART:
            content["multipart/form-data"] = {"schema": {"type": "object", "properties": {
                "files": {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}},
            }}}
        op["requestBody"] = {"required": False, "content": content}
    return op


def build_document(routes: list[BaseRoute], server_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, route in _routes(routes):
        if not path.startswith("/api/"):
            continue
        template = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(template, {})[method.lower()] = _operation(method, path, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ImageExtract REST API", "version": imageextract.__version__,
                 "description": "Every image out of web pages and documents. Errors share one envelope."},
        "servers": [{"url": server_url}],
        "security": [{"apiKey": []}, {"session": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: ie_live_..."},
                "session": {"type": "apiKey", "in": "cookie", "name": "ie_session"},
            },
            "schemas": {"Error": ERROR_SCHEMA},
        },
    }


async def openapi_json(request: Request) -> JSONResponse:
    """The OpenAPI 3.1 document of these routes"""
    from imageextract.rest_compat.common import request_origin

    return JSONResponse(build_document(list(request.app.routes), request_origin(request)))


routes = [Route("/api/v1/openapi.json", openapi_json, methods=["GET"])]
