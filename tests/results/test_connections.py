"""GraphQL lists that can grow are connections: walking them by cursor gives every row once, in the order the
REST door lists them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from imageextract.models import Image, JobItem
from imageextract.services.pagination import encode_cursor
from tests.results.conftest import graphql, seed_job
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
            return nodes, conn.get("totalCount")
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
    # Without totalCount the job's images are not counted: hasNextPage comes from one row past the page, so
    # it is still exact, also when the last page is full (8 = 2 x 4) or the page holds them all.
    uncounted = ("query($id: ID!, $first: Int!, $after: String) { job(id: $id) { images(first: $first, "
                 "after: $after) { edges { cursor node { id } } nodes { id } ...paging } } } "
                 "fragment paging on ImageResultConnection { pageInfo { hasNextPage hasPreviousPage endCursor } }")
    for first in (1, 4, 8, 100):
        nodes, total = await walk(server.base_url, h, uncounted, ["job", "images"], {"id": job_id}, first)
        assert nodes == [{"id": i["id"]} for i in result["images"]] and total is None, first
    # ... and a fragment that selects totalCount is counted.
    fragment = ("query($id: ID!, $first: Int!, $after: String) { job(id: $id) { images(first: $first, "
                "after: $after) { edges { cursor node { id } } nodes { id } ...counted } } } "
                "fragment counted on ImageResultConnection { totalCount pageInfo { hasNextPage hasPreviousPage "
                "endCursor } }")
    nodes, total = await walk(server.base_url, h, fragment, ["job", "images"], {"id": job_id}, 3)
    assert len(nodes) == 8 and total == 8
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


async def test_job_list_pages_each_jobs_images(server: Any, account: dict[str, Any]) -> None:
    """`jobs { nodes { images(first:) } }` reads every listed job's first page in one batch: each job gets
    its own images, in result order, with its own total and cursor; a job whose result is not readable
    answers the result rule's error at its own path, and the others still answer."""
    h = account["headers"]
    sizes = {"a": 3, "b": 1, "c": 4}
    done = {name: await seed_done_job_with_images(account, [{"filename": f"{name}{i}.png"} for i in range(n)])
            for name, n in sizes.items()}
    await Image.create(job_id=done["c"], item_id=(await JobItem.get(job_id=done["c"])).id, position=9,
                       source_kind="img", filename="c-lost.png", error="HTTP 404")
    query = ("{ jobs(first: 10) { nodes { id status images(first: 2) { totalCount nodes { filename } pageInfo { "
             "hasNextPage hasPreviousPage endCursor } } failedImages(first: 2) { totalCount nodes { filename } } } } }")
    data, errors = await graphql(server.base_url, h, query)
    assert errors is None and data is not None
    by_id = {node["id"]: node for node in data["jobs"]["nodes"]}
    for name, n in sizes.items():
        images = by_id[done[name]]["images"]
        assert [i["filename"] for i in images["nodes"]] == [f"{name}{i}.png" for i in range(min(2, n))]
        assert images["totalCount"] == n and images["pageInfo"]["hasNextPage"] is (n > 2)
        assert images["pageInfo"]["hasPreviousPage"] is False
    assert by_id[done["c"]]["failedImages"] == {"totalCount": 1, "nodes": [{"filename": "c-lost.png"}]}
    assert by_id[done["a"]]["failedImages"] == {"totalCount": 0, "nodes": []}
    # The rest of one job's images, from its end cursor: the page after holds exactly what the first left out.
    after = by_id[done["c"]]["images"]["pageInfo"]["endCursor"]
    more, errors = await graphql(server.base_url, h, "query($id: ID!, $after: String) { job(id: $id) { images("
                                 "first: 5, after: $after) { totalCount nodes { filename } pageInfo { hasNextPage "
                                 "hasPreviousPage } } } }", {"id": done["c"], "after": after})
    assert errors is None and more is not None
    assert more["job"]["images"] == {"totalCount": 4, "nodes": [{"filename": "c2.png"}, {"filename": "c3.png"}],
                                     "pageInfo": {"hasNextPage": False, "hasPreviousPage": True}}
    # A running job in the same list: the result rule's error, at that job's path (images is non-null, so
    # the list is withheld as GraphQL requires, not served with a hole).
    await seed_job(account["account_id"], project_id=account["project_id"], status="processing",
                             created_at=datetime.now(UTC))
    data, errors = await graphql(server.base_url, h, query)
    assert errors is not None and len(errors) == 1
    assert errors[0]["extensions"]["code"] == "not_ready" and errors[0]["path"] == ["jobs", "nodes", 0, "images"]
    # A cursor that is not one of ours (or names another list) is a validation error, not a 500.
    for bad in ("bm90LWEtY3Vyc29y", encode_cursor([0, "image"]), encode_cursor([-1, 0, 0])):
        data, errors = await graphql(server.base_url, h, "query($id: ID!, $after: String) { job(id: $id) { images("
                                     "first: 5, after: $after) { totalCount } } }", {"id": done["a"], "after": bad})
        assert errors and errors[0]["extensions"]["code"] == "validation_error", bad
