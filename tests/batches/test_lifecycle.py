"""Cursor polling while items change, webhooks at the end of a batch, and the retention sweep."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from imageextract.models import Batch, Image, JobItem, StagedFile
from imageextract.runtime import Runtime
from imageextract.services import batch_runs, staged_files
from imageextract.storage import build_storage
from tests.batches.helpers import all_items, slow_urls, stage, stage_and_upload, wait_for_batch
from tests.extract.docfixtures import png
from tests.factories import make_account
from tests.receiver import Receiver
from tests.support import Backend
from tests.webhooks.test_webhooks import verify_imageextract_webhook

SHOWN = {"queued": "pending", "pending": "pending", "processing": "running", "done": "succeeded",
         "failed": "failed", "cancelled": "cancelled"}


async def test_cursor_walk_sees_every_change_once(client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any) -> None:
    acc = await make_account(plan="pro")
    h = acc["headers"]
    urls = slow_urls(site, 120, 0.05)
    urls[7] = "http://127.0.0.1:9/refused"  # a few failures among the changes
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": urls}})
    assert r.status_code == 201, r.text
    batch_id = r.json()["id"]
    seen: list[tuple[str, datetime, str]] = []  # (item id, updated_at, status) in the order the client saw them
    cursor: str | None = None
    pages = 0

    async def walk() -> dict[str, Any]:
        nonlocal cursor, pages
        while True:  # small pages, so items change between the pages of one walk
            params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            r = await client.get(f"/api/v1/batches/{batch_id}", headers=h, params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            pages += 1
            seen.extend((i["id"], datetime.fromisoformat(i["updated_at"]), i["status"]) for i in body["items"])
            cursor = body["next_cursor"]
            if not body["has_more"]:
                return dict(body)

    while (await walk())["status"] not in ("completed", "partially_failed", "failed", "cancelled"):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.2)  # past the settle window: the last changes become visible
    await walk()
    assert pages > 20

    versions = [(i, u) for i, u, _ in seen]
    assert len(versions) == len(set(versions)), "an item version was shown twice"
    last: dict[str, tuple[datetime, str]] = {}
    for item_id, updated, status in seen:
        if item_id in last:
            assert updated > last[item_id][0], "an item went back in time"
        last[item_id] = (updated, status)
    final = {str(row["id"]): row for row in await JobItem.filter(job_id=batch_id).values("id", "status", "updated_at")}
    assert set(last) == set(final), "an item was never shown"
    for item_id, row in final.items():
        assert last[item_id][1] == SHOWN[row["status"]], "the last state shown is not the final one"
    assert last[str((await JobItem.get(job_id=batch_id, position=7)).id)][1] == "failed"
    # Seen more than once: items that changed after the client saw them (running, then succeeded).
    assert len(seen) > len(final)
    # Nothing changed since: polling again from the end shows nothing.
    r = await client.get(f"/api/v1/batches/{batch_id}", headers=h, params={"cursor": cursor})
    assert r.json()["items"] == [] and r.json()["next_cursor"] == cursor


async def test_polling_bad_parameters(client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any) -> None:
    acc = await make_account()
    h = acc["headers"]
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": slow_urls(site, 2, 0)}})
    batch_id = r.json()["id"]
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "nope"}, {"cursor": "WzEsMl0"},
                   {"status": "done"}):
        r = await client.get(f"/api/v1/batches/{batch_id}", headers=h, params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        r = await client.get(f"/api/v1/batches/{bad}", headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    await wait_for_batch(client, batch_id, h)
    r = await client.get(f"/api/v1/batches/{batch_id}", headers=h, params={"status": "succeeded", "limit": 1})
    assert r.json()["counts"]["succeeded"] == 2
    await asyncio.sleep(1.1)
    r = await client.get(f"/api/v1/batches/{batch_id}", headers=h, params={"status": "failed"})
    assert r.json()["items"] == []


async def test_batch_webhooks_are_signed(client: httpx.AsyncClient, site: ThreadingHTTPServer, db: Any,
                                         receiver: Receiver) -> None:
    acc = await make_account()
    h, pid = acc["headers"], acc["project_id"]
    r = await client.post(f"/api/v1/projects/{pid}/webhooks", headers=h, json={
        "url": f"{receiver.url}/hook", "subscribed_events": ["batch.completed", "batch.partially_failed",
                                                             "batch.cancelled"]})
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "urls", "urls": slow_urls(site, 3, 0)}})
    done_id = r.json()["id"]
    r = await client.post("/api/v1/batches", headers=h, json={
        "source": {"type": "urls", "urls": [*slow_urls(site, 2, 0), "http://127.0.0.1:9/refused"]}})
    partial_id = r.json()["id"]
    await wait_for_batch(client, done_id, h)
    await wait_for_batch(client, partial_id, h)
    deadline = time.monotonic() + 20
    while len(receiver.for_path("/hook")) < 2:
        assert time.monotonic() < deadline, "webhooks did not arrive"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    got = receiver.for_path("/hook")
    assert len(got) == 2, "one delivery per batch end"
    bodies = {}
    for req in got:
        raw = req.body.decode()
        assert verify_imageextract_webhook(secret, req.headers["X-ImageExtract-Timestamp"], raw,
                                           req.headers["X-ImageExtract-Signature"])
        body = json.loads(raw)
        bodies[body["data"]["batch_id"]] = body
    assert bodies[done_id]["type"] == "batch.completed"
    assert bodies[done_id]["data"]["counts"]["succeeded"] == 3
    assert bodies[partial_id]["type"] == "batch.partially_failed"
    assert bodies[partial_id]["data"]["counts"] == {"pending": 0, "running": 0, "succeeded": 2, "failed": 1,
                                                    "cancelled": 0}
    assert bodies[partial_id]["data"]["status_url"].endswith(f"/api/v1/batches/{partial_id}")


@pytest.fixture
async def runtime(db: Backend) -> AsyncIterator[Runtime]:
    """This process's view of the server's storage (the same directory or bucket) for the sweep."""
    settings = db.settings()
    rt = Runtime(settings=settings)
    rt.storage = build_storage(settings)
    await rt.storage.open()
    try:
        yield rt
    finally:
        await rt.storage.close()


async def test_retention_sweep_removes_results_inputs_and_unused_files(
        client: httpx.AsyncClient, db: Backend, runtime: Runtime) -> None:
    acc = await make_account()
    h = acc["headers"]
    colours = [tuple(secrets.token_bytes(3)) for _ in range(2)]
    used = [await stage_and_upload(client, h, png(c, (40, 30)), f"{i}.png") for i, c in enumerate(colours)]
    unused = await stage_and_upload(client, h, png(tuple(secrets.token_bytes(3)), (40, 30)), "spare.png")
    never = (await stage(client, h, png((1, 1, 1)), "never.png"))["id"]
    r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": used}})
    batch_id = r.json()["id"]
    final = await wait_for_batch(client, batch_id, h)
    assert final["status"] == "completed", final
    items = await all_items(client, batch_id, h)
    result_url = next(iter(items.values()))["result_url"]
    image_keys = set(await Image.filter(job_id=batch_id).values_list("storage_key", flat=True))
    staged_keys = set(await StagedFile.filter(id__in=[*used, unused]).values_list("storage_key", flat=True))
    assert image_keys and all([await runtime.storage.exists(k) for k in image_keys | staged_keys])

    # Within the window nothing goes.
    assert await batch_runs.expire_due(runtime) == 0
    assert await staged_files.sweep_unused(runtime) == 0
    # 25 hours on: the batch expires with its result bytes and inputs; unused staged files go with theirs.
    later = datetime.now(UTC) + timedelta(hours=25)
    assert await staged_files.sweep_unused(runtime, now=later) >= 2
    expired = 0
    while n := await batch_runs.expire_due(runtime, now=later):  # in rounds of 50 (other tests' batches too)
        expired += n
    assert expired >= 1
    assert await StagedFile.filter(id__in=[*used, unused, never]).count() == 0
    assert await Image.filter(job_id=batch_id).count() == 0
    for key in image_keys | staged_keys:
        assert not await runtime.storage.exists(key), key
    assert (await Batch.get(id=batch_id)).expired_at is not None
    body = (await client.get(f"/api/v1/batches/{batch_id}", headers=h)).json()
    assert body["status"] == "expired"
    r = await client.get(result_url, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "result_expired"
    r = await client.post(f"/api/v1/batches/{batch_id}/cancel", headers=h)
    assert r.status_code == 409
    # A second sweep finds nothing more (several workers may run it at once).
    assert await batch_runs.expire_batch(runtime, batch_id) is False
