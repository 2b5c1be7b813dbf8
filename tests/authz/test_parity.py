"""Parity: every operation that exists on both doors (the README's table of operations) gives the same
outcome, error code and message over REST and over GraphQL, for the same inputs and the same caller.

Each case runs REST, then GraphQL (with the `gql` client), then REST again, and compares the GraphQL answer
with the REST answer given in the same state (the second REST call), so operations that change state
(create, revoke, cancel...) are compared too: the first call makes the change, the next two meet its result.
Callers: the owner, another account's key, a key scoped to another project, anonymous, a guest cookie only,
a revoked key. Ids: real ones, another account's, and ids that exist nowhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

from tests.authz.test_matrix import World, build_world, pages, receiver  # noqa: F401  (fixtures)
from tests.receiver import Receiver

Outcome = tuple[str, ...]


@dataclass(frozen=True)
class Op:
    name: str
    method: str
    path: str
    body: Any
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    callers: tuple[str, ...] = ("owner", "b_owner_key", "a_scoped_key", "anonymous", "guest_cookie",
                                "revoked_key")


_SLOT = re.compile(r"\{(\w+)\}")


def _fill(value: Any, ids: dict[str, str]) -> Any:
    """`{name}` -> ids[name] (GraphQL's own braces never match: they hold spaces or colons)."""
    if isinstance(value, str):
        return _SLOT.sub(lambda m: ids[m.group(1)] if m.group(1) in ids else m.group(0), value)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


# Reads ------------------------------------------------------------------------------------------------------
OPS: list[Op] = [
    Op("account", "GET", "/api/v1/account", None, "{ account { id plan membershipRole } }"),
    Op("limits", "GET", "/api/v1/account/limits", None, "{ limits { plan bulkMaxUrls } }"),
    Op("ledger", "GET", "/api/v1/account/credits/ledger?limit=5", None,
       "{ ledger(first: 5) { nodes { id amount } } }"),
    Op("usage", "GET", "/api/v1/account/usage", None, "{ usage { jobsTotal creditsDebited } }"),
    Op("usage: bad since", "GET", "/api/v1/account/usage?since=yesterday", None,
       '{ usage(since: "yesterday") { jobsTotal } }'),
    Op("usage: until before since", "GET",
       "/api/v1/account/usage?since=2026-05-01T00:00:00Z&until=2026-04-01T00:00:00Z", None,
       '{ usage(since: "2026-05-01T00:00:00Z", until: "2026-04-01T00:00:00Z") { jobsTotal } }'),
    Op("project", "GET", "/api/v1/projects/{project}", None, '{ project(id: "{project}") { id name } }'),
    Op("project: foreign", "GET", "/api/v1/projects/{b_project}", None, '{ project(id: "{b_project}") { id } }'),
    Op("project: unknown", "GET", "/api/v1/projects/proj_{nowhere}", None,
       '{ project(id: "proj_{nowhere}") { id } }'),
    Op("api keys", "GET", "/api/v1/projects/{project}/keys", None,
       '{ apiKeys(projectId: "{project}") { nodes { id } } }'),
    Op("api keys: foreign", "GET", "/api/v1/projects/{b_project}/keys", None,
       '{ apiKeys(projectId: "{b_project}") { nodes { id } } }'),
    Op("dashboard keys", "GET", "/api/dashboard/keys", None, "{ dashboardKeys { nodes { id } } }"),
    Op("job", "GET", "/api/v1/jobs/{job_done}", None, '{ job(id: "{job_done}") { id status } }'),
    Op("job: foreign", "GET", "/api/v1/jobs/{b_job}", None, '{ job(id: "{b_job}") { id } }'),
    Op("job: unknown", "GET", "/api/v1/jobs/{uuid}", None, '{ job(id: "{uuid}") { id } }'),
    Op("job: not an id", "GET", "/api/v1/jobs/not-a-uuid", None, '{ job(id: "not-a-uuid") { id } }'),
    Op("job items", "GET", "/api/v1/jobs/{job_done}/items", None,
       '{ job(id: "{job_done}") { items { nodes { id status } } } }'),
    Op("job result", "GET", "/api/v1/jobs/{job_done}/result", None,
       '{ job(id: "{job_done}") { images { nodes { id url } } } }'),
    Op("job result: failed job", "GET", "/api/v1/jobs/{job_failed}/result", None,
       '{ job(id: "{job_failed}") { images { nodes { id } } } }'),
    Op("job result: queued job", "GET", "/api/v1/jobs/{job_queued}/result", None,
       '{ job(id: "{job_queued}") { images { nodes { id } } } }'),
    Op("job result: foreign", "GET", "/api/v1/jobs/{b_job}/result", None,
       '{ job(id: "{b_job}") { images { nodes { id } } } }'),
    Op("webhooks", "GET", "/api/v1/projects/{project}/webhooks", None,
       '{ webhooks(projectId: "{project}") { nodes { id } } }'),
    Op("webhooks: foreign", "GET", "/api/v1/projects/{b_project}/webhooks", None,
       '{ webhooks(projectId: "{b_project}") { nodes { id } } }'),
    Op("deliveries", "GET", "/api/v1/projects/{project}/webhook-deliveries?limit=5", None,
       '{ webhookDeliveries(projectId: "{project}", first: 5) { nodes { id } } }'),
    Op("delivery", "GET", "/api/v1/projects/{project}/webhook-deliveries/{delivery}", None,
       '{ webhookDelivery(projectId: "{project}", id: "{delivery}") { id status } }'),
    Op("delivery: unknown", "GET", "/api/v1/projects/{project}/webhook-deliveries/whd_{nowhere}", None,
       '{ webhookDelivery(projectId: "{project}", id: "whd_{nowhere}") { id } }'),
]

# Writes -----------------------------------------------------------------------------------------------------
OPS += [
    Op("create project", "POST", "/api/v1/projects", {"name": "Parity {tag}"},
       'mutation { createProject(input: {name: "Parity {tag}"}) { id } }'),
    Op("create project: empty name", "POST", "/api/v1/projects", {"name": " "},
       'mutation { createProject(input: {name: " "}) { id } }'),
    Op("create project: bad slug", "POST", "/api/v1/projects", {"name": "X", "slug": "Not A Slug!"},
       'mutation { createProject(input: {name: "X", slug: "Not A Slug!"}) { id } }'),
    Op("create project: private webhook", "POST", "/api/v1/projects",
       {"name": "Y {tag}", "default_webhook_url": "http://10.1.2.3/hook"},
       'mutation { createProject(input: {name: "Y {tag}", defaultWebhookUrl: "http://10.1.2.3/hook"}) { id } }'),
    Op("update project: null name", "PATCH", "/api/v1/projects/{project}", {"name": None},
       'mutation { updateProject(id: "{project}", input: {name: null}) { id } }'),
    Op("update project: nothing", "PATCH", "/api/v1/projects/{project}", {},
       'mutation { updateProject(id: "{project}", input: {}) { id } }'),
    Op("update project: foreign", "PATCH", "/api/v1/projects/{b_project}", {"name": "Mine now"},
       'mutation { updateProject(id: "{b_project}", input: {name: "Mine now"}) { id } }'),
    Op("archive project: the default one", "DELETE", "/api/v1/projects/{a_default_project}", None,
       'mutation { archiveProject(id: "{a_default_project}") { id } }'),
    Op("rotate webhook secret: foreign", "POST", "/api/v1/projects/{b_project}/webhook-secret/rotate", None,
       'mutation { rotateProjectWebhookSecret(id: "{b_project}") { id } }'),
    Op("create api key", "POST", "/api/v1/projects/{project}/keys", {"label": "parity"},
       'mutation { createApiKey(projectId: "{project}", label: "parity") { key } }'),
    Op("create api key: long label", "POST", "/api/v1/projects/{project}/keys", {"label": "x" * 300},
       'mutation { createApiKey(projectId: "{project}", label: "' + "x" * 300 + '") { key } }'),
    Op("revoke api key: unknown", "POST", "/api/v1/projects/{project}/keys/key_{nowhere}/revoke", None,
       'mutation { revokeApiKey(projectId: "{project}", keyId: "key_{nowhere}") { id } }'),
    Op("rotate api key: unknown", "POST", "/api/v1/projects/{project}/keys/key_{nowhere}/rotate", None,
       'mutation { rotateApiKey(projectId: "{project}", keyId: "key_{nowhere}") { key } }'),
    Op("revoke dashboard key: unknown", "DELETE", "/api/dashboard/keys/key_{nowhere}", None,
       'mutation { revokeDashboardKey(id: "key_{nowhere}") { id } }'),
    Op("submit: port 65536", "POST", "/api/v1/jobs", {"type": "url", "input": "http://127.0.0.1:65536/"},
       'mutation { submitJob(input: {type: "url", url: "http://127.0.0.1:65536/"}) { jobId } }'),
    Op("submit: port 0", "POST", "/api/v1/jobs", {"type": "url", "input": "http://127.0.0.1:0/"},
       'mutation { submitJob(input: {type: "url", url: "http://127.0.0.1:0/"}) { jobId } }'),
    Op("submit: not http", "POST", "/api/v1/jobs", {"type": "url", "input": "ftp://example.com/"},
       'mutation { submitJob(input: {type: "url", url: "ftp://example.com/"}) { jobId } }'),
    Op("submit: private address", "POST", "/api/v1/jobs", {"type": "url", "input": "http://10.0.0.1/"},
       'mutation { submitJob(input: {type: "url", url: "http://10.0.0.1/"}) { jobId } }'),
    Op("submit: unknown type", "POST", "/api/v1/jobs", {"type": "video", "input": "http://example.com/"},
       'mutation { submitJob(input: {type: "video", url: "http://example.com/"}) { jobId } }'),
    Op("submit: empty bulk", "POST", "/api/v1/jobs", {"type": "bulk", "input": []},
       'mutation { submitJob(input: {type: "bulk", urls: []}) { jobId } }'),
    Op("submit: foreign project", "POST", "/api/v1/jobs",
       {"type": "url", "input": "{page}", "project_id": "{b_project}"},
       'mutation { submitJob(input: {type: "url", url: "{page}", projectId: "{b_project}"}) { jobId } }'),
    Op("delete job: foreign", "DELETE", "/api/v1/jobs/{b_job}", None,
       'mutation { deleteJob(id: "{b_job}") { deleted } }'),
    Op("delete job: unknown", "DELETE", "/api/v1/jobs/{uuid}", None,
       'mutation { deleteJob(id: "{uuid}") { deleted } }'),
    Op("list jobs: unknown status", "GET", "/api/v1/jobs?status=exploded", None,
       '{ jobs(status: "exploded") { totalCount } }'),
    Op("list jobs: bad date", "GET", "/api/v1/jobs?created_after=yesterday", None,
       '{ jobs(createdAfter: "yesterday") { totalCount } }'),
    Op("list jobs: foreign project", "GET", "/api/v1/jobs?project_id={b_project}", None,
       '{ jobs(projectId: "{b_project}") { totalCount } }'),
    Op("cancel: finished job", "POST", "/api/v1/jobs/{job_done}/cancel", None,
       'mutation { cancelJob(id: "{job_done}") { id } }'),
    Op("cancel: foreign job", "POST", "/api/v1/jobs/{b_job}/cancel", None,
       'mutation { cancelJob(id: "{b_job}") { id } }'),
    Op("retry: finished job", "POST", "/api/v1/jobs/{job_done}/retry", None,
       'mutation { retryJob(id: "{job_done}") { jobId } }'),
    Op("retry: unknown job", "POST", "/api/v1/jobs/{uuid}/retry", None,
       'mutation { retryJob(id: "{uuid}") { jobId } }'),
    Op("create webhook: private url", "POST", "/api/v1/projects/{project}/webhooks", {"url": "http://10.9.9.9/"},
       'mutation { createWebhook(projectId: "{project}", url: "http://10.9.9.9/") { secret } }'),
    Op("create webhook: unknown event", "POST", "/api/v1/projects/{project}/webhooks",
       {"url": "{hook}", "subscribed_events": ["job.exploded"]},
       'mutation { createWebhook(projectId: "{project}", url: "{hook}", subscribedEvents: ["job.exploded"]) '
       '{ secret } }'),
    Op("update webhook: null events", "PATCH", "/api/v1/projects/{project}/webhooks/{webhook}",
       {"subscribed_events": None},
       'mutation { updateWebhook(projectId: "{project}", id: "{webhook}", subscribedEvents: null) '
       '{ subscribedEvents } }'),
    Op("update webhook: bad status", "PATCH", "/api/v1/projects/{project}/webhooks/{webhook}",
       {"status": "paused"},
       'mutation { updateWebhook(projectId: "{project}", id: "{webhook}", status: "paused") { id } }'),
    Op("update webhook: nothing", "PATCH", "/api/v1/projects/{project}/webhooks/{webhook}", {},
       'mutation { updateWebhook(projectId: "{project}", id: "{webhook}") { id } }'),
    Op("delete webhook: unknown", "DELETE", "/api/v1/projects/{project}/webhooks/wh_{nowhere}", None,
       'mutation { deleteWebhook(projectId: "{project}", id: "wh_{nowhere}") }'),
    Op("test webhook: foreign project", "POST", "/api/v1/projects/{b_project}/webhooks/{webhook}/test", None,
       'mutation { testWebhook(projectId: "{b_project}", id: "{webhook}") }'),
]


async def _rest(http: httpx.AsyncClient, op: Op, ids: dict[str, str], headers: dict[str, str],
                cookies: dict[str, str]) -> Outcome:
    body = _fill(op.body, ids)
    headers = dict(headers)
    if body is not None:
        headers["Content-Type"] = "application/json"
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    http.cookies.clear()
    r = await http.request(op.method, _fill(op.path, ids), headers=headers,
                           content=None if body is None else json.dumps(body))
    assert r.status_code != 500, r.text
    data = r.json()
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        assert r.status_code >= 400 or r.status_code == 202, (r.status_code, data)
        return ("error", data["error"]["code"], data["error"]["message"])
    assert r.status_code < 300, (r.status_code, data)
    return ("ok",)


async def _gql(base: str, op: Op, ids: dict[str, str], headers: dict[str, str], cookies: dict[str, str]) -> Outcome:
    extra = dict(headers)
    if cookies:
        extra["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    transport = HTTPXAsyncTransport(url=f"{base}/graphql", headers=extra, timeout=30)
    async with Client(transport=transport) as session:
        try:
            await session.execute(GraphQLRequest(_fill(op.query, ids)))
        except TransportQueryError as exc:
            first = (exc.errors or [{}])[0]
            return ("error", (first.get("extensions") or {}).get("code", "?"), first.get("message", ""))
    return ("ok",)


@pytest.fixture
async def world(client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer,  # noqa: F811
                receiver: Receiver) -> AsyncIterator[World]:  # noqa: F811
    yield await build_world(client, pages, receiver)


async def test_both_doors_agree_on_every_operation(client: httpx.AsyncClient, world: World) -> None:
    import secrets
    import uuid

    ids = world.ids | {"nowhere": secrets.token_hex(12), "uuid": str(uuid.uuid4()), "tag": secrets.token_hex(3),
                       "a_default_project": world.a["project_id"]}
    base = str(client.base_url).rstrip("/")
    disagreements: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for op in OPS:
            for who in op.callers:
                headers, cookies = world.callers[who]
                first = await _rest(http, op, ids, headers, cookies)
                via_gql = await _gql(base, op, ids, headers, cookies)
                again = await _rest(http, op, ids, headers, cookies)
                if via_gql != again:
                    disagreements.append(f"{op.name} as {who}: REST {again} (first {first}), GraphQL {via_gql}")
    assert not disagreements, "\n".join(disagreements)
