"""GraphQL lists that can grow are connections: walking them by cursor gives every row once, in the order the
REST door lists them."""

from __future__ import annotations

from typing import Any

import httpx

from imageextract.models import Image, JobItem
from tests.results.conftest import graphql
from tests.results.test_exports import seed_done_job_with_images


async def walk(base: str, headers: dict[str, str], query: str, path: list[str], variables: dict[str, Any],
               first: int) -> tuple[list[Any], int]:
    """Every node of the connection at `path`, `first` at a time; and the totalCount it reported."""
    nodes: list[Any] = []
    after = None
    while True:
        data, errors = await graphql(base, headers, query, {**variables, "first": first, "after": after})
        assert errors is None and data is not None, errors
        conn: Any = data
        for key in path:
            conn = conn[key]
        assert len(conn["edges"]) <= first
        assert [e["node"] for e in conn["edges"]] == conn["nodes"]
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        nodes += conn["nodes"]
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes, conn["totalCount"]
        after = conn["pageInfo"]["endCursor"]


CONN = "totalCount edges { cursor node { %s } } nodes { %s } pageInfo { hasNextPage hasPreviousPage endCursor }"


async def test_job_images_and_items_by_cursor(client: httpx.AsyncClient, server: Any,
                                              account: dict[str, Any]) -> None:
    h = account["headers"]
    job_id = await seed_done_job_with_images(account, [{"filename": f"a{i}.png"} for i in range(5)])
    second = await JobItem.create(job_id=job_id, position=1, kind="url", source_label="b", status="done")
    await Image.bulk_create([Image(job_id=job_id, item_id=second.id, position=i, source_kind="img",
                                   filename=f"b{i}.png", storage_key=f"images/ee/ff/b{i}{job_id}.png")
                             for i in range(3)]
                            + [Image(job_id=job_id, item_id=second.id, position=3 + i, source_kind="img",
                                     filename=f"lost{i}.png", error="HTTP 404") for i in range(3)])
    result = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=h)).json()
    query = ("query($id: ID!, $first: Int!, $after: String) { job(id: $id) { images(first: $first, after: $after) { "
             + CONN % ("id filename", "id filename") + " } } }")
    for first in (1, 3, 100):
        nodes, total = await walk(server.base_url, h, query, ["job", "images"], {"id": job_id}, first)
        assert nodes == [{"id": i["id"], "filename": i["filename"]} for i in result["images"]] and total == 8
    query = ("query($id: ID!, $first: Int!, $after: String) { job(id: $id) { failedImages(first: $first, "
             "after: $after) { " + CONN % ("filename error", "filename error") + " } } }")
    nodes, total = await walk(server.base_url, h, query, ["job", "failedImages"], {"id": job_id}, 2)
    assert nodes == [{"filename": f["filename"], "error": f["error"]} for f in result["failed_images"]]
    assert total == 3
    query = ("query($id: ID!, $first: Int!, $after: String) { job(id: $id) { items(first: $first, after: $after) { "
             + CONN % ("position sourceLabel", "position sourceLabel") + " } } }")
    nodes, total = await walk(server.base_url, h, query, ["job", "items"], {"id": job_id}, 1)
    assert [n["position"] for n in nodes] == [0, 1] and total == 2
    data, errors = await graphql(server.base_url, h, query, {"id": job_id, "first": 1, "after": "bm90LWEtY3Vyc29y"})
    assert errors and errors[0]["extensions"]["code"] == "validation_error"
    data, errors = await graphql(server.base_url, h, query, {"id": job_id, "first": 101, "after": None})
    assert errors and errors[0]["message"] == "first must be between 1 and 100"


async def test_account_lists_by_cursor(client: httpx.AsyncClient, server: Any, account: dict[str, Any]) -> None:
    h = account["headers"]
    pids = [account["project_id"]]
    for i in range(3):
        pids.append((await client.post("/api/v1/projects", headers=h, json={"name": f"P{i}"})).json()["id"])
    for i in range(3):
        assert (await client.post(f"/api/v1/projects/{pids[1]}/keys", headers=h, json={"label": f"k{i}"})).status_code == 201
        assert (await client.post(f"/api/v1/projects/{pids[1]}/webhooks", headers=h,
                                  json={"url": f"https://hooks.example/{i}"})).status_code == 201
    q = "query($first: Int!, $after: String) { projects(first: $first, after: $after) { " + CONN % ("id", "id") + " } }"
    nodes, total = await walk(server.base_url, h, q, ["projects"], {}, 2)
    rest = (await client.get("/api/v1/projects", headers=h)).json()["projects"]
    assert [n["id"] for n in nodes] == [p["id"] for p in rest] == pids and total == 4
    q = ("query($p: ID!, $first: Int!, $after: String) { apiKeys(projectId: $p, first: $first, after: $after) { "
         + CONN % ("label", "label") + " } }")
    nodes, total = await walk(server.base_url, h, q, ["apiKeys"], {"p": pids[1]}, 2)
    rest = (await client.get(f"/api/v1/projects/{pids[1]}/keys", headers=h)).json()
    rest_keys = rest["keys"] if isinstance(rest, dict) else rest
    assert [n["label"] for n in nodes] == [k["label"] for k in rest_keys] and total == len(rest_keys) >= 3
    q = ("query($p: ID!, $first: Int!, $after: String) { webhooks(projectId: $p, first: $first, after: $after) { "
         + CONN % ("url", "url") + " } }")
    nodes, total = await walk(server.base_url, h, q, ["webhooks"], {"p": pids[1]}, 2)
    assert [n["url"] for n in nodes] == [f"https://hooks.example/{i}" for i in range(3)] and total == 3
    q = ("query($first: Int!, $after: String) { ledger(first: $first, after: $after) { "
         + CONN % ("entryType amount", "entryType amount") + " } }")
    nodes, total = await walk(server.base_url, h, q, ["ledger"], {}, 1)
    assert nodes == [{"entryType": "grant", "amount": 5000}] and total == 1


async def test_dashboard_keys_by_cursor(server: Any, account: dict[str, Any]) -> None:
    from tests.factories import add_member

    member = await add_member(account["account_id"], role="admin")
    for _ in range(2):
        data, errors = await graphql(server.base_url, member["headers"], "mutation { createDashboardKey { key } }")
        assert errors is None, errors
    q = "query($first: Int!, $after: String) { dashboardKeys(first: $first, after: $after) { " \
        + CONN % ("id status", "id status") + " } }"
    nodes, total = await walk(server.base_url, member["headers"], q, ["dashboardKeys"], {}, 1)
    assert total == 3 and len({n["id"] for n in nodes}) == 3 and all(n["status"] == "active" for n in nodes)
    theirs, _ = await walk(server.base_url, account["headers"], q, ["dashboardKeys"], {}, 5)
    assert not {n["id"] for n in theirs} & {n["id"] for n in nodes}, "each user lists only their own keys"
