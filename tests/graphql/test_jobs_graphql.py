"""GraphQL job reads: the same data as REST, cursor pagination and filters, and no N+1 (queries counted)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from imageextract.app import create_app
from imageextract.models import Image, Job, JobItem
from imageextract.runtime import open_runtime
from tests.factories import make_account
from tests.support import Backend


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.selects = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).lstrip().upper().startswith("%S") and record.args:
            sql = str(record.args[0])
        else:
            sql = record.getMessage()
        if sql.lstrip().upper().startswith("SELECT"):
            self.selects += 1


@pytest.fixture
async def app_client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process (lifespan opened by hand), so its database queries can be counted."""
    EXECUTOR_CACHE.clear()
    settings = backend.settings(embedded_worker=False)
    app = create_app(settings)
    async with open_runtime(settings, role="api", runtime=app.state.runtime):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def _make_jobs(account: dict[str, Any], n: int) -> list[str]:
    ids = []
    for j in range(n):
        job = await Job.create(id=uuid.uuid4(), account_id=account["account_id"], project_id=account["project_id"],
                               type="bulk", status="done", input=["http://a", "http://b"], total_items=2,
                               completed_items=2, image_count=4, credits_used=2)
        for pos in range(2):
            item = await JobItem.create(id=uuid.uuid4(), job=job, position=pos, kind="url", source_label=f"u{pos}",
                                        status="done", image_count=2)
            for k in range(2):
                await Image.create(job=job, item=item, account_id_ref=account["account_id"], position=k,
                                   filename=f"{j}-{pos}-{k}.png", source_kind="web", width=10, height=10, format="png",
                                   storage_key=f"images/{j}{pos}{k}.png")
        ids.append(str(job.id))
    return ids


QUERY = """query($first: Int!, $after: String) { jobs(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  nodes { id status creditsUsed items { nodes { position status imageCount } }
  images { totalCount nodes { filename width format groupId } } } } }"""


async def _count(client: httpx.AsyncClient, headers: dict[str, str], first: int) -> tuple[int, dict[str, Any]]:
    counter = _Counter()
    log = logging.getLogger("tortoise.db_client")
    old = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(counter)
    try:
        r = await client.post("/graphql", json={"query": QUERY, "variables": {"first": first}}, headers=headers)
    finally:
        log.removeHandler(counter)
        log.setLevel(old)
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    return counter.selects, r.json()["data"]["jobs"]


async def test_jobs_query_batches_items_and_images(app_client: httpx.AsyncClient) -> None:
    small = await make_account()
    big = await make_account()
    await _make_jobs(small, 2)
    await _make_jobs(big, 6)
    few, data_small = await _count(app_client, small["headers"], 10)
    many, data_big = await _count(app_client, big["headers"], 10)
    assert len(data_small["nodes"]) == 2 and len(data_big["nodes"]) == 6
    assert all(len(n["items"]["nodes"]) == 2 and len(n["images"]["nodes"]) == 4 for n in data_big["nodes"])
    assert few == many, f"queries grow with the number of jobs: {few} for 2 jobs, {many} for 6"
    assert many <= 10


async def test_cursor_pagination_and_filters(app_client: httpx.AsyncClient) -> None:
    acc = await make_account()
    ids = await _make_jobs(acc, 5)
    seen: list[str] = []
    after = None
    while True:
        r = await app_client.post("/graphql", headers=acc["headers"],
                                  json={"query": QUERY, "variables": {"first": 2, "after": after}})
        page = r.json()["data"]["jobs"]
        assert page["totalCount"] == 5
        seen += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    r = await app_client.post("/graphql", headers=acc["headers"], json={
        "query": '{ jobs(first: 10, status: "failed") { totalCount } }'})
    assert r.json()["data"]["jobs"]["totalCount"] == 0
    r = await app_client.post("/graphql", headers=acc["headers"], json={
        "query": '{ jobs(first: 10, type: "bulk") { totalCount } }'})
    assert r.json()["data"]["jobs"]["totalCount"] == 5
    r = await app_client.post("/graphql", headers=acc["headers"], json={
        "query": '{ jobs(first: 10, after: "garbage") { totalCount } }'})
    assert r.json()["errors"][0]["extensions"]["code"] == "validation_error"
    # REST and GraphQL agree on one job.
    rest = (await app_client.get(f"/api/v1/jobs/{ids[0]}", headers=acc["headers"])).json()
    r = await app_client.post("/graphql", headers=acc["headers"], json={
        "query": "query($id: ID!) { job(id: $id) { id status creditsUsed imageCount items { nodes { status } } } }",
        "variables": {"id": ids[0]}})
    g = r.json()["data"]["job"]
    assert (g["id"], g["status"], g["creditsUsed"], g["imageCount"]) == (
        rest["id"], rest["status"], rest["credits_used"], rest["image_count"])
    assert [i["status"] for i in g["items"]["nodes"]] == [x["status"] for x in rest["groups"]]
