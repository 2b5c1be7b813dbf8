"""Account, credits, ledger, limits, usage: REST as documented, GraphQL with the same answers."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.gqlutil import gql


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_account_summary_rest_and_graphql(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    r = await client.get("/api/v1/account", headers=account["headers"])
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == account["account_id"]
    assert body["plan"] == "pro"
    assert body["status"] == "active"
    assert body["membership_role"] == "owner"
    assert body["slug"].startswith("acme-")
    g = await gql(client, "{ account { id slug plan status membershipRole credits } }", account["headers"])
    assert g["data"]["account"] == {
        "id": body["id"], "slug": body["slug"], "plan": "pro", "status": "active", "membershipRole": "owner",
        "credits": 5000,
    }


async def test_credits_ledger_limits(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    r = await client.get("/api/v1/account/credits", headers=h)
    assert r.json() == {"account_id": account["account_id"], "plan": "pro", "credits": 5000}
    r = await client.get("/api/v1/account/credits/ledger?limit=10", headers=h)
    assert r.status_code == 200
    entries = r.json()["entries"]
    assert [(e["entry_type"], e["amount"], e["balance_after"]) for e in entries] == [("grant", 5000, 5000)]
    r = await client.get("/api/v1/account/limits", headers=h)
    assert r.json() == {
        "account_id": account["account_id"],
        "limits": {
            "plan": "pro", "credits_included": 5000, "daily_credit_cap": -1, "api_access": True,
            "ads_enabled": False, "bulk_max_urls": 5, "document_max_files": 5, "document_max_mb": 50,
            "url_worker_concurrency": 10,
        },
    }
    g = await gql(client, "{ limits { plan bulkMaxUrls urlWorkerConcurrency } ledger(first: 5) { nodes { entryType amount balanceAfter } } }", h)
    assert g["data"]["limits"] == {"plan": "pro", "bulkMaxUrls": 5, "urlWorkerConcurrency": 10}
    assert g["data"]["ledger"]["nodes"] == [{"entryType": "grant", "amount": 5000, "balanceAfter": 5000}]


async def test_ledger_limit_validation(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    for bad in ("0", "-1", "abc", "100000"):
        r = await client.get(f"/api/v1/account/credits/ledger?limit={bad}", headers=account["headers"])
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["details"] == {"field": "limit"}


async def test_usage_window(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    r = await client.get("/api/v1/account/usage?since=2026-04-01T00:00:00Z&until=2026-04-30T23:59:59Z", headers=h)
    assert r.status_code == 200
    assert r.json() == {"account_id": account["account_id"], "jobs_total": 0, "credits_debited": 0,
                        "images_extracted": 0}
    r = await client.get("/api/v1/account/usage?since=yesterday", headers=h)
    assert r.status_code == 400
    assert r.json()["error"]["details"] == {"field": "since"}
    r = await client.get("/api/v1/account/usage?since=2026-05-01T00:00:00Z&until=2026-04-01T00:00:00Z", headers=h)
    assert r.status_code == 400
    r = await client.get("/api/v1/account/usage?since=2026-05-01T00:00:00", headers=h)
    assert r.status_code == 400, "naive timestamps are ambiguous and refused"


async def test_unauthenticated_is_401_in_envelope(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/account", "/api/v1/account/credits", "/api/v1/account/credits/ledger",
                 "/api/v1/account/limits", "/api/v1/account/usage", "/api/v1/projects"):
        r = await client.get(path)
        assert r.status_code == 401, path
        err = r.json()["error"]
        assert err["code"] == "unauthorized" and err["message"] and "details" in err
    for header in ("Bearer ie_live_nope", "Bearer", "Basic abc", "Bearer sk_live_x", "Bearer " + "x" * 5000):
        r = await client.get("/api/v1/account", headers={"Authorization": header})
        assert r.status_code == 401, header
    g = await gql(client, "{ account { id } }")
    assert g["data"] is None
    assert g["errors"][0]["extensions"]["code"] == "unauthorized"


async def test_unknown_route_and_method_use_envelope(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await client.put("/api/v1/account")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
