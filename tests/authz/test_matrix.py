"""The authorization matrix of the platform issue: for every route and every GraphQL field that takes an id, a
caller from another account gets 403 or 404 and learns nothing; a caller without credentials gets 401.

Owner A makes one of everything (a second project, a project key, a dashboard key, a finished, a failed and a
queued job with their items and images, a webhook endpoint and a delivery). Then, with A's ids:

- intruders from account B (its owner's key, a key scoped to B's project, B's browser session) get 403 or 404
  in the error envelope, the same answer as for ids that do not exist (jobs excepted: the contract documents
  "403 Job belongs to a different user"), and nothing of A's in the body or headers; so does A's own project
  key scoped to A's Default project, which may act on that project only;
- callers without credentials (none, a guest cookie, a revoked key, an unknown key) get 401;
- the database is exactly as it was for both accounts; then A makes every call itself and succeeds, which
  proves each refusal was about who asked and not about a wrong id.

The REST and GraphQL tables are checked against the app's own route table and schema, so a route or field that
takes an id cannot be added without being covered here. Guest jobs are public by contract to the holder of the
guest cookie only; `test_guest_jobs` covers them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from graphql import GraphQLInputObjectType, GraphQLObjectType, get_named_type
from starlette.routing import BaseRoute, Mount, Route

from imageextract.app import create_app
from imageextract.config import Settings
from imageextract.models import (
    Account,
    ApiKey,
    Image,
    Job,
    JobItem,
    LedgerEntry,
    Membership,
    Project,
    WebhookDelivery,
    WebhookEndpoint,
)
from imageextract.rest_compat.openapi import GUEST_PREFIX, PUBLIC
from imageextract.services import ledger
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url, png_bytes, serve_pages
from tests.receiver import Receiver, run_receiver

PASSWORD = "intruder-password-1234"
JOBS = ("job_done", "job_failed", "job_queued")
INTRUDERS = ("b_owner_key", "b_project_key", "b_session", "a_scoped_key")
ANONYMOUS = ("anonymous", "guest_cookie", "revoked_key", "unknown_key")


@dataclass(frozen=True)
class Call:
    """One REST call. `url` and string values in `json` name the world's ids: {project}, {job}, ..."""

    method: str
    route: str  # the app's path template this call exercises
    url: str
    json: dict[str, Any] | None = None
    upload: bool = False
    owner: int | None = 200  # what A gets for the same call (None: not an owner's call)
    owner_job: str = "job_done"


P, J, E, B = "/api/v1/projects/{id}", "/api/v1/jobs/{id}", "/api/v1/exports/{id}", "/api/v1/batches/{id}"
# In the order A replays them at the end: reads, then changes, then deletions.
REST: list[Call] = [
    Call("GET", P, "/api/v1/projects/{project}"),
    Call("GET", P + "/keys", "/api/v1/projects/{project}/keys"),
    Call("GET", J, "/api/v1/jobs/{job}"),
    Call("GET", J + "/items", "/api/v1/jobs/{job}/items"),
    Call("GET", J + "/result", "/api/v1/jobs/{job}/result"),
    Call("GET", J + "/stream", "/api/v1/jobs/{job}/stream"),
    Call("GET", J + "/download", "/api/v1/jobs/{job}/download"),
    Call("GET", J + "/downloads", "/api/v1/jobs/{job}/downloads"),
    Call("GET", J + "/downloads/zip", "/api/v1/jobs/{job}/downloads/zip"),
    Call("GET", J + "/downloads/groups/{group}.zip", "/api/v1/jobs/{job}/downloads/groups/{group}.zip"),
    Call("GET", J + "/downloads/images/{name}", "/api/v1/jobs/{job}/downloads/images/{image}"),
    Call("GET", J + "/export/{format}", "/api/v1/jobs/{job}/export/csv"),
    Call("GET", J + "/webhook-deliveries", "/api/v1/jobs/{job}/webhook-deliveries"),
    Call("GET", E, "/api/v1/exports/{export}"),
    Call("GET", E + "/download", "/api/v1/exports/{export}/download"),
    Call("GET", E + "/files/{filename}", "/api/v1/exports/{export}/files/{export_file}"),
    Call("GET", E + "/stream", "/api/v1/exports/{export}/stream"),
    Call("GET", B, "/api/v1/batches/{batch}"),
    Call("GET", B + "/items/{item_id}/result", "/api/v1/batches/{batch}/items/{batch_item}/result", owner=302),
    Call("GET", P + "/webhooks", "/api/v1/projects/{project}/webhooks"),
    Call("GET", P + "/webhook-deliveries", "/api/v1/projects/{project}/webhook-deliveries"),
    Call("GET", P + "/webhook-deliveries/{delivery_id}", "/api/v1/projects/{project}/webhook-deliveries/{delivery}"),
    Call("POST", "/api/v1/jobs", "/api/v1/jobs", json={"type": "url", "input": "{page}", "project_id": "{project}"},
         owner=202),
    Call("POST", "/api/v1/jobs", "/api/v1/jobs?project_id={project}", upload=True, owner=202),
    Call("POST", P + "/keys", "/api/v1/projects/{project}/keys", json={"label": "intruder"}, owner=201),
    Call("POST", J + "/exports", "/api/v1/jobs/{job}/exports", json={}, owner=202),
    Call("POST", P + "/webhooks", "/api/v1/projects/{project}/webhooks", json={"url": "{hook}"}, owner=201),
    Call("POST", P + "/webhooks/{webhook_id}/test", "/api/v1/projects/{project}/webhooks/{webhook}/test", owner=202),
    Call("PATCH", P + "/webhooks/{webhook_id}", "/api/v1/projects/{project}/webhooks/{webhook}",
         json={"url": "{hook}", "status": "disabled"}),
    Call("PATCH", P, "/api/v1/projects/{project}", json={"name": "Renamed by intruder"}),
    Call("POST", P + "/webhook-secret/rotate", "/api/v1/projects/{project}/webhook-secret/rotate"),
    Call("POST", P + "/keys/{key_id}/rotate", "/api/v1/projects/{project}/keys/{key}/rotate"),
    Call("POST", P + "/keys/{key_id}/revoke", "/api/v1/projects/{project}/keys/{key}/revoke"),
    Call("POST", J + "/cancel", "/api/v1/jobs/{job}/cancel", owner_job="job_queued"),
    Call("POST", "/api/v1/batches", "/api/v1/batches", json={"source": {"type": "files", "file_ids": ["{staged_file}"]},
                                                            "project_id": "{project}"}, owner=201),
    Call("POST", B + "/cancel", "/api/v1/batches/{batch}/cancel", owner=409),  # A's batch has ended
    Call("POST", J + "/retry", "/api/v1/jobs/{job}/retry", owner=202, owner_job="job_failed"),
    Call("DELETE", P + "/webhooks/{webhook_id}", "/api/v1/projects/{project}/webhooks/{webhook}"),
    Call("DELETE", "/api/dashboard/keys/{id}", "/api/dashboard/keys/{dashboard_key}"),
    Call("DELETE", J, "/api/v1/jobs/{job}"),
    Call("DELETE", P, "/api/v1/projects/{project}"),
    # The intruder's own parent with A's child: the child must be looked up under the parent.
    Call("POST", P + "/keys/{key_id}/revoke", "/api/v1/projects/{b_project}/keys/{key}/revoke", owner=None),
    Call("POST", P + "/keys/{key_id}/rotate", "/api/v1/projects/{b_project}/keys/{key}/rotate", owner=None),
    Call("PATCH", P + "/webhooks/{webhook_id}", "/api/v1/projects/{b_project}/webhooks/{webhook}",
         json={"status": "disabled"}, owner=None),
    Call("DELETE", P + "/webhooks/{webhook_id}", "/api/v1/projects/{b_project}/webhooks/{webhook}", owner=None),
    Call("POST", P + "/webhooks/{webhook_id}/test", "/api/v1/projects/{b_project}/webhooks/{webhook}/test",
         owner=None),
    Call("GET", P + "/webhook-deliveries/{delivery_id}", "/api/v1/projects/{b_project}/webhook-deliveries/{delivery}",
         owner=None),
    Call("GET", J + "/downloads/groups/{group}.zip", "/api/v1/jobs/{b_job}/downloads/groups/{group}.zip", owner=None),
    Call("GET", J + "/downloads/images/{name}", "/api/v1/jobs/{b_job}/downloads/images/{image}", owner=None),
]

@dataclass(frozen=True)
class Gql:
    """One GraphQL call. $-variables are the world's ids ($p project, $k key, $dk dashboard key, $j job,
    $w webhook, $d delivery, $bp B's project) and URLs the caller chose ($u, $pg)."""

    field: str  # the schema field it exercises
    document: str
    owner: str | None = "ok"  # what A gets: "ok", an error code, or None (not an owner's call)
    owner_job: str = "job_done"


# In the order A replays them at the end.
GRAPHQL: list[Gql] = [
    Gql("Query.project", "query($p: ID!) { project(id: $p) { id name slug siteUrl accountId } }"),
    Gql("Query.apiKeys", "query($p: ID!) { apiKeys(projectId: $p) { nodes { id keyPrefix label } } }"),
    Gql("Query.job", "query($j: ID!) { job(id: $j) { id metadata items { nodes { sourceLabel } } images { nodes { id url } } } }"),
    Gql("Query.jobs", "query($p: ID!) { jobs(projectId: $p) { totalCount nodes { id metadata } } }"),
    Gql("Query.webhooks", "query($p: ID!) { webhooks(projectId: $p) { nodes { id url } } }"),
    Gql("Query.webhookDeliveries", "query($p: ID!) { webhookDeliveries(projectId: $p) { nodes { id url payload } } }"),
    Gql("Query.export", "query($e: ID!) { export(id: $e) { id jobId images { imageId variants { url } } } }"),
    Gql("Query.webhookDelivery", "query($p: ID!, $d: ID!) { webhookDelivery(projectId: $p, id: $d) { payload } }"),
    Gql("Mutation.submitJob",
        'mutation($p: ID!, $pg: String!) { submitJob(input: {type: "url", url: $pg, projectId: $p}) { jobId } }'),
    Gql("Mutation.uploadDocuments", "mutation($p: ID!) { uploadDocuments(files: [], projectId: $p) { jobId } }",
        owner="validation_error"),
    Gql("Mutation.createApiKey", 'mutation($p: ID!) { createApiKey(projectId: $p, label: "intruder") { key } }'),
    Gql("Mutation.createWebhook", "mutation($p: ID!, $u: String!) { createWebhook(projectId: $p, url: $u) { secret } }"),
    Gql("Mutation.testWebhook", "mutation($p: ID!, $w: ID!) { testWebhook(projectId: $p, id: $w) }"),
    Gql("Mutation.updateWebhook",
        "mutation($p: ID!, $w: ID!, $u: String!) { updateWebhook(projectId: $p, id: $w, url: $u) { id url } }"),
    Gql("Mutation.updateProject", 'mutation($p: ID!) { updateProject(id: $p, input: {name: "Renamed"}) { id } }'),
    Gql("Mutation.rotateApiKey", "mutation($p: ID!, $k: ID!) { rotateApiKey(projectId: $p, keyId: $k) { key } }"),
    Gql("Mutation.revokeApiKey", "mutation($p: ID!, $k: ID!) { revokeApiKey(projectId: $p, keyId: $k) { id } }"),
    Gql("Mutation.createExport", "mutation($j: ID!) { createExport(jobId: $j) { exportId } }"),
    Gql("Query.batch", "query($b: ID!) { batch(id: $b) { id counts { succeeded } items { nodes { source } } } }"),
    Gql("Mutation.createBatch", 'mutation($p: ID!, $f: String!) { createBatch(input: {source: {type: "files", '
        'fileIds: [$f]}, projectId: $p}) { batch { id } } }'),
    Gql("Mutation.cancelBatch", "mutation($b: ID!) { cancelBatch(id: $b) { id } }", owner="conflict"),  # ended
    Gql("Mutation.cancelJob", "mutation($j: ID!) { cancelJob(id: $j) { id status } }", owner_job="job_queued"),
    Gql("Mutation.retryJob", "mutation($j: ID!) { retryJob(id: $j) { jobId } }", owner_job="job_failed"),
    Gql("Mutation.deleteWebhook", "mutation($p: ID!, $w: ID!) { deleteWebhook(projectId: $p, id: $w) }"),
    Gql("Mutation.revokeDashboardKey", "mutation($dk: ID!) { revokeDashboardKey(id: $dk) { id status } }"),
    Gql("Mutation.rotateProjectWebhookSecret",
        "mutation($p: ID!) { rotateProjectWebhookSecret(id: $p) { id defaultWebhookSecret } }"),
    Gql("Mutation.deleteJob", "mutation($j: ID!) { deleteJob(id: $j) { deleted jobId } }"),
    Gql("Mutation.archiveProject", "mutation($p: ID!) { archiveProject(id: $p) { id status } }"),
    # The intruder's own project with A's child ids.
    Gql("Mutation.revokeApiKey", "mutation($bp: ID!, $k: ID!) { revokeApiKey(projectId: $bp, keyId: $k) { id } }",
        owner=None),
    Gql("Mutation.rotateApiKey", "mutation($bp: ID!, $k: ID!) { rotateApiKey(projectId: $bp, keyId: $k) { key } }",
        owner=None),
    Gql("Mutation.updateWebhook",
        'mutation($bp: ID!, $w: ID!) { updateWebhook(projectId: $bp, id: $w, status: "disabled") { id } }', owner=None),
    Gql("Mutation.deleteWebhook", "mutation($bp: ID!, $w: ID!) { deleteWebhook(projectId: $bp, id: $w) }", owner=None),
    Gql("Mutation.testWebhook", "mutation($bp: ID!, $w: ID!) { testWebhook(projectId: $bp, id: $w) }", owner=None),
    Gql("Query.webhookDelivery", "query($bp: ID!, $d: ID!) { webhookDelivery(projectId: $bp, id: $d) { id } }",
        owner=None),
]
SUBSCRIPTION = "subscription($j: ID!) { jobProgress(jobId: $j) { kind status item { sourceLabel } } }"
GQL_VARS = {"p": "project", "k": "key", "dk": "dashboard_key", "j": "job", "w": "webhook", "d": "delivery",
            "bp": "b_project", "u": "hook", "pg": "page", "e": "export", "b": "batch", "f": "staged_file"}


# Coverage: the tables against the app --------------------------------------------------------------------------

def _flatten(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _flatten(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            for method in (route.methods or set()) - {"HEAD"}:
                yield method, prefix + route.path


def _id_like(arg_type: Any, seen: set[str]) -> bool:
    named = get_named_type(arg_type)
    if named.name == "ID":
        return True
    if isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        seen.add(named.name)
        return any(_id_like(f.type, seen) for f in named.fields.values())
    return False


def graphql_fields_taking_ids() -> set[str]:
    """Every field, on any type, with an argument that is an ID, holds one, or is named like one."""
    from imageextract.graphql_app import build_schema

    schema = build_schema()._schema
    found = set()
    for type_name, gtype in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(gtype, GraphQLObjectType):
            continue
        for field_name, field in gtype.fields.items():
            if any(_id_like(a.type, set()) or name.lower().endswith(("id", "ids")) for name, a in field.args.items()):
                found.add(f"{type_name}.{field_name}")
    return found


def test_tables_cover_every_route_and_field_that_takes_an_id(tmp_path: Path) -> None:
    served = set(_flatten(list(create_app(Settings(data_dir=tmp_path)).routes)))
    with_ids = {(m, p) for m, p in served if "{" in p}
    covered = {(c.method, c.route) for c in REST}
    assert not with_ids - covered, f"routes taking an id that the matrix does not cover: {sorted(with_ids - covered)}"
    assert not covered - served, f"the matrix names routes the app does not serve: {sorted(covered - served)}"
    assert not {(m, p) for m, p in PUBLIC if "{" in p}, "a public route takes an id: add it to the matrix's rules"
    guest_routes = {(m, p) for m, p in with_ids if p.startswith(GUEST_PREFIX + "/")}
    guest_tested = {(c.method, c.route) for c in REST if "{job}" in c.url}
    assert guest_routes <= guest_tested, f"guest routes test_guest_jobs misses: {sorted(guest_routes - guest_tested)}"
    fields = graphql_fields_taking_ids()
    # exportProgress refusals are in tests/exports; batchProgress: refused like jobProgress
    # (tests/batches/test_batches_graphql.py checks a foreign batch).
    tabled = {g.field for g in GRAPHQL} | {"Subscription.jobProgress", "Subscription.exportProgress",
                                           "Subscription.batchProgress"}
    assert not fields - tabled, f"GraphQL fields taking an id that the matrix does not cover: {sorted(fields - tabled)}"
    assert not tabled - fields, f"the matrix names GraphQL fields the schema lacks: {sorted(tabled - fields)}"


# The world -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


@dataclass
class World:
    a: dict[str, Any]
    b: dict[str, Any]
    ids: dict[str, str]  # A's ids, B's own parents, and URLs a caller may choose
    fake: dict[str, str]  # ids of the same shapes that exist nowhere
    secrets: list[str]  # what of A's must never reach anyone else
    callers: dict[str, tuple[dict[str, str], dict[str, str]]]  # name -> (headers, cookies)


async def _until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _queued_job(account: dict[str, Any], project_id: str, url: str) -> str:
    """A job that stays queued (no message is sent for it), so a cancel would still work on it."""
    job = await Job.create(id=uuid.uuid4(), account_id=account["account_id"], project_id=project_id,
                           created_by_id=account["user_id"], type="url", status="queued", input={"value": url},
                           credits_reserved=1, total_items=1)
    await JobItem.create(id=uuid.uuid4(), job=job, position=0, kind="url", source_label=url, source_url=url,
                         status="queued")
    await ledger.debit(account_id=account["account_id"], amount=1, job_id=job.id, note="url job, 1 source(s)")
    return str(job.id)


async def build_world(client: httpx.AsyncClient, pages: ThreadingHTTPServer, receiver: Receiver) -> World:
    tag = secrets.token_hex(4)
    a = await make_account(plan="pro", name=f"Owner Secret Corp {tag}")
    b = await make_account(plan="pro", password=PASSWORD)
    ha, hb, site = a["headers"], b["headers"], base_url(pages)

    async def ok(method: str, url: str, headers: dict[str, str], **kwargs: Any) -> Any:
        r = await client.request(method, url, headers=headers, **kwargs)
        assert r.status_code < 300, (method, url, r.status_code, r.text)
        return r.json()

    project = await ok("POST", "/api/v1/projects", ha, json={
        "name": f"Owner Secret Project {tag}", "slug": f"owner-secret-{tag}",
        "site_url": f"https://owner-secret-site-{tag}.example/"})
    pid = project["id"]
    key = await ok("POST", f"/api/v1/projects/{pid}/keys", ha, json={"label": f"owner-secret-key-{tag}"})
    dash = await ok("POST", "/api/dashboard/keys", ha, json={"label": f"owner-secret-dash-{tag}"})
    meta = {"owner": f"owner-secret-meta-{tag}"}
    done = await ok("POST", "/api/v1/jobs", ha, json={"type": "url", "input": f"{site}/page/2", "project_id": pid,
                                                      "metadata": meta})
    failed = await ok("POST", "/api/v1/jobs", ha, json={"type": "url", "input": f"{site}/status/404",
                                                        "project_id": pid, "metadata": meta})
    assert (await wait_for_job(client, done["job_id"], ha))["status"] == "done"
    assert (await wait_for_job(client, failed["job_id"], ha))["status"] == "failed"
    manifest = await ok("GET", f"/api/v1/jobs/{done['job_id']}/downloads", ha)
    export = await ok("POST", f"/api/v1/jobs/{done['job_id']}/exports", ha, json={})

    async def exported() -> bool:
        return (await ok("GET", f"/api/v1/exports/{export['export_id']}", ha))["status"] == "done"
    await _until(exported, "the owner's export")
    export_file = (await ok("GET", f"/api/v1/exports/{export['export_id']}", ha))["images"][0]["filename"]
    default_hook = f"{receiver.url}/owner-secret-default-{tag}"
    await ok("PATCH", f"/api/v1/projects/{pid}", ha, json={"default_webhook_url": default_hook})
    hook = await ok("POST", f"/api/v1/projects/{pid}/webhooks", ha, json={"url": f"{receiver.url}/owner-secret-{tag}"})
    delivery = await ok("POST", f"/api/v1/projects/{pid}/webhooks/{hook['id']}/test", ha)

    async def delivered() -> bool:
        d = await ok("GET", f"/api/v1/projects/{pid}/webhook-deliveries/{delivery['delivery_id']}", ha)
        return bool(d["status"] == "delivered")
    await _until(delivered, "the owner's test delivery")
    queued = await _queued_job(a, pid, f"{site}/page/3")
    staged = await ok("POST", "/api/v1/files", ha, json={"filename": f"owner-secret-{tag}.png",
                                                         "size_bytes": len(png_bytes(4))})
    await ok("PUT", staged["upload"]["url"], {}, content=png_bytes(4))
    spare = await ok("POST", "/api/v1/files", ha, json={"filename": f"owner-secret-spare-{tag}.png",
                                                        "size_bytes": len(png_bytes(5))})
    await ok("PUT", spare["upload"]["url"], {}, content=png_bytes(5))
    batch = await ok("POST", "/api/v1/batches", ha, json={"source": {"type": "files", "file_ids": [staged["id"]]},
                                                          "project_id": pid})

    async def batch_done() -> bool:
        return bool((await ok("GET", f"/api/v1/batches/{batch['id']}", ha))["status"] == "completed")
    await _until(batch_done, "the owner's batch")
    batch_item = str((await JobItem.get(job_id=batch["id"])).id)
    items = [str(i) for i in await JobItem.filter(job__account_id=a["account_id"]).values_list("id", flat=True)]

    # B: its own parents for the mixed calls, and every way of calling.
    b_key = await ok("POST", f"/api/v1/projects/{b['project_id']}/keys", hb, json={"label": "b"})
    a_scoped = await ok("POST", f"/api/v1/projects/{a['project_id']}/keys", ha, json={"label": "scoped"})
    revoked = await ok("POST", "/api/dashboard/keys", hb, json={"label": "to revoke"})
    await ok("DELETE", f"/api/dashboard/keys/{revoked['row']['id']}", hb)
    b_job = await ok("POST", "/api/v1/jobs", hb, json={"type": "url", "input": f"{site}/page/1"})
    await wait_for_job(client, b_job["job_id"], hb)
    async with httpx.AsyncClient(base_url=client.base_url, timeout=30) as browser:
        r = await browser.post("/api/auth/login", json={"email": b["email"], "password": PASSWORD})
        assert r.status_code == 200, r.text
        session = r.cookies["ie_session"]
    callers = {
        "owner": (ha, {}),
        "b_owner_key": (hb, {}),
        "b_project_key": ({"Authorization": f"Bearer {b_key['key']}"}, {}),
        "b_session": ({}, {"ie_session": session}),
        "a_scoped_key": ({"Authorization": f"Bearer {a_scoped['key']}"}, {}),
        "anonymous": ({}, {}),
        "guest_cookie": ({}, {"ie_guest": secrets.token_urlsafe(32)}),
        "revoked_key": ({"Authorization": f"Bearer {revoked['key']}"}, {}),
        "unknown_key": ({"Authorization": "Bearer ie_live_" + secrets.token_urlsafe(32)}, {}),
    }
    ids = {
        "project": pid, "key": key["row"]["id"], "dashboard_key": dash["row"]["id"], "job_done": done["job_id"],
        "job_failed": failed["job_id"], "job_queued": queued, "group": manifest["groups"][0]["group_id"],
        "image": manifest["images"][0]["image_id"], "webhook": hook["id"], "delivery": delivery["delivery_id"],
        "b_project": b["project_id"], "b_job": b_job["job_id"], "hook": f"{receiver.url}/intruder",
        "page": f"{site}/page/1", "export": export["export_id"], "export_file": export_file,
        "batch": batch["id"], "batch_item": batch_item, "staged_file": spare["id"],
    }
    hexid = secrets.token_hex(12)
    fake = ids | {"project": f"proj_{hexid}", "key": f"key_{hexid}", "dashboard_key": f"key_{hexid}",
                  "webhook": f"wh_{hexid}", "delivery": f"whd_{hexid}", "image": f"img_{hexid}",
                  "group": str(uuid.uuid4()), "export": f"exp_{hexid}", **{j: str(uuid.uuid4()) for j in JOBS},
                  "batch": str(uuid.uuid4()), "batch_item": str(uuid.uuid4()), "staged_file": f"file_{hexid}"}
    a_secrets = [
        a["account_id"], a["user_id"], a["email"], f"Owner Secret Corp {tag}", a["project_id"], a["api_key"],
        a["api_key"][:14], pid, f"Owner Secret Project {tag}", f"owner-secret-{tag}", f"owner-secret-site-{tag}",
        key["key"], key["key"][:14], key["row"]["id"], f"owner-secret-key-{tag}", dash["key"], dash["key"][:14],
        dash["row"]["id"], f"owner-secret-dash-{tag}", meta["owner"], f"{site}/page/2", f"{site}/status/404",
        f"{site}/page/3", default_hook, hook["id"], hook["url"], hook["secret"], delivery["delivery_id"],
        done["job_id"], failed["job_id"], queued, *items, *(i["image_id"] for i in manifest["images"]),
        export["export_id"],
        batch["id"], staged["id"], spare["id"], f"owner-secret-{tag}.png",
    ]
    return World(a=a, b=b, ids=ids, fake=fake, secrets=a_secrets, callers=callers)


async def state(account_id: str) -> dict[str, Any]:
    """Everything a caller could change of an account, read from the database."""
    acc = await Account.get(id=account_id)
    jobs = await Job.filter(account_id=account_id)
    return {
        "account": (acc.name, acc.plan, acc.status, acc.credits),
        "members": await Membership.filter(account_id=account_id).count(),
        "projects": sorted((p.id, p.name, p.slug, p.site_url, p.default_webhook_url, p.webhook_secret, p.status,
                            p.archived_at) for p in await Project.filter(account_id=account_id)),
        "keys": sorted((k.id, k.kind, k.label, k.key_hash, k.status, k.revoked_at, k.replaced_by_id)
                       for k in await ApiKey.filter(account_id=account_id)),
        "jobs": sorted((str(j.id), j.status, j.credits_used, j.credits_reserved, str(j.retry_of_id), j.finished_at)
                       for j in jobs),
        "items": sorted((str(i.id), i.status, i.refunded) for i in await JobItem.filter(job__account_id=account_id)),
        "images": await Image.filter(account_id_ref=account_id).count(),
        "hooks": sorted((w.id, w.url, w.secret, tuple(w.subscribed_events), w.status, w.disabled_reason)
                        for w in await WebhookEndpoint.filter(account_id=account_id)),
        "test deliveries": sorted(await WebhookDelivery.filter(account_id=account_id, event_type="webhook.test")
                                  .values_list("id", flat=True)),
        "ledger": [(e.entry_type, e.amount) for e in await LedgerEntry.filter(account_id=account_id).order_by("id")],
    }


# Calling and judging ---------------------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    text: str
    sent: str  # the URL and body as sent: ids the caller sent may come back

    def envelope(self) -> dict[str, Any] | None:
        try:
            body = json.loads(self.text)
        except ValueError:
            return None
        if isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict) \
                and set(body["error"]) == {"code", "message", "details"}:
            return dict(body["error"])
        return None


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


async def call(http: httpx.AsyncClient, c: Call, ids: dict[str, str], method: str | None = None,
               read_streams: bool = False) -> Answer:
    url = c.url.format_map(ids)
    kwargs: dict[str, Any] = {}
    if c.json is not None:
        kwargs["json"] = _fill(c.json, ids)
    if c.upload:
        kwargs["files"] = {"files": ("owner.png", png_bytes(3), "image/png")}
    async with http.stream(method or c.method, url, **kwargs) as r:
        live = r.headers.get("content-type", "").startswith("text/event-stream")
        text = "" if live and not read_streams else (await r.aread()).decode(errors="replace")
    return Answer(r.status_code, r.headers, text, url + json.dumps(kwargs.get("json")))


def judge(answer: Answer, allowed: set[int], world: World, what: str, head: bool = False) -> list[str]:
    problems = []
    if answer.status not in allowed:
        problems.append(f"{what}: {answer.status}, expected {sorted(allowed)}: {answer.text[:200]}")
    elif not head and answer.envelope() is None:
        problems.append(f"{what}: not the error envelope: {answer.text[:200]}")
    seen = answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    leaked = [s for s in world.secrets if s not in answer.sent and s in seen]
    if leaked:
        problems.append(f"{what}: leaks {leaked}")
    return problems


def _variants(template: str, ids: dict[str, str]) -> list[dict[str, str]]:
    """A job route is tried on each of A's jobs (finished, failed, queued)."""
    if "{job}" not in template:
        return [ids]
    return [ids | {"job": ids[j]} for j in JOBS]


async def _clients(stack: AsyncExitStack, world: World, base: httpx.URL) -> dict[str, httpx.AsyncClient]:
    return {name: await stack.enter_async_context(httpx.AsyncClient(base_url=base, headers=h, cookies=c, timeout=30))
            for name, (h, c) in world.callers.items()}


async def refuse_rest(clients: dict[str, httpx.AsyncClient], world: World, callers: tuple[str, ...],
                      allowed: set[int], compare_fake: bool) -> list[str]:
    problems: list[str] = []
    for c in REST:
        for ids in _variants(c.url, world.ids):
            for who in callers:
                what = f"{who} {c.method} {c.url.format_map(ids)}{' (upload)' if c.upload else ''}"
                answer = await call(clients[who], c, ids)
                problems += judge(answer, allowed, world, what)
                if c.method == "GET":
                    problems += judge(await call(clients[who], c, ids, method="HEAD"), allowed, world,
                                      "HEAD " + what, head=True)
                if compare_fake and who != "a_scoped_key" and not c.url.startswith("/api/v1/jobs/"):
                    # Learns nothing: the same answer as for ids that exist nowhere.
                    twin = await call(clients[who], c, _fill_fake(world, ids))
                    mine = (answer.status, (answer.envelope() or {}).get("code"))
                    theirs = (twin.status, (twin.envelope() or {}).get("code"))
                    if mine != theirs:
                        problems.append(f"{what}: {mine} tells A's ids apart from unknown ones {theirs}")
    return problems


def _fill_fake(world: World, ids: dict[str, str]) -> dict[str, str]:
    return {k: (world.fake[k] if v == world.ids.get(k) else v) for k, v in ids.items()}


async def test_rest_routes_refuse_other_accounts_and_anonymous(
        client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer, receiver: Receiver) -> None:
    world = await build_world(client, pages, receiver)
    before = (await state(world.a["account_id"]), await state(world.b["account_id"]))
    problems: list[str] = []
    async with AsyncExitStack() as stack:
        clients = await _clients(stack, world, client.base_url)
        problems += await refuse_rest(clients, world, INTRUDERS, {403, 404}, compare_fake=True)
        problems += await refuse_rest(clients, world, ANONYMOUS, {401}, compare_fake=False)
        after = (await state(world.a["account_id"]), await state(world.b["account_id"]))
        for who, old, new in (("A", before[0], after[0]), ("B", before[1], after[1])):
            problems += [f"{who}'s {k} changed: {old[k]} -> {new[k]}" for k in old if old[k] != new[k]]
        # The same calls as the owner succeed: every refusal above was about the caller, not a wrong id.
        for c in REST:
            if c.owner is not None:
                answer = await call(clients["owner"], c, world.ids | {"job": world.ids[c.owner_job]}, read_streams=True)
                if answer.status != c.owner:
                    problems.append(f"owner {c.method} {c.url}: {answer.status}, expected {c.owner}: {answer.text[:200]}")
    assert not problems, "\n".join(problems)


# GraphQL ---------------------------------------------------------------------------------------------------------

async def gql(http: httpx.AsyncClient, document: str, ids: dict[str, str]) -> tuple[dict[str, Any], Answer]:
    variables = {v: ids[k] for v, k in GQL_VARS.items() if f"${v}:" in document}
    r = await http.post("/graphql", json={"query": document, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json(), Answer(r.status_code, r.headers, r.text, json.dumps(variables))


def _codes(body: dict[str, Any]) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


def judge_gql(body: dict[str, Any], answer: Answer, codes: set[str], world: World, what: str) -> list[str]:
    problems = []
    if body.get("data") is not None or not body.get("errors") or not set(_codes(body)) <= codes:
        problems.append(f"{what}: expected an error coded {sorted(codes)} and no data: {answer.text[:300]}")
    leaked = [s for s in world.secrets if s not in answer.sent and s in answer.text]
    if leaked:
        problems.append(f"{what}: leaks {leaked}")
    return problems


async def _ws(base: httpx.URL, headers: dict[str, str], cookies: dict[str, str], job_id: str,
              init: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Subscribe to a job's progress: (the events received, the close code; None if it completed normally)."""
    url = str(base).replace("http://", "ws://").rstrip("/") + "/graphql"
    extra = dict(headers)
    if cookies:
        extra["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    events: list[dict[str, Any]] = []
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                  additional_headers=extra) as ws:
        try:
            await ws.send(json.dumps({"type": "connection_init", "payload": init or {}}))
            if json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack":
                await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                          "payload": {"query": SUBSCRIPTION, "variables": {"j": job_id}}}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message["type"] == "complete":
                        return events, None
                    if message["type"] == "error":  # this operation refused; the connection stays open
                        return [message], 0
                    events.append(message)
        except websockets.ConnectionClosed as closed:
            return events, closed.rcvd.code if closed.rcvd else -1
        except TimeoutError:
            return events, -2  # left open and silent
    raise AssertionError("unreachable")


async def refuse_ws(world: World, base: httpx.URL, job_ids: list[str]) -> list[str]:
    problems = []
    # B's key in connection_init, B's project key on the handshake, B's session cookie; and no good credentials.
    ways = {"b_owner_key": ({}, {}, {"Authorization": world.b["headers"]["Authorization"]}),
            "b_project_key": (*world.callers["b_project_key"], None),
            "b_session": (*world.callers["b_session"], None),
            "a_scoped_key": (*world.callers["a_scoped_key"], None),
            "anonymous": ({}, {}, None), "guest_cookie": (*world.callers["guest_cookie"], None),
            "revoked_key": ({}, {}, {"Authorization": world.callers["revoked_key"][0]["Authorization"]}),
            "unknown_key": (*world.callers["unknown_key"], None)}
    for who, (headers, cookies, init) in ways.items():
        for job_id in job_ids:
            events, code = await _ws(base, headers, cookies, job_id, init)
            refused_connection = code == 4403 and not events
            refused_operation = code == 0 and len(events) == 1 and \
                events[0]["payload"][0]["extensions"]["code"] in ("forbidden", "not_found")
            if not (refused_connection or refused_operation):
                problems.append(f"{who} jobProgress({job_id}): {code} after {events[:2]}, expected a refusal")
    return problems


async def test_graphql_fields_refuse_other_accounts_and_anonymous(
        client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer, receiver: Receiver) -> None:
    world = await build_world(client, pages, receiver)
    before = (await state(world.a["account_id"]), await state(world.b["account_id"]))
    problems: list[str] = []
    async with AsyncExitStack() as stack:
        clients = await _clients(stack, world, client.base_url)
        for g in GRAPHQL:
            for ids in _variants("{job}" if "$j:" in g.document else "", world.ids):
                for who in INTRUDERS + ANONYMOUS:
                    codes = {"forbidden", "not_found"} if who in INTRUDERS else {"unauthorized"}
                    body, answer = await gql(clients[who], g.document, ids)
                    what = f"{who} {g.field} {answer.sent}"
                    problems += judge_gql(body, answer, codes, world, what)
                    if who in INTRUDERS and who != "a_scoped_key" and "$j:" not in g.document:
                        # Learns nothing: the same answer as for ids that exist nowhere.
                        twin, _ = await gql(clients[who], g.document, _fill_fake(world, ids))
                        if _codes(body) != _codes(twin):
                            problems.append(f"{what}: {_codes(body)} tells A's ids apart from unknown ones "
                                            f"{_codes(twin)}")
        problems += await refuse_ws(world, client.base_url, [world.ids[j] for j in JOBS])
        after = (await state(world.a["account_id"]), await state(world.b["account_id"]))
        for who, old, new in (("A", before[0], after[0]), ("B", before[1], after[1])):
            problems += [f"{who}'s {k} changed: {old[k]} -> {new[k]}" for k in old if old[k] != new[k]]
        # The owner, with the same documents: success (or the validation error an empty upload deserves).
        events, code = await _ws(client.base_url, world.a["headers"], {}, world.ids["job_done"])
        if code is not None or not events:
            problems.append(f"owner jobProgress: closed with {code}, events {events[:2]}")
        for g in GRAPHQL:
            if g.owner is not None:
                body, answer = await gql(clients["owner"], g.document, world.ids | {"job": world.ids[g.owner_job]})
                if _codes(body) != ([] if g.owner == "ok" else [g.owner]):
                    problems.append(f"owner {g.field}: {answer.text[:300]}")
    assert not problems, "\n".join(problems)


# Guests ----------------------------------------------------------------------------------------------------------

async def test_guest_jobs(client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer,
                          receiver: Receiver) -> None:
    """A guest's job answers its guest cookie only; the guest cookie opens nothing of an account's. (One of the
    three guest jobs a day that 127.0.0.1 may submit to this server.)"""
    world = await build_world(client, pages, receiver)
    problems: list[str] = []
    async with AsyncExitStack() as stack:
        guest = await stack.enter_async_context(httpx.AsyncClient(base_url=client.base_url, timeout=30))
        r = await guest.post("/api/v1/jobs", json={"type": "url", "input": f"{base_url(pages)}/page/2"})
        assert r.status_code == 202, r.text
        guest_job = r.json()["job_id"]
        await wait_for_job(guest, guest_job)
        manifest = (await guest.get(f"/api/v1/jobs/{guest_job}/downloads")).json()
        clients = await _clients(stack, world, client.base_url)
        clients["guest"] = guest
        # The guest is anonymous to everything of the account's.
        problems += await refuse_rest(clients, world, ("guest",), {401}, compare_fake=False)
        for g in GRAPHQL:
            body, answer = await gql(guest, g.document, world.ids | {"job": world.ids["job_done"]})
            problems += judge_gql(body, answer, {"unauthorized"}, world, f"guest {g.field}")
        # Everyone but the guest is refused the guest's job.
        guest_ids = world.ids | {"job": guest_job, "group": manifest["groups"][0]["group_id"],
                                 "image": manifest["images"][0]["image_id"]}
        guest_world = World(a={}, b={}, ids=guest_ids, fake={}, callers={}, secrets=[
            guest_job, f"{base_url(pages)}/page/2", *(i["image_id"] for i in manifest["images"]),
            *(g["group_id"] for g in manifest["groups"])])
        before = await Job.get(id=guest_job)
        for c in REST:
            if "{job}" not in c.url:
                continue
            for who in INTRUDERS + ("anonymous", "guest_cookie", "unknown_key"):
                allowed = {403, 404} if who in INTRUDERS else {401, 403, 404}
                answer = await call(clients[who], c, guest_ids)
                problems += judge(answer, allowed, guest_world, f"{who} {c.method} {c.url} (the guest's job)")
            if c.method == "GET":
                answer = await call(guest, c, guest_ids, read_streams=True)
                if answer.status != 200:
                    problems.append(f"guest {c.method} {c.url} of its own job: {answer.status} {answer.text[:200]}")
        for who in INTRUDERS + ("anonymous", "guest_cookie"):
            body, answer = await gql(clients[who], "query($j: ID!) { job(id: $j) { items { nodes { sourceLabel } } } }", guest_ids)
            codes = {"forbidden", "not_found"} | (set() if who in INTRUDERS else {"unauthorized"})
            problems += judge_gql(body, answer, codes, guest_world, f"{who} job(the guest's job)")
        body, _ = await gql(guest, "query($j: ID!) { job(id: $j) { id } }", guest_ids)
        if body.get("errors") or body["data"]["job"]["id"] != guest_job:
            problems.append(f"the guest cannot read its own job over GraphQL: {body}")
        after = await Job.get(id=guest_job)
        if (after.status, after.updated_at) != (before.status, before.updated_at):
            problems.append(f"the guest's job changed: {before.status} -> {after.status}")
        if await Job.filter(retry_of_id=guest_job).exists():
            problems.append("someone retried the guest's job")
    assert not problems, "\n".join(problems)
