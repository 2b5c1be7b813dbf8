"""Projects and project keys through REST (as documented) and GraphQL (same services)."""

from __future__ import annotations

from typing import Any

import httpx

from imageextract.models import ApiKey, Project
from imageextract.services.security import sha256_hex
from tests.api.gqlutil import gql
from tests.factories import add_member, make_account


async def test_default_project_listed(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    r = await client.get("/api/v1/projects", headers=account["headers"])
    assert r.status_code == 200
    projects = r.json()["projects"]
    assert [(p["id"], p["name"], p["slug"]) for p in projects] == [(account["project_id"], "Default", "default")]


async def test_create_get_update_archive(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    r = await client.post("/api/v1/projects", headers=h, json={
        "name": "Marketing site", "site_url": "https://example.com",
        "default_webhook_url": "http://127.0.0.1:9/webhooks/imageextract", "slug": "marketing-site",
    })
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["account_id"] == account["account_id"]
    assert created["name"] == "Marketing site" and created["slug"] == "marketing-site"
    pid = created["id"]
    r = await client.get(f"/api/v1/projects/{pid}", headers=h)
    assert r.status_code == 200 and r.json()["slug"] == "marketing-site"
    r = await client.patch(f"/api/v1/projects/{pid}", headers=h, json={"name": "Marketing site v2"})
    assert r.status_code == 200
    assert r.json()["id"] == pid and r.json()["name"] == "Marketing site v2"
    assert (await Project.get(id=pid)).name == "Marketing site v2"
    r = await client.delete(f"/api/v1/projects/{pid}", headers=h)
    assert r.status_code == 200
    assert r.json()["id"] == pid and r.json()["status"] == "archived"
    listed = (await client.get("/api/v1/projects", headers=h)).json()["projects"]
    assert pid not in [p["id"] for p in listed]
    r = await client.patch(f"/api/v1/projects/{pid}", headers=h, json={"name": "again"})
    assert r.status_code == 409


async def test_slug_derived_and_unique_per_account(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    a = (await client.post("/api/v1/projects", headers=h, json={"name": "Café Déjà Vu!"})).json()
    assert a["slug"] == "cafe-deja-vu"
    b = (await client.post("/api/v1/projects", headers=h, json={"name": "Cafe deja vu"})).json()
    assert b["slug"] == "cafe-deja-vu-2"
    r = await client.post("/api/v1/projects", headers=h, json={"name": "X", "slug": "cafe-deja-vu"})
    assert r.status_code == 409
    assert r.json()["error"]["details"] == {"field": "slug"}
    other = await make_account()
    r = await client.post("/api/v1/projects", headers=other["headers"], json={"name": "Y", "slug": "cafe-deja-vu"})
    assert r.status_code == 201, "slugs are unique per account, not globally"


async def test_project_validation_errors(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    cases: list[tuple[Any, str]] = [
        ({}, "name"), ({"name": ""}, "name"), ({"name": 5}, "name"), ({"name": "x" * 201}, "name"),
        ({"name": "ok", "slug": "Bad Slug"}, "slug"), ({"name": "ok", "slug": "-x"}, "slug"),
        ({"name": "ok", "site_url": "ftp://x"}, "site_url"), ({"name": "ok", "site_url": "notaurl"}, "site_url"),
        ({"name": "ok", "default_webhook_url": "javascript:alert(1)"}, "default_webhook_url"),
        ({"name": "ok", "default_webhook_url": "http://169.254.169.254/latest"}, "default_webhook_url"),
        ({"name": "ok", "default_webhook_url": "http://10.0.0.1/hook"}, "default_webhook_url"),
    ]
    before = await Project.filter(account_id=account["account_id"]).count()
    for body, field in cases:
        r = await client.post("/api/v1/projects", headers=h, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["details"]["field"] == field, body
    for raw in (b"", b"not json", b"[1,2]", b'"str"'):
        r = await client.post("/api/v1/projects", headers={**h, "content-type": "application/json"}, content=raw)
        assert r.status_code == 400, raw
        assert r.json()["error"]["code"] == "validation_error"
    r = await client.patch(f"/api/v1/projects/{account['project_id']}", headers=h, json={"owner": "me"})
    assert r.status_code == 400
    assert await Project.filter(account_id=account["account_id"]).count() == before, "nothing half-written"


async def test_cross_account_is_404_and_roles_are_403(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    other = await make_account()
    pid = account["project_id"]
    for method, path in (("GET", f"/api/v1/projects/{pid}"), ("PATCH", f"/api/v1/projects/{pid}"),
                         ("DELETE", f"/api/v1/projects/{pid}"), ("GET", f"/api/v1/projects/{pid}/keys"),
                         ("POST", f"/api/v1/projects/{pid}/keys")):
        r = await client.request(method, path, headers=other["headers"], json={"name": "z"})
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    member = await add_member(account["account_id"], role="member")
    r = await client.post("/api/v1/projects", headers=member["headers"], json={"name": "nope"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    r = await client.post(f"/api/v1/projects/{pid}/keys", headers=member["headers"], json={})
    assert r.status_code == 403
    r = await client.get(f"/api/v1/projects/{pid}/keys", headers=member["headers"])
    assert r.status_code == 200, "members may read"
    admin = await add_member(account["account_id"], role="admin")
    r = await client.post("/api/v1/projects", headers=admin["headers"], json={"name": "by admin"})
    assert r.status_code == 201
    r = await client.delete(f"/api/v1/projects/{pid}", headers=admin["headers"])
    assert r.status_code == 409, "the default project stays"


async def test_project_keys_lifecycle(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    pid = account["project_id"]
    r = await client.post(f"/api/v1/projects/{pid}/keys", headers=h, json={"label": "CI integration"})
    assert r.status_code == 201
    body = r.json()
    key, row = body["key"], body["row"]
    assert key.startswith("ie_live_") and len(key) > 40
    assert row["key_prefix"].startswith("ie_live_") and row["key_prefix"].endswith("...")
    assert key.startswith(row["key_prefix"][:-3])
    stored = await ApiKey.get(id=row["id"])
    assert stored.key_hash == sha256_hex(key) and key not in (stored.key_prefix, stored.key_hash)
    listed = (await client.get(f"/api/v1/projects/{pid}/keys", headers=h)).json()
    assert listed["project_id"] == pid
    assert {"id": row["id"], "status": "active"}.items() <= next(k for k in listed["keys"] if k["id"] == row["id"]).items()
    assert all("key" not in k and "key_hash" not in k for k in listed["keys"])

    # The project key works, is scoped to its project, and cannot manage projects (member role).
    kh = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/v1/account", headers=kh)).json()["membership_role"] == "member"
    assert [p["id"] for p in (await client.get("/api/v1/projects", headers=kh)).json()["projects"]] == [pid]
    other_project = (await client.post("/api/v1/projects", headers=h, json={"name": "Other"})).json()
    assert (await client.get(f"/api/v1/projects/{other_project['id']}", headers=kh)).status_code == 403
    assert (await client.post("/api/v1/projects", headers=kh, json={"name": "x"})).status_code == 403
    stored = await ApiKey.get(id=row["id"])
    assert stored.last_used is not None

    # Rotate: a new key, the old one fails at once.
    r = await client.post(f"/api/v1/projects/{pid}/keys/{row['id']}/rotate", headers=h)
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["previous_key_id"] == row["id"] and rotated["key"] != key
    assert (await client.get("/api/v1/account", headers=kh)).status_code == 401
    nh = {"Authorization": f"Bearer {rotated['key']}"}
    assert (await client.get("/api/v1/account", headers=nh)).status_code == 200
    r = await client.post(f"/api/v1/projects/{pid}/keys/{row['id']}/rotate", headers=h)
    assert r.status_code == 409

    # Revoke: immediate.
    r = await client.post(f"/api/v1/projects/{pid}/keys/{rotated['row']['id']}/revoke", headers=h)
    assert r.status_code == 200 and r.json() == {"revoked": True}
    assert (await client.get("/api/v1/account", headers=nh)).status_code == 401
    r = await client.post(f"/api/v1/projects/{pid}/keys/key_doesnotexist/revoke", headers=h)
    assert r.status_code == 404


async def test_dashboard_keys(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    r = await client.post("/api/dashboard/keys", headers=h, json={"label": "My script"})
    assert r.status_code == 200
    body = r.json()
    assert body["row"]["label"] == "My script" and body["row"]["last_used"] is None
    assert body["row"]["created_at"].endswith("Z")
    kh = {"Authorization": f"Bearer {body['key']}"}
    assert (await client.get("/api/v1/account", headers=kh)).json()["membership_role"] == "owner"
    r = await client.delete(f"/api/dashboard/keys/{body['row']['id']}", headers=h)
    assert r.status_code == 200 and r.json() == {"deleted": True}
    assert (await client.get("/api/v1/account", headers=kh)).status_code == 401
    other = await make_account()
    r = await client.delete(f"/api/dashboard/keys/{body['row']['id']}", headers=other["headers"])
    assert r.status_code == 404
    assert (await client.post("/api/dashboard/keys", json={})).status_code == 401


async def test_graphql_projects_and_keys_match_rest(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    g = await gql(client, """mutation($i: CreateProjectInput!) { createProject(input: $i) { id name slug status } }""",
                  h, {"i": {"name": "Docs Site"}})
    created = g["data"]["createProject"]
    assert created["slug"] == "docs-site" and created["status"] == "active"
    rest = (await client.get(f"/api/v1/projects/{created['id']}", headers=h)).json()
    assert (rest["id"], rest["name"], rest["slug"]) == (created["id"], "Docs Site", "docs-site")
    g = await gql(client, """mutation($p: ID!) { createApiKey(projectId: $p, label: "gql") { key row { id keyPrefix status } } }""",
                  h, {"p": created["id"]})
    issued = g["data"]["createApiKey"]
    keys = (await client.get(f"/api/v1/projects/{created['id']}/keys", headers=h)).json()["keys"]
    assert [k["id"] for k in keys] == [issued["row"]["id"]]
    g = await gql(client, """mutation { createProject(input: {name: ""}) { id } }""", h)
    assert g["errors"][0]["extensions"]["code"] == "validation_error"
    other = await make_account()
    g = await gql(client, """query($p: ID!) { project(id: $p) { id } }""", other["headers"], {"p": created["id"]})
    assert g["errors"][0]["extensions"]["code"] == "not_found"
    g = await gql(client, """mutation($p: ID!, $k: ID!) { rotateApiKey(projectId: $p, keyId: $k) { key row { id } } }""",
                  h, {"p": created["id"], "k": issued["row"]["id"]})
    rotated = g["data"]["rotateApiKey"]
    assert rotated["key"] != issued["key"]
    assert (await client.get("/api/v1/account", headers={"Authorization": f"Bearer {issued['key']}"})).status_code == 401
    g = await gql(client, """query($p: ID!) { apiKeys(projectId: $p) { nodes { id status } } }""", h, {"p": created["id"]})
    assert {(k["id"], k["status"]) for k in g["data"]["apiKeys"]["nodes"]} == {
        (issued["row"]["id"], "revoked"), (rotated["row"]["id"], "active")}
    g = await gql(client, """mutation($p: ID!, $k: ID!) { revokeApiKey(projectId: $p, keyId: $k) { status } }""",
                  h, {"p": created["id"], "k": rotated["row"]["id"]})
    assert g["data"]["revokeApiKey"]["status"] == "revoked"
    assert (await client.get("/api/v1/account", headers={"Authorization": f"Bearer {rotated['key']}"})).status_code == 401
