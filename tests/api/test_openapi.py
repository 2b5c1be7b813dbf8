"""The OpenAPI 3.1 document: valid, built from the served routes, covering every documented REST route."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from imageextract.app import create_app
from imageextract.config import Settings

# The routes of the REST reference (shared/spec/000) that this service serves; the billing routes
# (/api/billing/checkout, /api/webhooks/payment) belong to the payment provider's integration, not here.
DOCUMENTED = {
    ("get", "/api/v1/account"), ("get", "/api/v1/account/credits"), ("get", "/api/v1/account/credits/ledger"),
    ("get", "/api/v1/account/limits"), ("get", "/api/v1/account/usage"),
    ("get", "/api/v1/projects"), ("post", "/api/v1/projects"), ("get", "/api/v1/projects/{id}"),
    ("patch", "/api/v1/projects/{id}"), ("delete", "/api/v1/projects/{id}"),
    ("get", "/api/v1/projects/{id}/keys"), ("post", "/api/v1/projects/{id}/keys"),
    ("post", "/api/v1/projects/{id}/keys/{key_id}/revoke"), ("post", "/api/v1/projects/{id}/keys/{key_id}/rotate"),
    ("post", "/api/dashboard/keys"), ("delete", "/api/dashboard/keys/{id}"),
    ("post", "/api/v1/jobs"), ("get", "/api/v1/jobs/{id}"), ("get", "/api/v1/jobs/{id}/items"),
    ("get", "/api/v1/jobs/{id}/result"), ("get", "/api/v1/jobs/{id}/download"), ("get", "/api/v1/jobs/{id}/downloads"),
    ("get", "/api/v1/jobs/{id}/stream"), ("post", "/api/v1/jobs/{id}/cancel"), ("post", "/api/v1/jobs/{id}/retry"),
    ("get", "/api/dashboard/jobs"),
    ("get", "/api/v1/projects/{id}/webhooks"), ("post", "/api/v1/projects/{id}/webhooks"),
    ("patch", "/api/v1/projects/{id}/webhooks/{webhook_id}"), ("delete", "/api/v1/projects/{id}/webhooks/{webhook_id}"),
    ("post", "/api/v1/projects/{id}/webhooks/{webhook_id}/test"), ("get", "/api/v1/projects/{id}/webhook-deliveries"),
    ("get", "/api/v1/projects/{id}/webhook-deliveries/{delivery_id}"),
}


def served_api_routes(routes: list[BaseRoute], prefix: str = "") -> dict[tuple[str, str], Any]:
    """(method, path) -> endpoint for every /api/ route of the app, walked here independently of the module."""
    found: dict[tuple[str, str], Any] = {}
    for route in routes:
        if isinstance(route, Mount):
            found |= served_api_routes(list(route.routes), prefix + route.path)
        elif isinstance(route, Route) and route.include_in_schema and (prefix + route.path).startswith("/api/"):
            for method in (route.methods or set()) - {"HEAD"}:
                found[(method.lower(), prefix + route.path)] = route.endpoint
    return found


async def test_document_is_valid_and_lists_exactly_the_served_routes(client: httpx.AsyncClient,
                                                                     tmp_path: Path) -> None:
    r = await client.get("/api/v1/openapi.json")  # public: no credentials
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    validate(doc)  # raises unless this is a valid OpenAPI 3.1 document
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": str(client.base_url).rstrip("/")}]

    listed = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert DOCUMENTED <= listed, f"documented routes missing: {sorted(DOCUMENTED - listed)}"
    served = served_api_routes(list(create_app(Settings(data_dir=tmp_path)).routes))
    assert listed == set(served), (f"listed but not served: {sorted(listed - set(served))}; "
                                   f"served but not listed: {sorted(set(served) - listed)}")

    ops = {(m, p): op for p, path_ops in doc["paths"].items() for m, op in path_ops.items()}
    assert len({op["operationId"] for op in ops.values()}) == len(ops)
    for key, endpoint in served.items():  # summaries are the handlers' docstrings: every route states its contract
        doc_line = (inspect.getdoc(endpoint) or "").splitlines()[:1]
        assert doc_line, f"{key}: the handler {endpoint.__name__} has no docstring"
        assert ops[key]["summary"] == doc_line[0].rstrip(".")


async def test_parameters_security_and_error_envelope(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    paths, components = doc["paths"], doc["components"]

    params = paths["/api/v1/projects/{id}/keys/{key_id}/rotate"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in params] == [("id", "path", True), ("key_id", "path", True)]
    assert "parameters" not in paths["/api/v1/account"]["get"]
    assert set(paths["/api/v1/projects/{id}"]) == {"get", "patch", "delete"}  # HEAD is left out

    schemes = components["securitySchemes"]
    assert schemes["apiKey"]["type"] == "http" and schemes["apiKey"]["scheme"] == "bearer"
    assert "ie_live_" in schemes["apiKey"]["bearerFormat"]
    assert (schemes["session"]["type"], schemes["session"]["in"], schemes["session"]["name"]) == (
        "apiKey", "cookie", "ie_session")
    assert doc["security"] == [{"apiKey": []}, {"session": []}]
    assert "security" not in paths["/api/v1/account"]["get"], "the document-wide requirement applies"
    assert paths["/api/auth/login"]["post"]["security"] == []
    assert paths["/api/v1/openapi.json"]["get"]["security"] == []
    assert {} in paths["/api/v1/jobs"]["post"]["security"], "guests may submit jobs"
    assert "multipart/form-data" in paths["/api/v1/jobs"]["post"]["requestBody"]["content"]

    error = components["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]
    envelope = components["responses"]["Error"]["content"]["application/json"]["schema"]
    assert envelope == {"$ref": "#/components/schemas/Error"}
    for path, path_ops in paths.items():
        for method, op in path_ops.items():
            assert op["responses"]["4XX"] == {"$ref": "#/components/responses/Error"}, (method, path)


async def test_an_error_answer_has_the_documented_shape(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()["components"]["schemas"]["Error"]
    r = await client.get("/api/v1/account")  # no credentials
    assert r.status_code == 401
    Draft202012Validator(schema).validate(r.json())
