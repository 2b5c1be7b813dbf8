"""The OpenAPI 3.1 document: valid, built from the served routes, covering every documented REST route."""

from __future__ import annotations

from typing import Any

import httpx
from openapi_spec_validator import validate

from imageextract.app import create_app
from imageextract.config import Settings
from imageextract.rest_compat.openapi import _routes

# The routes of shared/spec/000 (REST contract) that this service serves.
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


async def test_document_is_valid_and_matches_the_routes(client: httpx.AsyncClient, tmp_path: Any) -> None:
    r = await client.get("/api/v1/openapi.json")  # public: no credentials
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    validate(doc)  # raises on an invalid OpenAPI 3.1 document
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": str(client.base_url).rstrip("/")}]
    listed = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert DOCUMENTED <= listed, f"documented routes missing: {sorted(DOCUMENTED - listed)}"
    served = {(m.lower(), p) for p, route in _routes(list(create_app(Settings(data_dir=tmp_path)).routes))
              if p.startswith("/api/") for m in (route.methods or set()) - {"HEAD"}}
    assert listed == served, "the document lists exactly the served /api routes"
    ops = [op for path_ops in doc["paths"].values() for op in path_ops.values()]
    assert len({op["operationId"] for op in ops}) == len(ops)
    assert doc["paths"]["/api/auth/login"]["post"]["security"] == []
    assert "security" not in doc["paths"]["/api/v1/account"]["get"], "the global bearer/session requirement applies"
    params = doc["paths"]["/api/v1/projects/{id}/keys/{key_id}/rotate"]["post"]["parameters"]
    assert [p["name"] for p in params] == ["id", "key_id"] and all(p["in"] == "path" for p in params)
    assert "multipart/form-data" in doc["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
    assert doc["components"]["schemas"]["Error"]["properties"]["error"]["required"] == ["code", "message", "details"]
