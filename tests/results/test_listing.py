"""Listing jobs: every filter and sort on GET /api/v1/jobs, /api/dashboard/jobs and GraphQL `jobs`, the same
validation on each door, owner-only rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.factories import make_account
from tests.results.conftest import graphql, seed_job

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# (type, status, project: "default" | "other", created day, updated day)
ROWS = [
    ("url", "done", "default", 1, 9),
    ("bulk", "failed", "other", 2, 3),
    ("document", "queued", "default", 3, 8),
    ("url", "cancelled", "other", 4, 5),
    ("url", "processing", "default", 5, 6),
]


@pytest.fixture
async def world(client: httpx.AsyncClient, account: dict[str, Any]) -> dict[str, Any]:
    h = account["headers"]
    r = await client.post("/api/v1/projects", headers=h, json={"name": "Other"})
    assert r.status_code == 201, r.text
    projects = {"default": account["project_id"], "other": r.json()["id"]}
    ids = []
    for kind, status, project, created, updated in ROWS:
        ids.append(await seed_job(account["account_id"], project_id=projects[project], type=kind, status=status,
                                  created_at=T0 + timedelta(days=created), updated_at=T0 + timedelta(days=updated)))
    stranger = await make_account(plan="pro")
    await seed_job(stranger["account_id"], project_id=stranger["project_id"], created_at=T0 + timedelta(days=2))
    return {"ids": ids, "projects": projects, "stranger": stranger}


def _expect(world: dict[str, Any], keep: Any, key: int = 3, reverse: bool = True) -> list[str]:
    rows = [(row, job_id) for row, job_id in zip(ROWS, world["ids"], strict=True) if keep(row)]
    return [job_id for row, job_id in sorted(rows, key=lambda p: p[0][key], reverse=reverse)]


def _cases(world: dict[str, Any]) -> list[tuple[dict[str, str], list[str]]]:
    other = world["projects"]["other"]
    day = (T0 + timedelta(days=3)).isoformat()
    return [
        ({}, _expect(world, lambda r: True)),
        ({"status": "done"}, _expect(world, lambda r: r[1] == "done")),
        ({"status": "queued,processing"}, _expect(world, lambda r: r[1] in ("queued", "processing"))),
        ({"type": "url"}, _expect(world, lambda r: r[0] == "url")),
        ({"type": "bulk,document"}, _expect(world, lambda r: r[0] in ("bulk", "document"))),
        ({"project_id": other}, _expect(world, lambda r: r[2] == "other")),
        ({"created_after": day}, _expect(world, lambda r: r[3] >= 3)),
        ({"created_before": day}, _expect(world, lambda r: r[3] < 3)),
        ({"created_after": (T0 + timedelta(days=3)).date().isoformat(),  # a date: midnight UTC
          "created_before": (T0 + timedelta(days=5)).isoformat().replace("+00:00", "Z")},
         _expect(world, lambda r: 3 <= r[3] < 5)),
        ({"sort": "created_at", "order": "asc"}, _expect(world, lambda r: True, reverse=False)),
        ({"sort": "updated_at"}, _expect(world, lambda r: True, key=4)),
        ({"sort": "updated_at", "order": "asc"}, _expect(world, lambda r: True, key=4, reverse=False)),
        ({"type": "url", "project_id": other, "status": "cancelled"}, [world["ids"][3]]),
        ({"status": "done", "type": "bulk"}, []),
    ]


async def test_rest_list_every_filter_and_sort(client: httpx.AsyncClient, account: dict[str, Any],
                                               world: dict[str, Any]) -> None:
    h = account["headers"]
    for params, expected in _cases(world):
        r = await client.get("/api/v1/jobs", headers=h, params=params)
        assert r.status_code == 200, (params, r.text)
        body = r.json()
        assert [j["id"] for j in body["jobs"]] == expected, params
        assert (body["total"], body["page"], body["per_page"], body["has_more"]) == (len(expected), 1, 20, False)
    # Each row is what GET /api/v1/jobs/:id shows.
    listed = (await client.get("/api/v1/jobs", headers=h)).json()["jobs"]
    for job in listed:
        assert job == (await client.get(f"/api/v1/jobs/{job['id']}", headers=h)).json()


async def test_rest_list_pages(client: httpx.AsyncClient, account: dict[str, Any], world: dict[str, Any]) -> None:
    h = account["headers"]
    seen: list[str] = []
    for page, more in ((1, True), (2, True), (3, False)):
        body = (await client.get("/api/v1/jobs", headers=h, params={"per_page": 2, "page": page})).json()
        assert (body["total"], body["page"], body["per_page"], body["has_more"]) == (5, page, 2, more)
        seen += [j["id"] for j in body["jobs"]]
    assert seen == _expect(world, lambda r: True)
    body = (await client.get("/api/v1/jobs", headers=h, params={"per_page": 2, "page": 4})).json()
    assert body["jobs"] == [] and body["has_more"] is False


BAD = [
    ({"status": "completed"}, "status must be one of: pending, queued, processing, done, failed, cancelled"),
    ({"status": "done,bogus"}, "status must be one of: pending, queued, processing, done, failed, cancelled"),
    ({"type": "pdf"}, "type must be one of: url, bulk, document"),
    ({"sort": "name"}, "sort must be one of: created_at, updated_at"),
    ({"order": "up"}, "order must be one of: asc, desc"),
    ({"created_after": "yesterday"}, "created_after must be an ISO 8601 date or date-time"),
    ({"created_before": "2026-13-01"}, "created_before must be an ISO 8601 date or date-time"),
    ({"created_after": "2026-01-05", "created_before": "2026-01-05"},
     "created_after must be earlier than created_before"),
]
REST_ONLY_BAD = [
    ({"per_page": "0"}, "per_page must be between 1 and 100"),
    ({"per_page": "101"}, "per_page must be between 1 and 100"),
    ({"per_page": "ten"}, "per_page must be an integer"),
    ({"page": "0"}, "page must be between 1 and 100000"),
    ({"limit": "5"}, "Unknown query parameters: limit"),
    ({"statuss": "done"}, "Unknown query parameters: statuss"),
]


async def test_rest_list_refuses_unknown_values(client: httpx.AsyncClient, account: dict[str, Any],
                                                world: dict[str, Any]) -> None:
    h = account["headers"]
    for params, message in BAD + REST_ONLY_BAD:
        r = await client.get("/api/v1/jobs", headers=h, params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["code"] == "validation_error" and r.json()["error"]["message"] == message, params
    r = await client.get("/api/v1/jobs", headers=h, params={"project_id": world["stranger"]["project_id"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.get("/api/v1/jobs")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_stranger_sees_only_own_jobs(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    body = (await client.get("/api/v1/jobs", headers=world["stranger"]["headers"])).json()
    assert body["total"] == 1 and not set(j["id"] for j in body["jobs"]) & set(world["ids"])


async def test_project_key_sees_its_project_only(client: httpx.AsyncClient, account: dict[str, Any],
                                                 world: dict[str, Any]) -> None:
    other = world["projects"]["other"]
    r = await client.post(f"/api/v1/projects/{other}/keys", headers=account["headers"], json={"label": "scoped"})
    assert r.status_code == 201, r.text
    scoped = {"Authorization": f"Bearer {r.json()['key']}"}
    body = (await client.get("/api/v1/jobs", headers=scoped)).json()
    assert [j["id"] for j in body["jobs"]] == _expect(world, lambda r: r[2] == "other")


async def test_dashboard_applies_the_same_filters(client: httpx.AsyncClient, account: dict[str, Any],
                                                  world: dict[str, Any]) -> None:
    h = account["headers"]
    for params, expected in _cases(world):
        r = await client.get("/api/dashboard/jobs", headers=h, params=params)
        assert r.status_code == 200, (params, r.text)
        assert [j["id"] for j in r.json()["jobs"]] == expected, params
    body = (await client.get("/api/dashboard/jobs", headers=h, params={"limit": 2, "status": "done,failed,queued"})).json()
    assert (body["total"], body["limit"], body["has_more"], len(body["jobs"])) == (3, 2, True, 2)
    for params, message in BAD:
        r = await client.get("/api/dashboard/jobs", headers=h, params=params)
        assert r.status_code == 400 and r.json()["error"]["message"] == message, params
    r = await client.get("/api/dashboard/jobs", headers=h, params={"per_page": 2})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Unknown query parameters: per_page"


QUERY = """
query($first: Int!, $after: String, $status: String, $type: String, $projectId: ID, $createdAfter: String,
      $createdBefore: String, $sort: String, $order: String) {
  jobs(first: $first, after: $after, status: $status, type: $type, projectId: $projectId,
       createdAfter: $createdAfter, createdBefore: $createdBefore, sort: $sort, order: $order) {
    totalCount
    edges { cursor node { id status type } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""

_VARS = {"status": "status", "type": "type", "project_id": "projectId", "created_after": "createdAfter",
         "created_before": "createdBefore", "sort": "sort", "order": "order"}


def _gql_vars(params: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        out[_VARS[k]] = v
    return out


async def test_graphql_connection_every_filter_and_sort(server: Any, account: dict[str, Any],
                                                        world: dict[str, Any]) -> None:
    h = account["headers"]
    for params, expected in _cases(world):
        data, errors = await graphql(server.base_url, h, QUERY, {"first": 20, **_gql_vars(params)})
        assert errors is None, (params, errors)
        assert data is not None
        conn = data["jobs"]
        assert [e["node"]["id"] for e in conn["edges"]] == expected, params
        assert conn["totalCount"] == len(expected) and conn["pageInfo"]["hasNextPage"] is False
    # Walk by cursor, two at a time, sorted by updated_at ascending.
    seen: list[str] = []
    after = None
    while True:
        data, errors = await graphql(server.base_url, h, QUERY,
                                     {"first": 2, "after": after, "sort": "updated_at", "order": "asc"})
        assert errors is None and data is not None, errors
        conn = data["jobs"]
        seen += [e["node"]["id"] for e in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == _expect(world, lambda r: True, key=4, reverse=False)


async def test_list_parity_rest_and_graphql(client: httpx.AsyncClient, server: Any, account: dict[str, Any],
                                            world: dict[str, Any]) -> None:
    """The same bad (and foreign, and anonymous) inputs: the same status class, code and message."""
    h = account["headers"]
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        (params, h) for params, _ in BAD if not params.get("created_before", "").startswith("2026-13")
        and params.get("created_after") != "yesterday"]
    cases.append(({"project_id": world["stranger"]["project_id"]}, h))
    cases.append(({}, {}))
    for params, headers in cases:
        r = await client.get("/api/v1/jobs", headers=headers, params=params)
        assert r.status_code >= 400
        data, errors = await graphql(server.base_url, headers, QUERY, {"first": 5, **_gql_vars(params)})
        assert errors, params
        assert errors[0]["extensions"]["code"] == r.json()["error"]["code"], params
        assert errors[0]["message"] == r.json()["error"]["message"], params
    # A malformed date is refused by the same service rule on both doors.
    data, errors = await graphql(server.base_url, h, QUERY, {"first": 5, "createdAfter": "yesterday"})
    assert errors and data is None
    assert errors[0]["extensions"]["code"] == "validation_error" and "created_after" in errors[0]["message"]
