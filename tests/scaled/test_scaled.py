"""Two API processes and separate workers over Postgres, Redis and S3: a job submitted on one API is
processed by a worker, watched live on the other API, its bytes in S3; a worker killed mid-item."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest
import websockets
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from imageextract.db import tortoise_config
from imageextract.models import Image, JobItem, LedgerEntry
from imageextract.services import ledger
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url, png_bytes, serve_pages
from tests.scaled.conftest import Stack


@pytest.fixture(scope="module")
def site() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server


@pytest.fixture
async def sdb(stack: Stack) -> AsyncIterator[Stack]:
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(stack.backend.settings()), _enable_global_fallback=True)
    try:
        yield stack
    finally:
        await Tortoise.close_connections()


async def test_job_across_processes_with_s3(sdb: Stack, site: ThreadingHTTPServer) -> None:
    acc = await make_account()
    h = acc["headers"]
    a, b = sdb.apis
    async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as api_a, \
            httpx.AsyncClient(base_url=b.base_url, timeout=30) as api_b:
        r = await api_a.post("/api/v1/jobs", headers=h, json={"type": "bulk", "input": [
            f"{base_url(site)}/slow/0.5/2", f"{base_url(site)}/page/3"]})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        # Watch it live on the *other* API process: events come from the worker through Redis.
        ws_url = b.base_url.replace("http://", "ws://") + "/graphql"
        events = []
        async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": h["Authorization"]}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($id: ID!) { jobProgress(jobId: $id) { kind status progress item { status } } }",
                "variables": {"id": job_id}}}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg["type"] == "complete":
                    break
                events.append(msg["payload"]["data"]["jobProgress"])
        assert events[-1]["status"] == "done" and events[-1]["progress"] == 100
        assert sum(1 for e in events if e["kind"] == "item" and e["item"]["status"] == "done") >= 2
        job = await wait_for_job(api_b, job_id, h)
        assert job["image_count"] == 5 and job["credits_used"] == 2
        result = (await api_b.get(f"/api/v1/jobs/{job_id}/result", headers=h)).json()
        for img in result["images"]:
            assert img["storage_url"] == f"s3://{sdb.bucket}/files/{img['storage_key']}"
        r = await api_a.get(f"/api/v1/jobs/{job_id}/download", headers=h)
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            assert sorted(zf.read(n) for n in zf.namelist()) == sorted(
                [png_bytes(i) for i in range(2)] + [png_bytes(i) for i in range(3)])
    import boto3

    s3 = boto3.client("s3", endpoint_url=sdb.s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=sdb.bucket, Prefix="files/images/").get("Contents", [])}
    assert len([k for k in keys if k.endswith(".png")]) >= 3, "distinct images stored once, by content"


async def test_worker_killed_mid_item_finishes_once(sdb: Stack, site: ThreadingHTTPServer) -> None:
    acc = await make_account()
    h = acc["headers"]
    api = sdb.apis[0]
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": f"{base_url(site)}/slow/4/2"})
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 20
        while not await JobItem.filter(job_id=job_id, status="processing").exists():
            assert time.monotonic() < deadline, "item never started"
            await asyncio.sleep(0.05)
        for w in list(sdb.workers):
            if w.poll() is None:
                sdb.kill_worker(w)
        sdb.start_worker()
        job = await wait_for_job(client, job_id, h, timeout=60)
    assert job["status"] == "done" and job["image_count"] == 2
    item = await JobItem.get(job_id=job_id)
    assert item.attempts >= 2, "the killed attempt was taken over"
    assert await Image.filter(job_id=job_id).count() == 2, "no duplicate images"
    rows = await LedgerEntry.filter(account_id=acc["account_id"], job_id=job_id)
    assert [(e.entry_type, e.amount) for e in rows] == [("job_debit", -1)], "charged once, never refunded"
    assert await ledger.ledger_sum(acc["account_id"]) == 4999


async def test_worker_killed_between_webhook_attempts_still_delivers(sdb: Stack) -> None:
    from imageextract.models import WebhookAttempt, WebhookDelivery
    from tests.receiver import run_receiver

    acc = await make_account()
    h = acc["headers"]
    with run_receiver() as receiver:
        # First answer: 503 asking to come back in 3 s. The worker that scheduled that retry dies meanwhile.
        receiver.script["/flaky"] = [503, 200]
        receiver.extra_headers["/flaky"] = {"Retry-After": "3"}
        async with httpx.AsyncClient(base_url=sdb.apis[0].base_url, timeout=30) as client:
            r = await client.post(f"/api/v1/projects/{acc['project_id']}/webhooks", headers=h,
                                  json={"url": f"{receiver.url}/flaky"})
            assert r.status_code == 201, r.text
            d = (await client.post(f"/api/v1/projects/{acc['project_id']}/webhooks/{r.json()['id']}/test",
                                   headers=h)).json()["delivery_id"]
            deadline = time.monotonic() + 20
            while not await WebhookAttempt.filter(delivery_id=d).exists():
                assert time.monotonic() < deadline, "first attempt never made"
                await asyncio.sleep(0.05)
            for w in list(sdb.workers):
                if w.poll() is None:
                    sdb.kill_worker(w)
            sdb.start_worker()
            deadline = time.monotonic() + 45
            while (await WebhookDelivery.get(id=d)).status != "delivered":
                assert time.monotonic() < deadline, "delivery never completed after the worker restart"
                await asyncio.sleep(0.2)
        got = receiver.for_path("/flaky")
    assert len(got) == 2
    assert {g.headers["X-ImageExtract-Delivery-Id"] for g in got} == {d}
    assert {g.headers["webhook-id"] for g in got} == {d}
    attempts = await WebhookAttempt.filter(delivery_id=d).order_by("attempt")
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 503), (2, 200)]
