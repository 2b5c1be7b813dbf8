"""The batch lane scaled out: Postgres, Redis, S3 (moto's server over HTTP), two API processes and two
worker processes. Presigned uploads go to S3 directly; per-account concurrency holds across workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import boto3
import httpx
import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from imageextract.db import tortoise_config
from imageextract.models import JobItem, StagedFile
from imageextract.services import ledger
from tests.batches.helpers import all_items, slow_urls, stage, wait_for_batch
from tests.extract.docfixtures import png, simple_pdf
from tests.factories import make_account
from tests.pages import base_url
from tests.scaled.conftest import Stack


@pytest.fixture
async def sdb(stack: Stack) -> AsyncIterator[Stack]:
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(stack.backend.settings()), _enable_global_fallback=True)
    try:
        yield stack
    finally:
        await Tortoise.close_connections()


async def _put(upload: dict[str, Any], data: bytes) -> int:
    async with httpx.AsyncClient(timeout=30) as raw:  # a plain HTTP client, no API key: straight to S3
        r = await raw.request(upload["method"], upload["url"], content=data, headers=upload["headers"])
        return r.status_code


async def test_presigned_s3_uploads_and_a_batch_across_processes(sdb: Stack) -> None:
    acc = await make_account()
    h = acc["headers"]
    a, b = sdb.apis
    s3 = boto3.client("s3", endpoint_url=sdb.s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as api_a, \
            httpx.AsyncClient(base_url=b.base_url, timeout=30) as api_b:
        good = [simple_pdf(1), png((5, 6, 7), (40, 30))]
        ids = []
        for i, data in enumerate(good):
            staged = await stage(api_a, h, data, f"good-{i}")
            assert staged["upload"]["url"].startswith(sdb.s3_endpoint), "bytes never transit the API"
            assert await _put(staged["upload"], data) == 200
            ids.append(staged["id"])
        # Bytes that are no document, announced with the right size: refused by the worker's arrival check.
        junk = b"MZ" + b"\x00" * 300
        staged = await stage(api_a, h, junk, "junk.pdf")
        assert await _put(staged["upload"], junk) == 200
        ids.append(staged["id"])
        ids.append((await stage(api_a, h, good[0], "never.pdf"))["id"])
        key = (await StagedFile.get(id=ids[0])).storage_key
        assert s3.head_object(Bucket=sdb.bucket, Key=f"files/{key}")["ContentLength"] == len(good[0])

        r = await api_b.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": ids}})
        assert r.status_code == 201, r.text
        batch_id = r.json()["id"]
        final = await wait_for_batch(api_a, batch_id, h)
        assert final["status"] == "partially_failed", final
        items = {i["source"]: i for i in (await all_items(api_b, batch_id, h)).values()}
        assert items["junk.pdf"]["error"]["code"] == "unsupported_input"
        assert items["never.pdf"]["error"]["code"] == "upload_missing"
        assert items["good-0"]["status"] == items["good-1"]["status"] == "succeeded"
        r = await api_a.get(items["good-0"]["result_url"], headers=h, follow_redirects=True)
        assert r.status_code == 200 and len(r.json()["images"]) == 1
    assert await ledger.ledger_sum(acc["account_id"]) == await ledger.balance_of(acc["account_id"])


async def test_per_account_concurrency_holds_across_workers_and_others_run(sdb: Stack) -> None:
    from tests.pages import serve_pages

    if len(sdb.workers) < 2:
        sdb.start_worker()
        await asyncio.sleep(1.5)
    big, small = await make_account(plan="starter"), await make_account(plan="starter")  # 5 items at a time
    with serve_pages() as site:
        async with httpx.AsyncClient(base_url=sdb.apis[0].base_url, timeout=30) as api:
            r = await api.post("/api/v1/batches", headers=big["headers"],
                               json={"source": {"type": "urls", "urls": slow_urls(site, 60, 0.5)}})
            assert r.status_code == 201, r.text
            batch_id = r.json()["id"]
            peak, small_done_while_running = 0, False
            r = await api.post("/api/v1/jobs", headers=small["headers"],
                               json={"type": "url", "input": f"{base_url(site)}/page/1"})
            job_id = r.json()["job_id"]
            deadline = time.monotonic() + 90
            while True:
                running = await JobItem.filter(job_id=batch_id, status="processing").count()
                peak = max(peak, running)
                state = (await api.get(f"/api/v1/batches/{batch_id}", headers=big["headers"],
                                       params={"limit": 1})).json()
                job = (await api.get(f"/api/v1/jobs/{job_id}", headers=small["headers"])).json()
                if job["status"] == "done" and state["status"] == "running":
                    small_done_while_running = True
                if state["status"] in ("completed", "partially_failed", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.03)
    assert state["status"] == "completed"
    assert small_done_while_running, "the other account's job waited for the whole batch"
    assert 3 <= peak <= 5, peak  # in parallel, never past the plan's 5, with 8 worker threads in 2 processes
    # Both worker processes took items of the batch.
    ids = [str(i) for i in await JobItem.filter(job_id=batch_id).values_list("id", flat=True)]
    logs = [p.read_text(errors="replace") for p in sorted(sdb.backend.data_dir.glob("worker-*.log"))]
    assert sum(1 for log in logs if any(i in log for i in ids)) >= 2
