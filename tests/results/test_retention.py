"""Retention: per-project retention_days on both doors (default from IMAGEEXTRACT_DEFAULT_RETENTION_DAYS, null
keeps forever) and the sweeper: expired finished jobs deleted like DELETE does, in bounded batches, with
several sweepers at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from imageextract.models import Account, Image, Job, LedgerEntry
from imageextract.runtime import Runtime
from imageextract.services import retention
from imageextract.services.ledger import ledger_sum
from imageextract.storage import build_storage
from tests.jobs.helpers import wait_for_job
from tests.results.conftest import graphql, seed_job, unique_pdf
from tests.results.test_deletion import job_keys, stored_files, upload
from tests.support import ServerProcess


@pytest.fixture
async def runtime(backend: Any) -> AsyncIterator[Runtime]:
    """The worker side of the sweep, in this process: the backend's settings and storage."""
    rt = Runtime(settings=backend.settings())
    rt.storage = build_storage(rt.settings)
    await rt.storage.open()
    try:
        yield rt
    finally:
        await rt.storage.close()


async def test_retention_days_on_both_doors(client: httpx.AsyncClient, server: Any, account: dict[str, Any],
                                            backend: Any) -> None:
    h = account["headers"]
    r = await client.post("/api/v1/projects", headers=h, json={"name": "Keep a week", "retention_days": 7})
    assert r.status_code == 201 and r.json()["retention_days"] == 7
    pid = r.json()["id"]
    r = await client.post("/api/v1/projects", headers=h, json={"name": "Default retention"})
    assert r.status_code == 201 and r.json()["retention_days"] is None, "no default set: keep forever"
    r = await client.patch(f"/api/v1/projects/{pid}", headers=h, json={"retention_days": None})
    assert r.status_code == 200 and r.json()["retention_days"] is None
    r = await client.patch(f"/api/v1/projects/{pid}", headers=h, json={"retention_days": 30})
    assert r.status_code == 200 and r.json()["retention_days"] == 30
    message = "retention_days must be a whole number of days from 1 to 3650, or null to keep jobs forever"
    update = "mutation($id: ID!, $d: Int) { updateProject(id: $id, input: {retentionDays: $d}) { retentionDays } }"
    for bad in (0, -1, 3651):
        r = await client.patch(f"/api/v1/projects/{pid}", headers=h, json={"retention_days": bad})
        assert r.status_code == 400 and r.json()["error"]["message"] == message
        data, errors = await graphql(server.base_url, h, update, {"id": pid, "d": bad})
        assert errors and errors[0]["extensions"]["code"] == "validation_error" and errors[0]["message"] == message
    for bad in ("7", True, 1.5):
        r = await client.post("/api/v1/projects", headers=h, json={"name": "Bad", "retention_days": bad})
        assert r.status_code == 400 and r.json()["error"]["message"] == message
    assert (await client.get(f"/api/v1/projects/{pid}", headers=h)).json()["retention_days"] == 30
    data, errors = await graphql(server.base_url, h, update, {"id": pid, "d": 3})
    assert errors is None and data == {"updateProject": {"retentionDays": 3}}
    create = 'mutation { createProject(input: {name: "G", retentionDays: 2}) { retentionDays } }'
    data, errors = await graphql(server.base_url, h, create)
    assert errors is None and data == {"createProject": {"retentionDays": 2}}

    other = ServerProcess(backend, extra_env={"IMAGEEXTRACT_DEFAULT_RETENTION_DAYS": "90"})
    try:
        async with httpx.AsyncClient(base_url=other.base_url, timeout=30) as c:
            r = await c.post("/api/v1/projects", headers=h, json={"name": "Inherits"})
            assert r.status_code == 201 and r.json()["retention_days"] == 90
            r = await c.post("/api/v1/projects", headers=h, json={"name": "Forever", "retention_days": None})
            assert r.status_code == 201 and r.json()["retention_days"] is None
            # A new account's Default project follows the setting too (sign-up through the door a browser uses).
            email = f"retention-{pid[-8:]}@example.com"
            r = await c.post("/api/auth/signup", json={"email": email, "password": "correct horse battery"})
            assert r.status_code == 201, r.text
            projects = (await c.get("/api/v1/projects")).json()["projects"]
            assert [(p["name"], p["retention_days"]) for p in projects] == [("Default", 90)]
    finally:
        other.stop()


async def test_sweep_deletes_expired_jobs_only(client: httpx.AsyncClient, account: dict[str, Any], backend: Any,
                                               runtime: Runtime) -> None:
    h = account["headers"]
    now = datetime.now(UTC)
    short = (await client.post("/api/v1/projects", headers=h, json={"name": "Short", "retention_days": 1})).json()
    ten = (await client.post("/api/v1/projects", headers=h, json={"name": "Ten", "retention_days": 10})).json()
    forever = (await client.post("/api/v1/projects", headers=h, json={"name": "Forever"})).json()
    # A real finished job with stored bytes of its own, then aged past its project's retention.
    expired_real = await upload(client, h, unique_pdf(2), **{})
    await wait_for_job(client, expired_real, h)
    await Job.filter(id=expired_real).update(project_id=short["id"], finished_at=now - timedelta(days=2))
    keys = await job_keys(expired_real)
    assert keys <= stored_files(backend.data_dir / "files")
    aid = account["account_id"]
    old, recent = now - timedelta(days=11), now - timedelta(hours=2)
    expired = [expired_real,
               await seed_job(aid, project_id=short["id"], status="failed", created_at=old, finished_at=old),
               await seed_job(aid, project_id=ten["id"], status="cancelled", created_at=old, finished_at=old)]
    kept = [await seed_job(aid, project_id=short["id"], status="done", created_at=recent, finished_at=recent),
            await seed_job(aid, project_id=short["id"], status="queued", created_at=old),
            await seed_job(aid, project_id=ten["id"], status="done", created_at=old,
                           finished_at=now - timedelta(days=5)),
            await seed_job(aid, project_id=forever["id"], status="done", created_at=old, finished_at=old)]
    debits = await LedgerEntry.filter(job_id=expired_real).count()

    assert await retention.sweep(runtime, limit=1) == 1, "bounded batch"
    assert await retention.sweep(runtime) == 2
    assert await retention.sweep(runtime) == 0
    assert not await Job.filter(id__in=expired).exists()
    assert await Job.filter(id__in=kept).count() == len(kept)
    assert not await Image.filter(job_id=expired_real).exists()
    assert not keys & stored_files(backend.data_dir / "files"), "their bytes went with them"
    assert await LedgerEntry.filter(job_id=expired_real).count() == debits >= 1
    assert await ledger_sum(aid) == (await Account.get(id=aid)).credits
    for job_id in expired:
        assert (await client.get(f"/api/v1/jobs/{job_id}", headers=h)).status_code == 404


async def test_several_sweepers_at_once(account: dict[str, Any], runtime: Runtime, client: httpx.AsyncClient) -> None:
    h = account["headers"]
    short = (await client.post("/api/v1/projects", headers=h, json={"name": "Short", "retention_days": 1})).json()
    old = datetime.now(UTC) - timedelta(days=3)
    ids = [await seed_job(account["account_id"], project_id=short["id"], status="done", created_at=old,
                          finished_at=old) for _ in range(12)]
    total = 0
    while True:
        counts = await asyncio.gather(*(retention.sweep(runtime, limit=5) for _ in range(3)))
        assert all(c <= 5 for c in counts)
        total += sum(counts)
        if not any(counts):
            break
    assert total == len(ids), "each job deleted by exactly one sweeper"
    assert not await Job.filter(id__in=ids).exists()
