"""Bad input on every JSON route: malformed, not an object, unknown fields, wrong types, oversized (declared
or streamed): the documented status, the error envelope, never a 500, and nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from imageextract.models import Job, LedgerEntry, Project, User, WebhookEndpoint

ROUTES = [  # (method, path template, a valid-looking body to add an unknown field to)
    ("POST", "/api/auth/signup", {"email": "x@example.com", "password": "long enough password", "name": "X"}),
    ("POST", "/api/auth/login", {"email": "x@example.com", "password": "whatever"}),
    ("POST", "/api/v1/projects", {"name": "P"}),
    ("PATCH", "/api/v1/projects/{pid}", {"name": "P2"}),
    ("POST", "/api/v1/projects/{pid}/keys", {"label": "k"}),
    ("POST", "/api/dashboard/keys", {"label": "k"}),
    ("POST", "/api/v1/projects/{pid}/webhooks", {"url": "http://127.0.0.1:9/h"}),
    ("POST", "/api/v1/jobs", {"type": "url", "input": "http://127.0.0.1:9/p"}),
]


def _envelope(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def _counts() -> tuple[int, ...]:
    return (await User.all().count(), await Project.all().count(), await Job.all().count(),
            await LedgerEntry.all().count(), await WebhookEndpoint.all().count())


@pytest.mark.parametrize(("method", "path", "valid"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_json_routes_refuse_bad_bodies(client: httpx.AsyncClient, account: dict[str, Any], method: str,
                                             path: str, valid: dict[str, Any]) -> None:
    url = path.format(pid=account["project_id"])
    h = account["headers"]
    before = await _counts()
    cases: list[tuple[Any, int]] = [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'"a string"', 400),
        (b"\xff\xfe", 400),
        (None, 400),  # {**valid, "unexpected": 1}
        (b"{" + b'"pad": "' + b"x" * (1024 * 1024) + b'"}', 413),
    ]
    for raw, status in cases:
        if raw is None:
            r = await client.request(method, url, headers=h, json={**valid, "unexpected_field": 1})
            err = _envelope(r, status)
            assert "unexpected_field" in err["message"] and err["details"]["fields"] == ["unexpected_field"]
            continue
        r = await client.request(method, url, headers=h | {"Content-Type": "application/json"}, content=raw)
        _envelope(r, status)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        yield b'{"pad": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    r = await client.request(method, url, headers=h | {"Content-Type": "application/json"}, content=streamed())
    assert _envelope(r, 413)["code"]
    assert await _counts() == before, "a refused request wrote nothing"


@pytest.mark.parametrize("body", [
    {"name": 123}, {"name": ""}, {"name": "x" * 500}, {"name": "ok", "slug": "Not A Slug!"},
    {"name": "ok", "site_url": "ftp://x"}, {"name": "ok", "default_webhook_url": "not a url"},
])
async def test_project_field_validation(client: httpx.AsyncClient, account: dict[str, Any], body: Any) -> None:
    before = await Project.filter(account_id=account["account_id"]).count()
    err = _envelope(await client.post("/api/v1/projects", headers=account["headers"], json=body), 400)
    assert err["code"]
    assert await Project.filter(account_id=account["account_id"]).count() == before


@pytest.mark.parametrize("body", [
    {"type": "video", "input": "http://127.0.0.1/"}, {"type": "url", "input": 5}, {"type": "url"},
    {"type": "bulk", "input": "http://127.0.0.1/"}, {"type": "bulk", "input": []},
    {"type": "url", "input": "javascript:alert(1)"}, {"type": "url", "input": "http://127.0.0.1/", "metadata": [1]},
])
async def test_job_payload_validation(client: httpx.AsyncClient, account: dict[str, Any], body: Any) -> None:
    before = await _counts()
    _envelope(await client.post("/api/v1/jobs", headers=account["headers"], json=body), 400)
    assert await _counts() == before, "no job, no debit"


@pytest.mark.parametrize("path", ["/api/v1/projects/proj_doesnotexist", "/api/v1/jobs/not-a-uuid",
                                  "/api/v1/jobs/00000000-0000-0000-0000-000000000000"])
async def test_unknown_ids_are_404(client: httpx.AsyncClient, account: dict[str, Any], path: str) -> None:
    _envelope(await client.get(path, headers=account["headers"]), 404)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ie_live_", "Bearer ie_live_short", "Basic abc",
                                    "Bearer ie_test_" + "a" * 43, "Bearer " + "ie_live_" + "x" * 300])
async def test_malformed_keys_are_401(client: httpx.AsyncClient, header: str) -> None:
    _envelope(await client.get("/api/v1/account", headers={"Authorization": header}), 401)
