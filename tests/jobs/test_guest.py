"""Guests: 3 URL jobs a day per IP, readable later through the guest cookie that owns them (own server,
since the counter is per IP and every test here comes from 127.0.0.1)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.jobs.helpers import wait_for_job
from tests.pages import base_url
from tests.support import Backend, ServerProcess, migrate


@pytest.fixture(scope="module")
def guest_server() -> Iterator[ServerProcess]:
    data_dir = Path(tempfile.mkdtemp(prefix="ie-guest-"))
    backend = Backend(name="sqlite", data_dir=data_dir, database_url=None)
    migrate(backend)
    server = ServerProcess(backend)
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


async def test_guest_jobs(guest_server: ServerProcess, pages: ThreadingHTTPServer) -> None:
    body = {"type": "url", "input": f"{base_url(pages)}/page/1"}
    async with httpx.AsyncClient(base_url=guest_server.base_url, timeout=30) as guest:
        ids = []
        for i in range(3):
            r = await guest.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": f"guest-key-{i}"})
            assert r.status_code == 202, r.text
            assert r.headers["X-RateLimit-Limit"] == "3"
            assert r.headers["X-RateLimit-Remaining"] == str(2 - i)
            ids.append(r.json()["job_id"])
        assert "ie_guest" in guest.cookies
        r = await guest.post("/api/v1/jobs", json=body)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert r.json()["error"]["code"] == "rate_limited"
        job = await wait_for_job(guest, ids[0])
        assert job["status"] == "done" and job["credits_used"] == 1
        result = await guest.get(f"/api/v1/jobs/{ids[0]}/result")
        assert result.status_code == 200 and result.json()["image_count"] == 1
        r = await guest.post("/api/v1/jobs", json={"type": "bulk", "input": [body["input"]]})
        assert r.status_code == 401, "bulk jobs need an account"
        replay = await guest.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "guest-key-0"})
        assert replay.status_code == 202 and replay.json()["job_id"] == ids[0], "a replay is not a new job"
    async with httpx.AsyncClient(base_url=guest_server.base_url, timeout=30) as stranger:
        r = await stranger.get(f"/api/v1/jobs/{ids[0]}")
        assert r.status_code == 403, "without the guest cookie the job is someone else's"
        # Same IP, same key, same body, another guest: not the first guest's job (keys belong to the cookie).
        r = await stranger.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "guest-key-0"})
        assert r.status_code == 429 and "job_id" not in r.text
