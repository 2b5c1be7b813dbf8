"""The authorization matrix: every REST route and every GraphQL field that takes an id, called with another
account's ids. A caller from another account gets 403 or 404 and learns nothing; no credentials get 401;
and the owner's data is exactly as it was afterwards. The tables are checked against the app's own route
table and schema, so a new route or field cannot escape them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import websockets

from imageextract.app import create_app
from imageextract.config import Settings
from imageextract.models import ApiKey, Job, Project, WebhookEndpoint
from imageextract.rest_compat.openapi import _routes
from imageextract.services import ledger
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url

# (method, path) -> body sent by the intruder (a valid one, so only authorization can refuse it)
REST: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/api/v1/projects/{id}"): None,
    ("PATCH", "/api/v1/projects/{id}"): {"name": "hijacked"},
    ("DELETE", "/api/v1/projects/{id}"): None,
    ("GET", "/api/v1/projects/{id}/keys"): None,
    ("POST", "/api/v1/projects/{id}/keys"): {"label": "intruder"},
    ("POST", "/api/v1/projects/{id}/keys/{key_id}/revoke"): None,
    ("POST", "/api/v1/projects/{id}/keys/{key_id}/rotate"): None,
    ("DELETE", "/api/dashboard/keys/{id}"): None,
    ("GET", "/api/v1/jobs/{id}"): None,
    ("GET", "/api/v1/jobs/{id}/items"): None,
    ("GET", "/api/v1/jobs/{id}/result"): None,
    ("GET", "/api/v1/jobs/{id}/stream"): None,
    ("POST", "/api/v1/jobs/{id}/cancel"): None,
    ("POST", "/api/v1/jobs/{id}/retry"): None,
    ("GET", "/api/v1/jobs/{id}/download"): None,
    ("GET", "/api/v1/jobs/{id}/downloads"): None,
    ("GET", "/api/v1/jobs/{id}/downloads/zip"): None,
    ("GET", "/api/v1/jobs/{id}/downloads/groups/{group}.zip"): None,
    ("GET", "/api/v1/jobs/{id}/downloads/images/{name}"): None,
    ("GET", "/api/v1/projects/{id}/webhooks"): None,
    ("POST", "/api/v1/projects/{id}/webhooks"): {"url": "http://127.0.0.1:9/intruder"},
    ("PATCH", "/api/v1/projects/{id}/webhooks/{webhook_id}"): {"url": "http://127.0.0.1:9/intruder"},
    ("DELETE", "/api/v1/projects/{id}/webhooks/{webhook_id}"): None,
    ("POST", "/api/v1/projects/{id}/webhooks/{webhook_id}/test"): None,
    ("GET", "/api/v1/projects/{id}/webhook-deliveries"): None,
    ("GET", "/api/v1/projects/{id}/webhook-deliveries/{delivery_id}"): None,
}

# GraphQL operations with the owner's ids ($-variables filled from the world below).
GRAPHQL: dict[str, str] = {
    "Query.project": "query($p: ID!) { project(id: $p) { id name } }",
    "Query.apiKeys": "query($p: ID!) { apiKeys(projectId: $p) { id keyPrefix } }",
    "Query.job": "query($j: ID!) { job(id: $j) { id status } }",
    "Query.jobs": "query($p: ID!) { jobs(projectId: $p) { nodes { id } } }",
    "Query.webhooks": "query($p: ID!) { webhooks(projectId: $p) { id url } }",
    "Query.webhookDeliveries": "query($p: ID!) { webhookDeliveries(projectId: $p) { id } }",
    "Query.webhookDelivery": "query($p: ID!, $d: ID!) { webhookDelivery(projectId: $p, id: $d) { id } }",
    "Mutation.updateProject": 'mutation($p: ID!) { updateProject(id: $p, input: {name: "hijacked"}) { id } }',
    "Mutation.archiveProject": "mutation($p: ID!) { archiveProject(id: $p) { id } }",
    "Mutation.createApiKey": "mutation($p: ID!) { createApiKey(projectId: $p) { key } }",
    "Mutation.revokeApiKey": "mutation($p: ID!, $k: ID!) { revokeApiKey(projectId: $p, keyId: $k) { id } }",
    "Mutation.rotateApiKey": "mutation($p: ID!, $k: ID!) { rotateApiKey(projectId: $p, keyId: $k) { key } }",
    "Mutation.revokeDashboardKey": "mutation($dk: ID!) { revokeDashboardKey(id: $dk) { id } }",
    "Mutation.uploadDocuments": "mutation($p: ID!) { uploadDocuments(files: [], projectId: $p) { jobId } }",
    "Mutation.cancelJob": "mutation($j: ID!) { cancelJob(id: $j) { id } }",
    "Mutation.retryJob": "mutation($j: ID!) { retryJob(id: $j) { jobId } }",
    "Mutation.createWebhook": 'mutation($p: ID!) { createWebhook(projectId: $p, url: "http://127.0.0.1:9/x") { secret } }',
    "Mutation.updateWebhook": 'mutation($p: ID!, $w: ID!) { updateWebhook(projectId: $p, id: $w, url: "http://127.0.0.1:9/x") { id } }',
    "Mutation.deleteWebhook": "mutation($p: ID!, $w: ID!) { deleteWebhook(projectId: $p, id: $w) }",
    "Mutation.testWebhook": "mutation($p: ID!, $w: ID!) { testWebhook(projectId: $p, id: $w) }",
    "Mutation.submitJob": 'mutation($p: ID!) { submitJob(input: {type: "url", url: "http://127.0.0.1:9/", projectId: $p}) { jobId } }',
}
SUBSCRIPTION = "subscription($j: ID!) { jobProgress(jobId: $j) { status } }"


@dataclass
class World:
    owner: dict[str, Any]
    intruder: dict[str, Any]
    ids: dict[str, str]
    secrets: list[str]


def _served_paths_with_ids(tmp_path: Any) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path))
    return {(m, p) for p, r in _routes(list(app.routes)) if "{" in p for m in (r.methods or set()) - {"HEAD"}}


def test_tables_cover_every_route_and_field_with_an_id(tmp_path: Any) -> None:
    missing = _served_paths_with_ids(tmp_path) - set(REST)
    assert not missing, f"routes taking an id that the matrix does not cover: {sorted(missing)}"
    from imageextract.schema import build_schema

    schema = build_schema()._schema
    id_fields = set()
    for type_name in ("Query", "Mutation", "Subscription"):
        for name, field in schema.type_map[type_name].fields.items():  # type: ignore[union-attr]
            arg_types = {str(a.type).strip("!") for a in field.args.values()}
            if "ID" in arg_types or "SubmitJobInput" in arg_types:
                id_fields.add(f"{type_name}.{name}")
    assert id_fields - set(GRAPHQL) == {"Subscription.jobProgress"}, sorted(id_fields - set(GRAPHQL))


async def _world(client: httpx.AsyncClient, pages: ThreadingHTTPServer) -> World:
    owner = await make_account(plan="pro", name="Owner Secret Corp")
    intruder = await make_account(plan="pro")
    h = owner["headers"]
    pid = owner["project_id"]
    await client.patch(f"/api/v1/projects/{pid}", headers=h, json={"name": "Owner Secret Project"})
    key = (await client.post(f"/api/v1/projects/{pid}/keys", headers=h, json={"label": "k"})).json()
    dash = (await client.post("/api/dashboard/keys", headers=h, json={"label": "d"})).json()
    job_id = (await client.post("/api/v1/jobs", headers=h, json={
        "type": "url", "input": f"{base_url(pages)}/page/2", "metadata": {"tag": "owner-secret-meta"}})).json()["job_id"]
    await wait_for_job(client, job_id, h)
    result = (await client.get(f"/api/v1/jobs/{job_id}/downloads", headers=h)).json()
    hook = (await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h,
                              json={"url": "http://127.0.0.1:9/owner-secret-hook"})).json()
    delivery = (await client.post(f"/api/v1/projects/{pid}/webhooks/{hook['id']}/test", headers=h)).json()
    ids = {"project": pid, "key_id": key["row"]["id"], "dashboard_key": dash["row"]["id"], "job": job_id,
           "group": result["groups"][0]["group_id"], "image": result["images"][0]["image_id"],
           "webhook": hook["id"], "delivery": delivery["delivery_id"]}
    leaks = ["Owner Secret", "owner-secret", key["key"], dash["key"], hook["secret"], key["row"]["key_prefix"],
             base_url(pages)]
    return World(owner=owner, intruder=intruder, ids=ids, secrets=leaks)


def _url(path: str, ids: dict[str, str]) -> str:
    first = ids["dashboard_key"] if path.startswith("/api/dashboard/keys") else (
        ids["job"] if path.startswith("/api/v1/jobs") else ids["project"])
    return (path.replace("{id}", first).replace("{key_id}", ids["key_id"]).replace("{webhook_id}", ids["webhook"])
            .replace("{delivery_id}", ids["delivery"]).replace("{group}", ids["group"])
            .replace("{name}", ids["image"]))


async def _snapshot(world: World) -> dict[str, Any]:
    project = await Project.get(id=world.ids["project"])
    job = await Job.get(id=world.ids["job"])
    return {
        "project": (project.name, project.status),
        "keys": sorted((k.id, k.status) for k in await ApiKey.filter(account_id=world.owner["account_id"])),
        "job": (job.status, job.credits_used, await Job.filter(retry_of_id=job.id).count()),
        "jobs": await Job.filter(account_id=world.owner["account_id"]).count(),
        "hooks": sorted((w.id, w.url, w.status) for w in await WebhookEndpoint.filter(project_id=world.ids["project"])),
        "ledger": await ledger.ledger_sum(world.owner["account_id"]),
    }


def _refused(r: httpx.Response, allowed: tuple[int, ...], world: World, what: str) -> None:
    assert r.status_code in allowed, (what, r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, (what, body)
    for secret in world.secrets:
        assert secret not in r.text, (what, "leaked", secret[:20])


async def test_rest_routes_refuse_other_accounts_and_anonymous(client: httpx.AsyncClient, db: Any,
                                                               pages: ThreadingHTTPServer) -> None:
    world = await _world(client, pages)
    before = await _snapshot(world)
    for (method, path), body in REST.items():
        url = _url(path, world.ids)
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        r = await client.request(method, url, headers=world.intruder["headers"], **kwargs)
        _refused(r, (403, 404), world, f"intruder {method} {path}")
        anon = httpx.AsyncClient(base_url=client.base_url, timeout=30)
        async with anon:
            r = await anon.request(method, url, **kwargs)
        _refused(r, (401,), world, f"anonymous {method} {path}")
    assert await _snapshot(world) == before, "nothing of the owner's changed"


async def _ws_refused(base: str, headers: dict[str, str] | None, job_id: str) -> int:
    ws_url = base.replace("http://", "ws://").rstrip("/") + "/graphql"
    payload = {"Authorization": headers["Authorization"]} if headers else {}
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            if json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack":
                await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                          "payload": {"query": SUBSCRIPTION, "variables": {"j": job_id}}}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    assert message["type"] != "next", f"a foreign job's progress was sent: {message}"
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
    raise AssertionError("not closed")


@pytest.mark.parametrize("who", ["intruder", "anonymous"])
async def test_graphql_fields_refuse_other_accounts_and_anonymous(client: httpx.AsyncClient, db: Any,
                                                                  pages: ThreadingHTTPServer, who: str) -> None:
    world = await _world(client, pages)
    before = await _snapshot(world)
    variables = {"p": world.ids["project"], "k": world.ids["key_id"], "j": world.ids["job"],
                 "w": world.ids["webhook"], "d": world.ids["delivery"], "dk": world.ids["dashboard_key"]}
    headers = world.intruder["headers"] if who == "intruder" else {}
    expected = {"not_found", "forbidden"} if who == "intruder" else {"unauthorized"}
    for name, query in GRAPHQL.items():
        used = {k: v for k, v in variables.items() if f"${k}:" in query}
        r = await client.post("/graphql", json={"query": query, "variables": used}, headers=headers)
        assert r.status_code == 200, (name, r.text)
        body = r.json()
        assert body.get("data") is None, (name, body)
        assert body["errors"][0]["extensions"]["code"] in expected, (name, body["errors"])
        for secret in world.secrets:
            assert secret not in r.text, (name, "leaked", secret[:20])
    assert await _ws_refused(str(client.base_url), headers or None, world.ids["job"]) == 4403
    assert await _snapshot(world) == before, "nothing of the owner's changed"
